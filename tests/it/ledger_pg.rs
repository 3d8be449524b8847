//! The PostgreSQL ledger against a real, private PostgreSQL: schema migrations, mailbox leases
//! (claim, renew, release, takeover), the generation fence on every write, the fleet-wide host
//! connection cap, plan identity, and TLS. Lease expiry is driven by a manual clock shared by
//! the workers, so nothing here sleeps.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::DateTime;
use mailferry::ledger::postgres::{
    Clock, Lease, LostWhy, Outcome, PgLedger, PgLedgerError, PgUrl, PlanIdentity, PlanMailbox,
    UrlOrigin,
};
use mailferry::ledger::{MessageState, NewMessage};
use mailferry::model::{ContentHash, Flags, Uid, UidValidity};

use crate::support::postgres::{DATABASE, PASSWORD, Postgres, ROLE};

const LEASE_MS: i64 = 30_000;

fn url(pg: &Postgres, extra: &str) -> PgUrl {
    PgUrl::parse(
        &format!("{}{extra}", pg.url()),
        UrlOrigin::CommandLine,
        Some(PASSWORD.into()),
    )
    .expect("test URL")
}

async fn worker(pg: &Postgres, clock: &Clock) -> PgLedger {
    let l = PgLedger::connect(&url(pg, ""), clock.clone())
        .await
        .expect("connect");
    l.register_worker("test-host", std::process::id())
        .await
        .expect("register worker");
    l
}

/// `n` mailboxes `m0@x`… on `host` (plus the ones in `more`), all to destination `exo`.
fn plan(n: usize, host: Option<&str>) -> PlanIdentity {
    PlanIdentity {
        source: "imap imap.old.example:993 tls".into(),
        destinations: BTreeMap::from([(
            "exo".to_owned(),
            "graph tenant=contoso.example client_id=app route=import-mime".to_owned(),
        )]),
        mailboxes: (0..n)
            .map(|i| {
                (
                    format!("m{i}@x"),
                    PlanMailbox {
                        destination: "exo".into(),
                        destination_user: format!("m{i}@x"),
                        source_host: host.map(Into::into),
                    },
                )
            })
            .collect(),
    }
}

fn new_messages(n: u32) -> Vec<NewMessage> {
    (1..=n)
        .map(|uid| NewMessage {
            uid: Uid::new(uid).unwrap(),
            size: 100 + u64::from(uid),
            message_id: Some(format!("<{uid}@x>")),
            internal_date: DateTime::parse_from_rfc3339("2024-01-02T03:04:05+01:00").unwrap(),
            flags: Flags::default(),
        })
        .collect()
}

fn lost(e: PgLedgerError) -> LostWhy {
    match e {
        PgLedgerError::LeaseLost(l) => l.why,
        other => panic!("expected LeaseLost, got {other}"),
    }
}

#[tokio::test]
async fn schema_migrates_from_empty_concurrently_and_idempotently() {
    let pg = Postgres::start();
    let clock = Clock::Database;
    // Three workers starting at once on an empty database: one migrates, the others wait.
    let u = url(&pg, "");
    let (a, b, c) = tokio::join!(
        PgLedger::connect(&u, clock.clone()),
        PgLedger::connect(&u, clock.clone()),
        PgLedger::connect(&u, clock.clone()),
    );
    let a = a.expect("first");
    b.expect("second");
    c.expect("third");
    let want = vec![
        (
            "fleet".to_owned(),
            mailferry::ledger::postgres::FLEET_VERSION,
        ),
        (
            "ledger".to_owned(),
            mailferry::ledger::postgres::LEDGER_VERSION,
        ),
    ];
    assert_eq!(a.schema_versions().await.unwrap(), want);
    assert_eq!(mailferry::ledger::postgres::LEDGER_VERSION, 4);
    // Again on a migrated database: nothing changes.
    let again = PgLedger::connect(&url(&pg, ""), clock.clone())
        .await
        .unwrap();
    assert_eq!(again.schema_versions().await.unwrap(), want);
    assert_eq!(
        pg.psql(
            "SELECT string_agg(table_name, ',' ORDER BY table_name) FROM information_schema.tables
             WHERE table_schema = 'public'"
        ),
        "fleet_plan,fleet_rounds,folders,leases,mailboxes,messages,runs,schema_version,throttle,workers"
    );
    // The migration 1 -> 2 column exists.
    assert_eq!(
        pg.psql(
            "SELECT count(*) FROM information_schema.columns
             WHERE table_name = 'messages' AND column_name = 'recheck'"
        ),
        "1"
    );
    // The same database over the Unix socket (libpq's `?host=/dir` form).
    let socket = PgUrl::parse(
        &format!(
            "postgres:///{DATABASE}?host={}&port={}&user={ROLE}",
            pg.dir().join("sock").display(),
            pg.port()
        ),
        UrlOrigin::CommandLine,
        None,
    )
    .unwrap();
    let local = PgLedger::connect(&socket, clock.clone())
        .await
        .expect("socket");
    assert_eq!(local.schema_versions().await.unwrap(), want);
    // A database written by a newer build is refused, naming the versions.
    pg.psql("UPDATE schema_version SET version = 99 WHERE track = 'ledger'");
    let err = PgLedger::connect(&url(&pg, ""), clock)
        .await
        .err()
        .expect("a newer schema must be refused");
    assert!(
        matches!(err, PgLedgerError::TooNew { found: 99, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn two_workers_claim_disjoint_mailboxes() {
    let pg = Postgres::start();
    let clock = Clock::Database;
    let (a, b) = (worker(&pg, &clock).await, worker(&pg, &clock).await);
    a.register_plan(&plan(9, None)).await.unwrap();
    b.register_plan(&plan(9, None)).await.unwrap();
    let mut got_a = Vec::new();
    let mut got_b = Vec::new();
    loop {
        // Both claim at the same moment: SKIP LOCKED hands them different rows.
        let (x, y) = tokio::join!(a.claim(LEASE_MS, None), b.claim(LEASE_MS, None));
        let (x, y) = (x.unwrap(), y.unwrap());
        if x.is_none() && y.is_none() {
            break;
        }
        got_a.extend(x);
        got_b.extend(y);
    }
    let keys = |v: &[Lease]| v.iter().map(|l| l.mailbox.clone()).collect::<BTreeSet<_>>();
    let (ka, kb) = (keys(&got_a), keys(&got_b));
    assert!(
        ka.is_disjoint(&kb),
        "both claimed {:?}",
        ka.intersection(&kb)
    );
    assert_eq!(ka.len() + kb.len(), 9, "a {ka:?} b {kb:?}");
    assert!(!ka.is_empty() && !kb.is_empty());
    assert!(got_a.iter().chain(&got_b).all(|l| l.generation == 1));
    let rows = a.leases().await.unwrap();
    for l in &got_a {
        let row = rows.iter().find(|r| r.mailbox == l.mailbox).unwrap();
        assert_eq!(row.owner.as_deref(), Some(a.worker_id()));
        assert_eq!(row.owner_hostname.as_deref(), Some("test-host"));
        assert!(row.expires_in_ms.unwrap() > 0);
    }
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_with_a_higher_generation() {
    let pg = Postgres::start();
    let clock = Clock::manual(1_700_000_000_000);
    let (a, b) = (worker(&pg, &clock).await, worker(&pg, &clock).await);
    a.register_plan(&plan(1, None)).await.unwrap();
    let la = a.claim(LEASE_MS, None).await.unwrap().expect("a claims");
    assert_eq!(la.generation, 1);
    assert_eq!(b.claim(LEASE_MS, None).await.unwrap(), None, "still leased");
    clock.advance(Duration::from_millis(LEASE_MS as u64 - 1));
    assert_eq!(
        b.claim(LEASE_MS, None).await.unwrap(),
        None,
        "1 ms before expiry"
    );
    clock.advance(Duration::from_millis(1));
    let lb = b
        .claim(LEASE_MS, None)
        .await
        .unwrap()
        .expect("b takes over");
    assert_eq!(lb.mailbox, la.mailbox);
    assert_eq!(lb.generation, 2);
    let row = &b.leases().await.unwrap()[0];
    assert_eq!(row.owner.as_deref(), Some(b.worker_id()));
    assert_eq!(row.heartbeat_age_ms, Some(0));
}

#[tokio::test]
async fn renew_and_release_after_a_takeover_fail() {
    let pg = Postgres::start();
    let clock = Clock::manual(1_700_000_000_000);
    let (a, b) = (worker(&pg, &clock).await, worker(&pg, &clock).await);
    a.register_plan(&plan(1, None)).await.unwrap();
    let la = a.claim(LEASE_MS, None).await.unwrap().unwrap();
    // Renewing in time keeps the lease past its first expiry.
    clock.advance(Duration::from_millis(20_000));
    a.renew(&la, LEASE_MS).await.expect("renew in time");
    clock.advance(Duration::from_millis(20_000));
    assert_eq!(b.claim(LEASE_MS, None).await.unwrap(), None, "renewed");
    // Frozen past the lease: b takes over, a's renew and release are refused.
    clock.advance(Duration::from_millis(LEASE_MS as u64));
    let lb = b.claim(LEASE_MS, None).await.unwrap().unwrap();
    let e = a.renew(&la, LEASE_MS).await.unwrap_err();
    assert_eq!(lost(e), LostWhy::TakenOver { generation: 2 });
    let e = a.release(&la, Outcome::Ok).await.unwrap_err();
    assert!(e.is_lease_lost());
    assert!(e.to_string().contains("m0@x"), "{e}");
    // The new owner is unaffected; once it finishes, nobody can claim the mailbox this round.
    b.renew(&lb, LEASE_MS).await.unwrap();
    b.release(&lb, Outcome::Ok).await.unwrap();
    assert_eq!(a.claim(LEASE_MS, None).await.unwrap(), None);
    assert_eq!(
        lost(b.renew(&lb, LEASE_MS).await.unwrap_err()),
        LostWhy::Released
    );
    assert_eq!(b.leases().await.unwrap()[0].outcome.as_deref(), Some("ok"));
}

#[tokio::test]
async fn an_interrupted_mailbox_is_claimed_again_at_once() {
    let pg = Postgres::start();
    let clock = Clock::manual(1_700_000_000_000);
    let (a, b) = (worker(&pg, &clock).await, worker(&pg, &clock).await);
    a.register_plan(&plan(1, None)).await.unwrap();
    let la = a.claim(LEASE_MS, None).await.unwrap().unwrap();
    a.release(&la, Outcome::Interrupted).await.unwrap();
    let lb = b.claim(LEASE_MS, None).await.unwrap().expect("free again");
    assert_eq!(lb.generation, 2);
}

#[tokio::test]
async fn a_write_fenced_by_the_old_generation_is_rejected_and_changes_nothing() {
    let pg = Postgres::start();
    let clock = Clock::manual(1_700_000_000_000);
    let (a, b) = (worker(&pg, &clock).await, worker(&pg, &clock).await);
    a.register_plan(&plan(2, None)).await.unwrap();
    let run_a = a.start_run("migrate").await.unwrap();
    let la = a.claim(LEASE_MS, None).await.unwrap().unwrap();
    let folder = a.folder(&la, "INBOX").await.unwrap();
    let v = UidValidity::new(7).unwrap();
    a.insert_pending(&la, folder.id, v, &new_messages(3))
        .await
        .unwrap();
    let rows = a.folder_messages(folder.id, v).await.unwrap();
    let id = |uid| rows[&Uid::new(uid).unwrap()].id;
    let hash = ContentHash::of(b"message one");
    a.mark_sending(&la, &[(id(1), hash)], run_a).await.unwrap();

    // Past the lease but not yet taken over: writes are refused until a renew.
    clock.advance(Duration::from_millis(LEASE_MS as u64));
    let e = a
        .mark_done(&la, &[(id(1), "dest-1".into(), Flags::default())], run_a)
        .await
        .unwrap_err();
    assert_eq!(lost(e), LostWhy::Expired);
    // Nobody took it over, so a renew re-establishes the lease and writes go through again.
    a.renew(&la, LEASE_MS)
        .await
        .expect("renew after expiry without takeover");
    assert_eq!(a.folder(&la, "INBOX").await.unwrap(), folder);
    clock.advance(Duration::from_millis(LEASE_MS as u64));

    // Another worker takes the mailbox over.
    let lb = b.claim(LEASE_MS, None).await.unwrap().unwrap();
    assert_eq!(lb.mailbox, la.mailbox);
    let before = a.all_folder_messages(folder.id).await.unwrap();

    // The frozen worker wakes: nothing it tries is recorded.
    let tries: Vec<PgLedgerError> = vec![
        a.mark_done(&la, &[(id(1), "dest-1".into(), Flags::default())], run_a)
            .await
            .unwrap_err(),
        a.mark_sending(&la, &[(id(2), hash)], run_a)
            .await
            .unwrap_err(),
        a.mark_state(
            &la,
            id(3),
            MessageState::Failed,
            Some(("boom", "item")),
            run_a,
        )
        .await
        .unwrap_err(),
        a.insert_pending(&la, folder.id, v, &new_messages(5))
            .await
            .unwrap_err(),
        a.folder(&la, "Sent").await.unwrap_err(),
        a.set_mailbox_state(&la, run_a, "ok", None)
            .await
            .unwrap_err(),
    ];
    for e in tries {
        assert_eq!(lost(e), LostWhy::TakenOver { generation: 2 });
    }
    assert_eq!(a.all_folder_messages(folder.id).await.unwrap(), before);
    assert_eq!(before.len(), 3);
    assert_eq!(before[0].state, MessageState::Sending);
    assert_eq!(before[0].dest_id, None);
    assert_eq!(a.folders(la.mailbox_id).await.unwrap().len(), 1, "no Sent");
    assert_eq!(
        pg.psql("SELECT count(*) FROM mailboxes WHERE state IS NOT NULL"),
        "0"
    );

    // The new owner's writes go through (the fence is not simply closed).
    let run_b = b.start_run("migrate").await.unwrap();
    b.mark_done(&lb, &[(id(1), "dest-1".into(), Flags::default())], run_b)
        .await
        .unwrap();
    b.mark_state(
        &lb,
        id(3),
        MessageState::Skipped,
        Some(("too big", "item")),
        run_b,
    )
    .await
    .unwrap();
    let after = b.folder_messages(folder.id, v).await.unwrap();
    assert_eq!(after[&Uid::new(1).unwrap()].state, MessageState::Done);
    assert_eq!(
        after[&Uid::new(1).unwrap()].dest_id.as_deref(),
        Some("dest-1")
    );
    assert_eq!(after[&Uid::new(1).unwrap()].attempts, 1);
    assert_eq!(after[&Uid::new(1).unwrap()].sha256, Some(hash));
    assert_eq!(after[&Uid::new(3).unwrap()].state, MessageState::Skipped);
    assert_eq!(
        after[&Uid::new(3).unwrap()].last_error.as_deref(),
        Some("too big")
    );
}

#[tokio::test]
async fn a_lease_never_covers_another_mailboxs_rows() {
    let pg = Postgres::start();
    let clock = Clock::Database;
    let (a, b) = (worker(&pg, &clock).await, worker(&pg, &clock).await);
    a.register_plan(&plan(2, None)).await.unwrap();
    let la = a.claim(LEASE_MS, None).await.unwrap().unwrap();
    let lb = b.claim(LEASE_MS, None).await.unwrap().unwrap();
    let v = UidValidity::new(1).unwrap();
    let fb = b.folder(&lb, "INBOX").await.unwrap();
    b.insert_pending(&lb, fb.id, v, &new_messages(2))
        .await
        .unwrap();
    let rows_b = b.all_folder_messages(fb.id).await.unwrap();
    // a holds a valid lease, but on another mailbox: refused, nothing recorded.
    let e = a
        .mark_done(&la, &[(rows_b[0].id, "x".into(), Flags::default())], 1)
        .await
        .unwrap_err();
    assert!(matches!(e, PgLedgerError::Corrupt { .. }), "{e}");
    let e = a
        .insert_pending(&la, fb.id, v, &new_messages(4))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not a folder of mailbox"), "{e}");
    assert_eq!(b.all_folder_messages(fb.id).await.unwrap(), rows_b);
}

#[tokio::test]
async fn the_host_connection_cap_holds_across_workers() {
    let pg = Postgres::start();
    let clock = Clock::manual(1_700_000_000_000);
    let workers = [
        worker(&pg, &clock).await,
        worker(&pg, &clock).await,
        worker(&pg, &clock).await,
    ];
    let mut identity = plan(6, Some("imap.a.example"));
    for (k, mb) in plan(2, Some("imap.b.example")).mailboxes {
        identity.mailboxes.insert(format!("b-{k}"), mb);
    }
    workers[0].register_plan(&identity).await.unwrap();
    let cap = Some(2);
    // Every worker claims twice, all at the same moment, on separate connections.
    let claims = futures::future::join_all((0..6).map(|k| {
        let w = &workers[k % 3];
        async move { (k % 3, w.claim(LEASE_MS, cap).await) }
    }))
    .await;
    let owned: Vec<(usize, Lease)> = claims
        .into_iter()
        .filter_map(|(k, c)| c.unwrap().map(|l| (k, l)))
        .collect();
    let held: Vec<Lease> = owned.iter().map(|(_, l)| l.clone()).collect();
    let on = |h: &str| {
        held.iter()
            .filter(|l| l.source_host.as_deref() == Some(h))
            .count()
    };
    assert_eq!(on("imap.a.example"), 2, "{held:?}");
    assert_eq!(on("imap.b.example"), 2, "{held:?}");
    assert_eq!(workers[1].host_leases("imap.a.example").await.unwrap(), 2);
    // Both hosts are full: nothing more to claim, although 4 mailboxes wait.
    assert_eq!(workers[2].claim(LEASE_MS, cap).await.unwrap(), None);
    // A slot frees when a lease ends, and is taken by another worker.
    let (owner, done) = owned
        .iter()
        .find(|(_, l)| l.source_host.as_deref() == Some("imap.a.example"))
        .unwrap();
    let owner = &workers[*owner];
    owner.release(done, Outcome::Ok).await.unwrap();
    let next = workers[2]
        .claim(LEASE_MS, cap)
        .await
        .unwrap()
        .expect("a slot");
    assert_eq!(next.source_host.as_deref(), Some("imap.a.example"));
    assert_eq!(workers[2].host_leases("imap.a.example").await.unwrap(), 2);
    assert_eq!(workers[2].claim(LEASE_MS, cap).await.unwrap(), None);
    // Without a cap the remaining mailboxes are claimable.
    assert!(workers[2].claim(LEASE_MS, None).await.unwrap().is_some());
}

#[tokio::test]
async fn a_worker_with_another_plan_is_refused_naming_what_differs() {
    let pg = Postgres::start();
    let clock = Clock::Database;
    let (a, b) = (worker(&pg, &clock).await, worker(&pg, &clock).await);
    a.register_plan(&plan(3, None)).await.unwrap();
    b.register_plan(&plan(3, None)).await.expect("same plan");
    let mut other = plan(4, None);
    other.mailboxes.remove("m0@x");
    other.destinations.insert(
        "exo".into(),
        "graph tenant=fabrikam.example client_id=app route=json".into(),
    );
    other.source = "maildir /srv/mail".into();
    let e = b.register_plan(&other).await.unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, PgLedgerError::PlanMismatch { .. }), "{text}");
    for want in [
        "source: the ledger's plan reads from «imap imap.old.example:993 tls», this plan from «maildir /srv/mail»",
        "destination exo: the ledger's plan has «graph tenant=contoso.example",
        "1 mailbox(es) in this plan only: m3@x",
        "1 mailbox(es) in the ledger's plan only: m0@x",
    ] {
        assert!(text.contains(want), "missing {want:?} in {text}");
    }
    // Refused means unchanged: the ledger still holds three mailboxes, no m3.
    assert_eq!(pg.psql("SELECT count(*) FROM leases"), "3");
}

#[tokio::test]
async fn tls_verify_full_require_and_wrong_password() {
    let pg = Postgres::start_tls();
    let clock = Clock::Database;
    let ca = pg.ca_pem_path();
    let verified = url(
        &pg,
        &format!("?sslmode=verify-full&sslrootcert={}", ca.display()),
    );
    let l = PgLedger::connect(&verified, clock.clone())
        .await
        .expect("verify-full with the test CA");
    l.register_worker("tls", 1).await.unwrap();
    assert_eq!(
        pg.psql(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
             WHERE a.application_name = 'mailferry' AND s.ssl"
        ),
        "1",
        "the session is encrypted"
    );
    // Without the CA, verify-full refuses the self-signed chain.
    let e = PgLedger::connect(&url(&pg, "?sslmode=verify-full"), clock.clone())
        .await
        .err()
        .expect("unknown issuer must be refused");
    assert!(e.to_string().contains("127.0.0.1"), "{e}");
    // require encrypts without checking the certificate.
    PgLedger::connect(&url(&pg, "?sslmode=require"), clock.clone())
        .await
        .expect("require");
    // A wrong password fails without printing it.
    let bad = PgUrl::parse(
        &pg.url(),
        UrlOrigin::CommandLine,
        Some("not-the-password".into()),
    )
    .unwrap();
    let e = PgLedger::connect(&bad, clock)
        .await
        .err()
        .expect("wrong password");
    let text = e.to_string();
    assert!(text.contains("password authentication failed"), "{text}");
    assert!(!text.contains("not-the-password"), "{text}");
}
