//! Getting the connection back after PostgreSQL went away (a server restart, a failover, a cut
//! network): every call takes the connection through [`PgLedger::conn`], which replaces a
//! connection that broke with a new one (same URL, TLS and session settings, an empty
//! prepared-statement cache), retrying with backoff for a bounded outage, and renews every lease
//! this worker holds on the new connection *before* any other call can use it. Leases may have
//! expired while the server was away, and the fence refuses a write under an expired lease; a
//! lease another worker took over meanwhile is reported and forgotten, and the fence then
//! refuses that mailbox's writes as taken over.
//!
//! Calls wait for the reconnect (the lock is held throughout), so the worker pauses instead of
//! failing. Which calls are then repeated, and which surface their error because repeating
//! could double an effect, is decided by the callers (`read`, `fenced`); see docs/decisions.md,
//! "Fleet mode: reconnecting to PostgreSQL".

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};
use tokio_rustls::rustls::ClientConfig;

use super::{Conn, Lease, PgLedger, PgLedgerError, PgUrl, describe, now_sql, tls};

/// How long the worker waits for the database to come back before calls fail, unless set with
/// [`PgLedger::set_outage_limit`] (fleet mode sets several lease lengths).
pub const DEFAULT_OUTAGE_LIMIT: Duration = Duration::from_secs(300);

/// Why the connection a [`Conn`] wraps is no longer usable (set by its I/O task when it ends,
/// or by a call that failed with a connection-class error).
pub(super) type Broken = Arc<Mutex<Option<String>>>;

/// Opens connections with the settings the ledger was opened with.
pub(super) struct Dialer {
    cfg: tokio_postgres::Config,
    tls: Option<Arc<ClientConfig>>,
}

impl Dialer {
    pub(super) fn new(url: &PgUrl) -> Result<Dialer, PgLedgerError> {
        let mut cfg = tokio_postgres::Config::new();
        cfg.user(&url.user)
            .dbname(&url.dbname)
            .port(url.port)
            .application_name("mailferry")
            // A worker frozen (SIGSTOP, a stall) inside one of its short transactions would hold
            // the lease row's lock, and `FOR UPDATE SKIP LOCKED` would skip that mailbox for
            // as long: the server ends such a transaction after a few seconds instead.
            .options("-c idle_in_transaction_session_timeout=5000")
            .connect_timeout(Duration::from_secs(10))
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30));
        match &url.host {
            super::PgHost::Tcp(h) => cfg.host(h),
            super::PgHost::Socket(dir) => cfg.host_path(dir),
        };
        if let Some(pw) = &url.password {
            cfg.password(pw.expose().as_bytes());
        }
        let tls = tls::client_config(url.sslmode, url.sslrootcert.as_deref()).map_err(|what| {
            PgLedgerError::Tls {
                target: url.to_string(),
                what,
            }
        })?;
        cfg.ssl_mode(if tls.is_some() {
            tokio_postgres::config::SslMode::Require
        } else {
            tokio_postgres::config::SslMode::Disable
        });
        Ok(Dialer { cfg, tls })
    }

    /// A new connection, its I/O driven by a task of its own.
    pub(super) async fn dial(&self) -> Result<Conn, tokio_postgres::Error> {
        let broken: Broken = Arc::default();
        let client: Client = match &self.tls {
            None => {
                let (client, connection) = self.cfg.connect(NoTls).await?;
                tokio::spawn(drive(connection, Arc::clone(&broken)));
                client
            }
            Some(config) => {
                let (client, connection) = self
                    .cfg
                    .connect(tls::MakeRustls(Arc::clone(config)))
                    .await?;
                tokio::spawn(drive(connection, Arc::clone(&broken)));
                client
            }
        };
        Ok(Conn {
            client,
            stmts: HashMap::new(),
            broken,
        })
    }
}

/// Runs a connection's I/O until the client is dropped or the server goes away, then records
/// why it ended (the next call reconnects and says so).
async fn drive<S, T>(connection: tokio_postgres::Connection<S, T>, broken: Broken)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let why = match connection.await {
        Err(e) => describe(&e),
        Ok(()) => "closed by the server".to_owned(),
    };
    broken
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert(why);
}

/// True for errors that mean the connection itself failed (closed, I/O, a FATAL error, the
/// server shutting down or refusing connections for now, SQLSTATE class 08), as opposed to a
/// statement's own.
pub(super) fn is_connection_error(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    // A FATAL error ends the session whatever its code (e.g. 25P03, a transaction left idle
    // too long by a worker that was frozen).
    if e.as_db_error()
        .is_some_and(|db| matches!(db.severity(), "FATAL" | "PANIC"))
    {
        return true;
    }
    if let Some(code) = e.code() {
        return code.code().starts_with("08")
            || *code == SqlState::ADMIN_SHUTDOWN
            || *code == SqlState::CRASH_SHUTDOWN
            || *code == SqlState::CANNOT_CONNECT_NOW;
    }
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if c.is::<std::io::Error>() {
            return true;
        }
        cause = c.source();
    }
    false
}

impl Conn {
    /// Why this connection is unusable, if it is.
    fn broken(&self) -> Option<String> {
        if let Some(why) = self
            .broken
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return Some(why);
        }
        self.client
            .is_closed()
            .then(|| "connection closed".to_owned())
    }

    /// Marks the connection unusable after a call failed with a connection-class error.
    pub(super) fn mark_broken(&self, e: &tokio_postgres::Error) {
        self.broken
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert_with(|| describe(e));
    }
}

/// The longest a worker back from an outage waits before claiming mailboxes (see
/// [`PgLedger::claim`]): a little over the longest pause between two reconnect attempts, so
/// the other workers, reconnecting at their own pace, renew their leases first.
pub const CLAIM_GRACE: Duration = Duration::from_secs(5);

/// The outage state shared by every call of one ledger.
#[derive(Debug)]
pub(super) struct Outage {
    /// When the current outage began (`None`: connected).
    since: Option<Instant>,
    limit: Duration,
    /// When the last outage ended, and how long it lasted.
    resumed: Option<(Instant, Duration)>,
    /// Connections made since the ledger was opened (which one a failed call used).
    epoch: u64,
}

impl Default for Outage {
    fn default() -> Self {
        Outage {
            since: None,
            limit: DEFAULT_OUTAGE_LIMIT,
            resumed: None,
            epoch: 0,
        }
    }
}

/// A lease this worker holds: renewed again after a reconnect.
#[derive(Debug, Clone)]
pub(super) struct Held {
    lease: Lease,
    /// Its length, in milliseconds.
    ms: i64,
    /// Taken before the last request that renewed it (claim, renew or the reconnect's).
    renewed: Instant,
}

impl PgLedger {
    /// How long calls wait for a lost database before failing (fleet mode: several lease
    /// lengths, see docs/fleet.md).
    pub fn set_outage_limit(&self, limit: Duration) {
        self.outage.lock().unwrap_or_else(|p| p.into_inner()).limit = limit;
    }

    /// The connection, reconnected first if it broke. Holding the lock through the reconnect
    /// makes every other call wait for it rather than fail.
    pub(super) async fn conn(&self) -> Result<tokio::sync::MutexGuard<'_, Conn>, PgLedgerError> {
        let mut guard = self.conn.lock().await;
        if let Some(why) = guard.broken() {
            self.reconnect(&mut guard, &why).await?;
        }
        Ok(guard)
    }

    /// Replaces the broken connection, with backoff, until the outage limit (counted from the
    /// outage's start) has passed; then renews every lease this worker holds.
    async fn reconnect(&self, conn: &mut Conn, why: &str) -> Result<(), PgLedgerError> {
        let target = self.url.to_string();
        let (since, limit) = {
            let mut o = self.outage.lock().unwrap_or_else(|p| p.into_inner());
            if o.since.is_none() {
                tracing::warn!("ledger {target}: connection lost ({why}); reconnecting");
            }
            (*o.since.get_or_insert_with(Instant::now), o.limit)
        };
        let mut delays = ExponentialBuilder::new()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(2))
            .with_jitter()
            .without_max_times()
            .build();
        loop {
            let error = match self.dialer.dial().await {
                Ok(fresh) => {
                    *conn = fresh;
                    match self.renew_held(conn).await {
                        Ok(()) => {
                            let mut o = self.outage.lock().unwrap_or_else(|p| p.into_inner());
                            o.since = None;
                            o.resumed = Some((Instant::now(), since.elapsed()));
                            o.epoch += 1;
                            drop(o);
                            tracing::warn!(
                                "ledger {target}: reconnected after {:.1} s",
                                since.elapsed().as_secs_f64()
                            );
                            return Ok(());
                        }
                        Err(e) => e,
                    }
                }
                Err(e) => e,
            };
            if since.elapsed() >= limit {
                tracing::warn!(
                    "ledger {target}: still unreachable after {:.0} s ({}); giving up this call",
                    since.elapsed().as_secs_f64(),
                    describe(&error)
                );
                return Err(super::db_err(&self.url, error));
            }
            let pause = delays.next().unwrap_or(Duration::from_secs(5));
            tracing::debug!(
                "ledger {target}: reconnect failed ({}); again in {pause:?}",
                describe(&error)
            );
            tokio::time::sleep(pause.min(limit.saturating_sub(since.elapsed()))).await;
        }
    }

    /// Renews every lease this worker holds, on a fresh connection. A lease taken over while the
    /// server was away is forgotten with a warning: the fence refuses its mailbox's writes and
    /// the worker's renewer stops that mailbox.
    async fn renew_held(&self, conn: &mut Conn) -> Result<(), tokio_postgres::Error> {
        let held: Vec<Held> = self
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for Held { lease, ms, .. } in held {
            let asked = Instant::now();
            let n = conn
                .client
                .execute(
                    concat!(
                        "UPDATE leases SET heartbeat_at = ",
                        now_sql!(4),
                        ", expires_at = ",
                        now_sql!(4),
                        " + $5::bigint * interval '1 millisecond'
                         WHERE mailbox_id = $1 AND generation = $2 AND owner = $3
                         AND outcome IS NULL"
                    ),
                    &[
                        &lease.mailbox_id,
                        &lease.generation,
                        &self.worker,
                        &self.clock.param(),
                        &ms,
                    ],
                )
                .await?;
            if n == 0 {
                tracing::warn!(
                    "mailbox {}: lease generation {} lost while the ledger was unreachable; \
                     this worker stops the mailbox",
                    lease.mailbox,
                    lease.generation
                );
                self.forget(&lease);
            } else {
                self.hold(&lease, ms, asked);
            }
        }
        Ok(())
    }

    /// Remembers a lease this worker holds, renewed by a request sent after `asked`, to renew
    /// after a reconnect.
    pub(super) fn hold(&self, lease: &Lease, ms: i64, asked: Instant) {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).insert(
            lease.mailbox_id,
            Held {
                lease: lease.clone(),
                ms,
                renewed: asked,
            },
        );
    }

    /// When `lease` was last renewed by this worker (taken before the request), if it still
    /// holds it: a reconnect renews every held lease, before the worker's own renewer can.
    pub fn renewed_at(&self, lease: &Lease) -> Option<Instant> {
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&lease.mailbox_id)
            .filter(|h| h.lease.generation == lease.generation)
            .map(|h| h.renewed)
    }

    /// How long a claim should wait now: after an outage, up to [`CLAIM_GRACE`] (no longer
    /// than the outage lasted) from its end.
    pub(super) fn claim_grace(&self) -> Option<Duration> {
        let o = self.outage.lock().unwrap_or_else(|p| p.into_inner());
        let (at, lasted) = o.resumed?;
        lasted
            .min(CLAIM_GRACE)
            .checked_sub(at.elapsed())
            .filter(|d| !d.is_zero())
    }

    /// Forgets a lease released or lost.
    pub(super) fn forget(&self, lease: &Lease) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if held
            .get(&lease.mailbox_id)
            .is_some_and(|h| h.lease.generation == lease.generation)
        {
            held.remove(&lease.mailbox_id);
        }
    }

    /// Which connection calls use now (see [`PgLedger::mark_broken`]).
    pub(super) fn epoch(&self) -> u64 {
        self.outage.lock().unwrap_or_else(|p| p.into_inner()).epoch
    }

    /// Marks the connection broken after a call made on connection `epoch` failed with `e`, a
    /// connection-class error (the connection's own task may not have noticed yet), so the next
    /// call reconnects. A connection made since (another call reconnected first) is left alone.
    pub(super) async fn mark_broken(&self, e: &PgLedgerError, epoch: u64) {
        let why = match e {
            PgLedgerError::Db { detail, .. } => detail.clone(),
            other => other.to_string(),
        };
        let conn = self.conn.lock().await;
        if self.epoch() == epoch {
            conn.broken
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert(why);
        }
    }

    /// Whether a call that failed with `e` may run again after a reconnect: a connection-class
    /// error, and the outage that began at `first` is not over its limit. Marks the connection
    /// broken so the next [`PgLedger::conn`] replaces it.
    pub(super) fn again(&self, conn: &Conn, e: &tokio_postgres::Error, first: Instant) -> bool {
        let connection = is_connection_error(e) || conn.client.is_closed();
        if connection {
            conn.mark_broken(e);
        }
        connection && self.may_wait(first)
    }

    /// Whether a call first tried at `first` may wait for a reconnect: neither it nor the
    /// current outage has lasted the outage limit (past it, calls fail at once).
    pub(super) fn may_wait(&self, first: Instant) -> bool {
        let o = self.outage.lock().unwrap_or_else(|p| p.into_inner());
        first.elapsed() < o.limit && o.since.is_none_or(|s| s.elapsed() < o.limit)
    }
}

impl PgLedgerError {
    /// True when the call failed because the connection to the database did (the server away
    /// for longer than the outage limit, or a commit cut off): the same call may work later.
    pub fn is_connection(&self) -> bool {
        matches!(self, PgLedgerError::Db { source, .. } if is_connection_error(source))
    }
}
