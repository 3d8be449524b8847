//! Sources: where messages are read from.

pub mod accounting;
pub mod imap;
pub mod maildir;
