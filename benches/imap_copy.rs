//! IMAP-to-IMAP copy benchmark (issue 6): 5,000 generated messages (about 480 MB, 30 folders)
//! from a Dovecot with the `/` layout into a Maildir++ Dovecot, through `ImapSource` and
//! `ImapSink` with several connections, then the metadata diff a re-run does (source metadata vs
//! destination listing; the ledger is not involved). Prints wall time, messages/s, MB/s, CPU
//! seconds and peak RSS; asserts only correctness (every message arrived once).
//!
//! Run: `cargo bench --bench imap_copy` (needs Dovecot). `MAILFERRY_BENCH_CONNECTIONS` sets the
//! number of parallel folder copies (default 4).

use std::sync::Arc;
use std::time::{Duration, Instant};

use mailferry::model::SourceFolder;
use mailferry::secret::Secret;
use mailferry::sink::imap::{AppendItem, ImapSink};
use mailferry::source::imap::{ImapAuth, ImapEndpoint, ImapSource, Security};

mod support;

use support::dovecot;

/// Bytes of bodies held per folder task at once.
const BATCH_BYTES: u64 = 4 << 20;

fn endpoint(d: &dovecot::Dovecot) -> ImapEndpoint {
    ImapEndpoint {
        host: "localhost".into(),
        port: d.port_tls(),
        security: Security::Tls,
        ca_file: Some(d.ca_pem_path()),
        insecure: false,
        timeout: Duration::from_secs(120),
    }
}

fn auth() -> ImapAuth {
    ImapAuth::Login {
        user: "bench".into(),
        password: Secret::from("pw"),
    }
}

/// (user+system CPU seconds, peak RSS MiB) of this process so far.
fn cpu_and_peak() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rfind(')').map(|i| &stat[i + 2..]).unwrap_or("");
    let f: Vec<&str> = after.split(' ').collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .unwrap_or(0.0);
    (cpu, hwm / 1024.0)
}

async fn copy_folder(src_ep: ImapEndpoint, sink: Arc<ImapSink>, f: SourceFolder) -> usize {
    let mut src = ImapSource::connect(src_ep, auth()).await.expect("source");
    let metas = src.fetch_meta(&f, None).await.expect("meta");
    let dest = sink
        .ensure_folder(&f.path, f.special_use)
        .await
        .expect("folder");
    let mut done = 0;
    let mut start = 0;
    while start < metas.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < metas.len() && (end == start || bytes + metas[end].size <= BATCH_BYTES) {
            bytes += metas[end].size;
            end += 1;
        }
        let chunk = &metas[start..end];
        let uids: Vec<_> = chunk.iter().map(|m| m.uid).collect();
        let bodies = src.fetch_bodies(&f, &uids).await.expect("bodies");
        let items: Vec<AppendItem> = bodies
            .iter()
            .zip(chunk)
            .map(|((_, raw), m)| AppendItem {
                body: raw,
                flags: &m.flags,
                internal_date: m.internal_date,
            })
            .collect();
        for r in sink.append_batch(&dest, &items).await {
            r.expect("append");
            done += 1;
        }
        start = end;
    }
    src.logout().await;
    done
}

fn main() {
    let connections: usize = std::env::var("MAILFERRY_BENCH_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let a = dovecot::Dovecot::start(dovecot::Layout::Fs);
    let b = dovecot::Dovecot::start(dovecot::Layout::MaildirPlusPlus);
    a.add_user("bench", "pw");
    b.add_user("bench", "pw");
    // The same generated mailbox as the migrate and IMAP benchmarks (benches/support).
    let loaded = support::load_mailbox(&a, "bench", None);
    let (count, total_bytes) = (loaded.messages, loaded.bytes);
    println!(
        "source: {count} messages, {:.0} MB, {} folders; {connections} parallel folder copies",
        total_bytes as f64 / 1e6,
        loaded.folders
    );

    // Forget the loading phase's peak (Linux >= 4.0: writing 5 resets VmHWM).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let (cpu0, peak0) = cpu_and_peak();
    println!("before the copy: peak RSS {peak0:.0} MiB (after resetting the loader's peak)");
    let t = Instant::now();
    let copied = rt.block_on(async {
        let sink = Arc::new(
            ImapSink::connect(endpoint(&b), auth(), connections)
                .await
                .expect("sink"),
        );
        let mut src = ImapSource::connect(endpoint(&a), auth())
            .await
            .expect("source");
        let folders: Vec<SourceFolder> = src
            .list_folders()
            .await
            .expect("list")
            .into_iter()
            .filter(|f| f.selectable)
            .collect();
        src.logout().await;
        let queue = Arc::new(tokio::sync::Mutex::new(folders));
        let mut tasks = Vec::new();
        for _ in 0..connections {
            let (queue, sink, ep) = (queue.clone(), sink.clone(), endpoint(&a));
            tasks.push(tokio::spawn(async move {
                let mut n = 0;
                loop {
                    let next = queue.lock().await.pop();
                    let Some(f) = next else { break };
                    n += copy_folder(ep.clone(), sink.clone(), f).await;
                }
                n
            }));
        }
        let mut n = 0;
        for t in tasks {
            n += t.await.expect("task");
        }
        n
    });
    let wall = t.elapsed().as_secs_f64();
    let (cpu1, peak) = cpu_and_peak();
    assert_eq!(copied, count);

    // Re-run check: what an incremental pass reads before deciding nothing is to do.
    let t = Instant::now();
    let (src_total, dst_total) = rt.block_on(async {
        let sink = ImapSink::connect(endpoint(&b), auth(), 1)
            .await
            .expect("sink");
        let mut src = ImapSource::connect(endpoint(&a), auth())
            .await
            .expect("source");
        let (mut s, mut d) = (0, 0);
        for f in src
            .list_folders()
            .await
            .expect("list")
            .into_iter()
            .filter(|f| f.selectable)
        {
            s += src.fetch_meta(&f, None).await.expect("meta").len();
            let dest = sink
                .ensure_folder(&f.path, f.special_use)
                .await
                .expect("folder");
            d += sink.list_items(&dest).await.expect("list").len();
        }
        (s, d)
    });
    let rerun = t.elapsed().as_secs_f64();
    let (cpu2, peak2) = cpu_and_peak();
    assert_eq!(
        (src_total, dst_total),
        (count, count),
        "every message exactly once"
    );

    println!();
    println!("| run | wall | messages/s | MB/s | CPU s (mailferry) | peak RSS |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| first copy, {connections} connections, MULTIAPPEND, TLS | {wall:.1} s | {:.0} | {:.1} | {:.1} | {peak:.0} MiB |",
        count as f64 / wall,
        total_bytes as f64 / 1e6 / wall,
        cpu1 - cpu0
    );
    println!(
        "| re-run diff (source metadata + destination listing) | {rerun:.2} s | {:.0} | | {:.1} | {peak2:.0} MiB |",
        count as f64 / rerun,
        cpu2 - cpu1
    );
}
