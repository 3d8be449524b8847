//! A mailbox's indexes and counters, kept up to date on every insert and removal so that no
//! request pays for the size of the store: used bytes (quota), total and unread items per folder,
//! the newest-first order per folder and for the whole mailbox (listings and paging),
//! `internetMessageId` -> items, and stored extended property (id, value) -> items (the identity
//! stamp lookup). Keys compare as `$filter` does: strings ignore case.
//!
//! Items are named by their creation order (`seq`, the key the mailbox keeps them under), and
//! the lookup indexes hold a 64-bit hash of the key rather than the key: each entry is 16 bytes
//! whatever the strings (issue 16, memory per item). A hash may name items the key does not
//! (a collision); callers apply the whole filter to what a lookup returns, as they must anyway.

use std::collections::{BTreeSet, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};

use super::compact::canonical_secs;
use super::store::Message;

/// Newest first when iterated in reverse: (receivedDateTime in seconds, creation order). Every
/// writer stores `receivedDateTime` in the canonical `YYYY-MM-DDTHH:MM:SSZ` form, whose seconds
/// sort as the strings do.
pub(crate) type OrderKey = (i64, u64);

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
    /// (hash of the key, seq): the items under a key are one range.
    by_key: BTreeSet<(u64, u64)>,
}

/// Extended property ids compare without regard to case or repeated spaces.
pub(crate) fn norm_ext_id(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase()
}

pub(crate) fn order_key(m: &Message) -> OrderKey {
    let received = m
        .str_prop("receivedDateTime")
        .and_then(canonical_secs)
        .unwrap_or(i64::MIN);
    (received, m.seq)
}

/// A fixed hash (the same in every run) of what an index key compares.
fn key_hash(key: &IndexKey) -> u64 {
    let mut h = DefaultHasher::new();
    match key {
        IndexKey::MessageId(mid) => (0u8, mid.to_lowercase()).hash(&mut h),
        IndexKey::Ext { id, value } => (1u8, norm_ext_id(id), value.to_lowercase()).hash(&mut h),
    }
    h.finish()
}

/// The index keys of an item.
fn keys_of(m: &Message) -> impl Iterator<Item = u64> + '_ {
    let mid = m
        .str_prop("internetMessageId")
        .map(|mid| key_hash(&IndexKey::MessageId(mid.to_owned())));
    mid.into_iter().chain(m.ext.iter().map(|e| {
        key_hash(&IndexKey::Ext {
            id: e.id.clone(),
            value: e.value.clone(),
        })
    }))
}

impl Index {
    pub fn add(&mut self, m: &Message) {
        self.used_bytes += m.size;
        let f = self.folders.entry(m.folder_id.clone()).or_default();
        f.total += 1;
        f.unread += u64::from(!m.is_read());
        f.order.insert(order_key(m));
        self.all.insert(order_key(m));
        for h in keys_of(m) {
            self.by_key.insert((h, m.seq));
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
        for h in keys_of(m) {
            self.by_key.remove(&(h, m.seq));
        }
    }

    /// Creation orders (`seq`) of the items an index key names (possibly more than match the
    /// whole filter).
    pub fn lookup(&self, key: &IndexKey) -> Vec<u64> {
        let h = key_hash(key);
        self.by_key
            .range((h, 0)..=(h, u64::MAX))
            .map(|(_, seq)| *seq)
            .collect()
    }
}
