//! `verify --deep`'s second opinion on a Maildir source: the tree's message files counted by a
//! plain walk (no layout rules, not the reader migrate used), compared per destination folder
//! with the destination's own listing. A folder the reader never listed, or a count the ledger
//! and the reader agree on but the disk does not, shows up here whatever the ledger says.

use std::collections::BTreeMap;

use crate::source::maildir::IndependentCounts;

/// One folder as verify saw it: its raw name, where it goes, how many items the destination
/// lists there, and how many of its messages the ledger skipped with a reason.
pub(super) struct Seen {
    pub raw_name: String,
    pub target: String,
    pub destination_count: u64,
    pub ledger_skipped: u64,
}

/// Per destination folder: the walk's count (less what the ledger skipped) against the
/// destination's count. Returns one line per mismatch.
pub(super) fn compare(counts: &IndependentCounts, seen: &[Seen]) -> Vec<String> {
    // Several source folders may land in one destination folder (`.Inbox` and INBOX).
    let mut by_target: BTreeMap<&str, (u64, u64, u64, Vec<&str>)> = BTreeMap::new();
    for s in seen {
        let on_disk = counts
            .folder_dirs
            .get(&s.raw_name)
            .and_then(|d| counts.per_dir.get(d))
            .copied()
            .unwrap_or(0);
        let e = by_target.entry(s.target.as_str()).or_default();
        e.0 += on_disk;
        e.1 += s.ledger_skipped;
        e.2 = s.destination_count;
        e.3.push(s.raw_name.as_str());
    }
    by_target
        .into_iter()
        .filter(|(_, (disk, skipped, dest, _))| disk.saturating_sub(*skipped) != *dest)
        .map(|(target, (disk, skipped, dest, sources))| {
            format!(
                "independent count: {disk} message files on disk in {} ({skipped} skipped with a reason), {dest} items in {target} at the destination",
                sources.join(", ")
            )
        })
        .collect()
}
