//! Survey benchmark: a 5,000-message mailbox (about 430 MB, realistic size mix, 30 folders)
//! surveyed by the real `engine::survey` over implicit TLS (metadata only, no bodies), next to
//! the floor: EXAMINE and a bare `UID FETCH 1:* (FLAGS RFC822.SIZE INTERNALDATE)` per folder on
//! one raw TLS connection that parses nothing. Prints a table; asserts nothing about speed.
//!
//! Run: `cargo bench --bench survey_meta` (needs Dovecot; loading takes a minute or two).

use std::sync::Arc;
use std::time::{Duration, Instant};

use mailferry::engine::survey::survey;
use mailferry::model::Flags;
use mailferry::plan::Plan;
use mailferry::secret::Secret;
use mailferry::source::imap::{ImapAuth, ImapEndpoint, ImapSource, Security};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[path = "../tests/support/corpus.rs"]
#[allow(dead_code)]
mod corpus;
#[path = "../tests/support/dovecot.rs"]
#[allow(dead_code)]
mod dovecot;

const MESSAGES: usize = 5_000;
const FOLDERS: usize = 30;
const RUNS: usize = 9;
const FLOOR_ATTRS: &str = "FLAGS RFC822.SIZE INTERNALDATE";
/// What fetch_meta asks for, sent by the raw client: separates server cost from client cost.
const FULL_ATTRS: &str = "UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]";

/// Deterministic size mix: mostly 5-50 KB, some 100 KB-2 MB, a few 5-10 MB.
fn size_of(i: usize) -> usize {
    let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 29;
    let r = x % 10_000;
    let u = ((x >> 20) % 1_000_000) as f64 / 1e6;
    if r < 40 {
        5_000_000 + (u * 5e6) as usize
    } else if r < 1_040 {
        // 100 KB-2 MB, skewed towards the small end.
        100_000 + (u.powi(6) * 1.9e6) as usize
    } else {
        5_000 + (u * 45e3) as usize
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let d = dovecot::Dovecot::start(dovecot::Layout::Fs);
    d.add_user("bench", "pw");
    let t = Instant::now();
    let mut total_bytes = 0usize;
    let folder_names: Vec<Vec<String>> = (0..FOLDERS)
        .map(|f| match f {
            0 => vec!["INBOX".to_owned()],
            1 => vec!["Sent".to_owned()],
            f if f % 3 == 0 => vec!["Projects".to_owned(), format!("P{f}"), "Mail".to_owned()],
            f => vec![format!("Folder {f}")],
        })
        .collect();
    let per_folder = MESSAGES / FOLDERS;
    for (fi, name) in folder_names.iter().enumerate() {
        let msgs: Vec<(Vec<u8>, Flags, _)> = (0..per_folder)
            .map(|k| {
                let i = fi * per_folder + k;
                (
                    corpus::generated_message(i, size_of(i)),
                    corpus::flags_for(i),
                    corpus::date_for(i),
                )
            })
            .collect();
        total_bytes += msgs.iter().map(|m| m.0.len()).sum::<usize>();
        let segs: Vec<&str> = name.iter().map(String::as_str).collect();
        d.load("bench", &segs, &msgs);
    }
    let load = t.elapsed();
    println!(
        "loaded {} messages, {:.0} MB, {FOLDERS} folders in {:.1} s",
        per_folder * FOLDERS,
        total_bytes as f64 / 1e6,
        load.as_secs_f64()
    );

    let endpoint = ImapEndpoint {
        host: "localhost".into(),
        port: d.port_tls(),
        security: Security::Tls,
        ca_file: Some(d.ca_pem_path()),
        insecure: false,
        timeout: Duration::from_secs(60),
    };
    let auth = ImapAuth::Login {
        user: "bench".into(),
        password: Secret::from("pw"),
    };

    // The real command's path: a plan with this one mailbox, surveyed by `engine::survey`.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("secret"), "unused").expect("secret");
    std::fs::write(
        dir.path().join("plan.toml"),
        format!(
            "mailboxes = \"mailboxes.csv\"\n\n[source]\nhost = \"localhost\"\nport = {}\n\
             security = \"tls\"\nca_file = \"{}\"\n\n[destination.exo]\nkind = \"graph\"\n\
             tenant = \"contoso.example\"\nclient_id = \"bench\"\nclient_secret_file = \"secret\"\n",
            d.port_tls(),
            d.ca_pem_path().display()
        ),
    )
    .expect("plan");
    let csv = dir.path().join("mailboxes.csv");
    std::fs::write(
        &csv,
        "EmailAddress,UserName,Password\nbench@contoso.example,bench,pw\n",
    )
    .expect("csv");
    std::fs::set_permissions(&csv, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
    let plan = Plan::load(&dir.path().join("plan.toml")).expect("plan loads");
    let selected = plan.select(&[]).expect("select");

    let raw_names: Vec<String> = folder_names
        .iter()
        .map(|s| {
            s.iter()
                .map(|x| mailferry::utf7::encode(x))
                .collect::<Vec<_>>()
                .join("/")
        })
        .collect();
    let mut survey_times = Vec::new();
    let mut source_times = Vec::new();
    let mut floor_times = Vec::new();
    let mut raw_full_times = Vec::new();
    let mut connect_times = Vec::new();
    for _ in 0..RUNS {
        let (elapsed, n, connected) = rt.block_on(async {
            let t = Instant::now();
            let mut src = ImapSource::connect(endpoint.clone(), auth.clone())
                .await
                .expect("connect");
            let connected = t.elapsed();
            let folders: Vec<_> = src
                .list_folders()
                .await
                .expect("list")
                .into_iter()
                .filter(|f| f.selectable)
                .collect();
            let n: usize = src
                .examine_meta_many(&folders)
                .await
                .expect("session")
                .into_iter()
                .map(|r| r.expect("meta").1.len())
                .sum();
            src.logout().await;
            (t.elapsed(), n, connected)
        });
        assert_eq!(n, per_folder * FOLDERS, "examine_meta saw every message");
        connect_times.push(connected);
        source_times.push(elapsed);
        let t = Instant::now();
        let report = rt.block_on(survey(&plan, &selected, 1));
        survey_times.push(t.elapsed());
        assert_eq!(
            report.mailboxes[0].messages as usize,
            per_folder * FOLDERS,
            "the survey saw every message: {:?}",
            report.mailboxes[0].error
        );
        floor_times.push(rt.block_on(floor(
            d.port_tls(),
            d.ca_pem_path(),
            &raw_names,
            FLOOR_ATTRS,
        )));
        raw_full_times.push(rt.block_on(floor(
            d.port_tls(),
            d.ca_pem_path(),
            &raw_names,
            FULL_ATTRS,
        )));
    }
    let counted = (per_folder * FOLDERS) as f64;
    let row = |what: &str, v: &[Duration]| {
        let m = median(v.to_vec()).as_secs_f64();
        println!("| {what} | {m:.3} s | {:.0} |", counted / m);
    };
    println!();
    println!("| run ({RUNS} runs, median; connect + TLS + login included) | wall | messages/s |");
    println!("|---|---|---|");
    row(
        "mailferry survey (engine::survey: plan, LIST, pipelined EXAMINE + UID FETCH with Message-ID, tallies)",
        &survey_times,
    );
    row(
        "ImapSource: LIST, then examine_meta_many (EXAMINE + FETCH pipelined across folders)",
        &source_times,
    );
    row(
        "floor: EXAMINE + bare UID FETCH 1:* (FLAGS RFC822.SIZE INTERNALDATE), no parsing",
        &floor_times,
    );
    row(
        "raw client, the survey's attributes (+ Message-ID header), no parsing",
        &raw_full_times,
    );
    println!(
        "| of which connect + TLS + login (ImapSource) | {:.3} s | |",
        median(connect_times.clone()).as_secs_f64()
    );
    println!(
        "| ratio survey / floor | {:.2}x | |",
        median(survey_times.clone()).as_secs_f64() / median(floor_times.clone()).as_secs_f64()
    );
    let ms = |v: &[Duration]| {
        v.iter()
            .map(|d| format!("{:.0}", d.as_secs_f64() * 1e3))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "all runs (ms): survey {}; ImapSource {}; floor {}; raw full {}",
        ms(&survey_times),
        ms(&source_times),
        ms(&floor_times),
        ms(&raw_full_times)
    );
}

/// One raw TLS session: LOGIN, then EXAMINE + bare UID FETCH per folder, reading lines to the tag.
async fn floor(port: u16, ca: std::path::PathBuf, folders: &[String], attrs: &str) -> Duration {
    use tokio_rustls::rustls::{ClientConfig, RootCertStore, crypto::ring};
    let t = Instant::now();
    let mut roots = RootCertStore::empty();
    let pem = std::fs::read(&ca).expect("ca");
    for c in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(c.expect("cert")).expect("add");
    }
    let config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("tls")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("tcp");
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("handshake");
    let mut io = BufReader::new(tls);
    let mut line = Vec::new();
    io.read_until(b'\n', &mut line).await.expect("greeting");
    let mut run =
        async |io: &mut BufReader<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
               tag: &str,
               cmd: String| {
            io.get_mut()
                .write_all(format!("{tag} {cmd}\r\n").as_bytes())
                .await
                .expect("write");
            io.get_mut().flush().await.expect("flush");
            loop {
                line.clear();
                io.read_until(b'\n', &mut line).await.expect("read");
                if line.starts_with(tag.as_bytes()) {
                    assert!(
                        line.starts_with(format!("{tag} OK").as_bytes()),
                        "{}",
                        String::from_utf8_lossy(&line)
                    );
                    break;
                }
            }
        };
    run(&mut io, "a", "LOGIN bench pw".into()).await;
    for (i, f) in folders.iter().enumerate() {
        run(&mut io, &format!("e{i}"), format!("EXAMINE \"{f}\"")).await;
        run(
            &mut io,
            &format!("f{i}"),
            format!("UID FETCH 1:* ({attrs})"),
        )
        .await;
    }
    run(&mut io, "z", "LOGOUT".into()).await;
    t.elapsed()
}
