//! Rounds on the PostgreSQL ledger (`migrate --round N`): a mailbox finished in a round is not
//! claimable again in it but is in the next; `--retry-failed` claims a failed mailbox once more
//! per round; a live lease is never claimed twice, whichever round holds it; rounds only move
//! forward; a ledger from before rounds upgrades with its outcomes kept as round 1's. A manual
//! clock expires leases, so nothing here sleeps.

use std::time::Duration;

use mailferry::ledger::postgres::{Clock, Lease, Outcome, PgLedger, PgLedgerError, RoundSpec};

use crate::ledger_pg_parity::{LEASE_MS, START_MS, plan, worker};
use crate::support::postgres::Postgres;

fn round(n: i64) -> RoundSpec {
    RoundSpec {
        round: Some(n),
        retry_failed: false,
    }
}

fn retry(n: i64) -> RoundSpec {
    RoundSpec {
        round: Some(n),
        retry_failed: true,
    }
}

async fn claim(l: &PgLedger, spec: RoundSpec) -> Option<Lease> {
    l.claim_in(spec, LEASE_MS, None).await.unwrap()
}

/// (mailbox, outcome, round, last outcome, its round) per lease row.
async fn rows(l: &PgLedger) -> Vec<(String, Option<String>, i64, Option<String>, Option<i64>)> {
    l.leases()
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                r.mailbox,
                r.outcome,
                r.round,
                r.last_outcome,
                r.last_outcome_round,
            )
        })
        .collect()
}

fn refused(e: PgLedgerError, says: &str) {
    match &e {
        PgLedgerError::Round { what, .. } => assert!(what.contains(says), "{e}"),
        other => panic!("expected a refused round, got {other}"),
    }
}

#[tokio::test]
async fn a_mailbox_finished_in_a_round_is_claimable_again_only_in_the_next() {
    let pg = Postgres::start();
    let clock = Clock::manual(START_MS);
    let (a, b) = (worker(&pg, &clock).await, worker(&pg, &clock).await);
    a.register_plan(&plan()).await.unwrap();
    assert_eq!(a.newest_round().await.unwrap(), 1);

    // Round 1: both mailboxes finish (one ok, one failed).
    let m0 = a.claim(LEASE_MS, None).await.unwrap().unwrap();
    let m1 = b.claim(LEASE_MS, None).await.unwrap().unwrap();
    assert_eq!((m0.round, m1.round), (1, 1));
    a.release(&m0, Outcome::Ok).await.unwrap();
    b.release(&m1, Outcome::Failed).await.unwrap();
    assert_eq!(claim(&a, round(1)).await, None, "finished in round 1");
    assert_eq!(a.claim(LEASE_MS, None).await.unwrap(), None);
    assert!(!a.round_has_work(RoundSpec::default()).await.unwrap());

    // Rounds move one at a time and never back.
    refused(b.open_round(3).await.unwrap_err(), "the next is 2");
    b.open_round(2).await.unwrap();
    a.open_round(2).await.unwrap(); // a second worker joining round 2: nothing changes
    assert_eq!(a.newest_round().await.unwrap(), 2);
    refused(a.open_round(1).await.unwrap_err(), "round 1 is over");

    // A worker of round 1 claims nothing more: its round is superseded.
    assert_eq!(claim(&a, round(1)).await, None);
    assert!(!a.round_has_work(round(1)).await.unwrap());
    assert!(a.round_has_work(round(2)).await.unwrap());

    // Round 2 (a worker without --round follows the newest): both again, exactly once each.
    let r0 = a.claim(LEASE_MS, None).await.unwrap().unwrap();
    let r1 = b.claim_in(round(2), LEASE_MS, None).await.unwrap().unwrap();
    assert_eq!(
        (r0.mailbox.as_str(), r0.generation, r0.round),
        ("m0@x", 2, 2)
    );
    assert_eq!((r1.mailbox.as_str(), r1.round), ("m1@x", 2));
    assert_eq!(claim(&a, round(2)).await, None, "both held");
    assert!(a.round_has_work(round(2)).await.unwrap(), "held, not done");
    // Held in round 2, the last outcome is still round 1's.
    assert_eq!(
        rows(&a).await,
        vec![
            ("m0@x".into(), None, 2, Some("ok".into()), Some(1)),
            ("m1@x".into(), None, 2, Some("failed".into()), Some(1)),
        ]
    );
    a.release(&r0, Outcome::Ok).await.unwrap();
    b.release(&r1, Outcome::Ok).await.unwrap();
    assert_eq!(claim(&a, round(2)).await, None, "finished in round 2");
    assert!(!a.round_has_work(RoundSpec::default()).await.unwrap());
    assert_eq!(
        rows(&a).await,
        vec![
            (
                "m0@x".into(),
                Some("ok".into()),
                2,
                Some("ok".into()),
                Some(2)
            ),
            (
                "m1@x".into(),
                Some("ok".into()),
                2,
                Some("ok".into()),
                Some(2)
            ),
        ]
    );
    // The round-1 lease of m0 is stale: its holder can neither renew nor release it.
    assert!(a.renew(&m0, LEASE_MS).await.unwrap_err().is_lease_lost());
}

#[tokio::test]
async fn claiming_in_a_round_nobody_started_is_refused() {
    let pg = Postgres::start();
    let clock = Clock::manual(START_MS);
    let a = worker(&pg, &clock).await;
    a.register_plan(&plan()).await.unwrap();
    refused(
        a.claim_in(round(2), LEASE_MS, None).await.unwrap_err(),
        "never started",
    );
    assert!(
        rows(&a).await.iter().all(|r| r.2 == 1 && r.1.is_none()),
        "nothing claimed"
    );
}

#[tokio::test]
async fn retry_failed_claims_each_failed_mailbox_once_per_round() {
    let pg = Postgres::start();
    let clock = Clock::manual(START_MS);
    let a = worker(&pg, &clock).await;
    a.register_plan(&plan()).await.unwrap();
    let m0 = claim(&a, round(1)).await.unwrap();
    let m1 = claim(&a, round(1)).await.unwrap();
    a.release(&m0, Outcome::Failed).await.unwrap();
    a.release(&m1, Outcome::Ok).await.unwrap();

    // Without the retry nothing is left; with it, the failed mailbox (only) once more.
    assert_eq!(claim(&a, round(1)).await, None);
    assert!(!a.round_has_work(round(1)).await.unwrap());
    assert!(a.round_has_work(retry(1)).await.unwrap());
    let again = claim(&a, retry(1)).await.unwrap();
    assert_eq!(
        (again.mailbox.as_str(), again.round, again.generation),
        ("m0@x", 1, 2)
    );
    assert_eq!(claim(&a, retry(1)).await, None, "m1 finished ok, m0 held");
    // Interrupted during the retry: claimable again (the retry is not used up by a stop)...
    a.release(&again, Outcome::Interrupted).await.unwrap();
    let again = claim(&a, retry(1)).await.unwrap();
    assert_eq!(again.mailbox, "m0@x");
    // ...but failed again: the round's retry is spent.
    a.release(&again, Outcome::Failed).await.unwrap();
    assert_eq!(claim(&a, retry(1)).await, None);
    assert!(!a.round_has_work(retry(1)).await.unwrap());

    // A new round passes both, and a failure in it may be retried once in it.
    a.open_round(2).await.unwrap();
    let r0 = claim(&a, retry(2)).await.unwrap();
    let r1 = claim(&a, retry(2)).await.unwrap();
    a.release(&r0, Outcome::Failed).await.unwrap();
    a.release(&r1, Outcome::Ok).await.unwrap();
    assert_eq!(claim(&a, round(2)).await, None);
    let r0 = claim(&a, retry(2)).await.unwrap();
    assert_eq!((r0.mailbox.as_str(), r0.round), ("m0@x", 2));
    a.release(&r0, Outcome::Ok).await.unwrap();
    assert_eq!(
        rows(&a).await[0],
        (
            "m0@x".into(),
            Some("ok".into()),
            2,
            Some("ok".into()),
            Some(2)
        )
    );
}

#[tokio::test]
async fn a_live_lease_is_never_claimed_twice_whichever_round_holds_it() {
    let pg = Postgres::start();
    let clock = Clock::manual(START_MS);
    let (a, b) = (worker(&pg, &clock).await, worker(&pg, &clock).await);
    a.register_plan(&plan()).await.unwrap();

    // a still works m0 in round 1 when round 2 starts: round 2 waits for it.
    let old = claim(&a, round(1)).await.unwrap();
    assert_eq!(old.mailbox, "m0@x");
    b.open_round(2).await.unwrap();
    let m1 = claim(&b, round(2)).await.unwrap();
    assert_eq!(m1.mailbox, "m1@x");
    assert_eq!(claim(&b, round(2)).await, None, "m0 is held in round 1");
    assert!(b.round_has_work(round(2)).await.unwrap());
    // Its holder finishes it (in round 1); then round 2 passes it.
    a.release(&old, Outcome::Ok).await.unwrap();
    let m0 = claim(&b, round(2)).await.unwrap();
    assert_eq!(
        (m0.mailbox.as_str(), m0.round, m0.generation),
        ("m0@x", 2, 2)
    );

    // Held in round 2 by a live worker: another round-2 worker does not take it...
    assert_eq!(claim(&a, round(2)).await, None);
    assert_eq!(claim(&a, RoundSpec::default()).await, None);
    assert_eq!(claim(&a, retry(2)).await, None);
    // ...until the lease expires (its worker died): then it is taken over, once.
    clock.advance(Duration::from_millis(LEASE_MS as u64));
    let taken = claim(&a, round(2)).await.unwrap();
    let taken_m1 = claim(&a, round(2)).await.unwrap();
    assert_eq!(
        (taken.mailbox.as_str(), taken.generation, taken.round),
        ("m0@x", 3, 2)
    );
    assert_eq!(taken_m1.mailbox, "m1@x");
    assert_eq!(claim(&b, round(2)).await, None);
    // The old holder's lease is lost: it can record nothing.
    assert!(
        b.release(&m0, Outcome::Ok)
            .await
            .unwrap_err()
            .is_lease_lost()
    );
}

#[tokio::test]
async fn a_ledger_from_before_rounds_upgrades_with_its_outcomes_as_round_one() {
    let pg = Postgres::start();
    let clock = Clock::manual(START_MS);
    let a = worker(&pg, &clock).await;
    a.register_plan(&plan()).await.unwrap();
    let m0 = claim(&a, round(1)).await.unwrap();
    a.release(&m0, Outcome::Ok).await.unwrap();
    let m1 = claim(&a, round(1)).await.unwrap();
    drop(a);
    // Back to fleet schema 2 (before rounds), m1 still leased as an old worker left it.
    pg.psql(
        "DROP TABLE fleet_rounds;
         ALTER TABLE leases DROP COLUMN round, DROP COLUMN retried, DROP COLUMN last_outcome,
           DROP COLUMN last_outcome_round;
         UPDATE schema_version SET version = 2 WHERE track = 'fleet'",
    );
    let b = worker(&pg, &clock).await;
    assert!(
        b.schema_versions()
            .await
            .unwrap()
            .contains(&("fleet".into(), mailferry::ledger::postgres::FLEET_VERSION))
    );
    assert_eq!(b.newest_round().await.unwrap(), 1);
    assert_eq!(
        rows(&b).await,
        vec![
            (
                "m0@x".into(),
                Some("ok".into()),
                1,
                Some("ok".into()),
                Some(1)
            ),
            ("m1@x".into(), None, 1, None, None),
        ]
    );
    // m1's lease is still live (claimed before the upgrade): round 1 waits for it.
    assert_eq!(claim(&b, round(1)).await, None);
    clock.advance(Duration::from_millis(LEASE_MS as u64));
    let taken = claim(&b, round(1)).await.unwrap();
    assert_eq!((taken.mailbox.as_str(), taken.generation), ("m1@x", 2));
    assert_ne!(taken.generation, m1.generation);
    b.release(&taken, Outcome::Ok).await.unwrap();
    b.open_round(2).await.unwrap();
    assert_eq!(claim(&b, round(2)).await.unwrap().mailbox, "m0@x");
}
