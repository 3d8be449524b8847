//! The emulator at scale: the work a request costs does not grow with the store (a count of
//! items touched, read from the inspection counters, not wall time), requests are counted by
//! kind, and the `bodies` modes (disk, digest) keep what clients read back.

use std::collections::BTreeMap;

use mailferry::emulator::{BodiesMode, EmulatorConfig};
use reqwest::Method;
use serde_json::{Value, json};

use super::{Emu, MB, b64, corpus};

const STAMP: &str = "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name mailferry-identity";

fn stamp_filter(v: &str) -> String {
    format!("singleValueExtendedProperties/any(ep: ep/id eq '{STAMP}' and ep/value eq '{v}')")
}

fn q(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The requests of one message's life as mailferry's JSON route and resume make them, against a
/// mailbox already holding `n` items; returns the items each request touched, by kind.
async fn one_message_at(n: usize) -> BTreeMap<String, u64> {
    let e = Emu::default().await;
    e.h.inspect()
        .seed_items(MB, "inbox", n, Some(STAMP))
        .expect("seeding");
    let base = format!("/users/{MB}");
    let sel = "$select=id,internetMessageId,isRead&$top=200";
    let mut steps: Vec<(&str, u16, reqwest::Response)> = Vec::new();
    let r = e
        .post(
            &format!("{base}/mailFolders/inbox/messages"),
            &json!({
                "subject": "new", "body": {"contentType": "text", "content": "hi"},
                "internetMessageId": "<new@example.org>",
                "singleValueExtendedProperties": [
                    {"id": "Integer 0x0E07", "value": "1"},
                    {"id": STAMP, "value": "INBOX/1/new"}]
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.json);
    let id = r.json["id"].as_str().unwrap().to_owned();
    let att = json!({"@odata.type": "#microsoft.graph.fileAttachment", "name": "a.txt",
                     "contentBytes": b64(b"attached")});
    let r = e
        .post(&format!("{base}/messages/{id}/attachments"), &att)
        .await;
    assert_eq!(r.status, 201, "{:?}", r.json);
    let r = e
        .post(
            &format!("{base}/messages/{id}/attachments/createUploadSession"),
            &json!({"AttachmentItem": {"attachmentType": "file", "name": "big.bin", "size": 4}}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.json);
    let upload = r.json["uploadUrl"].as_str().unwrap().to_owned();
    let put = e
        .http
        .put(&upload)
        .header("Content-Range", "bytes 0-3/4")
        .body(b"data".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 201);
    let r = e
        .json(
            Method::PATCH,
            &format!("{base}/messages/{id}"),
            &json!({"isRead": false, "singleValueExtendedProperties": [{"id": STAMP, "value": "INBOX/1/new"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    for (what, path) in [
        (
            "stamp lookup",
            format!(
                "{base}/mailFolders/inbox/messages?$filter={}&{sel}",
                q(&stamp_filter("INBOX/1/new"))
            ),
        ),
        (
            "stamp lookup of a seeded item",
            format!(
                "{base}/mailFolders/inbox/messages?$filter={}&{sel}",
                q(&stamp_filter("seed-7"))
            ),
        ),
        (
            "Message-ID lookup",
            format!(
                "{base}/mailFolders/inbox/messages?$filter={}&{sel}",
                q("internetMessageId eq '<new@example.org>'")
            ),
        ),
        (
            "first page",
            format!("{base}/mailFolders/inbox/messages?{sel}"),
        ),
        ("get", format!("{base}/messages/{id}")),
        ("value", format!("{base}/messages/{id}/$value")),
        ("folder", format!("{base}/mailFolders/inbox")),
    ] {
        let r = e.req(Method::GET, &path).send().await.unwrap();
        steps.push((what, r.status().as_u16(), r));
    }
    for (what, status, r) in steps {
        let body = r.text().await.unwrap();
        assert_eq!(status, 200, "{what}: {body}");
        if what.contains("lookup") {
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["value"].as_array().unwrap().len(), 1, "{what}: {body}");
        }
        if what == "folder" {
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["totalItemCount"], n as u64 + 1, "live count");
        }
    }
    let r = e.delete(&format!("{base}/messages/{id}")).await;
    assert_eq!(r.status, 204);
    let mut out = BTreeMap::new();
    let recs = e.h.inspect().requests();
    for (i, rec) in recs.iter().filter(|r| r.mailbox.is_some()).enumerate() {
        out.insert(
            format!("{i:02} {} {}", rec.method, rec.kind),
            rec.items_visited,
        );
    }
    if n > 1_000 {
        return out;
    }
    // The counter counts scans: a filter no index answers visits every item.
    let r = e
        .get(&format!(
            "{base}/mailFolders/inbox/messages?$filter={}&$top=1",
            q("subject eq 'no such subject'")
        ))
        .await;
    assert_eq!(r.status, 200);
    let last = e.h.inspect().requests().pop().unwrap();
    assert!(
        last.items_visited >= n as u64,
        "an unindexed filter over {n} items visited only {}",
        last.items_visited
    );
    out
}

#[tokio::test]
async fn per_request_work_does_not_grow_with_the_mailbox() {
    let small = one_message_at(500).await;
    let large = one_message_at(50_000).await;
    assert_eq!(
        small.keys().collect::<Vec<_>>(),
        large.keys().collect::<Vec<_>>()
    );
    for (k, s) in &small {
        let l = large[k];
        assert!(
            l <= 2 * (*s).max(1),
            "{k}: {l} items touched at 50,000 against {s} at 500"
        );
    }
    let total = |m: &BTreeMap<String, u64>| m.values().sum::<u64>();
    assert!(
        total(&large) <= 2 * total(&small),
        "{large:?} against {small:?}"
    );
}

#[tokio::test]
async fn requests_are_counted_by_kind() {
    let e = Emu::default().await;
    let r = e
        .post(
            &format!("/users/{MB}/mailFolders/inbox/messages"),
            &json!({"subject": "x"}),
        )
        .await;
    let id = r.json["id"].as_str().unwrap().to_owned();
    e.json(
        Method::PATCH,
        &format!("/users/{MB}/messages/{id}"),
        &json!({"isRead": true}),
    )
    .await;
    e.get(&format!(
        "/users/{MB}/mailFolders/inbox/messages?$filter={}",
        q("internetMessageId eq '<x@y>'")
    ))
    .await;
    e.get(&format!("/users/{MB}/mailFolders/inbox/messages"))
        .await;
    e.import("inbox", b"Subject: i\r\n\r\nbody").await;
    let c = e.h.inspect().counters();
    let k = &c.mailboxes["alice@contoso.example"].by_kind;
    for (kind, n) in [
        ("create", 1),
        ("PATCH", 1),
        ("lookup", 1),
        ("list", 1),
        ("importMime", 1),
    ] {
        assert_eq!(k.get(kind).copied(), Some(n), "{kind} in {k:?}");
    }
}

fn cfg(bodies: BodiesMode) -> EmulatorConfig {
    EmulatorConfig {
        bodies: Some(bodies),
        ..EmulatorConfig::default()
    }
}

#[tokio::test]
async fn bodies_on_disk_read_back_exactly() {
    let e = Emu::start(cfg(BodiesMode::Disk)).await;
    let raw = corpus("cpython-email/msg_02.txt");
    let imported = e.import("inbox", &raw).await;
    let id = imported["id"].as_str().unwrap();
    let v = e.get(&format!("/users/{MB}/messages/{id}/$value")).await;
    assert_eq!(v.status, 200);
    assert_eq!(
        v.bytes, raw,
        "importMime bytes come back from the spill file"
    );
    assert_eq!(e.h.inspect().raw_mime(MB, id).unwrap(), raw);
    let r = e
        .post(
            &format!("/users/{MB}/mailFolders/inbox/messages"),
            &json!({"subject": "d", "body": {"contentType": "html", "content": "<p>spilled</p>"},
                    "attachments": [{"@odata.type": "#microsoft.graph.fileAttachment",
                                     "name": "a.bin", "contentBytes": b64(b"\x00\x01\x02")}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.json);
    assert_eq!(r.json["body"]["content"], "<p>spilled</p>");
    let id = r.json["id"].as_str().unwrap();
    let g = e
        .get(&format!("/users/{MB}/messages/{id}?$expand=attachments"))
        .await;
    assert_eq!(g.json["body"]["content"], "<p>spilled</p>");
    assert_eq!(
        g.json["attachments"][0]["contentBytes"],
        b64(b"\x00\x01\x02")
    );
    let s = e
        .get(&format!("/users/{MB}/messages/{id}?$select=subject"))
        .await;
    assert!(s.json.get("body").is_none(), "{:?}", s.json);
    // A draft's body can still be changed, and the new one is what reads back.
    let p = e
        .json(
            Method::PATCH,
            &format!("/users/{MB}/messages/{id}"),
            &json!({"body": {"contentType": "text", "content": "second"}}),
        )
        .await;
    assert_eq!(p.status, 200, "{:?}", p.json);
    let g = e.get(&format!("/users/{MB}/messages/{id}")).await;
    assert_eq!(g.json["body"]["content"], "second");
    assert_eq!(g.json["bodyPreview"], "second");
    let mime = e.get(&format!("/users/{MB}/messages/{id}/$value")).await;
    assert_eq!(mime.status, 200);
    assert!(String::from_utf8_lossy(&mime.bytes).contains("a.bin"));
}

#[tokio::test]
async fn digest_mode_keeps_sizes_and_stamps_but_not_bytes() {
    let raw = corpus("cpython-email/msg_02.txt");
    let mut sizes = Vec::new();
    for mode in [BodiesMode::Memory, BodiesMode::Digest] {
        let e = Emu::start(cfg(mode)).await;
        let id = e.import("inbox", &raw).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let p = e
            .json(
                Method::PATCH,
                &format!("/users/{MB}/messages/{id}"),
                &json!({"singleValueExtendedProperties": [{"id": STAMP, "value": "INBOX/1/1"}]}),
            )
            .await;
        assert_eq!(p.status, 200, "{:?}", p.json);
        let found = e
            .get(&format!(
                "/users/{MB}/mailFolders/inbox/messages?$filter={}",
                q(&stamp_filter("INBOX/1/1"))
            ))
            .await;
        assert_eq!(found.json["value"][0]["id"], id.as_str(), "{mode:?}");
        sizes.push(e.h.inspect().item(MB, &id).unwrap().size);
        let v = e.get(&format!("/users/{MB}/messages/{id}/$value")).await;
        if mode == BodiesMode::Digest {
            assert_eq!(v.status, 501);
            assert_eq!(v.code(), "ErrorEmulatorDigestOnly");
            let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&raw));
            let msg = v.json["error"]["message"].as_str().unwrap();
            assert!(msg.contains(&sha) && msg.contains("digest"), "{msg}");
        } else {
            assert_eq!(v.bytes, raw);
        }
    }
    assert_eq!(sizes[0], sizes[1], "an item counts the same in every mode");
}
