//! A message over the spool threshold (`body::SPOOL_AT`, 8 MiB) through `migrate` on every route,
//! in CI: Maildir -> Graph by importMime, Maildir -> Graph by JSON with upload sessions,
//! Maildir -> IMAP and IMAP -> IMAP. About 12 MiB, so the body lives in a spool file from the
//! read to the write; the 140 MB message of the soak (`reliability::bad_input`, ignored) is the
//! same path at the size Exchange allows.
//!
//! Each test checks the route really taken (from the emulator's request log, or the destination
//! server), that the destination holds exactly one copy with the same bytes, and that
//! `verify --deep` is perfect.

use std::path::PathBuf;

use mailferry::emulator::{self, EmulatorConfig, EmulatorHandle};

use crate::graph_sink::large::with_attachment;
use crate::migrate::write_maildir;
use crate::reliability::{assert_verify_perfect, imap_bodies};
use crate::support::corpus::{date_for, flags_for, imap_ready};
use crate::support::dovecot::{Dovecot, Layout};
use crate::support::readback::migrate_plan;

/// Attachment size: its base64 with line breaks makes a message of about 12.4 MiB.
const ATTACHMENT: usize = 9 << 20;
/// Request limit for the importMime test: room for that message's base64 (about 16.5 MiB).
const BIG_REQUEST: usize = 24 << 20;

/// The message (CRLF, as Maildir and IMAP serve it) and its attachment's bytes.
fn big_message() -> (Vec<u8>, Vec<u8>) {
    let (raw, data) = with_attachment("spooled.bin", ATTACHMENT);
    assert!(
        raw.len() as u64 > mailferry::body::SPOOL_AT + (4 << 20),
        "{} bytes is well over the spool threshold",
        raw.len()
    );
    (imap_ready(&raw), data)
}

/// A plan file in a fresh directory: Maildir or IMAP source, one destination, one mailbox row.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret"), "demo-secret").unwrap();
        Setup { dir }
    }

    fn tree(&self) -> PathBuf {
        self.dir.path().join("trees").join("big")
    }

    fn write(&self, source_toml: &str, destination_toml: &str, csv: &str) -> PathBuf {
        let plan = format!(
            "mailboxes = \"mailboxes.csv\"\n\n[source]\n{source_toml}\n[destination.dst]\n{destination_toml}"
        );
        let path = self.dir.path().join("plan.toml");
        std::fs::write(&path, plan).unwrap();
        std::fs::write(self.dir.path().join("mailboxes.csv"), csv).unwrap();
        path
    }
}

fn graph_destination(emu: &EmulatorHandle, extra: &str) -> String {
    format!(
        "kind = \"graph\"\ntenant = \"contoso.example\"\nclient_id = \"mailferry-demo\"\n\
         client_secret_file = \"secret\"\ngraph_url = \"{0}\"\nlogin_url = \"{0}\"\n{extra}",
        emu.base_url()
    )
}

fn imap_destination(d: &Dovecot) -> String {
    format!(
        "kind = \"imap\"\nhost = \"localhost\"\nport = {}\nca_file = \"{}\"\n",
        d.port_tls(),
        d.ca_pem_path().display()
    )
}

/// Runs the plan once and checks that exactly the one message was copied.
async fn migrate_one(plan: &std::path::Path) {
    let run = migrate_plan(plan).await;
    assert!(!run.has_failures(), "{:#?}", run.mailboxes);
    let m = &run.mailboxes[0];
    assert_eq!((m.status.as_str(), m.copied), ("ok", 1), "{m:?}");
    // A second run has nothing to do.
    let again = migrate_plan(plan).await;
    assert_eq!(again.total().copied, 0, "{:#?}", again.mailboxes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_12_mib_message_goes_maildir_to_graph_by_import_mime() {
    let (raw, _) = big_message();
    let mut cfg = EmulatorConfig::default();
    cfg.limits.request_body_bytes = BIG_REQUEST;
    let emu = emulator::start(cfg).await.unwrap();
    let s = Setup::new();
    write_maildir(&s.tree(), &[("", vec![(raw.clone(), "S")])]);
    let plan = s.write(
        "kind = \"maildir\"\n",
        &graph_destination(&emu, &format!("max_request_bytes = {BIG_REQUEST}\n")),
        "EmailAddress,UserName,Password,SourcePath\nbig@contoso.example,big,,trees/big\n",
    );
    migrate_one(&plan).await;

    let insp = emu.inspect();
    let imports: Vec<_> = insp
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/importMime"))
        .collect();
    assert_eq!(imports.len(), 1, "one importMime request");
    assert_eq!(imports[0].status, 201);
    assert!(
        imports[0].body_len >= raw.len() / 3 * 4,
        "the whole message went base64 in one request: {} bytes",
        imports[0].body_len
    );
    let view = insp.mailbox("big@contoso.example").unwrap();
    assert_eq!(view.items.len(), 1);
    assert!(!view.items[0].is_draft && view.items[0].is_read);
    let stored = insp
        .raw_mime("big@contoso.example", &view.items[0].id)
        .unwrap();
    assert!(stored == raw, "importMime keeps the message byte for byte");
    assert_verify_perfect(&plan, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_12_mib_message_goes_maildir_to_graph_by_json_and_upload_session() {
    let (raw, data) = big_message();
    let emu = emulator::start(EmulatorConfig::default()).await.unwrap();
    let s = Setup::new();
    write_maildir(&s.tree(), &[("", vec![(raw.clone(), "S")])]);
    let plan = s.write(
        "kind = \"maildir\"\n",
        &graph_destination(&emu, "route = \"json\"\n"),
        "EmailAddress,UserName,Password,SourcePath\nbig@contoso.example,big,,trees/big\n",
    );
    migrate_one(&plan).await;

    let insp = emu.inspect();
    let requests = insp.requests();
    assert!(
        !requests.iter().any(|r| r.path.ends_with("/importMime")),
        "the JSON route never imports MIME"
    );
    let puts: Vec<_> = requests.iter().filter(|r| r.method == "PUT").collect();
    assert!(
        puts.len() >= data.len().div_ceil(4 << 20),
        "{} upload ranges for {} bytes",
        puts.len(),
        data.len()
    );
    assert!(puts.iter().all(|r| r.body_len <= 4 << 20));
    assert_eq!(
        puts.iter().map(|r| r.body_len).sum::<usize>(),
        data.len(),
        "the ranges add up to the decoded attachment"
    );
    let view = insp.mailbox("big@contoso.example").unwrap();
    assert_eq!(view.items.len(), 1);
    let item = &view.items[0];
    assert!(!item.is_draft && item.is_read);
    assert_eq!(item.attachments.len(), 1);
    assert_eq!(item.attachments[0].name, "spooled.bin");
    assert_eq!(item.attachments[0].size, data.len());
    assert_verify_perfect(&plan, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_12_mib_message_goes_maildir_to_imap() {
    let (raw, _) = big_message();
    let target = Dovecot::start(Layout::MaildirPlusPlus);
    target.add_user("big", "pw-big");
    let s = Setup::new();
    write_maildir(&s.tree(), &[("", vec![(raw.clone(), "S")])]);
    let plan = s.write(
        "kind = \"maildir\"\n",
        &imap_destination(&target),
        "EmailAddress,UserName,Password,SourcePath,DestinationUser,DestinationPassword\n\
         big@contoso.example,big,,trees/big,big,pw-big\n",
    );
    migrate_one(&plan).await;

    let bodies = imap_bodies(&target, "big", "pw-big").await;
    assert_eq!(bodies.len(), 1);
    assert!(bodies[0] == raw, "the destination serves the same bytes");
    assert_verify_perfect(&plan, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_12_mib_message_goes_imap_to_imap() {
    let (raw, _) = big_message();
    let source = Dovecot::start(Layout::Fs);
    source.add_user("big", "pw-src");
    source.load(
        "big",
        &["INBOX"],
        &[(raw.clone(), flags_for(1), date_for(1))],
    );
    let target = Dovecot::start(Layout::MaildirPlusPlus);
    target.add_user("big", "pw-dst");
    let s = Setup::new();
    let plan = s.write(
        &format!(
            "host = \"localhost\"\nport = {}\nca_file = \"{}\"\n",
            source.port_tls(),
            source.ca_pem_path().display()
        ),
        &imap_destination(&target),
        "EmailAddress,UserName,Password,DestinationUser,DestinationPassword\n\
         big@contoso.example,big,pw-src,big,pw-dst\n",
    );
    migrate_one(&plan).await;

    let bodies = imap_bodies(&target, "big", "pw-dst").await;
    assert_eq!(bodies.len(), 1);
    assert!(bodies[0] == raw, "the destination serves the same bytes");
    assert_verify_perfect(&plan, None).await;
}
