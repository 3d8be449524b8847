//! `mailferry demo`: a self-contained end-to-end run on a fresh machine, with no server and no
//! network. It copies the bundled sample mailboxes (`fixtures/demo`: Maildir++ trees, plan and
//! CSV) into a working directory, starts the embedded Graph emulator on loopback with Microsoft's
//! limits on a faster clock, and then runs the real commands on that plan: `survey`, `migrate`,
//! `migrate` again (the incremental no-op) and `verify --deep`.
//!
//! It owns only the set-up and the final judgement; the work is the commands' own (the `app`
//! functions, rendered by the same `report` code as the CLI), so what an operator sees here is
//! what a real run shows. The demo passes only when the first run copied every message, the
//! second copied none and found them all present, and verify is PERFECT.

mod workdir;

/// `println!` through [`crate::report::stdout`], so `mailferry demo | head` ends quietly on a
/// closed pipe instead of panicking.
macro_rules! say {
    ($($t:tt)*) => {
        crate::report::stdout::line(&format!($($t)*))
    };
}

/// `print!` through [`crate::report::stdout`].
macro_rules! say_raw {
    ($($t:tt)*) => {
        crate::report::stdout::write(&format!($($t)*))
    };
}

use std::path::{Path, PathBuf};

use crate::app::{self, Workspace};
use crate::emulator::{self, EmulatorConfig, EmulatorError, Latency};
use crate::engine::{Cancel, MigrateOptions};
use crate::plan::Plan;
use crate::report::progress::Mode;
use crate::report::table::bytes;
use crate::report::{self, Events, RunSummary};

pub use workdir::{WorkDir, copy_tree, point_plan_at};

/// The environment variable the sample plan reads the client secret from.
pub const SECRET_ENV: &str = "MAILFERRY_DEMO_SECRET";

/// Service seconds per real second: the 10-minute request window passes in 10 s, so the
/// throttling windows, Retry-After and latency all run on the scaled clock.
pub const TIME_SCALE: f64 = 60.0;

/// What `mailferry demo` was asked for.
#[derive(Debug, Clone, Default)]
pub struct DemoOptions {
    /// The sample set (default: [`default_fixtures`]).
    pub fixtures: Option<PathBuf>,
    /// Keep the working directory (plan, ledger, reports) here instead of a temp dir.
    pub keep: Option<PathBuf>,
}

/// Errors that stop the demo before the commands run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "no demo fixtures at {0} (no plan.toml there): pass --fixtures DIR pointing at the repository's fixtures/demo"
    )]
    NoFixtures(PathBuf),
    #[error(
        "--keep {0}: the directory is not empty; give a new or empty directory (an old ledger there would make the first run a no-op)"
    )]
    KeepNotEmpty(PathBuf),
    #[error("demo plan {path}: {reason}")]
    Plan { path: PathBuf, reason: String },
    #[error("cannot start the emulator: {0}")]
    Emulator(#[from] EmulatorError),
}

impl DemoError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> DemoError {
        DemoError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// `fixtures/demo` of the source tree this binary was built from.
pub fn default_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo")
}

/// The emulator the demo runs against: the documented defaults (tenant `contoso.example`, app
/// `mailferry-demo` with both mail permissions, Microsoft's limits: 10,000 requests per
/// 10 minutes and 150 MB per 5 minutes per mailbox, 4 concurrent requests), a service latency of
/// 240-360 ms as Graph has, and [`TIME_SCALE`] so that is 4-6 ms of real time per request.
pub fn emulator_config() -> EmulatorConfig {
    EmulatorConfig {
        latency: Latency {
            fixed_ms: 240,
            jitter_ms: 120,
        },
        time_scale: TIME_SCALE,
        ..EmulatorConfig::default()
    }
}

/// The counts the demo judges by.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Messages survey found at the source.
    pub surveyed: u64,
    pub first_copied: u64,
    pub first_failed: u64,
    pub first_skipped: u64,
    pub second_copied: u64,
    pub second_present: u64,
    pub second_failed: u64,
    pub perfect: bool,
}

impl Outcome {
    /// Why the demo did not show what it should; empty when it did.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        // Skips are decisions the summary explains (a message marked \Deleted at the source is
        // not copied by default); everything else survey found must have been copied.
        if self.first_copied == 0 || self.first_copied + self.first_skipped != self.surveyed {
            p.push(format!(
                "the first run copied {} and skipped {} of the {} messages survey found",
                self.first_copied, self.first_skipped, self.surveyed
            ));
        }
        if self.first_failed > 0 {
            p.push(format!(
                "the first run failed {} messages",
                self.first_failed
            ));
        }
        if self.second_copied != 0 || self.second_failed != 0 {
            p.push(format!(
                "the second run copied {} and failed {} messages (expected none)",
                self.second_copied, self.second_failed
            ));
        }
        if self.second_present != self.first_copied {
            p.push(format!(
                "the second run found {} messages present (expected {})",
                self.second_present, self.first_copied
            ));
        }
        if !self.perfect {
            p.push("verify --deep did not find every message exactly once".into());
        }
        p
    }
}

/// Runs the demo, printing as it goes; the outcome says whether it showed what it should.
pub async fn run(opts: &DemoOptions) -> Result<Outcome, DemoError> {
    run_inner(opts).await
}

async fn run_inner(opts: &DemoOptions) -> Result<Outcome, DemoError> {
    let fixtures = opts.fixtures.clone().unwrap_or_else(default_fixtures);
    if !fixtures.join("plan.toml").is_file() {
        return Err(DemoError::NoFixtures(fixtures));
    }
    let work = WorkDir::create(opts.keep.as_deref())?;
    let files = copy_tree(&fixtures, &work.path)?;
    let config = emulator_config();
    let secret = config
        .apps
        .first()
        .and_then(|a| a.client_secret.clone())
        .map(|s| s.expose().clone())
        .unwrap_or_default();
    let emu = emulator::start(config.clone()).await?;
    let plan_path = work.path.join("plan.toml");
    point_plan_at(&plan_path, &emu.base_url())?;
    let plan = Plan::load_with_env(&plan_path, &|name| {
        if name == SECRET_ENV {
            Some(secret.clone().into())
        } else {
            std::env::var_os(name)
        }
    })
    .map_err(|e| DemoError::Plan {
        path: plan_path.clone(),
        reason: e.to_string(),
    })?;

    say!(
        "mailferry demo: sample mailboxes from Maildir into Exchange Online, played by the built-in Graph emulator"
    );
    say!("  samples:   {} ({files} files)", fixtures.display());
    say!(
        "  work dir:  {} ({})",
        work.path.display(),
        if work.keep {
            "kept"
        } else {
            "removed at the end; --keep DIR keeps plan, ledger and reports"
        }
    );
    say!(
        "  emulator:  {} tenant {}, app {}; Microsoft's limits ({} requests/{} min and {} MiB/{} min per mailbox, {} concurrent), service latency {}-{} ms, time x{}",
        emu.base_url(),
        config.tenant,
        config
            .apps
            .first()
            .map(|a| a.client_id.as_str())
            .unwrap_or("-"),
        config.limits.requests_per_window,
        config.limits.request_window_secs / 60.0,
        config.limits.upload_bytes_per_window / (1024 * 1024),
        config.limits.upload_window_secs / 60.0,
        config.limits.concurrent_requests,
        config.latency.fixed_ms,
        config.latency.fixed_ms + config.latency.jitter_ms,
        config.time_scale,
    );
    say!(
        "  mailboxes: {}",
        plan.mailboxes
            .iter()
            .map(|m| m.email.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    for w in &plan.warnings {
        say!("  warning:   {w}");
    }

    let workspace = Workspace::resolve(&plan, None, None);
    let mut outcome = Outcome::default();

    step(
        1,
        "survey",
        "what each mailbox holds, and which folder names must change",
    );
    match app::survey(&plan, &[], 4).await {
        Ok(survey) => {
            say_raw!("{}", report::text::survey(&survey));
            outcome.surveyed = survey.messages;
        }
        Err(e) => say!("mailferry: {e}"),
    }

    step(2, "migrate", "copy everything (newest first per folder)");
    if let Some(t) = migrate(&plan, &workspace).await.map(|s| s.total()) {
        outcome.first_copied = t.copied;
        outcome.first_failed = t.failed;
        outcome.first_skipped = t.skipped_total();
    }

    step(
        3,
        "migrate again",
        "incremental: only what is new at the source moves (nothing, here)",
    );
    if let Some(t) = migrate(&plan, &workspace).await.map(|s| s.total()) {
        outcome.second_copied = t.copied;
        outcome.second_present = t.already_present;
        outcome.second_failed = t.failed;
    }

    step(
        4,
        "verify --deep",
        "match every source message to exactly one destination item, with its flags and dates",
    );
    match app::verify(&plan, &workspace, &[], true, 4, None).await {
        Ok(v) => {
            say_raw!("{}", report::text::verify(&v.report));
            outcome.perfect = v.report.perfect;
        }
        Err(e) => say!("mailferry: {e}"),
    }

    let c = emu.inspect().counters();
    say!(
        "\nemulator: {} Graph requests, {} answered 429 (throttled), {} uploaded",
        c.requests,
        c.throttled,
        bytes(c.mailboxes.values().map(|m| m.bytes_uploaded).sum())
    );
    let problems = outcome.problems();
    if problems.is_empty() {
        say!(
            "demo OK: the first run copied {} messages ({} skipped as the summary says), the second copied 0 ({} already present), verify PERFECT",
            outcome.first_copied,
            outcome.first_skipped,
            outcome.second_present
        );
        if work.keep {
            say!(
                "kept in {}: plan.toml, plan.ledger.sqlite (sqlite3 can open it), mailferry-run-*.json/.csv",
                work.path.display()
            );
        }
    } else {
        for p in &problems {
            say!("demo FAILED: {p}");
        }
    }
    Ok(outcome)
}

/// One `migrate` as the CLI runs it: progress while it runs, the summary table at the end.
async fn migrate(plan: &Plan, workspace: &Workspace) -> Option<RunSummary> {
    let (events, rx) = Events::channel();
    let shower = tokio::spawn(report::progress::show(progress(), rx));
    let opts = MigrateOptions::default();
    let result = app::migrate(plan, workspace, &opts, events, Cancel::default()).await;
    let _ = shower.await;
    match result {
        Ok(o) => {
            say_raw!("{}", report::table::run_summary(&o.summary));
            if let Err(e) = &o.reports {
                say!("mailferry: {e}");
            }
            Some(o.summary)
        }
        Err(e) => {
            say!("mailferry: {e}");
            None
        }
    }
}

fn step(n: u32, command: &str, what: &str) {
    say!("\n== {n}/4 mailferry {command}: {what}\n");
}

/// Progress as a real run shows it (bars on a terminal), with plain lines every two seconds
/// otherwise: the demo is short.
fn progress() -> Mode {
    match Mode::detect(false) {
        Mode::Plain { .. } => Mode::Plain {
            interval: std::time::Duration::from_secs(2),
        },
        m => m,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> Outcome {
        Outcome {
            surveyed: 10,
            first_copied: 10,
            second_present: 10,
            perfect: true,
            ..Default::default()
        }
    }

    #[test]
    fn outcome_is_judged_on_every_condition() {
        assert!(good().problems().is_empty());
        let skipped_by_decision = Outcome {
            surveyed: 11,
            first_skipped: 1,
            ..good()
        };
        assert!(skipped_by_decision.problems().is_empty());
        for bad in [
            Outcome {
                first_copied: 9,
                ..good()
            },
            Outcome {
                second_copied: 1,
                ..good()
            },
            Outcome {
                second_present: 9,
                ..good()
            },
            Outcome {
                perfect: false,
                ..good()
            },
            Outcome {
                first_failed: 1,
                ..good()
            },
            Outcome {
                first_skipped: 1,
                ..good()
            },
            Outcome {
                surveyed: 0,
                first_copied: 0,
                second_present: 0,
                perfect: true,
                ..Default::default()
            },
        ] {
            assert!(!bad.problems().is_empty(), "{bad:?}");
        }
    }

    #[test]
    fn the_bundled_fixtures_are_found() {
        assert!(default_fixtures().join("plan.toml").is_file());
    }
}
