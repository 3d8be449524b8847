//! Ledger unit tests on real SQLite files in a temp dir: what only SQLite has (the file's
//! mode, the schema version pragma, the run lock, the connection's blocking section). The
//! behaviour of the `Ledger` API is tested on both backends in `tests/it/ledger_suite.rs`.

use std::os::unix::fs::PermissionsExt;

use super::*;

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
