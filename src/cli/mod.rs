//! The `mailferry` command line: clap types, commands, exit codes and terminal output. Logic a
//! library user would want lives in the other modules; this one only wires and prints.
//!
//! Exit codes (a contract): 0 success; 1 some items or mailboxes failed; 2 usage or plan error;
//! 3 another run holds the lock; 4 verify found a difference.

pub(crate) mod commands;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Exit codes.
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILURES: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const LOCKED: u8 = 3;
    pub const DIFFERENCE: u8 = 4;
}

/// Move whole mailboxes from IMAP servers into Exchange Online (Microsoft Graph) and other IMAP
/// servers, exactly once, resumably.
#[derive(Debug, Parser)]
#[command(name = "mailferry", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// More log output on stderr (-v info, -vv debug). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// Flags every plan-based command takes.
#[derive(Debug, Args, Clone)]
pub struct PlanArgs {
    /// The plan file (plan.toml).
    #[arg(long, value_name = "FILE")]
    pub plan: PathBuf,
    /// Only this mailbox (its EmailAddress); repeat for several.
    #[arg(long = "mailbox", value_name = "EMAIL")]
    pub mailboxes: Vec<String>,
    /// Machine-readable output on stdout.
    #[arg(long)]
    pub json: bool,
    /// The ledger file (default: next to the plan).
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Fleet mode: a PostgreSQL ledger shared by several workers
    /// (postgres://user@host:port/db?sslmode=verify-full; the password from PGPASSWORD).
    /// Overrides the plan's [ledger]. migrate, status and verify use it.
    #[arg(long, value_name = "URL")]
    pub ledger: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Audit every source mailbox before anything moves: folders, sizes, renames, estimates.
    Survey {
        #[command(flatten)]
        plan: PlanArgs,
        /// Mailboxes surveyed at once.
        #[arg(long, default_value_t = 4, value_parser = at_least_one())]
        concurrency: usize,
    },
    /// Run or resume the plan; every re-run copies only what is new and syncs changed flags.
    Migrate {
        #[command(flatten)]
        plan: PlanArgs,
        /// Show what would be copied; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Mailboxes migrated at once.
        #[arg(long, default_value_t = 4, value_parser = at_least_one())]
        concurrency: usize,
        /// Only messages received on or after this date (YYYY-MM-DD or RFC 3339).
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
        /// Only messages received before this date (YYYY-MM-DD or RFC 3339).
        #[arg(long, value_name = "DATE")]
        before: Option<String>,
        /// Retry messages that failed or were skipped in earlier runs. Fleet mode: also claim
        /// once more each mailbox that failed in the round.
        #[arg(long)]
        retry_failed: bool,
        /// Fleet mode: work round N. The next round number starts a new pass over every
        /// mailbox (the incremental pass after the MX switch); without it, the newest round.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..))]
        round: Option<i64>,
        /// Check every message recorded as copied against the destination; copy again the
        /// ones no longer there (deleted, lost in a restore, a wiped destination).
        #[arg(long)]
        repair: bool,
        /// Copy each folder oldest first (default: newest first).
        #[arg(long)]
        oldest_first: bool,
        /// Where to write the JSON and CSV reports (default: next to the plan).
        #[arg(long, value_name = "DIR")]
        report_dir: Option<PathBuf>,
    },
    /// Compare source, ledger and destination per folder: did everything arrive, once?
    Verify {
        #[command(flatten)]
        plan: PlanArgs,
        /// Match every source message to exactly one destination item; compare flags and dates.
        #[arg(long)]
        deep: bool,
        /// Mailboxes verified at once.
        #[arg(long, default_value_t = 4, value_parser = at_least_one())]
        concurrency: usize,
        /// Also write the result as JSON and CSV files into this directory.
        #[arg(long, value_name = "DIR")]
        report_dir: Option<PathBuf>,
    },
    /// What the ledger knows: progress per mailbox, failures by reason, recent runs.
    Status {
        #[command(flatten)]
        plan: PlanArgs,
    },
    /// Work on a ledger as a whole (see `mailferry ledger copy --help`).
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
    /// Serve the Graph emulator for rehearsals.
    Emulator {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8750")]
        listen: std::net::SocketAddr,
        /// Emulator configuration (apps, mailboxes, limits, faults).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Allow a non-loopback listen address.
        #[arg(long)]
        allow_remote: bool,
    },
    /// Check a deployment before migrating: hosts, TLS, logins, capabilities, the Graph token,
    /// permissions, mailbox access, and how the tenant treats a test message per write route.
    Doctor {
        #[command(flatten)]
        plan: PlanArgs,
    },
    /// See it work, with no server and no network: bundled sample mailboxes migrated into the
    /// built-in Graph emulator, migrated again (nothing moves), then verified.
    Demo {
        /// The sample set: Maildir trees, plan.toml, mailboxes.csv (default: the source tree's
        /// fixtures/demo).
        #[arg(long, value_name = "DIR")]
        fixtures: Option<PathBuf>,
        /// Work in this new or empty directory and keep it (plan, ledger, reports).
        #[arg(long, value_name = "DIR")]
        keep: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Copy a project's ledger between SQLite and PostgreSQL, every table and id kept: into
    /// fleet mode mid-project (SQLite -> PostgreSQL, the plan registered for the workers), or
    /// out of it / as a backup (PostgreSQL -> SQLite). The target must be new or empty; a run
    /// holding the SQLite ledger's lock is refused (exit 3).
    Copy {
        /// The ledger to read: a SQLite file, or postgres://user@host/db (the password from
        /// PGPASSWORD).
        #[arg(long, value_name = "FILE|URL")]
        from: String,
        /// The ledger to write: a new or empty SQLite file, or an empty PostgreSQL database.
        #[arg(long, value_name = "FILE|URL")]
        to: String,
        /// The plan file: required into PostgreSQL, where it is registered for fleet workers.
        #[arg(long, value_name = "FILE")]
        plan: Option<PathBuf>,
        /// Machine-readable output on stdout.
        #[arg(long)]
        json: bool,
    },
}

/// A count that must be 1 or more (`--concurrency 0` would run nothing: a usage error).
fn at_least_one() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    init_logging(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mailferry: cannot start the runtime: {e}");
            return ExitCode::from(exit::FAILURES);
        }
    };
    let code = runtime.block_on(commands::run(cli.command));
    ExitCode::from(code)
}

fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal (no escape codes in cron mail or log files),
        // and never with NO_COLOR set (https://no-color.org).
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        )
        .with_target(false)
        .try_init();
}
