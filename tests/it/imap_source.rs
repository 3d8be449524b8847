//! The IMAP reader against real Dovecot instances: connection security, logins, errors, folder
//! listing on both layouts, metadata and bodies, CONDSTORE, and surviving a server restart.

use std::collections::BTreeMap;
use std::time::Duration;

use mailferry::model::{Flags, SourceFolder, SpecialUse, Uid};
use mailferry::secret::Secret;
use mailferry::source::imap::{ImapAuth, ImapEndpoint, ImapSource, Security};

use crate::support::corpus::{corpus_messages, date_for, flags_for, generated_message, imap_ready};
use crate::support::dovecot::{Dovecot, Layout, MASTER_PASSWORD};

fn endpoint(d: &Dovecot, security: Security) -> ImapEndpoint {
    let port = if security == Security::Tls {
        d.port_tls()
    } else {
        d.port_plain()
    };
    ImapEndpoint {
        host: if security == Security::Plain {
            "127.0.0.1".into()
        } else {
            "localhost".into()
        },
        port,
        security,
        ca_file: Some(d.ca_pem_path()),
        insecure: false,
        timeout: Duration::from_secs(20),
    }
}

fn login(user: &str, password: &str) -> ImapAuth {
    ImapAuth::Login {
        user: user.into(),
        password: Secret::from(password),
    }
}

async fn folder(src: &mut ImapSource, segments: &[&str]) -> SourceFolder {
    let all = src.list_folders().await.expect("list");
    all.into_iter()
        .find(|f| f.path.segments() == segments)
        .unwrap_or_else(|| panic!("folder {segments:?} not listed"))
}

#[tokio::test]
async fn tls_starttls_and_loopback_plain_all_log_in() {
    let d = Dovecot::start(Layout::Fs);
    d.add_user("alice", "pw-alice");
    for security in [Security::Tls, Security::StartTls, Security::Plain] {
        let mut src = ImapSource::connect(endpoint(&d, security), login("alice", "pw-alice"))
            .await
            .unwrap_or_else(|e| panic!("{security:?}: {e}"));
        assert!(src.capabilities().uidplus() && src.capabilities().condstore());
        assert!(
            !src.capabilities().starttls() || security == Security::Plain,
            "{security:?} caps after TLS"
        );
        let folders = src.list_folders().await.expect("list");
        assert!(
            folders
                .iter()
                .any(|f| f.special_use == Some(SpecialUse::Inbox))
        );
        src.logout().await;
    }
}

#[tokio::test]
async fn master_login_and_plain_authzid_act_as_the_user() {
    let d = Dovecot::start(Layout::Fs);
    d.add_user("alice", "pw-alice");
    d.create_folder("alice", &["Only Alice"]);
    let auths = [
        login("alice*master", MASTER_PASSWORD),
        ImapAuth::Plain {
            authzid: Some("alice".into()),
            authcid: "master".into(),
            password: Secret::from(MASTER_PASSWORD),
        },
    ];
    for auth in auths {
        let mut src = ImapSource::connect(endpoint(&d, Security::Tls), auth.clone())
            .await
            .unwrap_or_else(|e| panic!("{auth:?}: {e}"));
        let names: Vec<String> = src
            .list_folders()
            .await
            .expect("list")
            .into_iter()
            .map(|f| f.raw_name)
            .collect();
        assert!(names.contains(&"Only Alice".to_owned()), "{names:?}");
        src.logout().await;
    }
}

#[tokio::test]
async fn xoauth2_token_is_sent_and_a_bad_one_is_an_auth_failure() {
    let d = Dovecot::start(Layout::Fs);
    // Without an oauth2 passdb, Dovecot checks the bearer token like a password.
    d.add_user("bob", "token-123");
    let ok = ImapAuth::XOAuth2 {
        user: "bob".into(),
        token: Secret::from("token-123"),
    };
    let src = ImapSource::connect(endpoint(&d, Security::Tls), ok)
        .await
        .expect("xoauth2 login");
    src.logout().await;
    let bad = ImapAuth::XOAuth2 {
        user: "bob".into(),
        token: Secret::from("expired"),
    };
    let err = ImapSource::connect(endpoint(&d, Security::Tls), bad)
        .await
        .expect_err("bad token");
    assert!(err.is_auth_failure(), "{err}");
    assert!(!err.to_string().contains("expired"), "token leaked: {err}");
}

#[tokio::test]
async fn errors_are_classified_and_carry_no_secret() {
    let a = Dovecot::start(Layout::Fs);
    let b = Dovecot::start(Layout::Fs);
    a.add_user("alice", "pw-alice");
    b.add_user("alice", "pw-alice");

    let err = ImapSource::connect(endpoint(&a, Security::Tls), login("alice", "wrong-pw"))
        .await
        .expect_err("wrong password");
    assert!(err.is_auth_failure() && !err.is_retryable(), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("alice") && text.contains("localhost") && !text.contains("wrong-pw"),
        "{text}"
    );

    // A port nobody listens on: bind, note, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let mut ep = endpoint(&a, Security::Tls);
    ep.port = port;
    let err = ImapSource::connect(ep, login("alice", "pw-alice"))
        .await
        .expect_err("closed port");
    assert!(err.is_connect() && err.is_retryable(), "{err}");

    // b's certificate is signed by b's CA, not by the CA we trust (a's).
    let mut ep = endpoint(&b, Security::Tls);
    ep.ca_file = Some(a.ca_pem_path());
    let err = ImapSource::connect(ep.clone(), login("alice", "pw-alice"))
        .await
        .expect_err("untrusted cert");
    assert!(err.is_tls(), "{err}");
    let mut ep_st = endpoint(&b, Security::StartTls);
    ep_st.ca_file = Some(a.ca_pem_path());
    let err = ImapSource::connect(ep_st, login("alice", "pw-alice"))
        .await
        .expect_err("untrusted cert (STARTTLS)");
    assert!(err.is_tls(), "{err}");
    // No CA file at all: webpki roots do not know the throwaway CA.
    let mut ep_none = endpoint(&a, Security::Tls);
    ep_none.ca_file = None;
    assert!(
        ImapSource::connect(ep_none, login("alice", "pw-alice"))
            .await
            .expect_err("no CA")
            .is_tls()
    );
    ep.insecure = true;
    ImapSource::connect(ep, login("alice", "pw-alice"))
        .await
        .expect("insecure accepts any certificate")
        .logout()
        .await;

    // Plaintext to a non-loopback host is refused before any packet is sent.
    let mut ep = endpoint(&a, Security::Plain);
    ep.host = "192.0.2.1".into();
    let err = ImapSource::connect(ep, login("alice", "pw-alice"))
        .await
        .expect_err("plaintext refused");
    assert!(
        !err.is_retryable() && err.to_string().contains("loopback"),
        "{err}"
    );
}

/// The tree both layout tests create (decoded segments).
fn tree() -> Vec<Vec<&'static str>> {
    vec![
        vec!["Entwürfe privat"],
        vec!["日本語", "Ελληνικά"],
        vec!["My Folder", "with spaces "],
        vec!["L1", "L2", "L3", "L4", "L5", "L6", "L7"],
        vec!["Amp & Co"],
    ]
}

async fn check_listing(layout: Layout, extra: &[Vec<&str>]) {
    let d = Dovecot::start(layout);
    d.add_user("carol", "pw");
    let mut all = tree();
    all.extend(extra.iter().cloned());
    for f in &all {
        d.create_folder("carol", f);
    }
    let mut src = ImapSource::connect(endpoint(&d, Security::Tls), login("carol", "pw"))
        .await
        .expect("connect");
    let folders = src.list_folders().await.expect("list");
    let by_path: BTreeMap<Vec<String>, &SourceFolder> = folders
        .iter()
        .map(|f| (f.path.segments().to_vec(), f))
        .collect();
    for f in &all {
        let key: Vec<String> = f.iter().map(|s| s.to_string()).collect();
        let got = by_path
            .get(&key)
            .unwrap_or_else(|| panic!("{layout:?}: {key:?} missing from {:?}", by_path.keys()));
        assert!(got.selectable, "{key:?}");
        assert_eq!(got.delimiter, Some(layout.separator()));
        // The raw name must be usable as is: EXAMINE it.
        let status = src
            .select(got)
            .await
            .unwrap_or_else(|e| panic!("{layout:?} EXAMINE {}: {e}", got.raw_name));
        assert_eq!(status.exists, 0);
    }
    let deep = by_path
        .get(
            &["L1", "L2", "L3", "L4", "L5", "L6"]
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        )
        .expect("intermediate level listed");
    assert_eq!(deep.path.depth(), 6);
    for (name, use_) in [
        ("Sent", SpecialUse::Sent),
        ("Drafts", SpecialUse::Drafts),
        ("Trash", SpecialUse::Trash),
        ("Junk", SpecialUse::Junk),
        ("Archive", SpecialUse::Archive),
        ("INBOX", SpecialUse::Inbox),
    ] {
        let f = by_path
            .get(&vec![name.to_string()])
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(f.special_use, Some(use_), "{name}");
    }
    assert!(
        folders
            .iter()
            .any(|f| f.raw_name.contains('&') && f.raw_name.contains('-')),
        "UTF-7 raw names kept"
    );
    src.logout().await;
}

#[tokio::test]
async fn lists_a_tricky_tree_on_the_fs_layout() {
    check_listing(Layout::Fs, &[vec!["dotted.name"]]).await;
}

#[tokio::test]
async fn lists_a_tricky_tree_on_maildir_plus_plus_with_a_slash_in_a_name() {
    check_listing(Layout::MaildirPlusPlus, &[vec!["Invoices 2023/2024"]]).await;
}

#[tokio::test]
async fn metadata_and_bodies_match_what_was_loaded() {
    let d = Dovecot::start(Layout::Fs);
    d.add_user("dave", "pw");
    let corpus = corpus_messages();
    assert!(corpus.len() > 200, "corpus has {} messages", corpus.len());
    let mut loaded: Vec<(Vec<u8>, Flags, chrono::DateTime<chrono::FixedOffset>)> = corpus
        .iter()
        .enumerate()
        .map(|(i, (_, raw))| (imap_ready(raw), flags_for(i), date_for(i)))
        .collect();
    // Plus generated messages of a few sizes, one bigger than a read buffer.
    for (k, size) in [1_000usize, 70_000, 300_000, 2_500_000].iter().enumerate() {
        let i = loaded.len();
        loaded.push((generated_message(900 + k, *size), flags_for(i), date_for(i)));
    }
    let uids = d.load("dave", &["Archive", "Corpus"], &loaded);
    assert_eq!(uids.len(), loaded.len());
    let mut src = ImapSource::connect(endpoint(&d, Security::Tls), login("dave", "pw"))
        .await
        .expect("connect");
    let f = folder(&mut src, &["Archive", "Corpus"]).await;
    let status = src.select(&f).await.expect("examine");
    assert_eq!(status.exists as usize, loaded.len());
    let metas = src.fetch_meta(&f, None).await.expect("meta");
    assert_eq!(metas.len(), status.exists as usize);
    // STATUS SIZE equals the sum of RFC822.SIZE, and each size equals the loaded bytes.
    let total: u64 = metas.iter().map(|m| m.size).sum();
    assert_eq!(src.status_size(&f).await.expect("status size"), Some(total));
    let dovecot_status = d.raw("dave", "STATUS \"Archive/Corpus\" (MESSAGES)");
    assert!(
        dovecot_status
            .iter()
            .any(|l| l.contains(&format!("MESSAGES {}", metas.len()))),
        "{dovecot_status:?}"
    );
    let mut without_id = 0;
    for (m, (raw, flags, date)) in metas.iter().zip(&loaded) {
        assert_eq!(m.size, raw.len() as u64, "UID {}", m.uid);
        assert_eq!(&m.flags, flags, "UID {}", m.uid);
        assert_eq!(
            m.internal_date.timestamp(),
            date.timestamp(),
            "UID {}",
            m.uid
        );
        assert!(m.modseq.is_some());
        if m.message_id.is_none() {
            without_id += 1;
        }
    }
    assert!(
        without_id > 10,
        "corpus messages without Message-ID: {without_id}"
    );
    let all: Vec<Uid> = metas.iter().map(|m| m.uid).collect();
    let bodies = src.fetch_bodies(&f, &all).await.expect("bodies");
    assert_eq!(bodies.len(), loaded.len());
    for ((uid, body), (raw, _, _)) in bodies.iter().zip(&loaded) {
        assert!(
            body == raw,
            "UID {uid}: body differs ({} vs {} bytes)",
            body.len(),
            raw.len()
        );
    }
    // An expunged UID is simply absent.
    let gone = Uid::new(uids[0]).expect("uid");
    let lines = expunge_uid(&d, "dave", "Archive/Corpus", uids[0]);
    assert!(lines.iter().any(|l| l.starts_with("d OK")), "{lines:?}");
    let second = Uid::new(uids[1]).expect("uid");
    let bodies = src
        .fetch_bodies(&f, &[gone, second])
        .await
        .expect("bodies after expunge");
    assert_eq!(
        bodies.iter().map(|(u, _)| *u).collect::<Vec<_>>(),
        vec![second]
    );
    src.logout().await;
}

/// Deletes one message by UID through a short raw session (SELECT + UID EXPUNGE in one login).
fn expunge_uid(d: &Dovecot, user: &str, folder: &str, uid: u32) -> Vec<String> {
    use std::io::{BufRead, BufReader, Write};
    let stream = std::net::TcpStream::connect(("127.0.0.1", d.port_plain())).expect("connect");
    let mut w = stream.try_clone().expect("clone");
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    r.read_line(&mut line).expect("greeting");
    w.write_all(
        format!("a LOGIN {user} pw\r\nb SELECT \"{folder}\"\r\nc UID STORE {uid} +FLAGS.SILENT (\\Deleted)\r\nd UID EXPUNGE {uid}\r\ne LOGOUT\r\n")
            .as_bytes(),
    )
    .expect("write");
    let mut lines = Vec::new();
    loop {
        line.clear();
        if r.read_line(&mut line).expect("read") == 0 {
            break;
        }
        lines.push(line.trim_end().to_owned());
        if line.starts_with("e ") {
            break;
        }
    }
    lines
}

#[tokio::test]
async fn changedsince_returns_only_changed_messages() {
    let d = Dovecot::start(Layout::MaildirPlusPlus);
    d.add_user("erin", "pw");
    let msgs: Vec<_> = (0..20)
        .map(|i| (generated_message(i, 2_000), Flags::default(), date_for(i)))
        .collect();
    let uids = d.load("erin", &["Work"], &msgs);
    let mut src = ImapSource::connect(endpoint(&d, Security::Tls), login("erin", "pw"))
        .await
        .expect("connect");
    let f = folder(&mut src, &["Work"]).await;
    let before = src.select(&f).await.expect("examine");
    let modseq = before
        .highest_modseq
        .expect("CONDSTORE gives HIGHESTMODSEQ");
    assert!(
        src.fetch_meta(&f, Some(modseq))
            .await
            .expect("nothing changed")
            .is_empty()
    );
    let changed = [uids[3], uids[11]];
    for uid in changed {
        d.store_flags(
            "erin",
            &["Work"],
            uid,
            &Flags::from_atoms(["\\Seen", "Later"]),
        );
    }
    let metas = src.fetch_meta(&f, Some(modseq)).await.expect("changed");
    assert_eq!(
        metas.iter().map(|m| m.uid.get()).collect::<Vec<_>>(),
        changed.to_vec()
    );
    assert!(
        metas
            .iter()
            .all(|m| m.flags.seen && m.flags.keywords.contains("Later") && m.modseq > Some(modseq))
    );
    src.logout().await;
}

#[tokio::test]
async fn a_dovecot_restart_mid_session_is_survived() {
    let d = Dovecot::start(Layout::Fs);
    d.add_user("frank", "pw");
    let msgs: Vec<_> = (0..30)
        .map(|i| (generated_message(i, 5_000), flags_for(i), date_for(i)))
        .collect();
    d.load("frank", &["INBOX"], &msgs);
    let mut src = ImapSource::connect(endpoint(&d, Security::Tls), login("frank", "pw"))
        .await
        .expect("connect");
    let inbox = folder(&mut src, &["INBOX"]).await;
    let first = src.fetch_meta(&inbox, None).await.expect("meta");
    assert_eq!(first.len(), 30);
    d.restart();
    // The old connection is dead; the next reads reconnect, re-select and retry.
    let again = src
        .fetch_meta(&inbox, None)
        .await
        .expect("meta after restart");
    assert_eq!(again, first);
    // The same for the survey's pipelined read: the dead session fails the pipeline's first
    // read, and every folder it did not read is listed again on a new session.
    d.restart();
    let both = src
        .examine_meta_many(&[inbox.clone(), inbox.clone()])
        .await
        .expect("session after restart");
    assert_eq!(both.len(), 2);
    for r in both {
        assert_eq!(r.expect("listed after restart").1, first);
    }
    d.kill();
    d.restart();
    let uids: Vec<Uid> = first.iter().map(|m| m.uid).collect();
    let bodies = src
        .fetch_bodies(&inbox, &uids)
        .await
        .expect("bodies after restart");
    assert_eq!(bodies.len(), 30);
    assert!(
        bodies
            .iter()
            .zip(&msgs)
            .all(|((_, b), (raw, _, _))| b == raw)
    );
    // A server that stays down is a connection error, not a hang.
    d.kill();
    let err = src.fetch_meta(&inbox, None).await.expect_err("server down");
    assert!(err.is_connect() || err.is_connection_drop(), "{err}");
    assert_eq!(err.context().folder.as_deref(), Some("INBOX"), "{err}");
    let down = match src.examine_meta_many(std::slice::from_ref(&inbox)).await {
        Err(e) => e,
        Ok(mut v) => v.pop().expect("one result").expect_err("server down"),
    };
    assert!(down.is_connect() || down.is_connection_drop(), "{down}");
}

/// The survey's read: EXAMINE pipelined with the first metadata page. It must equal `select` then
/// `fetch_meta` for every page size (pages of 1, 7 and 20,000 UIDs, with UID gaps from an
/// expunge), and a folder whose EXAMINE fails must fail alone: its pipelined FETCH must not read
/// the previously selected folder, and the session must stay usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn examine_meta_equals_select_then_fetch_and_a_missing_folder_fails_alone() {
    let d = Dovecot::start(Layout::Fs);
    d.add_user("erin", "pw");
    let msgs: Vec<_> = (0..40)
        .map(|i| {
            (
                generated_message(i, 2_000 + i * 100),
                flags_for(i),
                date_for(i),
            )
        })
        .collect();
    let uids = d.load("erin", &["Work"], &msgs);
    let lines = expunge_uid(&d, "erin", "Work", uids[5]);
    assert!(lines.iter().any(|l| l.starts_with("d OK")), "{lines:?}");
    let mut src = ImapSource::connect(endpoint(&d, Security::Tls), login("erin", "pw"))
        .await
        .expect("connect");
    let work = folder(&mut src, &["Work"]).await;
    let expected_status = src.select(&work).await.expect("examine");
    let expected = src.fetch_meta(&work, None).await.expect("meta");
    assert_eq!(expected.len(), 39);
    for page in [1, 7, 20_000] {
        src.set_meta_page(page);
        let (status, metas) = src.examine_meta(&work).await.expect("examine_meta");
        assert_eq!(status, expected_status, "page {page}");
        assert_eq!(metas, expected, "page {page}");
    }
    let mut gone = work.clone();
    gone.raw_name = "Gone".into();
    let err = src.examine_meta(&gone).await.expect_err("no such folder");
    let text = err.to_string();
    assert!(text.contains("Gone") && text.contains("EXAMINE"), "{text}");
    // Still usable, and still reading the right folder.
    let (_, again) = src.examine_meta(&work).await.expect("after a failure");
    assert_eq!(again, expected);

    // Pipelined across folders, a missing one in the middle fails alone and nothing shifts.
    let other_msgs: Vec<_> = (40..43)
        .map(|i| (generated_message(i, 1_000), flags_for(i), date_for(i)))
        .collect();
    d.load("erin", &["Other"], &other_msgs);
    let other = folder(&mut src, &["Other"]).await;
    let other_expected = {
        src.select(&other).await.expect("examine");
        src.fetch_meta(&other, None).await.expect("meta")
    };
    let all = src
        .examine_meta_many(&[work.clone(), gone.clone(), other.clone(), work.clone()])
        .await
        .expect("session");
    assert_eq!(all.len(), 4);
    assert_eq!(all[0].as_ref().expect("work").1, expected);
    assert!(
        all[1]
            .as_ref()
            .is_err_and(|e| e.to_string().contains("Gone"))
    );
    assert_eq!(all[2].as_ref().expect("other").1, other_expected);
    assert_eq!(all[3].as_ref().expect("work again").1, expected);
    src.logout().await;
}
