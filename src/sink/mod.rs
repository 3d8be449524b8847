//! Sinks: where messages are written.
//!
//! [`graph`] writes into Exchange Online through Microsoft Graph, [`imap`] APPENDs to any IMAP server.
//! Both implement the engine's [`MailSink`](crate::engine::ports::MailSink) port, whose types
//! (what one message carries, an item listed back, how a failure is classified) live in
//! [`crate::engine::ports`].

pub mod graph;
pub mod imap;
