//! Shared test support: the Dovecot harness and helpers.
#![allow(dead_code)]
pub mod corpus;
pub mod cyrus;
pub mod dovecot;
pub mod hostile;
pub mod openapi;
pub mod postgres;
pub mod readback;
