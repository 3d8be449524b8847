//! A Retry-After outlives the process (issue 13.4): runs interrupted during a throttled pause and
//! started again must not come back before the deadline the first 429 set (Exchange answers an
//! early return with a longer penalty, and restarts used to keep doubling it); a wait longer
//! than `max_throttle_wait_secs` stops the mailbox with that reason instead of coming back early.

use std::time::Duration;

use mailferry::emulator::{EmulatorConfig, Inspector};
use mailferry::engine::MigrateOptions;

use crate::migrate::{Rig, generated, write_maildir};

const MESSAGES: usize = 20;

/// A rig whose emulator mailbox allows 30 requests per `window_secs`: the first run is throttled part-way
/// (20 messages take two requests each), the rest fits in one window. One request at a time, so
/// exactly one request meets the first 429.
async fn throttled_rig(window_secs: f64, extra_plan: &str) -> Rig {
    let mut cfg = EmulatorConfig::default();
    cfg.limits.requests_per_window = 30;
    cfg.limits.request_window_secs = window_secs;
    let rig = Rig::new(&["tom"], cfg).await;
    let plan = std::fs::read_to_string(&rig.plan_path).unwrap();
    std::fs::write(
        &rig.plan_path,
        format!("{plan}concurrency_per_mailbox = 1\n{extra_plan}"),
    )
    .unwrap();
    let msgs = (0..MESSAGES).map(|i| (generated(i, 600), "S")).collect();
    write_maildir(&rig.tree("tom"), &[("", msgs)]);
    rig
}

fn recorded_deadlines(rig: &Rig) -> i64 {
    let plan = mailferry::plan::Plan::load(&rig.plan_path).unwrap();
    let c = rusqlite::Connection::open(plan.default_state_path()).unwrap();
    c.query_row("SELECT count(*) FROM throttle", [], |r| r.get(0))
        .unwrap_or(0)
}

/// Graph requests the emulator saw for the mailbox (token requests not counted).
fn mailbox_requests(insp: &Inspector) -> usize {
    insp.requests()
        .iter()
        .filter(|r| r.path.contains("/users/"))
        .count()
}

/// Runs `migrate` until the first 429 has been answered and its deadline recorded, then drops the
/// run (as a kill would end it).
async fn run_until_throttled(rig: &Rig) {
    let insp = rig.emulator.inspect();
    let watch = async {
        while insp.counters().throttled == 0 || recorded_deadlines(rig) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::select! {
        s = rig.migrate(MigrateOptions::default()) => panic!("the run was never throttled: {:?}", s.mailboxes),
        () = watch => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_during_a_throttled_pause_never_come_back_early() {
    let rig = throttled_rig(4.0, "").await;
    let insp = rig.emulator.inspect();
    run_until_throttled(&rig).await;
    assert_eq!(insp.counters().throttled, 1);
    let sent = mailbox_requests(&insp);
    // Four more runs, each ended during the pause: none may send the mailbox anything.
    for _ in 0..4 {
        let _ = tokio::time::timeout(
            Duration::from_millis(250),
            rig.migrate(MigrateOptions::default()),
        )
        .await;
    }
    assert_eq!(
        insp.counters().throttled,
        1,
        "a restarted run came back before the Retry-After: the penalty grew"
    );
    assert_eq!(
        mailbox_requests(&insp),
        sent,
        "nothing is sent during the pause"
    );
    // A run that waits out the deadline finishes the mailbox (its own, later 429s are honoured
    // like any other), every message exactly once.
    let last = rig.migrate(MigrateOptions::default()).await;
    assert!(!last.has_failures(), "{:?}", last.mailboxes);
    let mut raws: Vec<Vec<u8>> = rig.items("tom").into_iter().map(|(_, r)| r).collect();
    assert_eq!(raws.len(), MESSAGES);
    raws.sort();
    raws.dedup();
    assert_eq!(raws.len(), MESSAGES, "a message was written twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_longer_than_the_maximum_stops_the_mailbox_with_the_reason() {
    let rig = throttled_rig(60.0, "max_throttle_wait_secs = 1\n").await;
    let insp = rig.emulator.inspect();
    let first = rig.migrate(MigrateOptions::default()).await;
    let tom = &first.mailboxes[0];
    assert_eq!(tom.status, "failed", "{tom:?}");
    let reason = tom.error.as_deref().unwrap_or_default();
    assert!(
        reason.contains("max_throttle_wait_secs"),
        "the reason names the setting: {reason}"
    );
    // The next run knows the deadline: it stops at once, sending nothing.
    let (sent, throttled) = (mailbox_requests(&insp), insp.counters().throttled);
    let second = rig.migrate(MigrateOptions::default()).await;
    assert_eq!(second.mailboxes[0].status, "failed");
    assert_eq!(mailbox_requests(&insp), sent);
    assert_eq!(insp.counters().throttled, throttled);
    // verify beside migrate honours the same deadline: it does not query the mailbox either.
    let plan = mailferry::plan::Plan::load(&rig.plan_path).unwrap();
    let ledger = mailferry::ledger::Ledger::open(&plan.default_state_path()).unwrap();
    let selected = plan.select(&[]).unwrap();
    let report = mailferry::engine::verify::verify(&plan, Some(&ledger), &selected, true, 1).await;
    let m = &report.mailboxes[0];
    assert_eq!(m.verdict, "failed", "{m:#?}");
    assert!(
        m.reasons
            .iter()
            .any(|r| r.contains("max_throttle_wait_secs")),
        "{:?}",
        m.reasons
    );
    assert_eq!(mailbox_requests(&insp), sent);
}
