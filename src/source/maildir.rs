//! Maildir source (under construction).
