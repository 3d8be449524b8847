//! What happened to every item a source holds: taken, skipped for a stated reason, or not
//! accounted for. `survey`, `migrate` and `verify` print it; anything not accounted for is an
//! error (exit 1) naming each path, so no part of a source can go missing in silence.
//!
//! The unit depends on the source: message files for a Maildir tree, LIST entries (folders) for
//! an IMAP server, where the messages of a folder that was read are accounted for by the
//! per-folder counts.

use std::collections::BTreeMap;

use serde::Serialize;

/// One item not taken, and why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct NotTaken {
    /// A path (Maildir) or a folder name (IMAP).
    pub what: String,
    pub reason: String,
}

/// One source's accounting.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct SourceAccounting {
    /// What one item is: `message files` or `folders`.
    pub unit: String,
    /// Every item seen.
    pub total: u64,
    /// Items that are read (messages of listed folders, folders read).
    pub taken: u64,
    /// Items left out for a stated reason that needs no action (`tmp/`, empty files,
    /// containers, plan exclusions).
    pub skipped: Vec<NotTaken>,
    /// Items nobody takes: an error until the operator resolves them.
    pub unaccounted: Vec<NotTaken>,
}

impl SourceAccounting {
    /// Whether every item is taken or skipped with a reason.
    pub fn is_complete(&self) -> bool {
        self.unaccounted.is_empty() && self.taken + self.skipped.len() as u64 == self.total
    }

    /// Items counted by reason, for a short summary.
    pub fn by_reason(list: &[NotTaken]) -> BTreeMap<&str, u64> {
        let mut out = BTreeMap::new();
        for n in list {
            *out.entry(n.reason.as_str()).or_default() += 1;
        }
        out
    }

    /// Stable order for reports and tests.
    pub fn sort(&mut self) {
        self.skipped.sort();
        self.unaccounted.sort();
    }

    /// Records an item left out for a reason that needs no action.
    pub fn skip(&mut self, what: impl Into<String>, reason: impl Into<String>) {
        self.skipped.push(NotTaken {
            what: what.into(),
            reason: reason.into(),
        });
    }

    /// Records an item nobody takes.
    pub fn unaccounted(&mut self, what: impl Into<String>, reason: impl Into<String>) {
        self.unaccounted.push(NotTaken {
            what: what.into(),
            reason: reason.into(),
        });
    }

    /// A few lines for the terminal: the counts, then each item not accounted for (capped at
    /// `cap`, with the count of the rest).
    pub fn render(&self, cap: usize) -> String {
        let mut out = format!(
            "  source accounting ({}): {} seen, {} taken, {} skipped, {} not accounted for\n",
            self.unit,
            self.total,
            self.taken,
            self.skipped.len(),
            self.unaccounted.len()
        );
        for (reason, n) in Self::by_reason(&self.skipped) {
            out.push_str(&format!("    skipped {n}: {reason}\n"));
        }
        for n in self.unaccounted.iter().take(cap) {
            out.push_str(&format!(
                "    NOT ACCOUNTED FOR: {} ({})\n",
                n.what, n.reason
            ));
        }
        if self.unaccounted.len() > cap {
            out.push_str(&format!(
                "    ... and {} more not accounted for (all in the JSON output)\n",
                self.unaccounted.len() - cap
            ));
        }
        out
    }
}
