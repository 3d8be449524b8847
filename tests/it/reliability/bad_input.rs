//! Bad input (filled in below).
