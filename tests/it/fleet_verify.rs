//! `verify` on a PostgreSQL ledger with several mailboxes in flight at once, as on SQLite.
//!
//! With several mailboxes in one task, the command once stalled for good under load: each
//! PostgreSQL ledger call ran its future with tokio's `block_on` nested on the thread that
//! drives the command, whose park took the wake-ups meant for the other mailboxes
//! (`ledger::backend::complete_here`). The command runs under a time limit, so a stall fails
//! the test instead of hanging it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::fleet::{
    MAILBOXES, PER_FOLDER, Workers, lost_and_duplicated, rig, run_within, wait_all,
};
use crate::support::postgres::Postgres;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_checks_several_mailboxes_at_once_on_postgresql() {
    let pg = Postgres::start();
    // Every Graph request takes 40-60 ms: mailboxes verified at once overlap for certain.
    let (rig, names, expected) = rig(40).await;
    let mut w = Workers::start(&rig.plan_path, &pg, rig.dir.path(), 1);
    let codes = wait_all(&mut w.children, Duration::from_secs(180)).await;
    assert_eq!(codes, vec![0], "{}", w.stderr(0));
    assert_eq!(lost_and_duplicated(&rig, &names, &expected), (0, 0));

    // The most Graph requests the emulator saw in flight at once while verify ran: one
    // mailbox's verify makes one request at a time, so two or more means several mailboxes.
    let inspect = rig.emulator.inspect();
    let peak = Arc::new(AtomicUsize::new(0));
    let watcher = {
        let peak = Arc::clone(&peak);
        tokio::spawn(async move {
            for n in 1..=4 {
                inspect.wait_in_flight(n).await;
                peak.store(n, Ordering::SeqCst);
            }
        })
    };
    let reports = rig.dir.path().join("reports");
    std::fs::create_dir(&reports).unwrap();
    let (code, out, err) = run_within(
        &rig.plan_path,
        &pg,
        &[
            "verify",
            "--deep",
            "--concurrency",
            "4",
            "--report-dir",
            reports.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    )
    .await;
    watcher.abort();
    assert_eq!(code, 0, "verify --deep:\n{out}\n{err}");
    let json = std::fs::read(reports.join("mailferry-verify.json")).unwrap();
    let report: serde_json::Value = serde_json::from_slice(&json).unwrap();
    let verdicts = report["mailboxes"].as_array().unwrap();
    assert_eq!(verdicts.len(), MAILBOXES);
    for m in verdicts {
        assert_eq!(m["verdict"], "perfect", "{m:#}");
        let done: u64 = m["folders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["ledger_done"].as_u64().unwrap())
            .sum();
        assert_eq!(done as usize, 2 * PER_FOLDER, "{m:#}");
    }
    assert!(
        peak.load(Ordering::SeqCst) >= 2,
        "verify never had two mailboxes' requests in flight (peak {})",
        peak.load(Ordering::SeqCst)
    );
}
