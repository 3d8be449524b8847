//! Issue 12.11: `verify` running beside `migrate` on the same mailbox. Exchange counts both
//! against one per-mailbox budget (here: 2 requests at a time), so together they run into 429s;
//! neither may stall. Both pace with the same governor and retry rules, and a Retry-After either
//! one is given is recorded in the ledger and honoured by the other before its next request.
//!
//! The two run as two tasks with their own Graph apps (their own governors, token caches and
//! ledger handles), as two processes would; only the ledger file and the emulator are shared.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use mailferry::app;
use mailferry::emulator::{EmulatorConfig, Latency};
use mailferry::engine::Cancel;
use mailferry::plan::Plan;
use mailferry::report::Events;

use crate::migrate::{FolderMessages, Rig, generated, write_maildir};

const USER: &str = "tom@contoso.example";
const FOLDERS: usize = 8;
const FIRST: usize = 5;
const MORE: usize = 15;

/// `FOLDERS` folders of `n` messages each (writing again adds to what is there: same names).
fn tree(rig: &Rig, n: usize) {
    let folders: Vec<(String, FolderMessages<'_>)> = (0..FOLDERS)
        .map(|f| {
            let msgs = (0..n)
                .map(|i| (generated(f * 1000 + i, 400), "S"))
                .collect();
            (format!("F{f}"), msgs)
        })
        .collect();
    let refs: Vec<(&str, FolderMessages<'_>)> = folders
        .iter()
        .map(|(n, m)| (n.as_str(), m.clone()))
        .collect();
    write_maildir(&rig.tree("tom"), &refs);
}

async fn migrate(rig: &Rig) -> mailferry::report::RunSummary {
    crate::reliability::abort::run(rig, Cancel::default(), Events::discard()).await
}

async fn verify(rig: &Rig) -> mailferry::engine::verify::VerifyReport {
    let plan = Plan::load(&rig.plan_path).unwrap();
    let workspace = app::Workspace::resolve(&plan, None, None);
    app::verify(&plan, &workspace, &[], false, 1, None)
        .await
        .unwrap()
        .report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_and_migrate_side_by_side_share_the_mailbox_budget_and_both_finish() {
    // Two requests at a time per app and mailbox; service time runs 10x, so a concurrency 429
    // asks for 0.1 s (Retry-After is given in real seconds).
    let mut cfg = EmulatorConfig::default();
    cfg.limits.concurrent_requests = 2;
    cfg.time_scale = 10.0;
    // 10 to 20 ms a request, so the two overlap.
    cfg.latency = Latency {
        fixed_ms: 100,
        jitter_ms: 100,
    };
    let rig = crate::reliability::abort::rig_with(cfg, "concurrency_per_mailbox = 2\n").await;
    // A first pass creates the folders (so the two do not race to create them), then more mail
    // arrives and the second pass runs with verify beside it.
    tree(&rig, FIRST);
    let first = migrate(&rig).await;
    assert!(!first.has_failures(), "{:?}", first.mailboxes);
    tree(&rig, FIRST + MORE);
    let insp = rig.emulator.inspect();
    let before = insp.requests().len();

    let started = Instant::now();
    let migrating = migrate(&rig);
    let verifying = async {
        // verify again and again while migrate runs (each a new app, as a new process would be)
        let mut runs = 0;
        while runs < 3 || insp.requests().len() - before < 200 {
            let _ = verify(&rig).await;
            runs += 1;
            if runs > 50 {
                break;
            }
        }
        runs
    };
    // Without shared deadlines the two take turns coming back early, each time doubling the
    // block (the emulator's penalty), and stall for minutes: that is a failure here.
    let (summary, verify_runs) = tokio::time::timeout(Duration::from_secs(120), async {
        tokio::join!(migrating, verifying)
    })
    .await
    .expect("migrate and verify side by side stalled");
    let elapsed = started.elapsed();
    assert!(!summary.has_failures(), "{:?}", summary.mailboxes);
    assert!(verify_runs >= 3);

    // Both finished, and what migrate did is right: every message once, verify agrees.
    let view = insp.mailbox(USER).unwrap();
    let ids: Vec<String> = view
        .items
        .iter()
        .filter(|i| i.folder_path.starts_with("Inbox/") || i.folder_path.starts_with('F'))
        .filter_map(|i| i.internet_message_id.clone())
        .collect();
    let distinct: HashSet<&String> = ids.iter().collect();
    assert_eq!(ids.len(), FOLDERS * (FIRST + MORE), "{:?}", view.folders);
    assert_eq!(distinct.len(), ids.len(), "a message is there twice");
    let last = verify(&rig).await;
    assert!(last.perfect, "{:?}", last.mailboxes[0].reasons);

    // Throttling stayed bounded. Each concurrency 429 pauses the mailbox for its Retry-After
    // (0.1 s) in both: in the process it answered, through the governor, and in the other, which
    // reads the deadline from the ledger before its next request. So at most the requests already
    // on their way (2 + 2 in flight, the two processes' limits) meet a block per pause, and
    // pauses cannot come faster than one per Retry-After: 429s <= 4 x (elapsed / 0.1 s + 1).
    let side_by_side: Vec<_> = insp.requests()[before..].to_vec();
    let throttled: Vec<_> = side_by_side.iter().filter(|r| r.status == 429).collect();
    let early = throttled
        .iter()
        .filter(|r| {
            r.response_json
                .as_ref()
                .is_some_and(|j| j.to_string().contains("before Retry-After"))
        })
        .count();
    let bound = 4.0 * (elapsed.as_secs_f64() / 0.1 + 1.0);
    eprintln!(
        "verify beside migrate: {} requests, {} throttled ({early} came back early), {verify_runs} verify runs, {:.1}s, bound {bound:.0}",
        side_by_side.len(),
        throttled.len(),
        elapsed.as_secs_f64()
    );
    assert!(
        !throttled.is_empty(),
        "the two together must exceed the mailbox's limit for this test to mean anything"
    );
    assert!((throttled.len() as f64) <= bound);
    // No request is sent after its process could know of a recorded Retry-After: one that comes
    // back early is only one that was already on its way (at most the other's 2 in flight, per
    // 429 that was not itself early). Without the shared deadline, the other process keeps
    // sending through every pause and each early return lengthens the block (x2).
    let plain = throttled.len() - early;
    assert!(early <= 2 * plain, "{early} early returns for {plain} 429s");
}
