//! ledger (under construction).
