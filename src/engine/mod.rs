//! The migration engine: runs a plan's mailboxes in parallel, each through its own pipeline
//! (list -> map -> diff against the ledger -> fetch bodies within the memory budget -> write ->
//! record), resumable at any point and incremental on every re-run.
//!
//! The engine knows sources and sinks only through the ports in [`ports`]; [`adapters`] binds the
//! IMAP and Maildir sources and the Graph and IMAP sinks to them, [`connect`] builds them from the
//! plan. [`survey`] reuses the same connections to audit sources before anything moves.

pub(crate) mod accounting;
pub mod adapters;
mod batch;
pub mod budget;
mod cancel;
pub mod connect;
mod deadlines;
pub mod fleet;
mod folder;
pub mod mailbox;
mod orphans;
pub mod ports;
mod repair;
pub mod survey;
mod uploads;
pub mod verify;
mod verify_dates;

pub use cancel::Cancel;
pub(crate) use cancel::cancelled;

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::StreamExt;

use crate::ledger::{Ledger, LedgerError, RunLedger};
use crate::plan::{Mailbox, Plan, PlanError};
use crate::report::{Event, Events, MailboxSummary, RunSummary};
use budget::Budget;
use connect::Connector;
use ports::MailSink;

/// Errors that stop a whole run (per-mailbox problems never do: they land in the summary).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Plan(#[from] PlanError),
}

/// How a `migrate` run behaves, resolved once from the command line and the plan.
#[derive(Debug, Clone)]
pub struct MigrateOptions {
    pub dry_run: bool,
    /// Only messages received at or after this instant (pre-staging recent mail).
    pub since: Option<DateTime<Utc>>,
    /// Only messages received before this instant.
    pub before: Option<DateTime<Utc>>,
    /// Retry messages that failed or were skipped in earlier runs.
    pub retry_failed: bool,
    /// Re-check every `done` row against the destination and copy again what is gone there.
    pub repair: bool,
    /// Copy the newest messages of each folder first (the default), so users see recent mail soon.
    pub newest_first: bool,
    /// Mailboxes migrated at once.
    pub concurrency: usize,
    /// Only these mailboxes (by EmailAddress); empty means all.
    pub mailboxes: Vec<String>,
    /// Fleet mode: the round to work (`--round`); `None` follows the newest round.
    pub round: Option<i64>,
}

impl Default for MigrateOptions {
    fn default() -> Self {
        MigrateOptions {
            dry_run: false,
            since: None,
            before: None,
            retry_failed: false,
            repair: false,
            newest_first: true,
            concurrency: 4,
            mailboxes: Vec::new(),
            round: None,
        }
    }
}

/// What one mailbox's pipeline shares.
pub(crate) struct MailboxCtx<K> {
    pub ledger: Arc<Ledger>,
    pub sink: Arc<K>,
    pub run: i64,
    pub mailbox_key: String,
    pub mailbox_id: i64,
    pub destination: String,
    pub opts: EffectiveOptions,
    pub budget: Budget,
    pub events: Events,
    pub cancel: Cancel,
    pub max_message_bytes: u64,
    /// When this run started: writes a killed run left in flight are given their settling time
    /// from here, once per run (not once per folder).
    pub started: tokio::time::Instant,
}

/// [`MigrateOptions`] plus the plan settings a folder pass needs.
#[derive(Debug, Clone)]
pub(crate) struct EffectiveOptions {
    pub dry_run: bool,
    pub since: Option<DateTime<Utc>>,
    pub before: Option<DateTime<Utc>>,
    pub retry_failed: bool,
    pub repair: bool,
    pub newest_first: bool,
    pub migrate_deleted: bool,
}

impl EffectiveOptions {
    fn new(opts: &MigrateOptions, plan: &Plan) -> EffectiveOptions {
        EffectiveOptions {
            dry_run: opts.dry_run,
            since: opts.since,
            before: opts.before,
            retry_failed: opts.retry_failed,
            repair: opts.repair,
            newest_first: opts.newest_first,
            migrate_deleted: plan.folders.migrate_deleted,
        }
    }
}

/// Runs (or resumes) the plan on a ledger opened under its run lock ([`RunLedger`]).
pub async fn migrate(
    plan: &Plan,
    ledger: &RunLedger,
    opts: &MigrateOptions,
    events: Events,
    cancel: Cancel,
) -> Result<RunSummary, EngineError> {
    let ledger = ledger.ledger();
    let started = Instant::now();
    let settle_from = tokio::time::Instant::now();
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let selected = plan.select(&opts.mailboxes)?;
    let command = if opts.dry_run {
        "migrate --dry-run"
    } else if opts.repair {
        "migrate --repair"
    } else {
        "migrate"
    };
    let run = ledger.start_run(command)?;
    // The throttle deadlines, read before nearly every Graph request, on a connection of their
    // own: the mailboxes' writes (and their fsyncs) never hold them up, so the read runs inline
    // instead of handing the worker's core over (`Ledger::with_quick_read`).
    let deadlines = ledger.reopen().map(Arc::new).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "no second ledger connection for throttle deadlines; sharing the run's");
        Arc::clone(ledger)
    });
    let connector = Connector::new(plan).with_deadlines(deadlines);
    let budget = Budget::new(plan.limits.memory_budget_bytes);
    let eff = EffectiveOptions::new(opts, plan);
    let mut finished: Vec<MailboxSummary> = Vec::new();
    let work = futures::stream::iter(selected.iter().copied())
        .map(|mb| {
            run_mailbox(
                plan,
                &connector,
                Arc::clone(ledger),
                run,
                mb,
                eff.clone(),
                budget.clone(),
                events.clone(),
                cancel.clone(),
                settle_from,
            )
        })
        .buffer_unordered(opts.concurrency.max(1))
        .for_each(|s| {
            finished.push(s);
            std::future::ready(())
        });
    // The throttling watcher never ends on its own: the run is over when the work is, or at an
    // abort, which drops the mailboxes' futures where they wait (see `cancel`).
    tokio::select! {
        () = work => {}
        () = watch_throttling(&connector, &events) => unreachable!("the watcher loops forever"),
        () = cancel.aborted() => {}
    }
    let mut mailboxes = finished;
    if cancel.is_aborted() {
        let cut = cancel::cut_short(ledger, run, &selected, &mailboxes, &events);
        mailboxes.extend(cut);
    }
    let summary = RunSummary {
        run_id: run,
        started_at,
        seconds: started.elapsed().as_secs_f64(),
        dry_run: opts.dry_run,
        interrupted: cancel.is_cancelled(),
        mailboxes,
        plan_errors: Vec::new(),
    };
    finish_run(plan, ledger, summary)
}

/// Sorts the run's mailboxes, adds the plan's unusable rows, and records the run's end (`ok`,
/// `failed` or `interrupted`) with its summary in the ledger.
fn finish_run(
    plan: &Plan,
    ledger: &Ledger,
    mut summary: RunSummary,
) -> Result<RunSummary, EngineError> {
    summary.mailboxes.sort_by(|a, b| a.mailbox.cmp(&b.mailbox));
    summary.plan_errors = plan.row_errors.iter().map(|e| e.to_string()).collect();
    let status = if summary.interrupted {
        "interrupted"
    } else if summary.has_failures() {
        "failed"
    } else {
        "ok"
    };
    ledger.finish_run(
        summary.run_id,
        status,
        &serde_json::to_string(&summary).unwrap_or_default(),
    )?;
    Ok(summary)
}

#[allow(clippy::too_many_arguments)]
async fn run_mailbox(
    plan: &Plan,
    connector: &Connector<'_>,
    ledger: Arc<Ledger>,
    run: i64,
    mb: &Mailbox,
    opts: EffectiveOptions,
    budget: Budget,
    events: Events,
    cancel: Cancel,
    settle_from: tokio::time::Instant,
) -> MailboxSummary {
    let started = Instant::now();
    let destination = mb.destination.clone();
    events.send(Event::MailboxStarted {
        mailbox: mb.key.clone(),
        destination: destination.clone(),
    });
    let failed = |e: String| MailboxSummary {
        mailbox: mb.key.clone(),
        destination: destination.clone(),
        status: "failed".into(),
        error: Some(e),
        seconds: started.elapsed().as_secs_f64(),
        ..Default::default()
    };
    let summary = match ledger.mailbox(&mb.key, &destination) {
        Err(e) => failed(e.to_string()),
        Ok(mailbox_id) => {
            let _host = connector.host_permit(mb).await;
            match connector.open(mb).await {
                Err(e) => failed(e.detail()),
                Ok((mut src, sink, mapper)) => {
                    let ctx = MailboxCtx {
                        ledger: Arc::clone(&ledger),
                        max_message_bytes: MailSink::max_message_bytes(&sink)
                            .min(plan.limits.max_message_bytes),
                        sink: Arc::new(sink),
                        run,
                        mailbox_key: mb.key.clone(),
                        mailbox_id,
                        destination: destination.clone(),
                        opts,
                        budget,
                        events: events.clone(),
                        cancel,
                        started: settle_from,
                    };
                    let s = mailbox::mailbox_pass(&ctx, &mut src, &mapper).await;
                    ports::MailSource::close(src).await;
                    s
                }
            }
        }
    };
    if let Ok(id) = ledger.mailbox(&mb.key, &destination) {
        let err = summary.error.as_deref().map(|e| (e, "mailbox"));
        let _ = ledger.set_mailbox_state(id, run, &summary.status, err);
    }
    events.send(Event::MailboxFinished {
        summary: Box::new(summary.clone()),
    });
    summary
}

/// Turns the Graph governors' 429 counters into progress events, so the operator sees when and
/// where Microsoft pushes back (and that mailferry is slowing down rather than failing), and
/// the bytes of upload sessions in flight into upload progress.
async fn watch_throttling(connector: &Connector<'_>, events: &Events) {
    let mut seen: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
    let mut uploads = uploads::UploadWatch::default();
    loop {
        tick.tick().await;
        uploads.tick(&connector.graph_apps(), events);
        for app in connector.graph_apps() {
            for snap in app.governor_snapshot() {
                let before = seen.insert(snap.scope.clone(), snap.throttled).unwrap_or(0);
                if snap.throttled > before {
                    let pause = snap
                        .paused_for
                        .map(|p| format!(", paused {:.1}s", p.as_secs_f64()))
                        .unwrap_or_default();
                    events.send(Event::Throttled {
                        mailbox: snap.scope.to_lowercase(),
                        detail: format!(
                            "{} throttled (429) so far, {}/{} requests in flight{pause}",
                            snap.throttled, snap.in_flight, snap.in_flight_limit
                        ),
                    });
                }
            }
        }
    }
}
