//! The IMAP destination's subscriptions equal the source's: an unsubscribed source folder is
//! not subscribed at the destination, INBOX's subscription is copied, and a later change at the
//! source (one folder unsubscribed, another subscribed) follows on the next run.

use std::collections::BTreeSet;

use mailferry::emulator::EmulatorConfig;
use mailferry::model::Flags;

use super::Rig;
use crate::support::corpus::{date_for, generated_message};
use crate::support::dovecot::Dovecot;

/// Subscribed folder names with `/` between levels.
fn lsub(d: &Dovecot, user: &str) -> BTreeSet<String> {
    d.raw(user, "LSUB \"\" \"*\"")
        .iter()
        .filter(|l| l.starts_with("* LSUB"))
        .map(|l| {
            let name = l.rsplit(' ').next().unwrap_or("").trim_matches('"');
            name.replace(d.separator(), "/")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destination_subscriptions_equal_the_sources_both_ways() {
    let rig = Rig::new("", EmulatorConfig::default(), "", "").await;
    rig.source.add_user("sue", "pw-sue");
    rig.target.add_user("sue", "new-sue");
    rig.rows(
        "EmailAddress,UserName,Password,Destination,DestinationUser,DestinationPassword\n\
         sue@contoso.example,sue,,newhost,sue,new-sue\n",
    );
    let msg = |i: usize| vec![(generated_message(i, 300), Flags::default(), date_for(i))];
    rig.source.load("sue", &["INBOX"], &msg(0));
    rig.source.load("sue", &["Work"], &msg(1));
    rig.source.load("sue", &["Hidden"], &msg(2));
    rig.source.load("sue", &["Projects", "2019"], &msg(3));
    for cmd in [
        "SUBSCRIBE INBOX",
        "SUBSCRIBE Work",
        "SUBSCRIBE Projects/2019",
        "UNSUBSCRIBE Hidden",
    ] {
        rig.source.raw("sue", cmd);
    }
    let want = lsub(&rig.source, "sue");
    assert!(
        want.contains("INBOX") && !want.contains("Hidden"),
        "{want:?}"
    );

    let run = rig.migrate().await;
    assert!(!run.has_failures(), "{:#?}", run.mailboxes);
    assert_eq!(lsub(&rig.target, "sue"), want);

    // Changed at the source: it follows.
    rig.source.raw("sue", "UNSUBSCRIBE Work");
    rig.source.raw("sue", "SUBSCRIBE Hidden");
    rig.source.raw("sue", "UNSUBSCRIBE INBOX");
    let want = lsub(&rig.source, "sue");
    assert!(
        !want.contains("Work") && !want.contains("INBOX"),
        "{want:?}"
    );
    let run = rig.migrate().await;
    assert!(!run.has_failures(), "{:#?}", run.mailboxes);
    assert_eq!(lsub(&rig.target, "sue"), want);
}
