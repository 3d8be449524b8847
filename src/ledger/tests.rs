//! Ledger unit tests on real SQLite files in a temp dir.

use std::os::unix::fs::PermissionsExt;

use chrono::DateTime;

use super::*;
use crate::model::{ContentHash, Flags, Uid};

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

#[test]
fn created_private_and_migrated_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.sqlite");
    let l = Ledger::open(&path).unwrap();
    drop(l);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // Re-opening does not re-run migrations (they would fail on existing tables).
    Ledger::open(&path).unwrap();
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.sqlite");
    let l = Ledger::open(&path).unwrap();
    l.with(|c| c.pragma_update(None, "user_version", 99))
        .unwrap();
    drop(l);
    assert!(matches!(
        Ledger::open(&path),
        Err(LedgerError::TooNew { found: 99, .. })
    ));
}

#[test]
fn message_lifecycle_and_progress() {
    let dir = tempfile::tempdir().unwrap();
    let l = Ledger::open(&dir.path().join("l.sqlite")).unwrap();
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

#[test]
fn uidvalidity_change_claims_each_old_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let l = Ledger::open(&dir.path().join("l.sqlite")).unwrap();
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
    let b = l
        .claim_by_hash(f.id, uv(2), Uid::new(6).unwrap(), &same)
        .unwrap()
        .unwrap();
    assert_ne!(a.dest_id, b.dest_id);
    assert!(
        l.claim_by_hash(f.id, uv(2), Uid::new(7).unwrap(), &same)
            .unwrap()
            .is_none()
    );
    let now = l.folder_messages(f.id, uv(2)).unwrap();
    assert_eq!(now.len(), 2);
    assert!(now.values().all(|r| r.state == MessageState::Done));
}

#[test]
fn second_lock_is_refused_until_the_first_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.sqlite");
    let first = Ledger::lock_run(&path).unwrap();
    assert!(matches!(
        Ledger::lock_run(&path),
        Err(LedgerError::Locked { .. })
    ));
    drop(first);
    Ledger::lock_run(&path).unwrap();
}

#[test]
fn a_recheck_mark_lasts_until_cleared_and_only_done_rows_are_due() {
    let dir = tempfile::tempdir().unwrap();
    let l = Ledger::open(&dir.path().join("l.sqlite")).unwrap();
    let run = l.start_run("migrate").unwrap();
    let mb = l.mailbox("a@x", "exo").unwrap();
    let f = l.folder(mb, "INBOX").unwrap();
    l.insert_pending(f.id, uv(1), &[new(1, 10), new(2, 10)])
        .unwrap();
    let rows = l.folder_messages(f.id, uv(1)).unwrap();
    let (a, b) = (&rows[&Uid::new(1).unwrap()], &rows[&Uid::new(2).unwrap()]);
    l.mark_recheck(&[a.id, b.id]).unwrap();
    l.mark_done(&[(a.id, "d1".into(), Flags::default())], run)
        .unwrap();
    let due = l.recheck_rows(f.id, uv(1)).unwrap();
    assert_eq!(
        due.iter().map(|r| r.id).collect::<Vec<_>>(),
        [a.id],
        "b is not done yet"
    );
    l.clear_recheck(a.id).unwrap();
    assert!(l.recheck_rows(f.id, uv(1)).unwrap().is_empty());
}

/// A ledger call that blocks (here: on the connection, held by another thread as a slow fsync
/// would hold it) must not stall the other tasks of its runtime worker. With one worker thread,
/// the ticker spawned just before the call can only run if the call hands the worker's tasks
/// over (`block_in_place`); the holder releases the connection once the ticker ran, or gives up
/// after 10 s, which fails the test.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_blocking_ledger_call_does_not_stall_its_worker() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(Ledger::open(&dir.path().join("l.sqlite")).unwrap());
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (tick_tx, tick_rx) = std::sync::mpsc::channel::<()>();
    let holder = {
        let ledger = Arc::clone(&ledger);
        std::thread::spawn(move || {
            let guard = ledger.conn();
            locked_tx.send(()).unwrap();
            let ticked = tick_rx
                .recv_timeout(std::time::Duration::from_secs(10))
                .is_ok();
            drop(guard);
            ticked
        })
    };
    locked_rx.recv().unwrap();
    let call = tokio::spawn(async move {
        // Spawned from the worker: it waits in this worker's own queue.
        tokio::spawn(async move {
            let _ = tick_tx.send(());
        });
        ledger.start_run("migrate")
    });
    call.await.unwrap().unwrap();
    assert!(
        holder.join().unwrap(),
        "the ticker never ran while the ledger call blocked"
    );
}

#[test]
fn failure_groups_ignore_request_ids_but_rows_keep_them() {
    let dir = tempfile::tempdir().unwrap();
    let l = Ledger::open(&dir.path().join("l.sqlite")).unwrap();
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
