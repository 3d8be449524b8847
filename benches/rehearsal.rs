//! A fleet-sized rehearsal (issue 16): N generated Maildir++ mailboxes of M messages each, moved
//! by the release binary into `mailferry emulator` (its own process, bodies on disk by default)
//! on a scaled clock, then migrated again (a no-op) and verified.
//!
//! The mailboxes have a realistic size mix (mostly 2-6 KB text, 13% 6-30 KB, 1.8% 30-150 KB, 0.2%
//! 150 KB-1 MB; one in ten carries an attachment) in four folders (INBOX, Sent, Archive,
//! Projects.2024). Prints: messages/s, CPU seconds per 1,000 messages for mailferry and for the
//! emulator, both processes' peak RSS, the re-run and verify times, and the Graph requests per
//! message by kind. Checks only correctness (every message copied once, nothing failed, verify
//! clean).
//!
//! Run: `cargo bench --bench rehearsal` (needs GNU time: `scripts/bench` installs it).
//! `MAILFERRY_REHEARSAL_MAILBOXES` (N, default 100), `MAILFERRY_REHEARSAL_MESSAGES` (M, default
//! 1,000), `MAILFERRY_BENCH_SCALE` (time scale, default 600), `MAILFERRY_REHEARSAL_ROUTE`
//! (`import-mime` or `json`, default import-mime), `MAILFERRY_REHEARSAL_BODIES` (`disk`, `digest`
//! or `memory`, default disk), `MAILFERRY_REHEARSAL_AT_ONCE` (mailboxes at once, default 50).

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use support::num;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A cheap deterministic generator.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 11
    }
    fn unit(&mut self) -> f64 {
        (self.next() % 1_000_000) as f64 / 1e6
    }
}

/// Size of a message: mostly small text, a long tail.
fn size_of(r: &mut Rng) -> usize {
    let p = r.unit();
    let u = r.unit();
    if p < 0.85 {
        2_000 + (u * 4_000.0) as usize
    } else if p < 0.98 {
        6_000 + (u * 24_000.0) as usize
    } else if p < 0.998 {
        30_000 + (u * 120_000.0) as usize
    } else {
        150_000 + (u * 850_000.0) as usize
    }
}

const WORDS: &[&str] = &[
    "the", "meeting", "budget", "report", "please", "review", "attached", "thanks", "for",
    "update", "project", "schedule", "customer", "invoice", "next", "week", "regards", "team",
];

/// One message of about `size` bytes; with an attachment when `attach`.
fn message(mb: usize, i: usize, size: usize, attach: bool, r: &mut Rng) -> Vec<u8> {
    let date = chrono::DateTime::from_timestamp(1_500_000_000 + (i as i64) * 3_607, 0)
        .unwrap_or_default()
        .to_rfc2822();
    let mut m = format!(
        "Received: from mx.example.org by mail.example.net; {date}\r\nFrom: Sender {i} <s{i}@example.org>\r\n\
         To: user{mb} <user{mb}@contoso.example>\r\nSubject: Message {i} of mailbox {mb}\r\nDate: {date}\r\n\
         Message-ID: <r{mb}-{i}@rehearsal.test>\r\nMIME-Version: 1.0\r\n"
    );
    let (text_len, att_len) = if attach {
        (size / 5, size - size / 5)
    } else {
        (size, 0)
    };
    let mut text = String::new();
    while text.len() < text_len {
        for _ in 0..12 {
            text.push_str(WORDS[(r.next() % WORDS.len() as u64) as usize]);
            text.push(' ');
        }
        text.push_str("\r\n");
    }
    if !attach {
        m.push_str("Content-Type: text/plain; charset=utf-8\r\n\r\n");
        m.push_str(&text);
        return m.into_bytes();
    }
    let b = format!("=_b{mb}_{i}");
    m.push_str(&format!(
        "Content-Type: multipart/mixed; boundary=\"{b}\"\r\n\r\n--{b}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n--{b}\r\n\
         Content-Type: application/pdf; name=\"doc{i}.pdf\"\r\nContent-Disposition: attachment; filename=\"doc{i}.pdf\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n"
    ));
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut line = Vec::with_capacity(78);
    let mut written = 0;
    let mut out = m.into_bytes();
    while written < att_len * 4 / 3 {
        line.clear();
        for _ in 0..76 {
            line.push(alphabet[(r.next() % 64) as usize]);
        }
        line.extend_from_slice(b"\r\n");
        out.extend_from_slice(&line);
        written += 78;
    }
    out.extend_from_slice(format!("--{b}--\r\n").as_bytes());
    out
}

/// Writes N Maildir++ trees of M messages; returns total bytes.
fn generate(root: &Path, n: usize, m: usize) -> u64 {
    let mut total = 0u64;
    let mut r = Rng(42);
    let folders = ["", ".Sent", ".Archive", ".Projects.2024"];
    for mb in 0..n {
        let tree = root.join(format!("user{mb}"));
        for f in folders {
            for sub in ["cur", "new", "tmp"] {
                std::fs::create_dir_all(tree.join(f).join(sub)).expect("maildir");
            }
        }
        for i in 0..m {
            // Half in INBOX, the rest spread over the others.
            let f = if i % 2 == 0 { 0 } else { 1 + (i / 2) % 3 };
            let size = size_of(&mut r);
            let raw = message(mb, i, size, i % 10 == 3, &mut r);
            total += raw.len() as u64;
            let flags = if i % 3 == 0 { "" } else { "S" };
            let name = format!("{}.M{i}P{mb}.rehearsal:2,{flags}", 1_500_000_000 + i);
            std::fs::write(tree.join(folders[f]).join("cur").join(name), raw).expect("write");
        }
    }
    total
}

struct Emulator {
    child: Child,
    addr: String,
}

impl Emulator {
    fn start(dir: &Path, scale: f64, bodies: &str) -> Emulator {
        let cfg = dir.join("emulator.toml");
        std::fs::write(
            &cfg,
            format!(
                "time_scale = {scale:.1}\nrequest_log_limit = 100\nbodies = \"{bodies}\"\n\n[latency]\nfixed_ms = 100\njitter_ms = 100\n"
            ),
        )
        .expect("emulator config");
        let mut child = Command::new(support::mailferry_bin())
            .args(["emulator", "--listen", "127.0.0.1:0", "--config"])
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the emulator");
        let stdout = child.stdout.take().expect("emulator stdout");
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line).expect("emulator banner");
        let addr = line
            .split("http://")
            .nth(1)
            .map(|a| a.trim().to_owned())
            .unwrap_or_else(|| panic!("unexpected emulator banner {line:?}"));
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = reader.read_to_end(&mut sink);
        });
        Emulator { child, addr }
    }

    fn counters(&self) -> serde_json::Value {
        let mut s = TcpStream::connect(&self.addr).expect("connect to emulator");
        write!(
            s,
            "GET /_emulator/counters HTTP/1.0\r\nHost: {}\r\n\r\n",
            self.addr
        )
        .expect("request");
        let mut resp = String::new();
        s.read_to_string(&mut resp).expect("response");
        let body = resp.split("\r\n\r\n").nth(1).unwrap_or("{}");
        serde_json::from_str(body).expect("counters JSON")
    }

    fn cpu(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        let after = stat.rfind(')').map(|i| &stat[i + 2..]).unwrap_or("");
        let f: Vec<&str> = after.split(' ').collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        (ticks(11) + ticks(12)) / 100.0
    }

    /// Peak resident set (VmHWM), MiB.
    fn peak_rss_mib(&self) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Totals of every mailbox in a `run_finished` summary.
fn totals(m: &support::Measured) -> (u64, u64, u64, u64) {
    let last = m
        .stdout
        .lines()
        .rev()
        .find(|l| l.contains("\"run_finished\""))
        .unwrap_or_else(|| panic!("no run summary (exit {}):\n{}", m.exit, m.stderr));
    let v: serde_json::Value = serde_json::from_str(last).expect("summary JSON");
    let mut t = (0, 0, 0, 0);
    for mb in v["summary"]["mailboxes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        t.0 += num(&mb, "copied");
        t.1 += num(&mb, "failed");
        t.2 += support::map_total(&mb, "skipped");
        t.3 += num(&mb, "already_present");
    }
    t
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n: usize = env_or("MAILFERRY_REHEARSAL_MAILBOXES", 100);
    let m: usize = env_or("MAILFERRY_REHEARSAL_MESSAGES", 1_000);
    let scale: f64 = env_or("MAILFERRY_BENCH_SCALE", 600.0);
    let route: String = env_or("MAILFERRY_REHEARSAL_ROUTE", "import-mime".to_owned());
    let bodies: String = env_or("MAILFERRY_REHEARSAL_BODIES", "disk".to_owned());
    let at_once: usize = env_or("MAILFERRY_REHEARSAL_AT_ONCE", 50);

    let dir = tempfile::Builder::new()
        .prefix("mailferry-bench-rehearsal-")
        .tempdir()
        .expect("temp dir");
    let t0 = Instant::now();
    let bytes = generate(&dir.path().join("trees"), n, m);
    let gen_s = t0.elapsed().as_secs_f64();
    let emu = Emulator::start(dir.path(), scale, &bodies);
    support::write_private(&dir.path().join("secret"), "demo-secret\n");
    let mut csv = String::from("EmailAddress,UserName,Password,SourcePath\n");
    for mb in 0..n {
        csv.push_str(&format!(
            "user{mb}@contoso.example,user{mb},,trees/user{mb}\n"
        ));
    }
    support::write_private(&dir.path().join("mailboxes.csv"), &csv);
    let plan = dir.path().join("plan.toml");
    support::write_private(
        &plan,
        &format!(
            "mailboxes = \"mailboxes.csv\"\n\n[source]\nkind = \"maildir\"\n\n[destination.exo]\nkind = \"graph\"\n\
             tenant = \"contoso.example\"\nclient_id = \"mailferry-demo\"\nclient_secret_file = \"secret\"\n\
             graph_url = \"http://{a}\"\nlogin_url = \"http://{a}\"\nroute = \"{route}\"\n",
            a = emu.addr
        ),
    );
    let plan_arg = plan.to_string_lossy().into_owned();
    let scale_arg = format!("{scale}");
    let at_once_arg = at_once.to_string();
    let env = [("MAILFERRY_REHEARSAL_TIME_SCALE", scale_arg.as_str())];
    let migrate = [
        "migrate",
        "--plan",
        plan_arg.as_str(),
        "--json",
        "--concurrency",
        at_once_arg.as_str(),
    ];
    let verify = [
        "verify",
        "--plan",
        plan_arg.as_str(),
        "--json",
        "--concurrency",
        at_once_arg.as_str(),
    ];

    let c0 = emu.cpu();
    let first = support::run_measured(&support::mailferry_bin(), &migrate, &env);
    let c1 = emu.cpu();
    let counters = emu.counters();
    let rerun = support::run_measured(&support::mailferry_bin(), &migrate, &env);
    let c2 = emu.cpu();
    let check = support::run_measured(&support::mailferry_bin(), &verify, &env);
    let c3 = emu.cpu();
    let emu_rss = emu.peak_rss_mib();

    let (copied, failed, skipped, _) = totals(&first);
    let (copied2, failed2, _, present2) = totals(&rerun);
    assert_eq!(first.exit, 0, "first run failed:\n{}", first.stderr);
    assert_eq!(
        copied as usize,
        n * m,
        "copied {copied} of {} (failed {failed}, skipped {skipped})",
        n * m
    );
    assert_eq!(rerun.exit, 0, "re-run failed:\n{}", rerun.stderr);
    assert_eq!(
        (copied2, failed2),
        (0, 0),
        "the re-run copied or failed something"
    );
    assert_eq!(
        check.exit, 0,
        "verify found a difference:\n{}",
        check.stdout
    );

    let total = copied as f64;
    let requests = num(&counters, "requests") as f64;
    let throttled = num(&counters, "throttled");
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    for mb in counters["mailboxes"]
        .as_object()
        .cloned()
        .unwrap_or_default()
        .values()
    {
        for (k, v) in mb["by_kind"].as_object().cloned().unwrap_or_default() {
            *kinds.entry(k).or_default() += v.as_u64().unwrap_or(0);
        }
    }

    println!();
    println!(
        "machine: {}; {n} Maildir++ mailboxes x {m} messages = {} messages, {:.0} MB (generated in {gen_s:.0} s); route {route}, bodies {bodies}, {at_once} mailboxes at once, time scale {scale}, latency 100-200 ms service time",
        support::machine(),
        n * m,
        bytes as f64 / 1e6
    );
    println!();
    println!(
        "| run | wall (real) | messages/s | mailferry CPU s / 1,000 msgs | emulator CPU s / 1,000 msgs | mailferry peak RSS | emulator peak RSS (so far) |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| first run: {copied} copied, {skipped} skipped, {failed} failed | {:.1} s | {:.0} | {:.2} | {:.2} | {:.0} MiB | |",
        first.wall,
        total / first.wall,
        first.cpu() / (total / 1000.0),
        (c1 - c0) / (total / 1000.0),
        first.peak_rss_mib
    );
    println!(
        "| no-op re-run: {copied2} copied, {present2} already present | {:.1} s ({:.1}% of the first) | | {:.2} | {:.2} | {:.0} MiB | |",
        rerun.wall,
        100.0 * rerun.wall / first.wall,
        rerun.cpu() / (total / 1000.0),
        (c2 - c1) / (total / 1000.0),
        rerun.peak_rss_mib
    );
    println!(
        "| verify | {:.1} s | | {:.2} | {:.2} | {:.0} MiB | {emu_rss:.0} MiB |",
        check.wall,
        check.cpu() / (total / 1000.0),
        (c3 - c2) / (total / 1000.0),
        check.peak_rss_mib
    );
    println!();
    let per = |k: &str| kinds.get(k).copied().unwrap_or(0) as f64 / total;
    println!(
        "Graph requests of the first run: {requests:.0} ({:.3} per message), {throttled} answered 429. Per message by kind:",
        requests / total
    );
    println!();
    println!("| kind | requests | per message |");
    println!("|---|---|---|");
    for (k, v) in &kinds {
        println!("| {k} | {v} | {:.3} |", per(k));
    }
    println!();
    println!(
        "Goals: emulator peak RSS at most 1 GiB: {emu_rss:.0} MiB ({}); no-op re-run under 5% of the first run: {:.1}% ({})",
        if emu_rss <= 1024.0 { "met" } else { "missed" },
        100.0 * rerun.wall / first.wall,
        if rerun.wall < 0.05 * first.wall {
            "met"
        } else {
            "missed"
        }
    );
}
