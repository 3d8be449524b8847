//! One function per command: load the plan, call the library, print, choose the exit code.

use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, Utc};

use super::{Command, LedgerCommand, PlanArgs, exit};
use crate::app::{self, AppError, Workspace};
use crate::engine::{Cancel, MigrateOptions};
use crate::plan::Plan;
use crate::report::stdout;
use crate::report::{self, Events, progress};

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
            round,
            repair,
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
                repair,
                newest_first: !oldest_first,
                concurrency,
                mailboxes: plan.mailboxes.clone(),
                round,
            };
            migrate(&plan, opts, report_dir).await
        }
        Command::Status { plan } => status(&plan).await,
        Command::Verify {
            plan,
            deep,
            concurrency,
            report_dir,
        } => verify(&plan, deep, concurrency, report_dir).await,
        Command::Ledger {
            command:
                LedgerCommand::Copy {
                    from,
                    to,
                    plan,
                    json,
                },
        } => ledger_copy(&from, &to, plan.as_deref(), json).await,
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
            match crate::demo::run(&crate::demo::DemoOptions { fixtures, keep }).await {
                Ok(outcome) if outcome.problems().is_empty() => exit::OK,
                Ok(_) => exit::FAILURES,
                Err(e) => {
                    eprintln!("mailferry demo: {e}");
                    exit::USAGE
                }
            }
        }
    }
}

/// Loads the plan, printing its warnings; `None` (after printing why) on a plan error.
fn load_plan(args: &PlanArgs) -> Option<Plan> {
    load_plan_file(&args.plan)
}

fn load_plan_file(path: &std::path::Path) -> Option<Plan> {
    match Plan::load(path) {
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

/// Prints why a command could not run and returns its exit code.
fn fail(e: &AppError) -> u8 {
    eprintln!("mailferry: {e}");
    match e {
        AppError::Locked(_) => exit::LOCKED,
        e if e.is_usage() => exit::USAGE,
        _ => exit::FAILURES,
    }
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

/// Prints `value` as pretty JSON on stdout.
fn print_json(value: &impl serde::Serialize) {
    stdout::line(&serde_json::to_string_pretty(value).unwrap_or_default());
}

async fn survey(args: &PlanArgs, concurrency: usize) -> u8 {
    let Some(plan) = load_plan(args) else {
        return exit::USAGE;
    };
    let report = match app::survey(&plan, &args.mailboxes, concurrency).await {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    if args.json {
        print_json(&report);
    } else {
        stdout::write(&report::text::survey(&report));
    }
    let unaccounted = report.mailboxes.iter().any(|m| {
        m.accounting
            .as_ref()
            .is_some_and(|a| !a.unaccounted.is_empty())
    });
    if report.failed_mailboxes > 0
        || report.failed_folders > 0
        || !report.plan_errors.is_empty()
        || unaccounted
    {
        exit::FAILURES
    } else {
        exit::OK
    }
}

async fn migrate(args: &PlanArgs, opts: MigrateOptions, report_dir: Option<PathBuf>) -> u8 {
    let Some(plan) = load_plan(args) else {
        return exit::USAGE;
    };
    if let Err(e) = prepare_report_dir(report_dir.as_deref()) {
        eprintln!("mailferry: {e}");
        return exit::USAGE;
    }
    let workspace = match workspace(&plan, args, report_dir) {
        Ok(w) => w,
        Err(e) => return fail(&e),
    };
    let cancel = Cancel::default();
    app::watch_signals(
        cancel.clone(),
        |signal| {
            eprintln!(
                "mailferry: interrupted ({signal}): finishing the writes in flight, then stopping \
                 (a second Ctrl-C or SIGTERM stops at once)"
            )
        },
        |signal| {
            eprintln!(
                "mailferry: {signal} again: stopping now; writes in flight stay recorded as \
                 `sending` and the next run checks them at the destination"
            )
        },
    );
    let (events, rx) = Events::channel();
    let shower = tokio::spawn(progress::show(progress::Mode::detect(args.json), rx));
    let result = app::migrate(&plan, &workspace, &opts, events, cancel).await;
    let _ = shower.await;
    let outcome = match result {
        Ok(o) => o,
        Err(e) => return fail(&e),
    };
    let summary = &outcome.summary;
    if args.json {
        stdout::line(
            &serde_json::json!({ "event": "run_finished", "summary": summary }).to_string(),
        );
    } else {
        stdout::write(&report::table::run_summary(summary));
    }
    match &outcome.reports {
        Ok((j, c)) if !args.json => eprintln!("reports: {} {}", j.display(), c.display()),
        Ok(_) => {}
        Err(e) => eprintln!("mailferry: {e}"),
    }
    if let Some(fleet) = &outcome.fleet {
        for mailbox in &fleet.leases_lost {
            eprintln!(
                "mailferry: worker {}: lost the lease on {mailbox}; another worker took it over",
                fleet.worker
            );
        }
        if let Some(why) = &fleet.gave_up {
            eprintln!("mailferry: worker {}: {why}", fleet.worker);
            return exit::FAILURES;
        }
        if !summary.interrupted {
            eprintln!(
                "mailferry: worker {}: nothing left to claim in round {}",
                fleet.worker, fleet.round
            );
        }
    }
    if summary.has_failures() {
        exit::FAILURES
    } else {
        exit::OK
    }
}

/// The ledger and report locations: `--state`, `--ledger`, the plan's `[ledger]`.
fn workspace(
    plan: &Plan,
    args: &PlanArgs,
    report_dir: Option<PathBuf>,
) -> Result<Workspace, AppError> {
    Workspace::resolve(plan, args.state.clone(), report_dir).with_ledger(
        plan,
        args.ledger.as_deref(),
        args.state.is_some(),
    )
}

async fn status(args: &PlanArgs) -> u8 {
    let Some(plan) = load_plan(args) else {
        return exit::USAGE;
    };
    let workspace = match workspace(&plan, args, None) {
        Ok(w) => w,
        Err(e) => return fail(&e),
    };
    let outcome = match app::status(&workspace, &args.mailboxes).await {
        Ok(o) => o,
        Err(e) => return fail(&e),
    };
    if args.json {
        print_json(&serde_json::json!({
            "mailboxes": outcome.progress,
            "failures": outcome.failures,
            "runs": outcome.runs,
            "fleet": outcome.fleet,
        }));
    } else {
        stdout::write(&report::text::status(
            &outcome.progress,
            &outcome.failures,
            &outcome.runs,
        ));
        if let Some(fleet) = &outcome.fleet {
            let rates: Vec<(&str, f64)> = fleet
                .rates
                .iter()
                .map(|r| (r.mailbox.as_str(), r.messages_per_second))
                .collect();
            stdout::write(&report::text::fleet_status(
                fleet.round,
                &fleet.leases,
                &fleet.workers,
                &rates,
            ));
        }
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
    if let Err(e) = prepare_report_dir(report_dir.as_deref()) {
        eprintln!("mailferry: {e}");
        return exit::USAGE;
    }
    let workspace = match workspace(&plan, args, None) {
        Ok(w) => w,
        Err(e) => return fail(&e),
    };
    let outcome = match app::verify(
        &plan,
        &workspace,
        &args.mailboxes,
        deep,
        concurrency,
        report_dir.as_deref(),
    )
    .await
    {
        Ok(o) => o,
        Err(e) => return fail(&e),
    };
    let report = &outcome.report;
    if args.json {
        print_json(report);
    } else {
        stdout::write(&report::text::verify(report));
    }
    for file in &outcome.files {
        if let Err(e) = file {
            eprintln!("mailferry: {e}");
        }
    }
    let unaccounted = report.mailboxes.iter().any(|m| {
        m.accounting
            .as_ref()
            .is_some_and(|a| !a.unaccounted.is_empty())
    });
    if report.mailboxes.iter().any(|m| m.verdict == "failed") || unaccounted {
        exit::FAILURES
    } else if report.perfect {
        exit::OK
    } else {
        exit::DIFFERENCE
    }
}

/// Creates `--report-dir` (mode 0700, parents included) before anything runs, so a run never
/// ends with its reports silently unwritten.
fn prepare_report_dir(dir: Option<&std::path::Path>) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    let Some(dir) = dir else { return Ok(()) };
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("--report-dir {}: cannot create it: {e}", dir.display()))
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
        stdout::line(&crate::doctor::render::json(&report));
    } else {
        stdout::write(&crate::doctor::render::text(&report));
    }
    if report.failed() {
        exit::FAILURES
    } else {
        exit::OK
    }
}

async fn ledger_copy(from: &str, to: &str, plan: Option<&std::path::Path>, json: bool) -> u8 {
    let (from, to) = match (
        app::LedgerLocation::parse(from),
        app::LedgerLocation::parse(to),
    ) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) | (_, Err(e)) => return fail(&AppError::LedgerUrl(e)),
    };
    let plan = match plan {
        Some(path) => match load_plan_file(path) {
            Some(p) => Some(p),
            None => return exit::USAGE,
        },
        None => None,
    };
    let outcome = match app::ledger_copy(&from, &to, plan.as_ref()).await {
        Ok(o) => o,
        Err(e) => return fail(&e),
    };
    if json {
        print_json(&outcome);
    } else {
        stdout::write(&copy_text(&outcome));
    }
    exit::OK
}

/// `ledger copy`'s summary: rows per table, then what the target needs next.
fn copy_text(o: &app::CopyOutcome) -> String {
    let rows: Vec<Vec<String>> = o
        .tables
        .iter()
        .map(|t| vec![t.table.clone(), t.rows.to_string()])
        .collect();
    let mut out = format!("copied the ledger {} to {}\n", o.from, o.to);
    out.push_str(&report::table::render(&["table", "rows"], &rows));
    if let Some(n) = o.plan_mailboxes {
        out.push_str(&format!(
            "registered the plan: {n} mailboxes, each claimable by fleet workers \
             (mailferry migrate --ledger URL)\n"
        ));
    }
    if let Some(n) = o.mailboxes_in_flight.filter(|n| *n > 0) {
        out.push_str(&format!(
            "note: {n} mailboxes were being worked on by fleet workers; the copy holds their \
             progress up to that moment\n"
        ));
    }
    out
}
