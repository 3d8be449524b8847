//! What mailferry tells the operator: progress while it runs, a summary at the end, and JSON
//! and CSV reports on disk (created 0600) that can be kept as the migration's record.
//!
//! The engine only emits [`Event`]s; [`progress`] turns them into terminal lines (indicatif on a
//! TTY, plain periodic lines otherwise) or a JSON-lines stream with `--json`.

pub mod files;
pub mod progress;
pub mod reason;
pub mod stdout;
pub mod table;
pub mod text;

use std::collections::BTreeMap;

use serde::Serialize;
use tokio::sync::mpsc;

/// Something the engine did that the operator may want to see.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    MailboxStarted {
        mailbox: String,
        destination: String,
    },
    /// The mailbox's folder list is known: how many folders a pass will list. Until as many
    /// `folder_planned` events arrived, totals and ETA cover only part of the mailbox.
    FoldersListed { mailbox: String, folders: u64 },
    /// A folder's work is known: how many messages and bytes it will copy.
    FolderPlanned {
        mailbox: String,
        /// The folder's name exactly as the source sent it (modified UTF-7 on IMAP).
        folder: String,
        /// The same name decoded, `/` between levels: what an operator reads.
        folder_name: String,
        messages: u64,
        bytes: u64,
    },
    /// Messages written (increments).
    Copied {
        mailbox: String,
        messages: u64,
        bytes: u64,
    },
    /// One message was not copied, and why.
    ItemProblem {
        mailbox: String,
        /// Raw and decoded folder name, as in `FolderPlanned`.
        folder: String,
        folder_name: String,
        uid: u32,
        outcome: String,
        reason: String,
    },
    /// The destination asked us to slow down.
    Throttled { mailbox: String, detail: String },
    /// Large messages uploading in ranges (upload sessions): how far they are. Sent when it
    /// changed; `messages: 0` once the last one ended.
    Uploading {
        mailbox: String,
        messages: u64,
        /// Bytes the destination has taken so far.
        sent: u64,
        /// Bytes of the sessions in flight.
        total: u64,
    },
    MailboxFinished {
        /// Boxed: a summary is far larger than the other events.
        summary: Box<MailboxSummary>,
    },
}

/// Where the engine sends events; sending never blocks and never fails the run.
#[derive(Debug, Clone)]
pub struct Events(Option<mpsc::UnboundedSender<Event>>);

impl Events {
    /// A channel of events and its receiving end.
    pub fn channel() -> (Events, mpsc::UnboundedReceiver<Event>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Events(Some(tx)), rx)
    }
    /// Events that go nowhere.
    pub fn discard() -> Events {
        Events(None)
    }
    pub fn send(&self, event: Event) {
        if let Some(tx) = &self.0 {
            let _ = tx.send(event);
        }
    }
}

/// What happened to one mailbox in one run.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct MailboxSummary {
    pub mailbox: String,
    pub destination: String,
    /// `ok`, `failed`, `interrupted`, `dry-run`.
    pub status: String,
    pub error: Option<String>,
    pub folders: u64,
    /// Folders skipped because nothing changed at the source since the last pass.
    pub folders_unchanged: u64,
    pub listed: u64,
    pub copied: u64,
    pub copied_bytes: u64,
    /// Already at the destination from an earlier run (or re-matched after a UIDVALIDITY change).
    pub already_present: u64,
    /// Writes left ambiguous by a crash or lost response, found at the destination.
    pub resolved: u64,
    pub flags_updated: u64,
    /// Keywords not copied (not made Outlook categories), by keyword: messages written or
    /// updated that carried it.
    pub keywords_dropped: BTreeMap<String, u64>,
    /// Orphaned second copies (a killed run's write committed late) found and removed.
    pub orphans_removed: u64,
    /// Skipped messages by reason.
    pub skipped: BTreeMap<String, u64>,
    pub failed: u64,
    /// Failed messages by reason.
    pub failures: BTreeMap<String, u64>,
    /// Messages in the ledger that are no longer at the source (not deleted at the destination).
    pub source_gone: u64,
    /// Would be copied (dry run) or still waiting (outside the date window, interrupted).
    pub pending: u64,
    pub pending_bytes: u64,
    pub seconds: f64,
    /// `migrate --repair`: items recorded as copied that the destination no longer holds,
    /// returned to pending (and copied again in the same pass).
    pub repaired: u64,
    /// Where every item of the source went (`null` when the source could not be read).
    pub accounting: Option<Box<crate::source::accounting::SourceAccounting>>,
    /// Things the operator should look at that did not fail anything (a source that lists no
    /// folder at all, not even INBOX).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// The warning for a source that lists no folder, or no INBOX: the login probably reached the
/// wrong account, or the server hides the folders from it. `None` when INBOX is listed.
pub fn folder_list_warning(folders: &[crate::model::SourceFolder]) -> Option<String> {
    let inbox = folders
        .iter()
        .any(|f| f.special_use == Some(crate::model::SpecialUse::Inbox));
    if inbox {
        None
    } else if folders.is_empty() {
        Some("the source listed no folders at all, not even INBOX: check that the login reaches the right mailbox".into())
    } else {
        Some(format!(
            "the source listed {} folders but no INBOX: check that the login reaches the right mailbox",
            folders.len()
        ))
    }
}

impl MailboxSummary {
    /// Some source item is neither taken nor skipped with a reason.
    pub fn has_unaccounted(&self) -> bool {
        self.accounting
            .as_ref()
            .is_some_and(|a| !a.unaccounted.is_empty())
    }
    /// Counts the keywords a sink did not take for one message written or updated.
    pub fn count_dropped(&mut self, keywords: Vec<String>) {
        for k in keywords {
            *self.keywords_dropped.entry(k).or_default() += 1;
        }
    }
    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }
    /// Adds another part's counts (folders of one mailbox) into this one.
    pub fn absorb(&mut self, o: &MailboxSummary) {
        self.folders += o.folders;
        self.folders_unchanged += o.folders_unchanged;
        self.listed += o.listed;
        self.copied += o.copied;
        self.copied_bytes += o.copied_bytes;
        self.already_present += o.already_present;
        self.resolved += o.resolved;
        self.flags_updated += o.flags_updated;
        self.orphans_removed += o.orphans_removed;
        self.failed += o.failed;
        self.source_gone += o.source_gone;
        self.pending += o.pending;
        self.pending_bytes += o.pending_bytes;
        self.repaired += o.repaired;
        for (k, v) in &o.skipped {
            *self.skipped.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &o.keywords_dropped {
            *self.keywords_dropped.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &o.failures {
            *self.failures.entry(k.clone()).or_default() += v;
        }
        self.warnings.extend(o.warnings.iter().cloned());
    }
}

/// The whole run's result.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunSummary {
    pub run_id: i64,
    pub started_at: String,
    pub seconds: f64,
    pub dry_run: bool,
    pub interrupted: bool,
    pub mailboxes: Vec<MailboxSummary>,
    /// Plan rows that could not be used (bad CSV lines), as text naming file and line.
    pub plan_errors: Vec<String>,
}

impl RunSummary {
    /// Any mailbox or item failed, or a plan row was unusable: exit code 1.
    pub fn has_failures(&self) -> bool {
        !self.plan_errors.is_empty()
            || self.interrupted
            || self
                .mailboxes
                .iter()
                .any(|m| m.status == "failed" || m.failed > 0 || m.has_unaccounted())
    }
    /// Totals across mailboxes.
    pub fn total(&self) -> MailboxSummary {
        let mut t = MailboxSummary {
            mailbox: "TOTAL".into(),
            ..Default::default()
        };
        for m in &self.mailboxes {
            t.absorb(m);
        }
        t.seconds = self.seconds;
        t
    }
}
