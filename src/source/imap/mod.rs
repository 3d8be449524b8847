//! The IMAP source: reads folders, message metadata and raw bytes of one mailbox through the
//! protocol client in [`crate::imap`]. [`ImapSource`] checks every answer and reconnects on a
//! dropped session.

mod source;
pub mod user_root;

pub use crate::imap::{Capabilities, ErrorContext, ImapAuth, ImapEndpoint, ImapError, Security};
pub use source::ImapSource;

// Transitional aliases while branches written against the old layout are merged; removed once
// nothing names them (the layering check in scripts/check-layers forbids their use from sink/).
#[allow(unused_imports)]
pub(crate) use crate::imap::{conn, fetch, ops, wire};
pub use user_root::UserRoot;
