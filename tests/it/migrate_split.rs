//! A split migration in one plan: some mailboxes to the Graph emulator, others to a second real
//! Dovecot (Maildir++, `.` delimiter) over IMAP, from a Dovecot source with `/` delimiter.

use mailferry::emulator::{self, EmulatorConfig};
use mailferry::engine;
use mailferry::ledger::Ledger;
use mailferry::plan::Plan;

use crate::support::corpus::{corpus_messages, date_for, flags_for, generated_message, imap_ready};
use crate::support::dovecot::{Dovecot, Layout, MASTER_PASSWORD};
use crate::support::readback::{dovecot_endpoint, migrate_plan, snapshot};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_plan_sends_some_mailboxes_to_graph_and_others_to_imap() {
    let dir = tempfile::tempdir().unwrap();
    let source = Dovecot::start(Layout::Fs);
    let target = Dovecot::start(Layout::MaildirPlusPlus);
    let emulator = emulator::start(EmulatorConfig::default()).await.unwrap();
    for u in ["ann", "bob"] {
        source.add_user(u, &format!("pw-{u}"));
    }
    target.add_user("bob", "new-bob");

    let corpus: Vec<Vec<u8>> = corpus_messages().into_iter().map(|(_, m)| m).collect();
    let load = |user: &str, folder: &[&str], msgs: &[Vec<u8>], first: usize| {
        let batch: Vec<_> = msgs
            .iter()
            .enumerate()
            .map(|(i, m)| (m.clone(), flags_for(first + i), date_for(first + i)))
            .collect();
        source.load(user, folder, &batch);
    };
    // Every corpus message (duplicated and missing Message-IDs included) plus 5,000 generated ones.
    let half = corpus.len() / 2;
    load("bob", &["INBOX"], &corpus[..half], 0);
    load("bob", &["Sent"], &corpus[half..], half);
    let generated: Vec<Vec<u8>> = (0..5000)
        .map(|i| generated_message(i, 300 + (i * 37) % 4000))
        .collect();
    load("bob", &["Archiv", "2023"], &generated, 1000);
    load("ann", &["INBOX"], &corpus[..20], 0);

    std::fs::write(dir.path().join("master"), MASTER_PASSWORD).unwrap();
    std::fs::write(dir.path().join("secret"), "demo-secret").unwrap();
    let plan = format!(
        "mailboxes = \"mailboxes.csv\"\n\n[source]\nhost = \"localhost\"\nport = {}\nca_file = \"{}\"\n\
         master_user = \"master\"\nmaster_password_file = \"master\"\n\n\
         [destination.exo]\nkind = \"graph\"\ntenant = \"contoso.example\"\nclient_id = \"mailferry-demo\"\n\
         client_secret_file = \"secret\"\ngraph_url = \"{2}\"\nlogin_url = \"{2}\"\n\n\
         [destination.newhost]\nkind = \"imap\"\nhost = \"localhost\"\nport = {3}\nca_file = \"{4}\"\n",
        source.port_tls(),
        source.ca_pem_path().display(),
        emulator.base_url(),
        target.port_tls(),
        target.ca_pem_path().display(),
    );
    std::fs::write(dir.path().join("plan.toml"), plan).unwrap();
    std::fs::write(
        dir.path().join("mailboxes.csv"),
        "EmailAddress,UserName,Password,Destination,DestinationUser,DestinationPassword\n\
         ann@contoso.example,ann,,exo,,\n\
         bob@contoso.example,bob,,newhost,bob,new-bob\n",
    )
    .unwrap();
    let plan_path = dir.path().join("plan.toml");

    let first = migrate_plan(&plan_path).await;
    assert!(!first.has_failures(), "{:#?}", first.mailboxes);
    let bob = first
        .mailboxes
        .iter()
        .find(|m| m.mailbox.starts_with("bob"))
        .unwrap();
    assert_eq!(
        bob.copied as usize,
        corpus.len() + generated.len(),
        "nothing skipped: {bob:?}"
    );
    let ann_items = emulator
        .inspect()
        .mailbox("ann@contoso.example")
        .unwrap()
        .items
        .len();
    assert_eq!(ann_items, 20);

    // Byte-identical, with flags and INTERNALDATE, in the mapped folders, at the IMAP
    // destination. "Archiv" is German for Archive: it becomes the destination's Archive folder.
    let src = snapshot(dovecot_endpoint(&source), "bob", "pw-bob").await;
    let dst = snapshot(dovecot_endpoint(&target), "bob", "new-bob").await;
    let mapped = |f: &str| f.replace("Archiv/", "Archive/");
    assert_eq!(
        src.keys().map(|k| mapped(k)).collect::<Vec<_>>(),
        dst.keys().cloned().collect::<Vec<_>>()
    );
    for (folder, items) in &src {
        let theirs = &dst[&mapped(folder)];
        assert_eq!(items.len(), theirs.len(), "{folder}");
        assert!(items == theirs, "{folder}: flags, dates or bytes differ");
    }
    // (The source serves CRLF bytes; what was loaded arrives exactly.)
    assert!(
        dst["Archive/2023"]
            .iter()
            .any(|(_, _, b)| *b == imap_ready(&generated[7]))
    );

    let second = migrate_plan(&plan_path).await;
    assert_eq!(second.total().copied, 0);

    let plan = Plan::load(&plan_path).unwrap();
    let ledger = Ledger::open(&plan.default_state_path()).unwrap();
    let report =
        engine::verify::verify(&plan, Some(&ledger), &plan.select(&[]).unwrap(), true, 2).await;
    assert!(report.perfect, "{:#?}", report.mailboxes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_only_xoauth2_takes_its_token_from_the_graph_app() {
    // Exchange Online's IMAP endpoint accepts an app-only token for outlook.office365.com; here
    // the token comes from the emulator and Dovecot (which knows no OAuth) refuses it, which is
    // exactly what must be reported: the mailbox, the mechanism, and never the token.
    let dir = tempfile::tempdir().unwrap();
    let source = Dovecot::start(Layout::Fs);
    source.add_user("ida", "pw-ida");
    let target = Dovecot::start(Layout::Fs);
    let emulator = emulator::start(EmulatorConfig::default()).await.unwrap();
    std::fs::write(dir.path().join("master"), MASTER_PASSWORD).unwrap();
    std::fs::write(dir.path().join("secret"), "demo-secret").unwrap();
    let plan = format!(
        "mailboxes = \"mailboxes.csv\"\n\n[source]\nhost = \"localhost\"\nport = {}\nca_file = \"{}\"\n\
         master_user = \"master\"\nmaster_password_file = \"master\"\n\n\
         [destination.exo]\nkind = \"graph\"\ntenant = \"contoso.example\"\nclient_id = \"mailferry-demo\"\n\
         client_secret_file = \"secret\"\ngraph_url = \"{2}\"\nlogin_url = \"{2}\"\n\n\
         [destination.exo-imap]\nkind = \"imap\"\nhost = \"localhost\"\nport = {3}\nca_file = \"{4}\"\n\
         auth = \"xoauth2\"\noauth_app = \"exo\"\n",
        source.port_tls(),
        source.ca_pem_path().display(),
        emulator.base_url(),
        target.port_tls(),
        target.ca_pem_path().display(),
    );
    std::fs::write(dir.path().join("plan.toml"), plan).unwrap();
    std::fs::write(
        dir.path().join("mailboxes.csv"),
        "EmailAddress,UserName,Password,Destination\nida@contoso.example,ida,,exo-imap\n",
    )
    .unwrap();
    let run = migrate_plan(&dir.path().join("plan.toml")).await;
    let ida = &run.mailboxes[0];
    assert_eq!(ida.status, "failed");
    let err = ida.error.as_deref().unwrap();
    assert!(err.to_ascii_lowercase().contains("auth"), "{err}");
    let tokens = emulator
        .inspect()
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/oauth2/v2.0/token"))
        .count();
    assert_eq!(
        tokens, 1,
        "one app-only token was fetched for the IMAP host"
    );
    assert!(!err.contains("eyJ"), "no token in the error: {err}");

    // A plan naming a Graph destination that does not exist is a plan error naming the key.
    let bad = std::fs::read_to_string(dir.path().join("plan.toml"))
        .unwrap()
        .replace("oauth_app = \"exo\"", "oauth_app = \"nope\"");
    std::fs::write(dir.path().join("plan.toml"), bad).unwrap();
    let e = Plan::load(&dir.path().join("plan.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("oauth_app"), "{e}");
}
