//! The IMAP protocol client both edges use: the source reads through it, the sink writes through it.
//! It knows IMAP and nothing about plans, ledgers or where a folder goes.
//!
//! Layers, bottom up, each in its own file:
//! - [`transport`]: TCP, implicit TLS or STARTTLS with rustls (webpki roots plus an optional CA).
//! - [`wire`]: framing of server responses (lines and literals) and a generic tokenizer, and the
//!   command encoder. Free of I/O.
//! - [`conn`]: one connection: tagged commands, a timeout on every network wait, literals spooled
//!   when large (`conn/reader` reads a response from any buffered reader, `conn/framing` runs it
//!   on the socket). [`auth`]: LOGIN, AUTHENTICATE PLAIN with authzid, XOAUTH2.
//! - [`ops`] and [`fetch`]: LIST, NAMESPACE, EXAMINE/SELECT, STATUS, UID FETCH and the
//!   interpretation of their answers; IMAP date-times and UID sets.
//! - [`error`]: [`ImapError`], an [`ErrorKind`] with the endpoint and command it concerns;
//!   [`settings`]: endpoints, credentials and capabilities.
//!
//! mailferry speaks the protocol itself rather than through async-imap or imap-codec; the reasons
//! (answers that async-imap turns into empty successes, literals imap-codec buffers whole, UID sets
//! of MULTIAPPEND) are in docs/decisions.md.

pub(crate) mod auth;
pub(crate) mod conn;
mod error;
pub(crate) mod fetch;
mod lsub;
pub(crate) mod names;
pub(crate) mod ops;
pub(crate) mod reconnect;
mod settings;
mod transport;
pub(crate) mod wire;

pub use error::{ErrorContext, ErrorKind, ImapError};
pub use settings::{Capabilities, ImapAuth, ImapEndpoint, Security};
