//! `migrate`, `survey` and `verify` with a real Dovecot source and the Graph emulator as the
//! destination: several mailboxes, master logins, incremental passes, a UIDVALIDITY reset, a
//! refused login, an item too large, and the survey's counts against STATUS.

use std::path::PathBuf;

use mailferry::emulator::{self, EmulatorConfig, EmulatorHandle};
use mailferry::engine;
use mailferry::ledger::Ledger;
use mailferry::model::Flags;
use mailferry::plan::Plan;
use mailferry::report::{MailboxSummary, RunSummary};

use crate::support::corpus::{corpus_messages, date_for, flags_for, generated_message};
use crate::support::dovecot::{Dovecot, Layout, MASTER_PASSWORD};

pub struct ImapRig {
    pub dir: tempfile::TempDir,
    pub dovecot: Dovecot,
    pub emulator: EmulatorHandle,
    pub plan_path: PathBuf,
}

impl ImapRig {
    /// Users log in through the master user (AUTHENTICATE PLAIN with authzid); `extra_toml` is
    /// appended to the plan.
    pub async fn new(layout: Layout, users: &[&str], csv_rows: &str, extra_toml: &str) -> ImapRig {
        Self::build(
            layout,
            users,
            csv_rows,
            extra_toml,
            EmulatorConfig::default(),
        )
        .await
    }

    /// A rig whose emulator runs with `config` (latency, faults, limits).
    pub async fn with_emulator(layout: Layout, users: &[&str], config: EmulatorConfig) -> ImapRig {
        Self::build(layout, users, "", "", config).await
    }

    async fn build(
        layout: Layout,
        users: &[&str],
        csv_rows: &str,
        extra_toml: &str,
        config: EmulatorConfig,
    ) -> ImapRig {
        let dir = tempfile::tempdir().unwrap();
        let dovecot = Dovecot::start(layout);
        for u in users {
            dovecot.add_user(u, &format!("pw-{u}"));
        }
        let emulator = emulator::start(config).await.unwrap();
        std::fs::write(dir.path().join("master"), MASTER_PASSWORD).unwrap();
        std::fs::write(dir.path().join("secret"), "demo-secret").unwrap();
        let plan = format!(
            "mailboxes = \"mailboxes.csv\"\n\n[source]\nhost = \"localhost\"\nport = {}\nsecurity = \"tls\"\n\
             ca_file = \"{}\"\nmaster_user = \"master\"\nmaster_password_file = \"master\"\n\n\
             [destination.exo]\nkind = \"graph\"\ntenant = \"contoso.example\"\nclient_id = \"mailferry-demo\"\n\
             client_secret_file = \"secret\"\ngraph_url = \"{2}\"\nlogin_url = \"{2}\"\n{extra_toml}",
            dovecot.port_tls(),
            dovecot.ca_pem_path().display(),
            emulator.base_url()
        );
        let mut csv = String::from("EmailAddress,UserName,Password\n");
        for u in users {
            csv.push_str(&format!("{u}@contoso.example,{u},\n"));
        }
        csv.push_str(csv_rows);
        std::fs::write(dir.path().join("mailboxes.csv"), csv).unwrap();
        let plan_path = dir.path().join("plan.toml");
        std::fs::write(&plan_path, plan).unwrap();
        ImapRig {
            dir,
            dovecot,
            emulator,
            plan_path,
        }
    }

    pub fn plan(&self) -> Plan {
        Plan::load(&self.plan_path).unwrap()
    }

    pub async fn migrate(&self) -> RunSummary {
        crate::support::readback::migrate_plan(&self.plan_path).await
    }

    pub fn items(&self, user: &str) -> usize {
        self.emulator
            .inspect()
            .mailbox(&format!("{user}@contoso.example"))
            .map(|m| m.items.len())
            .unwrap_or(0)
    }
}

fn summary<'a>(run: &'a RunSummary, user: &str) -> &'a MailboxSummary {
    run.mailboxes
        .iter()
        .find(|m| m.mailbox.starts_with(user))
        .unwrap()
}

fn load(d: &Dovecot, user: &str, folder: &[&str], msgs: &[Vec<u8>], first: usize) {
    let batch: Vec<_> = msgs
        .iter()
        .enumerate()
        .map(|(i, m)| (m.clone(), flags_for(first + i), date_for(first + i)))
        .collect();
    d.load(user, folder, &batch);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_mailbox_plan_migrates_then_reruns_incrementally() {
    let rig = ImapRig::new(Layout::Fs, &["ann", "bob"], "", "").await;
    let corpus: Vec<Vec<u8>> = corpus_messages()
        .into_iter()
        .map(|(_, m)| m)
        .take(60)
        .collect();
    load(&rig.dovecot, "ann", &["INBOX"], &corpus[..30], 0);
    load(&rig.dovecot, "ann", &["Sent"], &corpus[30..40], 30);
    load(
        &rig.dovecot,
        "ann",
        &["Projekte", "Größe", "2024"],
        &corpus[40..],
        40,
    );
    let generated: Vec<Vec<u8>> = (0..25).map(|i| generated_message(i, 4000)).collect();
    load(&rig.dovecot, "bob", &["INBOX"], &generated, 0);

    let first = rig.migrate().await;
    assert!(!first.has_failures(), "{:#?}", first.mailboxes);
    let ann = summary(&first, "ann");
    // \Deleted messages are skipped by default (flags_for never sets it), everything else copied.
    assert_eq!((ann.copied, summary(&first, "bob").copied), (60, 25));
    assert_eq!((rig.items("ann"), rig.items("bob")), (60, 25));
    // No item is a draft unless its source was (flags_for sets \Draft on every 13th).
    let view = rig
        .emulator
        .inspect()
        .mailbox("bob@contoso.example")
        .unwrap();
    let drafts = view.items.iter().filter(|i| i.is_draft).count();
    assert_eq!(drafts, (0..25).filter(|i| flags_for(*i).draft).count());
    let read = view.items.iter().filter(|i| i.is_read).count();
    assert_eq!(read, (0..25).filter(|i| flags_for(*i).seen).count());

    // Nothing changed: a no-op that skips unchanged folders through CONDSTORE.
    let second = rig.migrate().await;
    let t = second.total();
    assert_eq!((t.copied, t.already_present), (0, 85));
    assert!(t.folders_unchanged >= 4, "{t:?}");

    // New mail and a flag change at the source arrive on the next run.
    load(
        &rig.dovecot,
        "bob",
        &["INBOX"],
        &[generated_message(100, 500)],
        100,
    );
    let f = Flags {
        flagged: true,
        ..Flags::default()
    };
    rig.dovecot.store_flags("bob", &["INBOX"], 2, &f);
    let third = rig.migrate().await;
    let bob = summary(&third, "bob");
    assert_eq!((bob.copied, bob.flags_updated), (1, 1), "{bob:?}");
    assert_eq!(rig.items("bob"), 26);

    let plan = rig.plan();
    let ledger = Ledger::open(&plan.default_state_path()).unwrap();
    let report =
        engine::verify::verify(&plan, Some(&ledger), &plan.select(&[]).unwrap(), true, 2).await;
    assert!(report.perfect, "{:#?}", report.mailboxes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_uidvalidity_reset_is_rematched_by_content_not_uploaded_again() {
    let rig = ImapRig::new(Layout::MaildirPlusPlus, &["cat"], "", "").await;
    let msgs: Vec<Vec<u8>> = (0..12).map(|i| generated_message(i, 1500)).collect();
    // Two identical messages: two items at the source, two at the destination.
    let mut with_twin = msgs.clone();
    with_twin.push(msgs[0].clone());
    load(&rig.dovecot, "cat", &["Archiv"], &with_twin, 0);
    let first = rig.migrate().await;
    assert_eq!(summary(&first, "cat").copied, 13);

    rig.dovecot.delete_folder("cat", &["Archiv"]);
    load(&rig.dovecot, "cat", &["Archiv"], &with_twin, 0);
    let second = rig.migrate().await;
    let cat = summary(&second, "cat");
    assert_eq!((cat.copied, cat.already_present), (0, 13), "{cat:?}");
    assert_eq!(rig.items("cat"), 13);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_login_and_a_too_large_item_do_not_stop_the_rest() {
    // dan logs in with his own (wrong) password instead of the master user.
    let rig = ImapRig::new(
        Layout::Fs,
        &["eli"],
        "",
        "\n[limits]\nmax_message_bytes = 20000\n",
    )
    .await;
    std::fs::write(
        rig.dir.path().join("mailboxes.csv"),
        "EmailAddress,UserName,Password\neli@contoso.example,eli,\ndan@contoso.example,dan*nobody,wrong\n",
    )
    .unwrap();
    let msgs: Vec<Vec<u8>> = vec![
        generated_message(1, 2000),
        generated_message(2, 60_000),
        generated_message(3, 3000),
    ];
    load(&rig.dovecot, "eli", &["INBOX"], &msgs, 0);
    let run = rig.migrate().await;
    let eli = summary(&run, "eli");
    assert_eq!(eli.copied, 2);
    assert_eq!(eli.skipped_total(), 1);
    assert!(
        eli.skipped.keys().next().unwrap().contains("larger than"),
        "{:?}",
        eli.skipped
    );
    let dan = summary(&run, "dan");
    assert_eq!(dan.status, "failed");
    let err = dan.error.as_deref().unwrap();
    assert!(err.contains("dan"), "the error names the login: {err}");
    assert!(
        !err.contains("wrong"),
        "the error never shows the password: {err}"
    );
    assert!(run.has_failures());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survey_counts_equal_status_and_renames_are_reported() {
    let rig = ImapRig::new(Layout::MaildirPlusPlus, &["fox"], "", "").await;
    let corpus: Vec<Vec<u8>> = corpus_messages()
        .into_iter()
        .map(|(_, m)| m)
        .take(40)
        .collect();
    load(&rig.dovecot, "fox", &["INBOX"], &corpus[..20], 0);
    load(&rig.dovecot, "fox", &["Kunden/Alt"], &corpus[20..30], 20);
    load(
        &rig.dovecot,
        "fox",
        &["a", "b", "c", "d", "e", "f", "g"],
        &corpus[30..],
        30,
    );
    let plan = rig.plan();
    let report = engine::survey::survey(&plan, &plan.select(&[]).unwrap(), 2).await;
    let fox = &report.mailboxes[0];
    assert_eq!(fox.status, "ok", "{fox:?}");
    assert_eq!(fox.messages, 40);
    for f in &fox.folders {
        assert_eq!(f.messages, f.server_count, "{f:?}");
    }
    let status_bytes: u64 = corpus
        .iter()
        .map(|m| crate::support::corpus::imap_ready(m).len() as u64)
        .sum();
    assert_eq!(fox.bytes, status_bytes);
    let slash = fox
        .folders
        .iter()
        .find(|f| f.source.contains("Kunden"))
        .unwrap();
    assert!(
        !slash.changes.is_empty(),
        "a '/' inside a name is renamed and reported: {slash:?}"
    );
    assert!(fox.estimated_seconds.is_some());
}
