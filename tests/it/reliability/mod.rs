//! The reliability suite (issue 7): mailferry attacked with faults and bad input until it is clear
//! nothing is lost or doubled. One file per area:
//!
//! - [`abort`]: a second stop request ends every wait at once (Retry-After, upload sessions);
//! - [`verify_beside`]: verify and migrate on one mailbox at once share its budget and its
//!   Retry-After deadlines through the ledger;
//! - [`sigkill`]: the `mailferry migrate` binary SIGKILLed at seeded random points, Graph and IMAP
//!   routes;
//! - [`emulator_faults`]: responses lost after commit, 429 storms, 503 (with and without
//!   Retry-After), 504, tokens expiring mid-run;
//! - [`fault_soak`]: (ignored, the soak) 20+ SIGKILLs and every emulator fault together;
//! - [`source_faults`]: Dovecot killed and restarted mid-fetch, a source connection that hangs;
//! - [`disk_full`]: the ledger's filesystem filling up mid-run;
//! - [`altered`]: bytes an IMAP destination changed (NUL to 0x80), found by `verify --deep`;
//! - [`bad_input`]: every corpus message, mail-parser's test messages and generated pathological
//!   ones through survey, migrate (both sinks) and verify;
//! - [`security`]: secrets never in logs, errors, reports or the ledger; TLS, file modes, loopback.
//!
//! Every fault scenario ends with `verify --deep` perfect and prints one machine-readable line,
//! `RELIABILITY fault=<name> injected=<n> lost=<n> duplicated=<n>`, that `scripts/reliability`
//! collects into `docs/reliability.md`. `RELIABILITY_SEED` and `RELIABILITY_ROUNDS` make a run
//! reproducible and longer (the soak).

mod abort;
mod altered;
mod bad_input;
mod disk_full;
mod emulator_faults;
mod fault_soak;
mod recheck_lanes;
mod security;
mod sigkill;
mod source_faults;
mod throttle_restart;
mod unknown_outcomes;
mod verify_beside;
mod verify_extras;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};

use mailferry::engine;
use mailferry::ledger::Ledger;
use mailferry::plan::Plan;
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::support::dovecot::Dovecot;

/// The seed of every random choice in the suite (`RELIABILITY_SEED`, default fixed), so a failure
/// can be re-run exactly.
pub fn seed() -> u64 {
    std::env::var("RELIABILITY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x6d61_696c_6665_7279)
}

/// A seeded generator for one scenario (the name keeps scenarios independent of each other).
pub fn rng(scenario: &str) -> StdRng {
    let mut h = seed();
    for b in scenario.bytes() {
        h = h.wrapping_mul(0x100_0000_01b3) ^ u64::from(b);
    }
    StdRng::seed_from_u64(h)
}

/// How many times each scenario repeats (`RELIABILITY_ROUNDS`, default 1; the soak sets more).
pub fn rounds() -> usize {
    std::env::var("RELIABILITY_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1)
}

/// Prints the line `scripts/reliability` collects.
pub fn record(fault: &str, injected: usize, lost: usize, duplicated: usize) {
    println!(
        "RELIABILITY fault={fault} injected={injected} lost={lost} duplicated={duplicated} seed={}",
        seed()
    );
}

/// Lost and duplicated counts of `actual` against `expected`, both multisets of raw messages.
pub fn tally(expected: &[Vec<u8>], actual: &[Vec<u8>]) -> (usize, usize) {
    let mut want: HashMap<&[u8], isize> = HashMap::new();
    for m in expected {
        *want.entry(m).or_default() += 1;
    }
    for m in actual {
        *want.entry(m).or_default() -= 1;
    }
    let lost = want.values().filter(|v| **v > 0).map(|v| *v as usize).sum();
    let dup = want
        .values()
        .filter(|v| **v < 0)
        .map(|v| (-*v) as usize)
        .sum();
    (lost, dup)
}

/// `verify --deep` through the library, asserting a perfect verdict.
pub async fn assert_verify_perfect(plan_path: &Path, state: Option<&Path>) {
    let plan = Plan::load(plan_path).unwrap();
    let state = state.map_or_else(|| plan.default_state_path(), Path::to_path_buf);
    let ledger = Ledger::open(&state).unwrap();
    let selected = plan.select(&[]).unwrap();
    let report = engine::verify::verify(&plan, Some(&ledger), &selected, true, 2).await;
    assert!(report.perfect, "verify --deep: {:#?}", report.mailboxes);
}

/// The `mailferry` binary with a clean environment.
pub fn mailferry() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mailferry"));
    c.env_remove("RUST_LOG").stdin(Stdio::null());
    c
}

/// Runs the binary to completion: (exit code, stdout, stderr).
pub fn run_bin(args: &[&str]) -> (i32, String, String) {
    let out = mailferry().args(args).output().expect("run mailferry");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every message body in every selectable folder of `user` at a Dovecot, read over IMAP.
pub async fn imap_bodies(d: &Dovecot, user: &str, password: &str) -> Vec<Vec<u8>> {
    crate::support::readback::bodies(
        crate::support::readback::dovecot_endpoint(d),
        user,
        password,
    )
    .await
}

/// Every item of a Graph emulator mailbox as raw MIME (empty for items built by the JSON route).
pub fn graph_bodies(emulator: &mailferry::emulator::EmulatorHandle, address: &str) -> Vec<Vec<u8>> {
    let insp = emulator.inspect();
    let Some(view) = insp.mailbox(address) else {
        return Vec::new();
    };
    view.items
        .iter()
        .map(|i| insp.raw_mime(address, &i.id).unwrap_or_default())
        .collect()
}
