//! Faults injected by the Graph emulator while a Maildir tree migrates into it: responses lost
//! after the item was committed, 429 storms under tight limits, 503 with and without Retry-After,
//! 504, and tokens expiring mid-run. Where each fault fires is chosen by the seeded generator
//! (`skip` and `count` of a rule), so a failing round can be replayed. Every round ends with each
//! message at the destination exactly once, byte for byte, and `verify --deep` perfect.

use rand::Rng;

use mailferry::emulator::{EmulatorConfig, FaultKind, FaultRule, Inspector, Latency};
use mailferry::engine::MigrateOptions;

use super::{assert_verify_perfect, graph_bodies, record, rng, rounds, tally};
use crate::migrate::{Rig, generated, write_maildir};
use crate::support::corpus::imap_ready;

/// Messages per round: enough batches for faults to land at different points.
const MESSAGES: usize = 60;

/// Runs `migrate` until a run settles everything (at most `max_runs`); returns the runs taken.
async fn migrate_until_settled(rig: &Rig, max_runs: usize) -> usize {
    for n in 1..=max_runs {
        let s = rig.migrate(MigrateOptions::default()).await;
        let t = s.total();
        if !s.has_failures() && t.pending == 0 && t.copied + t.already_present == MESSAGES as u64 {
            return n;
        }
    }
    panic!("not settled after {max_runs} runs");
}

/// One round: a fresh emulator with `config`, `arm` adds the faults, then the checks.
/// Returns (injected, lost, duplicated).
async fn round(
    config: EmulatorConfig,
    arm: impl FnOnce(&Inspector),
    injected: impl FnOnce(&Inspector) -> usize,
) -> (usize, usize, usize) {
    let rig = Rig::new(&["eve"], config).await;
    let msgs: Vec<Vec<u8>> = (0..MESSAGES).map(|i| generated(i, 1500 + i * 41)).collect();
    write_maildir(
        &rig.tree("eve"),
        &[("", msgs.iter().map(|m| (m.clone(), "S")).collect())],
    );
    let insp = rig.emulator.inspect();
    arm(&insp);
    migrate_until_settled(&rig, 4).await;
    let expected: Vec<Vec<u8>> = msgs.iter().map(|m| imap_ready(m)).collect();
    let (lost, dup) = tally(
        &expected,
        &graph_bodies(&rig.emulator, "eve@contoso.example"),
    );
    assert_eq!((lost, dup), (0, 0), "lost, duplicated");
    assert_verify_perfect(&rig.plan_path, None).await;
    (injected(&insp), lost, dup)
}

/// Rules that each fire once, after a seeded number of matching requests.
fn seeded_rules(
    scenario: &str,
    round: usize,
    method: Option<&str>,
    path: &str,
    kind: FaultKind,
    n: usize,
) -> Vec<FaultRule> {
    let mut r = rng(&format!("{scenario}/{round}"));
    (0..n)
        .map(|_| {
            let mut rule = FaultRule::new(method, path, kind).times(1);
            rule.skip = r.gen_range(0..MESSAGES as u32 / 2);
            rule
        })
        .collect()
}

async fn rule_scenario(
    name: &str,
    method: Option<&str>,
    path: &str,
    kind: FaultKind,
    per_round: usize,
    retry_after: Option<f64>,
) {
    let (mut inj, mut lost, mut dup) = (0, 0, 0);
    for k in 0..rounds() {
        let rules = seeded_rules(name, k, method, path, kind, per_round);
        let (i, l, d) = round(
            EmulatorConfig::default(),
            |insp| {
                for mut r in rules {
                    r.retry_after = retry_after;
                    insp.add_fault(r);
                }
            },
            |insp| insp.fault_log().iter().filter(|f| f.kind == kind).count(),
        )
        .await;
        assert!(i > 0, "{name}: the fault never fired");
        (inj, lost, dup) = (inj + i, lost + l, dup + d);
    }
    record(name, inj, lost, dup);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_responses_after_commit() {
    // The item is stored, the answer never arrives: a blind retry would make a second copy.
    rule_scenario(
        "lost-response-after-commit",
        Some("POST"),
        "importMime",
        FaultKind::LostResponse,
        6,
        None,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_unavailable_with_and_without_retry_after() {
    rule_scenario(
        "503-retry-after",
        Some("POST"),
        "importMime",
        FaultKind::ServiceUnavailable,
        4,
        Some(0.5),
    )
    .await;
    rule_scenario(
        "503-no-retry-after",
        None,
        "/users/",
        FaultKind::ServiceUnavailable,
        4,
        None,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_timeouts() {
    // On any Graph call: folder listing and creation, importMime, the stamp PATCH, lookups.
    rule_scenario(
        "504-gateway-timeout",
        None,
        "/users/",
        FaultKind::GatewayTimeout,
        6,
        None,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storms_of_429_under_tight_limits() {
    let (mut inj, mut lost, mut dup) = (0, 0, 0);
    for k in 0..rounds() {
        let mut r = rng(&format!("429/{k}"));
        let mut cfg = EmulatorConfig::default();
        // A budget far below what the run needs, in a short window: most of the run is throttled.
        cfg.limits.requests_per_window = r.gen_range(15..30);
        cfg.limits.request_window_secs = 1.0;
        cfg.limits.concurrent_requests = 2;
        cfg.limits.concurrency_retry_after_secs = 0.2;
        let (i, l, d) = round(cfg, |_| {}, |insp| insp.counters().throttled as usize).await;
        assert!(i > 0, "no request was throttled");
        (inj, lost, dup) = (inj + i, lost + l, dup + d);
    }
    record("429-storm", inj, lost, dup);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_expiring_mid_run() {
    let (mut inj, mut lost, mut dup) = (0, 0, 0);
    for k in 0..rounds() {
        let mut r = rng(&format!("token/{k}"));
        let mut points: Vec<usize> = (0..3).map(|_| r.gen_range(1..MESSAGES - 5)).collect();
        points.sort_unstable();
        let cfg = EmulatorConfig {
            latency: Latency {
                fixed_ms: 3,
                jitter_ms: 2,
            },
            ..EmulatorConfig::default()
        };
        let (i, l, d) = round(
            cfg,
            move |insp| {
                // Expires every token as the item count passes each seeded point.
                let insp = insp.clone();
                tokio::spawn(async move {
                    for p in points {
                        loop {
                            let n = insp
                                .mailbox("eve@contoso.example")
                                .map_or(0, |m| m.items.len());
                            if n >= p {
                                break;
                            }
                            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                        }
                        insp.expire_tokens();
                    }
                });
            },
            |insp| insp.requests().iter().filter(|q| q.status == 401).count(),
        )
        .await;
        assert!(i > 0, "no request met an expired token");
        (inj, lost, dup) = (inj + i, lost + l, dup + d);
    }
    record("token-expiry", inj, lost, dup);
}
