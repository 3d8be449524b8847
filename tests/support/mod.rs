//! Shared test support: the Dovecot harness and helpers.
#![allow(dead_code)]
pub mod openapi;
