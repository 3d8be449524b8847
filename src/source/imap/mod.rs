//! The IMAP source: reads folders, message metadata and raw bytes from any IMAP4rev1 server.
//!
//! Layers, bottom up, each in its own file:
//! - [`transport`]: TCP, implicit TLS or STARTTLS with rustls (webpki roots plus an optional CA).
//! - [`wire`]: framing of server responses (lines and literals) and a generic tokenizer.
//! - [`conn`]: one connection: tagged commands, a timeout on every network wait. Shared with the
//!   IMAP sink. [`auth`]: LOGIN, AUTHENTICATE PLAIN with authzid, XOAUTH2.
//! - [`ops`] and [`fetch`]: LIST, NAMESPACE, EXAMINE, STATUS, UID FETCH and their interpretation.
//! - [`source`]: [`ImapSource`], which checks every answer and reconnects on a dropped session.
//!
//! The protocol is spoken directly instead of through async-imap's session API because that API
//! reports a dead session, a FETCH ended by NO or an unparseable reply as an empty success (see
//! `shared/reference/async-imap.md`), and cannot parse NAMESPACE, STATUS=SIZE or APPENDUID.

mod auth;
pub(crate) mod conn;
mod error;
pub(crate) mod fetch;
pub(crate) mod ops;
mod settings;
mod source;
mod transport;
pub(crate) mod wire;

pub use error::{ErrorContext, ImapError};
pub use settings::{Capabilities, ImapAuth, ImapEndpoint, Security};
pub use source::ImapSource;
