//! Checks the committed demo mailboxes (`fixtures/demo/`) read as intended: the folders, counts,
//! uidlist UIDs, keywords and sizes the demo and its docs rely on.

use std::path::PathBuf;

use super::super::*;
use crate::model::SpecialUse;

fn demo(user: &str) -> MaildirSource {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/demo")
        .join(user);
    MaildirSource::open(&root).unwrap()
}

/// One folder read completely: display path, metadata, bodies.
type FolderRead = (String, Vec<MessageMeta>, Vec<(Uid, Body)>);

/// Reads every selectable folder, checking sizes against the bytes.
fn read_all(src: &mut MaildirSource) -> Vec<FolderRead> {
    let mut out = Vec::new();
    for f in src.list_folders().unwrap() {
        if !f.selectable {
            continue;
        }
        let st = src.select(&f).unwrap();
        let meta = src.fetch_meta(&f).unwrap();
        assert_eq!(st.exists as usize, meta.len());
        let uids: Vec<Uid> = meta.iter().map(|m| m.uid).collect();
        let bodies = src.fetch_bodies(&f, &uids).unwrap();
        for (m, (uid, b)) in meta.iter().zip(&bodies) {
            assert_eq!(m.uid, *uid);
            assert_eq!(m.size, b.len(), "{} uid {uid}", f.raw_name);
        }
        out.push((f.path.to_string(), meta, bodies));
    }
    out
}

#[test]
fn demo_mailboxes_read_completely() {
    let mut total = 0;
    let mut total_bytes = 0u64;
    for user in ["alice", "bob", "carol"] {
        let mut src = demo(user);
        assert_eq!(src.layout(), &Layout::MaildirPlusPlus);
        let folders = src.list_folders().unwrap();
        assert_eq!(folders[0].special_use, Some(SpecialUse::Inbox));
        for (_, meta, _) in read_all(&mut src) {
            total += meta.len();
            total_bytes += meta.iter().map(|m| m.size).sum::<u64>();
        }
    }
    assert!((150..=300).contains(&total), "{total} messages");
    assert!(total_bytes < 8 << 20, "{total_bytes} bytes");
}

#[test]
fn demo_alice_has_the_advertised_shapes() {
    let mut src = demo("alice");
    let folders = src.list_folders().unwrap();
    let paths: Vec<String> = folders.iter().map(|f| f.path.to_string()).collect();
    for want in [
        "INBOX",
        "Sent",
        "Drafts",
        "Trash",
        "Archive/2023",
        "Réunions",
        "Clients \\ Partners",
    ] {
        assert!(paths.iter().any(|p| p == want), "{want} not in {paths:?}");
    }
    let all = read_all(&mut src);
    let inbox = &all[0].1;
    // UIDs come from the committed uidlist, gaps included, so they are the same on every clone.
    assert!(
        inbox
            .windows(2)
            .any(|w| w[1].uid.get() > w[0].uid.get() + 1)
    );
    assert!(
        inbox
            .iter()
            .any(|m| !m.flags.keywords.is_empty() || m.flags.forwarded)
    );
    assert!(inbox.iter().any(|m| !m.flags.seen), "unread mail in new/");
    let drafts = &all.iter().find(|(p, ..)| p == "Drafts").unwrap().1;
    assert!(drafts.iter().all(|m| m.flags.draft));
    let biggest = all.iter().flat_map(|(_, m, _)| m).map(|m| m.size).max();
    assert!(biggest.unwrap() > 1_000_000);
}

#[test]
fn demo_carol_has_no_uidlist_and_stable_uids() {
    let mut a = demo("carol");
    let mut b = demo("carol");
    let inbox = a.list_folders().unwrap().remove(0);
    let va = a.select(&inbox).unwrap();
    let vb = b.select(&inbox).unwrap();
    assert_eq!(va, vb);
    assert_eq!(
        va.uid_next,
        Some(va.exists + 1),
        "numbered 1..n without a uidlist"
    );
}

#[test]
fn demo_plan_loads_and_every_folder_maps_to_graph() {
    use crate::plan::{MailboxSource, Plan};
    use crate::translate::{FolderMapper, TargetKind};

    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo");
    let env = |name: &str| (name == "MAILFERRY_DEMO_SECRET").then(|| "demo-secret".into());
    let plan = Plan::load_with_env(&dir.join("plan.toml"), &env).unwrap();
    assert!(plan.row_errors.is_empty(), "{:?}", plan.row_errors);
    assert_eq!(plan.mailboxes.len(), 3);
    let mapper = FolderMapper::new(&plan.folders, TargetKind::Graph);
    for mb in &plan.mailboxes {
        let MailboxSource::Maildir { path } = &mb.source else {
            panic!("{} is not a Maildir row", mb.email);
        };
        let mut src = MaildirSource::open(path).unwrap();
        let folders = src.list_folders().unwrap();
        let mapped = mapper.map(&folders);
        assert_eq!(mapped.len(), folders.len());
        assert!(
            mapped.iter().all(|m| m.target.is_some()),
            "{}: {mapped:?}",
            mb.email
        );
    }
}
