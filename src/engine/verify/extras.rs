//! Extra items at the destination: what `verify` reports as "extra (possible duplicate)".
//!
//! An item no source message claimed is extra when it is a copy of a source message without the
//! identity stamp (importMime items are stamped only by the PATCH after the create, so a copy
//! whose create response was lost and which a later run wrote again is unstamped), told by its
//! Message-ID, and by its size where the destination reports one (Graph does not). And a folder
//! that holds more items than its source is a difference in itself, whatever the items are: the
//! ids of the unclaimed ones are listed, so an operator can look at each.

use std::collections::HashSet;

use super::{Discrepancy, MailboxVerify};
use crate::engine::ports::DestItem;
use crate::model::MessageMeta;

/// The source messages' Message-IDs and sizes, to recognise unstamped copies.
pub(super) struct SourceKeys<'a> {
    with_size: HashSet<(Option<&'a str>, u64)>,
    ids: HashSet<&'a str>,
}

impl<'a> SourceKeys<'a> {
    pub(super) fn new(metas: &'a [MessageMeta]) -> Self {
        SourceKeys {
            with_size: metas
                .iter()
                .map(|m| (m.message_id.as_deref(), m.size))
                .collect(),
            ids: metas
                .iter()
                .filter_map(|m| m.message_id.as_deref())
                .collect(),
        }
    }

    /// An unstamped item that is a copy of a source message: same Message-ID, and same size
    /// when the destination reports sizes.
    pub(super) fn same_as_source(&self, i: &DestItem) -> bool {
        if i.stamp.is_some() {
            return false;
        }
        match i.size {
            Some(size) => self.with_size.contains(&(i.message_id.as_deref(), size)),
            None => i
                .message_id
                .as_deref()
                .is_some_and(|id| self.ids.contains(id)),
        }
    }
}

/// The detail of an extra item.
pub(super) fn extra_detail(item_id: &str) -> String {
    format!("extra (possible duplicate): item {item_id}")
}

/// A folder with more items at the destination than at the source is a difference: a reason
/// naming the unclaimed items (those not matched to a source message).
pub(super) fn count_check(
    folder: &str,
    source_count: usize,
    items: &[DestItem],
    claimed: &HashSet<&str>,
    v: &mut MailboxVerify,
) {
    if items.len() <= source_count {
        return;
    }
    let unclaimed: Vec<&str> = items
        .iter()
        .map(|i| i.id.as_str())
        .filter(|id| !claimed.contains(id))
        .collect();
    v.reasons.push(format!(
        "folder {folder:?}: {} items at the destination, {source_count} at the source: extra (possible duplicate): {}",
        items.len(),
        if unclaimed.is_empty() {
            "-".to_owned()
        } else {
            unclaimed.join(", ")
        }
    ));
    let reported: HashSet<String> = v.doubled.iter().map(|d| d.detail.clone()).collect();
    for id in unclaimed {
        let detail = extra_detail(id);
        if !reported.contains(&detail) {
            v.doubled.push(Discrepancy {
                folder: folder.to_owned(),
                uid: None,
                message_id: items
                    .iter()
                    .find(|i| i.id == id)
                    .and_then(|i| i.message_id.clone()),
                kind: "extra".into(),
                detail,
            });
        }
    }
}
