//! The PostgreSQL ledger behaves as the SQLite ledger: one sequence of operations is run on both
//! (a SQLite file, and a real private PostgreSQL with a registered plan and claimed leases) and
//! every result is compared. Row ids may differ between the backends, so rows are compared by
//! their natural keys (folder name, UIDVALIDITY, UID) with ids blanked. The fence on these
//! writes and the fleet's own summaries are tested in `ledger_pg_fleet`, with the helpers here.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use chrono::DateTime;
use mailferry::ledger::postgres::{Clock, PgLedger, PgUrl, PlanIdentity, PlanMailbox, UrlOrigin};
use mailferry::ledger::{FolderRow, Ledger, MessageRow, MessageState, NewMessage, RunRow};
use mailferry::model::{ContentHash, Flags, Uid, UidValidity};

use crate::support::postgres::{PASSWORD, Postgres};

pub(crate) const LEASE_MS: i64 = 30_000;
pub(crate) const START_MS: i64 = 1_700_000_000_000;

pub(crate) async fn worker(pg: &Postgres, clock: &Clock) -> PgLedger {
    let url = PgUrl::parse(&pg.url(), UrlOrigin::CommandLine, Some(PASSWORD.into())).unwrap();
    let l = PgLedger::connect(&url, clock.clone()).await.unwrap();
    l.register_worker("parity-host", 4242).await.unwrap();
    l
}

/// Mailboxes `m0@x`, `m1@x`, both to destination `exo`.
pub(crate) fn plan() -> PlanIdentity {
    plan_of(2)
}

/// Mailboxes `m0@x` … `m{n-1}@x`, all to destination `exo`.
pub(crate) fn plan_of(n: usize) -> PlanIdentity {
    PlanIdentity {
        source: "imap imap.old.example:993 tls".into(),
        destinations: BTreeMap::from([("exo".to_owned(), "imap new.example:993".to_owned())]),
        mailboxes: (0..n)
            .map(|i| {
                (
                    format!("m{i}@x"),
                    PlanMailbox {
                        destination: "exo".into(),
                        destination_user: format!("m{i}@x"),
                        source_host: None,
                    },
                )
            })
            .collect(),
    }
}

pub(crate) fn v(n: u32) -> UidValidity {
    UidValidity::new(n).unwrap()
}

pub(crate) fn news(uids: impl IntoIterator<Item = u32>) -> Vec<NewMessage> {
    uids.into_iter()
        .map(|uid| NewMessage {
            uid: Uid::new(uid).unwrap(),
            size: 1000 + u64::from(uid),
            message_id: Some(format!("<{uid}@x>")),
            internal_date: DateTime::parse_from_rfc3339("2024-01-02T03:04:05+01:00").unwrap(),
            flags: Flags::from_atoms(["\\Seen"]),
        })
        .collect()
}

pub(crate) fn hash(n: u32) -> ContentHash {
    ContentHash::of(format!("message {n}").as_bytes())
}

fn no_id(rows: Vec<MessageRow>) -> Vec<MessageRow> {
    rows.into_iter()
        .map(|r| MessageRow { id: 0, ..r })
        .collect()
}

fn no_folder_ids(rows: Vec<FolderRow>) -> Vec<FolderRow> {
    rows.into_iter().map(|r| FolderRow { id: 0, ..r }).collect()
}

fn no_times(rows: Vec<RunRow>) -> Vec<RunRow> {
    rows.into_iter()
        .map(|r| RunRow {
            started_at: String::new(),
            finished_at: r.finished_at.map(|_| String::new()),
            worker: None,
            ..r
        })
        .collect()
}

/// The id of the row (folder, UIDVALIDITY, UID) on SQLite and on PostgreSQL.
async fn ids(
    sl: &Ledger,
    pg: &PgLedger,
    folders: (i64, i64),
    validity: u32,
    uid: u32,
) -> (i64, i64) {
    let u = Uid::new(uid).unwrap();
    let s = sl.folder_messages(folders.0, v(validity)).unwrap()[&u].id;
    let p = pg.folder_messages(folders.1, v(validity)).await.unwrap()[&u].id;
    (s, p)
}

async fn same_rows(sl: &Ledger, pg: &PgLedger, folders: (i64, i64), what: &str) {
    assert_eq!(
        no_id(pg.all_folder_messages(folders.1).await.unwrap()),
        no_id(sl.all_folder_messages(folders.0).unwrap()),
        "{what}"
    );
}

#[tokio::test]
async fn the_same_operations_give_the_same_results_on_sqlite_and_postgresql() {
    let dir = tempfile::tempdir().unwrap();
    let sl = Ledger::open(&dir.path().join("state.db")).unwrap();
    let pg_server = Postgres::start();
    let clock = Clock::manual(START_MS);
    let (a, b) = (
        worker(&pg_server, &clock).await,
        worker(&pg_server, &clock).await,
    );
    a.register_plan(&plan()).await.unwrap();
    let la = a.claim(LEASE_MS, None).await.unwrap().unwrap();
    let lb = b.claim(LEASE_MS, None).await.unwrap().unwrap();
    assert_eq!((la.mailbox.as_str(), lb.mailbox.as_str()), ("m0@x", "m1@x"));
    let (ma, mb) = (
        sl.mailbox("m0@x", "exo").unwrap(),
        sl.mailbox("m1@x", "exo").unwrap(),
    );

    // Runs, in the same order on both: their ids (and so `last_run`) match.
    let r1 = (
        sl.start_run("migrate").unwrap(),
        a.start_run("migrate").await.unwrap(),
    );
    let r2 = (
        sl.start_run("migrate").unwrap(),
        b.start_run("migrate").await.unwrap(),
    );
    assert_eq!((r1.0, r2.0), (r1.1, r2.1));

    // Folders.
    let inbox = (
        sl.folder(ma, "INBOX").unwrap(),
        a.folder(&la, "INBOX").await.unwrap(),
    );
    let sent = (
        sl.folder(ma, "Sent").unwrap(),
        a.folder(&la, "Sent").await.unwrap(),
    );
    let b_inbox = (
        sl.folder(mb, "INBOX").unwrap(),
        b.folder(&lb, "INBOX").await.unwrap(),
    );
    assert_eq!(
        FolderRow {
            id: 0,
            ..inbox.1.clone()
        },
        FolderRow {
            id: 0,
            ..inbox.0.clone()
        }
    );
    let (fi, fs, fb) = (
        (inbox.0.id, inbox.1.id),
        (sent.0.id, sent.1.id),
        (b_inbox.0.id, b_inbox.1.id),
    );

    // insert_pending, twice over overlapping UIDs: known rows are kept.
    for (f, validity, uids, pg, lease) in [
        (fi, 7, 1..=6, &a, &la),
        (fi, 7, 1..=7, &a, &la),
        (fs, 3, 1..=2, &a, &la),
        (fb, 1, 1..=3, &b, &lb),
    ] {
        sl.insert_pending(f.0, v(validity), &news(uids.clone()))
            .unwrap();
        pg.insert_pending(lease, f.1, v(validity), &news(uids))
            .await
            .unwrap();
    }
    same_rows(&sl, &a, fi, "after insert_pending").await;
    let id = async |uid| ids(&sl, &a, fi, 7, uid).await;
    let (i1, i2, i3, i4, i5, i6) = (
        id(1).await,
        id(2).await,
        id(3).await,
        id(4).await,
        id(5).await,
        id(6).await,
    );

    // pending -> sending -> done, failed, skipped.
    let seen = Flags::from_atoms(["\\Seen"]);
    sl.mark_sending(
        &[
            (i1.0, hash(1)),
            (i2.0, hash(2)),
            (i3.0, hash(3)),
            (i4.0, hash(4)),
        ],
        r1.0,
    )
    .unwrap();
    a.mark_sending(
        &la,
        &[
            (i1.1, hash(1)),
            (i2.1, hash(2)),
            (i3.1, hash(3)),
            (i4.1, hash(4)),
        ],
        r1.1,
    )
    .await
    .unwrap();
    let done = |ids: [i64; 3]| {
        ids.iter()
            .zip(1..)
            .map(|(id, n)| (*id, format!("d-{n}"), seen.clone()))
            .collect::<Vec<_>>()
    };
    sl.mark_done(&done([i1.0, i2.0, i3.0]), r1.0).unwrap();
    a.mark_done(&la, &done([i1.1, i2.1, i3.1]), r1.1)
        .await
        .unwrap();
    let failed = (
        "Graph 503: service unavailable [request-id 1b2c]",
        "transient",
    );
    let failed2 = (
        "Graph 503: service unavailable [request-id 9f8e]",
        "transient",
    );
    sl.mark_state(i4.0, MessageState::Failed, Some(failed), r1.0)
        .unwrap();
    a.mark_state(&la, i4.1, MessageState::Failed, Some(failed), r1.1)
        .await
        .unwrap();
    sl.mark_state(
        i5.0,
        MessageState::Skipped,
        Some(("too large", "size")),
        r1.0,
    )
    .unwrap();
    a.mark_state(
        &la,
        i5.1,
        MessageState::Skipped,
        Some(("too large", "size")),
        r1.1,
    )
    .await
    .unwrap();
    for (uid, reason) in [(1, failed), (2, failed2)] {
        let (s, p) = ids(&sl, &b, fb, 1, uid).await;
        sl.mark_state(s, MessageState::Failed, Some(reason), r2.0)
            .unwrap();
        b.mark_state(&lb, p, MessageState::Failed, Some(reason), r2.1)
            .await
            .unwrap();
    }

    // set_flags, set_source_gone.
    let flagged = Flags::from_atoms(["\\Seen", "\\Flagged", "$Label1"]);
    sl.set_flags(i1.0, &flagged).unwrap();
    a.set_flags(&la, i1.1, &flagged).await.unwrap();
    sl.set_source_gone(fi.0, &[i6.0, i5.0]).unwrap();
    a.set_source_gone(&la, fi.1, &[i6.1, i5.1]).await.unwrap();
    sl.set_source_gone(fi.0, &[i6.0]).unwrap();
    a.set_source_gone(&la, fi.1, &[i6.1]).await.unwrap();
    same_rows(&sl, &a, fi, "after flags and source_gone").await;

    // mark_recheck / recheck_rows / clear_recheck.
    sl.mark_recheck(&[i2.0, i3.0, i4.0]).unwrap();
    a.mark_recheck(&la, &[i2.1, i3.1, i4.1]).await.unwrap();
    let recheck = async || {
        let mut s = no_id(sl.recheck_rows(fi.0, v(7)).unwrap());
        let mut p = no_id(a.recheck_rows(fi.1, v(7)).await.unwrap());
        s.sort_by_key(|r| r.uid);
        p.sort_by_key(|r| r.uid);
        assert_eq!(p, s);
        s.iter().map(|r| r.uid.get()).collect::<Vec<_>>()
    };
    assert_eq!(recheck().await, [2, 3], "done rows only");
    sl.clear_recheck(i2.0).unwrap();
    a.clear_recheck(&la, i2.1).await.unwrap();
    assert_eq!(recheck().await, [3]);

    // UIDVALIDITY 7 -> 8: the new listing's pending rows, then claims by content hash.
    sl.insert_pending(fi.0, v(8), &news([10, 11])).unwrap();
    a.insert_pending(&la, fi.1, v(8), &news([10, 11]))
        .await
        .unwrap();
    for (uid, h, want) in [
        (10, hash(1), Some("d-1")),
        (11, hash(99), None),
        (12, hash(1), None),
    ] {
        let u = Uid::new(uid).unwrap();
        let s = sl.claim_by_hash(fi.0, v(8), u, &h).unwrap();
        let p = a.claim_by_hash(&la, fi.1, v(8), u, &h).await.unwrap();
        assert_eq!(
            p.clone().map(|r| MessageRow { id: 0, ..r }),
            s.map(|r| MessageRow { id: 0, ..r })
        );
        assert_eq!(
            p.as_ref().and_then(|r| r.dest_id.as_deref()),
            want,
            "uid {uid}"
        );
        if let Some(p) = p {
            assert_eq!(
                (p.id, p.uid_validity, p.uid),
                (i1.1, v(8), u),
                "the old row, re-keyed"
            );
        }
    }
    same_rows(&sl, &a, fi, "after claim_by_hash").await;

    // Folder target, sync point, clear.
    sl.set_folder_target(fi.0, "Inbox", "dest-inbox").unwrap();
    a.set_folder_target(&la, fi.1, "Inbox", "dest-inbox")
        .await
        .unwrap();
    sl.set_folder_sync_point(fi.0, v(8), Some(u64::from(u32::MAX) + 5), Some(12))
        .unwrap();
    a.set_folder_sync_point(&la, fi.1, v(8), Some(u64::from(u32::MAX) + 5), Some(12))
        .await
        .unwrap();
    sl.set_folder_sync_point(fs.0, v(3), None, Some(3)).unwrap();
    a.set_folder_sync_point(&la, fs.1, v(3), None, Some(3))
        .await
        .unwrap();
    sl.clear_folder_sync_point(fs.0).unwrap();
    a.clear_folder_sync_point(&la, fs.1).await.unwrap();
    let folders = no_folder_ids(a.folders(la.mailbox_id).await.unwrap());
    assert_eq!(folders, no_folder_ids(sl.folders(ma).unwrap()));
    assert_eq!(folders[0].highest_modseq, Some(u64::from(u32::MAX) + 5));
    assert_eq!(
        (folders[1].uid_validity, folders[1].uid_next),
        (Some(v(3)), None)
    );

    // Source totals: bytes from the rows when the listing gave none.
    sl.set_source_folders(ma, 3).unwrap();
    a.set_source_folders(&la, 3).await.unwrap();
    sl.set_folder_source_total(fi.0, 6, None).unwrap();
    a.set_folder_source_total(&la, fi.1, 6, None).await.unwrap();
    sl.set_folder_source_total(fs.0, 2, Some(500)).unwrap();
    a.set_folder_source_total(&la, fs.1, 2, Some(500))
        .await
        .unwrap();

    // Throttle deadlines round trip: only forward, the past is no deadline.
    let later = SystemTime::now() + Duration::from_secs(300);
    for (mailbox, until) in [
        ("m0@x", later),
        ("m0@x", SystemTime::now() + Duration::from_secs(1)),
        ("m1@x", SystemTime::now() - Duration::from_secs(1)),
    ] {
        sl.set_throttle_deadline("exo", mailbox, until).unwrap();
        b.set_throttle_deadline("exo", mailbox, until)
            .await
            .unwrap();
    }
    for (dest, mailbox) in [("exo", "m0@x"), ("exo", "m1@x"), ("other", "m0@x")] {
        assert_eq!(
            a.throttle_deadline(dest, mailbox).await.unwrap(),
            sl.throttle_deadline(dest, mailbox).unwrap(),
            "{dest} {mailbox}"
        );
    }
    let got = a.throttle_deadline("exo", "m0@x").await.unwrap().unwrap();
    assert!(got.duration_since(later).unwrap_or_else(|e| e.duration()) < Duration::from_millis(1));

    // Mailbox states and run ends.
    sl.set_mailbox_state(mb, r2.0, "failed", Some(("2 failed", "item")))
        .unwrap();
    b.set_mailbox_state(&lb, r2.1, "failed", Some(("2 failed", "item")))
        .await
        .unwrap();
    sl.finish_run(r1.0, "ok", "{}").unwrap();
    a.finish_run(r1.1, "ok", "{}").await.unwrap();

    // The summaries.
    let progress = a.progress().await.unwrap();
    assert_eq!(progress, sl.progress().unwrap());
    assert_eq!(progress.len(), 2);
    let p0 = &progress[0];
    assert_eq!(
        (p0.done, p0.failed, p0.skipped, p0.pending),
        (3, 1, 1, 5),
        "{p0:?}"
    );
    assert_eq!(
        (p0.source_gone, p0.folders_listed, p0.source_folders),
        (1, 2, Some(3))
    );
    assert_eq!(
        p0.source_bytes,
        500 + (1001 + 1002 + 1003 + 1004 + 1005) + 1007 + 1011
    );
    let groups = a.failure_groups().await.unwrap();
    assert_eq!(groups, sl.failure_groups().unwrap());
    assert_eq!(
        groups
            .iter()
            .map(|g| (g.mailbox.as_str(), g.count))
            .collect::<Vec<_>>(),
        [("m1@x", 2), ("m0@x", 1), ("m0@x", 1)],
        "reasons differing only by request id merge: {groups:?}"
    );
    for (s, p) in [(ma, la.mailbox_id), (mb, lb.mailbox_id)] {
        let strip = |v: Vec<mailferry::ledger::FolderCounts>| {
            v.into_iter()
                .map(|c| mailferry::ledger::FolderCounts { folder_id: 0, ..c })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            strip(a.folder_counts(p).await.unwrap()),
            strip(sl.folder_counts(s).unwrap())
        );
    }
    let runs = a.runs(10).await.unwrap();
    assert_eq!(no_times(runs.clone()), no_times(sl.runs(10).unwrap()));
    assert_eq!(
        no_times(a.runs(1).await.unwrap()),
        no_times(sl.runs(1).unwrap())
    );
    assert_eq!(runs[1].worker.as_deref(), Some(a.worker_id()));
    assert_eq!(runs[0].worker.as_deref(), Some(b.worker_id()));
    let sqlite_run = serde_json::to_string(&sl.runs(1).unwrap()[0]).unwrap();
    assert!(!sqlite_run.contains("worker"), "{sqlite_run}");
}
