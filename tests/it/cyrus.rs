//! Cyrus IMAP as a destination: a full `engine::migrate` from a Dovecot source (`/` delimiter)
//! into a private Cyrus 3.x (`unixhierarchysep`, altnamespace) over plain loopback IMAP. Every
//! corpus message and generated ones arrive byte-identical, with flags and INTERNALDATE, in the
//! same folders (a non-ASCII name included); a second run copies nothing; Cyrus's own
//! ids and mailferry's APPENDUID bookkeeping agree (verify is perfect).

use std::time::Duration;

use mailferry::body::Body;
use mailferry::engine;
use mailferry::ledger::Ledger;
use mailferry::model::FolderPath;
use mailferry::plan::Plan;
use mailferry::secret::Secret;
use mailferry::sink::imap::{AppendItem, ImapSink};
use mailferry::source::imap::{ImapAuth, ImapEndpoint, Security};

use crate::support::corpus::{corpus_messages, date_for, flags_for, generated_message, imap_ready};
use crate::support::cyrus::{Cyrus, Namespace};
use crate::support::dovecot::{Dovecot, Layout, MASTER_PASSWORD};
use crate::support::readback::{Snapshot, dovecot_endpoint, migrate_plan, snapshot};

fn cyrus_endpoint(c: &Cyrus) -> ImapEndpoint {
    ImapEndpoint {
        host: "127.0.0.1".into(),
        port: c.port(),
        security: Security::Plain,
        ca_file: None,
        insecure: false,
        timeout: Duration::from_secs(20),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrates_from_dovecot_into_cyrus_byte_identical_and_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let source = Dovecot::start(Layout::Fs);
    let cyrus = Cyrus::start();
    source.add_user("bob", "pw-bob");
    cyrus.add_user("bob", "new-bob");

    let corpus: Vec<Vec<u8>> = corpus_messages()
        .into_iter()
        .map(|(_, m)| imap_ready(&m))
        .collect();
    let load = |folder: &[&str], msgs: &[Vec<u8>], first: usize| {
        let batch: Vec<_> = msgs
            .iter()
            .enumerate()
            .map(|(i, m)| (m.clone(), flags_for(first + i), date_for(first + i)))
            .collect();
        source.load("bob", folder, &batch);
    };
    // Every corpus message (duplicated and missing Message-IDs included) plus generated ones of
    // several sizes, in nested folders and one with a non-ASCII name.
    let half = corpus.len() / 2;
    load(&["INBOX"], &corpus[..half], 0);
    load(&["Sent"], &corpus[half..], half);
    let generated: Vec<Vec<u8>> = (0..120)
        .map(|i| generated_message(i, [700, 4_000, 30_000, 150_000][i % 4]))
        .collect();
    load(&["Listen", "2023"], &generated[..60], 1000);
    load(&["Projekte", "Größe"], &generated[60..], 1060);

    std::fs::write(dir.path().join("master"), MASTER_PASSWORD).unwrap();
    let plan = format!(
        "mailboxes = \"mailboxes.csv\"\n\n[source]\nhost = \"localhost\"\nport = {}\nca_file = \"{}\"\n\
         master_user = \"master\"\nmaster_password_file = \"master\"\n\n\
         [destination.cyrus]\nkind = \"imap\"\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"plain\"\n",
        source.port_tls(),
        source.ca_pem_path().display(),
        cyrus.port(),
    );
    std::fs::write(dir.path().join("plan.toml"), plan).unwrap();
    std::fs::write(
        dir.path().join("mailboxes.csv"),
        "EmailAddress,UserName,Password,Destination,DestinationUser,DestinationPassword\n\
         bob@contoso.example,bob,,cyrus,bob,new-bob\n",
    )
    .unwrap();
    let plan_path = dir.path().join("plan.toml");

    let first = migrate_plan(&plan_path).await;
    assert!(!first.has_failures(), "{:#?}", first.mailboxes);
    // Cyrus refuses a message whose header section has a line that is neither a field nor a
    // continuation ("Message contains invalid header"): no byte-preserving client can store it,
    // so it must be skipped with Cyrus's reason, never altered and never failing the mailbox.
    let total = first.total();
    let skipped: u64 = total.skipped.values().sum();
    assert!(
        total
            .skipped
            .keys()
            .all(|reason| reason.contains("invalid header") && reason.contains("APPEND")),
        "{:?}",
        total.skipped
    );
    assert_eq!(
        (total.copied + skipped) as usize,
        corpus.len() + generated.len(),
        "{:?}",
        first.mailboxes
    );

    // Byte-identical, with flags (keywords included) and INTERNALDATE, in the same folders;
    // what is missing is exactly what Cyrus refused.
    let src = snapshot(dovecot_endpoint(&source), "bob", "pw-bob").await;
    let dst = snapshot(cyrus_endpoint(&cyrus), "bob", "new-bob").await;
    assert_eq!(
        src.keys().collect::<Vec<_>>(),
        dst.keys().collect::<Vec<_>>(),
        "folders"
    );
    let mut refused = Vec::new();
    for (folder, items) in &src {
        let mut theirs = dst[folder].clone();
        for item in items {
            match theirs.iter().position(|t| t == item) {
                Some(i) => {
                    theirs.remove(i);
                }
                None => refused.push(item.2.clone()),
            }
        }
        assert!(
            theirs.is_empty(),
            "{folder}: {} items at Cyrus differ from the source in bytes, flags or date",
            theirs.len()
        );
    }
    assert_eq!(refused.len() as u64, skipped);
    assert!(
        refused.len() < 10,
        "Cyrus refused {} messages",
        refused.len()
    );
    for raw in &refused {
        assert!(
            has_malformed_header_line(raw),
            "refused but well-formed: {}",
            String::from_utf8_lossy(&raw[..raw.len().min(300)])
        );
    }
    assert!(
        dst["Projekte/Größe"]
            .iter()
            .any(|(_, _, b)| *b == generated[61])
    );
    // Cyrus stores the name as modified UTF-7 under its `/` hierarchy.
    let list = cyrus.raw("bob", "new-bob", "LIST \"\" \"Projekte/*\"");
    assert!(
        list.iter().any(|l| l.ends_with("Projekte/Gr&APYA3w-e")),
        "{list:?}"
    );

    let second = migrate_plan(&plan_path).await;
    assert!(!second.has_failures(), "{:#?}", second.mailboxes);
    assert_eq!(second.total().copied, 0);

    let plan = Plan::load(&plan_path).unwrap();
    let ledger = Ledger::open(&plan.default_state_path()).unwrap();
    let report =
        engine::verify::verify(&plan, Some(&ledger), &plan.select(&[]).unwrap(), true, 2).await;
    assert!(report.perfect, "{:#?}", report.mailboxes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_cyrus_is_read_as_a_source_and_written_under_its_inbox_prefix() {
    // Cyrus 2's layout: delimiter `.`, every personal folder under `INBOX.`.
    let dir = tempfile::tempdir().unwrap();
    let cyrus = Cyrus::start_with(Namespace::Classic);
    let target = Dovecot::start(Layout::Fs);
    cyrus.add_user("carl", "pw-carl");
    target.add_user("carl", "new-carl");
    let msgs = |range: std::ops::Range<usize>| -> Vec<_> {
        range
            .map(|i| {
                let raw = generated_message(i, [900, 6_000, 60_000][i % 3]);
                (raw, flags_for(i), date_for(i))
            })
            .collect()
    };
    cyrus.load("carl", "pw-carl", &["INBOX"], &msgs(0..40));
    cyrus.load("carl", "pw-carl", &["INBOX", "Sent"], &msgs(40..70));
    cyrus.load(
        "carl",
        "pw-carl",
        &["INBOX", "Projekte", "Größe"],
        &msgs(70..100),
    );

    let plan = format!(
        "mailboxes = \"mailboxes.csv\"\n\n[source]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"plain\"\n\n\
         [destination.dove]\nkind = \"imap\"\nhost = \"localhost\"\nport = {}\nca_file = \"{}\"\n",
        cyrus.port(),
        target.port_tls(),
        target.ca_pem_path().display(),
    );
    std::fs::write(dir.path().join("plan.toml"), plan).unwrap();
    std::fs::write(
        dir.path().join("mailboxes.csv"),
        "EmailAddress,UserName,Password,Destination,DestinationUser,DestinationPassword\n\
         carl@contoso.example,carl,pw-carl,dove,carl,new-carl\n",
    )
    .unwrap();
    let plan_path = dir.path().join("plan.toml");
    let first = migrate_plan(&plan_path).await;
    assert!(!first.has_failures(), "{:#?}", first.mailboxes);
    assert_eq!(first.total().copied, 100, "{:?}", first.mailboxes);

    // Same messages in same-named folders. Compared by leaf: where `INBOX.Sent` lands (top level
    // or under the Inbox) is the folder mapper's decision (`translate`), not the IMAP dialect's.
    let by_leaf = |snap: Snapshot| -> Snapshot {
        snap.into_iter()
            .map(|(k, v)| (k.rsplit('/').next().unwrap_or(&k).to_owned(), v))
            .collect()
    };
    let src = by_leaf(snapshot(cyrus_endpoint(&cyrus), "carl", "pw-carl").await);
    let dst = by_leaf(snapshot(dovecot_endpoint(&target), "carl", "new-carl").await);
    assert_eq!(src.keys().collect::<Vec<_>>(), ["Größe", "INBOX", "Sent"]);
    assert_eq!(
        src.keys().collect::<Vec<_>>(),
        dst.keys().collect::<Vec<_>>()
    );
    for (folder, items) in &src {
        assert_eq!(items.len(), 30 + 10 * usize::from(folder == "INBOX"));
        assert!(
            items == &dst[folder],
            "{folder}: flags, dates or bytes differ"
        );
    }
    assert_eq!(migrate_plan(&plan_path).await.total().copied, 0);

    // Written into the classic dialect: new folders go under the personal namespace `INBOX.`.
    let sink = ImapSink::connect(cyrus_endpoint(&cyrus), login("carl", "pw-carl"), 2)
        .await
        .expect("sink");
    assert_eq!(sink.delimiter(), Some('.'));
    let name = sink
        .ensure_folder(&FolderPath::parse("Neu/Größe", Some('/')).unwrap(), None)
        .await
        .expect("folder");
    assert_eq!(name, "INBOX.Neu.Gr&APYA3w-e");
    let batch = msgs(200..210);
    let bodies: Vec<Body> = batch
        .iter()
        .map(|(raw, _, _)| Body::from(raw.clone()))
        .collect();
    let items: Vec<AppendItem> = batch
        .iter()
        .zip(&bodies)
        .map(|((_, flags, date), raw)| AppendItem {
            body: raw,
            flags,
            internal_date: *date,
        })
        .collect();
    let ids: Vec<String> = sink
        .append_batch(&name, &items)
        .await
        .into_iter()
        .map(|r| r.expect("append"))
        .collect();
    let listed = sink.list_items(&name).await.expect("list");
    assert_eq!(listed.iter().map(|i| i.id.clone()).collect::<Vec<_>>(), ids);
    let back = snapshot(cyrus_endpoint(&cyrus), "carl", "pw-carl").await;
    let mut want: Vec<_> = batch
        .iter()
        .map(|(raw, flags, date)| (flags.to_ledger_string(), date.timestamp(), raw.clone()))
        .collect();
    want.sort();
    assert!(
        back["INBOX/Neu/Größe"] == want,
        "bytes, flags or dates differ"
    );
}

fn login(user: &str, password: &str) -> ImapAuth {
    ImapAuth::Login {
        user: user.into(),
        password: Secret::from(password),
    }
}

/// A header-section line that is neither `name:` (printable ASCII name) nor a continuation.
fn has_malformed_header_line(raw: &[u8]) -> bool {
    let head = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(raw, |end| &raw[..end]);
    head.split(|&b| b == b'\n').any(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.starts_with(b" ") || line.starts_with(b"\t") {
            return false;
        }
        let name_len = line.iter().position(|&b| b == b':');
        !name_len.is_some_and(|n| n > 0 && line[..n].iter().all(|b| (0x21..=0x7e).contains(b)))
    })
}
