//! `UserRoot`: on a server whose administrator sees every user's mail in one shared namespace,
//! each row reads only its own subtree, whose root is the user's INBOX, as Exchange's IMAP
//! importer does. Dovecot with a public (RFC 2342 "shared") namespace `users/`.

use std::collections::BTreeMap;

use mailferry::emulator::EmulatorConfig;
use mailferry::model::Flags;

use super::Rig;
use crate::support::corpus::{date_for, generated_message};

/// A public namespace under `users/`, beside every user's home.
const SHARED: &str = "namespace shared {\n  type = public\n  separator = /\n  prefix = users/\n  \
                      location = maildir:~/../public:LAYOUT=fs\n  list = yes\n  subscriptions = no\n}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_row_reads_only_its_user_root_subtree() {
    let rig = Rig::new(SHARED, EmulatorConfig::default(), "", "").await;
    rig.source.add_user("adm", "pw-adm");
    let msg = |i: usize| vec![(generated_message(i, 300), Flags::default(), date_for(i))];
    rig.source.load("adm", &["INBOX"], &msg(0));
    rig.source.load("adm", &["users", "ann"], &msg(1));
    rig.source.load("adm", &["users", "ann", "Work"], &msg(2));
    rig.source.load("adm", &["users", "annabel"], &msg(3));
    rig.source
        .load("adm", &["users", "annabel", "Work"], &msg(4));
    rig.source.load("adm", &["users", "bob"], &msg(5));
    rig.rows(
        "EmailAddress,UserName,Password,UserRoot,Destination\n\
         ann@contoso.example,adm,,/users/ann,exo\nbob@contoso.example,adm,,users/bob,exo\n",
    );
    let run = rig.migrate().await;
    assert!(!run.has_failures(), "{:#?}", run.mailboxes);

    let insp = rig.emulator.inspect();
    let at = |address: &str| -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for i in insp.mailbox(address).unwrap().items {
            out.entry(i.folder_path.clone())
                .or_default()
                .push(i.internet_message_id.clone().unwrap_or_default());
        }
        out
    };
    let id = |i: usize| format!("<gen-{i}@mailferry.test>");
    assert_eq!(
        at("ann@contoso.example"),
        BTreeMap::from([
            ("Inbox".to_owned(), vec![id(1)]),
            ("Work".to_owned(), vec![id(2)]),
        ])
    );
    assert_eq!(
        at("bob@contoso.example"),
        BTreeMap::from([("Inbox".to_owned(), vec![id(5)])])
    );
    let report = rig.verify().await;
    assert!(report.perfect, "{:#?}", report.mailboxes);
}
