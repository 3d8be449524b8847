//! Security (filled in below).
