//! Walks the emulator's endpoints like a client would, then validates every logged request and
//! response against the mail OpenAPI description (with its known quirks, see support::openapi).

use reqwest::Method;
use serde_json::json;

use super::{Emu, MB, b64, corpus, read};
use crate::support::openapi::Spec;

#[tokio::test]
async fn every_request_and_response_fits_the_openapi_description() {
    let e = Emu::default().await;
    let spec = Spec::load();
    let f = e.folder("Walk").await;
    e.post(
        &format!("/users/{MB}/mailFolders/{f}/childFolders"),
        &json!({"displayName": "Child", "isHidden": false}),
    )
    .await;
    e.get(&format!("/users/{MB}/mailFolders?$top=3")).await;
    e.get(&format!(
        "/users/{MB}/mailFolders/{f}/childFolders?$filter=displayName eq 'Child'"
    ))
    .await;
    e.get(&format!("/users/{MB}/mailFolders/inbox")).await;
    let created = e
        .post(&format!("/users/{MB}/mailFolders/{f}/messages"), &json!({
            "subject": "walk", "body": {"contentType": "text", "content": "hi"},
            "from": {"emailAddress": {"name": "A", "address": "a@example.org"}},
            "toRecipients": [{"emailAddress": {"address": "b@example.org"}}],
            "internetMessageId": "<walk@x>", "isRead": true, "importance": "normal",
            "flag": {"flagStatus": "flagged"}, "categories": ["c"],
            "internetMessageHeaders": [{"name": "x-walk", "value": "1"}],
            "singleValueExtendedProperties": [{"id": "Integer 0x0E07", "value": "1"}, {"id": "SystemTime 0x0E06", "value": "2020-02-02T10:00:00Z"}]
        }))
        .await;
    assert_eq!(created.status, 201);
    let id = created.json["id"].as_str().unwrap().to_owned();
    e.get(&format!("/users/{MB}/messages/{id}?$select=subject,internetMessageHeaders&$expand=singleValueExtendedProperties($filter=id eq 'Integer 0x0E07')")).await;
    e.get(&format!(
        "/users/{MB}/mailFolders/{f}/messages?$top=5&$select=subject,isRead"
    ))
    .await;
    e.get(&format!(
        "/users/{MB}/messages?$filter=internetMessageId eq '<walk@x>'"
    ))
    .await;
    e.json(
        Method::PATCH,
        &format!("/users/{MB}/messages/{id}"),
        &json!({"isRead": false, "categories": []}),
    )
    .await;
    e.post(&format!("/users/{MB}/messages/{id}/attachments"), &json!({
        "@odata.type": "#microsoft.graph.fileAttachment", "name": "a.txt", "contentType": "text/plain", "contentBytes": b64(b"abc")})).await;
    e.get(&format!("/users/{MB}/messages/{id}/attachments"))
        .await;
    let s = e
        .post(
            &format!("/users/{MB}/messages/{id}/attachments/createUploadSession"),
            &json!({"AttachmentItem": {"attachmentType": "file", "name": "big.bin", "size": 4}}),
        )
        .await;
    assert_eq!(s.status, 201);
    e.get(&format!("/users/{MB}/messages/{id}/$value")).await;
    e.import(&f, &corpus("cpython-email/msg_02.txt")).await;
    e.text(
        &format!("/users/{MB}/messages"),
        b64(&corpus("cpython-email/msg_01.txt")),
    )
    .await;
    e.post("/$batch", &json!({"requests": [
        {"id": "1", "method": "GET", "url": format!("/users/{MB}/mailFolders/drafts")},
        {"id": "2", "method": "POST", "url": format!("/users/{MB}/mailFolders"), "dependsOn": ["1"],
         "headers": {"Content-Type": "application/json"}, "body": {"displayName": "Walk"}}
    ]})).await;
    let missing = e.get(&format!("/users/{MB}/messages/nope")).await;
    assert_eq!(missing.status, 404);
    e.delete(&format!("/users/{MB}/messages/{id}")).await;
    e.delete(&format!("/users/{MB}/mailFolders/{f}")).await;
    let _ = read(
        e.http
            .get(format!("{}/_emulator/counters", e.h.base_url()))
            .send()
            .await
            .unwrap(),
    )
    .await;

    let mut problems = Vec::new();
    let mut checked = 0;
    for r in e.h.inspect().requests() {
        if !(r.path.starts_with("/v1.0/") || r.path.starts_with("/beta/")) {
            continue; // token endpoint
        }
        let url = format!("{}?{}", r.path, r.query);
        let is_json = r
            .content_type
            .as_deref()
            .is_none_or(|c| c.starts_with("application/json"));
        let body = if is_json { r.body_json.as_ref() } else { None };
        if let Err(e) = spec.validate_request(&r.method, &url, body) {
            problems.push(format!("request {} {url}: {e:?}", r.method));
        }
        if let Err(e) = spec.validate_response(&r.method, &url, r.status, r.response_json.as_ref())
        {
            problems.push(format!("response {} {} {url}: {e:?}", r.status, r.method));
        }
        checked += 1;
    }
    assert!(checked >= 20, "{checked}");
    assert!(problems.is_empty(), "{problems:#?}");
}
