//! What the `rehearsal` and `fleet` benchmarks share: N generated Maildir++ mailboxes with a
//! realistic size mix (mostly 2-6 KB text, 13% 6-30 KB, 1.8% 30-150 KB, 0.2% 150 KB-1 MB; one in
//! ten carries an attachment) in four folders, the `mailferry emulator` process they are moved
//! into on a scaled clock, and the totals of a `migrate --json` summary.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::num;

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
pub fn generate(root: &Path, n: usize, m: usize) -> u64 {
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

/// `mailferry emulator` in its own process, 100-200 ms service latency on the scaled clock;
/// killed on drop.
pub struct Emulator {
    child: Child,
    pub addr: String,
}

impl Emulator {
    pub fn start(dir: &Path, scale: f64, bodies: &str) -> Emulator {
        let cfg = dir.join("emulator.toml");
        std::fs::write(
            &cfg,
            format!(
                "time_scale = {scale:.1}\nrequest_log_limit = 100\nbodies = \"{bodies}\"\n\n[latency]\nfixed_ms = 100\njitter_ms = 100\n"
            ),
        )
        .expect("emulator config");
        let mut child = Command::new(super::mailferry_bin())
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

    /// The emulator's request counters (`/_emulator/counters`).
    pub fn counters(&self) -> serde_json::Value {
        self.get_json("/_emulator/counters")
    }

    /// One mailbox as the emulator's inspector shows it (`/_emulator/mailboxes/ADDRESS`).
    pub fn mailbox(&self, address: &str) -> serde_json::Value {
        self.get_json(&format!("/_emulator/mailboxes/{address}"))
    }

    /// Items in the mailbox and how many distinct internetMessageIds they carry: equal, and
    /// equal to what the source holds, means every message arrived exactly once.
    pub fn items_and_distinct_ids(&self, address: &str) -> (usize, usize) {
        let mb = self.mailbox(address);
        let items = mb["items"].as_array().cloned().unwrap_or_default();
        let ids: std::collections::HashSet<String> = items
            .iter()
            .filter_map(|i| i["internet_message_id"].as_str().map(str::to_owned))
            .collect();
        (items.len(), ids.len())
    }

    /// GET over plain HTTP/1.0 (the body ends with the connection: no chunking to undo).
    fn get_json(&self, path: &str) -> serde_json::Value {
        let mut s = TcpStream::connect(&self.addr).expect("connect to emulator");
        write!(s, "GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n", self.addr).expect("request");
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).expect("response");
        let resp = String::from_utf8_lossy(&resp);
        let body = resp.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("{}");
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: not JSON ({e})"))
    }

    /// CPU seconds the emulator has used so far.
    pub fn cpu(&self) -> f64 {
        super::proc_cpu(self.child.id(), false)
    }

    /// Peak resident set (VmHWM), MiB.
    pub fn peak_rss_mib(&self) -> f64 {
        super::peak_rss_mib(self.child.id())
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a plan moving the `n` generated mailboxes under `trees` into the emulator at `addr`
/// by `route` (its client secret and mailbox CSV beside it), with `extra` appended (a
/// `[ledger]` section, say); returns the plan's path.
pub fn write_plan(
    dir: &Path,
    trees: &Path,
    n: usize,
    addr: &str,
    route: &str,
    extra: &str,
) -> PathBuf {
    super::write_private(&dir.join("secret"), "demo-secret\n");
    let mut csv = String::from("EmailAddress,UserName,Password,SourcePath\n");
    for mb in 0..n {
        csv.push_str(&format!(
            "user{mb}@contoso.example,user{mb},,{}\n",
            trees.join(format!("user{mb}")).display()
        ));
    }
    super::write_private(&dir.join("mailboxes.csv"), &csv);
    let plan = dir.join("plan.toml");
    super::write_private(
        &plan,
        &format!(
            "mailboxes = \"mailboxes.csv\"\n\n[source]\nkind = \"maildir\"\n\n[destination.exo]\nkind = \"graph\"\n\
             tenant = \"contoso.example\"\nclient_id = \"mailferry-demo\"\nclient_secret_file = \"secret\"\n\
             graph_url = \"http://{addr}\"\nlogin_url = \"http://{addr}\"\nroute = \"{route}\"\n{extra}"
        ),
    );
    plan
}

/// Totals of every mailbox in a `run_finished` summary: copied, failed, skipped, already present.
pub fn totals(m: &super::Measured) -> (u64, u64, u64, u64) {
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
        t.2 += super::map_total(&mb, "skipped");
        t.3 += num(&mb, "already_present");
    }
    t
}
