//! `migrate` end to end through the library: Maildir trees written here into the in-process
//! Graph emulator; first run, no-op re-run, incremental run, resume after ambiguous writes.

use std::path::{Path, PathBuf};

use mailferry::app;
use mailferry::emulator::{self, EmulatorConfig, EmulatorHandle};
use mailferry::engine::{self, Cancel, MigrateOptions};
use mailferry::ledger::Ledger;
use mailferry::plan::Plan;
use mailferry::report::{Events, RunSummary};

/// Real third-party messages for the trees (CRLF line ends, as Maildir bodies are served).
pub fn corpus_messages(limit: usize) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cpython-email");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/data/cpython-email is in the repository")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    names.sort();
    names
        .into_iter()
        .take(limit)
        .map(|p| std::fs::read(p).unwrap())
        .collect()
}

/// A generated message with a unique Message-ID.
pub fn generated(i: usize, body_bytes: usize) -> Vec<u8> {
    let body: String = (0..body_bytes)
        .map(|j| (b'a' + ((i + j) % 26) as u8) as char)
        .collect();
    format!(
        "From: sender{i}@example.org\r\nTo: user@example.com\r\nSubject: message {i}\r\n\
         Date: Mon, 1 Jan 2024 10:{:02}:00 +0000\r\nMessage-ID: <gen{i}@example.org>\r\n\r\n{body}\r\n",
        i % 60
    )
    .into_bytes()
}

/// Writes a Maildir++ tree: `folders` maps a folder name ("" = INBOX) to messages with flag letters.
/// Messages of one folder: raw bytes and the Maildir flag letters.
pub type FolderMessages<'a> = Vec<(Vec<u8>, &'a str)>;

/// Writes a Maildir++ tree.
pub fn write_maildir(root: &Path, folders: &[(&str, FolderMessages<'_>)]) {
    for (name, msgs) in folders {
        let dir = if name.is_empty() {
            root.to_path_buf()
        } else {
            root.join(format!(".{name}"))
        };
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        for (i, (raw, flags)) in msgs.iter().enumerate() {
            let file = dir.join("cur").join(format!(
                "17000000{i:02}.M{i}P1.host,S={}:2,{flags}",
                raw.len()
            ));
            std::fs::write(file, raw).unwrap();
        }
    }
}

pub struct Rig {
    pub dir: tempfile::TempDir,
    pub emulator: EmulatorHandle,
    pub plan_path: PathBuf,
}

impl Rig {
    /// A plan of Maildir sources (one per mailbox name) into a fresh emulator.
    pub async fn new(mailboxes: &[&str], config: EmulatorConfig) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let emulator = emulator::start(config).await.unwrap();
        let mut csv = String::from("EmailAddress,UserName,Password,SourcePath\n");
        for m in mailboxes {
            csv.push_str(&format!("{m}@contoso.example,{m},,trees/{m}\n"));
            std::fs::create_dir_all(dir.path().join("trees").join(m)).unwrap();
        }
        std::fs::write(dir.path().join("mailboxes.csv"), csv).unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "demo-secret\n").unwrap();
        let plan = format!(
            "mailboxes = \"mailboxes.csv\"\n\n[source]\nkind = \"maildir\"\n\n\
             [destination.exo]\nkind = \"graph\"\ntenant = \"contoso.example\"\nclient_id = \"mailferry-demo\"\n\
             client_secret_file = \"secret\"\ngraph_url = \"{0}\"\nlogin_url = \"{0}\"\n",
            emulator.base_url()
        );
        let plan_path = dir.path().join("plan.toml");
        std::fs::write(&plan_path, plan).unwrap();
        Rig {
            dir,
            emulator,
            plan_path,
        }
    }

    pub fn tree(&self, mailbox: &str) -> PathBuf {
        self.dir.path().join("trees").join(mailbox)
    }

    pub async fn migrate(&self, opts: MigrateOptions) -> RunSummary {
        let plan = Plan::load(&self.plan_path).unwrap();
        let workspace = app::Workspace::resolve(&plan, None, None);
        app::migrate(
            &plan,
            &workspace,
            &opts,
            Events::discard(),
            Cancel::default(),
        )
        .await
        .unwrap()
        .summary
    }

    /// Every item in a mailbox at the emulator, as raw MIME.
    pub fn items(&self, mailbox: &str) -> Vec<(String, Vec<u8>)> {
        let insp = self.emulator.inspect();
        let address = format!("{mailbox}@contoso.example");
        let Some(view) = insp.mailbox(&address) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for f in &view.folders {
            for item in view.items_in(&f.path) {
                let raw = insp.raw_mime(&address, &item.id).unwrap_or_default();
                out.push((f.path.clone(), raw));
            }
        }
        out
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_run_copies_everything_byte_exact_then_reruns_copy_nothing() {
    let rig = Rig::new(&["ann", "bob"], EmulatorConfig::default()).await;
    let corpus = corpus_messages(20);
    write_maildir(
        &rig.tree("ann"),
        &[
            ("", corpus[..10].iter().map(|m| (m.clone(), "S")).collect()),
            (
                "Sent",
                corpus[10..15].iter().map(|m| (m.clone(), "S")).collect(),
            ),
            (
                "Archive.2019",
                corpus[15..].iter().map(|m| (m.clone(), "")).collect(),
            ),
        ],
    );
    write_maildir(
        &rig.tree("bob"),
        &[("", (0..12).map(|i| (generated(i, 2000), "F")).collect())],
    );

    let first = rig.migrate(MigrateOptions::default()).await;
    let by = |n: &str| {
        first
            .mailboxes
            .iter()
            .find(|m| m.mailbox.starts_with(n))
            .unwrap()
            .clone()
    };
    assert_eq!(by("ann").status, "ok", "{:?}", by("ann"));
    assert_eq!((by("ann").copied, by("bob").copied), (20, 12));
    assert!(!first.has_failures());

    // Every source message is at the destination exactly once, byte for byte, in its folder.
    let mut at_dest: Vec<Vec<u8>> = rig.items("ann").into_iter().map(|(_, raw)| raw).collect();
    let mut expected: Vec<Vec<u8>> = corpus
        .iter()
        .map(|m| crate::support::corpus::imap_ready(m))
        .collect();
    at_dest.sort();
    expected.sort();
    assert_eq!(at_dest.len(), expected.len());
    // A message the importMime route refuses (the corpus has one with no header block) takes the
    // JSON route, which rebuilds the item: those have no raw MIME to compare.
    let rebuilt = at_dest.iter().filter(|m| m.is_empty()).count();
    assert!(rebuilt <= 1, "{rebuilt} items took the JSON route");
    let missing: Vec<String> = expected
        .iter()
        .filter(|m| !at_dest.contains(m))
        .skip(rebuilt)
        .map(|m| String::from_utf8_lossy(&m[..m.len().min(120)]).into_owned())
        .collect();
    assert!(
        missing.is_empty(),
        "not byte-identical at the destination: {missing:#?}"
    );
    let folders: Vec<String> = rig.items("ann").into_iter().map(|(f, _)| f).collect();
    assert!(
        folders.iter().any(|f| f.contains("Sent Items")),
        "{folders:?}"
    );
    assert!(folders.iter().any(|f| f.ends_with("2019")), "{folders:?}");

    let second = rig.migrate(MigrateOptions::default()).await;
    let total = second.total();
    assert_eq!(total.copied, 0);
    assert_eq!(total.already_present, 32);
    assert_eq!(rig.items("ann").len() + rig.items("bob").len(), 32);

    // New mail and a flag change at the source arrive on the next run.
    let inbox = rig.tree("bob").join("cur");
    std::fs::write(inbox.join("1800000000.M99P1.host:2,"), generated(99, 500)).unwrap();
    let old = std::fs::read_dir(&inbox)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(":2,F"))
        .unwrap();
    let renamed = PathBuf::from(old.to_string_lossy().replace(":2,F", ":2,FS"));
    std::fs::rename(&old, &renamed).unwrap();
    let third = rig.migrate(MigrateOptions::default()).await;
    let bob = third
        .mailboxes
        .iter()
        .find(|m| m.mailbox.starts_with("bob"))
        .unwrap();
    assert_eq!(
        (bob.copied, bob.flags_updated, bob.already_present),
        (1, 1, 12)
    );
    assert_eq!(rig.items("bob").len(), 13);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_at_the_destination_leave_every_message_exactly_once_and_verify_perfect() {
    use mailferry::emulator::{FaultKind, FaultRule};
    let rig = Rig::new(&["eve"], EmulatorConfig::default()).await;
    write_maildir(
        &rig.tree("eve"),
        &[("", (0..40).map(|i| (generated(i, 3000), "S")).collect())],
    );
    let insp = rig.emulator.inspect();
    // Responses lost after the item was stored, 503s and resets: a blind retry would duplicate.
    insp.add_fault(FaultRule::new(Some("POST"), "importMime", FaultKind::LostResponse).times(3));
    insp.add_fault(
        FaultRule::new(Some("POST"), "importMime", FaultKind::ServiceUnavailable).times(3),
    );
    insp.add_fault(FaultRule::new(Some("PATCH"), "/messages/", FaultKind::Reset).times(2));
    let first = rig.migrate(MigrateOptions::default()).await;
    let eve = &first.mailboxes[0];
    // Whatever one run could not settle, the next run settles; nothing is written twice.
    let second = rig.migrate(MigrateOptions::default()).await;
    let items = rig.items("eve");
    assert_eq!(
        items.len(),
        40,
        "first run: {eve:?}, second: {:?}",
        second.mailboxes[0]
    );
    let mut raws: Vec<Vec<u8>> = items.into_iter().map(|(_, r)| r).collect();
    raws.sort();
    raws.dedup();
    assert_eq!(raws.len(), 40, "an item was duplicated");
    assert!(!insp.fault_log().is_empty(), "the faults were injected");

    let plan = Plan::load(&rig.plan_path).unwrap();
    let ledger = Ledger::open(&plan.default_state_path()).unwrap();
    let selected = plan.select(&[]).unwrap();
    let report = engine::verify::verify(&plan, Some(&ledger), &selected, true, 2).await;
    assert!(report.perfect, "{:#?}", report.mailboxes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_a_missing_item() {
    let rig = Rig::new(&["fay"], EmulatorConfig::default()).await;
    write_maildir(
        &rig.tree("fay"),
        &[("", (0..5).map(|i| (generated(i, 100), "")).collect())],
    );
    rig.migrate(MigrateOptions::default()).await;
    // A message that arrives at the source after the run is missing until the next run.
    let cur = rig.tree("fay").join("cur");
    std::fs::write(cur.join("1900000000.M7P1.host:2,"), generated(77, 100)).unwrap();
    let plan = Plan::load(&rig.plan_path).unwrap();
    let ledger = Ledger::open(&plan.default_state_path()).unwrap();
    let selected = plan.select(&[]).unwrap();
    let report = engine::verify::verify(&plan, Some(&ledger), &selected, true, 1).await;
    assert!(!report.perfect);
    let m = &report.mailboxes[0];
    assert_eq!(m.verdict, "investigate");
    assert_eq!(m.missing.len(), 1, "{m:#?}");
    assert_eq!(
        m.missing[0].message_id.as_deref(),
        Some("<gen77@example.org>")
    );
}
