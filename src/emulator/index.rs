//! A mailbox's indexes and counters, kept up to date on every insert and removal so that no
//! request pays for the size of the store: used bytes (quota), total and unread items per folder,
//! the newest-first order per folder and for the whole mailbox (listings and paging),
//! `internetMessageId` -> items, and stored extended property (id, value) -> items (the identity
//! stamp lookup). Keys compare as `$filter` does: strings ignore case.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::store::Message;

/// Newest first when iterated in reverse: (receivedDateTime, creation order, id).
pub(crate) type OrderKey = (String, u64, String);

/// Item counts of one folder, and its listing order.
#[derive(Debug, Default)]
pub(crate) struct FolderIndex {
    pub total: u64,
    pub unread: u64,
    pub order: BTreeSet<OrderKey>,
}

/// An equality a filter asks for that an index answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IndexKey {
    MessageId(String),
    Ext { id: String, value: String },
}

#[derive(Debug, Default)]
pub(crate) struct Index {
    pub used_bytes: u64,
    pub folders: HashMap<String, FolderIndex>,
    pub all: BTreeSet<OrderKey>,
    by_message_id: HashMap<String, HashSet<String>>,
    by_ext: HashMap<(String, String), HashSet<String>>,
}

/// Extended property ids compare without regard to case or repeated spaces.
pub(crate) fn norm_ext_id(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase()
}

pub(crate) fn order_key(m: &Message) -> OrderKey {
    (
        m.str_prop("receivedDateTime").unwrap_or("").to_owned(),
        m.seq,
        m.id.clone(),
    )
}

impl Index {
    pub fn add(&mut self, m: &Message) {
        self.used_bytes += m.size;
        let f = self.folders.entry(m.folder_id.clone()).or_default();
        f.total += 1;
        f.unread += u64::from(!m.is_read());
        f.order.insert(order_key(m));
        self.all.insert(order_key(m));
        if let Some(mid) = m.str_prop("internetMessageId") {
            self.by_message_id
                .entry(mid.to_lowercase())
                .or_default()
                .insert(m.id.clone());
        }
        for e in &m.ext {
            self.by_ext
                .entry((norm_ext_id(&e.id), e.value.to_lowercase()))
                .or_default()
                .insert(m.id.clone());
        }
    }

    pub fn remove(&mut self, m: &Message) {
        self.used_bytes = self.used_bytes.saturating_sub(m.size);
        if let Some(f) = self.folders.get_mut(&m.folder_id) {
            f.total = f.total.saturating_sub(1);
            f.unread = f.unread.saturating_sub(u64::from(!m.is_read()));
            f.order.remove(&order_key(m));
        }
        self.all.remove(&order_key(m));
        if let Some(mid) = m.str_prop("internetMessageId") {
            let k = mid.to_lowercase();
            if let Some(set) = self.by_message_id.get_mut(&k) {
                set.remove(&m.id);
                if set.is_empty() {
                    self.by_message_id.remove(&k);
                }
            }
        }
        for e in &m.ext {
            let k = (norm_ext_id(&e.id), e.value.to_lowercase());
            if let Some(set) = self.by_ext.get_mut(&k) {
                set.remove(&m.id);
                if set.is_empty() {
                    self.by_ext.remove(&k);
                }
            }
        }
    }

    /// Ids of the items an index key names (possibly more than match the whole filter).
    pub fn lookup(&self, key: &IndexKey) -> Vec<String> {
        let set = match key {
            IndexKey::MessageId(mid) => self.by_message_id.get(&mid.to_lowercase()),
            IndexKey::Ext { id, value } => {
                self.by_ext.get(&(norm_ext_id(id), value.to_lowercase()))
            }
        };
        set.map(|s| s.iter().cloned().collect()).unwrap_or_default()
    }
}
