//! The PostgreSQL ledger when the server goes away and comes back: calls after a restart
//! reconnect and succeed, a lease that expired while the server was down is renewed before the
//! next fenced write, a lease taken over meanwhile is refused, and a server gone for longer than
//! the outage limit fails the call as a connection error. Lease expiry uses a manual clock.

use std::time::{Duration, Instant};

use chrono::DateTime;
use mailferry::ledger::NewMessage;
use mailferry::ledger::postgres::{Clock, LostWhy, PgLedgerError};
use mailferry::model::{Flags, Uid, UidValidity};

use crate::ledger_pg_parity::{LEASE_MS, plan_of, worker};
use crate::support::postgres::Postgres;

fn messages(uids: std::ops::RangeInclusive<u32>) -> Vec<NewMessage> {
    uids.map(|uid| NewMessage {
        uid: Uid::new(uid).unwrap(),
        size: 100,
        message_id: Some(format!("<{uid}@x>")),
        internal_date: DateTime::parse_from_rfc3339("2024-01-02T03:04:05+01:00").unwrap(),
        flags: Flags::default(),
    })
    .collect()
}

fn validity() -> UidValidity {
    UidValidity::new(7).unwrap()
}

#[tokio::test]
async fn calls_after_a_restart_reconnect_and_succeed() {
    let pg = Postgres::start();
    let clock = Clock::Database;
    let a = worker(&pg, &clock).await;
    a.register_plan(&plan_of(1)).await.unwrap();
    let lease = a.claim(LEASE_MS, None).await.unwrap().expect("claim");
    let folder = a.folder(&lease, "INBOX").await.unwrap();
    a.insert_pending(&lease, folder.id, validity(), &messages(1..=2))
        .await
        .unwrap();

    pg.restart();

    // A read, a fenced write and an unfenced call all go through on the new connection.
    assert_eq!(
        a.folder_messages(folder.id, validity())
            .await
            .unwrap()
            .len(),
        2
    );
    a.insert_pending(&lease, folder.id, validity(), &messages(3..=3))
        .await
        .expect("fenced write after the restart");
    assert!(a.find_mailbox("m0@x").await.unwrap().is_some());
    a.renew(&lease, LEASE_MS)
        .await
        .expect("renew after restart");
    assert_eq!(
        a.folder_messages(folder.id, validity())
            .await
            .unwrap()
            .len(),
        3
    );

    // And again: a second outage is a second reconnect, not a stuck connection.
    pg.restart();
    a.release(&lease, mailferry::ledger::postgres::Outcome::Ok)
        .await
        .expect("release after a second restart");
    assert_eq!(a.leases().await.unwrap()[0].outcome.as_deref(), Some("ok"));
}

#[tokio::test]
async fn a_lease_that_expired_during_the_outage_is_renewed_before_the_next_write() {
    let pg = Postgres::start();
    let clock = Clock::manual(1_700_000_000_000);
    let a = worker(&pg, &clock).await;
    a.register_plan(&plan_of(1)).await.unwrap();
    let lease = a.claim(LEASE_MS, None).await.unwrap().unwrap();
    let folder = a.folder(&lease, "INBOX").await.unwrap();

    pg.stop();
    clock.advance(Duration::from_millis(LEASE_MS as u64 + 1));
    pg.restart();

    // Without the renewal on reconnect the fence would refuse this as expired.
    a.insert_pending(&lease, folder.id, validity(), &messages(1..=1))
        .await
        .expect("the reconnect renewed the lease");
    let row = &a.leases().await.unwrap()[0];
    assert_eq!(
        row.expires_in_ms,
        Some(LEASE_MS),
        "renewed at reconnect time"
    );
}

#[tokio::test]
async fn a_lease_taken_over_during_the_outage_is_refused_after_the_reconnect() {
    let pg = Postgres::start();
    let clock = Clock::manual(1_700_000_000_000);
    let (a, b) = (worker(&pg, &clock).await, worker(&pg, &clock).await);
    a.register_plan(&plan_of(1)).await.unwrap();
    let la = a.claim(LEASE_MS, None).await.unwrap().unwrap();
    let folder = a.folder(&la, "INBOX").await.unwrap();

    pg.restart();
    clock.advance(Duration::from_millis(LEASE_MS as u64));
    let lb = b
        .claim(LEASE_MS, None)
        .await
        .unwrap()
        .expect("b takes over");
    assert_eq!(lb.generation, 2);

    match a
        .insert_pending(&la, folder.id, validity(), &messages(1..=1))
        .await
    {
        Err(PgLedgerError::LeaseLost(l)) => {
            assert_eq!(l.why, LostWhy::TakenOver { generation: 2 })
        }
        other => panic!("expected the lease lost, got {other:?}"),
    }
    assert!(
        a.folder_messages(folder.id, validity())
            .await
            .unwrap()
            .is_empty(),
        "nothing recorded by the old holder"
    );
}

#[tokio::test]
async fn a_server_gone_past_the_outage_limit_fails_the_call_then_recovers() {
    let pg = Postgres::start();
    let a = worker(&pg, &Clock::Database).await;
    a.register_plan(&plan_of(1)).await.unwrap();
    a.set_outage_limit(Duration::from_millis(1500));

    pg.stop();
    let asked = Instant::now();
    let e = a.find_mailbox("m0@x").await.unwrap_err();
    assert!(e.is_connection(), "{e}");
    assert!(
        asked.elapsed() >= Duration::from_millis(1500),
        "waited for the outage limit, not {:?}",
        asked.elapsed()
    );
    // Past the limit, further calls fail fast instead of each waiting again.
    let asked = Instant::now();
    assert!(a.leases().await.unwrap_err().is_connection());
    assert!(
        asked.elapsed() < Duration::from_millis(1500),
        "{:?}",
        asked.elapsed()
    );

    pg.restart();
    assert!(a.find_mailbox("m0@x").await.unwrap().is_some());
}
