//! The ledger: a SQLite record of every mailbox, folder and message mailferry has seen, and of
//! what happened to each. It is what makes a run resumable at any point and exactly-once.
//!
//! A message row moves `pending -> sending -> done` (or `skipped`/`failed`). The `sending` state is
//! committed (and fsynced: WAL with `synchronous=FULL`) *before* the write reaches the sink, so a
//! crash leaves the row in `sending` and the next run asks the destination whether the item exists
//! before it sends anything again. Commits are batched per group of messages, not per message.
//!
//! The file never holds a message body or a secret: only identities (folder, UIDVALIDITY, UID,
//! SHA-256, Message-ID), sizes, flags, dates, states and error texts. It is created 0600 and can be
//! opened by operators with `sqlite3`.

mod backend;
mod copy;
mod messages;
pub mod postgres;
mod queries;
mod schema;
mod throttle;
mod totals;

pub use copy::{CopyError, TableCount};
pub use messages::{MessageRow, MessageState, NewMessage};
pub use queries::{FailureGroup, FolderCounts, MailboxProgress, RunRow};

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, params};

use crate::model::UidValidity;

/// Errors from the ledger: each names the ledger file.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("ledger {path}: cannot create the file: {source}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "ledger {path} was written by a newer mailferry (schema {found}, this build knows {known})"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error(
        "another mailferry run holds the lock on {path}; it is still running (or wait for it to finish)"
    )]
    Locked { path: PathBuf },
    #[error("ledger {path}: {what}")]
    Corrupt { path: PathBuf, what: String },
    /// The PostgreSQL ledger (fleet mode) failed, or this worker lost the mailbox's lease.
    #[error(transparent)]
    Postgres(#[from] postgres::PgLedgerError),
}

impl LedgerError {
    /// A fenced write was refused: this worker no longer holds the mailbox's lease and must stop
    /// working on it at once.
    pub fn is_lease_lost(&self) -> bool {
        matches!(self, LedgerError::Postgres(e) if e.is_lease_lost())
    }
}

/// An open ledger: the SQLite file, or (fleet mode) a PostgreSQL server. Cheap operations take
/// an internal lock; share it behind an `Arc`.
pub struct Ledger {
    /// The SQLite file, or the PostgreSQL server's redacted URL (for messages).
    path: PathBuf,
    backend: backend::Backend,
}

/// A folder's row, as the engine needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderRow {
    pub id: i64,
    pub source_name: String,
    pub mapped_name: Option<String>,
    pub dest_id: Option<String>,
    pub uid_validity: Option<UidValidity>,
    pub highest_modseq: Option<u64>,
    pub uid_next: Option<u32>,
}

/// Holds the run lock until dropped: two runs never work on one ledger at once.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

/// A ledger opened under its run lock: the only form in which a migration may write to it.
pub struct RunLedger {
    ledger: Arc<Ledger>,
    _lock: RunLock,
}

impl RunLedger {
    /// Takes the run lock of the ledger at `path` (failing at once with
    /// [`LedgerError::Locked`] when another run holds it), then opens the ledger.
    pub fn open(path: &Path) -> Result<RunLedger, LedgerError> {
        let lock = Ledger::lock_run(path)?;
        let ledger = Arc::new(Ledger::open(path)?);
        Ok(RunLedger {
            ledger,
            _lock: lock,
        })
    }

    /// The ledger, shared with the run's tasks.
    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }
}

impl Ledger {
    /// Opens (creating 0600 if needed) and migrates the ledger at `path`.
    pub fn open(path: &Path) -> Result<Ledger, LedgerError> {
        if !path.exists() {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|source| LedgerError::Create {
                    path: path.to_owned(),
                    source,
                })?;
        }
        let conn = Connection::open(path).map_err(|e| sql_err(path, e))?;
        let ledger = Ledger {
            path: path.to_owned(),
            backend: backend::Backend::Sqlite(Mutex::new(conn)),
        };
        ledger.with(|c| {
            c.pragma_update(None, "journal_mode", "WAL")?;
            c.pragma_update(None, "synchronous", "FULL")?;
            c.pragma_update(None, "foreign_keys", "ON")?;
            c.busy_timeout(std::time::Duration::from_secs(10))?;
            Ok(())
        })?;
        schema::migrate(&ledger)?;
        // WAL and SHM side files inherit the umask; tighten them as well.
        for suffix in ["-wal", "-shm"] {
            let side = PathBuf::from(format!("{}{suffix}", path.display()));
            if side.exists() {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(&side, std::fs::Permissions::from_mode(0o600));
            }
        }
        Ok(ledger)
    }

    /// A ledger on a PostgreSQL server (fleet mode), for calls outside any mailbox (runs,
    /// summaries, throttle deadlines). Mailbox passes use [`Ledger::for_lease`].
    pub fn postgres(db: Arc<postgres::PgLedger>) -> Ledger {
        Ledger {
            path: PathBuf::from(db.url().to_string()),
            backend: backend::Backend::Postgres(backend::Pg { db, lease: None }),
        }
    }

    /// This PostgreSQL ledger, recording for the mailbox of `lease`: every write is fenced by
    /// it. `None` on SQLite, which has no leases.
    pub fn for_lease(&self, lease: postgres::Lease) -> Option<Ledger> {
        match &self.backend {
            backend::Backend::Postgres(pg) => Some(Ledger {
                path: self.path.clone(),
                backend: backend::Backend::Postgres(backend::Pg {
                    db: Arc::clone(&pg.db),
                    lease: Some(lease),
                }),
            }),
            backend::Backend::Sqlite(_) => None,
        }
    }

    /// The PostgreSQL ledger behind this one, if it is one (fleet mode).
    pub fn postgres_db(&self) -> Option<&Arc<postgres::PgLedger>> {
        match &self.backend {
            backend::Backend::Postgres(pg) => Some(&pg.db),
            backend::Backend::Sqlite(_) => None,
        }
    }

    /// A second handle on the same ledger, for a task that needs its own (a SQLite
    /// connection of its own; the same PostgreSQL connection, without a lease).
    pub fn reopen(&self) -> Result<Ledger, LedgerError> {
        match &self.backend {
            backend::Backend::Sqlite(_) => Ledger::open(&self.path),
            backend::Backend::Postgres(pg) => Ok(Ledger::postgres(Arc::clone(&pg.db))),
        }
    }

    /// Runs a call of the PostgreSQL ledger behind this one to completion, the way every ledger
    /// call runs (see `backend`). A task that polls several futures at once (a worker's slots)
    /// must make its direct `PgLedger` calls through this: awaited directly, a call holds the
    /// connection across the task's yields while a sibling future blocks the task waiting for
    /// that same connection, and neither moves again.
    pub fn block_on_postgres<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, postgres::PgLedgerError>>,
    ) -> Result<T, LedgerError> {
        match &self.backend {
            backend::Backend::Postgres(pg) => pg.block(fut),
            backend::Backend::Sqlite(_) => Err(LedgerError::Corrupt {
                path: self.path.clone(),
                what: "internal: a PostgreSQL call on a SQLite ledger".into(),
            }),
        }
    }

    fn pg(&self) -> Option<&backend::Pg> {
        match &self.backend {
            backend::Backend::Postgres(pg) => Some(pg),
            backend::Backend::Sqlite(_) => None,
        }
    }

    /// The file this ledger lives in (the server's redacted URL on PostgreSQL).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes the run lock (`<ledger>.lock`), or fails with [`LedgerError::Locked`] at once.
    pub fn lock_run(path: &Path) -> Result<RunLock, LedgerError> {
        let lock_path = PathBuf::from(format!("{}.lock", path.display()));
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|source| LedgerError::Create {
                path: lock_path.clone(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => Ok(RunLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(LedgerError::Locked {
                path: path.to_owned(),
            }),
            Err(std::fs::TryLockError::Error(source)) => Err(LedgerError::Create {
                path: lock_path,
                source,
            }),
        }
    }

    /// The SQLite connection, locked (tests hold it to simulate a slow statement).
    #[cfg(test)]
    fn conn(&self) -> MutexGuard<'_, Connection> {
        match &self.backend {
            backend::Backend::Sqlite(conn) => Self::lock_conn(conn),
            backend::Backend::Postgres(_) => panic!("not a SQLite ledger"),
        }
    }

    fn lock_conn(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent (transactions roll
        // back), so a poisoned lock is still usable.
        conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the connection, mapping errors to this ledger's path.
    ///
    /// Every statement, and above all every commit's fsync (`synchronous=FULL`), blocks. On the
    /// multi-threaded runtime the call is made under `block_in_place`, which hands this worker's
    /// other tasks (the IMAP reader, Graph writes in flight) to another thread first, so a slow
    /// disk delays only the task that records, never the network. Waiting for the connection's
    /// mutex is part of the blocking section too.
    pub(crate) fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, LedgerError> {
        let backend::Backend::Sqlite(conn) = &self.backend else {
            return Err(LedgerError::Corrupt {
                path: self.path.clone(),
                what: "internal: a SQLite statement sent to a PostgreSQL ledger".into(),
            });
        };
        let run = || {
            let mut conn = Self::lock_conn(conn);
            f(&mut conn).map_err(|e| sql_err(&self.path, e))
        };
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if multi_thread {
            tokio::task::block_in_place(run)
        } else {
            run()
        }
    }

    /// [`with`](Self::with) for a point read made very often (the throttle deadline before each
    /// Graph request): when the connection is free it runs right here, without
    /// `block_in_place`, whose hand-over of the worker's core to another thread costs far more
    /// than the read (in WAL mode a read does not wait for writers; the deadline store has a
    /// connection of its own, so it is nearly always free). When it is busy, as `with`.
    pub(crate) fn with_quick_read<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, LedgerError> {
        if let backend::Backend::Sqlite(conn) = &self.backend {
            let free = match conn.try_lock() {
                Ok(guard) => Some(guard),
                Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => None,
            };
            if let Some(mut guard) = free {
                return f(&mut guard).map_err(|e| sql_err(&self.path, e));
            }
        }
        self.with(f)
    }

    /// Records the start of a run; returns its id.
    pub fn start_run(&self, command: &str) -> Result<i64, LedgerError> {
        if let Some(pg) = self.pg() {
            return pg.block(pg.db.start_run(command));
        }
        self.with(|c| {
            c.execute(
                "INSERT INTO runs (command, started_at, status) VALUES (?1, ?2, 'running')",
                params![command, now()],
            )?;
            Ok(c.last_insert_rowid())
        })
    }

    /// Records the end of a run.
    pub fn finish_run(
        &self,
        run: i64,
        status: &str,
        summary_json: &str,
    ) -> Result<(), LedgerError> {
        if let Some(pg) = self.pg() {
            return pg.block(pg.db.finish_run(run, status, summary_json));
        }
        self.with(|c| {
            c.execute(
                "UPDATE runs SET finished_at = ?2, status = ?3, summary = ?4 WHERE id = ?1",
                params![run, now(), status, summary_json],
            )?;
            Ok(())
        })
    }

    /// The mailbox row id for `key`, created on first use.
    pub fn mailbox(&self, key: &str, destination: &str) -> Result<i64, LedgerError> {
        if let Some(pg) = self.pg() {
            return pg.mailbox(key);
        }
        self.with(|c| {
            c.execute(
                "INSERT INTO mailboxes (key, destination) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET destination = excluded.destination",
                params![key, destination],
            )?;
            c.query_row("SELECT id FROM mailboxes WHERE key = ?1", [key], |r| {
                r.get(0)
            })
        })
    }

    /// Records a mailbox-level outcome (`ok`, `failed`, `interrupted`) with its error, if any.
    pub fn set_mailbox_state(
        &self,
        mailbox: i64,
        run: i64,
        state: &str,
        error: Option<(&str, &str)>,
    ) -> Result<(), LedgerError> {
        if let Some(pg) = self.pg() {
            let _ = mailbox;
            return pg.block(pg.db.set_mailbox_state(pg.lease()?, run, state, error));
        }
        self.with(|c| {
            c.execute(
                "UPDATE mailboxes SET state = ?2, last_run = ?3, last_error = ?4,
                 last_error_class = ?5, updated_at = ?6 WHERE id = ?1",
                params![
                    mailbox,
                    state,
                    run,
                    error.map(|e| e.0),
                    error.map(|e| e.1),
                    now()
                ],
            )?;
            Ok(())
        })
    }

    /// The folder row for a source folder, created on first use.
    pub fn folder(&self, mailbox: i64, source_name: &str) -> Result<FolderRow, LedgerError> {
        if let Some(pg) = self.pg() {
            let _ = mailbox;
            return pg.block(pg.db.folder(pg.lease()?, source_name));
        }
        self.with(|c| {
            c.execute(
                "INSERT OR IGNORE INTO folders (mailbox_id, source_name) VALUES (?1, ?2)",
                params![mailbox, source_name],
            )?;
            c.query_row(
                "SELECT id, source_name, mapped_name, dest_id, uid_validity, highest_modseq, uid_next
                 FROM folders WHERE mailbox_id = ?1 AND source_name = ?2",
                params![mailbox, source_name],
                folder_from_row,
            )
        })
    }

    /// The folder row for a source folder, if a pass ever recorded it (never creates one).
    pub fn find_folder(
        &self,
        mailbox: i64,
        source_name: &str,
    ) -> Result<Option<FolderRow>, LedgerError> {
        Ok(self
            .folders(mailbox)?
            .into_iter()
            .find(|f| f.source_name == source_name))
    }

    /// All folder rows of a mailbox.
    pub fn folders(&self, mailbox: i64) -> Result<Vec<FolderRow>, LedgerError> {
        if let Some(pg) = self.pg() {
            return pg.block(pg.db.folders(mailbox));
        }
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT id, source_name, mapped_name, dest_id, uid_validity, highest_modseq, uid_next
                 FROM folders WHERE mailbox_id = ?1 ORDER BY source_name",
            )?;
            let rows = st.query_map([mailbox], folder_from_row)?;
            rows.collect()
        })
    }

    /// Records where a folder goes at the destination.
    pub fn set_folder_target(
        &self,
        folder: i64,
        mapped_name: &str,
        dest_id: &str,
    ) -> Result<(), LedgerError> {
        if let Some(pg) = self.pg() {
            return pg.block(
                pg.db
                    .set_folder_target(pg.lease()?, folder, mapped_name, dest_id),
            );
        }
        self.with(|c| {
            c.execute(
                "UPDATE folders SET mapped_name = ?2, dest_id = ?3 WHERE id = ?1",
                params![folder, mapped_name, dest_id],
            )?;
            Ok(())
        })
    }

    /// Records the source state a pass was completed against (for the next run's "nothing
    /// changed" shortcut). Only call this when every message of the folder reached a final state.
    pub fn set_folder_sync_point(
        &self,
        folder: i64,
        uid_validity: UidValidity,
        highest_modseq: Option<u64>,
        uid_next: Option<u32>,
    ) -> Result<(), LedgerError> {
        if let Some(pg) = self.pg() {
            return pg.block(pg.db.set_folder_sync_point(
                pg.lease()?,
                folder,
                uid_validity,
                highest_modseq,
                uid_next,
            ));
        }
        self.with(|c| {
            c.execute(
                "UPDATE folders SET uid_validity = ?2, highest_modseq = ?3, uid_next = ?4 WHERE id = ?1",
                params![folder, uid_validity.get(), highest_modseq.map(|m| m as i64), uid_next],
            )?;
            Ok(())
        })
    }

    /// Forgets the sync point, so the next pass lists the folder in full.
    pub fn clear_folder_sync_point(&self, folder: i64) -> Result<(), LedgerError> {
        if let Some(pg) = self.pg() {
            return pg.block(pg.db.clear_folder_sync_point(pg.lease()?, folder));
        }
        self.with(|c| {
            c.execute(
                "UPDATE folders SET highest_modseq = NULL, uid_next = NULL WHERE id = ?1",
                [folder],
            )?;
            Ok(())
        })
    }

    /// Looks up a mailbox id without creating it.
    pub fn find_mailbox(&self, key: &str) -> Result<Option<i64>, LedgerError> {
        if let Some(pg) = self.pg() {
            return pg.block(pg.db.find_mailbox(key));
        }
        self.with(|c| {
            c.query_row("SELECT id FROM mailboxes WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()
        })
    }
}

fn folder_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<FolderRow> {
    Ok(FolderRow {
        id: r.get(0)?,
        source_name: r.get(1)?,
        mapped_name: r.get(2)?,
        dest_id: r.get(3)?,
        uid_validity: r.get::<_, Option<u32>>(4)?.and_then(UidValidity::new),
        highest_modseq: r.get::<_, Option<i64>>(5)?.map(|m| m as u64),
        uid_next: r.get(6)?,
    })
}

pub(crate) fn sql_err(path: &Path, source: rusqlite::Error) -> LedgerError {
    LedgerError::Sqlite {
        path: path.to_owned(),
        source,
    }
}

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests;
