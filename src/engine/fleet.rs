//! Fleet mode: this process is one worker of several that run one plan through a shared
//! PostgreSQL ledger.
//!
//! Each of the worker's `concurrency` slots claims a mailbox (a lease), runs it exactly as a
//! single run does, and releases it with its outcome; then claims the next. While a slot works,
//! a renewer extends the lease every third of its length. Every state change the pass records
//! is fenced by the lease ([`Ledger::for_lease`]), so if the lease is lost (the worker was
//! frozen or cut off past its expiry and another worker took the mailbox over) the next write
//! fails and the renewer cancels the pass at once: the worker stops that mailbox and records
//! nothing more for it.
//!
//! A slot that finds nothing to claim keeps watching while other workers still hold leases: a
//! worker that dies stops renewing, and its mailboxes must be taken over by whoever is left.
//! When every mailbox of the round has an outcome, the slot ends ("nothing left to claim").
//!
//! The worker works one round ([`RoundSpec`]): the one `--round` named, or else the newest the
//! ledger knows at each claim. With `--retry-failed` it also claims, once, each mailbox whose
//! outcome in that round is `failed`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;

use super::budget::Budget;
use super::connect::Connector;
use super::{Cancel, EffectiveOptions, EngineError, MigrateOptions, run_mailbox};
use crate::ledger::Ledger;
use crate::ledger::postgres::{Lease, Outcome, PgLedger, RoundSpec};
use crate::plan::{Plan, SourceKind};
use crate::report::{Events, MailboxSummary, RunSummary};

/// How many lease lengths the worker waits for a lost database before its calls fail. Past one
/// lease length other workers may take its mailboxes over (the renewal after the reconnect then
/// says so and the worker stops them); past this many the database is taken for gone.
pub const OUTAGE_LEASES: u32 = 5;

/// How this worker takes part in the fleet.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// How long a claim lasts without renewal.
    pub lease: Duration,
    /// This machine's name, shown by `status`.
    pub hostname: String,
}

/// What a worker did.
#[derive(Debug, Clone)]
pub struct FleetRun {
    pub summary: RunSummary,
    /// This worker's id (the lease owner `status` shows).
    pub worker: String,
    /// Mailboxes whose lease this worker lost mid-pass (taken over by another worker).
    pub leases_lost: Vec<String>,
    /// Why a slot stopped claiming before the round ended (the ledger unreachable for a whole
    /// lease length), if one did.
    pub gave_up: Option<String>,
    /// The round this worker worked (the newest when it ended, if `--round` was not given).
    pub round: i64,
}

/// Runs mailboxes of the plan as one worker of a fleet until nothing is left to claim (or
/// `cancel`). `ledger` is a PostgreSQL ledger ([`Ledger::postgres`]) whose plan was registered.
pub async fn migrate(
    plan: &Plan,
    ledger: Arc<Ledger>,
    opts: &MigrateOptions,
    fleet: &FleetOptions,
    events: Events,
    cancel: Cancel,
) -> Result<FleetRun, EngineError> {
    let db = Arc::clone(
        ledger
            .postgres_db()
            .expect("fleet mode runs on a PostgreSQL ledger"),
    );
    let started = Instant::now();
    let settle_from = tokio::time::Instant::now();
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let pg = |e| EngineError::Ledger(crate::ledger::LedgerError::Postgres(e));
    // Calls wait this long for a lost database to come back (docs/fleet.md, "PostgreSQL
    // restarted or unreachable").
    db.set_outage_limit(fleet.lease * OUTAGE_LEASES);
    db.register_worker(&fleet.hostname, std::process::id())
        .await
        .map_err(pg)?;
    let command = if opts.repair {
        "migrate --repair (fleet)"
    } else {
        "migrate (fleet)"
    };
    let run = ledger.start_run(command)?;
    let clocks = Arc::new(LeaseClocks::default());
    let connector = Connector::new(plan)
        .with_deadlines(Arc::clone(&ledger))
        .with_send_gate(Arc::clone(&clocks) as Arc<dyn super::ports::SendGate>);
    // The application layer refuses --dry-run in fleet mode.
    let eff = EffectiveOptions::new(opts, plan);
    let slot = Slot {
        plan,
        connector: &connector,
        ledger: &ledger,
        db: &db,
        run,
        eff,
        budget: Budget::new(plan.limits.memory_budget_bytes),
        events: events.clone(),
        cancel: cancel.clone(),
        settle_from,
        lease: fleet.lease,
        clocks: Arc::clone(&clocks),
        round: RoundSpec {
            round: opts.round,
            retry_failed: opts.retry_failed,
        },
        host_cap: (plan.source.kind == SourceKind::Imap)
            .then(|| u32::try_from(plan.source.max_connections_per_host.max(1)).unwrap_or(1)),
        released: tokio::sync::Notify::new(),
    };
    let work = futures::stream::iter(0..opts.concurrency.max(1))
        .map(|_| slot.run())
        .buffer_unordered(opts.concurrency.max(1))
        .collect::<Vec<(Vec<MailboxSummary>, Vec<String>, Option<String>)>>();
    // An abort (second signal) drops the slots where they wait; the worker's leases are handed
    // back by `stop_worker` below, and rows cut short stay `sending` for the next holder.
    let done = tokio::select! {
        d = work => d,
        () = cancel.aborted() => Vec::new(),
        () = super::watch_throttling(&connector, &events) => unreachable!("the watcher loops forever"),
    };
    let mut mailboxes = Vec::new();
    let mut leases_lost = Vec::new();
    let mut gave_up = None;
    for (m, l, g) in done {
        mailboxes.extend(m);
        leases_lost.extend(l);
        gave_up = gave_up.or(g);
    }
    let summary = super::finish_run(
        plan,
        &ledger,
        RunSummary {
            run_id: run,
            started_at,
            seconds: started.elapsed().as_secs_f64(),
            dry_run: false,
            interrupted: cancel.is_cancelled(),
            mailboxes,
            plan_errors: Vec::new(),
        },
    )?;
    let round = match opts.round {
        Some(r) => r,
        None => db.newest_round().await.unwrap_or(1),
    };
    // Hands back anything still held (an interrupted pass releases its own; this is the net).
    if let Err(e) = db.stop_worker().await {
        tracing::warn!(error = %e, "cannot record this worker as stopped");
    }
    Ok(FleetRun {
        summary,
        worker: db.worker_id().to_owned(),
        leases_lost,
        gave_up,
        round,
    })
}

/// What every slot of the worker shares.
struct Slot<'a> {
    plan: &'a Plan,
    connector: &'a Connector<'a>,
    ledger: &'a Arc<Ledger>,
    db: &'a Arc<PgLedger>,
    run: i64,
    eff: EffectiveOptions,
    budget: Budget,
    events: Events,
    cancel: Cancel,
    settle_from: tokio::time::Instant,
    lease: Duration,
    clocks: Arc<LeaseClocks>,
    round: RoundSpec,
    host_cap: Option<u32>,
    /// Signalled when a slot of this worker hands a lease back: a slot waiting for work looks
    /// again at once (the worker's last mailbox done, a host slot freed) instead of at its
    /// next poll.
    released: tokio::sync::Notify,
}

impl Slot<'_> {
    fn lease_ms(&self) -> i64 {
        i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX)
    }

    /// How long a slot with nothing to claim waits before looking again.
    fn poll(&self) -> Duration {
        (self.lease / 3).min(Duration::from_secs(5))
    }

    /// Claims, runs and releases mailboxes until nothing is left to claim.
    async fn run(&self) -> (Vec<MailboxSummary>, Vec<String>, Option<String>) {
        let mut done = Vec::new();
        let mut lost = Vec::new();
        // Since when the ledger has been failing this slot. A lost connection does not count
        // here until it has been gone for the outage limit (calls wait for the reconnect), so
        // this is a lease length more than that, or a lease length of other failures.
        let mut failing: Option<Instant> = None;
        let mut gave_up = None;
        while !self.cancel.is_cancelled() {
            if let Some(since) = failing
                && since.elapsed() >= self.lease
            {
                gave_up = Some(format!(
                    "the ledger failed every call for {:?}; this worker stops claiming",
                    self.lease
                ));
                break;
            }
            // Registered before the claim, so a release between the claim and the wait below
            // still wakes it.
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            // Through the ledger's blocking call, never awaited here: see
            // `Ledger::block_on_postgres` (this task polls every slot of the worker).
            let lease = match self.ledger.block_on_postgres(self.db.claim_in(
                self.round,
                self.lease_ms(),
                self.host_cap,
            )) {
                Ok(Some(lease)) => lease,
                Ok(None) => match self
                    .ledger
                    .block_on_postgres(self.db.round_has_work(self.round))
                {
                    // Mailboxes of the round still held elsewhere: their workers may die, and
                    // then their mailboxes are ours to take over once the leases expire.
                    Ok(true) => {
                        failing = None;
                        tokio::select! {
                            () = &mut released => {}
                            () = tokio::time::sleep(self.poll()) => {}
                        }
                        continue;
                    }
                    Ok(false) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the fleet's leases; retrying");
                        failing.get_or_insert_with(Instant::now);
                        tokio::time::sleep(self.poll()).await;
                        continue;
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "cannot claim a mailbox; retrying");
                    failing.get_or_insert_with(Instant::now);
                    tokio::time::sleep(self.poll()).await;
                    continue;
                }
            };
            failing = None;
            let key = lease.mailbox.clone();
            match self.pass(lease).await {
                Some((summary, false)) => done.push(summary),
                Some((summary, true)) => {
                    lost.push(key);
                    done.push(summary);
                }
                None => {}
            }
        }
        (done, lost, gave_up)
    }

    /// One mailbox under `lease`: `None` when the plan does not hold it (released as failed),
    /// else its summary and whether the lease was lost on the way.
    async fn pass(&self, lease: Lease) -> Option<(MailboxSummary, bool)> {
        let Some(mb) = self.plan.mailboxes.iter().find(|m| m.key == lease.mailbox) else {
            // Plan identity makes this unreachable short of a bug: never spin on it.
            tracing::error!(
                mailbox = lease.mailbox,
                "claimed a mailbox the plan does not hold"
            );
            let _ = self
                .ledger
                .block_on_postgres(self.db.release(&lease, Outcome::Failed));
            self.released.notify_waiters();
            return None;
        };
        let ledger = Arc::new(
            self.ledger
                .for_lease(lease.clone())
                .expect("a PostgreSQL ledger"),
        );
        let cancel = self.cancel.child();
        let lost = Arc::new(AtomicBool::new(false));
        let held = Arc::new(LeaseClock::new(
            self.lease,
            Some((Arc::clone(self.db), lease.clone())),
        ));
        let user = mb.destination_user.to_ascii_lowercase();
        self.clocks.insert(&user, Arc::clone(&held));
        let renewer = tokio::spawn(renew(
            Arc::clone(self.db),
            lease.clone(),
            Arc::clone(&held),
            cancel.clone(),
            Arc::clone(&lost),
        ));
        let mut summary = run_mailbox(
            self.plan,
            self.connector,
            ledger,
            self.run,
            mb,
            self.eff.clone(),
            self.budget.clone(),
            self.events.clone(),
            cancel,
            self.settle_from,
        )
        .await;
        renewer.abort();
        self.clocks.remove(&user);
        let was_lost = lost.load(Ordering::SeqCst);
        if was_lost {
            summary.status = "lease lost".into();
            summary.error.get_or_insert_with(|| {
                "this worker lost the mailbox's lease (another worker took it over); it stopped \
                 the mailbox and recorded nothing more"
                    .into()
            });
            self.released.notify_waiters();
            return Some((summary, true));
        }
        let outcome = match summary.status.as_str() {
            "ok" => Outcome::Ok,
            "interrupted" => Outcome::Interrupted,
            _ => Outcome::Failed,
        };
        if let Err(e) = self
            .ledger
            .block_on_postgres(self.db.release(&lease, outcome))
        {
            tracing::warn!(mailbox = lease.mailbox, error = %e, "cannot release the lease");
        }
        self.released.notify_waiters();
        Some((summary, false))
    }
}

/// Renews `lease` every third of its length until aborted. Cancels the pass when the lease is
/// lost, or when it could not be renewed for a whole lease length (the database unreachable):
/// past that point another worker may hold it.
async fn renew(
    db: Arc<PgLedger>,
    lease: Lease,
    held: Arc<LeaseClock>,
    cancel: Cancel,
    lost: Arc<AtomicBool>,
) {
    let length = held.length;
    let ms = i64::try_from(length.as_millis()).unwrap_or(i64::MAX);
    let mut renewed = tokio::time::Instant::now();
    let mut pause = length / 3;
    loop {
        tokio::time::sleep(pause).await;
        pause = length / 3;
        // Taken before the request: the database's expiry is at least this plus the length.
        let asked = Instant::now();
        match db.renew(&lease, ms).await {
            Ok(()) => {
                renewed = tokio::time::Instant::now();
                held.renewed(asked);
                // A renewal that waited for a reconnect proves only the old instant: renew
                // again at once, so the send gate sees the lease as fresh as it is.
                if asked.elapsed() > length / 6 {
                    pause = Duration::ZERO;
                }
            }
            Err(e) if e.is_lease_lost() => {
                tracing::warn!(mailbox = lease.mailbox, error = %e, "lease lost");
                held.lose();
                lost.store(true, Ordering::SeqCst);
                cancel.cancel();
                return;
            }
            Err(e) => {
                tracing::warn!(mailbox = lease.mailbox, error = %e, "cannot renew the lease");
                if renewed.elapsed() >= length {
                    held.lose();
                    lost.store(true, Ordering::SeqCst);
                    cancel.cancel();
                    return;
                }
            }
        }
    }
}

/// What this process can know of a lease without asking the database: it was renewed at some
/// instant, so it is surely held until that instant plus (most of) its length. Measured on the
/// monotonic clock, which keeps running while the process is frozen: a worker thawed after
/// SIGSTOP sees at once that its lease may be gone, before any renewal could tell it.
pub(crate) struct LeaseClock {
    length: Duration,
    state: std::sync::Mutex<Option<Instant>>,
    /// The ledger that renews the lease on its own after a reconnect (before the renewer
    /// below can), and the lease.
    ledger: Option<(Arc<PgLedger>, Lease)>,
}

impl std::fmt::Debug for LeaseClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseClock")
            .field("length", &self.length)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl LeaseClock {
    fn new(length: Duration, ledger: Option<(Arc<PgLedger>, Lease)>) -> LeaseClock {
        LeaseClock {
            length,
            state: std::sync::Mutex::new(Some(Instant::now())),
            ledger,
        }
    }

    fn renewed(&self, asked: Instant) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.is_some() {
            *s = Some(asked);
        }
    }

    fn lose(&self) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Held for sure now: renewed less than five sixths of a length ago (the rest is a margin
    /// for the clocks' drift and the request's own travel).
    fn held(&self) -> bool {
        let s = *self.state.lock().unwrap_or_else(|p| p.into_inner());
        let Some(mut at) = s else {
            return false;
        };
        if let Some(by_ledger) = self.ledger.as_ref().and_then(|(db, l)| db.renewed_at(l)) {
            at = at.max(by_ledger);
        }
        at.elapsed() < self.length * 5 / 6
    }
}

/// The lease clocks of the mailboxes this worker is passing, by destination user: the gate
/// every Graph request of the worker goes through.
#[derive(Debug, Default)]
pub(crate) struct LeaseClocks(std::sync::Mutex<std::collections::HashMap<String, Arc<LeaseClock>>>);

impl LeaseClocks {
    fn insert(&self, user: &str, clock: Arc<LeaseClock>) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(user.to_owned(), clock);
    }

    fn remove(&self, user: &str) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(user);
    }
}

impl super::ports::SendGate for LeaseClocks {
    fn may_send(&self, mailbox: &str) -> Result<(), String> {
        let clock = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&mailbox.to_ascii_lowercase())
            .cloned();
        match clock {
            Some(c) if !c.held() => Err(format!(
                "this worker may no longer hold the lease of {mailbox} (not renewed within {:?}); \
                 nothing more is sent for it",
                c.length * 5 / 6
            )),
            _ => Ok(()),
        }
    }
}
