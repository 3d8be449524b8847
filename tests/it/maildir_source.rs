//! The Maildir source on trees written by real Dovecot (both layouts): messages are loaded over
//! IMAP, then the user's Maildir is read from disk and compared with what Dovecot serves over IMAP
//! for the same mailbox: folders, UIDVALIDITY, UIDs, flags (keywords included), sizes, dates,
//! Message-IDs and bodies. Dovecot stores LF line ends on disk; the Maildir source hands on the
//! CRLF form Dovecot serves, so bodies must be byte-identical to IMAP's.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, FixedOffset};
use mailferry::body::Body;
use mailferry::model::{Flags, FolderStatus, MessageMeta, SourceFolder, Uid};
use mailferry::secret::Secret;
use mailferry::source::imap::{ImapAuth, ImapEndpoint, ImapSource, Security};
use mailferry::source::maildir::MaildirSource;

use crate::support::corpus::{corpus_messages, date_for, flags_for, generated_message, imap_ready};
use crate::support::dovecot::{Dovecot, Layout};

type Loaded = Vec<(Vec<u8>, Flags, DateTime<FixedOffset>)>;

/// Everything one source says about one folder.
#[derive(Debug, PartialEq)]
struct FolderView {
    status: (u32, Option<u32>, u32),
    metas: Vec<MessageMeta>,
    bodies: Vec<(Uid, Body)>,
}

async fn imap(d: &Dovecot, user: &str, password: &str) -> ImapSource {
    let endpoint = ImapEndpoint {
        host: "127.0.0.1".into(),
        port: d.port_plain(),
        security: Security::Plain,
        ca_file: None,
        insecure: false,
        timeout: Duration::from_secs(20),
    };
    let auth = ImapAuth::Login {
        user: user.into(),
        password: Secret::from(password),
    };
    ImapSource::connect(endpoint, auth)
        .await
        .expect("IMAP login")
}

fn status_tuple(s: &FolderStatus) -> (u32, Option<u32>, u32) {
    (s.uid_validity.get(), s.uid_next, s.exists)
}

/// Dovecot's view over IMAP, keyed by raw folder name (selectable folders only).
async fn imap_view(d: &Dovecot, user: &str) -> BTreeMap<String, FolderView> {
    let mut src = imap(d, user, "pw").await;
    let mut out = BTreeMap::new();
    for f in src.list_folders().await.expect("LIST") {
        if !f.selectable {
            continue;
        }
        let status = src.select(&f).await.expect("SELECT");
        let mut metas = src.fetch_meta(&f, None).await.expect("FETCH meta");
        for m in &mut metas {
            m.modseq = None; // Maildir has no MODSEQ
        }
        let uids: Vec<Uid> = metas.iter().map(|m| m.uid).collect();
        let bodies = src.fetch_bodies(&f, &uids).await.expect("FETCH bodies");
        out.insert(
            f.raw_name.clone(),
            FolderView {
                status: status_tuple(&status),
                metas,
                bodies,
            },
        );
    }
    src.logout().await;
    out
}

/// The Maildir source's view of the same user's tree.
fn maildir_view(root: &Path) -> (Vec<SourceFolder>, BTreeMap<String, FolderView>) {
    let mut src = MaildirSource::open(root).expect("open Maildir");
    let folders = src.list_folders().expect("list");
    let mut out = BTreeMap::new();
    for f in folders.iter().filter(|f| f.selectable) {
        let status = src.select(f).expect("select");
        let metas = src.fetch_meta(f).expect("meta");
        let uids: Vec<Uid> = metas.iter().map(|m| m.uid).collect();
        let bodies = src.fetch_bodies(f, &uids).expect("bodies");
        out.insert(
            f.raw_name.clone(),
            FolderView {
                status: status_tuple(&status),
                metas,
                bodies,
            },
        );
    }
    (folders, out)
}

fn assert_same(imap: &BTreeMap<String, FolderView>, disk: &BTreeMap<String, FolderView>) {
    assert_eq!(
        imap.keys().collect::<Vec<_>>(),
        disk.keys().collect::<Vec<_>>(),
        "selectable folders"
    );
    for (name, i) in imap {
        let m = &disk[name];
        assert_eq!(i.status, m.status, "{name}: UIDVALIDITY, UIDNEXT, EXISTS");
        assert_eq!(i.metas.len(), m.metas.len(), "{name}: message count");
        for (a, b) in i.metas.iter().zip(&m.metas) {
            assert_eq!(a, b, "{name}: metadata of UID {}", a.uid);
        }
        for ((ua, ba), (ub, bb)) in i.bodies.iter().zip(&m.bodies) {
            assert_eq!(ua, ub, "{name}");
            assert!(ba == bb, "{name}: body of UID {ua} differs");
        }
        assert_eq!(i.bodies.len(), m.bodies.len(), "{name}: bodies");
    }
}

/// A realistic tree: the whole corpus in one folder, generated messages (one bigger than a read
/// buffer) elsewhere, nested and non-ASCII folders, keywords, every system flag.
fn load_tree(d: &Dovecot, user: &str) -> usize {
    let corpus: Loaded = corpus_messages()
        .iter()
        .enumerate()
        .map(|(i, (_, raw))| (imap_ready(raw), flags_for(i), date_for(i)))
        .collect();
    let small = |from: usize, n: usize, size: usize| -> Loaded {
        (from..from + n)
            .map(|i| (generated_message(i, size), flags_for(i), date_for(i)))
            .collect()
    };
    let mut total = 0;
    total += d.load(user, &["INBOX"], &corpus).len();
    total += d.load(user, &["Sent"], &small(1000, 5, 3_000)).len();
    total += d
        .load(user, &["Archive", "2019"], &small(2000, 3, 300_000))
        .len();
    total += d.load(user, &["Entwürfe"], &small(3000, 2, 1_000)).len();
    total += d
        .load(
            user,
            &["Projekte", "Über uns", "Q1"],
            &small(4000, 2, 1_000),
        )
        .len();
    d.create_folder(user, &["Empty"]);
    total
}

async fn tree_matches_imap(layout: Layout) {
    let d = Dovecot::start(layout);
    d.add_user("erin", "pw");
    let total = load_tree(&d, "erin");
    let imap = imap_view(&d, "erin").await;
    let (folders, disk) = maildir_view(&d.mail_root("erin"));
    assert_same(&imap, &disk);
    assert_eq!(
        disk.values().map(|v| v.metas.len()).sum::<usize>(),
        total,
        "every loaded message read from disk"
    );
    let sep = layout.separator();
    let raw_names: Vec<&str> = folders.iter().map(|f| f.raw_name.as_str()).collect();
    for want in [
        "INBOX".to_owned(),
        format!("Archive{sep}2019"),
        "Entw&APw-rfe".to_owned(),
        format!("Projekte{sep}&ANw-ber uns{sep}Q1"),
        "Empty".to_owned(),
    ] {
        assert!(
            raw_names.contains(&want.as_str()),
            "{want} in {raw_names:?}"
        );
    }
    let nested = folders
        .iter()
        .find(|f| f.path.segments() == ["Projekte", "Über uns", "Q1"])
        .expect("nested non-ASCII folder");
    assert_eq!(nested.delimiter, Some(sep));
    // Keywords made it to disk as letters and back.
    let inbox = &disk["INBOX"].metas;
    assert!(inbox.iter().any(|m| m.flags.keywords.contains("Work")));
    assert!(inbox.iter().any(|m| m.flags.forwarded));
    // What Dovecot keeps on disk is the LF form (so a plain `S=` would not be RFC822.SIZE).
    let lf_files = count_files_with_bare_lf(&d.mail_root("erin"));
    assert!(lf_files > 0, "Dovecot stores LF line ends");
}

fn count_files_with_bare_lf(root: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("read dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.parent().and_then(Path::file_name) == Some("cur".as_ref())
                || p.parent().and_then(Path::file_name) == Some("new".as_ref())
            {
                let b = std::fs::read(&p).expect("read message");
                if b.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r') {
                    n += 1;
                }
            }
        }
    }
    n
}

#[tokio::test]
async fn dovecot_fs_tree_reads_like_imap() {
    tree_matches_imap(Layout::Fs).await;
}

#[tokio::test]
async fn dovecot_maildir_plus_plus_tree_reads_like_imap() {
    tree_matches_imap(Layout::MaildirPlusPlus).await;
}

#[tokio::test]
async fn slash_in_a_maildir_plus_plus_name_reads_like_imap() {
    // The harness runs Maildir++ with listescape, so `/` is stored as `\2f` on disk.
    let d = Dovecot::start(Layout::MaildirPlusPlus);
    d.add_user("finn", "pw");
    let msgs: Loaded = (0..3)
        .map(|i| (generated_message(i, 800), flags_for(i), date_for(i)))
        .collect();
    d.load("finn", &["Invoices 2023/2024"], &msgs);
    d.load("finn", &["Back\\slash"], &msgs);
    let imap = imap_view(&d, "finn").await;
    let (folders, disk) = maildir_view(&d.mail_root("finn"));
    assert_same(&imap, &disk);
    let f = folders
        .iter()
        .find(|f| f.raw_name == "Invoices 2023/2024")
        .expect("listed under its IMAP name");
    assert_eq!(f.path.segments(), ["Invoices 2023/2024"]);
}

/// Per folder: UID -> Message-ID, from the Maildir source.
fn uid_map(root: &Path, raw: &str) -> (u32, BTreeMap<u32, Option<String>>, Vec<MessageMeta>) {
    let mut src = MaildirSource::open(root).expect("open");
    let f = src
        .list_folders()
        .expect("list")
        .into_iter()
        .find(|f| f.raw_name == raw)
        .expect("folder");
    let v = src.select(&f).expect("select").uid_validity.get();
    let metas = src.fetch_meta(&f).expect("meta");
    let map = metas
        .iter()
        .map(|m| (m.uid.get(), m.message_id.clone()))
        .collect();
    (v, map, metas)
}

#[tokio::test]
async fn flag_changes_over_imap_rename_files_but_keep_uids() {
    for layout in [Layout::Fs, Layout::MaildirPlusPlus] {
        let d = Dovecot::start(layout);
        d.add_user("gus", "pw");
        let msgs: Loaded = (0..6)
            .map(|i| (generated_message(i, 1_500), Flags::default(), date_for(i)))
            .collect();
        let uids = d.load("gus", &["Work"], &msgs);
        let root = d.mail_root("gus");
        let names_before = file_names(&root);
        let (v1, before, _) = uid_map(&root, "Work");

        // A client reads, answers, flags and tags messages: Dovecot renames their files.
        let mut seen = Flags::from_atoms(["\\Seen"]);
        d.store_flags("gus", &["Work"], uids[0], &seen);
        seen.answered = true;
        seen.keywords.insert("Work".into());
        d.store_flags("gus", &["Work"], uids[3], &seen);
        d.store_flags("gus", &["Work"], uids[5], &Flags::from_atoms(["\\Flagged"]));
        let names_after = file_names(&root);
        assert_ne!(names_before, names_after, "{layout:?}: files were renamed");

        let (v2, after, metas) = uid_map(&root, "Work");
        assert_eq!(v1, v2, "{layout:?}: UIDVALIDITY kept");
        assert_eq!(
            before, after,
            "{layout:?}: every UID still names the same message"
        );
        let by_uid: BTreeMap<u32, &Flags> = metas.iter().map(|m| (m.uid.get(), &m.flags)).collect();
        assert!(by_uid[&uids[0]].seen);
        assert!(by_uid[&uids[3]].answered && by_uid[&uids[3]].keywords.contains("Work"));
        assert!(by_uid[&uids[5]].flagged && !by_uid[&uids[5]].seen);

        // And the IMAP view agrees.
        let imap = imap_view(&d, "gus").await;
        let (_, disk) = maildir_view(&root);
        assert_same(&imap, &disk);
    }
}

#[tokio::test]
async fn mail_dropped_in_behind_dovecots_back_gets_the_uids_dovecot_will_give() {
    let d = Dovecot::start(Layout::MaildirPlusPlus);
    d.add_user("hal", "pw");
    let msgs: Loaded = (0..3)
        .map(|i| (generated_message(i, 1_000), Flags::default(), date_for(i)))
        .collect();
    d.load("hal", &["INBOX"], &msgs);
    let root = d.mail_root("hal");
    // Another MDA delivers two messages straight into new/, names in delivery-time order but
    // written (mtime) in the opposite order.
    let body = |id: &str| format!("Message-ID: <{id}@drop.test>\nSubject: {id}\n\nhi\n");
    std::fs::write(root.join("new/1900000002.M1P9.other"), body("second")).unwrap();
    std::fs::write(root.join("new/1900000001.M1P9.other"), body("first")).unwrap();

    let (v, disk, _) = uid_map(&root, "INBOX");
    let first = disk
        .iter()
        .find(|(_, id)| id.as_deref() == Some("<first@drop.test>"))
        .map(|(u, _)| *u);
    let second = disk
        .iter()
        .find(|(_, id)| id.as_deref() == Some("<second@drop.test>"))
        .map(|(u, _)| *u);
    assert_eq!((first, second), (Some(4), Some(5)));

    // Dovecot now notices them and numbers them itself: the same UIDs, the same UIDVALIDITY.
    let imap = imap_view(&d, "hal").await;
    let inbox = &imap["INBOX"];
    assert_eq!(inbox.status.0, v);
    let imap_ids: BTreeMap<u32, Option<String>> = inbox
        .metas
        .iter()
        .map(|m| (m.uid.get(), m.message_id.clone()))
        .collect();
    assert_eq!(imap_ids, disk);
}

fn file_names(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("read dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// Dovecot's usual `LAYOUT=fs:INBOX=~/Maildir/INBOX` keeps INBOX's children inside the INBOX
/// directory (`INBOX/Projects/2019/cur`): every one of them must be listed and read, as IMAP
/// lists them, in both layouts.
#[tokio::test]
async fn folders_under_inbox_are_read_in_both_layouts() {
    for layout in [Layout::Fs, Layout::MaildirPlusPlus] {
        let d = Dovecot::start(layout);
        d.add_user("ivy", "pw");
        let msgs = |from: usize, n: usize| -> Loaded {
            (from..from + n)
                .map(|i| (generated_message(i, 700), flags_for(i), date_for(i)))
                .collect()
        };
        let mut total = 0;
        total += d.load("ivy", &["INBOX"], &msgs(0, 3)).len();
        total += d.load("ivy", &["INBOX", "Projects"], &msgs(10, 2)).len();
        total += d
            .load("ivy", &["INBOX", "Projects", "2019"], &msgs(20, 4))
            .len();
        total += d.load("ivy", &["INBOX", "Newsletters"], &msgs(30, 1)).len();
        total += d.load("ivy", &["Archive"], &msgs(40, 2)).len();
        let imap = imap_view(&d, "ivy").await;
        let (folders, disk) = maildir_view(&d.mail_root("ivy"));
        assert_same(&imap, &disk);
        assert_eq!(
            disk.values().map(|v| v.metas.len()).sum::<usize>(),
            total,
            "{layout:?}: every message under INBOX read from disk"
        );
        let sep = layout.separator();
        let raw: Vec<&str> = folders.iter().map(|f| f.raw_name.as_str()).collect();
        for want in [
            format!("INBOX{sep}Projects"),
            format!("INBOX{sep}Projects{sep}2019"),
            format!("INBOX{sep}Newsletters"),
        ] {
            assert!(
                raw.contains(&want.as_str()),
                "{layout:?}: {want} in {raw:?}"
            );
        }
    }
}
