//! `mailferry ledger copy --from … --to …`: moves a project's ledger between SQLite and
//! PostgreSQL, in either direction (the database work is in `src/ledger/copy.rs`).
//!
//! - SQLite -> PostgreSQL (into fleet mode, mid-project): the SQLite ledger's run lock is held
//!   for the whole copy (a run in progress is refused with exit 3, and none can start), the
//!   PostgreSQL ledger must be empty, and the plan is registered afterwards exactly as the
//!   first fleet worker would, so every mailbox gets its lease and workers can continue.
//! - PostgreSQL -> SQLite (backing out of fleet mode, or a backup): the SQLite file must be new
//!   or empty; its run lock is held while it is written. The read is one snapshot; mailboxes
//!   being worked on at that moment are counted so the operator can be told.
//!
//! SQLite to SQLite and PostgreSQL to PostgreSQL are refused: `cp` (with no run holding the
//! lock) and `pg_dump` do those better.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use super::{AppError, fleet, ledger_error};
use crate::ledger::postgres::{Clock, PgLedger, PgUrl, UrlError, UrlOrigin};
use crate::ledger::{CopyError, Ledger, TableCount};
use crate::plan::Plan;
use crate::secret::Secret;

/// A ledger named on the command line.
#[derive(Debug, Clone)]
pub enum LedgerLocation {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL server (the password from `PGPASSWORD`).
    Postgres(PgUrl),
}

impl LedgerLocation {
    /// `postgres://…` or `postgresql://…` is a server; anything else a SQLite file.
    pub fn parse(text: &str) -> Result<LedgerLocation, UrlError> {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            let password = std::env::var("PGPASSWORD").ok().map(Secret::new);
            PgUrl::parse(text, UrlOrigin::CommandLine, password).map(LedgerLocation::Postgres)
        } else {
            Ok(LedgerLocation::Sqlite(PathBuf::from(text)))
        }
    }
}

impl std::fmt::Display for LedgerLocation {
    /// The file, or the server's URL without its password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LedgerLocation::Sqlite(p) => write!(f, "{}", p.display()),
            LedgerLocation::Postgres(u) => write!(f, "{u}"),
        }
    }
}

/// What a copy did.
#[derive(Debug, Clone, Serialize)]
pub struct CopyOutcome {
    pub from: String,
    pub to: String,
    /// Rows copied per table, in copy order.
    pub tables: Vec<TableCount>,
    /// Into PostgreSQL: the plan's mailboxes, each now with a lease fleet workers can claim.
    pub plan_mailboxes: Option<usize>,
    /// From PostgreSQL: mailboxes a worker was working on when the snapshot was taken (their
    /// progress since is not in the copy).
    pub mailboxes_in_flight: Option<usize>,
}

/// Copies the ledger at `from` into the empty ledger at `to`. `plan` is required into
/// PostgreSQL (it is registered there) and unused otherwise.
pub async fn ledger_copy(
    from: &LedgerLocation,
    to: &LedgerLocation,
    plan: Option<&Plan>,
) -> Result<CopyOutcome, AppError> {
    let copy_error = |e: CopyError| match e {
        CopyError::Ledger(e) => ledger_error(e),
        e => AppError::Copy(e),
    };
    let (tables, plan_mailboxes, mailboxes_in_flight) = match (from, to) {
        (LedgerLocation::Sqlite(path), LedgerLocation::Postgres(url)) => {
            let Some(plan) = plan else {
                return Err(AppError::Usage(
                    "a copy into PostgreSQL needs --plan: fleet workers need the plan \
                     registered with the ledger"
                        .into(),
                ));
            };
            if !path.exists() {
                return Err(AppError::NoLedger(path.clone()));
            }
            // Held until the copy is committed: no run may change the ledger under the copy.
            let _lock = Ledger::lock_run(path).map_err(ledger_error)?;
            let source = Ledger::open(path).map_err(ledger_error)?;
            let db = PgLedger::connect(url, Clock::Database).await?;
            let tables = db.import_ledger(&source).await.map_err(copy_error)?;
            let identity = fleet::plan_identity(plan);
            db.register_plan(&identity).await?;
            (tables, Some(identity.mailboxes.len()), None)
        }
        (LedgerLocation::Postgres(url), LedgerLocation::Sqlite(path)) => {
            let db = Arc::new(PgLedger::connect(url, Clock::Database).await?);
            let in_flight = db
                .leases()
                .await?
                .iter()
                .filter(|l| {
                    l.outcome.is_none()
                        && l.owner.is_some()
                        && l.expires_in_ms.is_some_and(|ms| ms > 0)
                })
                .count();
            // The target's run lock, taken before the file is created: no run can start on
            // a half-written ledger.
            let _lock = Ledger::lock_run(path).map_err(ledger_error)?;
            let target = Ledger::open(path).map_err(ledger_error)?;
            let tables = db.export_ledger(&target).await.map_err(copy_error)?;
            (tables, None, Some(in_flight))
        }
        (LedgerLocation::Sqlite(_), LedgerLocation::Sqlite(_)) => {
            return Err(AppError::Usage(
                "both ledgers are SQLite files: copy the file with cp while no run holds its lock"
                    .into(),
            ));
        }
        (LedgerLocation::Postgres(_), LedgerLocation::Postgres(_)) => {
            return Err(AppError::Usage(
                "both ledgers are PostgreSQL databases: use pg_dump and pg_restore".into(),
            ));
        }
    };
    Ok(CopyOutcome {
        from: from.to_string(),
        to: to.to_string(),
        tables,
        plan_mailboxes,
        mailboxes_in_flight,
    })
}
