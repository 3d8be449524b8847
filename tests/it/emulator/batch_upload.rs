//! `$batch` and attachments (small POST and upload sessions).

use reqwest::Method;
use serde_json::{Value, json};

use super::{Emu, MB, b64, read};

fn by_id<'a>(r: &'a Value, id: &str) -> &'a Value {
    r["responses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == id)
        .unwrap()
}

#[tokio::test]
async fn batch_runs_items_with_dependencies_and_per_item_status() {
    let e = Emu::default().await;
    let body = json!({"requests": [
        {"id": "1", "method": "POST", "url": format!("/users/{MB}/mailFolders"),
         "headers": {"Content-Type": "application/json"}, "body": {"displayName": "Batch"}},
        {"id": "2", "method": "POST", "url": format!("/users/{MB}/mailFolders"), "dependsOn": ["1"],
         "headers": {"Content-Type": "application/json"}, "body": {"displayName": "Batch"}},
        {"id": "3", "method": "GET", "url": format!("/users/{MB}/mailFolders/inbox"), "dependsOn": ["2"]},
        {"id": "4", "method": "GET", "url": format!("/users/{MB}/mailFolders?$top=2")},
        {"id": "5", "method": "POST", "url": format!("/users/{MB}/mailFolders/inbox/importMime"),
         "headers": {"Content-Type": "text/plain"}, "body": b64(b"Subject: b\r\n\r\nx")}
    ]});
    let r = e.post("/$batch", &body).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(by_id(&r.json, "1")["status"], 201);
    assert_eq!(by_id(&r.json, "2")["status"], 409);
    assert_eq!(
        by_id(&r.json, "2")["body"]["error"]["code"],
        "ErrorFolderExists"
    );
    assert_eq!(by_id(&r.json, "3")["status"], 424, "its dependency failed");
    assert_eq!(by_id(&r.json, "4")["status"], 200);
    assert_eq!(
        by_id(&r.json, "4")["body"]["value"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        by_id(&r.json, "5")["status"],
        400,
        "importMime is beta only; /v1.0/$batch items are v1.0"
    );
    let beta = e
        .post(
            "/beta/$batch",
            &json!({"requests": [{"id": "a", "method": "POST",
            "url": format!("/users/{MB}/mailFolders/inbox/importMime"),
            "headers": {"Content-Type": "text/plain"}, "body": b64(b"Subject: b\r\n\r\nx")}]}),
        )
        .await;
    assert_eq!(by_id(&beta.json, "a")["status"], 201);
    let batched: Vec<_> =
        e.h.inspect()
            .requests()
            .into_iter()
            .filter(|r| r.via_batch)
            .collect();
    assert_eq!(
        batched.len(),
        5,
        "items are logged on their own (424 never ran)"
    );
}

#[tokio::test]
async fn batch_validation() {
    let e = Emu::default().await;
    let item = |id: &str| json!({"id": id, "method": "GET", "url": format!("/users/{MB}/mailFolders/inbox")});
    let too_many: Vec<Value> = (0..21).map(|i| item(&i.to_string())).collect();
    let r = e.post("/$batch", &json!({"requests": too_many})).await;
    assert_eq!(r.status, 400);
    let r = e
        .post("/$batch", &json!({"requests": [item("1"), item("1")]}))
        .await;
    assert_eq!(r.status, 400);
    let no_ct = json!({"requests": [{"id": "1", "method": "POST", "url": format!("/users/{MB}/mailFolders"), "body": {"displayName": "x"}}]});
    let r = e.post("/$batch", &no_ct).await;
    assert_eq!(r.status, 400);
    let bad_dep = json!({"requests": [{"id": "1", "method": "GET", "url": "/users/x/mailFolders", "dependsOn": ["9"]}]});
    assert_eq!(e.post("/$batch", &bad_dep).await.status, 400);
    let r = read(
        e.http
            .post(e.url("/$batch"))
            .json(&json!({"requests": [item("1")]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 401, "the batch itself needs a token");
}

#[tokio::test]
async fn small_attachments_and_upload_sessions() {
    let e = Emu::default().await;
    let m = e
        .post(
            &format!("/users/{MB}/mailFolders/inbox/messages"),
            &json!({"subject": "with files",
            "singleValueExtendedProperties": [{"id": "Integer 0x0E07", "value": "1"}]}),
        )
        .await;
    let id = m.json["id"].as_str().unwrap().to_owned();
    let r = e
        .post(&format!("/users/{MB}/messages/{id}/attachments"), &json!({
            "@odata.type": "#microsoft.graph.fileAttachment", "name": "logo.png", "contentType": "image/png",
            "contentBytes": b64(&[1, 2, 3]), "isInline": true, "contentId": "logo1"}))
        .await;
    assert_eq!(r.status, 201, "{:?}", r.json);
    assert_eq!(r.json["size"], 3);
    // Upload session: 10 bytes in chunks of 4.
    let data: Vec<u8> = (0u8..10).collect();
    let s = e
        .post(
            &format!("/users/{MB}/messages/{id}/attachments/createUploadSession"),
            &json!({"AttachmentItem": {"attachmentType": "file", "name": "big.bin", "size": 10}}),
        )
        .await;
    assert_eq!(s.status, 201, "{:?}", s.json);
    assert_eq!(s.json["nextExpectedRanges"], json!(["0-"]));
    let upload = s.json["uploadUrl"].as_str().unwrap().to_owned();
    assert!(upload.contains("authtoken="));
    let put = |start: usize, end: usize, auth: bool| {
        let mut r = e
            .http
            .put(&upload)
            .header("Content-Range", format!("bytes {start}-{end}/10"))
            .header("Content-Type", "application/octet-stream")
            .body(data[start..=end].to_vec());
        if auth {
            r = r.bearer_auth(&e.token);
        }
        r
    };
    assert_eq!(
        read(put(0, 3, true).send().await.unwrap()).await.status,
        401,
        "no Authorization on upload URLs"
    );
    let r = read(put(0, 3, false).send().await.unwrap()).await;
    assert_eq!(
        (r.status, r.json["nextExpectedRanges"].clone()),
        (200, json!(["4-"]))
    );
    let r = read(put(8, 9, false).send().await.unwrap()).await;
    assert_eq!(r.status, 416, "out of order");
    assert_eq!(
        read(put(4, 7, false).send().await.unwrap()).await.status,
        200
    );
    let r = read(put(8, 9, false).send().await.unwrap()).await;
    assert_eq!(r.status, 201);
    assert!(r.header("location").unwrap().contains("/attachments('"));
    let bad = read(
        e.http
            .put(upload.replace("authtoken=", "authtoken=x"))
            .header("Content-Range", "bytes 0-0/10")
            .body(vec![0])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(bad.status == 401 || bad.status == 404);
    let list = e
        .get(&format!("/users/{MB}/messages/{id}/attachments"))
        .await;
    let names: Vec<&str> = list.json["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["logo.png", "big.bin"]);
    let item = e.h.inspect().item(MB, &id).unwrap();
    assert_eq!(item.attachments[1].size, 10);
    assert!(item.attachments[0].is_inline);
    let r = e
        .get(&format!("/users/{MB}/messages/{id}?$expand=attachments"))
        .await;
    assert_eq!(r.json["attachments"][1]["contentBytes"], b64(&data));
    let r = e
        .json(
            Method::POST,
            &format!("/users/{MB}/messages/{id}/attachments"),
            &json!({"name": "x"}),
        )
        .await;
    assert_eq!(r.status, 400, "@odata.type is required");
    let token = upload.split("authtoken=").nth(1).unwrap().to_owned();
    assert!(
        e.h.inspect()
            .requests()
            .iter()
            .all(|r| !r.query.contains(&token)),
        "upload token never logged"
    );
    let counted = e.h.inspect().counters().mailboxes[MB].bytes_uploaded;
    assert!(counted >= 10);
}
