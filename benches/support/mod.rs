//! What the `migrate` and `imap_to_imap` benchmarks share: the generated mailbox (a realistic size
//! mix, loaded into a real Dovecot with the test harness's APPEND loader), plans written into a
//! temp dir, and running the release `mailferry` binary under `/usr/bin/time` so peak RSS and CPU
//! are the real process's, not the benchmark's. The `rehearsal` and `fleet` benchmarks' generated
//! Maildir++ mailboxes and emulator are in [`rehearsal`]; the fleet benchmark's private
//! PostgreSQL is the test harness's.
//!
//! Benchmarks print tables; they never assert speed. They do check correctness (every message
//! arrived, nothing failed), because a fast wrong run is not a result.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

#[path = "../../tests/support/corpus.rs"]
pub mod corpus;
#[path = "../../tests/support/dovecot.rs"]
pub mod dovecot;
#[path = "../../tests/support/postgres.rs"]
pub mod postgres;
pub mod rehearsal;

use chrono::{DateTime, FixedOffset};
use mailferry::model::Flags;

/// Messages in the generated mailbox: 5,000, or `MAILFERRY_BENCH_MESSAGES` (at least 200) for a
/// quick look while working on the benchmarks themselves.
pub fn messages() -> usize {
    std::env::var("MAILFERRY_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000usize)
        .max(200)
}
/// Messages sharing one Message-ID and body with an earlier message (imapsync skips these).
pub const DUPLICATES: usize = 20;
/// Messages without a Message-ID (imapsync skips those without Received headers too).
pub const WITHOUT_MESSAGE_ID: usize = 38;

/// Size of generated message `i`: mostly 5-50 KB, 10% 100 KB-2 MB (skewed small), 0.4% 5-10 MB.
/// 5,000 of them come to about 480 MB, the size of the mailbox imapsync was measured on.
pub fn size_of(i: usize) -> usize {
    let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 29;
    let r = x % 10_000;
    let u = ((x >> 20) % 1_000_000) as f64 / 1e6;
    if r < 40 {
        5_000_000 + (u * 5e6) as usize
    } else if r < 1_040 {
        100_000 + (u.powi(4) * 1.9e6) as usize
    } else {
        5_000 + (u * 45e3) as usize
    }
}

/// Folder `f` of 30 (decoded segments): INBOX and special-use folders get the most mail, the
/// rest is nested and non-ASCII like real mailboxes.
fn folder_name(f: usize) -> Vec<String> {
    match f {
        0 => vec!["INBOX".into()],
        1 => vec!["Sent".into()],
        2 => vec!["Archive".into()],
        3 => vec!["Trash".into()],
        4 => vec!["Drafts".into()],
        5 => vec!["Junk".into()],
        6 => vec!["Réunions".into()],
        7 => vec!["Clients".into(), "Acme & Söhne".into()],
        f if f % 3 == 0 => vec!["Projects".into(), format!("P{f}"), "Mail".into()],
        f if f % 3 == 1 => vec!["Archive".into(), format!("{}", 2000 + f)],
        f => vec![format!("Folder {f}")],
    }
}

/// Which folder message `i` goes to: a third in INBOX, a sixth in Sent, the rest spread out.
fn folder_of(i: usize) -> usize {
    match i % 6 {
        0 | 1 => 0,
        2 => 1,
        _ => 2 + (i / 6) % 28,
    }
}

/// The raw bytes of message `i`: generated, with its Message-ID removed for some and some
/// byte-identical duplicates of an earlier message in the same folder.
fn message(i: usize, count: usize) -> Vec<u8> {
    if i >= count - DUPLICATES {
        // A duplicate of a message six earlier: same folder (folder_of has period 6 x 28).
        return message(i - 6 * 28, count);
    }
    let raw = corpus::generated_message(i, size_of(i));
    if i % 131 == 7 && i / 131 < WITHOUT_MESSAGE_ID {
        let header = format!("Message-ID: <gen-{i}@mailferry.test>\r\n");
        if let Some(at) = find(&raw, header.as_bytes()) {
            let mut out = raw[..at].to_vec();
            out.extend_from_slice(&raw[at + header.len()..]);
            return out;
        }
    }
    raw
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// What was loaded into the source.
#[derive(Debug, Clone, Copy, Default)]
pub struct Loaded {
    pub messages: usize,
    pub bytes: u64,
    pub folders: usize,
    pub largest: u64,
}

/// Loads the generated mailbox (plus one message of `extra_big` bytes into INBOX, if given) as
/// `user`. Generated and APPENDed folder by folder in byte-bounded batches, so the benchmark
/// itself never holds more than a few MB besides the big message.
pub fn load_mailbox(d: &dovecot::Dovecot, user: &str, extra_big: Option<usize>) -> Loaded {
    let t = Instant::now();
    let count = messages();
    let mut per_folder: Vec<Vec<usize>> = vec![Vec::new(); 30];
    for i in 0..count {
        per_folder[folder_of(i)].push(i);
    }
    let mut out = Loaded {
        folders: per_folder.iter().filter(|v| !v.is_empty()).count(),
        ..Default::default()
    };
    for (f, ids) in per_folder.iter().enumerate() {
        let name = folder_name(f);
        let segs: Vec<&str> = name.iter().map(String::as_str).collect();
        let mut batch: Vec<(Vec<u8>, Flags, DateTime<FixedOffset>)> = Vec::new();
        let mut batch_bytes = 0;
        for (k, &i) in ids.iter().enumerate() {
            let raw = message(i, count);
            batch_bytes += raw.len();
            out.bytes += raw.len() as u64;
            out.largest = out.largest.max(raw.len() as u64);
            out.messages += 1;
            batch.push((raw, corpus::flags_for(i), corpus::date_for(i)));
            if batch_bytes > 8 << 20 || k + 1 == ids.len() {
                d.load(user, &segs, &batch);
                batch.clear();
                batch_bytes = 0;
            }
        }
    }
    if let Some(size) = extra_big {
        let raw = corpus::generated_message(count + 1, size);
        out.bytes += raw.len() as u64;
        out.largest = out.largest.max(raw.len() as u64);
        out.messages += 1;
        d.load(
            user,
            &["INBOX"],
            &[(raw, corpus::flags_for(1), corpus::date_for(count + 1))],
        );
    }
    eprintln!(
        "loaded {} messages, {:.0} MB, {} folders into Dovecot in {:.1} s",
        out.messages,
        out.bytes as f64 / 1e6,
        out.folders,
        t.elapsed().as_secs_f64()
    );
    out
}

/// Messages per folder as the server reports them (STATUS MESSAGES over LIST), summed.
pub fn count_messages(d: &dovecot::Dovecot, user: &str) -> usize {
    let lines = d.raw(user, "LIST \"\" \"*\"");
    let mut total = 0;
    for l in lines.iter().filter(|l| l.starts_with("* LIST")) {
        if l.contains("\\Noselect") || l.contains("\\NonExistent") {
            continue;
        }
        // `* LIST (attrs) "sep" name`: the name is the rest after the quoted separator.
        let Some(name) = l.split_once(") ").and_then(|(_, r)| {
            let r = r.trim_start();
            let after_sep = match r.strip_prefix("NIL") {
                Some(rest) => rest,
                None => r.get(3..)?,
            };
            Some(after_sep.trim().to_owned())
        }) else {
            continue;
        };
        let status = d.raw(user, &format!("STATUS {name} (MESSAGES)"));
        for s in status.iter().filter(|s| s.starts_with("* STATUS")) {
            let n = s
                .rsplit("MESSAGES ")
                .next()
                .and_then(|v| v.trim_end_matches(')').trim().parse::<usize>().ok())
                .unwrap_or(0);
            total += n;
        }
    }
    total
}

/// CPU seconds a Dovecot instance has spent so far: its master plus every finished child (the
/// `imap` processes that served the sessions are reaped by the master, so their time lands in
/// its children's counters once they log out).
pub fn dovecot_cpu(d: &dovecot::Dovecot) -> f64 {
    let pid = std::fs::read_to_string(d.dir().join("run/master.pid")).unwrap_or_default();
    pid.trim().parse().map(|p| proc_cpu(p, true)).unwrap_or(0.0)
}

/// Peak RSS, CPU and wall time of one process, from `/usr/bin/time`.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    pub wall: f64,
    pub user: f64,
    pub sys: f64,
    pub peak_rss_mib: f64,
    pub exit: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Measured {
    pub fn cpu(&self) -> f64 {
        self.user + self.sys
    }
}

/// Runs `program args` under `/usr/bin/time -f` (GNU time: install the `time` package) with
/// extra environment variables, and returns its figures.
pub fn run_measured(program: &Path, args: &[&str], env: &[(&str, &str)]) -> Measured {
    spawn_measured(program, args, env).wait()
}

/// A process started under GNU time, its output going to temp files (several run at once).
pub struct Running {
    child: std::process::Child,
    figures: tempfile::NamedTempFile,
    stdout: tempfile::NamedTempFile,
    stderr: tempfile::NamedTempFile,
}

/// Starts `program args` under `/usr/bin/time -f` without waiting for it.
pub fn spawn_measured(program: &Path, args: &[&str], env: &[(&str, &str)]) -> Running {
    let time = Path::new("/usr/bin/time");
    assert!(
        time.exists(),
        "GNU time is required: apt-get install -y time (scripts/bench does it)"
    );
    let figures = tempfile::NamedTempFile::new().expect("temp file");
    let stdout = tempfile::NamedTempFile::new().expect("temp file");
    let stderr = tempfile::NamedTempFile::new().expect("temp file");
    let mut cmd = Command::new(time);
    cmd.arg("-f")
        .arg("%e %U %S %M %x")
        .arg("-o")
        .arg(figures.path())
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(stdout.reopen().expect("stdout file"))
        .stderr(stderr.reopen().expect("stderr file"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("run /usr/bin/time");
    Running {
        child,
        figures,
        stdout,
        stderr,
    }
}

impl Running {
    /// The measured program's own process id (GNU time's only child), once it has started.
    pub fn program_pid(&self) -> Option<u32> {
        let pid = self.child.id();
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    /// Exited already?
    pub fn finished(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Waits for the end and reads the figures.
    pub fn wait(mut self) -> Measured {
        let _ = self.child.wait();
        let figures = std::fs::read_to_string(self.figures.path()).unwrap_or_default();
        // The last line holds the figures (a killed process adds a "Command terminated" line first).
        let f: Vec<f64> = figures
            .lines()
            .last()
            .unwrap_or("")
            .split_whitespace()
            .map(|v| v.parse().unwrap_or(0.0))
            .collect();
        let get = |i: usize| f.get(i).copied().unwrap_or(0.0);
        let read =
            |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
        Measured {
            wall: get(0),
            user: get(1),
            sys: get(2),
            peak_rss_mib: get(3) / 1024.0,
            exit: get(4) as i32,
            stdout: read(self.stdout.path()),
            stderr: read(self.stderr.path()),
        }
    }
}

/// CPU seconds process `pid` has used (user + system), with its reaped children's when
/// `children` (a server whose finished workers it waited for); 0 if it is gone.
pub fn proc_cpu(pid: u32, children: bool) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rfind(')').map(|i| &stat[i + 2..]).unwrap_or("");
    let f: Vec<&str> = after.split(' ').collect();
    // utime, stime, cutime, cstime are fields 14-17 of stat, 11-14 after the command.
    let last = if children { 14 } else { 12 };
    (11..=last)
        .filter_map(|i| f.get(i).and_then(|v| v.parse::<f64>().ok()))
        .sum::<f64>()
        / 100.0
}

/// Process `pid`'s live children (from `/proc/PID/task/*/children`).
pub fn proc_children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// Peak resident set (VmHWM) of a live process, MiB.
pub fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// The `run_finished` summary's single mailbox from `migrate --json` output.
pub fn mailbox_summary(m: &Measured) -> serde_json::Value {
    let last = m
        .stdout
        .lines()
        .rev()
        .find(|l| l.contains("\"run_finished\""))
        .unwrap_or_else(|| {
            panic!(
                "migrate printed no run summary (exit {}):\n{}\n{}",
                m.exit, m.stdout, m.stderr
            )
        });
    let v: serde_json::Value = serde_json::from_str(last).expect("summary JSON");
    v["summary"]["mailboxes"][0].clone()
}

/// A setting from the environment, or `default` when unset or unparsable.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A number out of a summary.
pub fn num(v: &serde_json::Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or(0)
}

/// Sum of a summary's `skipped` or `failures` map.
pub fn map_total(v: &serde_json::Value, key: &str) -> u64 {
    v[key]
        .as_object()
        .map(|o| o.values().filter_map(|x| x.as_u64()).sum())
        .unwrap_or(0)
}

/// Writes a file readable by its owner only (plans and CSVs with passwords).
pub fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .expect("write private file");
    f.write_all(text.as_bytes()).expect("write");
}

/// The `[source]` section for a harness Dovecot (implicit TLS, its own CA).
pub fn source_section(d: &dovecot::Dovecot) -> String {
    format!(
        "[source]\nkind = \"imap\"\nhost = \"localhost\"\nport = {}\nsecurity = \"tls\"\nca_file = \"{}\"\nauth = \"login\"\n",
        d.port_tls(),
        d.ca_pem_path().display()
    )
}

/// The release binary cargo built beside this benchmark.
pub fn mailferry_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mailferry"))
}

/// Machine line for the tables.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let dovecot = Command::new("dovecot")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    format!("{cores} cores ({cpu}), Dovecot {dovecot}")
}
