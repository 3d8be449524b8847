//! Fleet mode end to end: several `mailferry migrate --ledger postgres://…` worker processes on
//! one plan (Maildir sources, the Graph emulator as destination), a real PostgreSQL as the
//! shared ledger. Each scenario ends by listing the destination: every source message exactly
//! once, whatever happened to the workers.
//!
//! Progress is watched by polling the destination and the ledger, never by fixed sleeps; the
//! waits that remain are the lease expiries under test (the plan's minimum, 10 s) and a
//! PostgreSQL outage longer than one.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mailferry::emulator::{EmulatorConfig, Latency};

use crate::migrate::{Rig, write_maildir};
use crate::reliability::tally;
use crate::support::corpus::generated_message;
use crate::support::postgres::{PASSWORD, Postgres};

pub(crate) const MAILBOXES: usize = 12;
pub(crate) const PER_FOLDER: usize = 12;

/// A 12-mailbox plan (INBOX and Archive, 24 messages each) into an emulator whose requests
/// take `latency_ms`, with `[ledger] lease_secs = 10`.
pub(crate) async fn rig(latency_ms: u64) -> (Rig, Vec<String>, HashMap<String, Vec<Vec<u8>>>) {
    let names: Vec<String> = (0..MAILBOXES).map(|i| format!("user{i:02}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let cfg = EmulatorConfig {
        latency: Latency {
            fixed_ms: latency_ms,
            jitter_ms: latency_ms / 2,
        },
        // Six mailboxes at once from three processes meet the concurrency limit: the scaled
        // clock keeps the Retry-After pauses it answers with (and verify honours) short.
        time_scale: 60.0,
        ..EmulatorConfig::default()
    };
    let rig = Rig::new(&refs, cfg).await;
    let mut expected = HashMap::new();
    for (m, name) in names.iter().enumerate() {
        let msg = |i: usize| generated_message(m * 1000 + i, 600 + (i * 97) % 1500);
        let inbox: Vec<(Vec<u8>, &str)> = (0..PER_FOLDER).map(|i| (msg(i), "S")).collect();
        let archive: Vec<(Vec<u8>, &str)> =
            (PER_FOLDER..2 * PER_FOLDER).map(|i| (msg(i), "")).collect();
        let all: Vec<Vec<u8>> = inbox
            .iter()
            .chain(archive.iter())
            .map(|(raw, _)| raw.clone())
            .collect();
        write_maildir(&rig.tree(name), &[("", inbox), ("Archive", archive)]);
        expected.insert(format!("{name}@contoso.example"), all);
    }
    let mut plan = std::fs::read_to_string(&rig.plan_path).unwrap();
    plan.push_str("\n[ledger]\nlease_secs = 10\n");
    std::fs::write(&rig.plan_path, plan).unwrap();
    (rig, names, expected)
}

/// Worker processes: killed when the test ends (a failed test must not leave them running),
/// and their stderr printed if it failed.
pub(crate) struct Workers {
    pub(crate) children: Vec<Child>,
    logs: Vec<std::path::PathBuf>,
}

impl Workers {
    pub(crate) fn start(plan: &Path, pg: &Postgres, dir: &Path, n: usize) -> Workers {
        Workers::start_with(plan, pg, dir, n, &[])
    }

    /// `n` workers started with `extra` arguments (their logs named after the arguments).
    pub(crate) fn start_with(
        plan: &Path,
        pg: &Postgres,
        dir: &Path,
        n: usize,
        extra: &[&str],
    ) -> Workers {
        let tag = extra.join("").replace('-', "");
        let logs: Vec<_> = (0..n).map(|i| dir.join(format!("w{i}{tag}.log"))).collect();
        let children = logs.iter().map(|l| worker(plan, pg, l, extra)).collect();
        Workers { children, logs }
    }

    pub(crate) fn stderr(&self, i: usize) -> String {
        std::fs::read_to_string(&self.logs[i]).unwrap_or_default()
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            for i in 0..self.logs.len() {
                eprintln!("--- worker {i} stderr ---\n{}", self.stderr(i));
            }
        }
    }
}

fn worker(plan: &Path, pg: &Postgres, log: &Path, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_mailferry"))
        .args(["migrate", "--plan"])
        .arg(plan)
        .args(["--ledger", &pg.url(), "--concurrency", "2"])
        .args(extra)
        .env("PGPASSWORD", PASSWORD)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("spawn a worker")
}

/// Runs one command to completion (within 2 minutes): exit code, stdout, stderr.
pub(crate) async fn run(plan: &Path, pg: &Postgres, args: &[&str]) -> (i32, String, String) {
    run_within(plan, pg, args, Duration::from_secs(120)).await
}

/// Runs one command to completion: exit code, stdout, stderr. Kills it and fails the test when
/// it runs longer than `limit` (a hung command fails rather than hangs the suite).
pub(crate) async fn run_within(
    plan: &Path,
    pg: &Postgres,
    args: &[&str],
    limit: Duration,
) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailferry"))
        .args(args)
        .arg("--plan")
        .arg(plan)
        .args(["--ledger", &pg.url()])
        .env("PGPASSWORD", PASSWORD)
        .env("RUST_LOG", std::env::var("FLEET_LOG").unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code().unwrap_or(-1);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "mailferry {args:?} still running after {limit:?}; stderr:\n{}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    (
        code,
        std::fs::read_to_string(&out_path).unwrap_or_default(),
        std::fs::read_to_string(&err_path).unwrap_or_default(),
    )
}

/// Waits for every child (polling, so the runtime keeps serving the emulator); their exit codes.
pub(crate) async fn wait_all(children: &mut [Child], limit: Duration) -> Vec<i32> {
    let start = Instant::now();
    let mut codes = vec![None; children.len()];
    while codes.iter().any(Option::is_none) {
        for (i, c) in children.iter_mut().enumerate() {
            if codes[i].is_none()
                && let Some(s) = c.try_wait().unwrap()
            {
                codes[i] = Some(s.code().unwrap_or(-1));
            }
        }
        assert!(
            start.elapsed() < limit,
            "workers still running after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    codes.into_iter().map(Option::unwrap).collect()
}

/// Polls `cond` every 20 ms until it holds (panics after `limit`).
async fn until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Lost and duplicated messages over the whole plan, from the emulator's own listing.
pub(crate) fn lost_and_duplicated(
    rig: &Rig,
    names: &[String],
    expected: &HashMap<String, Vec<Vec<u8>>>,
) -> (usize, usize) {
    let (mut lost, mut dup) = (0, 0);
    for name in names {
        let at_dest: Vec<Vec<u8>> = rig.items(name).into_iter().map(|(_, raw)| raw).collect();
        let want: Vec<Vec<u8>> = expected[&format!("{name}@contoso.example")]
            .iter()
            .map(|m| crate::support::corpus::imap_ready(m))
            .collect();
        let (l, d) = tally(&want, &at_dest);
        lost += l;
        dup += d;
    }
    (lost, dup)
}

pub(crate) fn total_items(rig: &Rig) -> usize {
    let insp = rig.emulator.inspect();
    (0..MAILBOXES)
        .filter_map(|i| insp.mailbox(&format!("user{i:02}@contoso.example")))
        .map(|m| m.items.len())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_finish_a_twelve_mailbox_plan_exactly_once() {
    let pg = Postgres::start();
    let (rig, names, expected) = rig(5).await;
    let mut w = Workers::start(&rig.plan_path, &pg, rig.dir.path(), 3);
    let children = &mut w.children;
    let codes = wait_all(children, Duration::from_secs(240)).await;
    let stderr: Vec<String> = (0..3).map(|i| w.stderr(i)).collect();
    assert_eq!(codes, vec![0, 0, 0], "{stderr:#?}");
    for err in &stderr {
        assert!(err.contains("nothing left to claim"), "{err}");
    }
    assert_eq!(lost_and_duplicated(&rig, &names, &expected), (0, 0));

    // Every mailbox finished ok; status shows the leases and the workers' runs.
    let (code, out, err) = run(&rig.plan_path, &pg, &["status", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    let leases = status["fleet"]["leases"].as_array().unwrap();
    assert_eq!(leases.len(), MAILBOXES);
    assert!(leases.iter().all(|l| l["outcome"] == "ok"), "{leases:#?}");
    // Three workers registered, each said goodbye, and each recorded one run.
    let workers = status["fleet"]["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 3, "{workers:#?}");
    assert!(
        workers
            .iter()
            .all(|w| w["stopped"] == true && w["alive"] == false && w["runs"] == 1),
        "{workers:#?}"
    );
    let done: u64 = status["mailboxes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["done"].as_u64().unwrap())
        .sum();
    assert_eq!(done as usize, MAILBOXES * 2 * PER_FOLDER);
    // Each mailbox's rate over its (only) pass: 24 messages copied, so above 0; and no more
    // than 24 in a millisecond (the shortest duration the rate divides by).
    let rates = status["fleet"]["rates"].as_array().unwrap();
    assert_eq!(rates.len(), MAILBOXES, "{rates:#?}");
    for r in rates {
        let rate = r["messages_per_second"].as_f64().unwrap();
        assert!(rate > 0.0 && rate <= 24_000.0, "{r}");
    }
    let (code, text, err) = run(&rig.plan_path, &pg, &["status"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        text.contains("fleet (PostgreSQL ledger)")
            && text.contains(" msg/")
            && text.contains("finished (ok)")
            && text.contains("workers:")
            && text.contains("stopped"),
        "{text}"
    );

    // verify reads the same ledger from PostgreSQL.
    let (code, out, err) = run(&rig.plan_path, &pg, &["verify", "--deep"]).await;
    assert_eq!(code, 0, "verify --deep:\n{out}\n{err}");

    // A worker started after the end finds nothing to claim and exits 0 at once.
    let (code, _, err) = run(&rig.plan_path, &pg, &["migrate"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("nothing left to claim"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_with_another_plan_is_refused_naming_the_difference() {
    let pg = Postgres::start();
    let (rig, _names, _expected) = rig(0).await;
    let (code, _, err) = run(&rig.plan_path, &pg, &["status"]).await;
    assert_eq!(code, 0, "{err}");
    let mut w = Workers::start(&rig.plan_path, &pg, rig.dir.path(), 1);
    assert_eq!(
        wait_all(&mut w.children, Duration::from_secs(120)).await,
        vec![0]
    );
    // The same plan with one more mailbox is another plan.
    let csv = rig.dir.path().join("mailboxes.csv");
    let mut text = std::fs::read_to_string(&csv).unwrap();
    text.push_str("late@contoso.example,late,,trees/late\n");
    std::fs::write(&csv, text).unwrap();
    std::fs::create_dir_all(rig.tree("late")).unwrap();
    let (code, _, err) = run(&rig.plan_path, &pg, &["migrate"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("another plan") && err.contains("late@contoso.example"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_one_worker_its_mailboxes_are_taken_over_exactly_once() {
    let pg = Postgres::start();
    let (rig, names, expected) = rig(60).await;
    let mut w = Workers::start(&rig.plan_path, &pg, rig.dir.path(), 3);
    let children = &mut w.children;
    let victim = children[0].id();
    // Kill it while it holds a lease and has written something.
    until(
        Duration::from_secs(120),
        "the victim to hold a lease",
        || total_items(&rig) >= 10 && !pg.leases_held_by(victim).is_empty(),
    )
    .await;
    let orphaned = pg.leases_held_by(victim);
    children[0].kill().unwrap();
    children[0].wait().unwrap();
    let killed_at = Instant::now();
    // Another worker takes each orphaned mailbox over once its lease expires.
    until(Duration::from_secs(120), "the takeover", || {
        orphaned.iter().all(|k| pg.lease_generation(k) >= 2)
    })
    .await;
    let takeover = killed_at.elapsed();
    println!(
        "FLEET takeover after SIGKILL: {:.1}s (lease 10 s)",
        takeover.as_secs_f64()
    );
    assert!(
        takeover < Duration::from_secs(10 + 5),
        "takeover took {takeover:?}"
    );
    let codes = wait_all(&mut children[1..], Duration::from_secs(240)).await;
    assert_eq!(codes, vec![0, 0]);
    assert_eq!(lost_and_duplicated(&rig, &names, &expected), (0, 0));
    let (code, out, err) = run(&rig.plan_path, &pg, &["verify", "--deep"]).await;
    assert_eq!(code, 0, "verify --deep:\n{out}\n{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_frozen_past_its_lease_records_nothing_when_it_wakes() {
    let pg = Postgres::start();
    let (rig, names, expected) = rig(60).await;
    let mut w = Workers::start(&rig.plan_path, &pg, rig.dir.path(), 2);
    let children = &mut w.children;
    let frozen = children[0].id();
    until(
        Duration::from_secs(120),
        "the worker to hold a lease",
        || total_items(&rig) >= 10 && !pg.leases_held_by(frozen).is_empty(),
    )
    .await;
    let pid = frozen.to_string();
    signal(&pid, "STOP");
    let held = pg.leases_held_by(frozen);
    let before: Vec<i64> = held.iter().map(|k| pg.lease_generation(k)).collect();
    // The other worker takes the frozen one's mailboxes over after the lease expires.
    until(Duration::from_secs(120), "the takeover", || {
        held.iter()
            .zip(&before)
            .all(|(k, g)| pg.lease_generation(k) > *g)
    })
    .await;
    signal(&pid, "CONT");
    let codes = wait_all(children, Duration::from_secs(240)).await;
    // The thawed worker learns it on its first ledger call: the lease taken over, or its
    // connection ended by the server (a transaction it was frozen in). Either way it records
    // nothing more, and sends nothing more (the lease clock gate).
    let err0 = w.stderr(0);
    assert!(
        err0.contains("lost the lease") || err0.contains("connection closed"),
        "{err0}"
    );
    assert_eq!(codes[1], 0, "{}", w.stderr(1));
    assert_eq!(lost_and_duplicated(&rig, &names, &expected), (0, 0));
    let (code, out, err) = run(&rig.plan_path, &pg, &["verify", "--deep"]).await;
    assert_eq!(code, 0, "verify --deep:\n{out}\n{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_mid_run_workers_reconnect_and_finish_exactly_once() {
    let pg = Postgres::start();
    let (rig, names, expected) = rig(60).await;
    let mut w = Workers::start(&rig.plan_path, &pg, rig.dir.path(), 2);
    let pids: Vec<u32> = w.children.iter().map(Child::id).collect();
    // Restart while both workers hold leases and have written something.
    until(
        Duration::from_secs(120),
        "both workers to hold a lease",
        || total_items(&rig) >= 10 && pids.iter().all(|p| !pg.leases_held_by(*p).is_empty()),
    )
    .await;
    let before = total_items(&rig);
    tokio::task::block_in_place(|| pg.restart());
    until(
        Duration::from_secs(120),
        "progress after the restart",
        || total_items(&rig) > before,
    )
    .await;
    let codes = wait_all(&mut w.children, Duration::from_secs(240)).await;
    let stderr: Vec<String> = (0..2).map(|i| w.stderr(i)).collect();
    assert_eq!(codes, vec![0, 0], "{stderr:#?}");
    // Each worker said it lost the connection and got it back, and lost no lease to the pause.
    for err in &stderr {
        assert!(
            err.contains("connection lost") && err.contains("reconnected after"),
            "{err}"
        );
        assert!(!err.contains("lease lost"), "{err}");
        for line in err
            .lines()
            .filter(|l| l.contains("connection lost") || l.contains("reconnected"))
        {
            println!("FLEET restart: {line}");
        }
    }
    assert_eq!(lost_and_duplicated(&rig, &names, &expected), (0, 0));
    let (code, out, err) = run(&rig.plan_path, &pg, &["status", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    let leases = status["fleet"]["leases"].as_array().unwrap();
    assert!(leases.iter().all(|l| l["outcome"] == "ok"), "{leases:#?}");
    let (code, out, err) = run(&rig.plan_path, &pg, &["verify", "--deep"]).await;
    assert_eq!(code, 0, "verify --deep:\n{out}\n{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_longer_than_the_lease_workers_wait_and_finish_exactly_once() {
    let pg = Postgres::start();
    let (rig, names, expected) = rig(60).await;
    let mut w = Workers::start(&rig.plan_path, &pg, rig.dir.path(), 2);
    let pids: Vec<u32> = w.children.iter().map(Child::id).collect();
    until(
        Duration::from_secs(120),
        "both workers to hold a lease",
        || total_items(&rig) >= 10 && pids.iter().all(|p| !pg.leases_held_by(*p).is_empty()),
    )
    .await;
    tokio::task::block_in_place(|| pg.stop());
    let stopped = Instant::now();
    // Down for longer than the lease (10 s): every lease expires while the workers wait. The
    // wait is the outage under test, as the lease expiries in the tests above.
    until(
        Duration::from_secs(30),
        "both workers to notice the outage",
        || {
            stopped.elapsed() > Duration::from_secs(12)
                && (0..2).all(|i| w.stderr(i).contains("connection lost"))
        },
    )
    .await;
    let before = total_items(&rig);
    tokio::task::block_in_place(|| pg.restart());
    let codes = wait_all(&mut w.children, Duration::from_secs(240)).await;
    let stderr: Vec<String> = (0..2).map(|i| w.stderr(i)).collect();
    assert_eq!(codes, vec![0, 0], "{stderr:#?}");
    assert!(total_items(&rig) > before, "work went on after the outage");
    // Both came back and kept their own mailboxes: the first back waited before claiming, so
    // the other renewed its expired leases first.
    for err in &stderr {
        assert!(err.contains("reconnected after"), "{err}");
        assert!(!err.contains("lease lost"), "{err}");
    }
    assert_eq!(lost_and_duplicated(&rig, &names, &expected), (0, 0));
    let (code, out, err) = run(&rig.plan_path, &pg, &["status", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    let leases = status["fleet"]["leases"].as_array().unwrap();
    assert!(leases.iter().all(|l| l["outcome"] == "ok"), "{leases:#?}");
    let (code, out, err) = run(&rig.plan_path, &pg, &["verify", "--deep"]).await;
    assert_eq!(code, 0, "verify --deep:\n{out}\n{err}");
}

/// Sends `SIG<name>` with kill(1): the test needs no libc binding for two signals.
fn signal(pid: &str, name: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{name}"), pid])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{name} {pid}");
}
