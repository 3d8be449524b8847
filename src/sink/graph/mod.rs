//! Graph sink (under construction).
