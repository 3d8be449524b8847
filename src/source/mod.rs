//! Sources: where messages are read from.

pub mod imap;
pub mod maildir;
