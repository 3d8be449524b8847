//! New writes are not held behind the resolution of other folders' in-doubt writes (issue 13.5).
//! A killed run leaves folder A (INBOX) with rows `sending`; folder Zeta has new messages. The next
//! run must resolve A's rows while Zeta's new messages are written: with A's look-ups made slow at
//! the destination (a latency fault on A's message route only), every write of Zeta reaches the
//! emulator before A's last look-up is answered. The end state is exactly once, verify --deep
//! perfect.

use mailferry::emulator::{EmulatorConfig, FaultKind, FaultRule};
use mailferry::engine::{self, MigrateOptions};
use mailferry::ledger::Ledger;
use mailferry::plan::Plan;

use crate::migrate::{Rig, generated, write_maildir};

const A_MESSAGES: usize = 3;
const B_MESSAGES: usize = 4;

/// (state, source folder) of every ledger row, read straight from the ledger file.
fn rows(rig: &Rig) -> Vec<(String, String)> {
    let plan = Plan::load(&rig.plan_path).unwrap();
    let c = rusqlite::Connection::open(plan.default_state_path()).unwrap();
    let mut st = c
        .prepare(
            "SELECT m.state, f.source_name FROM messages m JOIN folders f ON f.id = m.folder_id
             ORDER BY m.id",
        )
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// The destination folder id the ledger recorded for a source folder.
fn dest_id(rig: &Rig, source: &str) -> String {
    let plan = Plan::load(&rig.plan_path).unwrap();
    let c = rusqlite::Connection::open(plan.default_state_path()).unwrap();
    c.query_row(
        "SELECT dest_id FROM folders WHERE source_name = ?1",
        [source],
        |r| r.get(0),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_writes_of_other_folders_do_not_wait_for_in_doubt_rows() {
    let rig = Rig::new(&["lee"], EmulatorConfig::default()).await;
    let a: Vec<Vec<u8>> = (0..A_MESSAGES).map(|i| generated(i, 600)).collect();
    write_maildir(
        &rig.tree("lee"),
        &[("", a.iter().map(|m| (m.clone(), "S")).collect())],
    );
    let insp = rig.emulator.inspect();

    // The killed run: every import of A is stored but unanswered, and no look-up is answered,
    // so A's rows stay `sending` (the state a SIGKILL mid-write leaves).
    insp.add_fault(FaultRule::new(
        Some("POST"),
        "/importMime",
        FaultKind::LostResponse,
    ));
    let mut unavailable = FaultRule::new(Some("GET"), "/messages", FaultKind::ServiceUnavailable);
    unavailable.retry_after = Some(0.001);
    insp.add_fault(unavailable);
    rig.migrate(MigrateOptions::default()).await;
    insp.clear_faults();
    let states = rows(&rig);
    assert_eq!(states.len(), A_MESSAGES);
    assert!(
        states.iter().all(|(s, _)| s == "sending"),
        "the first run leaves A in doubt: {states:?}"
    );

    // Meanwhile folder Zeta receives new mail.
    let b: Vec<Vec<u8>> = (0..B_MESSAGES).map(|i| generated(100 + i, 700)).collect();
    write_maildir(
        &rig.tree("lee"),
        &[("Zeta", b.iter().map(|m| (m.clone(), "S")).collect())],
    );
    // A's look-ups (GET on A's destination folder only) take 1.5 s each at the destination.
    let inbox = dest_id(&rig, "INBOX");
    let mut slow = FaultRule::new(
        Some("GET"),
        &format!("mailFolders/{inbox}/messages"),
        FaultKind::Latency,
    );
    slow.latency_ms = Some(1500);
    insp.add_fault(slow);
    let before = insp.requests().len();

    let second = rig.migrate(MigrateOptions::default()).await;
    assert!(!second.has_failures(), "{:?}", second.mailboxes);
    let log = &insp.requests()[before..];
    let a_lookups: Vec<usize> = log
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            r.method == "GET" && r.path.contains(&format!("mailFolders/{inbox}/messages"))
        })
        .map(|(i, _)| i)
        .collect();
    let b_writes: Vec<usize> = log
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            r.method == "POST" && r.path.ends_with("importMime") && !r.path.contains(&inbox)
        })
        .map(|(i, _)| i)
        .collect();
    assert!(
        insp.fault_log()
            .iter()
            .any(|f| f.kind == FaultKind::Latency),
        "A's look-ups went through the slow route"
    );
    assert_eq!(b_writes.len(), B_MESSAGES, "B's messages written once each");
    assert!(!a_lookups.is_empty(), "A's rows were looked up");
    let last_lookup = *a_lookups.iter().max().unwrap();
    let last_write = *b_writes.iter().max().unwrap();
    assert!(
        last_write < last_lookup,
        "B's writes (log positions {b_writes:?}) must reach the destination while A's look-ups \
         (answered at {a_lookups:?}) are resolved, not after them"
    );

    // Exactly once: A's in-doubt rows resolved to the items the killed run stored, B copied.
    let states = rows(&rig);
    assert!(states.iter().all(|(s, _)| s == "done"), "{states:?}");
    let address = "lee@contoso.example";
    let view = insp.mailbox(address).unwrap();
    assert_eq!(
        view.items_in("Inbox").len(),
        A_MESSAGES,
        "no second copy in A"
    );
    assert_eq!(view.items_in("Zeta").len(), B_MESSAGES);
    let plan = Plan::load(&rig.plan_path).unwrap();
    let ledger = Ledger::open(&plan.default_state_path()).unwrap();
    let selected = plan.select(&[]).unwrap();
    let report = engine::verify::verify(&plan, Some(&ledger), &selected, true, 1).await;
    assert!(report.perfect, "{:#?}", report.mailboxes);
}
