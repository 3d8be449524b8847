//! Folders: listing, paging, hidden folders, filters, creation, conflicts, well-known names,
//! deletion, counts; response shapes and ids.

use mailferry::emulator::EmulatorConfig;
use serde_json::{Value, json};

use super::{Emu, MB};

fn names(v: &Value) -> Vec<String> {
    v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["displayName"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn top_level_lists_visible_well_known_folders_and_hides_hidden_ones() {
    let e = Emu::default().await;
    let r = e.get(&format!("/users/{MB}/mailFolders?$top=50")).await;
    assert_eq!(r.status, 200);
    let n = names(&r.json);
    for want in [
        "Archive",
        "Conversation History",
        "Deleted Items",
        "Drafts",
        "Inbox",
        "Junk Email",
        "Outbox",
        "Sent Items",
    ] {
        assert!(n.contains(&want.to_owned()), "{want} in {n:?}");
    }
    assert!(!n.contains(&"Clutter".to_owned()));
    assert!(
        r.json["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with(&format!("$metadata#users('{MB}')/mailFolders"))
    );
    assert!(r.header("request-id").is_some());
    let f = &r.json["value"][0];
    for k in [
        "id",
        "displayName",
        "parentFolderId",
        "childFolderCount",
        "unreadItemCount",
        "totalItemCount",
        "isHidden",
    ] {
        assert!(f.get(k).is_some(), "{k}");
    }
    let hidden = e
        .get(&format!(
            "/users/{MB}/mailFolders?includeHiddenFolders=true&$top=50"
        ))
        .await;
    assert!(names(&hidden.json).contains(&"Clutter".to_owned()));
}

#[tokio::test]
async fn paging_follows_next_link_verbatim() {
    let e = Emu::default().await;
    for i in 0..7 {
        e.folder(&format!("F{i:02}")).await;
    }
    // Default page size is 10.
    let first = e.get(&format!("/users/{MB}/mailFolders")).await;
    assert_eq!(first.json["value"].as_array().unwrap().len(), 10);
    let mut all = Vec::new();
    let mut url = format!("/users/{MB}/mailFolders?$top=4");
    loop {
        let r = e.get(&url).await;
        assert_eq!(r.status, 200, "{:?}", r.json);
        all.extend(names(&r.json));
        match r.json["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(all.len(), 15, "8 visible well-known + 7 created: {all:?}");
    let mut dedup = all.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), all.len());
}

#[tokio::test]
async fn create_child_conflict_filter_and_well_known_names() {
    let e = Emu::default().await;
    let parent = e.folder("Projects").await;
    let r = e
        .post(
            &format!("/users/{MB}/mailFolders"),
            &json!({"displayName": "projects"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (409, "ErrorFolderExists"));
    assert!(r.json["error"]["innerError"]["request-id"].is_string());
    let child = e
        .post(
            &format!("/users/{MB}/mailFolders/{parent}/childFolders"),
            &json!({"displayName": "Bob's", "isHidden": false}),
        )
        .await;
    assert_eq!(child.status, 201, "{:?}", child.json);
    assert_eq!(child.json["parentFolderId"], parent.as_str());
    let kid = child.json["id"].as_str().unwrap().to_owned();
    // Same name under another parent is fine.
    let r = e
        .post(
            &format!("/users/{MB}/mailFolders/inbox/childFolders"),
            &json!({"displayName": "Bob's"}),
        )
        .await;
    assert_eq!(r.status, 201);
    // $filter with a doubled quote, URL-encoded by reqwest.
    let r = e
        .req(
            reqwest::Method::GET,
            &format!("/users/{MB}/mailFolders/{parent}/childFolders"),
        )
        .query(&[("$filter", "displayName eq 'Bob''s'")])
        .send()
        .await
        .unwrap();
    let r = super::read(r).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(r.json["value"].as_array().unwrap().len(), 1);
    assert_eq!(r.json["value"][0]["id"], kid.as_str());
    let r = e
        .get(&format!(
            "/users/{MB}/mailFolders?$filter=displayName eq 'Nope'"
        ))
        .await;
    assert_eq!(r.json["value"].as_array().unwrap().len(), 0);
    let r = e
        .get(&format!(
            "/users/{MB}/mailFolders?$filter=displayName gt 'a'"
        ))
        .await;
    assert_eq!(r.status, 400);
    // Nested addressing and well-known names.
    let r = e
        .get(&format!(
            "/users/{MB}/mailFolders/{parent}/childFolders/{kid}"
        ))
        .await;
    assert_eq!(r.json["displayName"], "Bob's");
    for wk in [
        "inbox",
        "sentitems",
        "drafts",
        "deleteditems",
        "junkemail",
        "archive",
        "outbox",
        "msgfolderroot",
        "conversationhistory",
        "clutter",
        "scheduled",
        "searchfolders",
        "syncissues",
        "conflicts",
        "localfailures",
        "serverfailures",
        "recoverableitemsdeletions",
    ] {
        let r = e.get(&format!("/users/{MB}/mailFolders/{wk}")).await;
        assert_eq!(r.status, 200, "{wk}");
    }
    let r = e
        .get(&format!("/users/{MB}/mailFolders/inbox/childFolders/{kid}"))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (404, "ErrorItemNotFound"),
        "kid is not under inbox"
    );
    let r = e
        .post(
            &format!("/users/{MB}/mailFolders"),
            &json!({"displayName": "X", "color": "red"}),
        )
        .await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn folder_exists_status_is_configurable() {
    let cfg = EmulatorConfig {
        folder_exists_status: 400,
        ..Default::default()
    };
    let e = Emu::start(cfg).await;
    e.folder("A").await;
    let r = e
        .post(
            &format!("/users/{MB}/mailFolders"),
            &json!({"displayName": "A"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "ErrorFolderExists"));
}

#[tokio::test]
async fn delete_and_counts() {
    let e = Emu::default().await;
    let f = e.folder("Old").await;
    e.import(&f, b"Subject: one\r\nMessage-ID: <1@x>\r\n\r\nbody\r\n")
        .await;
    e.import(&f, b"Subject: two\r\nMessage-ID: <2@x>\r\n\r\nbody\r\n")
        .await;
    let r = e.get(&format!("/users/{MB}/mailFolders/{f}")).await;
    assert_eq!(
        (
            r.json["totalItemCount"].as_u64(),
            r.json["unreadItemCount"].as_u64()
        ),
        (Some(2), Some(2))
    );
    let r = e.delete(&format!("/users/{MB}/mailFolders/inbox")).await;
    assert_eq!(
        (r.status, r.code()),
        (400, "ErrorDeleteDistinguishedFolder")
    );
    assert_eq!(
        e.delete(&format!("/users/{MB}/mailFolders/{f}"))
            .await
            .status,
        204
    );
    assert_eq!(
        e.get(&format!("/users/{MB}/mailFolders/{f}")).await.status,
        404
    );
    let view = e.h.inspect().mailbox(MB).unwrap();
    assert!(view.items.is_empty());
    assert!(view.folder("Old").is_none());
}

#[tokio::test]
async fn rename_checks_conflicts() {
    let e = Emu::default().await;
    let a = e.folder("A").await;
    e.folder("B").await;
    let r = e
        .json(
            reqwest::Method::PATCH,
            &format!("/users/{MB}/mailFolders/{a}"),
            &json!({"displayName": "b"}),
        )
        .await;
    assert_eq!(r.code(), "ErrorFolderExists");
    let r = e
        .json(
            reqwest::Method::PATCH,
            &format!("/users/{MB}/mailFolders/{a}"),
            &json!({"displayName": "C"}),
        )
        .await;
    assert_eq!((r.status, r.json["displayName"].as_str()), (200, Some("C")));
}
