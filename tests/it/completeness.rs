//! Nothing lost in silence: every file of a Maildir tree is accounted for (taken, skipped with a
//! reason, or reported as not accounted for with exit 1), and `migrate --repair` brings back what
//! the destination lost (Graph emulator and a real Dovecot as destinations), exactly once.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;

use mailferry::engine::connect::Connector;
use mailferry::engine::ports::{MailSink, MailSource};
use mailferry::engine::{self, MigrateOptions};
use mailferry::ledger::Ledger;
use mailferry::plan::Plan;
use mailferry::report::RunSummary;

use crate::migrate::{Rig, generated, write_maildir};
use crate::support::dovecot::{Dovecot, Layout};

/// A Maildir++ tree with what a real host accumulates beside the folders: a `.Inbox` folder, a
/// directory that is no folder of the layout, a file name that is not UTF-8, an empty file, and
/// a delivery still in `tmp/`.
fn messy_tree(root: &Path) {
    write_maildir(
        root,
        &[
            ("", (0..3).map(|i| (generated(i, 500), "S")).collect()),
            ("Inbox", (10..12).map(|i| (generated(i, 500), "")).collect()),
            (
                "Archive",
                (20..22).map(|i| (generated(i, 500), "")).collect(),
            ),
        ],
    );
    std::fs::create_dir_all(root.join("Stray/cur")).unwrap();
    std::fs::write(
        root.join("Stray/cur/1700000099.M1P1.host:2,S"),
        generated(30, 300),
    )
    .unwrap();
    let bad = std::ffi::OsStr::from_bytes(b"1700000098.M1P1.h\xffst:2,S");
    std::fs::write(root.join("cur").join(bad), generated(31, 300)).unwrap();
    std::fs::write(root.join("cur/1700000097.M1P1.host:2,S"), b"").unwrap();
    std::fs::write(root.join("tmp/1700000096.M1P1.host"), generated(32, 300)).unwrap();
}

async fn verify(rig: &Rig) -> engine::verify::VerifyReport {
    let plan = Plan::load(&rig.plan_path).unwrap();
    let ledger = Ledger::open(&plan.default_state_path()).unwrap();
    let selected = plan.select(&[]).unwrap();
    engine::verify::verify(&plan, Some(&ledger), &selected, true, 1).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_file_of_a_messy_tree_is_accounted_for_by_survey_and_migrate() {
    let rig = Rig::new(&["ann"], Default::default()).await;
    messy_tree(&rig.tree("ann"));

    let plan = Plan::load(&rig.plan_path).unwrap();
    let selected = plan.select(&[]).unwrap();
    let survey = engine::survey::survey(&plan, &selected, 1).await;
    let acc = survey.mailboxes[0].accounting.clone().expect("accounting");
    assert_eq!(acc.unit, "message files");
    assert_eq!(acc.total, 11, "{acc:#?}");
    assert_eq!(acc.taken, 7, "INBOX, .Inbox and Archive: {acc:#?}");
    let reason = |list: &[mailferry::source::accounting::NotTaken], part: &str| {
        list.iter()
            .find(|n| n.what.contains(part))
            .map(|n| n.reason.clone())
            .unwrap_or_else(|| panic!("{part} not reported: {list:#?}"))
    };
    assert!(reason(&acc.skipped, "tmp/1700000096").contains("tmp/"));
    assert!(reason(&acc.skipped, "1700000097").contains("empty"));
    assert!(reason(&acc.unaccounted, "Stray/cur").contains("not a folder"));
    assert!(reason(&acc.unaccounted, "h\u{fffd}st").contains("not UTF-8"));
    assert_eq!(acc.unaccounted.len(), 2);

    // The survey command says so and fails with the paths.
    let out = Command::new(env!("CARGO_BIN_EXE_mailferry"))
        .args(["survey", "--plan"])
        .arg(&rig.plan_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("2 not accounted for"), "{stdout}");
    assert!(stdout.contains("Stray/cur/1700000099"), "{stdout}");
    assert!(stdout.contains("skipped 1: in tmp/"), "{stdout}");

    // migrate copies every message taken (.Inbox included) and reports the same accounting.
    let run: RunSummary = rig.migrate(MigrateOptions::default()).await;
    let ann = &run.mailboxes[0];
    assert_eq!(ann.copied, 7, "{ann:#?}");
    assert_eq!(ann.accounting.as_deref(), Some(&acc));
    assert!(run.has_failures(), "mail nobody takes is an error");
    assert_eq!(rig.items("ann").len(), 7);
}

/// Removes up to `n` items (all when `None`) from every destination folder the plan maps to.
async fn delete_at_destination(plan_path: &Path, n: Option<usize>) -> usize {
    let plan = Plan::load(plan_path).unwrap();
    let connector = Connector::new(&plan);
    let mut removed = 0;
    for mb in plan.select(&[]).unwrap() {
        let (mut src, sink, mapper) = connector.open(mb).await.unwrap();
        let folders = src.list_folders().await.unwrap();
        for m in mapper.map(&folders) {
            let Some(target) = &m.target else { continue };
            let dest = sink.ensure_folder(target).await.unwrap();
            for item in sink.list_items(&dest).await.unwrap() {
                if n.is_some_and(|n| removed >= n) {
                    break;
                }
                sink.remove(&dest, &item.id).await.unwrap();
                removed += 1;
            }
        }
        src.close().await;
    }
    removed
}

fn repair() -> MigrateOptions {
    MigrateOptions {
        repair: true,
        ..MigrateOptions::default()
    }
}

fn missing(v: &engine::verify::VerifyReport) -> usize {
    v.mailboxes.iter().map(|m| m.missing.len()).sum()
}

/// Items in the mailbox's visible folders (Graph's DELETE moves an item to the hidden
/// Recoverable Items).
fn live_items(rig: &Rig, mailbox: &str) -> usize {
    let insp = rig.emulator.inspect();
    let view = insp
        .mailbox(&format!("{mailbox}@contoso.example"))
        .expect("mailbox");
    view.folders
        .iter()
        .filter(|f| !f.is_hidden)
        .map(|f| view.items_in(&f.path).len())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_brings_back_deleted_and_wiped_items_at_graph_exactly_once() {
    let rig = Rig::new(&["bea"], Default::default()).await;
    write_maildir(
        &rig.tree("bea"),
        &[
            ("", (0..10).map(|i| (generated(i, 800), "S")).collect()),
            (
                "Archive",
                (10..14).map(|i| (generated(i, 800), "")).collect(),
            ),
        ],
    );
    let first = rig.migrate(MigrateOptions::default()).await;
    assert_eq!(first.total().copied, 14);
    assert!(verify(&rig).await.perfect);

    assert_eq!(delete_at_destination(&rig.plan_path, Some(5)).await, 5);
    let v = verify(&rig).await;
    assert!(!v.perfect);
    assert_eq!(missing(&v), 5, "{v:#?}");
    // A plain re-run trusts the ledger: nothing comes back.
    assert_eq!(
        rig.migrate(MigrateOptions::default()).await.total().copied,
        0
    );

    let r = rig.migrate(repair()).await;
    assert_eq!((r.total().repaired, r.total().copied), (5, 5), "{r:#?}");
    assert!(verify(&rig).await.perfect);
    assert_eq!(live_items(&rig, "bea"), 14, "no duplicates");

    // A destination emptied completely is repopulated.
    assert_eq!(delete_at_destination(&rig.plan_path, None).await, 14);
    let r = rig.migrate(repair()).await;
    assert_eq!((r.total().repaired, r.total().copied), (14, 14));
    assert!(verify(&rig).await.perfect);
    assert_eq!(live_items(&rig, "bea"), 14);
    // And a second repair finds nothing to do.
    let r = rig.migrate(repair()).await;
    assert_eq!((r.total().repaired, r.total().copied), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_brings_back_deleted_and_wiped_items_at_an_imap_destination() {
    let rig = Rig::new(&["cid"], Default::default()).await;
    let target = Dovecot::start(Layout::Fs);
    target.add_user("cid", "new-cid");
    imap_destination(&rig, &target, "cid", "new-cid");
    write_maildir(
        &rig.tree("cid"),
        &[
            ("", (0..10).map(|i| (generated(i, 800), "S")).collect()),
            (
                "Archive",
                (10..14).map(|i| (generated(i, 800), "")).collect(),
            ),
        ],
    );
    let first = rig.migrate(MigrateOptions::default()).await;
    assert_eq!(first.total().copied, 14, "{first:#?}");
    assert!(verify(&rig).await.perfect);

    assert_eq!(delete_at_destination(&rig.plan_path, Some(5)).await, 5);
    let v = verify(&rig).await;
    assert_eq!(missing(&v), 5, "{v:#?}");
    let r = rig.migrate(repair()).await;
    assert_eq!((r.total().repaired, r.total().copied), (5, 5), "{r:#?}");
    assert!(verify(&rig).await.perfect);

    // Wiped: the folder deleted (a new UIDVALIDITY when it comes back) and INBOX emptied.
    target.delete_folder("cid", &["Archive"]);
    delete_at_destination(&rig.plan_path, None).await;
    let r = rig.migrate(repair()).await;
    assert_eq!((r.total().repaired, r.total().copied), (14, 14), "{r:#?}");
    let v = verify(&rig).await;
    assert!(v.perfect, "{v:#?}");
    let r = rig.migrate(repair()).await;
    assert_eq!((r.total().repaired, r.total().copied), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_after_a_windowed_pass_counts_done_rows_and_names_the_rest_not_yet_copied() {
    let rig = Rig::new(&["dan"], Default::default()).await;
    let root = rig.tree("dan");
    write_maildir(
        &root,
        &[("", (0..6).map(|i| (generated(i, 600), "S")).collect())],
    );
    // Three old messages (INTERNALDATE is the file's mtime), three recent.
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_577_836_800);
    let mut files: Vec<_> = std::fs::read_dir(root.join("cur"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in &files[..3] {
        std::fs::File::options()
            .write(true)
            .open(f)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    let since = chrono::DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
        .unwrap()
        .to_utc();
    let windowed = rig
        .migrate(MigrateOptions {
            since: Some(since),
            ..MigrateOptions::default()
        })
        .await;
    assert_eq!(windowed.total().copied, 3);
    let v = verify(&rig).await;
    let dan = &v.mailboxes[0];
    assert_eq!(dan.folders[0].ledger_done, 3, "{dan:#?}");
    assert_eq!(dan.missing.len(), 3);
    assert!(
        dan.missing.iter().all(|d| d.kind == "not-yet-copied"),
        "{dan:#?}"
    );
    assert!(
        dan.reasons
            .iter()
            .any(|r| r.starts_with("3 not yet copied")),
        "{:?}",
        dan.reasons
    );
    assert!(
        !dan.reasons
            .iter()
            .any(|r| r.contains("missing at the destination")),
        "{:?}",
        dan.reasons
    );
    rig.migrate(MigrateOptions::default()).await;
    assert!(verify(&rig).await.perfect);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_verify_counts_the_tree_itself_and_the_destination_listing() {
    let rig = Rig::new(&["eve"], Default::default()).await;
    let target = Dovecot::start(Layout::Fs);
    target.add_user("eve", "new-eve");
    imap_destination(&rig, &target, "eve", "new-eve");
    write_maildir(
        &rig.tree("eve"),
        &[("", (0..4).map(|i| (generated(i, 700), "S")).collect())],
    );
    assert_eq!(
        rig.migrate(MigrateOptions::default()).await.total().copied,
        4
    );
    assert!(verify(&rig).await.perfect);
    // Something the ledger knows nothing of lands in the destination folder: the ledger and the
    // reader agree, the destination's own listing does not.
    let stranger = (
        generated(99, 400),
        mailferry::model::Flags::default(),
        chrono::DateTime::parse_from_rfc3339("2024-02-01T00:00:00Z").unwrap(),
    );
    target.load("eve", &["INBOX"], &[stranger]);
    let v = verify(&rig).await;
    assert!(!v.perfect);
    assert!(
        v.mailboxes[0]
            .reasons
            .iter()
            .any(|r| r.starts_with("independent count: 4 message files on disk")),
        "{:?}",
        v.mailboxes[0].reasons
    );
}

/// Points the rig's plan at an IMAP destination on `target`.
fn imap_destination(rig: &Rig, target: &Dovecot, user: &str, password: &str) {
    let plan = format!(
        "mailboxes = \"mailboxes.csv\"\n\n[source]\nkind = \"maildir\"\n\n\
         [destination.newhost]\nkind = \"imap\"\nhost = \"localhost\"\nport = {}\nca_file = \"{}\"\n",
        target.port_tls(),
        target.ca_pem_path().display(),
    );
    std::fs::write(&rig.plan_path, plan).unwrap();
    std::fs::write(
        rig.dir.path().join("mailboxes.csv"),
        format!(
            "EmailAddress,UserName,Password,SourcePath,Destination,DestinationUser,DestinationPassword\n\
             {user}@contoso.example,{user},,trees/{user},newhost,{user},{password}\n"
        ),
    )
    .unwrap();
}

fn cli(args: &[&str], plan: &Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mailferry"))
        .args(args)
        .arg("--plan")
        .arg(plan)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_calls_a_run_whose_process_is_gone_interrupted() {
    let rig = Rig::new(&["gil"], Default::default()).await;
    let plan = Plan::load(&rig.plan_path).unwrap();
    let state = plan.default_state_path();
    // A run that started and never finished: its process was killed.
    Ledger::open(&state).unwrap().start_run("migrate").unwrap();
    let (code, out) = cli(&["status"], &rig.plan_path);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("interrupted"), "{out}");
    assert!(!out.contains("running"), "{out}");
    // While a live run holds the lock, it is running.
    let lock = Ledger::lock_run(&state).unwrap();
    let (_, out) = cli(&["status"], &rig.plan_path);
    assert!(out.contains("running"), "{out}");
    drop(lock);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_zero_is_a_usage_error() {
    let rig = Rig::new(&["hal"], Default::default()).await;
    for cmd in ["survey", "migrate", "verify"] {
        let (code, out) = cli(&[cmd, "--concurrency", "0"], &rig.plan_path);
        assert_eq!(code, Some(2), "{cmd}: {out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_verify_counts_an_imap_source_by_status_against_the_destination() {
    let source = Dovecot::start(Layout::Fs);
    let target = Dovecot::start(Layout::MaildirPlusPlus);
    source.add_user("ida", "pw-ida");
    target.add_user("ida", "new-ida");
    let msgs: Vec<_> = (0..4)
        .map(|i| {
            (
                generated(i, 600),
                mailferry::model::Flags::default(),
                chrono::DateTime::parse_from_rfc3339("2024-03-01T00:00:00Z").unwrap(),
            )
        })
        .collect();
    source.load("ida", &["INBOX"], &msgs);
    source.load("ida", &["Projects", "2019"], &msgs[..2]);
    let dir = tempfile::tempdir().unwrap();
    let plan = format!(
        "mailboxes = \"mailboxes.csv\"\n\n[source]\nhost = \"localhost\"\nport = {}\nca_file = \"{}\"\n\n\
         [destination.newhost]\nkind = \"imap\"\nhost = \"localhost\"\nport = {}\nca_file = \"{}\"\n",
        source.port_tls(),
        source.ca_pem_path().display(),
        target.port_tls(),
        target.ca_pem_path().display(),
    );
    let plan_path = dir.path().join("plan.toml");
    std::fs::write(&plan_path, plan).unwrap();
    std::fs::write(
        dir.path().join("mailboxes.csv"),
        "EmailAddress,UserName,Password,Destination,DestinationUser,DestinationPassword\n\
         ida@contoso.example,ida,pw-ida,newhost,ida,new-ida\n",
    )
    .unwrap();
    let (code, out) = cli(&["migrate"], &plan_path);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = cli(&["verify", "--deep"], &plan_path);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("0 not accounted for") && out.contains("skipped 1: \\Noselect"),
        "every LIST entry accounted for (Projects is a container): {out}"
    );
    // A message the ledger knows nothing of arrives in a migrated destination folder.
    target.load("ida", &["INBOX"], &msgs[..1]);
    let (code, out) = cli(&["verify", "--deep"], &plan_path);
    assert_eq!(code, Some(4), "{out}");
    assert!(
        out.contains("independent count: 4 messages by STATUS in INBOX"),
        "{out}"
    );
}
