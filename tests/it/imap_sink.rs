//! The IMAP sink against real Dovecot: a copy between the two layouts arrives byte-identical with
//! flags and INTERNALDATE, APPENDUID ids are right, find() resolves with and without Message-ID
//! and with shared Message-IDs, set_flags works (with UNCHANGEDSINCE), and a server without
//! UIDPLUS / MULTIAPPEND / LITERAL+ still gets every message and an id for it. A send gate
//! (fleet mode's lease) that closes stops the APPENDs, mid-batch too.

use std::collections::BTreeMap;

use mailferry::body::Body;
use mailferry::engine::ports::SendGate;
use mailferry::model::{
    ContentHash, Flags, FolderPath, MessageMeta, SourceFolder, SpecialUse, Uid,
};
use mailferry::sink::imap::{AppendItem, ImapSink};
use mailferry::source::imap::ImapSource;

use crate::support::corpus::{corpus_messages, date_for, flags_for, generated_message, imap_ready};
use crate::support::dovecot::{Dovecot, Layout};
use crate::support::readback::{dovecot_endpoint, login};

type Loaded = Vec<(Vec<u8>, Flags, chrono::DateTime<chrono::FixedOffset>)>;

/// Copies every folder of `src` into `sink` the way the engine will: list, meta, bodies, append.
async fn copy_all(src: &mut ImapSource, sink: &ImapSink) -> BTreeMap<String, Vec<String>> {
    let mut ids = BTreeMap::new();
    for f in src
        .list_folders()
        .await
        .expect("list")
        .into_iter()
        .filter(|f| f.selectable)
    {
        let metas = src.fetch_meta(&f, None).await.expect("meta");
        let dest = sink
            .ensure_folder(&f.path, f.special_use)
            .await
            .expect("ensure folder");
        let mut folder_ids = Vec::new();
        for chunk in metas.chunks(150) {
            let uids: Vec<_> = chunk.iter().map(|m| m.uid).collect();
            let bodies = src.fetch_bodies(&f, &uids).await.expect("bodies");
            assert_eq!(bodies.len(), chunk.len());
            let items: Vec<AppendItem> = bodies
                .iter()
                .zip(chunk)
                .map(|((_, raw), m)| AppendItem {
                    body: raw,
                    flags: &m.flags,
                    internal_date: m.internal_date,
                })
                .collect();
            for r in sink.append_batch(&dest, &items).await {
                folder_ids.push(r.expect("append"));
            }
        }
        ids.insert(f.path.to_string(), folder_ids);
    }
    ids
}

/// Asserts that `dst` holds exactly `expected` per folder path (bytes, flags, UTC instants).
async fn assert_same(
    dst: &mut ImapSource,
    expected: &BTreeMap<String, Loaded>,
    ids: &BTreeMap<String, Vec<String>>,
) {
    let folders: BTreeMap<String, SourceFolder> = dst
        .list_folders()
        .await
        .expect("list dst")
        .into_iter()
        .map(|f| (f.path.to_string(), f))
        .collect();
    for (path, msgs) in expected {
        let f = folders
            .get(path)
            .unwrap_or_else(|| panic!("{path} missing at destination: {:?}", folders.keys()));
        let status = dst.select(f).await.expect("examine");
        let metas = dst.fetch_meta(f, None).await.expect("meta");
        assert_eq!(metas.len(), msgs.len(), "{path}");
        let uids: Vec<_> = metas.iter().map(|m| m.uid).collect();
        let bodies = dst.fetch_bodies(f, &uids).await.expect("bodies");
        let want_ids: Vec<String> = metas
            .iter()
            .map(|m| format!("{}:{}", status.uid_validity, m.uid))
            .collect();
        assert_eq!(ids.get(path), Some(&want_ids), "{path}: APPENDUID ids");
        for ((m, (_, body)), (raw, flags, date)) in metas.iter().zip(&bodies).zip(msgs) {
            assert!(body == raw, "{path} UID {}: bytes differ", m.uid);
            assert_eq!(&m.flags, flags, "{path} UID {}", m.uid);
            assert_eq!(
                m.internal_date.timestamp(),
                date.timestamp(),
                "{path} UID {}",
                m.uid
            );
        }
    }
}

#[tokio::test]
async fn copies_corpora_between_layouts_byte_identical() {
    let a = Dovecot::start(Layout::Fs);
    let b = Dovecot::start(Layout::MaildirPlusPlus);
    a.add_user("u", "pw");
    b.add_user("u", "pw");
    let corpus = corpus_messages();
    let mut expected: BTreeMap<String, Loaded> = BTreeMap::new();
    let mut add = |path: &str, range: std::ops::Range<usize>, generated: bool| {
        let msgs: Loaded = range
            .map(|i| {
                let raw = if generated {
                    generated_message(i, [800, 5_000, 40_000, 200_000][i % 4])
                } else {
                    imap_ready(&corpus[i % corpus.len()].1)
                };
                (raw, flags_for(i), date_for(i))
            })
            .collect();
        expected.insert(path.to_owned(), msgs);
    };
    let n = corpus.len();
    add("INBOX", 0..n / 2, false);
    add("Sent", n / 2..n, false);
    add("Projekte/Größe/Q1", 0..150, true);
    add("Archive/2019", 150..400, true);
    for (path, msgs) in &expected {
        let segments: Vec<&str> = path.split('/').collect();
        a.load("u", &segments, msgs);
    }
    let mut src = ImapSource::connect(dovecot_endpoint(&a), login("u", "pw"))
        .await
        .expect("src");
    let sink = ImapSink::connect(dovecot_endpoint(&b), login("u", "pw"), 3)
        .await
        .expect("sink");
    assert_eq!(sink.delimiter(), Some('.'));
    let ids = copy_all(&mut src, &sink).await;
    let mut dst = ImapSource::connect(dovecot_endpoint(&b), login("u", "pw"))
        .await
        .expect("dst reader");
    assert_same(&mut dst, &expected, &ids).await;
    // Sent landed in the destination's own \Sent folder; new folders are subscribed.
    let lsub = b.raw("u", "LSUB \"\" \"*\"");
    for name in ["Projekte.Gr&APYA3w-e.Q1", "Archive.2019", "Sent"] {
        assert!(
            lsub.iter()
                .any(|l| l.ends_with(name) || l.ends_with(&format!("\"{name}\""))),
            "{name} not subscribed: {lsub:?}"
        );
    }
    // A second ensure_folder is answered from the cache and gives the same name.
    let p = FolderPath::parse("Archive/2019", Some('/')).expect("path");
    assert_eq!(
        sink.ensure_folder(&p, None).await.expect("again"),
        "Archive.2019"
    );
    assert_eq!(
        sink.ensure_folder(
            &FolderPath::parse("Whatever", None).expect("p"),
            Some(SpecialUse::Junk)
        )
        .await
        .expect("junk"),
        "Junk"
    );
}

#[tokio::test]
async fn find_resolves_with_and_without_message_id_and_shared_ids() {
    let d = Dovecot::start(Layout::Fs);
    d.add_user("u", "pw");
    let sink = ImapSink::connect(dovecot_endpoint(&d), login("u", "pw"), 2)
        .await
        .expect("sink");
    let folder = sink
        .ensure_folder(&FolderPath::parse("Resume", None).expect("p"), None)
        .await
        .expect("folder");
    let msg = |id: Option<&str>, body: &str| {
        let mut m = String::from("From: a@example.org\r\nSubject: t\r\n");
        if let Some(id) = id {
            m.push_str(&format!("Message-ID: {id}\r\n"));
        }
        m.push_str(&format!("\r\n{body}\r\n"));
        m.into_bytes()
    };
    let raws = [
        msg(Some("<shared@x>"), "first body"),
        msg(Some("<shared@x>"), "second, longer body"),
        msg(Some("<shared@x>"), "first bodY"), // same size and Message-ID as #0
        msg(None, "no id one"),
        msg(None, "no id two"),                 // same size as #3, other bytes
        msg(Some("<xshared@x>"), "first body"), // a Message-ID containing the other
    ];
    let flags = Flags::default();
    let bodies: Vec<Body> = raws.iter().map(|r| Body::from(r.clone())).collect();
    let items: Vec<AppendItem> = bodies
        .iter()
        .enumerate()
        .map(|(i, r)| AppendItem {
            body: r,
            flags: &flags,
            internal_date: date_for(i),
        })
        .collect();
    let ids: Vec<String> = sink
        .append_batch(&folder, &items)
        .await
        .into_iter()
        .map(|r| r.expect("append"))
        .collect();
    let find = |i: usize, id: Option<&'static str>| {
        let raw = raws[i].clone();
        let sink = &sink;
        let folder = folder.clone();
        async move {
            sink.find(&folder, id, raw.len() as u64, &ContentHash::of(&raw))
                .await
                .expect("find")
        }
    };
    assert_eq!(find(1, Some("<shared@x>")).await, vec![ids[1].clone()]);
    assert_eq!(
        find(0, Some("<shared@x>")).await,
        vec![ids[0].clone(), ids[2].clone()],
        "both candidates returned"
    );
    assert_eq!(find(5, Some("<xshared@x>")).await, vec![ids[5].clone()]);
    assert_eq!(find(3, None).await, vec![ids[3].clone()]);
    assert_eq!(find(4, None).await, vec![ids[4].clone()]);
    let absent = msg(None, "never written");
    assert!(
        sink.find(
            &folder,
            None,
            absent.len() as u64,
            &ContentHash::of(&absent)
        )
        .await
        .expect("find")
        .is_empty()
    );
    assert!(
        sink.find(&folder, Some("<nope@x>"), 10, &ContentHash::of(b""))
            .await
            .expect("find")
            .is_empty()
    );
}

#[tokio::test]
async fn set_flags_replaces_flags_and_honours_unchangedsince() {
    let d = Dovecot::start(Layout::MaildirPlusPlus);
    d.add_user("u", "pw");
    let sink = ImapSink::connect(dovecot_endpoint(&d), login("u", "pw"), 1)
        .await
        .expect("sink");
    let folder = sink
        .ensure_folder(&FolderPath::parse("Flags", None).expect("p"), None)
        .await
        .expect("folder");
    let raw = Body::from(generated_message(1, 3_000));
    let start = Flags::from_atoms(["\\Seen", "Work"]);
    let id = sink
        .append_batch(
            &folder,
            &[AppendItem {
                body: &raw,
                flags: &start,
                internal_date: date_for(1),
            }],
        )
        .await
        .remove(0)
        .expect("append");
    let listed = sink.list_items(&folder).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].id.as_str(), &listed[0].flags),
        (id.as_str(), &start)
    );
    assert_eq!(
        listed[0].message_id.as_deref(),
        Some("<gen-1@mailferry.test>")
    );
    assert_eq!(listed[0].size, Some(raw.len()));
    let new = Flags::from_atoms(["\\Answered", "$Forwarded", "\\Flagged"]);
    sink.set_flags(&folder, &id, &new, None)
        .await
        .expect("store");
    assert_eq!(sink.list_items(&folder).await.expect("list")[0].flags, new);
    // UNCHANGEDSINCE 1: the item has a higher MODSEQ by now, so the store is refused.
    let err = sink
        .set_flags(&folder, &id, &Flags::default(), Some(1))
        .await
        .expect_err("modified");
    assert!(
        err.response_code()
            .is_some_and(|c| c.starts_with("MODIFIED")),
        "{err}"
    );
    assert_eq!(sink.list_items(&folder).await.expect("list")[0].flags, new);
    let err = sink
        .set_flags(&folder, "1:1", &new, None)
        .await
        .expect_err("stale id");
    assert!(err.to_string().contains("stale"), "{err}");
}

#[tokio::test]
async fn a_server_without_uidplus_multiappend_or_literal_plus_still_gets_everything() {
    let plain = "imap_capability = IMAP4rev1 SASL-IR ID ENABLE IDLE NAMESPACE CHILDREN SPECIAL-USE CONDSTORE";
    let d = Dovecot::start_with(Layout::Fs, plain);
    d.add_user("u", "pw");
    let sink = ImapSink::connect(dovecot_endpoint(&d), login("u", "pw"), 1)
        .await
        .expect("sink");
    assert!(
        !sink.capabilities().uidplus()
            && !sink.capabilities().multiappend()
            && !sink.capabilities().literal_plus()
    );
    let folder = sink
        .ensure_folder(
            &FolderPath::parse("Old/Server", Some('/')).expect("p"),
            None,
        )
        .await
        .expect("folder");
    let raws: Vec<Vec<u8>> = (0..12)
        .map(|i| generated_message(i, 1_500 + i * 10))
        .collect();
    let flags: Vec<Flags> = (0..12).map(flags_for).collect();
    let bodies: Vec<Body> = raws.iter().map(|r| Body::from(r.clone())).collect();
    let items: Vec<AppendItem> = bodies
        .iter()
        .zip(&flags)
        .enumerate()
        .map(|(i, (raw, f))| AppendItem {
            body: raw,
            flags: f,
            internal_date: date_for(i),
        })
        .collect();
    let ids: Vec<String> = sink
        .append_batch(&folder, &items)
        .await
        .into_iter()
        .map(|r| r.expect("append"))
        .collect();
    let listed = sink.list_items(&folder).await.expect("list");
    assert_eq!(listed.iter().map(|i| i.id.clone()).collect::<Vec<_>>(), ids);
    for (item, (f, i)) in listed.iter().zip(flags.iter().zip(0..)) {
        assert_eq!(&item.flags, f);
        assert_eq!(
            item.received.map(|d| d.timestamp()),
            Some(date_for(i).timestamp())
        );
    }
}

/// A message over the spool threshold goes through on disk both ways: the source spools the
/// literal as it reads it, the sink streams the APPEND from the spool (here as a synchronising
/// literal, with no UIDPLUS so the copy is found again by its header and hash), and what the
/// destination serves is byte-identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_spool_threshold_streams_both_ways() {
    let src_d = Dovecot::start(Layout::Fs);
    src_d.add_user("u", "pw");
    let big = generated_message(7, mailferry::body::SPOOL_AT as usize + 1_500_000);
    let small = generated_message(8, 4_000);
    src_d.load(
        "u",
        &["INBOX"],
        &[
            (big.clone(), flags_for(1), date_for(1)),
            (small.clone(), flags_for(2), date_for(2)),
        ],
    );
    let (metas, bodies) = read_folder(&src_d, "INBOX").await;
    assert!(matches!(bodies[0].1, Body::Spooled(_)), "{:?}", bodies[0].1);
    assert!(matches!(bodies[1].1, Body::Memory(_)));
    assert!(bodies[0].1 == big && bodies[1].1 == small);
    assert_eq!(bodies[0].1.bytes().expect("read spool").into_owned(), big);

    let plain = "imap_capability = IMAP4rev1 SASL-IR ID ENABLE IDLE NAMESPACE CHILDREN SPECIAL-USE CONDSTORE";
    let dst_d = Dovecot::start_with(Layout::Fs, plain);
    dst_d.add_user("u", "pw");
    let sink = ImapSink::connect(dovecot_endpoint(&dst_d), login("u", "pw"), 1)
        .await
        .expect("sink");
    assert!(!sink.capabilities().literal_plus() && !sink.capabilities().uidplus());
    let folder = sink
        .ensure_folder(&FolderPath::parse("Big", None).expect("p"), None)
        .await
        .expect("folder");
    let items: Vec<AppendItem> = bodies
        .iter()
        .zip(&metas)
        .map(|((_, b), m)| AppendItem {
            body: b,
            flags: &m.flags,
            internal_date: m.internal_date,
        })
        .collect();
    let ids: Vec<String> = sink
        .append_batch(&folder, &items)
        .await
        .into_iter()
        .map(|r| r.expect("append"))
        .collect();
    assert_eq!(ids.len(), 2);
    let (_, copied) = read_folder(&dst_d, "Big").await;
    assert_eq!(copied.len(), 2);
    assert!(
        copied[0].1 == big,
        "the large message differs after the copy"
    );
    assert!(copied[1].1 == small);
}

/// Every message of user `u`'s folder `raw_name`: metadata and bodies, in UID order.
async fn read_folder(d: &Dovecot, raw_name: &str) -> (Vec<MessageMeta>, Vec<(Uid, Body)>) {
    let mut src = ImapSource::connect(dovecot_endpoint(d), login("u", "pw"))
        .await
        .expect("source");
    let folder = src
        .list_folders()
        .await
        .expect("list")
        .into_iter()
        .find(|f| f.raw_name == raw_name)
        .expect("folder listed");
    let metas = src.fetch_meta(&folder, None).await.expect("meta");
    let uids: Vec<Uid> = metas.iter().map(|m| m.uid).collect();
    let bodies = src.fetch_bodies(&folder, &uids).await.expect("bodies");
    src.logout().await;
    (metas, bodies)
}

/// A gate that lets `open` checks through, then refuses: a worker whose lease clock ran out
/// (frozen past it) in the middle of its writes.
struct ClosingAfter {
    open: usize,
    seen: std::sync::atomic::AtomicUsize,
}

impl SendGate for ClosingAfter {
    fn may_send(&self, mailbox: &str) -> Result<(), String> {
        if self.seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < self.open {
            Ok(())
        } else {
            Err(format!("the lease of {mailbox} was not renewed in time"))
        }
    }
}

/// With MULTIAPPEND (a batch is one command) and without it (one APPEND each, as a server
/// without LITERAL+ makes us send them), nothing is sent once the gate closes, and what was
/// sent before is stored and reported as such.
#[tokio::test]
async fn a_closed_send_gate_stops_the_appends_mid_batch() {
    let plain = "imap_capability = IMAP4rev1 SASL-IR ID ENABLE IDLE NAMESPACE CHILDREN SPECIAL-USE CONDSTORE UIDPLUS";
    for (caps, open, stored) in [(None, 2, 12), (Some(plain), 1 + 5, 5)] {
        let d = match caps {
            None => Dovecot::start(Layout::Fs),
            Some(c) => Dovecot::start_with(Layout::Fs, c),
        };
        d.add_user("u", "pw");
        let sink = ImapSink::connect(dovecot_endpoint(&d), login("u", "pw"), 1)
            .await
            .expect("sink")
            .with_send_gate(
                std::sync::Arc::new(ClosingAfter {
                    open,
                    seen: Default::default(),
                }),
                "u@x",
            );
        let folder = sink
            .ensure_folder(&FolderPath::parse("Gated", Some('/')).expect("p"), None)
            .await
            .expect("folder");
        let raws: Vec<Body> = (0..12)
            .map(|i| Body::from(generated_message(i, 1_200 + i * 10)))
            .collect();
        let flags = Flags::default();
        let items: Vec<AppendItem> = raws
            .iter()
            .enumerate()
            .map(|(i, body)| AppendItem {
                body,
                flags: &flags,
                internal_date: date_for(i),
            })
            .collect();
        // MULTIAPPEND: the first batch (checked at its start and before its one command) goes
        // whole; the second is refused whole.
        let mut results = sink.append_batch(&folder, &items).await;
        if caps.is_none() {
            assert!(results.iter().all(Result::is_ok), "{results:?}");
            results = sink.append_batch(&folder, &items).await;
            assert!(results.iter().all(Result::is_err), "{results:?}");
        } else {
            let ok = results.iter().take_while(|r| r.is_ok()).count();
            assert_eq!(ok, stored, "{results:?}");
            assert!(results[ok..].iter().all(Result::is_err), "{results:?}");
        }
        let refused = results
            .iter()
            .find_map(|r| r.as_ref().err())
            .expect("refused");
        assert!(
            refused.to_string().contains("was not renewed in time")
                && refused.to_string().contains("Gated"),
            "{refused}"
        );
        let listed = sink.list_items(&folder).await.expect("list");
        assert_eq!(listed.len(), stored, "what the destination holds");
    }
}
