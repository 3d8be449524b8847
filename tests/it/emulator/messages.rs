//! Messages: JSON create with extended properties, importMime (byte-exact), MIME create drafts,
//! GET/$select/$expand, $value, lists with paging and filters, PATCH rules, DELETE.

use reqwest::Method;
use serde_json::{Value, json};

use super::{Emu, MB, b64, corpus};

const STAMP: &str = "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name mailferry-identity";

fn json_message(flags: &str) -> Value {
    json!({
        "subject": "Quarterly numbers",
        "body": {"contentType": "html", "content": "<p>See attached</p>"},
        "from": {"emailAddress": {"name": "Ann", "address": "ann@example.org"}},
        "toRecipients": [{"emailAddress": {"address": "alice@contoso.example"}}],
        "internetMessageId": "<q1@example.org>",
        "importance": "high",
        "categories": ["Finance"],
        "internetMessageHeaders": [{"name": "x-origin", "value": "imap"}],
        "singleValueExtendedProperties": [
            {"id": "Integer 0x0E07", "value": flags},
            {"id": "SystemTime 0x0E06", "value": "2019-10-31T16:38:18Z"},
            {"id": "SystemTime 0x0039", "value": "2019-10-31T16:30:00+01:00"},
            {"id": STAMP, "value": "INBOX/7/42"}
        ]
    })
}

#[tokio::test]
async fn json_create_honours_extended_properties() {
    let e = Emu::default().await;
    let r = e
        .post(
            &format!("/users/{MB}/mailFolders/inbox/messages"),
            &json_message("1"),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.json);
    let m = &r.json;
    assert_eq!(m["isDraft"], false);
    assert_eq!(m["isRead"], true);
    assert_eq!(m["receivedDateTime"], "2019-10-31T16:38:18Z");
    assert_eq!(m["sentDateTime"], "2019-10-31T15:30:00Z");
    assert_eq!(m["importance"], "high");
    assert!(
        m["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("/messages/$entity")
    );
    assert!(
        m.get("internetMessageHeaders").is_none(),
        "only returned when selected"
    );
    let id = m["id"].as_str().unwrap();
    let item = e.h.inspect().item(MB, id).unwrap();
    assert_eq!(item.folder_path, "Inbox");
    assert!(
        item.extended_properties
            .iter()
            .any(|(k, v)| k == STAMP && v == "INBOX/7/42")
    );
    assert!(
        item.extended_properties
            .iter()
            .any(|(k, v)| k == "Integer 0x0E07" && v == "1")
    );
    // Without PR_MESSAGE_FLAGS, a JSON create is a draft.
    let r = e
        .post(
            &format!("/users/{MB}/mailFolders/inbox/messages"),
            &json!({"subject": "d"}),
        )
        .await;
    assert_eq!(r.json["isDraft"], true);
    // Unread, non-draft.
    let r = e
        .post(
            &format!("/users/{MB}/mailFolders/inbox/messages"),
            &json_message("0"),
        )
        .await;
    assert_eq!(
        (r.json["isDraft"].as_bool(), r.json["isRead"].as_bool()),
        (Some(false), Some(false))
    );
    // Bad bodies.
    let r = e
        .post(
            &format!("/users/{MB}/mailFolders/inbox/messages"),
            &json!({"subjekt": "x"}),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = e
        .post(
            &format!("/users/{MB}/mailFolders/inbox/messages"),
            &json!({"internetMessageHeaders": [{"name": "Subject", "value": "x"}]}),
        )
        .await;
    assert_eq!(r.code(), "InvalidInternetMessageHeader");
    let r = e
        .post(
            &format!("/users/{MB}/mailFolders/nope/messages"),
            &json!({"subject": "x"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (404, "ErrorItemNotFound"));
}

#[tokio::test]
async fn import_mime_keeps_bytes_and_value_returns_them() {
    let e = Emu::default().await;
    for name in ["msg_01.txt", "msg_02.txt", "msg_07.txt", "msg_15.txt"] {
        let raw = corpus(&format!("cpython-email/{name}"));
        let m = e.import("inbox", &raw).await;
        assert_eq!(m["isDraft"], false, "{name}");
        let id = m["id"].as_str().unwrap();
        assert_eq!(
            e.h.inspect().raw_mime(MB, id).unwrap(),
            raw,
            "{name} stored byte for byte"
        );
        let v = e.get(&format!("/users/{MB}/messages/{id}/$value")).await;
        assert_eq!(v.status, 200);
        assert_eq!(v.bytes, raw, "{name} $value");
    }
    let raw = b"From: Ann <ann@example.org>\r\nSubject: Hi\r\nDate: Tue, 01 Jan 2019 10:00:00 +0000\r\nMessage-ID: <hi@example.org>\r\n\r\nHello\r\n";
    let m = e.import("inbox", raw).await;
    assert_eq!(m["subject"], "Hi");
    assert_eq!(m["internetMessageId"], "<hi@example.org>");
    assert_eq!(m["sentDateTime"], "2019-01-01T10:00:00Z");
    assert_eq!(m["from"]["emailAddress"]["address"], "ann@example.org");
    let r = e
        .text(
            &format!("/beta/users/{MB}/mailFolders/inbox/importMime"),
            "not base64!!".into(),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (400, "ErrorMimeContentInvalidBase64String")
    );
    let r = e
        .text(
            &format!("/v1.0/users/{MB}/mailFolders/inbox/importMime"),
            b64(raw),
        )
        .await;
    assert_eq!(r.status, 400, "importMime is beta only");
}

#[tokio::test]
async fn mime_create_is_always_a_draft_and_folder_mime_is_refused() {
    let e = Emu::default().await;
    let raw = corpus("cpython-email/msg_01.txt");
    let r = e.text(&format!("/users/{MB}/messages"), b64(&raw)).await;
    assert_eq!(r.status, 201, "{:?}", r.json);
    assert_eq!(r.json["isDraft"], true);
    let item =
        e.h.inspect()
            .item(MB, r.json["id"].as_str().unwrap())
            .unwrap();
    assert_eq!(item.folder_path, "Drafts");
    assert!(item.raw_mime.is_none());
    let id = r.json["id"].as_str().unwrap();
    // The draft bit cannot be cleared.
    let r = e
        .json(
            Method::PATCH,
            &format!("/users/{MB}/messages/{id}"),
            &json!({"singleValueExtendedProperties": [{"id": "Integer 0x0E07", "value": "1"}]}),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = e
        .json(
            Method::PATCH,
            &format!("/users/{MB}/messages/{id}"),
            &json!({"isDraft": false}),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = e
        .text(
            &format!("/users/{MB}/mailFolders/inbox/messages"),
            b64(&raw),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "UnableToDeserializePostBody"));
    let r = e.text(&format!("/users/{MB}/messages"), "@@@".into()).await;
    assert_eq!(r.code(), "ErrorMimeContentInvalidBase64String");
    // $value of a non-MIME item is generated MIME.
    let v = e.get(&format!("/users/{MB}/messages/{id}/$value")).await;
    let text = String::from_utf8_lossy(&v.bytes);
    assert!(text.contains("MIME-Version: 1.0"), "{text}");
}

#[tokio::test]
async fn get_select_expand_and_filters() {
    let e = Emu::default().await;
    let r = e
        .post(
            &format!("/users/{MB}/mailFolders/inbox/messages"),
            &json_message("1"),
        )
        .await;
    let id = r.json["id"].as_str().unwrap().to_owned();
    e.import("inbox", b"Subject: other\r\nMessage-ID: <o@x>\r\n\r\nx\r\n")
        .await;
    let r = e
        .get(&format!(
            "/users/{MB}/messages/{id}?$select=subject,isRead,internetMessageHeaders"
        ))
        .await;
    let keys: Vec<&String> = r.json.as_object().unwrap().keys().collect();
    assert!(r.json["subject"].is_string() && r.json["internetMessageHeaders"].is_array());
    assert!(r.json.get("body").is_none(), "{keys:?}");
    let filter = format!("id eq '{STAMP}'");
    let r = e
        .req(Method::GET, &format!("/users/{MB}/messages/{id}"))
        .query(&[(
            "$expand",
            format!("singleValueExtendedProperties($filter={filter})"),
        )])
        .send()
        .await
        .unwrap();
    let r = super::read(r).await;
    assert_eq!(
        r.json["singleValueExtendedProperties"],
        json!([{"id": STAMP, "value": "INBOX/7/42"}])
    );
    let by_stamp = format!(
        "singleValueExtendedProperties/Any(ep: ep/id eq '{STAMP}' and ep/value eq 'INBOX/7/42')"
    );
    for (f, want) in [
        (by_stamp.as_str(), 1),
        ("internetMessageId eq '<q1@example.org>'", 1),
        ("internetMessageId eq '<none@x>'", 0),
    ] {
        let r = e
            .req(Method::GET, &format!("/users/{MB}/messages"))
            .query(&[("$filter", f)])
            .send()
            .await
            .unwrap();
        let r = super::read(r).await;
        assert_eq!(r.status, 200, "{f}: {:?}", r.json);
        assert_eq!(r.json["value"].as_array().unwrap().len(), want, "{f}");
    }
    let r = e
        .get(&format!("/users/{MB}/mailFolders/drafts/messages/{id}"))
        .await;
    assert_eq!(r.status, 404, "the message is in Inbox, not Drafts");
}

#[tokio::test]
async fn list_pages_with_top_and_rejects_bad_top() {
    let e = Emu::default().await;
    let f = e.folder("Bulk").await;
    for i in 0..25 {
        e.import(
            &f,
            format!("Subject: m{i}\r\nMessage-ID: <m{i}@x>\r\n\r\nx\r\n").as_bytes(),
        )
        .await;
    }
    let mut url = format!("/users/{MB}/mailFolders/{f}/messages?$top=10&$select=subject");
    let mut seen = Vec::new();
    loop {
        let r = e.get(&url).await;
        assert_eq!(r.status, 200);
        for m in r.json["value"].as_array().unwrap() {
            assert!(m.get("body").is_none());
            seen.push(m["subject"].as_str().unwrap().to_owned());
        }
        match r.json["@odata.nextLink"].as_str() {
            Some(n) => url = n.to_owned(),
            None => break,
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 25);
    assert_eq!(
        e.get(&format!("/users/{MB}/mailFolders/{f}/messages?$top=1001"))
            .await
            .status,
        400
    );
    assert_eq!(
        e.get(&format!("/users/{MB}/mailFolders/{f}/messages?$top=1000"))
            .await
            .json["value"]
            .as_array()
            .unwrap()
            .len(),
        25
    );
}

#[tokio::test]
async fn patch_flags_and_delete() {
    let e = Emu::default().await;
    let m = e
        .import("inbox", b"Subject: p\r\nMessage-ID: <p@x>\r\n\r\nx\r\n")
        .await;
    let id = m["id"].as_str().unwrap();
    let r = e
        .json(Method::PATCH, &format!("/users/{MB}/messages/{id}"), &json!({
            "isRead": true, "flag": {"flagStatus": "flagged"}, "categories": ["Blue"], "importance": "low",
            "singleValueExtendedProperties": [{"id": "Integer 0x1081", "value": "102"}, {"id": "Integer 0x1080", "value": "261"}]
        }))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    let item = e.h.inspect().item(MB, id).unwrap();
    assert!(item.is_read && !item.is_draft);
    assert_eq!(item.flag_status, "flagged");
    assert_eq!(item.categories, vec!["Blue".to_owned()]);
    assert_eq!(item.importance, "low");
    assert!(
        item.extended_properties
            .iter()
            .any(|(k, v)| k == "Integer 0x1081" && v == "102")
    );
    let r = e
        .json(
            Method::PATCH,
            &format!("/users/{MB}/messages/{id}"),
            &json!({"subject": "new"}),
        )
        .await;
    assert_eq!(r.code(), "ErrorInvalidPropertyUpdateSentMessage");
    let r = e
        .json(
            Method::PATCH,
            &format!("/users/{MB}/messages/{id}"),
            &json!({"singleValueExtendedProperties": [{"id": "Integer 0x0E07", "value": "9"}]}),
        )
        .await;
    assert_eq!(r.status, 400, "the unsent bit cannot be set after creation");
    let r = e
        .json(
            Method::PATCH,
            &format!("/users/{MB}/messages/{id}"),
            &json!({"flag": {"flagStatus": "bogus"}}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        e.h.inspect().item(MB, id).unwrap().flag_status,
        "flagged",
        "a rejected PATCH changes nothing"
    );
    assert_eq!(
        e.delete(&format!("/users/{MB}/messages/{id}")).await.status,
        204
    );
    let r = e.get(&format!("/users/{MB}/messages/{id}")).await;
    assert_eq!((r.status, r.code()), (404, "ErrorItemNotFound"));
    let view = e.h.inspect().mailbox(MB).unwrap();
    assert_eq!(view.items_in("Inbox").len(), 0);
}

#[tokio::test]
async fn client_request_id_is_echoed_in_headers_and_errors() {
    let e = Emu::default().await;
    let r = e
        .req(Method::GET, &format!("/users/{MB}/messages/nope"))
        .header("client-request-id", "c0ffee")
        .send()
        .await
        .unwrap();
    let r = super::read(r).await;
    assert_eq!(r.header("client-request-id"), Some("c0ffee"));
    assert_eq!(r.json["error"]["innerError"]["client-request-id"], "c0ffee");
    assert_eq!(
        r.json["error"]["innerError"]["request-id"].as_str(),
        r.header("request-id")
    );
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
}
