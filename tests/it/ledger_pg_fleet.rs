//! The PostgreSQL ledger's writes added for parity with SQLite, under the fence: a stale lease
//! records nothing, and a lease never covers another mailbox's folder or rows. Then the fleet's
//! own summaries for `status --ledger URL` (`workers`, `mailbox_rates`). A manual clock expires
//! leases and ages heartbeats, so nothing here sleeps.

use std::time::Duration;

use mailferry::ledger::postgres::{
    Clock, Lease, LostWhy, PgLedger, PgLedgerError, WORKER_ALIVE_MS,
};
use mailferry::model::{ContentHash, Flags, Uid};

use crate::ledger_pg_parity::{LEASE_MS, START_MS, hash, news, plan, v, worker};
use crate::support::postgres::Postgres;

/// Every write added for parity, as a thunk over a lease: what a frozen worker would try.
async fn all_writes(
    pg: &PgLedger,
    lease: &Lease,
    folder: i64,
    row: i64,
    recheck_row: i64,
) -> Vec<PgLedgerError> {
    let h = hash(1);
    let results: Vec<Result<(), PgLedgerError>> = vec![
        pg.set_flags(lease, row, &Flags::from_atoms(["\\Deleted"]))
            .await,
        pg.set_source_gone(lease, folder, &[row]).await,
        pg.claim_by_hash(lease, folder, v(9), Uid::new(1).unwrap(), &h)
            .await
            .map(|_| ()),
        pg.mark_recheck(lease, &[row]).await,
        pg.clear_recheck(lease, recheck_row).await,
        pg.set_folder_target(lease, folder, "Elsewhere", "dest-x")
            .await,
        pg.set_folder_sync_point(lease, folder, v(9), Some(1), Some(2))
            .await,
        pg.clear_folder_sync_point(lease, folder).await,
        pg.set_folder_source_total(lease, folder, 99, Some(99))
            .await,
    ];
    results
        .into_iter()
        .map(|r| r.expect_err("must be refused"))
        .collect()
}

#[tokio::test]
async fn the_new_writes_are_fenced_and_never_cover_another_mailbox() {
    let pg = Postgres::start();
    let clock = Clock::manual(START_MS);
    let (a, b) = (worker(&pg, &clock).await, worker(&pg, &clock).await);
    a.register_plan(&plan()).await.unwrap();
    let la = a.claim(LEASE_MS, None).await.unwrap().unwrap();
    let run = a.start_run("migrate").await.unwrap();
    let inbox = a.folder(&la, "INBOX").await.unwrap();
    a.insert_pending(&la, inbox.id, v(7), &news(1..=3))
        .await
        .unwrap();
    let rows = a.folder_messages(inbox.id, v(7)).await.unwrap();
    let id = |uid| rows[&Uid::new(uid).unwrap()].id;
    a.mark_sending(&la, &[(id(1), hash(1)), (id(2), hash(2))], run)
        .await
        .unwrap();
    let seen = Flags::from_atoms(["\\Seen"]);
    a.mark_done(
        &la,
        &[
            (id(1), "d-1".into(), seen.clone()),
            (id(2), "d-2".into(), seen),
        ],
        run,
    )
    .await
    .unwrap();
    a.mark_recheck(&la, &[id(2)]).await.unwrap();
    a.set_folder_sync_point(&la, inbox.id, v(7), Some(5), Some(4))
        .await
        .unwrap();
    a.set_source_folders(&la, 1).await.unwrap();
    let snapshot = async || {
        (
            a.all_folder_messages(inbox.id).await.unwrap(),
            a.folders(la.mailbox_id).await.unwrap(),
            a.progress().await.unwrap(),
            pg.psql("SELECT string_agg(recheck::text, ',' ORDER BY id) FROM messages"),
        )
    };
    let before = snapshot().await;

    // Frozen past the lease; b takes the mailbox over.
    clock.advance(Duration::from_millis(LEASE_MS as u64));
    let lb = b.claim(LEASE_MS, None).await.unwrap().unwrap();
    assert_eq!((lb.mailbox.as_str(), lb.generation), ("m0@x", 2));
    let mut refused = all_writes(&a, &la, inbox.id, id(1), id(2)).await;
    refused.push(a.set_source_folders(&la, 7).await.unwrap_err());
    assert_eq!(refused.len(), 10);
    for e in refused {
        match e {
            PgLedgerError::LeaseLost(l) => assert_eq!(l.why, LostWhy::TakenOver { generation: 2 }),
            other => panic!("expected LeaseLost, got {other}"),
        }
    }
    assert_eq!(
        snapshot().await,
        before,
        "the stale worker recorded nothing"
    );

    // a now holds m1 with a valid lease: m0's folder and rows are still refused.
    let la1 = a.claim(LEASE_MS, None).await.unwrap().unwrap();
    assert_eq!(la1.mailbox, "m1@x");
    for e in all_writes(&a, &la1, inbox.id, id(1), id(2)).await {
        assert!(matches!(e, PgLedgerError::Corrupt { .. }), "{e}");
        assert!(e.to_string().contains("m1@x"), "{e}");
    }
    assert_eq!(
        snapshot().await,
        before,
        "nothing recorded through another mailbox's lease"
    );

    // The current owner's writes go through (the fence is not simply closed).
    b.set_flags(&lb, id(1), &Flags::from_atoms(["\\Flagged"]))
        .await
        .unwrap();
    b.clear_recheck(&lb, id(2)).await.unwrap();
    b.set_folder_target(&lb, inbox.id, "Inbox", "dest-inbox")
        .await
        .unwrap();
    let now = a.folder_messages(inbox.id, v(7)).await.unwrap();
    assert!(now[&Uid::new(1).unwrap()].flags.flagged);
    assert_eq!(a.recheck_rows(inbox.id, v(7)).await.unwrap(), vec![]);
    assert_eq!(
        a.folders(lb.mailbox_id).await.unwrap()[0]
            .dest_id
            .as_deref(),
        Some("dest-inbox")
    );
}

#[tokio::test]
async fn workers_and_mailbox_rates_for_status() {
    let pg = Postgres::start();
    let clock = Clock::manual(START_MS);
    let (a, b) = (worker(&pg, &clock).await, worker(&pg, &clock).await);
    a.register_plan(&plan()).await.unwrap();
    // A claim is a heartbeat: 60 s after registering, a's age is back to 0.
    clock.advance(Duration::from_secs(60));
    let la = a.claim(LEASE_MS, None).await.unwrap().unwrap();
    let run = a.start_run("migrate").await.unwrap();
    let inbox = a.folder(&la, "INBOX").await.unwrap();
    a.insert_pending(&la, inbox.id, v(1), &news(1..=4))
        .await
        .unwrap();
    let rows = a.all_folder_messages(inbox.id).await.unwrap();
    let sending: Vec<(i64, ContentHash)> = rows
        .iter()
        .take(3)
        .map(|r| (r.id, hash(r.uid.get())))
        .collect();
    a.mark_sending(&la, &sending, run).await.unwrap();
    let done: Vec<(i64, String, Flags)> = sending
        .iter()
        .map(|(id, _)| (*id, format!("d{id}"), Flags::default()))
        .collect();
    a.mark_done(&la, &done, run).await.unwrap();
    clock.advance(Duration::from_secs(10));

    let rates = a.mailbox_rates().await.unwrap();
    assert_eq!(rates.len(), 1, "only m0@x is being worked on: {rates:?}");
    assert_eq!(rates[0].0, "m0@x");
    assert!((rates[0].1 - 0.3).abs() < 1e-9, "3 done in 10 s: {rates:?}");

    let w = a.workers().await.unwrap();
    assert_eq!(w.len(), 2);
    let row = |id: &str| w.iter().find(|r| r.id == id).unwrap().clone();
    let (wa, wb) = (row(a.worker_id()), row(b.worker_id()));
    assert_eq!((wa.hostname.as_str(), wa.pid), ("parity-host", 4242));
    assert_eq!(wa.started_at, "2023-11-14T22:13:20.000Z");
    assert_eq!(
        (wa.heartbeat_age_ms, wa.runs, wa.mailboxes_held),
        (10_000, 1, 1)
    );
    assert!(wa.alive && !wa.stopped);
    assert_eq!(
        (wb.heartbeat_age_ms, wb.runs, wb.mailboxes_held),
        (70_000, 0, 0)
    );
    assert!(wb.alive, "heartbeat younger than {WORKER_ALIVE_MS} ms");

    // Long past the lease and the heartbeat bound: neither is alive; a heartbeat revives b.
    clock.advance(Duration::from_millis(WORKER_ALIVE_MS as u64));
    assert_eq!(
        a.mailbox_rates().await.unwrap(),
        vec![],
        "the lease expired"
    );
    let w = a.workers().await.unwrap();
    assert!(w.iter().all(|r| !r.alive && r.mailboxes_held == 0), "{w:?}");
    b.heartbeat().await.unwrap();
    a.renew(&la, LEASE_MS).await.unwrap();
    let w = a.workers().await.unwrap();
    assert!(
        w.iter().all(|r| r.alive && r.heartbeat_age_ms == 0),
        "{w:?}"
    );
    b.stop_worker().await.unwrap();
    let w = a.workers().await.unwrap();
    let wb = w.iter().find(|r| r.id == b.worker_id()).unwrap();
    assert!(wb.stopped && !wb.alive, "{wb:?}");
    assert_eq!(
        w.iter()
            .find(|r| r.id == a.worker_id())
            .unwrap()
            .mailboxes_held,
        1
    );
}
