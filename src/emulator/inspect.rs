//! Inspection, outside the Graph namespace: the typed [`Inspector`] for Rust tests and the demo,
//! and the same data as JSON under `/_emulator/...` for rehearsal reports. Per mailbox: folder
//! tree and items with their properties (raw MIME of importMime items); counters (requests,
//! 429s, bytes uploaded per mailbox); the request log (method, path, query, content type, JSON
//! bodies, status) for validating what a client sent; the fault log; run-time fault rules; reset.
//! mailferry's own sink never reads these.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::Value;

use super::blobs::Blobs;
use super::faults::{FaultLogEntry, FaultRule};
use super::store::{Mailbox, Message};
use super::views::ext_view;
use super::{Emu, lock};

/// One request the emulator received.
#[derive(Clone, Debug, Serialize)]
pub struct RequestRecord {
    /// The `request-id` the emulator answered with.
    pub request_id: String,
    /// When, RFC 3339.
    pub at: String,
    /// HTTP method.
    pub method: String,
    /// Decoded path, e.g. `/v1.0/users/a@b/mailFolders`.
    pub path: String,
    /// Raw query string.
    pub query: String,
    /// Request Content-Type.
    pub content_type: Option<String>,
    /// Request body when it was JSON.
    pub body_json: Option<Value>,
    /// Request body length.
    pub body_len: usize,
    /// Response status.
    pub status: u16,
    /// Response body when it was JSON.
    pub response_json: Option<Value>,
    /// Store key (lower-case address) of the mailbox addressed, when known.
    pub mailbox: Option<String>,
    /// True for an item of a `$batch`.
    pub via_batch: bool,
    /// What kind of request it was (see [`MailboxCounters::by_kind`]).
    pub kind: String,
    /// Items the store touched while answering it (with concurrent requests to the same
    /// mailbox this may include some of theirs).
    pub items_visited: u64,
}

/// Counters of one mailbox.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct MailboxCounters {
    /// Requests addressed to the mailbox.
    pub requests: u64,
    /// Of which answered 429.
    pub throttled: u64,
    /// Request-body bytes of successful POST/PUT/PATCH requests.
    pub bytes_uploaded: u64,
    /// Requests by kind (`create`, `importMime`, `attachment POST`, `upload session`, `chunk`,
    /// `lookup`, `list`, `PATCH`, ...; see docs/emulator.md).
    pub by_kind: BTreeMap<String, u64>,
    /// Items the store touched for this mailbox's requests (work, not time).
    pub items_visited: u64,
    /// The most items one request touched.
    pub max_items_visited: u64,
}

/// Request counters.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Counters {
    /// Every request (batch items count on their own).
    pub requests: u64,
    /// Every 429.
    pub throttled: u64,
    /// Per mailbox (lower-case address).
    pub mailboxes: BTreeMap<String, MailboxCounters>,
}

#[derive(Debug, Default)]
pub(crate) struct Activity {
    log: VecDeque<RequestRecord>,
    counters: Counters,
}

impl Activity {
    pub fn push(&mut self, r: RequestRecord, limit: usize) {
        let c = &mut self.counters;
        c.requests += 1;
        let throttled = r.status == 429;
        c.throttled += u64::from(throttled);
        if let Some(mb) = &r.mailbox {
            let m = c.mailboxes.entry(mb.clone()).or_default();
            m.requests += 1;
            m.throttled += u64::from(throttled);
            if matches!(r.method.as_str(), "POST" | "PUT" | "PATCH") && r.status < 400 {
                m.bytes_uploaded += r.body_len as u64;
            }
            *m.by_kind.entry(r.kind.clone()).or_default() += 1;
            m.items_visited += r.items_visited;
            m.max_items_visited = m.max_items_visited.max(r.items_visited);
        }
        self.log.push_back(r);
        while self.log.len() > limit {
            self.log.pop_front();
        }
    }
}

/// A folder as the inspector shows it.
#[derive(Clone, Debug, Serialize)]
pub struct FolderView {
    /// Folder id.
    pub id: String,
    /// Parent id (None for roots).
    pub parent_id: Option<String>,
    /// Display name.
    pub display_name: String,
    /// `Inbox/Sub` path from msgfolderroot.
    pub path: String,
    /// Hidden folder.
    pub is_hidden: bool,
    /// Well-known name, if any.
    pub well_known: Option<String>,
    /// Items directly in the folder.
    pub total_item_count: usize,
}

/// An attachment as the inspector shows it.
#[derive(Clone, Debug, Serialize)]
pub struct AttachmentView {
    /// File name.
    pub name: String,
    /// MIME type.
    pub content_type: String,
    /// Bytes.
    pub size: usize,
    /// Inline attachment.
    pub is_inline: bool,
    /// Content-ID.
    pub content_id: Option<String>,
}

/// An item as the inspector shows it.
#[derive(Clone, Debug, Serialize)]
pub struct ItemView {
    /// Item id.
    pub id: String,
    /// Folder id.
    pub folder_id: String,
    /// Folder path.
    pub folder_path: String,
    /// Subject.
    pub subject: Option<String>,
    /// internetMessageId.
    pub internet_message_id: Option<String>,
    /// Draft (unsent) item.
    pub is_draft: bool,
    /// Read.
    pub is_read: bool,
    /// `notFlagged`, `flagged` or `complete`.
    pub flag_status: String,
    /// Categories.
    pub categories: Vec<String>,
    /// Importance.
    pub importance: String,
    /// receivedDateTime.
    pub received_date_time: Option<String>,
    /// sentDateTime.
    pub sent_date_time: Option<String>,
    /// Every extended property as (id, value), computed MAPI ones included.
    pub extended_properties: Vec<(String, String)>,
    /// The bytes given to importMime (None for other items).
    #[serde(skip)]
    pub raw_mime: Option<Vec<u8>>,
    /// True when `raw_mime` is present.
    pub has_raw_mime: bool,
    /// Attachments.
    pub attachments: Vec<AttachmentView>,
    /// Item size as counted against limits.
    pub size: u64,
    /// All Graph properties.
    pub properties: Value,
}

/// A mailbox as the inspector shows it.
#[derive(Clone, Debug, Serialize)]
pub struct MailboxView {
    /// Primary address.
    pub address: String,
    /// Mailbox (user) id.
    pub id: String,
    /// Every folder, roots first.
    pub folders: Vec<FolderView>,
    /// Every item.
    pub items: Vec<ItemView>,
}

impl MailboxView {
    /// Items whose folder path is `path` (e.g. `Inbox/Sub`).
    pub fn items_in(&self, path: &str) -> Vec<&ItemView> {
        self.items
            .iter()
            .filter(|i| i.folder_path == path)
            .collect()
    }
    /// The folder with this path.
    pub fn folder(&self, path: &str) -> Option<&FolderView> {
        self.folders.iter().find(|f| f.path == path)
    }
}

fn item_view(blobs: &Blobs, mb: &Mailbox, m: &Message) -> ItemView {
    let s = |k: &str| m.str_prop(k).map(str::to_owned);
    ItemView {
        id: m.id.clone(),
        folder_id: m.folder_id.clone(),
        folder_path: mb.folder_path(&m.folder_id),
        subject: s("subject"),
        internet_message_id: s("internetMessageId"),
        is_draft: m.is_draft(),
        is_read: m.is_read(),
        flag_status: m
            .props
            .get("flag")
            .and_then(|f| f["flagStatus"].as_str())
            .unwrap_or("notFlagged")
            .to_owned(),
        categories: m
            .props
            .get("categories")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        importance: s("importance").unwrap_or_else(|| "normal".into()),
        received_date_time: s("receivedDateTime"),
        sent_date_time: s("sentDateTime"),
        extended_properties: ext_view(m)
            .iter()
            .map(|e| {
                (
                    e["id"].as_str().unwrap_or("").to_owned(),
                    e["value"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect(),
        raw_mime: m
            .raw_mime
            .as_ref()
            .and_then(|r| blobs.read(r).ok())
            .map(|b| b.into_owned()),
        has_raw_mime: m.raw_mime.is_some(),
        attachments: m
            .attachments
            .iter()
            .map(|a| AttachmentView {
                name: a.name.clone(),
                content_type: a.content_type.clone(),
                size: a.content.len() as usize,
                is_inline: a.is_inline,
                content_id: a.content_id.clone(),
            })
            .collect(),
        size: m.size,
        properties: {
            let mut p = m.props.clone();
            p.extend(blobs.heavy_props(m).unwrap_or_default());
            Value::Object(p)
        },
    }
}

fn mailbox_view(blobs: &Blobs, mb: &Mailbox) -> MailboxView {
    let mut folders: Vec<FolderView> = mb
        .folders
        .values()
        .map(|f| FolderView {
            id: f.id.clone(),
            parent_id: f.parent_id.clone(),
            display_name: f.display_name.clone(),
            path: mb.folder_path(&f.id),
            is_hidden: f.is_hidden,
            well_known: f.well_known.map(str::to_owned),
            total_item_count: mb.folder_counts(&f.id).0 as usize,
        })
        .collect();
    folders.sort_by(|a, b| a.path.cmp(&b.path));
    MailboxView {
        address: mb.address.clone(),
        id: mb.id.clone(),
        folders,
        items: mb
            .all_by_seq()
            .into_iter()
            .map(|m| item_view(blobs, mb, &m))
            .collect(),
    }
}

/// Typed access to a running emulator's state.
#[derive(Clone)]
pub struct Inspector {
    emu: Arc<Emu>,
}

impl Inspector {
    pub(crate) fn new(emu: Arc<Emu>) -> Self {
        Inspector { emu }
    }

    /// Addresses of every mailbox.
    pub fn mailboxes(&self) -> Vec<String> {
        lock(&self.emu.store)
            .mailboxes
            .values()
            .map(|m| m.address.clone())
            .collect()
    }

    /// A mailbox by address or id.
    pub fn mailbox(&self, address: &str) -> Option<MailboxView> {
        let store = lock(&self.emu.store);
        let key = store.key_of(address)?;
        store
            .mailboxes
            .get(&key)
            .map(|mb| mailbox_view(&self.emu.blobs, mb))
    }

    /// One item.
    pub fn item(&self, address: &str, id: &str) -> Option<ItemView> {
        let store = lock(&self.emu.store);
        let mb = store.mailboxes.get(&store.key_of(address)?)?;
        mb.get(id).map(|m| item_view(&self.emu.blobs, mb, &m))
    }

    /// The stored bytes of an importMime item.
    pub fn raw_mime(&self, address: &str, id: &str) -> Option<Vec<u8>> {
        self.item(address, id).and_then(|i| i.raw_mime)
    }

    /// Stores `count` small delivered items in `folder` (an id or well-known name) of a mailbox,
    /// directly, without HTTP, throttling or the request log: for tests and rehearsals that need
    /// a full store quickly. Item `i` (counting from the items already there) has the
    /// `internetMessageId` `<seed-i@emulator.invalid>`, the subject `seed i` and, when `ext_id`
    /// is given, that extended property with the value `seed-i`. Creates the mailbox if needed.
    pub fn seed_items(
        &self,
        address: &str,
        folder: &str,
        count: usize,
        ext_id: Option<&str>,
    ) -> Result<(), String> {
        let cfg = &self.emu.config;
        let mut store = lock(&self.emu.store);
        let key = match store.key_of(address) {
            Some(k) => k,
            None => {
                let k = address.to_ascii_lowercase();
                store.mailboxes.insert(
                    k.clone(),
                    Mailbox::new(address, cfg.limits.mailbox_quota_bytes),
                );
                k
            }
        };
        let mb = store.mailbox_mut(&key).map_err(|e| e.message)?;
        let folder_id = mb.folder(folder).map_err(|e| e.message)?.id.clone();
        let first = mb.len();
        let now = super::store::now_string();
        for i in first..first + count {
            // Only what lookups and listings read: seeding must stay cheap at 50,000 items.
            let mut props = serde_json::Map::new();
            props.insert("subject".into(), Value::String(format!("seed {i}")));
            props.insert("isDraft".into(), Value::Bool(false));
            props.insert("isRead".into(), Value::Bool(true));
            props.insert("receivedDateTime".into(), Value::String(now.clone()));
            props.insert(
                "internetMessageId".into(),
                Value::String(format!("<seed-{i}@emulator.invalid>")),
            );
            let mut m = Message {
                id: super::store::new_id("AAMkAD"),
                folder_id: folder_id.clone(),
                seq: mb.take_seq(),
                props,
                ext: Vec::new(),
                raw_mime: None,
                attachments: Vec::new(),
                heavy: None,
                size: 0,
                change: 1,
            };
            if let Some(ext) = ext_id {
                m.ext_set(ext, &format!("seed-{i}"));
            }
            self.emu.blobs.settle(&mut m).map_err(|e| e.message)?;
            mb.insert(m);
        }
        Ok(())
    }

    /// Request counters.
    pub fn counters(&self) -> Counters {
        lock(&self.emu.activity).counters.clone()
    }

    /// The request log, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.emu.activity).log.iter().cloned().collect()
    }

    /// Every fault that fired.
    pub fn fault_log(&self) -> Vec<FaultLogEntry> {
        lock(&self.emu.faults).log.clone()
    }

    /// Adds a fault rule at run time.
    pub fn add_fault(&self, rule: FaultRule) {
        lock(&self.emu.faults).add(rule);
    }

    /// Removes every fault rule (the log stays).
    pub fn clear_faults(&self) {
        lock(&self.emu.faults).clear();
    }

    /// The active fault rules.
    pub fn fault_rules(&self) -> Vec<FaultRule> {
        lock(&self.emu.faults).rules()
    }

    /// Graph requests being handled right now.
    pub fn in_flight(&self) -> usize {
        *self.emu.in_flight.borrow()
    }

    /// Waits until at least `n` requests are in flight.
    pub async fn wait_in_flight(&self, n: usize) {
        let mut rx = self.emu.in_flight.subscribe();
        let _ = rx.wait_for(|v| *v >= n).await;
    }

    /// Makes every issued token expired, so the next Graph call gets 401.
    pub fn expire_tokens(&self) {
        lock(&self.emu.auth).expire_all();
    }

    /// Forgets mailboxes, upload sessions, counters, logs and throttling state (tokens, config
    /// mailboxes and fault rules stay; config mailboxes come back empty).
    pub fn reset(&self) {
        let cfg = &self.emu.config;
        let mut store = lock(&self.emu.store);
        *store = Default::default();
        for mb in &cfg.mailboxes {
            let quota = mb.quota_bytes.unwrap_or(cfg.limits.mailbox_quota_bytes);
            store.mailboxes.insert(
                mb.address.to_ascii_lowercase(),
                Mailbox::new(&mb.address, quota),
            );
        }
        drop(store);
        *lock(&self.emu.activity) = Activity::default();
        *lock(&self.emu.throttle) = Default::default();
        lock(&self.emu.faults).log.clear();
    }
}

fn json<T: Serialize>(v: &T) -> Response {
    axum::Json(serde_json::to_value(v).unwrap_or(Value::Null)).into_response()
}

fn not_found(what: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(serde_json::json!({"error": format!("{what} not found")})),
    )
        .into_response()
}

/// `/_emulator/...` routes.
pub(crate) fn routes() -> Router<Arc<Emu>> {
    Router::new()
        .route("/mailboxes", get(|State(e): State<Arc<Emu>>| async move { json(&Inspector::new(e).mailboxes()) }))
        .route(
            "/mailboxes/{address}",
            get(|State(e): State<Arc<Emu>>, Path(a): Path<String>| async move {
                Inspector::new(e).mailbox(&a).map_or_else(|| not_found("mailbox"), |m| json(&m))
            }),
        )
        .route(
            "/mailboxes/{address}/items/{id}/mime",
            get(|State(e): State<Arc<Emu>>, Path((a, id)): Path<(String, String)>| async move {
                match Inspector::new(e).raw_mime(&a, &id) {
                    Some(raw) => ([(header::CONTENT_TYPE, "message/rfc822")], raw).into_response(),
                    None => not_found("raw MIME of that item"),
                }
            }),
        )
        .route("/counters", get(|State(e): State<Arc<Emu>>| async move { json(&Inspector::new(e).counters()) }))
        .route("/requests", get(|State(e): State<Arc<Emu>>| async move { json(&Inspector::new(e).requests()) }))
        .route("/fault-log", get(|State(e): State<Arc<Emu>>| async move { json(&Inspector::new(e).fault_log()) }))
        .route(
            "/faults",
            get(|State(e): State<Arc<Emu>>| async move { json(&Inspector::new(e).fault_rules()) })
                .post(|State(e): State<Arc<Emu>>, axum::Json(rule): axum::Json<FaultRule>| async move {
                    if let Err(err) = rule.validate() {
                        return (StatusCode::BAD_REQUEST, err.to_string()).into_response();
                    }
                    Inspector::new(e).add_fault(rule);
                    StatusCode::NO_CONTENT.into_response()
                })
                .delete(|State(e): State<Arc<Emu>>| async move {
                    Inspector::new(e).clear_faults();
                    StatusCode::NO_CONTENT
                }),
        )
        .route(
            "/reset",
            post(|State(e): State<Arc<Emu>>| async move {
                Inspector::new(e).reset();
                StatusCode::NO_CONTENT
            }),
        )
}
