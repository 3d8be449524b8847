//! mailferry moves whole mailboxes from IMAP servers (or Maildir trees) into Exchange Online
//! through Microsoft Graph, and into other IMAP servers, exactly once and resumably.
//!
//! Module map (data flows top to bottom):
//!
//! | module | job |
//! |---|---|
//! | [`plan`] | reads `plan.toml` and the mailboxes CSV into one resolved [`plan::Plan`] |
//! | [`imap`] | the IMAP protocol client both edges use: transport, framing, tokenizer, operations |
//! | [`source`] | reads folders, metadata and raw bytes: [`source::imap`] (through [`imap`]), [`source::maildir`] |
//! | [`body`] | message bytes in memory, or spooled to an unlinked 0600 file when large |
//! | [`translate`] | pure mapping of folder names, flags and dates to what a destination accepts |
//! | [`sink`] | writes messages: [`sink::graph`] (Microsoft Graph), [`sink::imap`] (APPEND) |
//! | [`ledger`] | SQLite record of every message's state, the basis of exactly-once resume |
//! | [`engine`] | per-mailbox pipelines, concurrency, memory budget, incremental passes; its ports ([`engine::ports`]) |
//! | [`app`] | one function per command: lock, ledger, cancellation, engine, report files; returns an outcome |
//! | [`report`] | progress, summaries, JSON and CSV reports |
//! | [`emulator`] | a local Microsoft Graph + Entra stand-in for tests, rehearsals and the demo |
//! | [`doctor`] | checks a deployment before a migration: hosts, logins, permissions, routes |
//! | [`demo`] | the self-contained end-to-end demonstration on bundled samples |
//! | [`cli`] | the `mailferry` command line: parses, calls [`app`], renders, picks the exit code |
//!
//! Shared value types live in [`model`]; header facts (Message-ID) in [`header`]; secrets in
//! [`secret`]; modified UTF-7 in [`utf7`].
#![forbid(unsafe_code)]

pub mod app;
pub mod body;
pub mod cli;
pub mod demo;
pub mod doctor;
pub mod emulator;
pub mod engine;
#[doc(hidden)]
pub mod fuzzing;
pub mod header;
pub mod imap;
pub mod ledger;
pub mod model;
pub mod plan;
pub mod report;
pub mod secret;
pub mod sink;
pub mod source;
mod tls;
pub mod translate;
pub mod utf7;
