//! Every corpus message through importMime (byte-exact) and through the JSON route (fields).

use chrono::{DateTime, Utc};
use futures::StreamExt;
use mail_parser::{MessageParser, MimeHeaders, PartType};
use mailferry::sink::graph::{Route, STAMP_PROPERTY};

use super::corpus::all_messages;
use super::*;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .with_timezone(&Utc)
}

/// Writes every corpus message into `Corpus` of `user`; returns (name, raw, flags, id) per message.
async fn write_corpus(
    app: &mailferry::sink::graph::GraphApp,
    user: &str,
) -> Vec<(u32, String, Vec<u8>, Flags, String)> {
    let mb = app.mailbox(user);
    let folder = mb
        .ensure_folder(None, &["Corpus".to_owned()])
        .await
        .unwrap();
    let msgs = all_messages();
    let results: Vec<_> = futures::stream::iter(msgs.into_iter().enumerate())
        .map(|(i, (name, raw))| {
            let mb = mb.clone();
            let folder = folder.clone();
            async move {
                let flags = flags_for(i);
                let id = identity(user, "Corpus", i as u32 + 1, &raw);
                let mid = message_id_of(&raw);
                let r = mb
                    .write(
                        &folder,
                        &outgoing(&Body::from(raw.clone()), &flags, &id, mid.as_deref()),
                    )
                    .await;
                (i as u32 + 1, name, raw, flags, r)
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let mut out: Vec<_> = results
        .into_iter()
        .map(|(uid, name, raw, flags, r)| {
            let id = r.unwrap_or_else(|e| panic!("{name}: {e}"));
            (uid, name, raw, flags, id)
        })
        .collect();
    out.sort_by_key(|w| w.0);
    out
}

fn check_flags(name: &str, item: &mailferry::emulator::ItemView, flags: &Flags) {
    assert_eq!(item.is_read, flags.seen, "{name}");
    assert_eq!(item.flag_status == "flagged", flags.flagged, "{name}");
    assert_eq!(
        item.categories,
        flags.keywords.iter().cloned().collect::<Vec<_>>(),
        "{name}"
    );
    let verb = item
        .extended_properties
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Integer 0x1081"))
        .map(|(_, v)| v.as_str());
    let want = if flags.answered {
        Some("102")
    } else if flags.forwarded {
        Some("104")
    } else {
        None
    };
    assert_eq!(verb, want, "{name}");
}

fn stamp_of(item: &mailferry::emulator::ItemView) -> Option<&str> {
    item.extended_properties
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(STAMP_PROPERTY))
        .map(|(_, v)| v.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_through_import_mime_is_byte_identical_stamped_and_not_draft() {
    let emu = emulator(emulator_config()).await;
    let app = app(&emu, Route::ImportMime);
    let user = "corpus-mime@contoso.example";
    let written = write_corpus(&app, user).await;
    let insp = emu.inspect();
    let mut fallbacks = Vec::new();
    let view = insp.mailbox(user).unwrap();
    assert_eq!(
        view.items_in("Corpus").len(),
        written.len(),
        "exactly one item per message"
    );
    for (uid, name, raw, flags, id) in &written {
        let item = insp
            .item(user, id)
            .unwrap_or_else(|| panic!("{name}: item {id} missing"));
        assert!(!item.is_draft, "{name} is a draft");
        if !item.has_raw_mime {
            // importMime refused this MIME: the message went JSON instead of failing.
            fallbacks.push(name.clone());
            continue;
        }
        assert_eq!(
            insp.raw_mime(user, id).as_deref(),
            Some(raw.as_slice()),
            "{name}: bytes differ"
        );
        assert!(!item.is_draft, "{name} is a draft");
        assert_eq!(
            stamp_of(&item),
            Some(identity(user, "Corpus", *uid, raw).to_stamp().as_str()),
            "{name}"
        );
        check_flags(name, &item, flags);
    }
    let refused = insp
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/importMime") && r.status == 400)
        .count();
    assert_eq!(
        fallbacks.len(),
        refused,
        "only MIME the service refused went JSON: {fallbacks:?}"
    );
    assert!(fallbacks.len() * 10 < written.len(), "{fallbacks:?}");
    assert!(
        !app.import_mime_refused(),
        "refusing one message's MIME does not switch the run to JSON"
    );
    // $value through the sink agrees, and the stamp finds each item (a sample: every 25th)
    let mb = app.mailbox(user);
    let folder = mb
        .ensure_folder(None, &["Corpus".to_owned()])
        .await
        .unwrap();
    for (uid, name, raw, _, id) in written
        .iter()
        .filter(|w| !fallbacks.contains(&w.1))
        .step_by(25)
    {
        assert_eq!(
            mb.read_mime(id).await.unwrap().as_ref(),
            raw.as_slice(),
            "{name}"
        );
        let found = mb
            .find_by_stamp(&folder, &identity(user, "Corpus", *uid, raw))
            .await
            .unwrap();
        assert_eq!(found, vec![id.clone()], "{name}");
    }
    let listed = mb.list_items(&folder).await.unwrap();
    assert_eq!(listed.len(), written.len());
    assert!(
        listed.iter().all(|d| d.stamp.is_some()),
        "every listed item carries a parsable stamp"
    );
    let mut stamps: Vec<_> = listed
        .iter()
        .filter_map(|d| d.stamp.clone())
        .map(|s| s.to_stamp())
        .collect();
    stamps.sort();
    stamps.dedup();
    assert_eq!(stamps.len(), written.len());
    assert!(assert_requests_valid(&emu) > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_through_json_carries_subject_addresses_dates_flags_attachments() {
    let emu = emulator(emulator_config()).await;
    let app = app(&emu, Route::Json);
    let user = "corpus-json@contoso.example";
    let written = write_corpus(&app, user).await;
    let insp = emu.inspect();
    assert_eq!(
        insp.mailbox(user).unwrap().items_in("Corpus").len(),
        written.len()
    );
    let internal = utc(INTERNAL_DATE);
    let mut with_attachments = 0;
    for (_, name, raw, flags, id) in &written {
        let item = insp.item(user, id).unwrap();
        assert!(!item.has_raw_mime, "{name} should have gone the JSON route");
        assert!(!item.is_draft, "{name} is a draft");
        let m = MessageParser::default().parse(raw.as_slice()).unwrap();
        let subject: String = m.subject().unwrap_or("").chars().take(255).collect();
        assert_eq!(item.subject.as_deref().unwrap_or(""), subject, "{name}");
        if let Some(from) = m
            .from()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .filter(|a| a.contains('@'))
        {
            assert_eq!(
                item.properties["from"]["emailAddress"]["address"].as_str(),
                Some(from.trim()),
                "{name}"
            );
        }
        let to: Vec<&str> = m
            .to()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.address())
                    .filter(|x| x.contains('@'))
                    .collect()
            })
            .unwrap_or_default();
        let got: Vec<&str> = item.properties["toRecipients"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r["emailAddress"]["address"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(
            got,
            to.iter().map(|s| s.trim()).collect::<Vec<_>>(),
            "{name}"
        );
        assert_eq!(
            utc(item.received_date_time.as_deref().unwrap()),
            internal,
            "{name}: received = INTERNALDATE"
        );
        let sent = utc(item.sent_date_time.as_deref().unwrap());
        match m.date().filter(|d| d.is_valid()) {
            Some(d) => assert_eq!(
                sent.timestamp(),
                d.to_timestamp(),
                "{name}: sent = Date header"
            ),
            None => assert_eq!(
                sent, internal,
                "{name}: no Date header: sent = INTERNALDATE"
            ),
        }
        if let Some(mid) = m
            .message_id()
            .filter(|id| id.contains('@') && id.is_ascii())
        {
            assert_eq!(
                item.internet_message_id.as_deref(),
                Some(format!("<{mid}>").as_str()),
                "{name}"
            );
        }
        check_flags(name, &item, flags);
        let want: Vec<(usize, Option<String>)> = m
            .attachments()
            .filter(|p| !matches!(p.body, PartType::Multipart(_)))
            .map(|p| {
                (
                    p.contents().len(),
                    p.content_id()
                        .map(|c| c.trim_matches(['<', '>', ' ']).to_owned()),
                )
            })
            .collect();
        let got: Vec<(usize, Option<String>)> = item
            .attachments
            .iter()
            .map(|a| (a.size, a.content_id.clone()))
            .collect();
        assert_eq!(got, want, "{name}: attachments");
        with_attachments += usize::from(!want.is_empty());
        assert!(
            !item
                .extended_properties
                .iter()
                .any(|(k, v)| k.contains("MailferryIncomplete") && v == "1"),
            "{name} left marked incomplete"
        );
    }
    assert!(
        with_attachments > 10,
        "the corpus exercises attachments ({with_attachments})"
    );
    assert!(assert_requests_valid(&emu) > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drafts_stay_drafts_only_on_the_json_route_and_big_mime_falls_back_to_json() {
    let emu = emulator(emulator_config()).await;
    let app = app(&emu, Route::ImportMime);
    let user = "drafts@contoso.example";
    let mb = app.mailbox(user);
    let drafts = mb.ensure_folder(Some("drafts"), &[]).await.unwrap();
    let raw = simple_message(1);
    let flags = Flags::from_atoms(["\\Draft", "\\Seen"]);
    let id = identity(user, "Drafts", 1, &raw);
    let item = mb
        .write(
            &drafts,
            &outgoing(
                &Body::from(raw.clone()),
                &flags,
                &id,
                Some("<m1.test@example.org>"),
            ),
        )
        .await
        .unwrap();
    let view = emu.inspect().item(user, &item).unwrap();
    assert!(view.is_draft, "a \\Draft source stays a draft");
    assert!(
        !view.has_raw_mime,
        "drafts need PR_MESSAGE_FLAGS at creation: JSON route"
    );

    // 3.5 MB of text becomes > 4 MiB of base64: JSON, automatically
    let inbox = mb.ensure_folder(Some("inbox"), &[]).await.unwrap();
    let mut big = simple_message(2);
    big.extend(
        std::iter::repeat_n(
            b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n".as_slice(),
            55_000,
        )
        .flatten(),
    );
    let none = Flags::default();
    let id = identity(user, "INBOX", 2, &big);
    let big_body = Body::from(big.clone());
    let msg = outgoing(&big_body, &none, &id, Some("<m2.test@example.org>"));
    assert_eq!(mb.route_for(&msg), Route::Json);
    let item = mb.write(&inbox, &msg).await.unwrap();
    let view = emu.inspect().item(user, &item).unwrap();
    assert!(!view.is_draft && !view.has_raw_mime);
    assert!(assert_requests_valid(&emu) > 0);
}
