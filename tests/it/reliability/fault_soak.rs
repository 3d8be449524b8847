//! The fault soak (issue 13; `#[ignore]`, run by `scripts/reliability --soak`): the `mailferry
//! migrate` binary SIGKILLed at least [`KILLS`] times at seeded points while the Graph emulator
//! loses responses after commit, answers 503 and 504, resets connections and throttles with 429s
//! under a tight request budget, all at once; then the faults are removed and a final run
//! completes. Every source message must then be at the destination exactly once, counted by its
//! bytes through the emulator's inspection API (not the ledger), and `verify --deep` be perfect.
//!
//! It prints `RELIABILITY fault=fault-soak ...` for the table in docs/reliability.md and one
//! `SOAK kills=.. faults=.. messages=.. lost=.. duplicates=.. secs=..` line with its figures.

use std::time::{Duration, Instant};

use rand::Rng;

use mailferry::emulator::{EmulatorConfig, FaultKind, FaultRule, Latency};

use super::{graph_bodies, mailferry, record, rng, run_bin, tally};
use crate::migrate_imap::ImapRig;
use crate::support::corpus::{date_for, generated_message, imap_ready};
use crate::support::dovecot::Layout;

/// SIGKILLs of the binary, at least.
const KILLS: usize = 20;
/// Source messages.
const MESSAGES: usize = 300;

/// Faults on every Graph call, each firing with a small chance per matching request.
fn fault_rules() -> Vec<FaultRule> {
    let with = |method: Option<&str>, path: &str, kind, p: f64, retry: Option<f64>| {
        let mut r = FaultRule::new(method, path, kind);
        r.probability = Some(p);
        r.retry_after = retry;
        r
    };
    vec![
        with(
            Some("POST"),
            "importMime",
            FaultKind::LostResponse,
            0.04,
            None,
        ),
        with(
            None,
            "/users/",
            FaultKind::ServiceUnavailable,
            0.02,
            Some(0.2),
        ),
        with(None, "/users/", FaultKind::ServiceUnavailable, 0.01, None),
        with(None, "/users/", FaultKind::GatewayTimeout, 0.02, None),
        with(None, "/users/", FaultKind::Reset, 0.02, None),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fault soak, a few minutes: scripts/reliability --soak"]
async fn fault_soak_sigkills_and_emulator_faults_together() {
    let started = Instant::now();
    let mut cfg = EmulatorConfig {
        latency: Latency {
            fixed_ms: 3,
            jitter_ms: 3,
        },
        faults: fault_rules(),
        ..EmulatorConfig::default()
    };
    // 429 storms: a request budget well below the run's needs in a 1 s window, and 2 concurrent
    // requests.
    cfg.limits.requests_per_window = 60;
    cfg.limits.request_window_secs = 1.0;
    cfg.limits.concurrent_requests = 2;
    cfg.limits.concurrency_retry_after_secs = 0.2;
    let rig = ImapRig::with_emulator(Layout::Fs, &["sol"], cfg).await;
    let msgs: Vec<Vec<u8>> = (0..MESSAGES)
        .map(|i| generated_message(i, 800 + (i * 61) % 3000))
        .collect();
    let batch: Vec<_> = msgs
        .iter()
        .enumerate()
        .map(|(i, m)| (m.clone(), Default::default(), date_for(i)))
        .collect();
    rig.dovecot.load("sol", &["INBOX"], &batch);
    let plan = rig.plan_path.to_str().unwrap().to_owned();
    let insp = rig.emulator.inspect();
    let count = || {
        insp.mailbox("sol@contoso.example")
            .map_or(0, |m| m.items.len())
    };

    // Seeded kill points over the first 90% of the run, one more than needed; a run that ends
    // on its own before its point (faults failed some items) is started again for the same point.
    let mut r = rng("fault-soak");
    let mut points: Vec<usize> = (0..KILLS + 4)
        .map(|_| r.gen_range(1..MESSAGES * 9 / 10))
        .collect();
    points.sort_unstable();
    let (mut kills, mut runs) = (0, 0);
    let mut i = 0;
    while kills < KILLS {
        // Points already passed (a restart can copy past several) become "kill soon after start".
        let p = points.get(i).copied().unwrap_or(MESSAGES * 9 / 10);
        let target = p.max(count() + 1).min(MESSAGES - 1);
        let mut child = mailferry()
            .args(["migrate", "--plan", &plan])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn mailferry");
        runs += 1;
        let reached = loop {
            if count() >= target {
                break true;
            }
            if child.try_wait().ok().flatten().is_some() {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(3)).await;
        };
        if reached {
            // Half the time, while a Graph request is in flight.
            if r.gen_bool(0.5) {
                tokio::select! {
                    _ = insp.wait_in_flight(1) => {}
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
            }
            let _ = child.kill();
            kills += 1;
            i += 1;
        }
        child.wait().unwrap();
        assert!(
            runs < KILLS * 6,
            "{runs} runs for {kills} kills: no progress"
        );
    }

    // The final clean run: no injected faults (the request budget stays).
    let faults = insp.fault_log().len() + insp.counters().throttled as usize;
    insp.clear_faults();
    let mut code = -1;
    for _ in 0..3 {
        let (c, _, _) = run_bin(&["migrate", "--plan", &plan]);
        code = c;
        if c == 0 {
            break;
        }
    }
    assert_eq!(code, 0, "the final run did not complete");

    // Exactly once, by the bytes the emulator holds.
    let expected: Vec<Vec<u8>> = msgs.iter().map(|m| imap_ready(m)).collect();
    let held = graph_bodies(&rig.emulator, "sol@contoso.example");
    let (lost, dup) = tally(&expected, &held);
    let secs = started.elapsed().as_secs();
    println!(
        "SOAK kills={kills} runs={runs} faults={faults} messages={MESSAGES} held={} lost={lost} duplicates={dup} secs={secs}",
        held.len()
    );
    record("fault-soak", kills + faults, lost, dup);
    assert_eq!((lost, dup), (0, 0), "lost, duplicated");
    assert_eq!(held.len(), MESSAGES);
    let (code, out, err) = run_bin(&["verify", "--plan", &plan, "--deep"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("PERFECT"), "{out}");
}
