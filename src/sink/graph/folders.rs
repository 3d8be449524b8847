//! Destination folders: resolve well-known roots, read each parent's children once (paged,
//! hidden ones included, search folders skipped), create what is missing top-down, and cache
//! every id for the run (folder ids are stable).
//!
//! Names compare case-insensitively, as Exchange does. A create that meets `ErrorFolderExists`
//! (reported as 400 or 409, docs/graph-facts.md, unknown 4: we key on the code) looks the folder up by name
//! instead; that also makes a create whose response was lost safe to retry.

use std::collections::HashMap;

use reqwest::Method;
use serde_json::json;

use super::GraphMailbox;
use super::error::GraphError;
use super::http::Call;
use super::urls::{odata_str, query, seg};

/// Per-mailbox folder cache; one lock so concurrent writers never create the same folder twice.
#[derive(Default)]
pub(crate) struct FolderCache {
    inner: tokio::sync::Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Well-known name (lower case) -> id.
    roots: HashMap<String, String>,
    /// Parent id -> (lower-case display name -> id), once the parent was listed.
    children: HashMap<String, HashMap<String, String>>,
}

const SEARCH_FOLDER: &str = "#microsoft.graph.mailSearchFolder";

pub(crate) async fn ensure(
    mb: &GraphMailbox,
    root: Option<&str>,
    path: &[String],
) -> Result<String, GraphError> {
    let root = root.unwrap_or("msgfolderroot").to_ascii_lowercase();
    let mut cache = mb.folders.inner.lock().await;
    let mut current = match cache.roots.get(&root) {
        Some(id) => id.clone(),
        None => {
            let id = resolve_root(mb, &root).await?;
            cache.roots.insert(root.clone(), id.clone());
            id
        }
    };
    for name in path {
        if !cache.children.contains_key(&current) {
            let listed = list_children(mb, &current).await?;
            cache.children.insert(current.clone(), listed);
        }
        let key = name.to_lowercase();
        let found = cache
            .children
            .get(&current)
            .and_then(|c| c.get(&key))
            .cloned();
        let id = match found {
            Some(id) => id,
            None => {
                let id = create_child(mb, &current, name).await?;
                cache
                    .children
                    .entry(current.clone())
                    .or_default()
                    .insert(key, id.clone());
                id
            }
        };
        current = id;
    }
    Ok(current)
}

async fn resolve_root(mb: &GraphMailbox, root: &str) -> Result<String, GraphError> {
    let http = mb.app.http();
    let url = http.v1(&format!(
        "{}/mailFolders/{}{}",
        mb.user_path(),
        seg(root),
        query(&[("$select", "id,displayName")])
    ));
    let v: serde_json::Value = http
        .send(&mb.user, Call::get("resolve well-known folder", url))
        .await?
        .json("resolve well-known folder", &mb.user)?;
    id_of(&v, mb, "resolve well-known folder")
}

fn id_of(v: &serde_json::Value, mb: &GraphMailbox, op: &str) -> Result<String, GraphError> {
    v["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| GraphError::Protocol {
            op: op.to_owned(),
            mailbox: mb.user.clone(),
            reason: "no id in the response".into(),
            request_id: None,
        })
}

fn children_url(mb: &GraphMailbox, parent: &str, extra: &[(&str, &str)]) -> String {
    let mut pairs = vec![
        ("includeHiddenFolders", "true"),
        ("$select", "id,displayName"),
    ];
    pairs.extend_from_slice(extra);
    mb.app.http().v1(&format!(
        "{}/mailFolders/{}/childFolders{}",
        mb.user_path(),
        seg(parent),
        query(&pairs)
    ))
}

async fn list_children(
    mb: &GraphMailbox,
    parent: &str,
) -> Result<HashMap<String, String>, GraphError> {
    let items = mb
        .app
        .http()
        .get_all(
            &mb.user,
            "list child folders",
            children_url(mb, parent, &[("$top", "250")]),
        )
        .await?;
    let mut out = HashMap::new();
    for it in items {
        if it["@odata.type"].as_str() == Some(SEARCH_FOLDER) {
            continue;
        }
        if let (Some(id), Some(name)) = (it["id"].as_str(), it["displayName"].as_str()) {
            out.insert(name.to_lowercase(), id.to_owned());
        }
    }
    Ok(out)
}

async fn create_child(mb: &GraphMailbox, parent: &str, name: &str) -> Result<String, GraphError> {
    let http = mb.app.http();
    let url = http.v1(&format!(
        "{}/mailFolders/{}/childFolders",
        mb.user_path(),
        seg(parent)
    ));
    let body = json!({"displayName": name, "isHidden": false});
    // Idempotent in effect: a second create of the same name meets ErrorFolderExists.
    match http
        .send(
            &mb.user,
            Call::json("create folder", Method::POST, url, &body, true),
        )
        .await
    {
        Ok(resp) => {
            tracing::info!(mailbox = %mb.user, folder = name, "folder created");
            id_of(&resp.json("create folder", &mb.user)?, mb, "create folder")
        }
        Err(e) if e.code() == Some("ErrorFolderExists") => {
            let filter = format!("displayName eq {}", odata_str(name));
            let items = http
                .get_all(
                    &mb.user,
                    "find folder by name",
                    children_url(mb, parent, &[("$filter", &filter)]),
                )
                .await?;
            items
                .iter()
                .filter(|it| it["@odata.type"].as_str() != Some(SEARCH_FOLDER))
                .find_map(|it| it["id"].as_str().map(str::to_owned))
                .ok_or(e)
        }
        Err(e) => Err(e),
    }
}

pub(crate) async fn delete(mb: &GraphMailbox, folder_id: &str) -> Result<(), GraphError> {
    let http = mb.app.http();
    let url = http.v1(&format!(
        "{}/mailFolders/{}",
        mb.user_path(),
        seg(folder_id)
    ));
    let call = Call {
        method: Method::DELETE,
        ..Call::get("delete folder", url)
    };
    http.send(&mb.user, call).await?;
    // The folder and everything below it are gone: forget the listings that could name them.
    let mut cache = mb.folders.inner.lock().await;
    cache.children.retain(|parent, kids| {
        kids.retain(|_, id| id != folder_id);
        parent != folder_id
    });
    Ok(())
}
