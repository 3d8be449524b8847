//! Which database a [`Ledger`](super::Ledger) writes to: the embedded SQLite file (the default),
//! or a PostgreSQL server shared by a fleet of workers.
//!
//! The engine calls the ledger synchronously, as it always has with SQLite (whose commits
//! block on fsync). A PostgreSQL ledger keeps that interface: each call runs the async
//! `PgLedger` method to completion under `block_in_place`, which first hands this worker
//! thread's other tasks (IMAP reads, Graph writes in flight) to another thread, so a slow round
//! trip delays only the task that records. That needs tokio's multi-threaded runtime, which the
//! binary uses; on any other runtime the call fails with an error instead of deadlocking.
//!
//! A ledger for one mailbox pass in fleet mode carries the mailbox's [`Lease`]: every state
//! change goes through the lease's fence, and a write without a lease is refused.

use std::future::Future;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use super::LedgerError;
use super::postgres::{Lease, PgLedger, PgLedgerError};

pub(super) enum Backend {
    Sqlite(Mutex<Connection>),
    Postgres(Pg),
}

/// A PostgreSQL ledger, with the lease of the mailbox this handle records for (if any).
#[derive(Clone)]
pub(super) struct Pg {
    pub(super) db: Arc<PgLedger>,
    pub(super) lease: Option<Lease>,
}

impl Pg {
    /// Runs one ledger call to completion (see the module docs).
    pub(super) fn block<T>(
        &self,
        fut: impl Future<Output = Result<T, PgLedgerError>>,
    ) -> Result<T, LedgerError> {
        let handle = tokio::runtime::Handle::try_current()
            .ok()
            .filter(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        let Some(handle) = handle else {
            return Err(LedgerError::Corrupt {
                path: self.db.url().to_string().into(),
                what: "a PostgreSQL ledger needs tokio's multi-threaded runtime".into(),
            });
        };
        tokio::task::block_in_place(|| handle.block_on(fut)).map_err(LedgerError::from)
    }

    /// The lease every write of a mailbox pass is fenced by.
    pub(super) fn lease(&self) -> Result<&Lease, LedgerError> {
        self.lease.as_ref().ok_or_else(|| LedgerError::Corrupt {
            path: self.db.url().to_string().into(),
            what: "a mailbox write without its lease (fleet mode records only under a lease)"
                .into(),
        })
    }

    /// The mailbox row id of `key`: the leased mailbox's, or one the registered plan holds.
    /// Fleet mode creates every mailbox row when the plan is registered, never on first use.
    pub(super) fn mailbox(&self, key: &str) -> Result<i64, LedgerError> {
        if let Some(lease) = self.lease.as_ref().filter(|l| l.mailbox == key) {
            return Ok(lease.mailbox_id);
        }
        self.block(self.db.find_mailbox(key))?
            .ok_or_else(|| LedgerError::Corrupt {
                path: self.db.url().to_string().into(),
                what: format!("mailbox {key} is not in the plan this ledger holds"),
            })
    }
}
