//! Unit tests on Maildir trees built in a temp dir: both layouts, flags and keywords, sizes,
//! new/ and cur/, uidlists, renames that must keep UIDs, and the UIDVALIDITY rules.

mod fixtures;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::*;
use crate::model::{Flags, SpecialUse, Uid, UidValidity};

fn mkmaildir(dir: &Path) {
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(dir.join(sub)).unwrap();
    }
}

/// Writes a message file and sets its mtime to `secs` after the epoch.
fn put(dir: &Path, sub: &str, name: &str, body: &[u8], secs: u64) -> PathBuf {
    let p = dir.join(sub).join(name);
    fs::write(&p, body).unwrap();
    let f = fs::File::options().write(true).open(&p).unwrap();
    f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap();
    p
}

fn msg(id: &str) -> Vec<u8> {
    format!("Message-ID: <{id}@example.org>\nSubject: test {id}\n\nbody of {id}\n").into_bytes()
}

fn folder<'a>(folders: &'a [SourceFolder], raw: &str) -> &'a SourceFolder {
    folders
        .iter()
        .find(|f| f.raw_name == raw)
        .unwrap_or_else(|| panic!("no folder {raw} in {folders:?}"))
}

fn uids(meta: &[MessageMeta]) -> Vec<u32> {
    meta.iter().map(|m| m.uid.get()).collect()
}

#[test]
fn maildir_plus_plus_folders_with_utf7_and_missing_parents() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    mkmaildir(root);
    for d in [".Sent", ".Archive.2019", ".Entw&APw-rfe", ".Trash"] {
        mkmaildir(&root.join(d));
    }
    // Not folders: a plain subdirectory and a file.
    fs::create_dir(root.join("courierimapkeywords")).unwrap();
    fs::write(root.join("dovecot-uidlist"), "3 V1 N1\n").unwrap();

    let mut src = MaildirSource::open(root).unwrap();
    assert_eq!(src.layout(), &Layout::MaildirPlusPlus);
    let folders = src.list_folders().unwrap();
    let names: Vec<&str> = folders.iter().map(|f| f.raw_name.as_str()).collect();
    assert_eq!(
        names,
        [
            "INBOX",
            "Archive",
            "Archive.2019",
            "Entw&APw-rfe",
            "Sent",
            "Trash"
        ]
    );
    assert_eq!(folders[0].special_use, Some(SpecialUse::Inbox));
    let archive = folder(&folders, "Archive");
    assert!(!archive.selectable, "synthesized parent is a container");
    let y = folder(&folders, "Archive.2019");
    assert_eq!(y.path.segments(), ["Archive", "2019"]);
    assert_eq!(y.delimiter, Some('.'));
    assert!(y.selectable);
    assert_eq!(
        folder(&folders, "Entw&APw-rfe").path.segments(),
        ["Entwürfe"]
    );
    assert!(folders.iter().skip(1).all(|f| f.special_use.is_none()));
}

#[test]
fn fs_layout_with_inbox_dir_and_nesting() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    mkmaildir(&root.join("INBOX"));
    mkmaildir(&root.join("Sent"));
    mkmaildir(&root.join("Archive/2019"));
    mkmaildir(&root.join("Archive/2019/Q&AOQ-"));
    fs::create_dir(root.join("empty")).unwrap();
    put(&root.join("INBOX"), "new", "1.a.h", &msg("a"), 10);
    put(
        &root.join("Archive/2019"),
        "cur",
        "2.b.h:2,S",
        &msg("b"),
        20,
    );

    let mut src = MaildirSource::open(root).unwrap();
    assert_eq!(
        src.layout(),
        &Layout::Fs {
            inbox: root.join("INBOX")
        }
    );
    let folders = src.list_folders().unwrap();
    let names: Vec<&str> = folders.iter().map(|f| f.raw_name.as_str()).collect();
    assert_eq!(
        names,
        [
            "INBOX",
            "Archive",
            "Archive/2019",
            "Archive/2019/Q&AOQ-",
            "Sent"
        ]
    );
    assert!(!folder(&folders, "Archive").selectable);
    let q = folder(&folders, "Archive/2019/Q&AOQ-");
    assert_eq!(q.path.segments(), ["Archive", "2019", "Qä"]);
    assert_eq!(q.delimiter, Some('/'));

    let inbox = folder(&folders, "INBOX").clone();
    src.select(&inbox).unwrap();
    let meta = src.fetch_meta(&inbox).unwrap();
    assert_eq!(meta.len(), 1);
    assert_eq!(meta[0].message_id.as_deref(), Some("<a@example.org>"));
    let y = folder(&folders, "Archive/2019").clone();
    src.select(&y).unwrap();
    let meta = src.fetch_meta(&y).unwrap();
    assert!(meta[0].flags.seen);
}

#[test]
fn fs_layout_with_inbox_at_root() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    mkmaildir(root);
    mkmaildir(&root.join("Work/Projects"));
    let mut src = MaildirSource::open(root).unwrap();
    assert_eq!(
        src.layout(),
        &Layout::Fs {
            inbox: root.to_owned()
        }
    );
    let names: Vec<String> = src
        .list_folders()
        .unwrap()
        .into_iter()
        .map(|f| f.raw_name)
        .collect();
    assert_eq!(names, ["INBOX", "Work", "Work/Projects"]);
}

#[test]
fn not_a_maildir_names_the_path() {
    let t = tempfile::tempdir().unwrap();
    let err = MaildirSource::open(t.path()).unwrap_err();
    assert!(matches!(err, MaildirError::NotAMaildir { .. }));
    assert!(err.to_string().contains(&t.path().display().to_string()));
    let missing = t.path().join("nope");
    let err = MaildirSource::open(&missing).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}

#[test]
fn flags_keywords_dates_and_message_ids() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    mkmaildir(root);
    fs::write(
        root.join("dovecot-keywords"),
        "0 $Forwarded\n1 Work\n2 $Junk\n",
    )
    .unwrap();
    put(root, "cur", "100.M1P1.h:2,FRS", &msg("one"), 1_000);
    put(root, "cur", "200.M1P1.h:2,DTab", &msg("two"), 2_000);
    put(
        root,
        "cur",
        "300.M1P1.h:2,cz",
        b"Subject: none\n\nx\n",
        3_000,
    );
    put(root, "new", "400.M1P1.h", &msg("four"), 4_000);
    // Never messages: files being written, hidden files.
    put(root, "tmp", "500.M1P1.h", &msg("tmp"), 5_000);
    put(root, "cur", ".hidden", &msg("hidden"), 6_000);

    let mut src = MaildirSource::open(root).unwrap();
    let inbox = src.list_folders().unwrap().remove(0);
    let status = src.select(&inbox).unwrap();
    assert_eq!(status.exists, 4);
    assert_eq!(status.uid_next, Some(5));
    let meta = src.fetch_meta(&inbox).unwrap();
    assert_eq!(uids(&meta), [1, 2, 3, 4]);
    let f0 = &meta[0].flags;
    assert!(f0.flagged && f0.answered && f0.seen && !f0.draft && !f0.deleted);
    let f1 = &meta[1].flags;
    assert!(f1.draft && f1.deleted && f1.forwarded && !f1.seen);
    assert_eq!(f1.keywords.iter().collect::<Vec<_>>(), ["Work"]);
    assert_eq!(meta[2].flags.keywords.iter().collect::<Vec<_>>(), ["$Junk"]);
    assert_eq!(meta[3].flags, Flags::default());
    assert_eq!(meta[0].message_id.as_deref(), Some("<one@example.org>"));
    assert_eq!(meta[2].message_id, None);
    assert_eq!(meta[1].internal_date.timestamp(), 2_000);
    assert_eq!(meta[3].internal_date.timestamp(), 4_000);
}

#[test]
fn sizes_match_the_bytes_returned() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    mkmaildir(root);
    let lf = msg("lf"); // bare LF
    let crlf = crate::body::to_crlf(&msg("crlf"));
    let (s, w) = (lf.len(), crate::body::to_crlf(&lf).len());
    // Dovecot-style name with true S= and W=.
    put(root, "cur", &format!("1.M1P1.h,S={s},W={w}:2,S"), &lf, 1);
    // A file already in CRLF with no sizes in its name.
    put(root, "cur", "2.M1P1.h:2,", &crlf, 2);
    // A name that lies: S= disagrees with the file, so W= is not trusted either.
    put(root, "cur", "3.M1P1.h,S=5,W=7:2,", &lf, 3);
    // Plain LF file, no sizes.
    put(root, "new", "4.M1P1.h", &lf, 4);

    let mut src = MaildirSource::open(root).unwrap();
    let inbox = src.list_folders().unwrap().remove(0);
    src.select(&inbox).unwrap();
    let meta = src.fetch_meta(&inbox).unwrap();
    let all: Vec<Uid> = meta.iter().map(|m| m.uid).collect();
    let bodies = src.fetch_bodies(&inbox, &all).unwrap();
    assert_eq!(bodies.len(), 4);
    for (m, (uid, body)) in meta.iter().zip(&bodies) {
        assert_eq!(m.uid, *uid);
        assert_eq!(m.size, body.len(), "uid {uid}");
        assert!(
            !body
                .as_memory()
                .expect("small")
                .windows(2)
                .any(|w| w[1] == b'\n' && w[0] != b'\r')
        );
    }
    assert_eq!(meta[0].size, w as u64);
    assert_eq!(
        bodies[1].1,
        Body::Memory(crlf),
        "CRLF files pass through unchanged"
    );
    assert_eq!(bodies[0].1, Body::Memory(crate::body::to_crlf(&lf)));
}

#[test]
fn uidlist_uids_and_new_files_above_the_max() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    mkmaildir(root);
    put(root, "cur", "1000.M5P1.h,S=10,W=12:2,S", &msg("a"), 1000);
    put(root, "cur", "1001.M1P1.h:2,", &msg("b"), 1001);
    // Unknown to the uidlist: numbered in name-time order (not mtime order) after N.
    put(root, "new", "2000.M9P1.h", &msg("late-name"), 50);
    put(root, "new", "1999.M1P1.h", &msg("early-name"), 60);
    fs::write(
        root.join("dovecot-uidlist"),
        "3 V1234567 N20 Gabc\n7 G1 :1000.M5P1.h,S=10,W=12\n15 :1001.M1P1.h\n16 :gone.M1P1.h\n",
    )
    .unwrap();
    let mut src = MaildirSource::open(root).unwrap();
    let inbox = src.list_folders().unwrap().remove(0);
    let st = src.select(&inbox).unwrap();
    assert_eq!(st.uid_validity, UidValidity::new(1234567).unwrap());
    assert_eq!(st.exists, 4);
    assert_eq!(st.uid_next, Some(22));
    let meta = src.fetch_meta(&inbox).unwrap();
    assert_eq!(uids(&meta), [7, 15, 20, 21]);
    assert_eq!(
        meta[2].message_id.as_deref(),
        Some("<early-name@example.org>")
    );
    assert_eq!(
        meta[3].message_id.as_deref(),
        Some("<late-name@example.org>")
    );
}

#[test]
fn bad_uidlist_names_file_and_line() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    mkmaildir(root);
    fs::write(root.join("dovecot-uidlist"), "3 V1 N3\n1 :a\nbroken\n").unwrap();
    let mut src = MaildirSource::open(root).unwrap();
    let inbox = src.list_folders().unwrap().remove(0);
    let err = src.select(&inbox).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("dovecot-uidlist") && text.contains("line 3"),
        "{text}"
    );
}

/// Renames the file of `base` in `dir` to `new_name` in `sub`.
fn rename(dir: &Path, from: &str, to_sub: &str, to: &str) {
    let src = ["cur", "new"]
        .iter()
        .map(|s| dir.join(s).join(from))
        .find(|p| p.exists())
        .unwrap();
    fs::rename(src, dir.join(to_sub).join(to)).unwrap();
}

#[test]
fn renames_keep_uids_without_uidlist() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    mkmaildir(&root.join(".Work"));
    mkmaildir(root);
    let dir = root.join(".Work");
    put(&dir, "cur", "10.M1P1.h:2,S", &msg("a"), 10);
    put(&dir, "new", "20.M1P1.h", &msg("b"), 20);
    put(&dir, "cur", "30.M1P1.h:2,", &msg("c"), 30);

    let mut src = MaildirSource::open(root).unwrap();
    let work = folder(&src.list_folders().unwrap(), "Work").clone();
    let before = src.select(&work).unwrap();
    let meta_before = src.fetch_meta(&work).unwrap();

    // A client flags one message and reads the new one (moving it to cur/).
    rename(&dir, "10.M1P1.h:2,S", "cur", "10.M1P1.h:2,FS");
    rename(&dir, "20.M1P1.h", "cur", "20.M1P1.h:2,S");

    let after = src.select(&work).unwrap();
    let meta_after = src.fetch_meta(&work).unwrap();
    assert_eq!(before.uid_validity, after.uid_validity);
    assert_eq!(uids(&meta_before), uids(&meta_after));
    for (b, a) in meta_before.iter().zip(&meta_after) {
        assert_eq!(b.message_id, a.message_id, "uid {} kept its message", a.uid);
    }
    assert!(meta_after[0].flags.flagged);
    assert!(meta_after[1].flags.seen);

    // Another folder with the same files gets another UIDVALIDITY.
    let inbox = src.list_folders().unwrap().remove(0);
    let inbox_v = src.select(&inbox).unwrap().uid_validity;
    assert_ne!(inbox_v, after.uid_validity);
}

#[test]
fn renames_keep_uids_with_uidlist() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    mkmaildir(root);
    put(root, "new", "10.M1P1.h,S=60", &msg("a"), 10);
    fs::write(root.join("dovecot-uidlist"), "3 V9 N6\n5 :10.M1P1.h,S=60\n").unwrap();
    let mut src = MaildirSource::open(root).unwrap();
    let inbox = src.list_folders().unwrap().remove(0);
    src.select(&inbox).unwrap();
    rename(root, "10.M1P1.h,S=60", "cur", "10.M1P1.h,S=60:2,RS");
    src.select(&inbox).unwrap();
    let meta = src.fetch_meta(&inbox).unwrap();
    assert_eq!(uids(&meta), [5]);
    assert!(meta[0].flags.answered && meta[0].flags.seen);
}

#[test]
fn uidvalidity_changes_when_uids_could_shift() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    mkmaildir(root);
    put(root, "cur", "10.M1P1.h:2,", &msg("a"), 10);
    put(root, "cur", "20.M1P1.h:2,", &msg("b"), 20);
    put(root, "cur", "30.M1P1.h:2,", &msg("c"), 30);
    let mut src = MaildirSource::open(root).unwrap();
    let inbox = src.list_folders().unwrap().remove(0);
    let v1 = src.select(&inbox).unwrap().uid_validity;
    assert_eq!(
        src.select(&inbox).unwrap().uid_validity,
        v1,
        "stable when nothing changes"
    );

    // Removing the first message would shift the others down: a new UIDVALIDITY.
    fs::remove_file(root.join("cur/10.M1P1.h:2,")).unwrap();
    let v2 = src.select(&inbox).unwrap().uid_validity;
    assert_ne!(v1, v2);
    assert_eq!(uids(&src.fetch_meta(&inbox).unwrap()), [1, 2]);

    // A message with an older mtime would slot in front: a new UIDVALIDITY again.
    put(root, "cur", "5.M1P1.h:2,", &msg("old"), 5);
    let v3 = src.select(&inbox).unwrap().uid_validity;
    assert_ne!(v2, v3);
    let meta = src.fetch_meta(&inbox).unwrap();
    assert_eq!(meta[0].message_id.as_deref(), Some("<old@example.org>"));

    // Same tree copied elsewhere (mtimes kept): same identity.
    let t2 = tempfile::tempdir().unwrap();
    mkmaildir(t2.path());
    put(t2.path(), "cur", "5.M1P1.h:2,", &msg("old"), 5);
    put(t2.path(), "cur", "20.M1P1.h:2,", &msg("b"), 20);
    put(t2.path(), "cur", "30.M1P1.h:2,S", &msg("c"), 30);
    let mut copy = MaildirSource::open(t2.path()).unwrap();
    let inbox2 = copy.list_folders().unwrap().remove(0);
    assert_eq!(copy.select(&inbox2).unwrap().uid_validity, v3);
}

#[test]
fn fetch_bodies_follows_a_rename_after_select_and_skips_expunged() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    mkmaildir(root);
    put(root, "new", "10.M1P1.h", &msg("a"), 10);
    put(root, "cur", "20.M1P1.h:2,", &msg("b"), 20);
    let mut src = MaildirSource::open(root).unwrap();
    let inbox = src.list_folders().unwrap().remove(0);
    src.select(&inbox).unwrap();
    let meta = src.fetch_meta(&inbox).unwrap();
    let (u1, u2) = (meta[0].uid, meta[1].uid);

    rename(root, "10.M1P1.h", "cur", "10.M1P1.h:2,S");
    fs::remove_file(root.join("cur/20.M1P1.h:2,")).unwrap();
    let missing = Uid::new(99).unwrap();
    let bodies = src.fetch_bodies(&inbox, &[u2, missing, u1]).unwrap();
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0].0, u1);
    assert_eq!(bodies[0].1, Body::Memory(crate::body::to_crlf(&msg("a"))));
}

#[test]
fn same_base_in_new_and_cur_is_one_message() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    mkmaildir(root);
    put(root, "new", "10.M1P1.h", &msg("a"), 10);
    put(root, "cur", "10.M1P1.h:2,S", &msg("a"), 10);
    let mut src = MaildirSource::open(root).unwrap();
    let inbox = src.list_folders().unwrap().remove(0);
    assert_eq!(src.select(&inbox).unwrap().exists, 1);
    assert!(src.fetch_meta(&inbox).unwrap()[0].flags.seen, "cur/ wins");
}

#[test]
fn unknown_and_hostile_folder_names_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    mkmaildir(root);
    mkmaildir(&root.join("Work"));
    let mut src = MaildirSource::open(root).unwrap();
    let mut f = src.list_folders().unwrap().remove(0);
    for raw in ["Nope", "../x", "a/b", ""] {
        f.raw_name = raw.to_owned();
        let err = src.select(&f).unwrap_err();
        assert!(
            matches!(err, MaildirError::UnknownFolder { .. }),
            "{raw}: {err}"
        );
    }
}

#[test]
fn folders_dovecot_created_but_never_used_are_selectable() {
    // Dovecot's CREATE writes dovecot-uidlist (and maildirfolder in Maildir++) and makes cur/
    // new/ tmp/ only on first use.
    let t = tempfile::tempdir().unwrap();
    let pp = t.path().join("pp");
    mkmaildir(&pp);
    fs::create_dir(pp.join(".Fresh")).unwrap();
    fs::write(pp.join(".Fresh/maildirfolder"), "").unwrap();
    fs::write(pp.join(".Fresh/dovecot-uidlist"), "3 V77 N1\n").unwrap();
    let mut src = MaildirSource::open(&pp).unwrap();
    let fresh = folder(&src.list_folders().unwrap(), "Fresh").clone();
    assert!(fresh.selectable);
    let st = src.select(&fresh).unwrap();
    assert_eq!(
        (st.uid_validity.get(), st.exists, st.uid_next),
        (77, 0, Some(1))
    );

    let fsl = t.path().join("fs");
    mkmaildir(&fsl.join("INBOX"));
    fs::create_dir_all(fsl.join("Archive/2019")).unwrap();
    fs::write(fsl.join("Archive/2019/dovecot-uidlist"), "3 V78 N1\n").unwrap();
    let mut src = MaildirSource::open(&fsl).unwrap();
    let folders = src.list_folders().unwrap();
    assert!(!folder(&folders, "Archive").selectable);
    let y = folder(&folders, "Archive/2019").clone();
    assert!(y.selectable);
    assert_eq!(src.select(&y).unwrap().uid_validity.get(), 78);
    assert!(src.fetch_meta(&y).unwrap().is_empty());
}

#[test]
fn listescaped_names_read_as_dovecot_lists_them() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    mkmaildir(root);
    for d in [
        ".a\\2fb",
        ".Q1\\2fQ2.sub",
        ".x\\5c2024",
        ".Plain \\ Backslash",
    ] {
        mkmaildir(&root.join(d));
    }
    put(&root.join(".a\\2fb"), "cur", "1.M1P1.h:2,S", &msg("esc"), 1);
    let mut src = MaildirSource::open(root).unwrap();
    let folders = src.list_folders().unwrap();
    let names: Vec<&str> = folders.iter().map(|f| f.raw_name.as_str()).collect();
    assert_eq!(
        names,
        [
            "INBOX",
            "Plain \\ Backslash",
            "Q1/Q2",
            "Q1/Q2.sub",
            "a/b",
            "x\\2024"
        ]
    );
    assert!(!folder(&folders, "Q1/Q2").selectable);
    assert_eq!(
        folder(&folders, "Q1/Q2.sub").path.segments(),
        ["Q1/Q2", "sub"]
    );
    let ab = folder(&folders, "a/b").clone();
    assert_eq!(ab.path.segments(), ["a/b"]);
    src.select(&ab).unwrap();
    assert_eq!(src.fetch_meta(&ab).unwrap().len(), 1);
}
