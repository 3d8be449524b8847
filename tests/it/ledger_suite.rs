//! The ledger's behaviour through its public [`Ledger`] API, written once and run against both
//! backends: `ledger_suite::sqlite::<test>` on a SQLite file in a temp dir, and
//! `ledger_suite::postgres::<test>` on a private PostgreSQL server (fleet mode) with the test's
//! mailboxes registered as a plan and the first one's lease claimed, as a worker's pass records.
//!
//! Tests that only make sense for SQLite (file modes, the schema version pragma, the run lock,
//! the connection's blocking section) stay next to the SQLite code in `src/ledger/tests.rs`;
//! PostgreSQL's own (fences, leases, its schema tracks) are in `ledger_pg*`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::DateTime;
use mailferry::ledger::postgres::{Clock, PgLedger, PgUrl, PlanIdentity, PlanMailbox, UrlOrigin};
use mailferry::ledger::{Ledger, MessageState, NewMessage};
use mailferry::model::{ContentHash, Flags, Uid, UidValidity};

use crate::support::postgres::{PASSWORD, Postgres};

/// Where a test's ledger lives.
enum Backend {
    Sqlite(tempfile::TempDir),
    Postgres(Postgres),
}

impl Backend {
    fn sqlite() -> Backend {
        Backend::Sqlite(tempfile::tempdir().unwrap())
    }

    fn postgres() -> Backend {
        Backend::Postgres(Postgres::start())
    }

    /// A fresh ledger recording for `mailboxes[0]`. On PostgreSQL the plan of `mailboxes` (all
    /// to `destination`) is registered and the first mailbox's lease claimed: fleet mode knows
    /// every mailbox from the plan and records only under a lease.
    async fn open(&self, mailboxes: &[&str], destination: &str) -> Ledger {
        match self {
            Backend::Sqlite(_) => self.reopen().await,
            Backend::Postgres(pg) => {
                let db = connect(pg).await;
                db.register_worker("suite-host", 4242).await.unwrap();
                db.register_plan(&plan(mailboxes, destination))
                    .await
                    .unwrap();
                let lease = db.claim(30_000, None).await.unwrap().unwrap();
                assert_eq!(lease.mailbox, mailboxes[0]);
                Ledger::postgres(Arc::new(db)).for_lease(lease).unwrap()
            }
        }
    }

    /// A new handle on the same ledger (a new SQLite connection, a new PostgreSQL session
    /// without a lease), as a later run opens it.
    async fn reopen(&self) -> Ledger {
        match self {
            Backend::Sqlite(dir) => Ledger::open(&dir.path().join("state.db")).unwrap(),
            Backend::Postgres(pg) => Ledger::postgres(Arc::new(connect(pg).await)),
        }
    }
}

async fn connect(pg: &Postgres) -> PgLedger {
    let url = PgUrl::parse(&pg.url(), UrlOrigin::CommandLine, Some(PASSWORD.into())).unwrap();
    PgLedger::connect(&url, Clock::Database).await.unwrap()
}

fn plan(mailboxes: &[&str], destination: &str) -> PlanIdentity {
    PlanIdentity {
        source: "imap imap.old.example:993 tls".into(),
        destinations: BTreeMap::from([(destination.to_owned(), "graph contoso".to_owned())]),
        mailboxes: mailboxes
            .iter()
            .map(|m| {
                (
                    (*m).to_owned(),
                    PlanMailbox {
                        destination: destination.into(),
                        destination_user: (*m).to_owned(),
                        source_host: None,
                    },
                )
            })
            .collect(),
    }
}

/// Each test below, once per backend, under the name of the backend's module.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::sqlite()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::postgres()).await;
                }
            )*
        }
    };
}

suite!(
    message_lifecycle_and_progress,
    uidvalidity_change_claims_each_old_row_once,
    a_recheck_mark_lasts_until_cleared_and_only_done_rows_are_due,
    failure_groups_ignore_request_ids_but_rows_keep_them,
    throttle_deadlines_survive_reopening_and_only_move_forward,
    the_source_total_is_partial_until_every_folder_is_listed,
    a_mailbox_whose_folder_list_never_completed_is_partial,
);

fn uv(n: u32) -> UidValidity {
    UidValidity::new(n).unwrap()
}

fn new(uid: u32, size: u64) -> NewMessage {
    NewMessage {
        uid: Uid::new(uid).unwrap(),
        size,
        message_id: Some(format!("<{uid}@x>")),
        internal_date: DateTime::parse_from_rfc3339("2024-01-02T03:04:05+01:00").unwrap(),
        flags: Flags::from_atoms(["\\Seen"]),
    }
}

fn to_ms(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).unwrap().as_millis()
}

async fn message_lifecycle_and_progress(b: Backend) {
    let l = b.open(&["a@x"], "exo").await;
    let run = l.start_run("migrate").unwrap();
    let mb = l.mailbox("a@x", "exo").unwrap();
    assert_eq!(l.mailbox("a@x", "exo").unwrap(), mb);
    let f = l.folder(mb, "INBOX").unwrap();
    l.insert_pending(f.id, uv(7), &[new(1, 100), new(2, 200), new(3, 300)])
        .unwrap();
    // Inserting again is a no-op, never a duplicate row.
    l.insert_pending(f.id, uv(7), &[new(1, 100)]).unwrap();
    let rows = l.folder_messages(f.id, uv(7)).unwrap();
    assert_eq!(rows.len(), 3);
    let r1 = &rows[&Uid::new(1).unwrap()];
    assert_eq!(r1.state, MessageState::Pending);
    let h = ContentHash::of(b"one");
    l.mark_sending(&[(r1.id, h)], run).unwrap();
    let r1b = &l.folder_messages(f.id, uv(7)).unwrap()[&Uid::new(1).unwrap()];
    assert_eq!(
        (r1b.state, r1b.attempts, r1b.sha256),
        (MessageState::Sending, 1, Some(h))
    );
    l.mark_done(&[(r1.id, "dest-1".into(), Flags::default())], run)
        .unwrap();
    let r2 = &rows[&Uid::new(2).unwrap()];
    l.mark_state(
        r2.id,
        MessageState::Skipped,
        Some(("too large", "rejected")),
        run,
    )
    .unwrap();
    let p = &l.progress().unwrap()[0];
    assert_eq!(
        (p.done, p.skipped, p.pending, p.bytes_done, p.bytes_total),
        (1, 1, 1, 100, 600)
    );
    let g = l.failure_groups().unwrap();
    assert_eq!(g.len(), 1);
    assert_eq!(
        (g[0].class.as_str(), g[0].reason.as_str(), g[0].count),
        ("rejected", "too large", 1)
    );
}

async fn uidvalidity_change_claims_each_old_row_once(b: Backend) {
    let l = b.open(&["a@x"], "exo").await;
    let run = l.start_run("migrate").unwrap();
    let mb = l.mailbox("a@x", "exo").unwrap();
    let f = l.folder(mb, "INBOX").unwrap();
    l.insert_pending(f.id, uv(1), &[new(1, 10), new(2, 10)])
        .unwrap();
    let rows = l.folder_messages(f.id, uv(1)).unwrap();
    let same = ContentHash::of(b"twin");
    for (i, r) in rows.values().enumerate() {
        l.mark_sending(&[(r.id, same)], run).unwrap();
        l.mark_done(&[(r.id, format!("d{i}"), Flags::default())], run)
            .unwrap();
    }
    // Two identical messages under the new UIDVALIDITY claim the two old rows, a third finds none.
    let a = l
        .claim_by_hash(f.id, uv(2), Uid::new(5).unwrap(), &same)
        .unwrap()
        .unwrap();
    let c = l
        .claim_by_hash(f.id, uv(2), Uid::new(6).unwrap(), &same)
        .unwrap()
        .unwrap();
    assert_ne!(a.dest_id, c.dest_id);
    assert!(
        l.claim_by_hash(f.id, uv(2), Uid::new(7).unwrap(), &same)
            .unwrap()
            .is_none()
    );
    let now = l.folder_messages(f.id, uv(2)).unwrap();
    assert_eq!(now.len(), 2);
    assert!(now.values().all(|r| r.state == MessageState::Done));
}

async fn a_recheck_mark_lasts_until_cleared_and_only_done_rows_are_due(b: Backend) {
    let l = b.open(&["a@x"], "exo").await;
    let run = l.start_run("migrate").unwrap();
    let mb = l.mailbox("a@x", "exo").unwrap();
    let f = l.folder(mb, "INBOX").unwrap();
    l.insert_pending(f.id, uv(1), &[new(1, 10), new(2, 10)])
        .unwrap();
    let rows = l.folder_messages(f.id, uv(1)).unwrap();
    let (a, c) = (&rows[&Uid::new(1).unwrap()], &rows[&Uid::new(2).unwrap()]);
    l.mark_recheck(&[a.id, c.id]).unwrap();
    l.mark_done(&[(a.id, "d1".into(), Flags::default())], run)
        .unwrap();
    let due = l.recheck_rows(f.id, uv(1)).unwrap();
    assert_eq!(
        due.iter().map(|r| r.id).collect::<Vec<_>>(),
        [a.id],
        "the second row is not done yet"
    );
    l.clear_recheck(a.id).unwrap();
    assert!(l.recheck_rows(f.id, uv(1)).unwrap().is_empty());
}

async fn failure_groups_ignore_request_ids_but_rows_keep_them(b: Backend) {
    let l = b.open(&["a@x"], "exo").await;
    let run = l.start_run("migrate").unwrap();
    let mb = l.mailbox("a@x", "exo").unwrap();
    let f = l.folder(mb, "INBOX").unwrap();
    l.insert_pending(f.id, uv(7), &[new(1, 10), new(2, 10)])
        .unwrap();
    let rows = l.folder_messages(f.id, uv(7)).unwrap();
    let reasons = [
        "create for a@x: HTTP 400 ErrorInvalidRequest [client-request-id 1b4e28ba-2fa1-11d2-883f-0016d3cca427, request-id r-1] after 1 attempt(s)",
        "create for a@x: HTTP 400 ErrorInvalidRequest [client-request-id 9e107d9d-372b-4f1c-9ab9-2d3c1e0f0a11, request-id r-2] after 1 attempt(s)",
    ];
    for (uid, reason) in [(1, reasons[0]), (2, reasons[1])] {
        let r = &rows[&Uid::new(uid).unwrap()];
        l.mark_state(r.id, MessageState::Failed, Some((reason, "item")), run)
            .unwrap();
    }
    let g = l.failure_groups().unwrap();
    assert_eq!(g.len(), 1, "{g:?}");
    assert_eq!(g[0].count, 2);
    assert_eq!(
        g[0].reason,
        "create for a@x: HTTP 400 ErrorInvalidRequest after 1 attempt(s)"
    );
    let kept = l.folder_messages(f.id, uv(7)).unwrap();
    assert_eq!(
        kept[&Uid::new(2).unwrap()].last_error.as_deref(),
        Some(reasons[1])
    );
}

async fn throttle_deadlines_survive_reopening_and_only_move_forward(b: Backend) {
    let later = SystemTime::now() + Duration::from_secs(300);
    {
        let l = b.open(&["a@x"], "exo").await;
        assert_eq!(l.throttle_deadline("exo", "a@x").unwrap(), None);
        l.set_throttle_deadline("exo", "a@x", later).unwrap();
        // An earlier deadline never shortens a recorded one.
        l.set_throttle_deadline("exo", "a@x", SystemTime::now() + Duration::from_secs(1))
            .unwrap();
        // A deadline in the past is no deadline.
        l.set_throttle_deadline("exo", "b@x", SystemTime::now() - Duration::from_secs(1))
            .unwrap();
    }
    let l = b.reopen().await;
    let got = l.throttle_deadline("exo", "a@x").unwrap().unwrap();
    assert_eq!(to_ms(got), to_ms(later));
    assert_eq!(l.throttle_deadline("exo", "b@x").unwrap(), None);
    assert_eq!(l.throttle_deadline("other", "a@x").unwrap(), None);
}

async fn the_source_total_is_partial_until_every_folder_is_listed(b: Backend) {
    let l = b.open(&["ann@example.org"], "graph").await;
    let mb = l.mailbox("ann@example.org", "graph").unwrap();
    l.set_source_folders(mb, 3).unwrap();
    let inbox = l.folder(mb, "INBOX").unwrap();
    l.set_folder_source_total(inbox.id, 40, Some(4000)).unwrap();
    let p = &l.progress().unwrap()[0];
    assert_eq!(p.source_messages, 40);
    assert_eq!(p.source_bytes, 4000);
    assert_eq!(p.folders_listed, 1);
    assert_eq!(p.source_folders, Some(3));
    assert!(p.source_total_partial());

    for (name, n) in [("Sent", 5), ("Archive", 7)] {
        let f = l.folder(mb, name).unwrap();
        l.set_folder_source_total(f.id, n, Some(n * 100)).unwrap();
    }
    let p = &l.progress().unwrap()[0];
    assert_eq!(p.source_messages, 52);
    assert_eq!(p.source_bytes, 5200);
    assert!(!p.source_total_partial());

    // A count without bytes keeps the bytes of the last full listing.
    l.set_folder_source_total(inbox.id, 41, None).unwrap();
    let p = &l.progress().unwrap()[0];
    assert_eq!((p.source_messages, p.source_bytes), (53, 5200));
}

async fn a_mailbox_whose_folder_list_never_completed_is_partial(b: Backend) {
    let l = b.open(&["bob@example.org"], "graph").await;
    l.mailbox("bob@example.org", "graph").unwrap();
    let p = &l.progress().unwrap()[0];
    assert_eq!(p.source_folders, None);
    assert!(p.source_total_partial());
}
