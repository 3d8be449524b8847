//! A fleet-sized rehearsal (issue 16): N generated Maildir++ mailboxes of M messages each, moved
//! by the release binary into `mailferry emulator` (its own process, bodies on disk by default)
//! on a scaled clock, then migrated again (a no-op) and verified.
//!
//! The mailboxes have a realistic size mix (mostly 2-6 KB text, 13% 6-30 KB, 1.8% 30-150 KB, 0.2%
//! 150 KB-1 MB; one in ten carries an attachment) in four folders (INBOX, Sent, Archive,
//! Projects.2024). Prints: messages/s, CPU seconds per 1,000 messages for mailferry and for the
//! emulator, both processes' peak RSS, the re-run and verify times, and the Graph requests per
//! message by kind. Checks only correctness (every message copied once, nothing failed, verify
//! clean).
//!
//! Run: `cargo bench --bench rehearsal` (needs GNU time: `scripts/bench` installs it).
//! `MAILFERRY_REHEARSAL_MAILBOXES` (N, default 100), `MAILFERRY_REHEARSAL_MESSAGES` (M, default
//! 1,000), `MAILFERRY_BENCH_SCALE` (time scale, default 600), `MAILFERRY_REHEARSAL_ROUTE`
//! (`import-mime` or `json`, default import-mime), `MAILFERRY_REHEARSAL_BODIES` (`disk`, `digest`
//! or `memory`, default disk), `MAILFERRY_REHEARSAL_AT_ONCE` (mailboxes at once, default 50).

mod support;

use std::collections::BTreeMap;
use std::time::Instant;

use support::rehearsal::{Emulator, generate, totals, write_plan};
use support::{env_or, num};

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n: usize = env_or("MAILFERRY_REHEARSAL_MAILBOXES", 100);
    let m: usize = env_or("MAILFERRY_REHEARSAL_MESSAGES", 1_000);
    let scale: f64 = env_or("MAILFERRY_BENCH_SCALE", 600.0);
    let route: String = env_or("MAILFERRY_REHEARSAL_ROUTE", "import-mime".to_owned());
    let bodies: String = env_or("MAILFERRY_REHEARSAL_BODIES", "disk".to_owned());
    let at_once: usize = env_or("MAILFERRY_REHEARSAL_AT_ONCE", 50);

    let dir = tempfile::Builder::new()
        .prefix("mailferry-bench-rehearsal-")
        .tempdir()
        .expect("temp dir");
    let t0 = Instant::now();
    let bytes = generate(&dir.path().join("trees"), n, m);
    let gen_s = t0.elapsed().as_secs_f64();
    let emu = Emulator::start(dir.path(), scale, &bodies);
    let plan = write_plan(
        dir.path(),
        &dir.path().join("trees"),
        n,
        &emu.addr,
        &route,
        "",
    );
    let plan_arg = plan.to_string_lossy().into_owned();
    let scale_arg = format!("{scale}");
    let at_once_arg = at_once.to_string();
    let env = [("MAILFERRY_REHEARSAL_TIME_SCALE", scale_arg.as_str())];
    let migrate = [
        "migrate",
        "--plan",
        plan_arg.as_str(),
        "--json",
        "--concurrency",
        at_once_arg.as_str(),
    ];
    let verify = [
        "verify",
        "--plan",
        plan_arg.as_str(),
        "--json",
        "--concurrency",
        at_once_arg.as_str(),
    ];

    let c0 = emu.cpu();
    let first = support::run_measured(&support::mailferry_bin(), &migrate, &env);
    let c1 = emu.cpu();
    let counters = emu.counters();
    let rerun = support::run_measured(&support::mailferry_bin(), &migrate, &env);
    let c2 = emu.cpu();
    let check = support::run_measured(&support::mailferry_bin(), &verify, &env);
    let c3 = emu.cpu();
    let emu_rss = emu.peak_rss_mib();

    let (copied, failed, skipped, _) = totals(&first);
    let (copied2, failed2, _, present2) = totals(&rerun);
    assert_eq!(first.exit, 0, "first run failed:\n{}", first.stderr);
    assert_eq!(
        copied as usize,
        n * m,
        "copied {copied} of {} (failed {failed}, skipped {skipped})",
        n * m
    );
    assert_eq!(rerun.exit, 0, "re-run failed:\n{}", rerun.stderr);
    assert_eq!(
        (copied2, failed2),
        (0, 0),
        "the re-run copied or failed something"
    );
    assert_eq!(
        check.exit, 0,
        "verify found a difference:\n{}",
        check.stdout
    );

    let total = copied as f64;
    let requests = num(&counters, "requests") as f64;
    let throttled = num(&counters, "throttled");
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    for mb in counters["mailboxes"]
        .as_object()
        .cloned()
        .unwrap_or_default()
        .values()
    {
        for (k, v) in mb["by_kind"].as_object().cloned().unwrap_or_default() {
            *kinds.entry(k).or_default() += v.as_u64().unwrap_or(0);
        }
    }

    println!();
    println!(
        "machine: {}; {n} Maildir++ mailboxes x {m} messages = {} messages, {:.0} MB (generated in {gen_s:.0} s); route {route}, bodies {bodies}, {at_once} mailboxes at once, time scale {scale}, latency 100-200 ms service time",
        support::machine(),
        n * m,
        bytes as f64 / 1e6
    );
    println!();
    println!(
        "| run | wall (real) | messages/s | mailferry CPU s / 1,000 msgs | emulator CPU s / 1,000 msgs | mailferry peak RSS | emulator peak RSS (so far) |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| first run: {copied} copied, {skipped} skipped, {failed} failed | {:.1} s | {:.0} | {:.2} | {:.2} | {:.0} MiB | |",
        first.wall,
        total / first.wall,
        first.cpu() / (total / 1000.0),
        (c1 - c0) / (total / 1000.0),
        first.peak_rss_mib
    );
    println!(
        "| no-op re-run: {copied2} copied, {present2} already present | {:.1} s ({:.1}% of the first) | | {:.2} | {:.2} | {:.0} MiB | |",
        rerun.wall,
        100.0 * rerun.wall / first.wall,
        rerun.cpu() / (total / 1000.0),
        (c2 - c1) / (total / 1000.0),
        rerun.peak_rss_mib
    );
    println!(
        "| verify | {:.1} s | | {:.2} | {:.2} | {:.0} MiB | {emu_rss:.0} MiB |",
        check.wall,
        check.cpu() / (total / 1000.0),
        (c3 - c2) / (total / 1000.0),
        check.peak_rss_mib
    );
    println!();
    let per = |k: &str| kinds.get(k).copied().unwrap_or(0) as f64 / total;
    println!(
        "Graph requests of the first run: {requests:.0} ({:.3} per message), {throttled} answered 429. Per message by kind:",
        requests / total
    );
    println!();
    println!("| kind | requests | per message |");
    println!("|---|---|---|");
    for (k, v) in &kinds {
        println!("| {k} | {v} | {:.3} |", per(k));
    }
    println!();
    println!(
        "Goals: emulator peak RSS at most 1 GiB: {emu_rss:.0} MiB ({}); no-op re-run under 5% of the first run: {:.1}% ({})",
        if emu_rss <= 1024.0 { "met" } else { "missed" },
        100.0 * rerun.wall / first.wall,
        if rerun.wall < 0.05 * first.wall {
            "met"
        } else {
            "missed"
        }
    );
}
