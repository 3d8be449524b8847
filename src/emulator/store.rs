//! The in-memory mailbox store: mailboxes, folders (with Exchange's well-known folders), items
//! with their Graph properties, extended properties, raw MIME and attachments, plus upload
//! sessions. Pure data and lookups; HTTP handlers live in folders.rs, messages.rs and upload.rs.
//! Items are reached only through [`Mailbox`]'s methods, which keep the indexes (index.rs) in
//! step and count every item they touch (`visits`, shown per request under `/_emulator`). A
//! mailbox keeps each item in its compact stored form (compact.rs) and hands out rebuilt
//! [`Message`]s: a change is made on the copy and stored back with [`Mailbox::insert`].

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::blobs::Blob;
use super::compact::{Names, Stored};
use super::errors::ApiError;
use super::index::{FolderIndex, Index, IndexKey};

/// Well-known folders: (name, display name, visible under msgfolderroot, hidden, parent well-known).
/// Folders whose parent is `None` live outside the IPM subtree (not listed by `mailFolders`).
const WELL_KNOWN: &[(&str, &str, bool, Option<&str>)] = &[
    ("msgfolderroot", "Top of Information Store", false, None),
    ("archive", "Archive", false, Some("msgfolderroot")),
    (
        "conversationhistory",
        "Conversation History",
        false,
        Some("msgfolderroot"),
    ),
    (
        "deleteditems",
        "Deleted Items",
        false,
        Some("msgfolderroot"),
    ),
    ("drafts", "Drafts", false, Some("msgfolderroot")),
    ("inbox", "Inbox", false, Some("msgfolderroot")),
    ("junkemail", "Junk Email", false, Some("msgfolderroot")),
    ("outbox", "Outbox", false, Some("msgfolderroot")),
    ("sentitems", "Sent Items", false, Some("msgfolderroot")),
    ("clutter", "Clutter", true, Some("msgfolderroot")),
    ("scheduled", "Scheduled", true, Some("msgfolderroot")),
    ("syncissues", "Sync Issues", true, Some("msgfolderroot")),
    ("conflicts", "Conflicts", true, Some("syncissues")),
    ("localfailures", "Local Failures", true, Some("syncissues")),
    (
        "serverfailures",
        "Server Failures",
        true,
        Some("syncissues"),
    ),
    ("searchfolders", "Finder", true, None),
    ("recoverableitemsdeletions", "Deletions", true, None),
];

/// A new opaque id in the style of Exchange's (base64-looking, URL safe).
pub(crate) fn new_id(prefix: &str) -> String {
    let bytes: [u8; 18] = rand::random();
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// Now, in Graph's timestamp format.
pub(crate) fn now_string() -> String {
    format_time(Utc::now())
}

pub(crate) fn format_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[derive(Debug, Clone)]
pub(crate) struct Folder {
    pub id: String,
    pub display_name: String,
    pub parent_id: Option<String>,
    pub is_hidden: bool,
    pub well_known: Option<&'static str>,
}

#[derive(Debug, Clone)]
pub(crate) struct ExtProp {
    pub id: String,
    pub value: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Attachment {
    pub id: String,
    pub name: String,
    pub content_type: String,
    pub content: Blob,
    pub is_inline: bool,
    pub content_id: Option<String>,
    pub last_modified: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Message {
    pub id: String,
    pub folder_id: String,
    /// Creation order within the mailbox, for stable sorting.
    pub seq: u64,
    /// Graph properties (subject, body, isRead, receivedDateTime, ...), without `id`.
    pub props: Map<String, Value>,
    pub ext: Vec<ExtProp>,
    /// The bytes given to importMime, kept byte for byte.
    pub raw_mime: Option<Blob>,
    pub attachments: Vec<Attachment>,
    /// The large properties (`blobs::HEAVY`) once moved out of `props` (disk and digest modes).
    pub heavy: Option<Blob>,
    /// Size as counted against limits, computed when the item is settled (blobs.rs).
    pub size: u64,
    pub change: u64,
}

impl Message {
    /// The size from the item's current form (settled items use [`Message::size`]).
    pub fn compute_size(&self) -> u64 {
        // Attachments of a MIME item are parts of its stored bytes: count them once.
        match &self.raw_mime {
            Some(r) => r.len(),
            None => {
                serde_json::to_vec(&self.props)
                    .map(|v| v.len() as u64)
                    .unwrap_or(0)
                    + self.heavy.as_ref().map_or(0, Blob::len)
                    + self
                        .attachments
                        .iter()
                        .map(|a| a.content.len())
                        .sum::<u64>()
            }
        }
    }
    pub fn is_draft(&self) -> bool {
        self.props
            .get("isDraft")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }
    pub fn is_read(&self) -> bool {
        self.props
            .get("isRead")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }
    pub fn str_prop(&self, name: &str) -> Option<&str> {
        self.props.get(name).and_then(Value::as_str)
    }
    pub fn ext_set(&mut self, id: &str, value: &str) {
        match self.ext.iter_mut().find(|e| ext_id_eq(&e.id, id)) {
            Some(e) => e.value = value.to_owned(),
            None => self.ext.push(ExtProp {
                id: id.to_owned(),
                value: value.to_owned(),
            }),
        }
    }
    pub fn touch(&mut self) {
        self.change += 1;
        self.props
            .insert("lastModifiedDateTime".into(), Value::String(now_string()));
    }
}

/// Extended property ids compare without regard to case or repeated spaces
/// (`Integer 0x0E07` == `integer 0x0e07`).
pub(crate) fn ext_id_eq(a: &str, b: &str) -> bool {
    super::index::norm_ext_id(a) == super::index::norm_ext_id(b)
}

#[derive(Debug)]
pub(crate) struct Mailbox {
    pub id: String,
    pub address: String,
    pub quota_bytes: u64,
    pub folders: BTreeMap<String, Folder>,
    /// Items by creation order (`seq`).
    items: HashMap<u64, Stored>,
    /// Item id -> creation order.
    ids: HashMap<Arc<str>, u64>,
    names: Names,
    index: Index,
    pub next_seq: u64,
    /// Items touched so far (a measure of work that does not depend on the clock).
    visits: Cell<u64>,
}

impl Mailbox {
    pub fn new(address: &str, quota_bytes: u64) -> Self {
        let mut mb = Mailbox {
            id: uuid::Uuid::new_v4().to_string(),
            address: address.to_owned(),
            quota_bytes,
            folders: BTreeMap::new(),
            items: HashMap::new(),
            ids: HashMap::new(),
            names: Names::default(),
            index: Index::default(),
            next_seq: 1,
            visits: Cell::new(0),
        };
        let mut ids: HashMap<&str, String> = HashMap::new();
        for (name, display, hidden, parent) in WELL_KNOWN {
            let id = new_id("AQMkAD");
            ids.insert(name, id.clone());
            mb.folders.insert(
                id.clone(),
                Folder {
                    id,
                    display_name: (*display).to_owned(),
                    parent_id: parent.and_then(|p| ids.get(p).cloned()),
                    is_hidden: *hidden,
                    well_known: Some(name),
                },
            );
        }
        mb
    }

    /// A folder by id or well-known name.
    pub fn folder(&self, id_or_name: &str) -> Result<&Folder, ApiError> {
        if let Some(f) = self.folders.get(id_or_name) {
            return Ok(f);
        }
        self.folders
            .values()
            .find(|f| {
                f.well_known
                    .is_some_and(|w| w.eq_ignore_ascii_case(id_or_name))
            })
            .ok_or_else(|| ApiError::not_found(&format!("folder {id_or_name}")))
    }

    pub fn well_known_id(&self, name: &str) -> String {
        self.folder(name).map(|f| f.id.clone()).unwrap_or_default()
    }

    pub fn children<'a>(&'a self, parent: &'a str) -> impl Iterator<Item = &'a Folder> + 'a {
        self.folders
            .values()
            .filter(move |f| f.parent_id.as_deref() == Some(parent))
    }

    /// `Inbox/Sub/Leaf` style path from msgfolderroot, for inspection.
    pub fn folder_path(&self, id: &str) -> String {
        let mut parts = Vec::new();
        let mut cur = self.folders.get(id);
        while let Some(f) = cur {
            if f.well_known == Some("msgfolderroot") {
                break;
            }
            parts.push(f.display_name.clone());
            cur = f.parent_id.as_ref().and_then(|p| self.folders.get(p));
        }
        parts.reverse();
        parts.join("/")
    }

    /// Every folder id in the subtree rooted at `id`, itself included.
    pub fn subtree(&self, id: &str) -> Vec<String> {
        let mut out = vec![id.to_owned()];
        let mut i = 0;
        while i < out.len() {
            let kids: Vec<String> = self.children(&out[i]).map(|f| f.id.clone()).collect();
            out.extend(kids);
            i += 1;
        }
        out
    }

    pub fn used_bytes(&self) -> u64 {
        self.index.used_bytes
    }

    /// Items touched by this mailbox's methods so far.
    pub fn visits(&self) -> u64 {
        self.visits.get()
    }

    fn visit(&self, n: u64) {
        self.visits.set(self.visits.get() + n);
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// One item by id (a copy: store changes back with [`Mailbox::insert`]).
    pub fn get(&self, id: &str) -> Option<Message> {
        self.visit(1);
        let seq = self.ids.get(id)?;
        Some(self.items.get(seq)?.to_message(*seq))
    }

    /// Stores an item (replacing one with the same id), keeping the indexes in step.
    pub fn insert(&mut self, mut m: Message) {
        self.visit(1);
        if let Some(seq) = self.ids.remove(m.id.as_str())
            && let Some(old) = self.items.remove(&seq)
        {
            self.index.remove(&old.into_message(seq));
        }
        if self.items.contains_key(&m.seq) {
            // Another item holds this creation order (never the case for handlers' items,
            // whose seq comes from take_seq): keep both.
            m.seq = self.take_seq();
        }
        self.index.add(&m);
        let seq = m.seq;
        let stored = Stored::new(m, &mut self.names);
        self.ids.insert(stored.id.clone(), seq);
        self.items.insert(seq, stored);
    }

    fn remove_seq(&mut self, seq: u64) -> Option<Message> {
        let stored = self.items.remove(&seq)?;
        self.ids.remove(&stored.id);
        let m = stored.into_message(seq);
        self.index.remove(&m);
        Some(m)
    }

    /// Removes an item.
    pub fn remove(&mut self, id: &str) -> Option<Message> {
        self.visit(1);
        let seq = *self.ids.get(id)?;
        self.remove_seq(seq)
    }

    /// The stored records (footprint tests).
    #[cfg(test)]
    pub fn stored(&self) -> impl Iterator<Item = &Stored> {
        self.items.values()
    }

    /// Changes an item in place (through remove and insert, so the indexes follow).
    pub fn update<T>(&mut self, id: &str, f: impl FnOnce(&mut Message) -> T) -> Option<T> {
        let mut m = self.remove(id)?;
        let out = f(&mut m);
        self.insert(m);
        Some(out)
    }

    /// (total, unread) items directly in a folder.
    pub fn folder_counts(&self, folder_id: &str) -> (u64, u64) {
        self.index
            .folders
            .get(folder_id)
            .map_or((0, 0), |f| (f.total, f.unread))
    }

    /// Items newest first (of one folder, or the whole mailbox), after skipping `skip` entries
    /// of the order index; each item yielded counts as a visit.
    pub fn newest_first<'a>(
        &'a self,
        folder_id: Option<&str>,
        skip: usize,
    ) -> Box<dyn Iterator<Item = Message> + 'a> {
        let order = match folder_id {
            Some(f) => match self.index.folders.get(f) {
                Some(FolderIndex { order, .. }) => order,
                None => return Box::new(std::iter::empty()),
            },
            None => &self.index.all,
        };
        Box::new(order.iter().rev().skip(skip).filter_map(move |(_, seq)| {
            self.visit(1);
            Some(self.items.get(seq)?.to_message(*seq))
        }))
    }

    /// Items an index key names, newest first (each one a visit).
    pub fn by_index(&self, key: &IndexKey) -> Vec<Message> {
        let mut out: Vec<Message> = self
            .index
            .lookup(key)
            .into_iter()
            .filter_map(|seq| {
                self.visit(1);
                Some(self.items.get(&seq)?.to_message(seq))
            })
            .collect();
        out.sort_by_key(|m| std::cmp::Reverse(super::index::order_key(m)));
        out
    }

    /// Every item, in creation order (inspection only).
    pub fn all_by_seq(&self) -> Vec<Message> {
        self.visit(self.items.len() as u64);
        let mut seqs: Vec<u64> = self.items.keys().copied().collect();
        seqs.sort_unstable();
        seqs.iter()
            .filter_map(|seq| Some(self.items.get(seq)?.to_message(*seq)))
            .collect()
    }

    /// Removes every item of these folders (folder delete), visiting only those items.
    pub fn remove_items_in(&mut self, folder_ids: &[String]) {
        for f in folder_ids {
            let seqs: Vec<u64> = self
                .index
                .folders
                .get(f)
                .map(|fi| fi.order.iter().map(|(_, seq)| *seq).collect())
                .unwrap_or_default();
            for seq in seqs {
                self.visit(1);
                self.remove_seq(seq);
            }
            self.index.folders.remove(f);
        }
    }

    pub fn take_seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    /// Checks quota for `extra` more bytes (507 when over).
    pub fn check_quota(&self, extra: u64) -> Result<(), ApiError> {
        if self.used_bytes() + extra > self.quota_bytes {
            return Err(ApiError::new(
                507,
                "ErrorQuotaExceeded",
                format!(
                    "The mailbox {} is full (quota {} bytes).",
                    self.address, self.quota_bytes
                ),
            ));
        }
        Ok(())
    }
}

/// An attachment upload session (large attachments, 3-150 MB).
#[derive(Debug)]
pub(crate) struct UploadSession {
    pub mailbox: String,
    pub client_id: String,
    pub message_id: String,
    pub token: String,
    pub name: String,
    pub content_type: String,
    pub is_inline: bool,
    pub content_id: Option<String>,
    pub size: u64,
    pub data: Vec<u8>,
    pub expires: tokio::time::Instant,
    pub expires_text: String,
}

#[derive(Debug, Default)]
pub(crate) struct Store {
    /// By lower-case address.
    pub mailboxes: BTreeMap<String, Mailbox>,
    pub uploads: HashMap<String, UploadSession>,
}

impl Store {
    /// The key (lower-case address) of a mailbox given by address or id.
    pub fn key_of(&self, id_or_upn: &str) -> Option<String> {
        let lower = id_or_upn.to_ascii_lowercase();
        if self.mailboxes.contains_key(&lower) {
            return Some(lower);
        }
        self.mailboxes
            .iter()
            .find(|(_, m)| m.id.eq_ignore_ascii_case(id_or_upn))
            .map(|(k, _)| k.clone())
    }

    pub fn mailbox_mut(&mut self, key: &str) -> Result<&mut Mailbox, ApiError> {
        self.mailboxes
            .get_mut(key)
            .ok_or_else(|| ApiError::not_found("mailbox"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_mailbox_has_every_well_known_folder_and_paths() {
        let mb = Mailbox::new("a@b.example", 1000);
        for (name, ..) in WELL_KNOWN {
            assert!(mb.folder(name).is_ok(), "{name}");
        }
        assert!(
            mb.folder("INBOX").is_ok(),
            "well-known names are case-insensitive"
        );
        let conflicts = mb.folder("conflicts").unwrap().id.clone();
        assert_eq!(mb.folder_path(&conflicts), "Sync Issues/Conflicts");
        let root = mb.well_known_id("msgfolderroot");
        assert!(mb.subtree(&root).len() >= 14);
        assert!(mb.check_quota(1001).is_err());
    }

    fn item(mb: &mut Mailbox, folder: &str, received: &str, read: bool, mid: &str) -> Message {
        let mut props = Map::new();
        props.insert("receivedDateTime".into(), Value::String(received.into()));
        props.insert("isRead".into(), Value::Bool(read));
        props.insert("internetMessageId".into(), Value::String(mid.into()));
        let mut m = Message {
            id: new_id("AAMkAD"),
            folder_id: folder.to_owned(),
            seq: mb.take_seq(),
            props,
            ext: vec![ExtProp {
                id: "String {00000000-0000-0000-0000-000000000001} Name S".into(),
                value: mid.to_uppercase(),
            }],
            raw_mime: None,
            attachments: Vec::new(),
            heavy: None,
            size: 0,
            change: 1,
        };
        m.size = m.compute_size();
        m
    }

    #[test]
    fn indexes_follow_inserts_updates_and_removals() {
        let mut mb = Mailbox::new("a@b.example", 1 << 30);
        let inbox = mb.well_known_id("inbox");
        let a = item(&mut mb, &inbox, "2020-01-02T00:00:00Z", false, "<a@x>");
        let b = item(&mut mb, &inbox, "2020-01-01T00:00:00Z", true, "<b@x>");
        let (ida, idb) = (a.id.clone(), b.id.clone());
        let total = a.size + b.size;
        mb.insert(a);
        mb.insert(b);
        assert_eq!(mb.used_bytes(), total);
        assert_eq!(mb.folder_counts(&inbox), (2, 1));
        let order: Vec<String> = mb.newest_first(Some(&inbox), 0).map(|m| m.id).collect();
        assert_eq!(order, [ida.clone(), idb.clone()], "newest first");
        let by_mid = mb.by_index(&IndexKey::MessageId("<A@X>".into()));
        assert_eq!(by_mid.len(), 1, "Message-IDs compare ignoring case");
        let key = IndexKey::Ext {
            id: "string {00000000-0000-0000-0000-000000000001}  name S".into(),
            value: "<b@x>".into(),
        };
        assert_eq!(mb.by_index(&key)[0].id, idb);
        // A change goes through remove and insert: the unread count and the index follow.
        mb.update(&ida, |m| {
            m.props.insert("isRead".into(), Value::Bool(true));
            m.ext[0].value = "changed".into();
        });
        assert_eq!(mb.folder_counts(&inbox), (2, 0));
        assert!(
            mb.by_index(&IndexKey::Ext {
                id: "String {00000000-0000-0000-0000-000000000001} Name S".into(),
                value: "<A@X>".into()
            })
            .is_empty()
        );
        mb.remove_items_in(std::slice::from_ref(&inbox));
        assert_eq!(mb.used_bytes(), 0);
        assert_eq!(mb.folder_counts(&inbox), (0, 0));
        assert_eq!(mb.len(), 0);
        assert!(mb.visits() > 0);
    }

    #[test]
    fn extended_property_ids_ignore_case_and_spacing() {
        assert!(ext_id_eq("Integer 0x0E07", "integer  0x0e07"));
        assert!(!ext_id_eq("Integer 0x0E07", "Integer 0x0E06"));
    }
}
