//! The IMAP source: reads folders, message metadata and raw bytes of one mailbox through the
//! protocol client in [`crate::imap`]. [`ImapSource`] checks every answer and reconnects on a
//! dropped session.

mod source;
pub mod user_root;

pub use crate::imap::{
    Capabilities, ErrorContext, ErrorKind, ImapAuth, ImapEndpoint, ImapError, Security,
};
pub use source::ImapSource;
pub use user_root::UserRoot;
