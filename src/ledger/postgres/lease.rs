//! Workers and mailbox leases: claim, renew, release, the fence every write goes through, and
//! the fleet-wide cap on connections to one source host.
//!
//! A lease row exists for every mailbox of the plan. Claiming takes the first mailbox that is
//! not finished and not leased (or whose lease expired) with `FOR UPDATE SKIP LOCKED`, so
//! concurrent claimers never wait on each other, and raises its generation: the generation is
//! the fence. Renew and release match on (mailbox, generation, owner), so a worker whose lease
//! was taken over learns it at its next call.
//!
//! Rounds (see [`super::rounds`]): a claim works in one round N. A mailbox is claimable in N
//! when nobody holds a live lease on it and either its row's round is older than N (it has not
//! been passed in N yet) or it is N and the mailbox has no outcome in N (or, with a retry, its
//! outcome in N is `failed` and it was not retried in N yet). The claim moves the row to N.
//!
//! The host cap is a count over live leases (see docs/decisions.md): a mailbox whose source host
//! already has `cap` live leases is not claimed. The count is re-checked under a
//! transaction-scoped advisory lock per host, so two workers claiming at the same moment cannot
//! both take the last slot.

use tokio_postgres::Transaction;

use super::rounds::RoundSpec;
use super::{Conn, LeaseLost, LostWhy, PgLedger, PgLedgerError, Statement, db_err, now_sql};

/// A mailbox lease held by this worker: the fence that every write it records carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub mailbox_id: i64,
    /// The mailbox key (lower-cased address), for messages.
    pub mailbox: String,
    pub generation: i64,
    /// The source host this mailbox connects to (`None`: no host, e.g. Maildir).
    pub source_host: Option<String>,
    /// The round this claim works in.
    pub round: i64,
}

/// How a worker leaves a mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every folder passed: finished for this round.
    Ok,
    /// The mailbox failed (reason recorded with its state): finished for this round.
    Failed,
    /// Stopped before the end (shutdown): any worker may claim it again at once.
    Interrupted,
}

impl Outcome {
    fn column(self) -> Option<&'static str> {
        match self {
            Outcome::Ok => Some("ok"),
            Outcome::Failed => Some("failed"),
            Outcome::Interrupted => None,
        }
    }
}

/// One lease as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LeaseRow {
    pub mailbox: String,
    pub source_host: Option<String>,
    pub owner: Option<String>,
    pub owner_hostname: Option<String>,
    pub generation: i64,
    /// Milliseconds until the lease expires (negative: expired); `None` when not leased.
    pub expires_in_ms: Option<i64>,
    /// Milliseconds since the last claim or renewal; `None` when never claimed.
    pub heartbeat_age_ms: Option<i64>,
    /// `ok` or `failed` once finished in the row's `round`.
    pub outcome: Option<String>,
    /// The round of the row's last claim (the round its lease and `outcome` belong to).
    pub round: i64,
    /// The mailbox's last outcome (`ok`, `failed`), kept across rounds: a claim in a newer round
    /// clears `outcome` but not this.
    pub last_outcome: Option<String>,
    /// The round in which `last_outcome` was recorded.
    pub last_outcome_round: Option<i64>,
}

/// A transaction under a held fence, with the connection's statement cache.
pub(super) struct Tx<'a> {
    pub(super) tx: Transaction<'a>,
    stmts: &'a mut std::collections::HashMap<&'static str, Statement>,
}

impl Tx<'_> {
    /// The prepared statement for `sql` (prepared once per connection).
    pub(super) async fn st(
        &mut self,
        sql: &'static str,
    ) -> Result<Statement, tokio_postgres::Error> {
        if let Some(st) = self.stmts.get(sql) {
            return Ok(st.clone());
        }
        let st = self.tx.prepare(sql).await?;
        self.stmts.insert(sql, st.clone());
        Ok(st)
    }
}

/// Why a fenced body failed: the database, or a check of its own.
pub(super) enum Fail {
    Db(tokio_postgres::Error),
    Ledger(PgLedgerError),
}

impl From<tokio_postgres::Error> for Fail {
    fn from(e: tokio_postgres::Error) -> Self {
        Fail::Db(e)
    }
}

impl PgLedger {
    /// Records this worker (host name and process id, for `status`).
    pub async fn register_worker(&self, hostname: &str, pid: u32) -> Result<(), PgLedgerError> {
        let conn = self.conn().await?;
        conn.client
            .execute(
                concat!(
                    "INSERT INTO workers (id, hostname, pid, started_at, heartbeat_at)
                     VALUES ($2, $3, $4, ",
                    now_sql!(1),
                    ", ",
                    now_sql!(1),
                    ")"
                ),
                &[
                    &self.clock.param(),
                    &self.worker,
                    &hostname,
                    &i64::from(pid),
                ],
            )
            .await
            .map_err(|e| db_err(&self.url, e))?;
        Ok(())
    }

    /// Marks this worker stopped and hands back any lease it still holds (as interrupted).
    pub(super) async fn stop_worker_once(&self) -> Result<(), PgLedgerError> {
        let conn = self.conn().await?;
        conn.client
            .execute(
                concat!(
                    "WITH l AS (UPDATE leases SET owner = NULL, expires_at = NULL
                     WHERE owner = $2 AND outcome IS NULL)
                     UPDATE workers SET stopped_at = ",
                    now_sql!(1),
                    " WHERE id = $2"
                ),
                &[&self.clock.param(), &self.worker],
            )
            .await
            .map_err(|e| db_err(&self.url, e))?;
        Ok(())
    }

    /// Claims one mailbox for `lease_ms` milliseconds in the round `spec` names, once (no
    /// retry; the public `claim_in` in `retry.rs` repeats it after a lost connection): the first
    /// that is claimable in that round (module docs) and not leased (or whose lease expired),
    /// whose source host has fewer than `host_cap` live leases. A mailbox whose lease expired (a
    /// dead or frozen worker's) comes before one nobody has claimed yet: its rows in doubt are
    /// resolved and its pass finished first, and a takeover waits only for the lease and a free
    /// slot, not for the fresh mailboxes ahead of it by id. `None`: nothing to claim now, or
    /// the round is superseded (a newer round was opened: its workers pass every mailbox again).
    pub(super) async fn claim_in_once(
        &self,
        spec: RoundSpec,
        lease_ms: i64,
        host_cap: Option<u32>,
    ) -> Result<Option<Lease>, PgLedgerError> {
        let asked = std::time::Instant::now();
        let cap = host_cap.map(i64::from);
        let mut full: Vec<String> = Vec::new();
        let mut guard = self.conn().await?;
        let err = |e| db_err(&self.url, e);
        loop {
            let now = self.clock.param();
            let candidate_sql = concat!(
                "SELECT l.mailbox_id, mb.key, l.source_host FROM leases l
                 JOIN mailboxes mb ON mb.id = l.mailbox_id
                 WHERE (l.owner IS NULL OR l.expires_at <= ",
                now_sql!(1),
                ")
                   AND (l.round < $4 OR (l.round = $4 AND (l.outcome IS NULL
                     OR ($5::boolean AND l.outcome = 'failed' AND NOT l.retried))))
                   AND NOT (COALESCE(l.source_host, '') = ANY($2::text[]))
                   AND (l.source_host IS NULL OR $3::bigint IS NULL OR $3 > (
                     SELECT count(*) FROM leases o WHERE o.source_host = l.source_host
                       AND o.owner IS NOT NULL AND o.expires_at > ",
                now_sql!(1),
                " AND o.mailbox_id <> l.mailbox_id))
                 ORDER BY (l.owner IS NULL), l.mailbox_id
                 LIMIT 1
                 FOR UPDATE OF l SKIP LOCKED"
            );
            let count_sql = concat!(
                "SELECT count(*) FROM leases WHERE source_host = $2 AND owner IS NOT NULL
                 AND expires_at > ",
                now_sql!(1),
                " AND mailbox_id <> $3"
            );
            // The claim is a heartbeat of the worker too (`workers()` judges liveness by it).
            // It moves the row to the claim's round; `retried` marks the round's one retry of a
            // failed mailbox (every right-hand side reads the row as it was).
            let take_sql = concat!(
                "WITH w AS (UPDATE workers SET heartbeat_at = ",
                now_sql!(4),
                " WHERE id = $3)
                 UPDATE leases SET owner = $3, generation = generation + 1, claimed_at = ",
                now_sql!(4),
                ", heartbeat_at = ",
                now_sql!(4),
                ", expires_at = ",
                now_sql!(4),
                " + $2::bigint * interval '1 millisecond',
                   retried = CASE WHEN round < $5 THEN false WHEN outcome IS NOT NULL THEN true
                     ELSE retried END,
                   round = $5, outcome = NULL, finished_at = NULL
                 WHERE mailbox_id = $1 RETURNING generation"
            );
            let candidate = guard.prepared(candidate_sql).await.map_err(err)?;
            let count = guard.prepared(count_sql).await.map_err(err)?;
            let take = guard.prepared(take_sql).await.map_err(err)?;
            let tx = guard.client.transaction().await.map_err(err)?;
            let newest: i64 = tx
                .query_one("SELECT COALESCE(max(round), 1) FROM fleet_rounds", &[])
                .await
                .map_err(err)?
                .get(0);
            let round = spec.round.unwrap_or(newest);
            if round > newest {
                return Err(self.round_refused(format!(
                    "round {round} was never started (the newest round is {newest})"
                )));
            }
            if round < newest {
                return Ok(None);
            }
            let Some(row) = tx
                .query_opt(&candidate, &[&now, &full, &cap, &round, &spec.retry_failed])
                .await
                .map_err(err)?
            else {
                return Ok(None);
            };
            let (id, key, host): (i64, String, Option<String>) =
                (row.get(0), row.get(1), row.get(2));
            if let (Some(h), Some(cap)) = (&host, cap) {
                // Serialise claims per host, then count again: the count above ran before this
                // lock, so another worker may have taken the last slot since.
                tx.execute(
                    "SELECT pg_advisory_xact_lock(hashtext('mailferry.host:' || $1))",
                    &[h],
                )
                .await
                .map_err(err)?;
                let live: i64 = tx
                    .query_one(&count, &[&now, h, &id])
                    .await
                    .map_err(err)?
                    .get(0);
                if live >= cap {
                    tx.rollback().await.map_err(err)?;
                    full.push(h.clone());
                    continue;
                }
            }
            let generation: i64 = tx
                .query_one(&take, &[&id, &lease_ms, &self.worker, &now, &round])
                .await
                .map_err(err)?
                .get(0);
            tx.commit().await.map_err(err)?;
            let lease = Lease {
                mailbox_id: id,
                mailbox: key,
                generation,
                source_host: host,
                round,
            };
            self.hold(&lease, lease_ms, asked);
            return Ok(Some(lease));
        }
    }

    /// Extends the lease by `lease_ms` from now and records a heartbeat. Fails with
    /// [`LeaseLost`] if the generation changed or the lease was released. A lease that expired
    /// but that nobody took over is renewed: no other worker has touched the mailbox.
    pub(super) async fn renew_once(
        &self,
        lease: &Lease,
        lease_ms: i64,
    ) -> Result<(), PgLedgerError> {
        let mut conn = self.conn().await?;
        let asked = std::time::Instant::now();
        let st = conn
            .prepared(concat!(
                "WITH w AS (UPDATE workers SET heartbeat_at = ",
                now_sql!(4),
                " WHERE id = $3)
                 UPDATE leases SET heartbeat_at = ",
                now_sql!(4),
                ", expires_at = ",
                now_sql!(4),
                " + $5::bigint * interval '1 millisecond'
                 WHERE mailbox_id = $1 AND generation = $2 AND owner = $3 AND outcome IS NULL"
            ))
            .await
            .map_err(|e| db_err(&self.url, e))?;
        let n = conn
            .client
            .execute(
                &st,
                &[
                    &lease.mailbox_id,
                    &lease.generation,
                    &self.worker,
                    &self.clock.param(),
                    &lease_ms,
                ],
            )
            .await
            .map_err(|e| db_err(&self.url, e))?;
        if n == 1 {
            self.hold(lease, lease_ms, asked);
            return Ok(());
        }
        Err(self.lost(&mut conn, lease).await)
    }

    /// Gives the mailbox back: finished for this round (`Ok`, `Failed`) or free to claim again
    /// (`Interrupted`). Fails with [`LeaseLost`] if the lease is no longer this worker's.
    pub(super) async fn release_once(
        &self,
        lease: &Lease,
        outcome: Outcome,
    ) -> Result<(), PgLedgerError> {
        let mut conn = self.conn().await?;
        let st = conn
            .prepared(concat!(
                "UPDATE leases SET owner = NULL, expires_at = NULL, outcome = $4::text,
                 finished_at = CASE WHEN $4::text IS NULL THEN NULL ELSE ",
                now_sql!(5),
                " END,
                 last_outcome = COALESCE($4::text, last_outcome),
                 last_outcome_round = CASE WHEN $4::text IS NULL THEN last_outcome_round
                   ELSE round END
                 WHERE mailbox_id = $1 AND generation = $2 AND owner = $3 AND outcome IS NULL"
            ))
            .await
            .map_err(|e| db_err(&self.url, e))?;
        let n = conn
            .client
            .execute(
                &st,
                &[
                    &lease.mailbox_id,
                    &lease.generation,
                    &self.worker,
                    &outcome.column(),
                    &self.clock.param(),
                ],
            )
            .await
            .map_err(|e| db_err(&self.url, e))?;
        if n == 1 {
            self.forget(lease);
            return Ok(());
        }
        Err(self.lost(&mut conn, lease).await)
    }

    /// Live leases on one source host right now (what the host cap counts).
    pub(super) async fn host_leases_once(&self, host: &str) -> Result<i64, PgLedgerError> {
        let conn = self.conn().await?;
        let row = conn
            .client
            .query_one(
                concat!(
                    "SELECT count(*) FROM leases WHERE source_host = $2 AND owner IS NOT NULL
                     AND expires_at > ",
                    now_sql!(1)
                ),
                &[&self.clock.param(), &host],
            )
            .await
            .map_err(|e| db_err(&self.url, e))?;
        Ok(row.get(0))
    }

    /// Every mailbox's lease, by mailbox key.
    pub(super) async fn leases_once(&self) -> Result<Vec<LeaseRow>, PgLedgerError> {
        let conn = self.conn().await?;
        let rows = conn
            .client
            .query(
                concat!(
                    "SELECT mb.key, l.source_host, l.owner, w.hostname, l.generation,
                       (EXTRACT(EPOCH FROM (l.expires_at - ",
                    now_sql!(1),
                    ")) * 1000)::bigint,
                       (EXTRACT(EPOCH FROM (",
                    now_sql!(1),
                    " - l.heartbeat_at)) * 1000)::bigint,
                       l.outcome, l.round, l.last_outcome, l.last_outcome_round
                     FROM leases l JOIN mailboxes mb ON mb.id = l.mailbox_id
                     LEFT JOIN workers w ON w.id = l.owner
                     ORDER BY mb.key"
                ),
                &[&self.clock.param()],
            )
            .await
            .map_err(|e| db_err(&self.url, e))?;
        Ok(rows
            .iter()
            .map(|r| LeaseRow {
                mailbox: r.get(0),
                source_host: r.get(1),
                owner: r.get(2),
                owner_hostname: r.get(3),
                generation: r.get(4),
                expires_in_ms: r.get(5),
                heartbeat_age_ms: r.get(6),
                outcome: r.get(7),
                round: r.get(8),
                last_outcome: r.get(9),
                last_outcome_round: r.get(10),
            })
            .collect())
    }

    /// Runs `body` in one transaction after checking, under a share lock on the lease row, that
    /// `lease` is still this worker's, current and unexpired. The lock keeps a concurrent claim
    /// from raising the generation until the transaction ends, so the check holds for every
    /// statement of `body`. A refused fence changes nothing.
    ///
    /// If the connection breaks, the whole transaction (fence check included) runs again on a
    /// new connection: before the commit was sent nothing was recorded, and every fenced write
    /// but one sets rows to values that do not depend on whether it ran before, so even a
    /// commit whose outcome is unknown may be repeated. The exception uses
    /// [`PgLedger::fenced_once`].
    pub(super) async fn fenced<T>(
        &self,
        lease: &Lease,
        body: impl AsyncFn(&mut Tx<'_>) -> Result<T, Fail>,
    ) -> Result<T, PgLedgerError> {
        self.fenced_as(lease, true, body).await
    }

    /// [`PgLedger::fenced`] for a write whose repetition after a commit that did happen would
    /// change what it does (`claim_by_hash`): repeated only when the connection broke before the
    /// commit was sent; an unknown commit surfaces as an error (the engine leaves the message
    /// for the next pass, which finds it by its identity, never sends it twice).
    pub(super) async fn fenced_once<T>(
        &self,
        lease: &Lease,
        body: impl AsyncFn(&mut Tx<'_>) -> Result<T, Fail>,
    ) -> Result<T, PgLedgerError> {
        self.fenced_as(lease, false, body).await
    }

    async fn fenced_as<T>(
        &self,
        lease: &Lease,
        repeatable: bool,
        body: impl AsyncFn(&mut Tx<'_>) -> Result<T, Fail>,
    ) -> Result<T, PgLedgerError> {
        let first = std::time::Instant::now();
        loop {
            let mut guard = self.conn().await?;
            let mut committing = false;
            let result = self
                .fenced_try(&mut guard, lease, &body, &mut committing)
                .await;
            match result {
                Ok(v) => return Ok(v),
                Err(Fail::Db(e))
                    if (repeatable || !committing) && self.again(&guard, &e, first) =>
                {
                    tracing::debug!(
                        mailbox = lease.mailbox,
                        "fenced write cut by a lost connection; running it again"
                    );
                }
                Err(Fail::Db(e)) => {
                    if committing {
                        guard.mark_broken(&e);
                    }
                    return Err(db_err(&self.url, e));
                }
                Err(Fail::Ledger(e)) => return Err(e),
            }
        }
    }

    /// One try of a fenced transaction; `committing` is set once the commit is on its way.
    async fn fenced_try<T>(
        &self,
        conn: &mut Conn,
        lease: &Lease,
        body: &impl AsyncFn(&mut Tx<'_>) -> Result<T, Fail>,
        committing: &mut bool,
    ) -> Result<T, Fail> {
        let check = conn
            .prepared(concat!(
                "SELECT generation, owner, outcome, expires_at > ",
                now_sql!(2),
                " FROM leases WHERE mailbox_id = $1 FOR SHARE"
            ))
            .await?;
        let tx = conn.client.transaction().await?;
        let row = tx
            .query_opt(&check, &[&lease.mailbox_id, &self.clock.param()])
            .await?;
        let Some(row) = row else {
            return Err(Fail::Ledger(
                self.corrupt(format!("mailbox {} has no lease row", lease.mailbox)),
            ));
        };
        let (generation, owner, outcome, live): (
            i64,
            Option<String>,
            Option<String>,
            Option<bool>,
        ) = (row.get(0), row.get(1), row.get(2), row.get(3));
        let why = if generation != lease.generation {
            Some(LostWhy::TakenOver { generation })
        } else if owner.as_deref() != Some(self.worker.as_str()) || outcome.is_some() {
            Some(LostWhy::Released)
        } else if live != Some(true) {
            Some(LostWhy::Expired)
        } else {
            None
        };
        if let Some(why) = why {
            tx.rollback().await?;
            return Err(Fail::Ledger(PgLedgerError::LeaseLost(LeaseLost {
                mailbox: lease.mailbox.clone(),
                generation: lease.generation,
                why,
            })));
        }
        let mut t = Tx {
            tx,
            stmts: &mut conn.stmts,
        };
        let value = body(&mut t).await?;
        *committing = true;
        t.tx.commit().await?;
        Ok(value)
    }

    /// Works out why a lease matched no row (after a renew or release touched nothing).
    async fn lost(&self, conn: &mut Conn, lease: &Lease) -> PgLedgerError {
        let row = conn
            .client
            .query_opt(
                "SELECT generation, owner FROM leases WHERE mailbox_id = $1",
                &[&lease.mailbox_id],
            )
            .await;
        let why = match row {
            Err(e) => return db_err(&self.url, e),
            Ok(None) => {
                return self.corrupt(format!("mailbox {} has no lease row", lease.mailbox));
            }
            Ok(Some(r)) if r.get::<_, i64>(0) != lease.generation => LostWhy::TakenOver {
                generation: r.get(0),
            },
            Ok(Some(_)) => LostWhy::Released,
        };
        self.forget(lease);
        tracing::warn!(
            "mailbox {}: lease generation {} lost ({why})",
            lease.mailbox,
            lease.generation
        );
        PgLedgerError::LeaseLost(LeaseLost {
            mailbox: lease.mailbox.clone(),
            generation: lease.generation,
            why,
        })
    }
}
