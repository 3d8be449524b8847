//! Folders: creation top-down, caching, reuse of existing folders, ErrorFolderExists, paging,
//! well-known roots, deletion.

use mailferry::sink::graph::Route;

use super::*;

fn path(p: &[&str]) -> Vec<String> {
    p.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folders_are_created_once_cached_and_found_again() {
    let emu = emulator(emulator_config()).await;
    let user = "folders@contoso.example";
    let app1 = app(&emu, Route::ImportMime);
    let mb = app1.mailbox(user);
    let c = mb
        .ensure_folder(None, &path(&["Archive 2019", "Projects", "O'Brien & Co"]))
        .await
        .unwrap();
    let insp = emu.inspect();
    let view = insp.mailbox(user).unwrap();
    let f = view
        .folder("Archive 2019/Projects/O'Brien & Co")
        .expect("nested folder created");
    assert_eq!(f.id, c);

    // cached: no request at all the second time
    let before = insp.counters().requests;
    assert_eq!(
        mb.ensure_folder(None, &path(&["Archive 2019", "Projects", "O'Brien & Co"]))
            .await
            .unwrap(),
        c
    );
    assert_eq!(insp.counters().requests, before);

    // a fresh app (no cache) finds the same folders, names compared case-insensitively
    let app2 = app(&emu, Route::ImportMime);
    let again = app2
        .mailbox(user)
        .ensure_folder(None, &path(&["archive 2019", "PROJECTS", "o'brien & co"]))
        .await
        .unwrap();
    assert_eq!(again, c);
    assert_eq!(
        insp.mailbox(user).unwrap().folders.len(),
        view.folders.len(),
        "nothing created twice"
    );

    // well-known roots, and a folder under one
    let inbox = mb.ensure_folder(Some("inbox"), &[]).await.unwrap();
    let v = insp.mailbox(user).unwrap();
    assert_eq!(
        v.folders
            .iter()
            .find(|f| f.well_known.as_deref() == Some("inbox"))
            .unwrap()
            .id,
        inbox
    );
    let sub = mb
        .ensure_folder(Some("inbox"), &path(&["Receipts"]))
        .await
        .unwrap();
    assert_eq!(
        insp.mailbox(user)
            .unwrap()
            .folders
            .iter()
            .find(|f| f.id == sub)
            .unwrap()
            .parent_id
            .as_deref(),
        Some(inbox.as_str())
    );

    // delete (doctor's scratch folder), then it is created anew
    mb.delete_folder(&sub).await.unwrap();
    assert!(
        !insp
            .mailbox(user)
            .unwrap()
            .folders
            .iter()
            .any(|f| f.id == sub)
    );
    let sub2 = mb
        .ensure_folder(Some("inbox"), &path(&["Receipts"]))
        .await
        .unwrap();
    assert_ne!(sub2, sub);
    assert!(assert_requests_valid(&emu) > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folder_created_behind_our_back_is_found_through_error_folder_exists() {
    let emu = emulator(emulator_config()).await;
    let user = "exists@contoso.example";
    let a = app(&emu, Route::ImportMime).mailbox(user);
    let b = app(&emu, Route::ImportMime).mailbox(user);
    // a lists the root's children (none yet) ...
    a.ensure_folder(None, &path(&["First"])).await.unwrap();
    // ... b creates "Second" behind a's back ...
    let by_b = b.ensure_folder(None, &path(&["Second"])).await.unwrap();
    // ... a's create meets ErrorFolderExists and looks the folder up
    let by_a = a.ensure_folder(None, &path(&["Second"])).await.unwrap();
    assert_eq!(by_a, by_b);
    let statuses: Vec<u16> = emu
        .inspect()
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .map(|r| r.status)
        .collect();
    assert!(
        statuses.contains(&409),
        "the emulator answered ErrorFolderExists: {statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_children_are_read_across_pages() {
    // 260 children: more than the 250 the sink asks for per page
    let emu = emulator(emulator_config()).await;
    let user = "pages@contoso.example";
    let a = app(&emu, Route::ImportMime).mailbox(user);
    let mut ids = Vec::new();
    for i in 0..260 {
        ids.push(
            a.ensure_folder(None, &path(&["Parent", &format!("Child {i:03}")]))
                .await
                .unwrap(),
        );
    }
    // a fresh app reads the 260 children (two pages, following nextLink) and creates nothing
    let before = emu.inspect().mailbox(user).unwrap().folders.len();
    let b = app(&emu, Route::ImportMime).mailbox(user);
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(
            &b.ensure_folder(None, &path(&["Parent", &format!("Child {i:03}")]))
                .await
                .unwrap(),
            id
        );
    }
    assert_eq!(emu.inspect().mailbox(user).unwrap().folders.len(), before);
    let pages = emu
        .inspect()
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.ends_with("/childFolders"))
        .count();
    assert!(pages >= 3, "paged listing: {pages} GETs");
}
