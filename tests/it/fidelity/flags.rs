//! A flag removed at the source is removed at the destination, on both sinks: `\Answered`,
//! `$Forwarded`, `\Flagged`, `\Seen` and a user keyword, each added and then taken away.

use std::collections::BTreeMap;

use mailferry::emulator::{EmulatorConfig, EmulatorHandle};
use mailferry::model::Flags;

use super::{Rig, summary};
use crate::support::corpus::{date_for, generated_message};
use crate::support::readback::{dovecot_endpoint, snapshot};

/// What each of the five messages carries once its flag is on.
const ON: [&str; 5] = ["\\Answered", "$Forwarded", "\\Flagged", "\\Seen", "Work"];

fn message_id(i: usize) -> String {
    format!("<gen-{i}@mailferry.test>")
}

/// Per message (by index): the state Outlook shows, as text.
fn graph_state(emu: &EmulatorHandle, address: &str) -> BTreeMap<usize, String> {
    let view = emu.inspect().mailbox(address).expect("mailbox");
    let mut out = BTreeMap::new();
    for item in &view.items {
        let Some(i) =
            (0..ON.len()).find(|i| item.internet_message_id.as_deref() == Some(&message_id(*i)))
        else {
            continue;
        };
        let ext = |id: &str| {
            item.extended_properties
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(id))
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let mut s = Vec::new();
        match ext("Integer 0x1081").as_str() {
            "102" => s.push("replied".to_owned()),
            "104" => s.push("forwarded".to_owned()),
            _ => {}
        }
        if matches!(ext("Integer 0x1080").as_str(), "261" | "262") {
            s.push("verb-icon".to_owned());
        }
        if item.flag_status == "flagged" {
            s.push("flagged".into());
        }
        if item.is_read {
            s.push("read".into());
        }
        s.extend(item.categories.iter().map(|c| format!("category:{c}")));
        out.insert(i, s.join(" "));
    }
    out
}

/// Per message (by index): its IMAP flags at the destination.
async fn imap_state(rig: &Rig, user: &str, password: &str) -> BTreeMap<usize, String> {
    let snap = snapshot(dovecot_endpoint(&rig.target), user, password).await;
    let mut out = BTreeMap::new();
    for (flags, _, bytes) in snap.into_values().flatten() {
        let text = String::from_utf8_lossy(&bytes);
        if let Some(i) = (0..ON.len()).find(|i| text.contains(&message_id(*i))) {
            out.insert(i, flags);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_added_then_removed_at_the_source_follow_on_graph_and_imap() {
    let rig = Rig::new("", EmulatorConfig::default(), "", "").await;
    rig.source.add_user("gra", "pw-gra");
    rig.source.add_user("imp", "pw-imp");
    rig.target.add_user("imp", "new-imp");
    rig.rows(
        "EmailAddress,UserName,Password,Destination,DestinationUser,DestinationPassword\n\
         gra@contoso.example,gra,,exo,,\nimp@contoso.example,imp,,newhost,imp,new-imp\n",
    );
    let msgs: Vec<_> = (0..ON.len())
        .map(|i| (generated_message(i, 400), Flags::default(), date_for(i)))
        .collect();
    let mut uids = BTreeMap::new();
    for user in ["gra", "imp"] {
        uids.insert(user, rig.source.load(user, &["INBOX"], &msgs));
    }
    let first = rig.migrate().await;
    assert!(!first.has_failures(), "{:#?}", first.mailboxes);

    let set_all = |on: bool| {
        for user in ["gra", "imp"] {
            for (i, uid) in uids[user].iter().enumerate() {
                let flags = if on {
                    Flags::from_atoms([ON[i]])
                } else {
                    Flags::default()
                };
                rig.source.store_flags(user, &["INBOX"], *uid, &flags);
            }
        }
    };

    // Added at the source: every flag arrives.
    set_all(true);
    let added = rig.migrate().await;
    for user in ["gra", "imp"] {
        assert_eq!(summary(&added, user).flags_updated, 5, "{added:#?}");
    }
    let graph = graph_state(&rig.emulator, "gra@contoso.example");
    assert_eq!(
        graph.values().cloned().collect::<Vec<_>>(),
        [
            "replied verb-icon",
            "forwarded verb-icon",
            "flagged",
            "read",
            "category:Work"
        ]
    );
    let imap = imap_state(&rig, "imp", "new-imp").await;
    assert_eq!(
        imap.values().cloned().collect::<Vec<_>>(),
        ON.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    );

    // Removed at the source: every flag goes away at the destination, once.
    set_all(false);
    let removed = rig.migrate().await;
    for user in ["gra", "imp"] {
        assert_eq!(summary(&removed, user).flags_updated, 5, "{removed:#?}");
    }
    let graph = graph_state(&rig.emulator, "gra@contoso.example");
    assert_eq!(graph.len(), 5);
    for (i, state) in &graph {
        assert_eq!(
            state, "",
            "Graph item {i} ({}) still shows {state:?}",
            ON[*i]
        );
    }
    let imap = imap_state(&rig, "imp", "new-imp").await;
    assert_eq!(imap.len(), 5);
    for (i, flags) in &imap {
        assert_eq!(flags, "", "IMAP item {i} ({}) still has {flags:?}", ON[*i]);
    }

    // Nothing is left to update, and verify agrees.
    let again = rig.migrate().await;
    for user in ["gra", "imp"] {
        assert_eq!(summary(&again, user).flags_updated, 0, "{again:#?}");
    }
    let report = rig.verify().await;
    assert!(report.perfect, "{:#?}", report.mailboxes);
}
