//! Integration tests, in one binary so the 2-core machine links once.
//! Each module below tests one area; `support` holds the Dovecot harness and shared helpers.

mod cli;
mod cli_exits;
mod completeness;
mod cyrus;
mod demo;
mod deploy;
mod doctor;
mod emulator;
mod fidelity;
mod fleet;
mod fleet_rounds;
mod fleet_verify;
mod graph_sink;
mod hostile;
mod imap_sink;
mod imap_source;
mod ledger_copy;
mod ledger_pg;
mod ledger_pg_fleet;
mod ledger_pg_parity;
mod ledger_pg_reconnect;
mod ledger_pg_rounds;
mod ledger_suite;
mod maildir_source;
mod migrate;
mod migrate_imap;
mod migrate_split;
mod plan;
mod reliability;
mod signatures;
mod spooled;
#[path = "../support/mod.rs"]
mod support;
mod translate;
