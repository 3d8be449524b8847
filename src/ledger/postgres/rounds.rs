//! Rounds: how a fleet passes the whole plan again after it finished (the incremental pass
//! after the MX switch), the fleet's equivalent of running `migrate` again on SQLite.
//!
//! A lease's outcome (`ok`, `failed`) finishes its mailbox for one round only. Round 1 exists
//! from the start; `migrate --round N` opens round N (the next one) and every mailbox becomes
//! claimable again in it, each exactly once. Rounds only move forward: a row's round is raised
//! by a claim and never lowered, an older round than the newest cannot be joined, and a worker
//! of a superseded round claims nothing more (it finishes what it holds). The claim rule itself
//! is in [`PgLedger::claim_in`] (`lease.rs`); see docs/fleet.md and docs/decisions.md
//! ("Fleet mode: rounds").

use super::{PgLedger, PgLedgerError, db_err, now_sql};

/// Which round a worker works in, and whether it retries the round's failed mailboxes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RoundSpec {
    /// The round (`None`: the newest the ledger knows, looked up at every claim, so a worker
    /// started without `--round` follows the fleet into a round opened while it runs).
    pub round: Option<i64>,
    /// `--retry-failed`: a mailbox whose outcome in the round is `failed` is claimable once
    /// more in that round.
    pub retry_failed: bool,
}

impl PgLedger {
    /// The newest round opened (1 on a new ledger).
    pub async fn newest_round(&self) -> Result<i64, PgLedgerError> {
        let rows = self
            .read("SELECT COALESCE(max(round), 1) FROM fleet_rounds", &[])
            .await?;
        Ok(rows.first().map_or(1, |r| r.get(0)))
    }

    /// Joins round `round`, opening it when it is the one after the newest. Refused (a usage
    /// error) when it is older than the newest (that round is over: its mailboxes are claimed
    /// in the newer one) or more than one past it (a typo there would make every later round
    /// number "older"). Workers opening the same round at once all succeed.
    ///
    /// Repeated after a lost connection: joining or opening the same round twice is one open.
    pub async fn open_round(&self, round: i64) -> Result<(), PgLedgerError> {
        self.retrying(move || self.open_round_once(round)).await
    }

    async fn open_round_once(&self, round: i64) -> Result<(), PgLedgerError> {
        let mut conn = self.conn().await?;
        let err = |e| db_err(&self.url, e);
        let tx = conn.client.transaction().await.map_err(err)?;
        // Serialises openers (claims only read the table and are not held up).
        tx.batch_execute("LOCK TABLE fleet_rounds IN SHARE ROW EXCLUSIVE MODE")
            .await
            .map_err(err)?;
        let newest: i64 = tx
            .query_one("SELECT COALESCE(max(round), 1) FROM fleet_rounds", &[])
            .await
            .map_err(err)?
            .get(0);
        if round < newest {
            return Err(self.round_refused(format!(
                "round {round} is over: the newest round is {newest} (join it with --round \
                 {newest}, or start round {} with --round {})",
                newest + 1,
                newest + 1
            )));
        }
        if round > newest + 1 {
            return Err(self.round_refused(format!(
                "round {round} cannot start: the newest round is {newest}, so the next is {}",
                newest + 1
            )));
        }
        if round == newest + 1 {
            tx.execute(
                concat!(
                    "INSERT INTO fleet_rounds (round, started_at) VALUES ($2, ",
                    now_sql!(1),
                    ")"
                ),
                &[&self.clock.param(), &round],
            )
            .await
            .map_err(err)?;
            tracing::info!(round, "started a new round");
        }
        tx.commit().await.map_err(err)
    }

    /// Whether round `spec` still has work: a mailbox not yet passed in it, or one held or free
    /// and without an outcome in it (or, with a retry, failed in it and not retried yet).
    /// False for a superseded round. A worker whose claim found nothing keeps watching while
    /// this holds: the holders may die, and their mailboxes are then taken over.
    pub async fn round_has_work(&self, spec: RoundSpec) -> Result<bool, PgLedgerError> {
        let rows = self
            .read(
                "WITH n AS (SELECT COALESCE(max(round), 1) AS newest FROM fleet_rounds),
                      r AS (SELECT COALESCE($1::bigint, newest) AS round, newest FROM n)
                 SELECT EXISTS (SELECT 1 FROM leases l, r WHERE r.round >= r.newest
                   AND (l.round < r.round OR (l.round = r.round AND (l.outcome IS NULL
                     OR ($2::boolean AND l.outcome = 'failed' AND NOT l.retried)))))",
                &[&spec.round, &spec.retry_failed],
            )
            .await?;
        Ok(rows.first().is_some_and(|r| r.get(0)))
    }

    pub(super) fn round_refused(&self, what: String) -> PgLedgerError {
        PgLedgerError::Round {
            target: self.url.to_string(),
            what,
        }
    }
}
