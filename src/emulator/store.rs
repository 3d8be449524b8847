//! The in-memory mailbox store: mailboxes, folders (with Exchange's well-known folders), items
//! with their Graph properties, extended properties, raw MIME and attachments, plus upload
//! sessions. Pure data and lookups; HTTP handlers live in folders.rs, messages.rs and upload.rs.

use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::errors::ApiError;

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
    pub content: Vec<u8>,
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
    pub raw_mime: Option<Vec<u8>>,
    pub attachments: Vec<Attachment>,
    pub change: u64,
}

impl Message {
    pub fn size(&self) -> u64 {
        // Attachments of a MIME item are parts of its stored bytes: count them once.
        match &self.raw_mime {
            Some(r) => r.len() as u64,
            None => {
                serde_json::to_vec(&self.props)
                    .map(|v| v.len() as u64)
                    .unwrap_or(0)
                    + self
                        .attachments
                        .iter()
                        .map(|a| a.content.len() as u64)
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
    let norm = |s: &str| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_ascii_lowercase()
    };
    norm(a) == norm(b)
}

#[derive(Debug)]
pub(crate) struct Mailbox {
    pub id: String,
    pub address: String,
    pub quota_bytes: u64,
    pub folders: BTreeMap<String, Folder>,
    pub messages: HashMap<String, Message>,
    pub next_seq: u64,
}

impl Mailbox {
    pub fn new(address: &str, quota_bytes: u64) -> Self {
        let mut mb = Mailbox {
            id: uuid::Uuid::new_v4().to_string(),
            address: address.to_owned(),
            quota_bytes,
            folders: BTreeMap::new(),
            messages: HashMap::new(),
            next_seq: 1,
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
        self.messages.values().map(Message::size).sum()
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

    #[test]
    fn extended_property_ids_ignore_case_and_spacing() {
        assert!(ext_id_eq("Integer 0x0E07", "integer  0x0e07"));
        assert!(!ext_id_eq("Integer 0x0E07", "Integer 0x0E06"));
    }
}
