//! Faults at the source: Dovecot killed and restarted while bodies are being fetched, and a source
//! connection that hangs (a small TCP relay in the test that stops forwarding a chosen user's
//! connection mid-fetch, and every later connection of that user, while it is armed).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use mailferry::emulator::{EmulatorConfig, Latency};

use super::{assert_verify_perfect, graph_bodies, record, rng, rounds, tally};
use crate::migrate_imap::ImapRig;
use crate::support::corpus::{date_for, generated_message, imap_ready};
use crate::support::dovecot::Layout;

fn load(rig: &ImapRig, user: &str, msgs: &[Vec<u8>]) {
    let batch: Vec<_> = msgs
        .iter()
        .enumerate()
        .map(|(i, m)| (m.clone(), Default::default(), date_for(i)))
        .collect();
    rig.dovecot.load(user, &["INBOX"], &batch);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dovecot_killed_and_restarted_mid_fetch() {
    let (mut inj, mut lost, mut dup) = (0, 0, 0);
    for k in 0..rounds() {
        let cfg = EmulatorConfig {
            latency: Latency {
                fixed_ms: 3,
                jitter_ms: 2,
            },
            ..EmulatorConfig::default()
        };
        let rig = ImapRig::with_emulator(Layout::Fs, &["dex"], cfg).await;
        let msgs: Vec<Vec<u8>> = (0..300)
            .map(|i| generated_message(i, 3000 + i * 7))
            .collect();
        load(&rig, "dex", &msgs);
        let mut r = rng(&format!("dovecot-restart/{k}"));
        let mut points: Vec<usize> = (0..2).map(|_| r.gen_range(5..msgs.len() - 40)).collect();
        points.sort_unstable();

        // The first point: killed and restarted at once (the reader's connection drops, its
        // reconnect meets the new instance). The second: killed and left down until the run
        // gives up, restarted after.
        let done = AtomicBool::new(false);
        let insp = rig.emulator.inspect();
        let run = async {
            let s = rig.migrate().await;
            done.store(true, Ordering::SeqCst);
            s
        };
        let control = async {
            let mut left_down = false;
            for (n, p) in points.iter().enumerate() {
                while insp
                    .mailbox("dex@contoso.example")
                    .map_or(0, |m| m.items.len())
                    < *p
                    && !done.load(Ordering::SeqCst)
                {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                if done.load(Ordering::SeqCst) {
                    break;
                }
                tokio::task::block_in_place(|| {
                    rig.dovecot.kill();
                    if n == 0 {
                        rig.dovecot.restart();
                    }
                });
                left_down = n > 0;
                inj += 1;
            }
            left_down
        };
        let (_first, left_down) = tokio::join!(run, control);
        if left_down {
            rig.dovecot.restart();
        }
        // Whatever the interrupted run left, the next runs finish.
        let mut settled = false;
        for _ in 0..3 {
            let s = rig.migrate().await;
            if !s.has_failures() && s.total().pending == 0 {
                settled = true;
                break;
            }
        }
        assert!(settled, "not settled after the restarts");
        let expected: Vec<Vec<u8>> = msgs.iter().map(|m| imap_ready(m)).collect();
        let (l, d) = tally(
            &expected,
            &graph_bodies(&rig.emulator, "dex@contoso.example"),
        );
        assert_eq!((l, d), (0, 0), "lost, duplicated");
        (lost, dup) = (lost + l, dup + d);
        assert_verify_perfect(&rig.plan_path, None).await;
    }
    assert!(inj > 0);
    record("dovecot-killed-mid-fetch", inj, lost, dup);
}

/// A loopback TCP relay to Dovecot's plain port. Once armed, the first connection that logs in
/// with `marker` in its LOGIN stops forwarding (both ways, sockets kept open) after `after_bytes`
/// from the server; from then on every connection carrying `marker` stops right after its login
/// line.
struct HangingRelay {
    port: u16,
    armed: Arc<AtomicBool>,
    tripped: Arc<AtomicBool>,
    hung: Arc<AtomicUsize>,
}

impl HangingRelay {
    async fn start(upstream: u16, marker: &'static [u8], after_bytes: usize) -> HangingRelay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed = Arc::new(AtomicBool::new(true));
        let tripped = Arc::new(AtomicBool::new(false));
        let hung = Arc::new(AtomicUsize::new(0));
        let (a, t, h) = (armed.clone(), tripped.clone(), hung.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (a, t, h) = (a.clone(), t.clone(), h.clone());
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    relay(client, server, marker, after_bytes, a, t, h).await;
                });
            }
        });
        HangingRelay {
            port,
            armed,
            tripped,
            hung,
        }
    }
}

async fn relay(
    client: TcpStream,
    server: TcpStream,
    marker: &'static [u8],
    after_bytes: usize,
    armed: Arc<AtomicBool>,
    tripped: Arc<AtomicBool>,
    hung: Arc<AtomicUsize>,
) {
    let victim = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let (v, s) = (victim.clone(), stop.clone());
    let (armed2, tripped2, hung2) = (armed.clone(), tripped.clone(), hung.clone());
    let up = tokio::spawn(async move {
        let mut buf = vec![0u8; 16384];
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if buf[..n].windows(marker.len()).any(|w| w == marker) {
                v.store(true, Ordering::SeqCst);
            }
            if s.load(Ordering::SeqCst) {
                // Hung: keep the sockets, forward nothing.
                std::future::pending::<()>().await;
            }
            if sw.write_all(&buf[..n]).await.is_err() {
                return;
            }
            if v.load(Ordering::SeqCst)
                && armed2.load(Ordering::SeqCst)
                && tripped2.load(Ordering::SeqCst)
            {
                s.store(true, Ordering::SeqCst);
                hung2.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    let down = tokio::spawn(async move {
        let mut buf = vec![0u8; 16384];
        let mut since_login = 0usize;
        loop {
            if stop.load(Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            let n = match sr.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if victim.load(Ordering::SeqCst) && armed.load(Ordering::SeqCst) {
                since_login += n;
                if since_login > after_bytes && !tripped.swap(true, Ordering::SeqCst) {
                    stop.store(true, Ordering::SeqCst);
                    hung.fetch_add(1, Ordering::SeqCst);
                    std::future::pending::<()>().await;
                }
            }
            if stop.load(Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            if cw.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    });
    let _ = tokio::join!(up, down);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_source_connection_times_out_and_a_later_run_completes() {
    let (mut inj, mut lost, mut dup) = (0, 0, 0);
    for _ in 0..rounds() {
        // Built with a TLS plan, then rewritten below to go through the relay in plain text.
        let rig = ImapRig::with_emulator(
            Layout::Fs,
            &["vic", "ida", "joe"],
            EmulatorConfig::default(),
        )
        .await;
        let relay = HangingRelay::start(rig.dovecot.port_plain(), b"pw-vic", 40_000).await;
        let plan = format!(
            "mailboxes = \"mailboxes.csv\"\n\n[source]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"plain\"\n\
             timeout_secs = 2\n\n\
             [destination.exo]\nkind = \"graph\"\ntenant = \"contoso.example\"\nclient_id = \"mailferry-demo\"\n\
             client_secret_file = \"secret\"\ngraph_url = \"{1}\"\nlogin_url = \"{1}\"\n",
            relay.port,
            rig.emulator.base_url()
        );
        std::fs::write(&rig.plan_path, plan).unwrap();
        std::fs::write(
            rig.dir.path().join("mailboxes.csv"),
            "EmailAddress,UserName,Password\nvic@contoso.example,vic,pw-vic\n\
             ida@contoso.example,ida,pw-ida\njoe@contoso.example,joe,pw-joe\n",
        )
        .unwrap();
        let mut expected = Vec::new();
        for (n, u) in ["vic", "ida", "joe"].iter().enumerate() {
            let msgs: Vec<Vec<u8>> = (0..60)
                .map(|i| generated_message(n * 1000 + i, 4000))
                .collect();
            load(&rig, u, &msgs);
            expected.push((*u, msgs));
        }

        let first = rig.migrate().await;
        assert!(
            relay.tripped.load(Ordering::SeqCst),
            "the relay never hung a connection"
        );
        inj += relay.hung.load(Ordering::SeqCst);
        let vic = first
            .mailboxes
            .iter()
            .find(|m| m.mailbox.starts_with("vic"))
            .unwrap();
        let said = format!("{:?} {:?}", vic.error, vic.failures).to_lowercase();
        assert!(
            vic.status == "failed" || vic.failed > 0,
            "the hung mailbox is reported: {vic:?}"
        );
        assert!(
            said.contains("timed out") || said.contains("timeout"),
            "{said}"
        );
        for m in first
            .mailboxes
            .iter()
            .filter(|m| !m.mailbox.starts_with("vic"))
        {
            assert_eq!((m.status.as_str(), m.copied), ("ok", 60), "{m:?}");
        }

        // The network is healthy again: the next run finishes the hung mailbox.
        relay.armed.store(false, Ordering::SeqCst);
        let second = rig.migrate().await;
        assert!(!second.has_failures(), "{:#?}", second.mailboxes);
        for (u, msgs) in &expected {
            let want: Vec<Vec<u8>> = msgs.iter().map(|m| imap_ready(m)).collect();
            let (l, d) = tally(
                &want,
                &graph_bodies(&rig.emulator, &format!("{u}@contoso.example")),
            );
            assert_eq!((l, d), (0, 0), "{u}: lost, duplicated");
            (lost, dup) = (lost + l, dup + d);
        }
        assert_verify_perfect(&rig.plan_path, None).await;
    }
    record("source-connection-hangs", inj, lost, dup);
}
