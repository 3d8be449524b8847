//! Graph sink throughput against the in-process emulator with its default (Microsoft's) limits
//! on a scaled clock with realistic latency, for 1, 4 and 16 mailboxes.
//!
//! Each mailbox writes 24 KB messages through importMime (+ the stamp/flags PATCH). After a
//! warm-up that spends the burst allowance, the steady paced rate is measured; 429s are counted
//! over the whole run.
//! Rates are in service time (real time x scale). The ceiling is what the documented limits
//! allow in steady state: min(10,000 requests / 10 min at the measured requests per message,
//! 150 MiB / 5 min at the measured uploaded bytes per message).
//!
//! Run: `cargo bench --bench graph_sink` (`-- --quick` for shorter runs, `-- --mailboxes N` for
//! one row). About 8 minutes in full on 2 cores.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::DateTime;
use futures::StreamExt;
use mailferry::body::Body;
use mailferry::emulator::{EmulatorConfig, Latency};
use mailferry::engine::ports::OutgoingMessage;
use mailferry::model::{ContentHash, Flags, SourceIdentity, Uid, UidValidity};
use mailferry::sink::graph::{GovernorSettings, GraphApp, GraphCredential, GraphSettings, Route};

const MSG_BYTES: usize = 24 * 1024;

fn message(mailbox: usize, n: usize) -> Vec<u8> {
    let mut m = format!(
        "From: Sender <s{mailbox}@example.org>\r\nTo: user{mailbox}@contoso.example\r\nSubject: bench {mailbox}/{n}\r\n\
Date: Mon, 1 Mar 2021 10:00:00 +0000\r\nMessage-ID: <b{mailbox}.{n}@example.org>\r\nMIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=us-ascii\r\n\r\n"
    )
    .into_bytes();
    let line = b"The quick brown fox jumps over the lazy dog, again and again and again.\r\n";
    while m.len() + line.len() <= MSG_BYTES {
        m.extend_from_slice(line);
    }
    m
}

struct Row {
    mailboxes: usize,
    messages: usize,
    msgs_per_s: f64,
    ceiling_msgs: f64,
    mb_per_s: f64,
    ceiling_mb: f64,
    throttled_per_1000: f64,
    requests_per_msg: f64,
}

/// Runs `mailboxes` writers for `warmup + measure` request windows; measures the last `measure`.
async fn run(mailboxes: usize, scale: f64, warmup: f64, measure: f64) -> Row {
    let mut cfg = EmulatorConfig {
        time_scale: scale,
        ..EmulatorConfig::default()
    };
    // Graph answers small mail requests in roughly 100-200 ms.
    cfg.latency = Latency {
        fixed_ms: 100,
        jitter_ms: 100,
    };
    cfg.request_log_limit = 10;
    let emu = mailferry::emulator::start(cfg).await.expect("emulator");
    let mut s = GraphSettings::new(
        "contoso.example",
        "mailferry-demo",
        GraphCredential::Secret("demo-secret".into()),
    );
    s.graph_url = Some(emu.base_url());
    s.login_url = Some(emu.base_url());
    s.route = Route::ImportMime;
    s.governor = GovernorSettings::default().scaled(scale);
    let app = GraphApp::new(s).expect("app");
    let window = app.settings().governor.request_window;
    let start = Instant::now();
    // Set once every mailbox has spent its burst allowance (its request bucket is empty): from
    // then on the client runs at its steady paced rate, which is what is measured.
    let phase: Arc<Mutex<Option<(Instant, Instant)>>> = Arc::default();
    let monitor = {
        let app = app.clone();
        let phase = Arc::clone(&phase);
        tokio::spawn(async move {
            let earliest = start + window.mul_f64(warmup);
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                let snap = app.governor_snapshot();
                let drained = snap.len() > mailboxes
                    && snap[1..]
                        .iter()
                        .all(|m| m.request_tokens.is_some_and(|t| t < 2.0));
                if drained && Instant::now() >= earliest {
                    let from = Instant::now();
                    *phase.lock().expect("lock") = Some((from, from + window.mul_f64(measure)));
                    return;
                }
            }
        })
    };
    let deadline_of = {
        let phase = Arc::clone(&phase);
        move || phase.lock().expect("lock").map(|p| p.1)
    };
    let done: Arc<Mutex<Vec<(Instant, usize)>>> = Arc::default();
    let flags = Flags::from_atoms(["\\Seen"]);
    let internal = DateTime::parse_from_rfc3339("2021-03-01T10:00:00Z").expect("date");
    let tasks: Vec<_> = (0..mailboxes)
        .map(|mbi| {
            let app = app.clone();
            let done = Arc::clone(&done);
            let flags = flags.clone();
            let deadline_of = deadline_of.clone();
            tokio::spawn(async move {
                let user = format!("user{mbi}@contoso.example");
                let mb = app.mailbox(&user);
                let inbox = mb.ensure_folder(Some("inbox"), &[]).await.expect("inbox");
                futures::stream::iter(1..)
                    .take_while(|_| {
                        futures::future::ready(deadline_of().is_none_or(|d| Instant::now() < d))
                    })
                    .map(|n| {
                        let mb = mb.clone();
                        let inbox = inbox.clone();
                        let user = user.clone();
                        let flags = flags.clone();
                        let done = Arc::clone(&done);
                        async move {
                            let raw = message(mbi, n);
                            let id = SourceIdentity {
                                mailbox: user,
                                folder: "INBOX".into(),
                                uid_validity: UidValidity::new(1).expect("nonzero"),
                                uid: Uid::new(n as u32).expect("nonzero"),
                                sha256: ContentHash::of(&raw),
                            };
                            let mid = format!("<b{mbi}.{n}@example.org>");
                            let body = Body::Memory(raw);
                            let msg = OutgoingMessage {
                                body: &body,
                                flags: &flags,
                                internal_date: internal,
                                identity: &id,
                                message_id: Some(&mid),
                            };
                            match mb.write(&inbox, &msg).await {
                                Ok(_) => done
                                    .lock()
                                    .expect("lock")
                                    .push((Instant::now(), body.len() as usize)),
                                Err(e) => eprintln!("write failed: {e}"),
                            }
                        }
                    })
                    .buffer_unordered(8)
                    .for_each(|_| async {})
                    .await;
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    monitor.await.expect("monitor");
    let (measure_from, deadline) = phase.lock().expect("lock").expect("measured phase");
    let end = Instant::now();
    let c = emu.inspect().counters();
    let done = done.lock().expect("lock");
    let total_msgs = done.len();
    let measured: Vec<_> = done
        .iter()
        .filter(|(t, _)| *t >= measure_from && *t <= deadline)
        .collect();
    let span = (deadline.min(end) - measure_from).as_secs_f64() * scale;
    let msgs_per_s = measured.len() as f64 / span;
    let bytes: usize = measured.iter().map(|(_, b)| b).sum();
    let mb_per_s = bytes as f64 / span / (1024.0 * 1024.0);
    let requests_per_msg = c.requests as f64 / total_msgs.max(1) as f64;
    let uploaded_per_msg = c.mailboxes.values().map(|m| m.bytes_uploaded).sum::<u64>() as f64
        / total_msgs.max(1) as f64;
    let g = GovernorSettings::default();
    let per_mailbox_req =
        g.requests_per_window as f64 / g.request_window.as_secs_f64() / requests_per_msg;
    let per_mailbox_bytes =
        g.bytes_per_window as f64 / g.byte_window.as_secs_f64() / uploaded_per_msg;
    let ceiling_msgs = per_mailbox_req.min(per_mailbox_bytes) * mailboxes as f64;
    let avg = MSG_BYTES as f64 / (1024.0 * 1024.0);
    Row {
        mailboxes,
        messages: total_msgs,
        msgs_per_s,
        ceiling_msgs,
        mb_per_s,
        ceiling_mb: ceiling_msgs * avg,
        throttled_per_1000: c.throttled as f64 * 1000.0 / c.requests.max(1) as f64,
        requests_per_msg,
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // (mailboxes, clock scale): the real request rate (16.7 x scale per mailbox) must stay within
    // what client and emulator sustain together on one 2-core machine (a few hundred per second).
    let plan: &[(usize, f64)] = if quick {
        &[(1, 20.0), (4, 5.0)]
    } else {
        &[(1, 6.0), (4, 6.0), (16, 1.5)]
    };
    // `--mailboxes N` runs one row only.
    let args: Vec<String> = std::env::args().collect();
    let only: Option<usize> = args
        .iter()
        .position(|a| a == "--mailboxes")
        .and_then(|i| args.get(i + 1)?.parse().ok());
    let plan: Vec<(usize, f64)> = plan
        .iter()
        .copied()
        .filter(|(n, _)| only.is_none_or(|o| o == *n))
        .collect();
    // Warm up 10% of a window (the burst allowance is spent), then measure 30% of a window of
    // steady pacing: the pacing rate is constant, so the rate measured is the sustained rate.
    let (warmup, measure) = (0.1, 0.3);
    println!(
        "Graph sink, importMime + PATCH, {} KB messages, emulator default limits, latency 100-200 ms (service)",
        MSG_BYTES / 1024
    );
    println!(
        "{:>9} {:>8} {:>10} {:>10} {:>6} {:>8} {:>9} {:>6} {:>10} {:>8} {:>6}",
        "mailboxes",
        "messages",
        "msgs/s",
        "ceiling",
        "%",
        "MB/s",
        "ceiling",
        "%",
        "429/1000",
        "req/msg",
        "scale"
    );
    for &(n, scale) in &plan {
        let t0 = Instant::now();
        let r = rt.block_on(run(n, scale, warmup, measure));
        println!(
            "{:>9} {:>8} {:>10.2} {:>10.2} {:>5.1}% {:>8.3} {:>9.3} {:>5.1}% {:>10.2} {:>8.2} {:>6} ({:.0}s)",
            r.mailboxes,
            r.messages,
            r.msgs_per_s,
            r.ceiling_msgs,
            100.0 * r.msgs_per_s / r.ceiling_msgs,
            r.mb_per_s,
            r.ceiling_mb,
            100.0 * r.mb_per_s / r.ceiling_mb,
            r.throttled_per_1000,
            r.requests_per_msg,
            scale,
            t0.elapsed().as_secs_f64()
        );
    }
}
