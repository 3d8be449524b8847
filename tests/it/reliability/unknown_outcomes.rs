//! Writes whose outcome is unknown stay unknown until the destination answers (issue 13.1):
//! importMime commits the item, its response is lost, and the look-up that should find the item
//! meets a run of 503s. The row must stay `sending` (never `failed`, which the next run would
//! write again), and the mailbox must end with the message exactly once.

use mailferry::emulator::{EmulatorConfig, FaultKind, FaultRule, Latency};
use mailferry::engine::MigrateOptions;

use crate::migrate::{Rig, generated, write_maildir};

/// States of every ledger row, read straight from the ledger file.
fn row_states(rig: &Rig) -> Vec<(String, Option<String>)> {
    let plan = mailferry::plan::Plan::load(&rig.plan_path).unwrap();
    let c = rusqlite::Connection::open(plan.default_state_path()).unwrap();
    let mut st = c
        .prepare("SELECT state, error_class FROM messages ORDER BY id")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_import_whose_lookup_meets_503s_stays_unknown_and_is_never_written_twice() {
    let rig = Rig::new(&["ida"], EmulatorConfig::default()).await;
    write_maildir(&rig.tree("ida"), &[("", vec![(generated(1, 800), "S")])]);
    let insp = rig.emulator.inspect();
    insp.add_fault(FaultRule::new(Some("POST"), "/importMime", FaultKind::LostResponse).times(1));
    // Every look-up (GET .../messages?$filter=...) answers 503 for a while; a short Retry-After
    // keeps the test fast and is honoured like any other.
    let mut unavailable =
        FaultRule::new(Some("GET"), "/messages", FaultKind::ServiceUnavailable).times(40);
    unavailable.retry_after = Some(0.01);
    insp.add_fault(unavailable);

    let first = rig.migrate(MigrateOptions::default()).await;
    assert_eq!(rig.items("ida").len(), 1, "the lost import was stored once");
    assert_eq!(
        row_states(&rig),
        vec![("sending".to_owned(), Some("ambiguous".to_owned()))],
        "an unanswered look-up leaves the outcome unknown: {:?}",
        first.mailboxes[0]
    );
    let second = rig.migrate(MigrateOptions::default()).await;
    assert_eq!(
        rig.items("ida").len(),
        1,
        "the second run must not write the message again: {:?}",
        second.mailboxes[0]
    );
    assert_ne!(row_states(&rig)[0].0, "failed");

    // Once the destination answers, the row resolves to the item already there.
    insp.clear_faults();
    let third = rig.migrate(MigrateOptions::default()).await;
    assert_eq!(rig.items("ida").len(), 1);
    assert_eq!(row_states(&rig)[0].0, "done", "{:?}", third.mailboxes[0]);
    assert!(
        insp.fault_log()
            .iter()
            .any(|f| f.kind == FaultKind::ServiceUnavailable),
        "the look-up met the 503s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_after_a_crash_looks_up_its_open_writes_concurrently() {
    const OPEN: usize = 8;
    // Every request answered takes 40 ms at the destination, so concurrent look-ups overlap there.
    let cfg = EmulatorConfig {
        latency: Latency {
            fixed_ms: 40,
            jitter_ms: 0,
        },
        ..EmulatorConfig::default()
    };
    let rig = Rig::new(&["jo"], cfg).await;
    let msgs = (0..OPEN).map(|i| (generated(i, 700), "S")).collect();
    write_maildir(&rig.tree("jo"), &[("", msgs)]);
    let insp = rig.emulator.inspect();
    // Every write is stored but unanswered, and no look-up gets an answer: all rows stay open.
    insp.add_fault(FaultRule::new(
        Some("POST"),
        "/importMime",
        FaultKind::LostResponse,
    ));
    let mut unavailable = FaultRule::new(Some("GET"), "/messages", FaultKind::ServiceUnavailable);
    unavailable.retry_after = Some(0.001);
    insp.add_fault(unavailable);
    rig.migrate(MigrateOptions::default()).await;
    let open = row_states(&rig)
        .iter()
        .filter(|(s, _)| s == "sending")
        .count();
    assert_eq!(open, OPEN);

    // The next run resolves the open writes: its look-ups must overlap (no other request of the
    // mailbox is in flight while it resolves), not run one after the other.
    insp.clear_faults();
    let overlapped = tokio::select! {
        s = rig.migrate(MigrateOptions::default()) => panic!("the look-ups never overlapped: {:?}", s.mailboxes),
        () = insp.wait_in_flight(2) => true,
    };
    assert!(overlapped);
    let done = rig.migrate(MigrateOptions::default()).await;
    assert!(!done.has_failures(), "{:?}", done.mailboxes);
    assert_eq!(
        rig.items("jo").len(),
        OPEN,
        "every open write resolved, none repeated"
    );
    assert!(row_states(&rig).iter().all(|(s, _)| s == "done"));
}
