//! mailferry against the scripted hostile IMAP server (tests/support/hostile.rs): replies no real
//! server sends, each of which once made mailferry lie or mislead (issue 13, points 8 to 10).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use mailferry::emulator::{self, EmulatorConfig, EmulatorHandle};
use mailferry::model::SourceFolder;
use mailferry::secret::Secret;
use mailferry::source::imap::{ImapAuth, ImapEndpoint, ImapSource, Security};

use crate::support::corpus::generated_message;
use crate::support::hostile::{Bodies, Folder, Hostile, Reply, Script};

fn endpoint(h: &Hostile) -> ImapEndpoint {
    ImapEndpoint {
        host: "127.0.0.1".into(),
        port: h.port,
        security: Security::Plain,
        ca_file: None,
        insecure: false,
        timeout: Duration::from_secs(10),
    }
}

async fn connect(h: &Hostile) -> ImapSource {
    let auth = ImapAuth::Login {
        user: "u".into(),
        password: Secret::from("pw"),
    };
    ImapSource::connect(endpoint(h), auth)
        .await
        .expect("connect")
}

async fn folder(src: &mut ImapSource, raw: &[u8]) -> SourceFolder {
    let all = src.list_folders().await.expect("list");
    let wanted = String::from_utf8_lossy(raw).into_owned();
    all.into_iter()
        .find(|f| f.raw_name == wanted || (f.path.to_string() == wanted))
        .unwrap_or_else(|| panic!("{wanted:?} not listed"))
}

pub(crate) fn bodies(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| generated_message(i, 600 + i * 10)).collect()
}

/// A plan migrating one mailbox from the hostile server into an emulator.
pub(crate) struct Rig {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) plan: PathBuf,
    pub(crate) emulator: EmulatorHandle,
}

async fn rig(h: &Hostile) -> Rig {
    rig_with(h, EmulatorConfig::default(), None, "").await
}

/// A [`Rig`] whose emulator runs with `config`; `graph_url` replaces the emulator's URL in the
/// plan (both `graph_url` and `login_url`) and `extra` is appended to the destination's table.
pub(crate) async fn rig_with(
    h: &Hostile,
    config: EmulatorConfig,
    graph_url: Option<&str>,
    extra: &str,
) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let emulator = emulator::start(config).await.unwrap();
    std::fs::write(dir.path().join("secret"), "demo-secret").unwrap();
    std::fs::write(
        dir.path().join("mailboxes.csv"),
        "EmailAddress,UserName,Password\nu@contoso.example,u,pw\n",
    )
    .unwrap();
    let plan = dir.path().join("plan.toml");
    let url = graph_url.map_or_else(|| emulator.base_url(), str::to_owned);
    std::fs::write(
        &plan,
        format!(
            "mailboxes = \"mailboxes.csv\"\n\n[source]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"plain\"\n\n\
             [destination.exo]\nkind = \"graph\"\ntenant = \"contoso.example\"\nclient_id = \"mailferry-demo\"\n\
             client_secret_file = \"secret\"\ngraph_url = \"{url}\"\nlogin_url = \"{url}\"\n{extra}\n",
            h.port,
        ),
    )
    .unwrap();
    Rig {
        dir,
        plan,
        emulator,
    }
}

/// Runs the binary off the runtime's threads (the hostile server and the emulator keep serving).
pub(crate) async fn run_bin(args: Vec<String>) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_mailferry"))
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .args(&args)
            .output()
            .expect("run mailferry");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

/// Point 8: a FETCH answered without `BODY[]`, or with `BODY[] NIL`, fails each message with a
/// reason naming folder and UID; the run exits 1 and the ledger says failed, never "ok".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_without_body_fails_each_message_and_the_run() {
    for shape in [Bodies::Missing, Bodies::Nil] {
        let h = Hostile::start(Script {
            bodies: shape,
            ..Script::with(vec![Folder::new(b"INBOX", &bodies(2))])
        })
        .await;
        let rig = rig(&h).await;
        let plan = rig.plan.to_str().unwrap().to_owned();
        let (code, out, err) = run_bin(vec![
            "migrate".into(),
            "--plan".into(),
            plan.clone(),
            "--json".into(),
        ])
        .await;
        assert_eq!(code, 1, "{shape:?}: exit {code}\n{out}\n{err}");
        let last = out.lines().last().expect("summary line");
        let doc: serde_json::Value = serde_json::from_str(last).expect("json");
        let mb = &doc["summary"]["mailboxes"][0];
        assert_eq!(mb["failed"], 2, "{shape:?}: {mb}");
        assert_eq!(mb["copied"], 0, "{shape:?}: {mb}");
        let reasons: Vec<String> = mb["failures"]
            .as_object()
            .expect("failures")
            .keys()
            .cloned()
            .collect();
        for uid in [1, 2] {
            assert!(
                reasons.iter().any(|r| r.contains("INBOX")
                    && r.contains(&format!("UID {uid}:"))
                    && r.contains("no body")),
                "{shape:?}: {reasons:?}"
            );
        }
        // The report file on disk says the same.
        let report = std::fs::read_dir(rig.dir.path())
            .unwrap()
            .filter_map(Result::ok)
            .find(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with("mailferry-run-") && n.ends_with(".json")
            })
            .expect("report written");
        let text = std::fs::read_to_string(report.path()).unwrap();
        assert!(
            text.contains("UID 1:") && text.contains("\"failed\": 2"),
            "{text}"
        );
        // `status` shows them failed, not pending.
        let (code, out, _) = run_bin(vec![
            "status".into(),
            "--plan".into(),
            plan,
            "--json".into(),
        ])
        .await;
        assert_eq!(code, 0);
        assert!(out.contains("no body"), "{out}");
    }
}

/// Point 9: `UIDNEXT 4294967295` (and UIDs with a gap of billions) must not make the metadata
/// listing walk UID pages up to UIDNEXT: the pages follow the messages that exist.
#[tokio::test]
async fn a_huge_uidnext_costs_no_extra_round_trips() {
    let mut dense = Folder::new(b"INBOX", &bodies(3));
    dense.uid_next = Some(u32::MAX);
    let mut sparse = Folder::new(b"Sparse", &bodies(5));
    for (m, uid) in
        sparse
            .messages
            .iter_mut()
            .zip([1, 2, 3_000_000_000, 4_000_000_000, 4_294_967_294])
    {
        m.uid = uid;
    }
    sparse.uid_next = Some(u32::MAX);
    let h = Hostile::start(Script::with(vec![dense, sparse])).await;
    let work = async {
        let mut src = connect(&h).await;
        src.set_meta_page(2);
        for (name, uids) in [
            (&b"INBOX"[..], vec![1, 2, 3]),
            (
                &b"Sparse"[..],
                vec![1, 2, 3_000_000_000, 4_000_000_000, 4_294_967_294],
            ),
        ] {
            let f = folder(&mut src, name).await;
            let before = h.count("FETCH") + h.count("UID FETCH");
            src.select(&f).await.expect("examine");
            let metas = src.fetch_meta(&f, None).await.expect("metadata");
            let got: Vec<u32> = metas.iter().map(|m| m.uid.get()).collect();
            assert_eq!(got, uids);
            let fetches = h.count("FETCH") + h.count("UID FETCH") - before;
            // Pages of 2 over 3 or 5 messages: 2 or 3 FETCHes, whatever UIDNEXT says.
            assert!(
                fetches <= uids.len().div_ceil(2),
                "{fetches} FETCHes: {:?}",
                h.commands()
            );
            let (_, pipelined) = src.examine_meta(&f).await.expect("examine_meta");
            assert_eq!(pipelined, metas);
        }
        src.logout().await;
    };
    tokio::time::timeout(Duration::from_secs(20), work)
        .await
        .expect("the listing walked UID pages up to UIDNEXT");
}

/// Point 10: EOF in the middle of a SELECT reply is a closed connection, not an overlong line.
#[tokio::test]
async fn eof_in_the_middle_of_a_select_reply_says_the_connection_closed() {
    let h = Hostile::start(
        Script::with(vec![Folder::new(b"INBOX", &bodies(1))]).answer(
            "EXAMINE",
            Reply::Close(b"* 1 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNE".to_vec()),
        ),
    )
    .await;
    let mut src = connect(&h).await;
    let inbox = folder(&mut src, b"INBOX").await;
    let err = src.select(&inbox).await.expect_err("EOF");
    let text = err.to_string();
    assert!(text.contains("closed the connection"), "{text}");
    assert!(!text.contains("longer than"), "{text}");
    assert!(text.contains("INBOX"), "{text}");
}

/// Point 10: an 8-bit folder name is EXAMINEd with exactly the bytes LIST gave, by `select`
/// and by the pipelined survey read, and its messages are listed.
#[tokio::test]
async fn an_eight_bit_folder_name_is_examined_with_its_own_bytes() {
    let h = Hostile::start(Script::with(vec![
        Folder::new(b"INBOX", &bodies(1)),
        Folder::new(b"Caf\xe9 \xff", &bodies(2)),
    ]))
    .await;
    let mut src = connect(&h).await;
    let all = src.list_folders().await.expect("list");
    let odd = all
        .iter()
        .find(|f| f.raw_name != "INBOX")
        .expect("the 8-bit folder")
        .clone();
    assert_eq!(odd.path.to_string(), "Caf\u{fffd} \u{fffd}");
    let status = src
        .select(&odd)
        .await
        .expect("EXAMINE with the listed bytes");
    assert_eq!(status.exists, 2);
    assert_eq!(src.fetch_meta(&odd, None).await.expect("meta").len(), 2);
    let many = src.examine_meta_many(&all).await.expect("session");
    assert_eq!(many.len(), 2);
    assert_eq!(many[1].as_ref().expect("8-bit folder").1.len(), 2);
}

/// Point 10: `survey` exits 1 when a folder could not be read, and says which.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survey_exits_1_when_a_folder_failed() {
    let h = Hostile::start(Script {
        phantoms: vec![b"Vanished".to_vec()],
        ..Script::with(vec![Folder::new(b"INBOX", &bodies(2))])
    })
    .await;
    let rig = rig(&h).await;
    let plan = rig.plan.to_str().unwrap().to_owned();
    let (code, out, err) = run_bin(vec![
        "survey".into(),
        "--plan".into(),
        plan.clone(),
        "--json".into(),
    ])
    .await;
    assert_eq!(code, 1, "{out}\n{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(doc["failed_folders"], 1, "{doc}");
    assert_eq!(doc["messages"], 2, "{doc}");
    let (code, out, _) = run_bin(vec!["survey".into(), "--plan".into(), plan]).await;
    assert_eq!(code, 1);
    assert!(
        out.contains("Vanished") && out.contains("could not be read"),
        "{out}"
    );
}

/// Point 10: a server with no INBOX and no folders is a warning in survey and migrate, not a
/// silent "ok, 0 messages".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_inbox_and_no_folders_is_a_warning() {
    let h = Hostile::start(Script::default()).await;
    let rig = rig(&h).await;
    let plan = rig.plan.to_str().unwrap().to_owned();
    let (_, out, err) = run_bin(vec![
        "survey".into(),
        "--plan".into(),
        plan.clone(),
        "--json".into(),
    ])
    .await;
    let doc: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    let warnings = doc["mailboxes"][0]["warnings"].to_string();
    assert!(warnings.contains("no folders at all"), "{doc}");
    let (_, out, _) = run_bin(vec!["migrate".into(), "--plan".into(), plan]).await;
    assert!(
        out.contains("warning: the source listed no folders at all"),
        "{out}"
    );
}
