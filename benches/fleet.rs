//! Fleet mode's benchmark (issue 17): one plan of N generated Maildir++ mailboxes (30 by default)
//! moved into `mailferry emulator` on a scaled clock by 1, 2 and 3 `mailferry migrate` worker
//! processes sharing a private PostgreSQL ledger, against one process on the plan's SQLite
//! ledger; then a takeover: two workers with `[ledger] lease_secs = 10`, one SIGKILLed mid-run.
//!
//! Every run starts from a fresh emulator and a fresh ledger (a new PostgreSQL instance from the
//! test harness's cached template) over the same generated mailboxes, and every worker gets the
//! same `--concurrency` (mailboxes at once per worker), so a fleet of k workers has k times the
//! mailboxes in flight. Prints per run: wall time from the first worker's start to the last
//! one's end, aggregate messages/s, worker CPU seconds per 1,000 messages (all workers together,
//! and each worker over the messages it copied), each worker's peak RSS, the emulator's and the
//! PostgreSQL server's CPU per 1,000 messages, the transactions it counted per message (each
//! autocommit statement is one: about the ledger round trips), and the cores busy (all those CPU seconds over the
//! wall time: 2.0 is everything this 2-core machine has). Then the PostgreSQL/SQLite CPU ratio
//! against the goal (at most +10%), and the takeover delay against lease_secs + 5 s.
//!
//! Checks correctness only, never speed: every worker exits 0 (but the killed one), the workers'
//! summaries add up to every message copied once and nothing failed, and the emulator holds
//! exactly M items with M distinct Message-IDs in every mailbox.
//!
//! Run: `cargo bench --bench fleet` (needs GNU time and PostgreSQL: `scripts/bench` and
//! `scripts/install-deps` install them). `MAILFERRY_FLEET_MAILBOXES` (N, default 30),
//! `MAILFERRY_FLEET_MESSAGES` (M per mailbox, default 400), `MAILFERRY_FLEET_CONCURRENCY`
//! (mailboxes at once per worker, default 10), `MAILFERRY_FLEET_WORKERS` (the largest fleet,
//! default 3), `MAILFERRY_BENCH_SCALE` (time scale, default 600).

mod support;

use std::time::{Duration, Instant};

use support::postgres::{PASSWORD, Postgres};
use support::rehearsal::{Emulator, generate, totals, write_plan};
use support::{Measured, env_or};

/// The plan's minimum lease, for the takeover run.
const LEASE_SECS: u64 = 10;

/// What the runs share.
struct Setup {
    base: std::path::PathBuf,
    trees: std::path::PathBuf,
    n: usize,
    m: usize,
    at_once: usize,
    scale: f64,
}

/// One run's figures.
struct Outcome {
    name: String,
    workers: usize,
    wall: f64,
    /// Seconds from the start to the last mailbox's lease release (PostgreSQL runs): the wall
    /// time without the idle workers' last poll for leases still held elsewhere.
    to_last_release: Option<f64>,
    messages: u64,
    /// Per worker: its figures and the messages its summary says it copied.
    each: Vec<(Measured, u64)>,
    emulator_cpu: f64,
    postgres_cpu: Option<f64>,
    /// Transactions the server counted in the ledger database (each autocommit statement is
    /// one), the benchmark's own polling included.
    postgres_xacts: Option<u64>,
    takeover: Option<Takeover>,
}

struct Takeover {
    orphaned: usize,
    killed_after: f64,
    first_claim: f64,
    all_claimed: f64,
}

impl Outcome {
    fn worker_cpu(&self) -> f64 {
        self.each.iter().map(|(m, _)| m.cpu()).sum()
    }
    fn per_1000(&self, cpu: f64) -> f64 {
        cpu / (self.messages as f64 / 1000.0)
    }
}

/// The PostgreSQL server's CPU so far: the postmaster with the backends it reaped, plus the
/// processes still running (background writer, checkpointer, live backends).
fn postgres_cpu(pg: &Postgres) -> f64 {
    let pid: u32 = std::fs::read_to_string(pg.dir().join("data/postmaster.pid"))
        .ok()
        .and_then(|t| t.lines().next().and_then(|l| l.trim().parse().ok()))
        .unwrap_or(0);
    support::proc_cpu(pid, true)
        + support::proc_children(pid)
            .into_iter()
            .map(|c| support::proc_cpu(c, false))
            .sum::<f64>()
}

fn xacts(pg: &Postgres) -> u64 {
    pg.psql("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()")
        .trim()
        .parse()
        .unwrap_or(0)
}

/// The ledger's `done` rows; 0 before the first worker has created the schema.
fn done_rows(pg: &Postgres) -> u64 {
    pg.try_psql("SELECT count(*) FROM messages WHERE state = 'done'")
        .ok()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Polls `cond` every 100 ms; panics after `limit`.
fn until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One run: `workers` processes on SQLite (`pg` false: one process) or a fresh PostgreSQL; with
/// `kill`, worker 0 is SIGKILLed once it holds leases and a quarter of the messages are done.
fn run(s: &Setup, name: &str, workers: usize, pg: bool, kill: bool) -> Outcome {
    let dir = s.base.join(name.replace(' ', "-"));
    std::fs::create_dir_all(&dir).expect("run dir");
    let emu = Emulator::start(&dir, s.scale, "disk");
    let pg = pg.then(Postgres::start);
    let extra = if kill {
        format!("\n[ledger]\nlease_secs = {LEASE_SECS}\n")
    } else {
        String::new()
    };
    let plan = write_plan(&dir, &s.trees, s.n, &emu.addr, "import-mime", &extra);
    let plan_arg = plan.to_string_lossy().into_owned();
    let at_once = s.at_once.to_string();
    let scale = format!("{}", s.scale);
    let url = pg.as_ref().map(Postgres::url);
    let mut args = vec![
        "migrate",
        "--plan",
        &plan_arg,
        "--json",
        "--concurrency",
        &at_once,
    ];
    if let Some(u) = &url {
        args.extend(["--ledger", u.as_str()]);
    }
    let env = [
        ("MAILFERRY_REHEARSAL_TIME_SCALE", scale.as_str()),
        ("PGPASSWORD", PASSWORD),
        ("RUST_LOG", ""),
    ];

    let x0 = pg.as_ref().map(xacts).unwrap_or(0);
    let pg0 = pg.as_ref().map(postgres_cpu).unwrap_or(0.0);
    let e0 = emu.cpu();
    let start = Instant::now();
    let start_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let mut running: Vec<_> = (0..workers)
        .map(|_| support::spawn_measured(&support::mailferry_bin(), &args, &env))
        .collect();

    let mut takeover = None;
    if kill {
        let db = pg.as_ref().expect("the takeover runs on PostgreSQL");
        let total = (s.n * s.m) as u64;
        let mut victim = 0;
        until(
            Duration::from_secs(300),
            "the victim to hold leases mid-run",
            || {
                victim = running[0].program_pid().unwrap_or(0);
                victim != 0 && done_rows(db) >= total / 4 && !db.leases_held_by(victim).is_empty()
            },
        );
        let orphaned = db.leases_held_by(victim);
        let before: Vec<i64> = orphaned.iter().map(|k| db.lease_generation(k)).collect();
        let ok = std::process::Command::new("kill")
            .args(["-KILL", &victim.to_string()])
            .status()
            .is_ok_and(|st| st.success());
        assert!(ok, "kill -KILL {victim}");
        let killed = Instant::now();
        let killed_after = start.elapsed().as_secs_f64();
        let taken = |db: &Postgres| -> usize {
            orphaned
                .iter()
                .zip(&before)
                .filter(|(k, g)| db.lease_generation(k) > **g)
                .count()
        };
        until(Duration::from_secs(300), "the first takeover", || {
            taken(db) > 0
        });
        let first_claim = killed.elapsed().as_secs_f64();
        until(Duration::from_secs(300), "every takeover", || {
            taken(db) == orphaned.len()
        });
        takeover = Some(Takeover {
            orphaned: orphaned.len(),
            killed_after,
            first_claim,
            all_claimed: killed.elapsed().as_secs_f64(),
        });
    }

    // Wait for the last worker: the run's wall time is the fleet's, not one process's.
    while !running.iter_mut().all(|r| r.finished()) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let wall = start.elapsed().as_secs_f64();
    let measured: Vec<Measured> = running.into_iter().map(|r| r.wait()).collect();
    // Backends end when their worker disconnects; give the postmaster a moment to reap them.
    std::thread::sleep(Duration::from_millis(500));
    let emulator_cpu = emu.cpu() - e0;
    let postgres_cpu = pg.as_ref().map(|p| postgres_cpu(p) - pg0);
    let postgres_xacts = pg.as_ref().map(|p| xacts(p) - x0);
    // The server runs on this machine: its clock is ours.
    let to_last_release = pg.as_ref().and_then(|p| {
        p.psql("SELECT extract(epoch FROM max(finished_at)) FROM leases")
            .trim()
            .parse::<f64>()
            .ok()
            .map(|end| end - start_epoch)
    });

    // Correctness: exit codes, the summaries, and the destination itself.
    let mut each = Vec::new();
    let mut copied = 0;
    for (i, m) in measured.into_iter().enumerate() {
        if kill && i == 0 {
            each.push((m, 0));
            continue;
        }
        assert_eq!(m.exit, 0, "{name}: worker {i} failed:\n{}", m.stderr);
        let (c, failed, _, _) = totals(&m);
        assert_eq!(
            failed, 0,
            "{name}: worker {i} failed messages:\n{}",
            m.stdout
        );
        copied += c;
        each.push((m, c));
    }
    let total = (s.n * s.m) as u64;
    if !kill {
        assert_eq!(copied, total, "{name}: copied {copied} of {total}");
    }
    for mb in 0..s.n {
        let addr = format!("user{mb}@contoso.example");
        let (items, distinct) = emu.items_and_distinct_ids(&addr);
        assert_eq!(
            (items, distinct),
            (s.m, s.m),
            "{name}: {addr} holds {items} items with {distinct} distinct Message-IDs, not {}",
            s.m
        );
    }
    Outcome {
        name: name.to_owned(),
        workers,
        wall,
        to_last_release,
        messages: total,
        each,
        emulator_cpu,
        postgres_cpu,
        postgres_xacts,
        takeover,
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn list(v: impl Iterator<Item = String>) -> String {
    v.collect::<Vec<_>>().join(", ")
}

fn print_row(o: &Outcome) {
    let cpu = o.worker_cpu();
    let busy = cpu + o.emulator_cpu + o.postgres_cpu.unwrap_or(0.0);
    let copying = o.to_last_release.unwrap_or(o.wall);
    let per_worker = list(o.each.iter().map(|(m, c)| {
        if *c == 0 {
            format!("killed ({:.1} CPU s)", m.cpu())
        } else {
            format!("{:.2}", m.cpu() / (*c as f64 / 1000.0))
        }
    }));
    println!(
        "| {} | {} | {:.1} s | {:.1} s | {:.0} | {:.2} | {per_worker} | {} | {:.2} | {} | {} | {:.2} |",
        o.name,
        o.workers,
        o.wall,
        copying,
        o.messages as f64 / copying,
        o.per_1000(cpu),
        list(o.each.iter().map(|(m, _)| format!("{:.0}", m.peak_rss_mib))),
        o.per_1000(o.emulator_cpu),
        o.postgres_cpu
            .map(|c| format!("{:.2}", o.per_1000(c)))
            .unwrap_or_else(|| "-".into()),
        o.postgres_xacts
            .map(|x| format!("{:.2}", x as f64 / o.messages as f64))
            .unwrap_or_else(|| "-".into()),
        busy / copying,
    );
}

fn postgres_version() -> String {
    std::process::Command::new("sh")
        .args(["-c", "ls /usr/lib/postgresql | sort -n | tail -1"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n: usize = env_or("MAILFERRY_FLEET_MAILBOXES", 30);
    let m: usize = env_or("MAILFERRY_FLEET_MESSAGES", 400);
    let at_once: usize = env_or("MAILFERRY_FLEET_CONCURRENCY", 10);
    let most: usize = env_or("MAILFERRY_FLEET_WORKERS", 3usize).max(2);
    let scale: f64 = env_or("MAILFERRY_BENCH_SCALE", 600.0);
    let dir = tempfile::Builder::new()
        .prefix("mailferry-bench-fleet-")
        .tempdir()
        .expect("temp dir");
    let t0 = Instant::now();
    let trees = dir.path().join("trees");
    let bytes = generate(&trees, n, m);
    let gen_s = t0.elapsed().as_secs_f64();
    let load_before = loadavg();
    let s = Setup {
        base: dir.path().to_owned(),
        trees,
        n,
        m,
        at_once,
        scale,
    };

    let mut runs = vec![run(&s, "SQLite", 1, false, false)];
    for k in 1..=most {
        runs.push(run(&s, &format!("PostgreSQL {k}w"), k, true, false));
    }
    let takeover = run(&s, "PostgreSQL takeover", 2, true, true);
    let load_after = loadavg();

    println!();
    println!(
        "machine: {}, PostgreSQL {}; load average before {load_before}, after {load_after}",
        support::machine(),
        postgres_version()
    );
    println!(
        "{n} Maildir++ mailboxes x {m} messages = {} messages, {:.0} MB (generated in {gen_s:.0} s); import-mime, emulator bodies on disk, \
         time scale {scale}, latency 100-200 ms service time; --concurrency {at_once} per worker (k workers: {at_once}k mailboxes at once)",
        n * m,
        bytes as f64 / 1e6
    );
    println!();
    println!(
        "| run | workers | wall (last exit) | to the last mailbox's end | aggregate msg/s (over the latter) | worker CPU s / 1,000 msgs (all workers) | per worker (CPU s / 1,000 of its msgs) | peak RSS per worker (MiB) | emulator CPU s / 1,000 | PostgreSQL server CPU s / 1,000 | PostgreSQL transactions / msg | cores busy |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for o in runs.iter().chain([&takeover]) {
        print_row(o);
    }
    println!();
    let sqlite = &runs[0];
    let pg1 = &runs[1];
    let ratio = pg1.per_1000(pg1.worker_cpu()) / sqlite.per_1000(sqlite.worker_cpu());
    let with_server = pg1.per_1000(pg1.worker_cpu() + pg1.postgres_cpu.unwrap_or(0.0))
        / sqlite.per_1000(sqlite.worker_cpu());
    println!(
        "PostgreSQL vs SQLite, one worker: worker CPU per message x{ratio:.3} ({:+.1}%; goal at most +10%: {}); with the PostgreSQL server's CPU added x{with_server:.3} ({:+.1}%)",
        100.0 * (ratio - 1.0),
        if ratio <= 1.10 { "met" } else { "missed" },
        100.0 * (with_server - 1.0)
    );
    let rates = list(runs[1..].iter().map(|o| {
        let copying = o.to_last_release.unwrap_or(o.wall);
        format!("{} w: {:.0} msg/s", o.workers, o.messages as f64 / copying)
    }));
    println!("Aggregate throughput by workers (PostgreSQL): {rates}");
    if let Some(t) = &takeover.takeover {
        println!(
            "Takeover after SIGKILL (lease_secs {LEASE_SECS}): killed {:.1} s into the run holding {} mailboxes; first taken over after {:.1} s, all after {:.1} s (goal: within {} s: {}); every message exactly once: yes",
            t.killed_after,
            t.orphaned,
            t.first_claim,
            t.all_claimed,
            LEASE_SECS + 5,
            if t.first_claim <= (LEASE_SECS + 5) as f64 {
                "met"
            } else {
                "missed"
            }
        );
    }
    drop(dir);
}
