//! IMAP system keywords do not become Outlook categories; Thunderbird's labels become their
//! named categories; user keywords stay categories; the plan's `[keywords]` table overrides the
//! mapping; every keyword not copied is counted. An IMAP destination keeps every keyword.

use std::collections::BTreeMap;

use mailferry::emulator::EmulatorConfig;
use mailferry::model::Flags;

use super::{Rig, summary};
use crate::support::corpus::{date_for, generated_message};
use crate::support::readback::{dovecot_endpoint, snapshot};

const KEYWORDS: [&[&str]; 4] = [
    &["NonJunk", "$label1", "Projekt"],
    &["$Junk", "$MDNSent", "$label4", "\\Seen"],
    &["$NotJunk", "Clients", "$Phishing"],
    &["$label2", "Junk"],
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keywords_map_to_categories_deliberately_and_drops_are_counted() {
    let rig = Rig::new(
        "",
        EmulatorConfig::default(),
        "",
        "[keywords]\n\"$label2\" = \"Acme\"\nClients = false\n",
    )
    .await;
    rig.source.add_user("kat", "pw-kat");
    rig.source.add_user("kim", "pw-kim");
    rig.target.add_user("kim", "new-kim");
    rig.rows(
        "EmailAddress,UserName,Password,Destination,DestinationUser,DestinationPassword\n\
         kat@contoso.example,kat,,exo,,\nkim@contoso.example,kim,,newhost,kim,new-kim\n",
    );
    let msgs: Vec<_> = KEYWORDS
        .iter()
        .enumerate()
        .map(|(i, k)| {
            (
                generated_message(i, 300),
                Flags::from_atoms(k.iter().copied()),
                date_for(i),
            )
        })
        .collect();
    rig.source.load("kat", &["INBOX"], &msgs);
    rig.source.load("kim", &["INBOX"], &msgs);
    let run = rig.migrate().await;
    assert!(!run.has_failures(), "{:#?}", run.mailboxes);

    let view = rig
        .emulator
        .inspect()
        .mailbox("kat@contoso.example")
        .unwrap();
    let mut got = BTreeMap::new();
    for item in &view.items {
        let id = item.internet_message_id.clone().unwrap_or_default();
        let mut cats = item.categories.clone();
        cats.sort();
        got.insert(id, cats);
    }
    let want: BTreeMap<String, Vec<String>> = [
        (0, vec!["Important", "Projekt"]),
        (1, vec!["To Do"]),
        (2, vec![]),
        (3, vec!["Acme"]),
    ]
    .into_iter()
    .map(|(i, c)| {
        (
            format!("<gen-{i}@mailferry.test>"),
            c.into_iter().map(String::from).collect(),
        )
    })
    .collect();
    assert_eq!(got, want);

    let kat = summary(&run, "kat");
    let dropped: BTreeMap<&str, u64> = kat
        .keywords_dropped
        .iter()
        .map(|(k, n)| (k.as_str(), *n))
        .collect();
    assert_eq!(
        dropped,
        BTreeMap::from([
            ("$Junk", 1),
            ("$MDNSent", 1),
            ("$NotJunk", 1),
            ("$Phishing", 1),
            ("Clients", 1),
            ("Junk", 1),
            ("NonJunk", 1),
        ])
    );
    let text = mailferry::report::table::run_summary(&run);
    assert!(text.contains("keywords not made categories"), "{text}");

    // IMAP to IMAP: keywords are the destination's own language; every one arrives.
    let kim = summary(&run, "kim");
    assert!(kim.keywords_dropped.is_empty(), "{kim:?}");
    let snap = snapshot(dovecot_endpoint(&rig.target), "kim", "new-kim").await;
    let mut flags: Vec<String> = snap.into_values().flatten().map(|(f, _, _)| f).collect();
    flags.sort();
    let mut want: Vec<String> = KEYWORDS
        .iter()
        .map(|k| Flags::from_atoms(k.iter().copied()).to_ledger_string())
        .collect();
    want.sort();
    assert_eq!(flags, want);
}
