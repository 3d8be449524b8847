//! `mailferry migrate` into the Graph emulator (issue 5, "Performance").
//!
//! 5,000 generated messages (about 480 MB: mostly 5-50 KB, 10% 100 KB-2 MB, 0.4% 5-10 MB; some
//! without Message-ID, some duplicated) plus one 140 MB message, in 30 folders of a real Dovecot
//! (APPENDed by the test harness's loader), migrated by the release binary into the emulator run
//! as its own process with Microsoft's default limits on a clock `SCALE` times faster and 100-200
//! ms (service time) of latency per request. The binary's Graph governor is scaled alike through
//! `MAILFERRY_REHEARSAL_TIME_SCALE`, so it paces inside the scaled limits as it would inside the
//! real ones.
//!
//! Prints: messages/s against the ceiling the limits allow at that scale, peak RSS, CPU seconds
//! per 1,000 messages, the no-op re-run against the first run, and the Graph requests per message
//! by kind (create, importMime, attachment POST, upload session, chunk, lookup, PATCH, ...).
//! Checks only correctness. `MAILFERRY_BENCH_ROUTE=json` takes the JSON route.
//!
//! Run: `cargo bench --bench migrate` (needs Dovecot and GNU time; `scripts/bench` installs
//! both). `MAILFERRY_BENCH_SCALE` overrides the time scale (default 60); `MAILFERRY_BENCH_MESSAGES`
//! and `MAILFERRY_BENCH_BIG_MB` shrink the mailbox for a quick look.

mod support;

use support::rehearsal::Emulator;
use support::{dovecot, num};

/// The one very large message: 140 MB, or `MAILFERRY_BENCH_BIG_MB` (0 leaves it out).
fn big() -> Option<usize> {
    let mb = std::env::var("MAILFERRY_BENCH_BIG_MB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(140);
    (mb > 0).then_some(mb * 1_000_000)
}

/// Microsoft's documented budgets per app and mailbox (docs/graph-facts.md, section 5).
const REQUESTS_PER_WINDOW: f64 = 10_000.0;
const REQUEST_WINDOW_S: f64 = 600.0;
const BYTES_PER_WINDOW: f64 = 150.0 * 1024.0 * 1024.0;
const BYTE_WINDOW_S: f64 = 300.0;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let scale: f64 = std::env::var("MAILFERRY_BENCH_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|s: &f64| *s > 0.0)
        .unwrap_or(60.0);
    let src = dovecot::Dovecot::start(dovecot::Layout::Fs);
    src.add_user("bench", "pw");
    let loaded = support::load_mailbox(&src, "bench", big());

    let dir = tempfile::Builder::new()
        .prefix("mailferry-bench-migrate-")
        .tempdir()
        .expect("temp dir");
    let emu = Emulator::start(dir.path(), scale, "disk");
    support::write_private(&dir.path().join("secret"), "demo-secret\n");
    support::write_private(
        &dir.path().join("mailboxes.csv"),
        "EmailAddress,UserName,Password\nbench@contoso.example,bench,pw\n",
    );
    let plan = dir.path().join("plan.toml");
    support::write_private(
        &plan,
        &format!(
            "mailboxes = \"mailboxes.csv\"\n\n{}\n[destination.exo]\nkind = \"graph\"\ntenant = \"contoso.example\"\n\
             client_id = \"mailferry-demo\"\nclient_secret_file = \"secret\"\ngraph_url = \"{url}\"\nlogin_url = \"{url}\"\nroute = \"{route}\"\n",
            support::source_section(&src),
            url = format!("http://{}", emu.addr),
            route = std::env::var("MAILFERRY_BENCH_ROUTE").unwrap_or_else(|_| "import-mime".into())
        ),
    );
    let plan_arg = plan.to_string_lossy().into_owned();
    let scale_arg = format!("{scale}");
    let env = [("MAILFERRY_REHEARSAL_TIME_SCALE", scale_arg.as_str())];
    let args = ["migrate", "--plan", plan_arg.as_str(), "--json"];

    let emu_cpu0 = emu.cpu();
    let first = support::run_measured(&support::mailferry_bin(), &args, &env);
    let emu_cpu1 = emu.cpu();
    let s1 = support::mailbox_summary(&first);
    let counters = emu.counters();
    let rerun = support::run_measured(&support::mailferry_bin(), &args, &env);
    let emu_cpu2 = emu.cpu();
    let s2 = support::mailbox_summary(&rerun);

    let copied = num(&s1, "copied");
    let skipped = support::map_total(&s1, "skipped");
    let failed = num(&s1, "failed");
    assert_eq!(first.exit, 0, "first run failed:\n{}", first.stderr);
    assert_eq!(rerun.exit, 0, "re-run failed:\n{}", rerun.stderr);
    assert_eq!(
        copied as usize, loaded.messages,
        "first run copied {copied} of {} (skipped {skipped}, failed {failed})",
        loaded.messages
    );
    assert_eq!(num(&s2, "copied"), 0, "the re-run copied something");

    let mb = &counters["mailboxes"]["bench@contoso.example"];
    let requests = num(mb, "requests") as f64;
    let uploaded = num(mb, "bytes_uploaded") as f64;
    let throttled = num(&counters, "throttled");
    let n = copied as f64;
    // What the documented budgets allow, per service second, at this run's requests and bytes
    // per message; times the scale for real seconds.
    let by_requests = REQUESTS_PER_WINDOW / (requests / n) / REQUEST_WINDOW_S;
    let by_bytes = BYTES_PER_WINDOW / (uploaded / n) / BYTE_WINDOW_S;
    let ceiling = by_requests.min(by_bytes) * scale;
    let rate = n / first.wall;
    let binding = if by_bytes < by_requests {
        "150 MiB / 5 min"
    } else {
        "10,000 requests / 10 min"
    };

    println!();
    println!(
        "machine: {}; source {} messages, {:.0} MB ({} folders, largest {:.0} MB); emulator time scale {scale}, latency 100-200 ms service time",
        support::machine(),
        loaded.messages,
        loaded.bytes as f64 / 1e6,
        loaded.folders,
        loaded.largest as f64 / 1e6
    );
    println!();
    println!(
        "| run | wall (real) | messages/s (real) | limits' ceiling, messages/s (real) | % of ceiling | peak RSS | CPU s | CPU s / 1,000 msgs | emulator CPU s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| first run: {copied} copied, {skipped} skipped, {failed} failed | {:.1} s | {rate:.0} | {ceiling:.0} ({binding}) | {:.0}% | {:.0} MiB | {:.1} | {:.2} | {:.1} |",
        first.wall,
        100.0 * rate / ceiling,
        first.peak_rss_mib,
        first.cpu(),
        first.cpu() / (n / 1000.0),
        emu_cpu1 - emu_cpu0
    );
    println!(
        "| no-op re-run: {} copied, {} already present, {} folders unchanged | {:.2} s | | | | {:.0} MiB | {:.2} | | {:.1} |",
        num(&s2, "copied"),
        num(&s2, "already_present"),
        num(&s2, "folders_unchanged"),
        rerun.wall,
        rerun.peak_rss_mib,
        rerun.cpu(),
        emu_cpu2 - emu_cpu1
    );
    println!();
    println!(
        "Graph traffic of the first run: {requests:.0} requests ({:.2} per message), {:.0} MB uploaded ({:.2} x the raw bytes), {throttled} answered 429",
        requests / n,
        uploaded / 1e6,
        uploaded / loaded.bytes as f64
    );
    println!();
    println!("Requests of the first run by kind (emulator counters):");
    println!();
    println!("| kind | requests | per message |");
    println!("|---|---|---|");
    for (k, v) in mb["by_kind"].as_object().cloned().unwrap_or_default() {
        let v = v.as_u64().unwrap_or(0);
        println!("| {k} | {v} | {:.3} |", v as f64 / n);
    }
    println!();
    println!(
        "In service time (x{scale}): first run {:.1} min at {:.1} messages/s; the limits allow {:.1} messages/s",
        first.wall * scale / 60.0,
        rate / scale,
        ceiling / scale
    );
    println!(
        "Goals: peak RSS under 100 MB: {:.0} MiB ({}); no-op re-run under 10% of the first run: {:.1}% real time at scale {scale} ({}), {:.3}% of the first run's service time",
        first.peak_rss_mib.max(rerun.peak_rss_mib),
        if first.peak_rss_mib.max(rerun.peak_rss_mib) * 1.048_576 < 100.0 {
            "met"
        } else {
            "missed"
        },
        100.0 * rerun.wall / first.wall,
        if rerun.wall < 0.1 * first.wall {
            "met"
        } else {
            "missed"
        },
        100.0 * rerun.wall / (first.wall * scale)
    );
}
