//! One function per command: load the plan, call the library, print, choose the exit code.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};

use super::{Command, PlanArgs, exit};
use crate::engine::survey::SurveyReport;
use crate::engine::verify::VerifyReport;
use crate::engine::{self, Cancel, MigrateOptions};
use crate::ledger::{Ledger, LedgerError};
use crate::plan::Plan;
use crate::report::{self, Events, RunSummary, progress};

pub(super) async fn run(command: Command) -> u8 {
    match command {
        Command::Survey { plan, concurrency } => survey(&plan, concurrency).await,
        Command::Migrate {
            plan,
            dry_run,
            concurrency,
            since,
            before,
            retry_failed,
            oldest_first,
            report_dir,
        } => {
            let (since, before) =
                match (parse_date(since.as_deref()), parse_date(before.as_deref())) {
                    (Ok(s), Ok(b)) => (s, b),
                    (Err(e), _) | (_, Err(e)) => {
                        eprintln!("mailferry: {e}");
                        return exit::USAGE;
                    }
                };
            let opts = MigrateOptions {
                dry_run,
                since,
                before,
                retry_failed,
                newest_first: !oldest_first,
                concurrency,
                mailboxes: plan.mailboxes.clone(),
            };
            migrate(&plan, opts, report_dir).await
        }
        Command::Status { plan } => status(&plan),
        Command::Verify {
            plan,
            deep,
            concurrency,
            report_dir,
        } => verify(&plan, deep, concurrency, report_dir).await,
        Command::Emulator {
            listen,
            config,
            allow_remote,
        } => match crate::emulator::run_cli(listen, config, allow_remote).await {
            Ok(()) => exit::OK,
            Err(e) => {
                eprintln!("mailferry emulator: {e}");
                exit::USAGE
            }
        },
        Command::Doctor { plan } => doctor(&plan).await,
        Command::Demo { fixtures, keep } => {
            crate::demo::run(&crate::demo::DemoOptions { fixtures, keep }).await
        }
    }
}

/// Loads the plan, printing its warnings; `None` (after printing why) on a plan error.
pub(super) fn load_plan(args: &PlanArgs) -> Option<Plan> {
    match Plan::load(&args.plan) {
        Ok(plan) => {
            for w in &plan.warnings {
                eprintln!("mailferry: warning: {w}");
            }
            for e in &plan.row_errors {
                eprintln!("mailferry: skipping a plan row: {e}");
            }
            Some(plan)
        }
        Err(e) => {
            eprintln!("mailferry: {e}");
            None
        }
    }
}

pub(crate) fn state_path(args: &PlanArgs, plan: &Plan) -> PathBuf {
    args.state
        .clone()
        .unwrap_or_else(|| plan.default_state_path())
}

/// `YYYY-MM-DD` (midnight UTC) or RFC 3339.
fn parse_date(s: Option<&str>) -> Result<Option<DateTime<Utc>>, String> {
    let Some(s) = s else { return Ok(None) };
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).map(|t| t.and_utc()));
    }
    DateTime::parse_from_rfc3339(s)
        .map(|d| Some(d.with_timezone(&Utc)))
        .map_err(|_| {
            format!("invalid date {s:?}: use YYYY-MM-DD or RFC 3339 (2024-05-01T00:00:00Z)")
        })
}

async fn survey(args: &PlanArgs, concurrency: usize) -> u8 {
    let Some(plan) = load_plan(args) else {
        return exit::USAGE;
    };
    survey_plan(&plan, args, concurrency).await.0
}

/// `survey` on a loaded plan: prints the report (table or JSON) and returns the exit code with
/// the report (`None` when the selection was refused).
pub(crate) async fn survey_plan(
    plan: &Plan,
    args: &PlanArgs,
    concurrency: usize,
) -> (u8, Option<SurveyReport>) {
    let selected = match plan.select(&args.mailboxes) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mailferry: {e}");
            return (exit::USAGE, None);
        }
    };
    let report = engine::survey::survey(plan, &selected, concurrency).await;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print!("{}", crate::report::text::survey(&report));
    }
    let code = if report.failed_mailboxes > 0 || !report.plan_errors.is_empty() {
        exit::FAILURES
    } else {
        exit::OK
    };
    (code, Some(report))
}

async fn migrate(args: &PlanArgs, opts: MigrateOptions, report_dir: Option<PathBuf>) -> u8 {
    let Some(plan) = load_plan(args) else {
        return exit::USAGE;
    };
    let mode = progress::Mode::detect(args.json);
    migrate_plan(&plan, args, opts, report_dir, mode).await.0
}

/// `migrate` on a loaded plan: takes the run lock, shows progress in `mode`, prints the summary
/// (table or JSON), writes the reports, and returns the exit code with the run's summary
/// (`None` when the run could not start or stopped on a run-wide error).
pub(crate) async fn migrate_plan(
    plan: &Plan,
    args: &PlanArgs,
    opts: MigrateOptions,
    report_dir: Option<PathBuf>,
    mode: progress::Mode,
) -> (u8, Option<RunSummary>) {
    let state = state_path(args, plan);
    let _lock = match Ledger::lock_run(&state) {
        Ok(l) => l,
        Err(e @ LedgerError::Locked { .. }) => {
            eprintln!("mailferry: {e}");
            return (exit::LOCKED, None);
        }
        Err(e) => {
            eprintln!("mailferry: {e}");
            return (exit::FAILURES, None);
        }
    };
    let ledger = match Ledger::open(&state) {
        Ok(l) => Arc::new(l),
        Err(e) => {
            eprintln!("mailferry: {e}");
            return (exit::FAILURES, None);
        }
    };
    let cancel = Cancel::default();
    let on_interrupt = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("mailferry: interrupted: finishing the writes in flight, then stopping");
            on_interrupt.cancel();
        }
    });
    let (events, rx) = Events::channel();
    let shower = tokio::spawn(progress::show(mode, rx));
    let result = engine::migrate(plan, ledger, &opts, events, cancel).await;
    let _ = shower.await;
    let summary = match result {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mailferry: {e}");
            let code = match e {
                engine::EngineError::Plan(_) => exit::USAGE,
                _ => exit::FAILURES,
            };
            return (code, None);
        }
    };
    let dir = report_dir.unwrap_or_else(|| plan.dir());
    let stem = format!("mailferry-run-{}", summary.run_id);
    let written = report::files::write_run_reports(&dir, &stem, &summary);
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "event": "run_finished", "summary": summary })
        );
    } else {
        print!("{}", report::table::run_summary(&summary));
    }
    match written {
        Ok((j, c)) if !args.json => eprintln!("reports: {} {}", j.display(), c.display()),
        Ok(_) => {}
        Err(e) => eprintln!("mailferry: {e}"),
    }
    let code = if summary.has_failures() {
        exit::FAILURES
    } else {
        exit::OK
    };
    (code, Some(summary))
}

fn status(args: &PlanArgs) -> u8 {
    let Some(plan) = load_plan(args) else {
        return exit::USAGE;
    };
    let state = state_path(args, &plan);
    if !Path::new(&state).exists() {
        eprintln!(
            "mailferry: no ledger at {}: nothing has run yet",
            state.display()
        );
        return exit::USAGE;
    }
    let ledger = match Ledger::open(&state) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("mailferry: {e}");
            return exit::FAILURES;
        }
    };
    let data = (ledger.progress(), ledger.failure_groups(), ledger.runs(5));
    let (Ok(mut progress), Ok(mut failures), Ok(runs)) = data else {
        eprintln!("mailferry: cannot read the ledger {}", state.display());
        return exit::FAILURES;
    };
    if !args.mailboxes.is_empty() {
        let wanted: Vec<String> = args.mailboxes.iter().map(|m| m.to_lowercase()).collect();
        progress.retain(|p| wanted.contains(&p.mailbox));
        failures.retain(|f| wanted.contains(&f.mailbox));
    }
    if args.json {
        let doc = serde_json::json!({ "mailboxes": progress, "failures": failures, "runs": runs });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else {
        print!(
            "{}",
            crate::report::text::status(&progress, &failures, &runs)
        );
    }
    exit::OK
}

async fn verify(
    args: &PlanArgs,
    deep: bool,
    concurrency: usize,
    report_dir: Option<PathBuf>,
) -> u8 {
    let Some(plan) = load_plan(args) else {
        return exit::USAGE;
    };
    verify_plan(&plan, args, deep, concurrency, report_dir)
        .await
        .0
}

/// `verify` on a loaded plan: prints the report (table or JSON), writes the report files when
/// asked, and returns the exit code with the report (`None` when it could not run).
pub(crate) async fn verify_plan(
    plan: &Plan,
    args: &PlanArgs,
    deep: bool,
    concurrency: usize,
    report_dir: Option<PathBuf>,
) -> (u8, Option<VerifyReport>) {
    let selected = match plan.select(&args.mailboxes) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mailferry: {e}");
            return (exit::USAGE, None);
        }
    };
    let state = state_path(args, plan);
    let ledger = if state.exists() {
        match Ledger::open(&state) {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!("mailferry: {e}");
                return (exit::FAILURES, None);
            }
        }
    } else {
        None
    };
    let report = engine::verify::verify(plan, ledger.as_ref(), &selected, deep, concurrency).await;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print!("{}", crate::report::text::verify(&report));
    }
    if let Some(dir) = report_dir {
        let json = serde_json::to_vec_pretty(&report).unwrap_or_default();
        let csv = crate::report::text::verify_csv(&report);
        for (name, body) in [
            ("mailferry-verify.json", json),
            ("mailferry-verify.csv", csv.into_bytes()),
        ] {
            if let Err(e) = report::files::write_private(&dir.join(name), &body) {
                eprintln!("mailferry: {e}");
            }
        }
    }
    let code = if report.mailboxes.iter().any(|m| m.verdict == "failed") {
        exit::FAILURES
    } else if report.perfect {
        exit::OK
    } else {
        exit::DIFFERENCE
    };
    (code, Some(report))
}

async fn doctor(args: &PlanArgs) -> u8 {
    let Some(plan) = load_plan(args) else {
        return exit::USAGE;
    };
    let report = match crate::doctor::run(&plan, &args.mailboxes).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mailferry: {e}");
            return exit::USAGE;
        }
    };
    if args.json {
        println!("{}", crate::doctor::render::json(&report));
    } else {
        print!("{}", crate::doctor::render::text(&report));
    }
    if report.failed() {
        exit::FAILURES
    } else {
        exit::OK
    }
}
