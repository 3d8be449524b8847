//! Read-only summaries on PostgreSQL: the SQLite ledger's (`progress`, `failure_groups`, `runs`,
//! `folder_counts`, `recheck_rows`, mirrored from src/ledger/queries.rs and messages.rs) and the
//! fleet's own for `status --ledger URL` (`workers`, `mailbox_rates`). Reads take no lease: a
//! summary that is a moment old is still a true summary.
//!
//! SQLite sums booleans and returns integers from `SUM`; PostgreSQL needs `count(*) FILTER` for
//! the former and returns `numeric` from `SUM(bigint)`, hence the casts.

use serde::Serialize;

use super::{PgLedger, PgLedgerError, now_sql};
use crate::ledger::{FailureGroup, FolderCounts, MailboxProgress, MessageRow, RunRow};
use crate::model::UidValidity;

/// A worker counts as alive without holding a live lease if its last heartbeat (registration,
/// claim or renew, or [`PgLedger::heartbeat`]) is younger than this: two minutes, several
/// renew periods of any sensible `lease_secs`, so one slow renew does not flip it.
pub const WORKER_ALIVE_MS: i64 = 120_000;

/// One worker as `status --ledger URL` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkerRow {
    pub id: String,
    pub hostname: String,
    pub pid: i64,
    /// When it registered (RFC 3339, UTC, milliseconds).
    pub started_at: String,
    /// Milliseconds since its last heartbeat.
    pub heartbeat_age_ms: i64,
    /// It said goodbye (`stop_worker`).
    pub stopped: bool,
    /// Not stopped, and it holds an unexpired lease or its heartbeat is younger than
    /// [`WORKER_ALIVE_MS`].
    pub alive: bool,
    /// Runs it started.
    pub runs: i64,
    /// Mailboxes whose lease it holds, unexpired.
    pub mailboxes_held: i64,
}

impl PgLedger {
    /// Done rows of a folder still waiting for the orphan check.
    pub async fn recheck_rows(
        &self,
        folder: i64,
        uid_validity: UidValidity,
    ) -> Result<Vec<MessageRow>, PgLedgerError> {
        let rows = self
            .read(
                "SELECT id, uid_validity, uid, size, sha256, message_id, internal_date, flags,
                   state, dest_id, attempts, last_error, error_class, source_gone
                 FROM messages WHERE folder_id = $1 AND uid_validity = $2
                 AND recheck = 1 AND state = 'done'",
                &[&folder, &i64::from(uid_validity.get())],
            )
            .await?;
        rows.iter().map(|r| self.message_row(r)).collect()
    }

    /// Progress of every mailbox the ledger knows, by key.
    pub async fn progress(&self) -> Result<Vec<MailboxProgress>, PgLedgerError> {
        let rows = self
            .read(
                "SELECT mb.key, mb.destination, mb.state, mb.last_run, mb.last_error,
                   (SELECT count(*) FROM folders f WHERE f.mailbox_id = mb.id),
                   count(*) FILTER (WHERE m.state = 'pending'),
                   count(*) FILTER (WHERE m.state = 'sending'),
                   count(*) FILTER (WHERE m.state = 'done'),
                   count(*) FILTER (WHERE m.state = 'skipped'),
                   count(*) FILTER (WHERE m.state = 'failed'),
                   COALESCE(SUM(CASE WHEN m.state = 'done' THEN m.size ELSE 0 END), 0)::bigint,
                   COALESCE(SUM(m.size), 0)::bigint, COALESCE(SUM(m.source_gone), 0)::bigint,
                   mb.source_folders,
                   (SELECT count(*) FROM folders f WHERE f.mailbox_id = mb.id
                      AND f.source_messages IS NOT NULL),
                   (SELECT COALESCE(SUM(f.source_messages), 0)::bigint FROM folders f
                      WHERE f.mailbox_id = mb.id),
                   (SELECT COALESCE(SUM(f.source_bytes), 0)::bigint FROM folders f
                      WHERE f.mailbox_id = mb.id)
                 FROM mailboxes mb
                 LEFT JOIN folders f ON f.mailbox_id = mb.id
                 LEFT JOIN messages m ON m.folder_id = f.id
                 GROUP BY mb.id ORDER BY mb.key",
                &[],
            )
            .await?;
        let n = |r: &tokio_postgres::Row, i: usize| r.get::<_, i64>(i).max(0) as u64;
        Ok(rows
            .iter()
            .map(|r| MailboxProgress {
                mailbox: r.get(0),
                destination: r.get(1),
                state: r.get(2),
                last_run: r.get(3),
                last_error: r.get(4),
                folders: n(r, 5),
                pending: n(r, 6),
                sending: n(r, 7),
                done: n(r, 8),
                skipped: n(r, 9),
                failed: n(r, 10),
                bytes_done: n(r, 11),
                bytes_total: n(r, 12),
                source_gone: n(r, 13),
                source_folders: r.get::<_, Option<i64>>(14).map(|v| v.max(0) as u64),
                folders_listed: n(r, 15),
                source_messages: n(r, 16),
                source_bytes: n(r, 17),
            })
            .collect())
    }

    /// Failed and skipped messages grouped by mailbox, class and reason, largest groups first.
    /// Reasons are compared without their request ids and timestamps (each row keeps them).
    pub async fn failure_groups(&self) -> Result<Vec<FailureGroup>, PgLedgerError> {
        let rows = self
            .read(
                // Ties are broken by class and reason as well: PostgreSQL, unlike SQLite's
                // GROUP BY, gives no stable order of its own.
                "SELECT mb.key, COALESCE(m.error_class, m.state), COALESCE(m.last_error, ''),
                   count(*)
                 FROM messages m JOIN folders f ON m.folder_id = f.id
                 JOIN mailboxes mb ON f.mailbox_id = mb.id
                 WHERE m.state IN ('failed', 'skipped')
                 GROUP BY 1, 2, 3 ORDER BY 4 DESC, 1, 2, 3",
                &[],
            )
            .await?;
        let exact = rows
            .iter()
            .map(|r| FailureGroup {
                mailbox: r.get(0),
                class: r.get(1),
                reason: r.get(2),
                count: r.get::<_, i64>(3).max(0) as u64,
            })
            .collect();
        Ok(crate::ledger::queries::regroup(exact))
    }

    /// The most recent runs, newest first, with the worker that started each.
    pub async fn runs(&self, limit: usize) -> Result<Vec<RunRow>, PgLedgerError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .read(
                "SELECT id, command, started_at, finished_at, status, worker FROM runs
                 ORDER BY id DESC LIMIT $1",
                &[&limit],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| RunRow {
                id: r.get(0),
                command: r.get(1),
                started_at: r.get(2),
                finished_at: r.get(3),
                status: r.get(4),
                worker: r.get(5),
            })
            .collect())
    }

    /// Per-folder counts of one mailbox.
    pub async fn folder_counts(&self, mailbox: i64) -> Result<Vec<FolderCounts>, PgLedgerError> {
        let rows = self
            .read(
                "SELECT f.id, f.source_name, f.mapped_name, f.dest_id,
                   count(*) FILTER (WHERE m.state = 'done'),
                   COALESCE(SUM(CASE WHEN m.state = 'done' THEN m.size ELSE 0 END), 0)::bigint,
                   count(*) FILTER (WHERE m.state = 'skipped'),
                   count(*) FILTER (WHERE m.state NOT IN ('done', 'skipped'))
                 FROM folders f LEFT JOIN messages m ON m.folder_id = f.id AND m.source_gone = 0
                 WHERE f.mailbox_id = $1 GROUP BY f.id ORDER BY f.source_name",
                &[&mailbox],
            )
            .await?;
        let n = |r: &tokio_postgres::Row, i: usize| r.get::<_, i64>(i).max(0) as u64;
        Ok(rows
            .iter()
            .map(|r| FolderCounts {
                folder_id: r.get(0),
                source_name: r.get(1),
                mapped_name: r.get(2),
                dest_id: r.get(3),
                done: n(r, 4),
                done_bytes: n(r, 5),
                skipped: n(r, 6),
                other: n(r, 7),
            })
            .collect())
    }

    /// Records a heartbeat of this worker without touching any lease: for a worker that holds
    /// nothing (waiting for a host slot) and must still count as alive.
    pub(super) async fn heartbeat_once(&self) -> Result<(), PgLedgerError> {
        let conn = self.conn().await?;
        conn.client
            .execute(
                concat!(
                    "UPDATE workers SET heartbeat_at = ",
                    now_sql!(1),
                    " WHERE id = $2"
                ),
                &[&self.clock.param(), &self.worker],
            )
            .await
            .map_err(|e| super::db_err(&self.url, e))?;
        Ok(())
    }

    /// Every worker that ever registered, oldest first (see [`WorkerRow`] for what each field
    /// means; `alive` uses [`WORKER_ALIVE_MS`]).
    pub async fn workers(&self) -> Result<Vec<WorkerRow>, PgLedgerError> {
        let rows = self
            .read(
                concat!(
                    "SELECT w.id, w.hostname, w.pid,
                       (EXTRACT(EPOCH FROM w.started_at) * 1000)::bigint,
                       (EXTRACT(EPOCH FROM (",
                    now_sql!(1),
                    " - w.heartbeat_at)) * 1000)::bigint,
                       w.stopped_at IS NOT NULL,
                       (SELECT count(*) FROM runs r WHERE r.worker = w.id),
                       (SELECT count(*) FROM leases l WHERE l.owner = w.id
                          AND l.outcome IS NULL AND l.expires_at > ",
                    now_sql!(1),
                    ")
                     FROM workers w ORDER BY w.started_at, w.id"
                ),
                &[&self.clock.param()],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let started: i64 = r.get(3);
                let heartbeat_age_ms: i64 = r.get(4);
                let stopped: bool = r.get(5);
                let mailboxes_held: i64 = r.get(7);
                WorkerRow {
                    id: r.get(0),
                    hostname: r.get(1),
                    pid: r.get(2),
                    started_at: chrono::DateTime::from_timestamp_millis(started)
                        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                        .unwrap_or_default(),
                    heartbeat_age_ms,
                    stopped,
                    alive: !stopped && (mailboxes_held > 0 || heartbeat_age_ms < WORKER_ALIVE_MS),
                    runs: r.get(6),
                    mailboxes_held,
                }
            })
            .collect())
    }

    /// Messages done per second, by mailbox key: for a mailbox being worked on now (an
    /// unexpired, unfinished lease), by its lease holder since it claimed the mailbox; for a
    /// finished one, by its last pass.
    ///
    /// - Being worked on: `done` rows of the mailbox whose `updated_run` is one of the holder's
    ///   runs (rows it finished in an earlier claim of the same mailbox count too), over the
    ///   time from the lease's `claimed_at` to now, at least one second so a fresh claim does
    ///   not divide by nearly zero.
    /// - Finished (`ok` or `failed`): `done` rows whose `updated_run` is the run that recorded
    ///   the mailbox's outcome (`mailboxes.last_run`), over `claimed_at` to `finished_at`. A
    ///   pass that found everything already copied has a rate of 0.
    ///
    /// A mailbox never claimed, or whose holder's lease expired unfinished, has no rate.
    pub async fn mailbox_rates(&self) -> Result<Vec<(String, f64)>, PgLedgerError> {
        let rows = self
            .read(
                concat!(
                    "SELECT mb.key,
                       CASE WHEN l.outcome IS NULL THEN
                         (SELECT count(*) FROM folders f JOIN messages m ON m.folder_id = f.id
                          WHERE f.mailbox_id = l.mailbox_id AND m.state = 'done'
                            AND m.updated_run IN (SELECT r.id FROM runs r WHERE r.worker = l.owner))
                       ELSE
                         (SELECT count(*) FROM folders f JOIN messages m ON m.folder_id = f.id
                          WHERE f.mailbox_id = l.mailbox_id AND m.state = 'done'
                            AND m.updated_run = mb.last_run)
                       END,
                       CASE WHEN l.outcome IS NULL THEN
                         GREATEST(EXTRACT(EPOCH FROM (",
                    now_sql!(1),
                    " - l.claimed_at))::float8, 1.0)
                       ELSE
                         GREATEST(EXTRACT(EPOCH FROM (l.finished_at - l.claimed_at))::float8, 0.001)
                       END
                     FROM leases l JOIN mailboxes mb ON mb.id = l.mailbox_id
                     WHERE (l.owner IS NOT NULL AND l.outcome IS NULL AND l.expires_at > ",
                    now_sql!(1),
                    ")
                        OR (l.outcome IS NOT NULL AND l.claimed_at IS NOT NULL
                            AND l.finished_at IS NOT NULL)
                     ORDER BY mb.key"
                ),
                &[&self.clock.param()],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let done: i64 = r.get(1);
                let secs: f64 = r.get(2);
                (r.get(0), done as f64 / secs)
            })
            .collect())
    }
}
