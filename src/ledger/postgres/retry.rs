//! The unfenced calls a worker makes, repeated when the connection breaks under them. Each
//! public method here runs its `*_once` twin (where the SQL lives and is documented) and, on a
//! connection-class error, marks the connection broken and runs it again: the next
//! [`PgLedger::conn`] reconnects (waiting for the server up to the outage limit) and renews the
//! held leases first. Only calls whose repetition cannot double an effect are here:
//!
//! - reads (`leases`, `host_leases`, `find_mailbox`, `throttle_deadline`);
//! - writes that set the same values again (`renew`, `heartbeat`, `finish_run`, `stop_worker`,
//!   and `set_throttle_deadline`, which only moves a deadline forward);
//! - `claim`: a claim whose commit went through but whose answer was lost leaves a lease this
//!   worker never learns of; it holds nothing under it, nobody renews it, and the mailbox is
//!   claimable again once it expires (a delay of one lease length, never a double effect);
//! - `release`: repeated once; if the first had committed, the second finds the lease already
//!   released by this worker, which is then the answer.
//!
//! `start_run` and `register_worker` are not repeated (a duplicate run or worker row); the plan
//! registration neither (it runs once at start). Fenced writes repeat inside
//! [`PgLedger::fenced`](super::PgLedger), reads through `read` in messages.rs.

use std::future::Future;
use std::time::{Instant, SystemTime};

use super::{Lease, LeaseLost, LeaseRow, LostWhy, Outcome, PgLedger, PgLedgerError, RoundSpec};

impl PgLedger {
    /// Runs `call` until it succeeds, fails for another reason than the connection, or the
    /// outage limit has passed since its first try.
    pub(super) async fn retrying<T, F>(&self, call: impl Fn() -> F) -> Result<T, PgLedgerError>
    where
        F: Future<Output = Result<T, PgLedgerError>>,
    {
        let first = Instant::now();
        loop {
            let epoch = self.epoch();
            match call().await {
                Err(e) if e.is_connection() && self.may_wait(first) => {
                    self.mark_broken(&e, epoch).await;
                }
                other => return other,
            }
        }
    }

    /// Records this worker stopped and hands back its leases (see `stop_worker_once`).
    pub async fn stop_worker(&self) -> Result<(), PgLedgerError> {
        self.retrying(move || self.stop_worker_once()).await
    }

    /// Claims one mailbox in the newest round, without retrying its failed mailboxes: see
    /// [`PgLedger::claim_in`].
    pub async fn claim(
        &self,
        lease_ms: i64,
        host_cap: Option<u32>,
    ) -> Result<Option<Lease>, PgLedgerError> {
        self.claim_in(RoundSpec::default(), lease_ms, host_cap)
            .await
    }

    /// Claims one mailbox for `lease_ms` milliseconds in the round `spec` names: the first that
    /// is claimable in that round and not leased (or whose lease expired), whose source host has
    /// fewer than `host_cap` live leases. `None`: nothing to claim now, or the round is
    /// superseded.
    ///
    /// Right after an outage it first waits a little (up to [`super::CLAIM_GRACE`]): every
    /// lease of the fleet may have expired meanwhile, and the workers that held them renew them
    /// as soon as they are back; claiming at once would take their mailboxes from them.
    pub async fn claim_in(
        &self,
        spec: RoundSpec,
        lease_ms: i64,
        host_cap: Option<u32>,
    ) -> Result<Option<Lease>, PgLedgerError> {
        if let Some(wait) = self.claim_grace() {
            tokio::time::sleep(wait).await;
        }
        self.retrying(move || self.claim_in_once(spec, lease_ms, host_cap))
            .await
    }

    /// Extends the lease by `lease_ms` from now and records a heartbeat. Fails with
    /// [`LeaseLost`] if the generation changed or the lease was released. A lease that expired
    /// but that nobody took over is renewed: no other worker has touched the mailbox.
    pub async fn renew(&self, lease: &Lease, lease_ms: i64) -> Result<(), PgLedgerError> {
        self.retrying(move || self.renew_once(lease, lease_ms))
            .await
    }

    /// Gives the mailbox back: finished for this round (`Ok`, `Failed`) or free to claim again
    /// (`Interrupted`). Fails with [`LeaseLost`] if the lease is no longer this worker's.
    pub async fn release(&self, lease: &Lease, outcome: Outcome) -> Result<(), PgLedgerError> {
        let epoch = self.epoch();
        match self.release_once(lease, outcome).await {
            Err(e) if e.is_connection() => {
                self.mark_broken(&e, epoch).await;
                match self.release_once(lease, outcome).await {
                    // The first release went through before the connection broke.
                    Err(PgLedgerError::LeaseLost(LeaseLost {
                        why: LostWhy::Released,
                        ..
                    })) => Ok(()),
                    other => other,
                }
            }
            other => other,
        }
    }

    /// Live leases on one source host right now (what the host cap counts).
    pub async fn host_leases(&self, host: &str) -> Result<i64, PgLedgerError> {
        self.retrying(move || self.host_leases_once(host)).await
    }

    /// Every mailbox's lease, by mailbox key.
    pub async fn leases(&self) -> Result<Vec<LeaseRow>, PgLedgerError> {
        self.retrying(move || self.leases_once()).await
    }

    /// Records the end of a run.
    pub async fn finish_run(
        &self,
        run: i64,
        status: &str,
        summary_json: &str,
    ) -> Result<(), PgLedgerError> {
        self.retrying(move || self.finish_run_once(run, status, summary_json))
            .await
    }

    /// Looks up a mailbox id without creating it (mailboxes are created by
    /// [`PgLedger::register_plan`]).
    pub async fn find_mailbox(&self, key: &str) -> Result<Option<i64>, PgLedgerError> {
        self.retrying(move || self.find_mailbox_once(key)).await
    }

    /// Refreshes this worker's heartbeat (a worker that holds no lease, e.g. waiting for a
    /// host slot).
    pub async fn heartbeat(&self) -> Result<(), PgLedgerError> {
        self.retrying(move || self.heartbeat_once()).await
    }

    /// Records that nothing may be sent for `mailbox` at `destination` before `until` (a later
    /// deadline already recorded is kept). Not fenced.
    pub async fn set_throttle_deadline(
        &self,
        destination: &str,
        mailbox: &str,
        until: SystemTime,
    ) -> Result<(), PgLedgerError> {
        self.retrying(move || self.set_throttle_deadline_once(destination, mailbox, until))
            .await
    }

    /// The recorded deadline of `mailbox` at `destination`, if one is still in the future.
    pub async fn throttle_deadline(
        &self,
        destination: &str,
        mailbox: &str,
    ) -> Result<Option<SystemTime>, PgLedgerError> {
        self.retrying(move || self.throttle_deadline_once(destination, mailbox))
            .await
    }
}
