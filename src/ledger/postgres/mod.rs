//! The ledger on PostgreSQL, for fleet mode: many workers on many machines share one plan.
//!
//! It holds the SQLite ledger's tables (same versioned migrations, see [`schema`]) plus fleet
//! mode's own: the plan's identity, the workers, and one lease per mailbox. A worker claims a
//! mailbox ([`PgLedger::claim`]), renews the lease while it works and releases it at the end;
//! every state change it records goes through a *fence*: the write happens only if the lease's
//! generation is still the one the worker claimed, unexpired and its own, otherwise it fails with
//! [`LeaseLost`] and changes nothing. A worker that was frozen past its lease therefore cannot
//! record anything once another worker has taken the mailbox over.
//!
//! Times that decide leases come from the database's clock (one clock for the whole fleet), or
//! from a [`Clock::Manual`] that tests move by hand. The connection is one `tokio-postgres`
//! client behind an async lock, replaced when it breaks ([`reconnect`]: the held leases are
//! renewed on the new one before anything else; [`retry`] lists which calls are repeated); TLS
//! goes through tokio-rustls ([`tls`]).

mod copy;
mod identity;
mod lease;
mod messages;
mod queries;
mod reconnect;
mod retry;
mod rounds;
mod rows;
mod schema;
mod tls;
mod url;

pub use identity::{PlanIdentity, PlanMailbox};
pub use lease::{Lease, LeaseRow, Outcome};
pub use queries::{WORKER_ALIVE_MS, WorkerRow};
pub use reconnect::{CLAIM_GRACE, DEFAULT_OUTAGE_LIMIT};
pub use rounds::RoundSpec;
pub use schema::{FLEET_VERSION, LEDGER_VERSION};
pub use url::{PgHost, PgUrl, SslMode, UrlError, UrlOrigin};

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tokio_postgres::{Client, Statement};

/// Errors from the PostgreSQL ledger: each names the server (never the password).
#[derive(Debug, thiserror::Error)]
pub enum PgLedgerError {
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error("ledger {target}: {what}")]
    Tls { target: String, what: String },
    #[error("ledger {target}: {detail}")]
    Db {
        target: String,
        /// The error with its causes (tokio-postgres' own `Display` is only the first line).
        detail: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error(
        "ledger {target} was written by a newer mailferry ({track} schema {found}, this build knows {known})"
    )]
    TooNew {
        target: String,
        track: &'static str,
        found: i64,
        known: i64,
    },
    #[error(transparent)]
    LeaseLost(#[from] LeaseLost),
    #[error("ledger {target} belongs to another plan: {}", differences.join("; "))]
    PlanMismatch {
        target: String,
        differences: Vec<String>,
    },
    #[error("ledger {target}: {what}")]
    Corrupt { target: String, what: String },
    /// `--round` names a round that cannot be worked (over, or not the next one).
    #[error("ledger {target}: {what}")]
    Round { target: String, what: String },
}

impl PgLedgerError {
    /// True when a fenced write was refused because this worker no longer holds the lease.
    pub fn is_lease_lost(&self) -> bool {
        matches!(self, PgLedgerError::LeaseLost(_))
    }
}

/// A fenced write was refused: the worker no longer holds the mailbox's lease, so it must stop
/// working on that mailbox at once (another worker may be working on it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "mailbox {mailbox}: lease generation {generation} lost ({why}); this worker stops the mailbox"
)]
pub struct LeaseLost {
    pub mailbox: String,
    pub generation: i64,
    pub why: LostWhy,
}

/// Why a lease is no longer held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LostWhy {
    /// Another claim raised the generation (the lease had expired).
    TakenOver { generation: i64 },
    /// The lease expired (nobody has taken it over yet); renew before writing.
    Expired,
    /// The lease was released (or finished) by this worker already.
    Released,
}

impl std::fmt::Display for LostWhy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LostWhy::TakenOver { generation } => {
                write!(f, "taken over by another worker as generation {generation}")
            }
            LostWhy::Expired => f.write_str("expired before this write"),
            LostWhy::Released => f.write_str("already released"),
        }
    }
}

/// Where "now" comes from for lease decisions.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// The database server's clock (`now()`): the one all workers share.
    #[default]
    Database,
    /// Milliseconds since the Unix epoch, set by hand (tests: leases expire without sleeping).
    Manual(Arc<AtomicI64>),
}

impl Clock {
    /// A manual clock starting at `start_ms`.
    pub fn manual(start_ms: i64) -> Clock {
        Clock::Manual(Arc::new(AtomicI64::new(start_ms)))
    }

    /// Moves a manual clock forward (no effect on the database clock).
    pub fn advance(&self, by: Duration) {
        if let Clock::Manual(ms) = self {
            ms.fetch_add(by.as_millis() as i64, Ordering::SeqCst);
        }
    }

    /// The SQL parameter: `None` lets the query use the database's `now()`.
    fn param(&self) -> Option<i64> {
        match self {
            Clock::Database => None,
            Clock::Manual(ms) => Some(ms.load(Ordering::SeqCst)),
        }
    }
}

/// The SQL for "now" given the clock parameter `$n` (a literal, so queries stay `&'static str`).
macro_rules! now_sql {
    ($n:literal) => {
        concat!("COALESCE(to_timestamp($", $n, "::bigint / 1000.0), now())")
    };
}
pub(crate) use now_sql;

/// The connection and its prepared statements (prepared once per connection: a statement
/// prepared per call would double the round trips of every ledger write).
pub(crate) struct Conn {
    client: Client,
    stmts: HashMap<&'static str, Statement>,
    /// Why the connection broke, once it has (see [`reconnect`]).
    broken: reconnect::Broken,
}

/// An open PostgreSQL ledger for one worker. Share it behind an `Arc`.
pub struct PgLedger {
    url: PgUrl,
    conn: tokio::sync::Mutex<Conn>,
    dialer: reconnect::Dialer,
    outage: std::sync::Mutex<reconnect::Outage>,
    /// The leases this worker holds (with their length in ms), renewed after a reconnect.
    held: std::sync::Mutex<HashMap<i64, reconnect::Held>>,
    clock: Clock,
    worker: String,
}

impl PgLedger {
    /// Connects to `url`, migrates the schema, and takes a fresh worker id (not yet registered:
    /// see [`PgLedger::register_worker`]).
    pub async fn connect(url: &PgUrl, clock: Clock) -> Result<PgLedger, PgLedgerError> {
        let dialer = reconnect::Dialer::new(url)?;
        let mut conn = dialer.dial().await.map_err(|e| db_err(url, e))?;
        schema::migrate(&mut conn.client, url).await?;
        Ok(PgLedger {
            url: url.clone(),
            conn: tokio::sync::Mutex::new(conn),
            dialer,
            outage: std::sync::Mutex::default(),
            held: std::sync::Mutex::default(),
            clock,
            worker: uuid::Uuid::new_v4().to_string(),
        })
    }

    /// The server, for messages (never the password).
    pub fn url(&self) -> &PgUrl {
        &self.url
    }

    /// This worker's id (the lease owner it writes).
    pub fn worker_id(&self) -> &str {
        &self.worker
    }

    /// The schema versions the database is at, by track (`ledger`, `fleet`).
    pub async fn schema_versions(&self) -> Result<Vec<(String, i64)>, PgLedgerError> {
        let conn = self.conn().await?;
        let rows = conn
            .client
            .query(
                "SELECT track, version FROM schema_version ORDER BY track",
                &[],
            )
            .await
            .map_err(|e| db_err(&self.url, e))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Records the start of a run by this worker; returns its id. Runs are per worker and not
    /// fenced: they belong to no mailbox.
    pub async fn start_run(&self, command: &str) -> Result<i64, PgLedgerError> {
        let mut conn = self.conn().await?;
        let st = conn
            .prepared(
                "INSERT INTO runs (command, started_at, status, worker)
                 VALUES ($1, $2, 'running', $3) RETURNING id",
            )
            .await
            .map_err(|e| db_err(&self.url, e))?;
        let row = conn
            .client
            .query_one(&st, &[&command, &crate::ledger::now(), &self.worker])
            .await
            .map_err(|e| db_err(&self.url, e))?;
        Ok(row.get(0))
    }

    /// Records the end of a run.
    pub(super) async fn finish_run_once(
        &self,
        run: i64,
        status: &str,
        summary_json: &str,
    ) -> Result<(), PgLedgerError> {
        let mut conn = self.conn().await?;
        let st = conn
            .prepared("UPDATE runs SET finished_at = $2, status = $3, summary = $4 WHERE id = $1")
            .await
            .map_err(|e| db_err(&self.url, e))?;
        conn.client
            .execute(&st, &[&run, &crate::ledger::now(), &status, &summary_json])
            .await
            .map_err(|e| db_err(&self.url, e))?;
        Ok(())
    }

    /// Looks up a mailbox id without creating it (mailboxes are created by
    /// [`PgLedger::register_plan`]).
    pub(super) async fn find_mailbox_once(&self, key: &str) -> Result<Option<i64>, PgLedgerError> {
        let mut conn = self.conn().await?;
        let st = conn
            .prepared("SELECT id FROM mailboxes WHERE key = $1")
            .await
            .map_err(|e| db_err(&self.url, e))?;
        let row = conn
            .client
            .query_opt(&st, &[&key])
            .await
            .map_err(|e| db_err(&self.url, e))?;
        Ok(row.map(|r| r.get(0)))
    }

    fn corrupt(&self, what: impl Into<String>) -> PgLedgerError {
        PgLedgerError::Corrupt {
            target: self.url.to_string(),
            what: what.into(),
        }
    }
}

impl Conn {
    /// The prepared statement for `sql`, preparing it on first use.
    pub(crate) async fn prepared(
        &mut self,
        sql: &'static str,
    ) -> Result<Statement, tokio_postgres::Error> {
        if let Some(st) = self.stmts.get(sql) {
            return Ok(st.clone());
        }
        let st = self.client.prepare(sql).await?;
        self.stmts.insert(sql, st.clone());
        Ok(st)
    }
}

/// A database error with its causes, for messages.
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

pub(crate) fn db_err(url: &PgUrl, source: tokio_postgres::Error) -> PgLedgerError {
    PgLedgerError::Db {
        target: url.to_string(),
        detail: describe(&source),
        source,
    }
}
