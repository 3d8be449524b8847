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
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if !multi_thread {
            return Err(LedgerError::Corrupt {
                path: self.db.url().to_string().into(),
                what: "a PostgreSQL ledger needs tokio's multi-threaded runtime".into(),
            });
        }
        complete_here(fut).map_err(LedgerError::from)
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

/// Runs `fut` to completion on this thread, under `block_in_place` (the worker's other tasks
/// move to another thread first). Needs the multi-threaded runtime's context.
///
/// `futures`' executor, not `Handle::block_on`: it parks the thread through a notifier of its
/// own. Tokio's `block_on` parks on the thread's tokio parker, and on the thread inside
/// `Runtime::block_on` (the binary's main thread, a `#[tokio::test]`) that is the parker the
/// outer `block_on` waits on: a wake-up meant for the caller's task (another mailbox's response
/// arriving during this call) was taken by the inner park and lost, and `verify` with several
/// mailboxes at once on a PostgreSQL ledger stalled for good. The runtime's context stays set,
/// so the connection's I/O and timers keep running on the runtime's workers.
pub(super) fn complete_here<F: Future>(fut: F) -> F::Output {
    tokio::task::block_in_place(|| futures::executor::block_on(fut))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::complete_here;

    /// A task polls two futures; the first waits for a message the second's blocking call sends
    /// midway. The wake-up reaches the task: it finishes at once instead of at the time limit.
    /// (With `Handle::block_on` inside, on the thread in `Runtime::block_on`, the wake-up was
    /// taken by the inner park and the task slept until the limit's timer woke it.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_wake_up_during_a_blocking_call_reaches_the_calling_task() {
        let (tx, rx) = tokio::sync::oneshot::channel::<u32>();
        let waiting = async { rx.await.unwrap() };
        let blocking = async {
            complete_here(async {
                tx.send(7).unwrap();
                // Still blocked after the send: the wake-up arrives during the call.
                tokio::time::sleep(Duration::from_millis(20)).await;
            })
        };
        let both = async { tokio::join!(waiting, blocking) };
        tokio::select! {
            biased;
            () = tokio::time::sleep(Duration::from_secs(10)) => {
                panic!("the task was never woken: a wake-up was lost during the blocking call")
            }
            (got, ()) = both => assert_eq!(got, 7),
        }
    }
}
