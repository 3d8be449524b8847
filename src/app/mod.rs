//! What each command does, as a library: open the ledger, take the run lock, wire cancellation,
//! run the engine, write the report files, and return an outcome. Nothing here prints or chooses
//! an exit code; `cli` and `demo` render the outcomes.
//!
//! This is the only path to a migration that records anything: [`migrate`] takes the run lock
//! before it opens the ledger, so two scheduled runs never overlap, whoever the caller is.

mod fleet;
mod ledger_copy;
mod signals;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use fleet::{hostname, ledger_url, plan_identity};
pub use ledger_copy::{CopyOutcome, LedgerLocation, ledger_copy};
pub use signals::watch_signals;

use crate::engine::fleet::FleetOptions;
use crate::engine::survey::SurveyReport;
use crate::engine::verify::VerifyReport;
use crate::engine::{self, Cancel, EngineError, MigrateOptions};
use crate::ledger::postgres::{LeaseRow, PgLedger, PgLedgerError, PgUrl, UrlError};
use crate::ledger::{FailureGroup, Ledger, LedgerError, MailboxProgress, RunLedger, RunRow};
use crate::plan::{Plan, PlanError};
use crate::report::files::ReportError;
use crate::report::{self, Events, RunSummary};

/// Why a command could not run (as opposed to a run that ran and found failures, which is an
/// outcome).
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The plan, the mailbox selection or an option is unusable (exit 2).
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// Another run holds the ledger's lock (exit 3).
    #[error(transparent)]
    Locked(LedgerError),
    /// The ledger could not be opened or read.
    #[error(transparent)]
    Ledger(LedgerError),
    /// Nothing has run yet: there is no ledger at this path.
    #[error("no ledger at {}: nothing has run yet", .0.display())]
    NoLedger(PathBuf),
    /// The engine stopped on a run-wide error.
    #[error(transparent)]
    Engine(EngineError),
    /// The ledger URL is unusable (exit 2).
    #[error(transparent)]
    LedgerUrl(#[from] UrlError),
    /// The PostgreSQL ledger could not be reached, or holds another plan (exit 2 for that).
    #[error(transparent)]
    Fleet(#[from] PgLedgerError),
    /// An option that does not apply here (exit 2).
    #[error("{0}")]
    Usage(String),
    /// `ledger copy` refused (the target holds data: exit 2) or met a value it cannot copy.
    #[error(transparent)]
    Copy(crate::ledger::CopyError),
}

impl AppError {
    /// Whether the error is the operator's input (plan, selection, options) rather than the
    /// environment.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            AppError::Plan(_)
                | AppError::NoLedger(_)
                | AppError::Engine(EngineError::Plan(_))
                | AppError::LedgerUrl(_)
                | AppError::Usage(_)
                | AppError::Fleet(PgLedgerError::PlanMismatch { .. })
                | AppError::Fleet(PgLedgerError::Round { .. })
                | AppError::Copy(crate::ledger::CopyError::NotEmpty { .. })
        )
    }
}

fn ledger_error(e: LedgerError) -> AppError {
    match e {
        e @ LedgerError::Locked { .. } => AppError::Locked(e),
        e => AppError::Ledger(e),
    }
}

/// Where a plan's state and reports live, resolved once from the plan and the command line.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// The SQLite ledger.
    pub state: PathBuf,
    /// Where run reports go.
    pub report_dir: PathBuf,
    /// Fleet mode: the PostgreSQL ledger, used instead of `state`.
    pub fleet: Option<PgUrl>,
}

impl Workspace {
    /// The plan's defaults (ledger next to the plan, reports beside it), overridden where given.
    /// The SQLite ledger; see [`Workspace::with_ledger`] for fleet mode.
    pub fn resolve(plan: &Plan, state: Option<PathBuf>, report_dir: Option<PathBuf>) -> Workspace {
        Workspace {
            state: state.unwrap_or_else(|| plan.default_state_path()),
            report_dir: report_dir.unwrap_or_else(|| plan.dir()),
            fleet: None,
        }
    }

    /// Chooses the PostgreSQL ledger named by `--ledger` (`cli`) or the plan's `[ledger]`, if
    /// either names one. `--state` and a PostgreSQL ledger exclude each other.
    pub fn with_ledger(
        mut self,
        plan: &Plan,
        cli: Option<&str>,
        state_given: bool,
    ) -> Result<Workspace, AppError> {
        self.fleet = ledger_url(plan, cli)?;
        if self.fleet.is_some() && state_given {
            return Err(AppError::Usage(
                "--state names a SQLite ledger and the plan or --ledger a PostgreSQL one: give \
                 one of them"
                    .into(),
            ));
        }
        Ok(self)
    }
}

/// `survey`: reads every selected source mailbox; nothing is recorded.
pub async fn survey(
    plan: &Plan,
    mailboxes: &[String],
    concurrency: usize,
) -> Result<SurveyReport, AppError> {
    let selected = plan.select(mailboxes)?;
    Ok(engine::survey::survey(plan, &selected, concurrency).await)
}

/// What a finished `migrate` run produced.
#[derive(Debug)]
pub struct MigrateOutcome {
    pub summary: RunSummary,
    /// The JSON and CSV reports written, or why they could not be.
    pub reports: Result<(PathBuf, PathBuf), ReportError>,
    /// Fleet mode: what this worker did.
    pub fleet: Option<FleetWorker>,
}

/// One fleet worker's part in a `migrate`.
#[derive(Debug, Clone)]
pub struct FleetWorker {
    /// The worker's id (the lease owner `status` shows).
    pub worker: String,
    /// Mailboxes whose lease it lost mid-pass (another worker took them over).
    pub leases_lost: Vec<String>,
    /// Why it stopped claiming before the round ended, if it did.
    pub gave_up: Option<String>,
    /// The round it worked.
    pub round: i64,
}

/// `migrate`: takes the run lock, opens the ledger, runs the engine until done or `cancel`, and
/// writes the run reports. Progress goes to `events`; the caller renders it.
pub async fn migrate(
    plan: &Plan,
    workspace: &Workspace,
    opts: &MigrateOptions,
    events: Events,
    cancel: Cancel,
) -> Result<MigrateOutcome, AppError> {
    let (summary, fleet) = match &workspace.fleet {
        None => {
            if opts.round.is_some() {
                return Err(AppError::Usage(
                    "--round works on a PostgreSQL ledger (--ledger or the plan's [ledger]); on \
                     a SQLite ledger every migrate is a new pass already"
                        .into(),
                ));
            }
            let ledger = open_run_ledger(&workspace.state).await?;
            let summary = engine::migrate(plan, &ledger, opts, events, cancel)
                .await
                .map_err(AppError::Engine)?;
            (summary, None)
        }
        Some(url) => {
            if opts.dry_run || !opts.mailboxes.is_empty() {
                return Err(AppError::Usage(
                    "fleet mode runs the whole plan: --dry-run and --mailbox work only on a \
                     SQLite ledger (--state)"
                        .into(),
                ));
            }
            let db = fleet::connect(url, plan).await?;
            if let Some(round) = opts.round {
                db.open_round(round).await?;
            }
            let ledger = Arc::new(Ledger::postgres(db));
            let options = FleetOptions {
                lease: std::time::Duration::from_secs(plan.ledger.lease_secs),
                hostname: hostname(),
            };
            let run = engine::fleet::migrate(plan, ledger, opts, &options, events, cancel)
                .await
                .map_err(AppError::Engine)?;
            let worker = FleetWorker {
                worker: run.worker,
                leases_lost: run.leases_lost,
                gave_up: run.gave_up,
                round: run.round,
            };
            (run.summary, Some(worker))
        }
    };
    let stem = format!("mailferry-run-{}", summary.run_id);
    let reports = report::files::write_run_reports(&workspace.report_dir, &stem, &summary);
    // Retention only after this run's own report is safely written.
    if let (Ok(_), Some(keep)) = (&reports, plan.reports.keep)
        && let Err(e) = report::files::prune_run_reports(&workspace.report_dir, keep)
    {
        tracing::warn!("{e}");
    }
    Ok(MigrateOutcome {
        summary,
        reports,
        fleet,
    })
}

/// How long a run waits for a lock that someone holds only for a moment.
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

/// Takes the run lock and opens the ledger. A lock found held is tried again for up to
/// [`LOCK_PATIENCE`] before the run gives up with exit 3: `status` probes the lock for an
/// instant to tell a crashed run from a live one, and a child process forked elsewhere in this
/// process holds a copy of the lock's descriptor until its `exec` closes it. A real second run
/// holds the lock for its whole duration and is still refused.
async fn open_run_ledger(state: &Path) -> Result<RunLedger, AppError> {
    let deadline = tokio::time::Instant::now() + LOCK_PATIENCE;
    loop {
        match RunLedger::open(state) {
            Err(LedgerError::Locked { .. }) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            other => return other.map_err(ledger_error),
        }
    }
}

/// What the ledger knows, for `status`.
#[derive(Debug)]
pub struct StatusOutcome {
    pub progress: Vec<MailboxProgress>,
    pub failures: Vec<FailureGroup>,
    pub runs: Vec<RunRow>,
    /// Fleet mode: who holds which mailbox.
    pub fleet: Option<FleetStatus>,
}

/// The fleet as the PostgreSQL ledger sees it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FleetStatus {
    /// The newest round: the one workers started without `--round` work.
    pub round: i64,
    /// One row per mailbox of the plan: its holder, heartbeat age and outcome.
    pub leases: Vec<LeaseRow>,
    /// Every worker that ever registered: alive or not, heartbeat age, runs, mailboxes held.
    pub workers: Vec<crate::ledger::postgres::WorkerRow>,
    /// Messages per second of each mailbox being worked on (its current pass) or finished
    /// (its last pass); mailboxes never claimed have none (`PgLedger::mailbox_rates`).
    pub rates: Vec<MailboxRate>,
}

/// One mailbox's copy rate, for `status --ledger URL`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MailboxRate {
    pub mailbox: String,
    pub messages_per_second: f64,
}

/// `status`: reads the ledger (never writes), limited to `mailboxes` when given.
pub async fn status(
    workspace: &Workspace,
    mailboxes: &[String],
) -> Result<StatusOutcome, AppError> {
    let (mut progress, mut failures, runs, fleet) = match &workspace.fleet {
        None => {
            if !workspace.state.exists() {
                return Err(AppError::NoLedger(workspace.state.clone()));
            }
            let ledger = Ledger::open(&workspace.state).map_err(ledger_error)?;
            let mut runs = ledger.runs(5).map_err(ledger_error)?;
            mark_dead_runs(&workspace.state, &mut runs);
            (
                ledger.progress().map_err(ledger_error)?,
                ledger.failure_groups().map_err(ledger_error)?,
                runs,
                None,
            )
        }
        Some(url) => {
            let db =
                Arc::new(PgLedger::connect(url, crate::ledger::postgres::Clock::Database).await?);
            let leases = db.leases().await?;
            let workers = db.workers().await?;
            let round = db.newest_round().await?;
            let rates = db
                .mailbox_rates()
                .await?
                .into_iter()
                .map(|(mailbox, messages_per_second)| MailboxRate {
                    mailbox,
                    messages_per_second,
                })
                .collect();
            let ledger = Ledger::postgres(db);
            (
                ledger.progress().map_err(ledger_error)?,
                ledger.failure_groups().map_err(ledger_error)?,
                ledger.runs(10).map_err(ledger_error)?,
                Some(FleetStatus {
                    round,
                    leases,
                    workers,
                    rates,
                }),
            )
        }
    };
    let mut fleet = fleet;
    if !mailboxes.is_empty() {
        let wanted: Vec<String> = mailboxes.iter().map(|m| m.to_lowercase()).collect();
        progress.retain(|p| wanted.contains(&p.mailbox));
        failures.retain(|f| wanted.contains(&f.mailbox));
        if let Some(f) = fleet.as_mut() {
            f.leases.retain(|l| wanted.contains(&l.mailbox));
            f.rates.retain(|r| wanted.contains(&r.mailbox));
        }
    }
    Ok(StatusOutcome {
        progress,
        failures,
        runs,
        fleet,
    })
}

/// A run recorded as `running` whose process is gone (killed, crashed, the machine rebooted)
/// is `interrupted`: only a live run holds the ledger's lock, so a free lock proves it.
fn mark_dead_runs(state: &Path, runs: &mut [crate::ledger::RunRow]) {
    if !runs.iter().any(|r| r.status == "running") {
        return;
    }
    if let Ok(lock) = Ledger::lock_run(state) {
        drop(lock);
        for r in runs.iter_mut().filter(|r| r.status == "running") {
            r.status = "interrupted".to_owned();
        }
    }
}

/// What `verify` found, and the report files it wrote when asked.
#[derive(Debug)]
pub struct VerifyOutcome {
    pub report: VerifyReport,
    pub files: Vec<Result<PathBuf, ReportError>>,
}

/// `verify`: compares source, ledger (when one exists) and destination; writes the JSON and CSV
/// result into `report_dir` when given.
pub async fn verify(
    plan: &Plan,
    workspace: &Workspace,
    mailboxes: &[String],
    deep: bool,
    concurrency: usize,
    report_dir: Option<&Path>,
) -> Result<VerifyOutcome, AppError> {
    let selected = plan.select(mailboxes)?;
    let ledger = match &workspace.fleet {
        Some(url) => Some(Ledger::postgres(Arc::new(
            PgLedger::connect(url, crate::ledger::postgres::Clock::Database).await?,
        ))),
        None if workspace.state.exists() => {
            Some(Ledger::open(&workspace.state).map_err(ledger_error)?)
        }
        None => None,
    };
    let report = engine::verify::verify(plan, ledger.as_ref(), &selected, deep, concurrency).await;
    let mut files = Vec::new();
    if let Some(dir) = report_dir {
        let json = serde_json::to_vec_pretty(&report).unwrap_or_default();
        let csv = report::text::verify_csv(&report);
        for (name, body) in [
            ("mailferry-verify.json", json),
            ("mailferry-verify.csv", csv.into_bytes()),
        ] {
            let path = dir.join(name);
            files.push(report::files::write_private(&path, &body).map(|()| path));
        }
    }
    Ok(VerifyOutcome { report, files })
}
