//! Survey benchmark: the benchmarks' 5,000-message mailbox (about 480 MB, `benches/support`)
//! surveyed by the real `engine::survey` over implicit TLS (metadata only, no bodies), next to
//! the floor: EXAMINE and a bare `UID FETCH 1:* (FLAGS RFC822.SIZE INTERNALDATE)` per folder on
//! one raw TLS connection that parses nothing. Prints a table; asserts nothing about speed.
//!
//! Run: `cargo bench --bench survey_meta` (needs Dovecot; loading takes a minute or two).

use std::sync::Arc;
use std::time::{Duration, Instant};

use mailferry::engine::survey::survey;
use mailferry::plan::Plan;
use mailferry::secret::Secret;
use mailferry::source::imap::{ImapAuth, ImapEndpoint, ImapSource, Security};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

mod support;

use support::dovecot;

const RUNS: usize = 9;
const FLOOR_ATTRS: &str = "FLAGS RFC822.SIZE INTERNALDATE";
/// What fetch_meta asks for, sent by the raw client: separates server cost from client cost.
const FULL_ATTRS: &str = "UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]";

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
    // The same generated mailbox as the migrate and IMAP benchmarks (benches/support).
    let loaded = support::load_mailbox(&d, "bench", None);

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

    // The floor's folders: every selectable one, by its raw (modified UTF-7) name.
    let raw_names: Vec<String> = rt.block_on(async {
        let mut src = ImapSource::connect(endpoint.clone(), auth.clone())
            .await
            .expect("connect");
        let names = src
            .list_folders()
            .await
            .expect("list")
            .into_iter()
            .filter(|f| f.selectable)
            .map(|f| f.raw_name)
            .collect();
        src.logout().await;
        names
    });
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
        assert_eq!(n, loaded.messages, "examine_meta saw every message");
        connect_times.push(connected);
        source_times.push(elapsed);
        let t = Instant::now();
        let report = rt.block_on(survey(&plan, &selected, 1));
        survey_times.push(t.elapsed());
        assert_eq!(
            report.mailboxes[0].messages as usize, loaded.messages,
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
    let counted = loaded.messages as f64;
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
    use rustls_pki_types::{CertificateDer, pem::PemObject};
    use tokio_rustls::rustls::{ClientConfig, RootCertStore, crypto::ring};
    let t = Instant::now();
    let mut roots = RootCertStore::empty();
    let pem = std::fs::read(&ca).expect("ca");
    for c in CertificateDer::pem_slice_iter(&pem) {
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
