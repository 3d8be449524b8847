//! `verify --deep`'s second opinion on the source: a Maildir tree's message files counted by a
//! plain walk (no layout rules, not the reader migrate used), or an IMAP folder's `STATUS
//! (MESSAGES)` (not the EXAMINE/FETCH listing), compared per destination folder with the
//! destination's own listing; for IMAP also with what the reader listed. A folder the reader never listed, or a count the ledger
//! and the reader agree on but the disk does not, shows up here whatever the ledger says.

use std::collections::{BTreeMap, HashMap};

use crate::source::maildir::IndependentCounts;

/// One folder as verify saw it: its raw name, where it goes, how many items the destination
/// lists there, and how many of its messages the ledger skipped with a reason.
pub(super) struct Seen {
    pub raw_name: String,
    pub target: String,
    pub destination_count: u64,
    pub ledger_skipped: u64,
}

/// A Maildir tree's walk counts by raw folder name.
pub(super) fn maildir_counts(counts: &IndependentCounts) -> HashMap<String, u64> {
    counts
        .folder_dirs
        .iter()
        .map(|(raw, dir)| (raw.clone(), counts.per_dir.get(dir).copied().unwrap_or(0)))
        .collect()
}

/// Per destination folder: the source's own count (less what the ledger skipped) against the
/// destination's count. Returns one line per mismatch.
pub(super) fn compare(on_source: &HashMap<String, u64>, what: &str, seen: &[Seen]) -> Vec<String> {
    // Several source folders may land in one destination folder (`.Inbox` and INBOX).
    let mut by_target: BTreeMap<&str, (u64, u64, u64, Vec<&str>)> = BTreeMap::new();
    for s in seen {
        let n = on_source.get(&s.raw_name).copied().unwrap_or(0);
        let e = by_target.entry(s.target.as_str()).or_default();
        e.0 += n;
        e.1 += s.ledger_skipped;
        e.2 = s.destination_count;
        e.3.push(s.raw_name.as_str());
    }
    by_target
        .into_iter()
        .filter(|(_, (n, skipped, dest, _))| n.saturating_sub(*skipped) != *dest)
        .map(|(target, (n, skipped, dest, sources))| {
            format!(
                "independent count: {n} {what} in {} ({skipped} skipped with a reason), {dest} items in {target} at the destination",
                sources.join(", ")
            )
        })
        .collect()
}
