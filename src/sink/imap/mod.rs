//! IMAP sink (under construction).
