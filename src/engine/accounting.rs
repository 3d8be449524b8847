//! One mailbox's source accounting as the engine sees it: the source's own inventory (every
//! Maildir file, every IMAP LIST entry) with the plan's exclusions as stated reasons, and folders
//! the server refused to open moved to "not accounted for".

use std::collections::HashMap;

use crate::source::accounting::SourceAccounting;
use crate::translate::FolderMapping;

/// The plan rule that leaves each excluded folder out, by raw name.
pub(crate) fn exclusions(mappings: &[FolderMapping]) -> HashMap<String, String> {
    mappings
        .iter()
        .filter(|m| m.target.is_none())
        .map(|m| {
            let rule = m
                .excluded_by
                .as_deref()
                .map(|r| format!("excluded by the plan rule {r:?}"))
                .unwrap_or_else(|| "excluded by the plan".to_owned());
            (m.source.raw_name.clone(), rule)
        })
        .collect()
}

/// An IMAP mailbox: one item per LIST entry.
pub(crate) fn imap(mappings: &[FolderMapping]) -> SourceAccounting {
    let excluded = exclusions(mappings);
    let mut acc = SourceAccounting {
        unit: "folders".into(),
        ..SourceAccounting::default()
    };
    for m in mappings {
        acc.total += 1;
        let name = m.source.path.to_string();
        if let Some(rule) = excluded.get(&m.source.raw_name) {
            acc.skip(name, rule.clone());
        } else if !m.source.selectable {
            acc.skip(name, "\\Noselect: a container that holds no messages");
        } else {
            acc.taken += 1;
        }
    }
    acc.sort();
    acc
}

/// A folder counted as read that could not be opened: not accounted for, with the server's
/// reason (IMAP units are folders; a Maildir folder's files are named by the file walk, so
/// only the folder is added there).
pub(crate) fn refused(acc: &mut SourceAccounting, folder: &str, reason: &str) {
    if acc.unit == "folders" {
        acc.taken = acc.taken.saturating_sub(1);
    } else {
        acc.total += 1;
    }
    acc.unaccounted(
        folder.to_owned(),
        format!("the source refused to open it: {reason}"),
    );
    acc.sort();
}
