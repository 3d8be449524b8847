//! IMAP source (under construction).
