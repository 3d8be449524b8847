//! Read-only summaries for `status`, reports and `verify`.

use rusqlite::params;
use serde::Serialize;

use super::{Ledger, LedgerError};

/// One mailbox's progress as the ledger knows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MailboxProgress {
    pub mailbox: String,
    pub destination: String,
    pub state: Option<String>,
    pub last_run: Option<i64>,
    pub last_error: Option<String>,
    pub folders: u64,
    pub pending: u64,
    pub sending: u64,
    pub done: u64,
    pub skipped: u64,
    pub failed: u64,
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub source_gone: u64,
    /// Folders of the source's last folder list that a pass copies; `None` until one completed.
    pub source_folders: Option<u64>,
    /// Folders whose messages have been listed at least once.
    pub folders_listed: u64,
    /// Messages and bytes the listed folders held at the source when last listed.
    pub source_messages: u64,
    pub source_bytes: u64,
}

impl MailboxProgress {
    /// True while the source totals cover only part of the mailbox: its folder list never
    /// completed, or some of its folders have not been listed yet.
    pub fn source_total_partial(&self) -> bool {
        self.source_folders.is_none_or(|n| self.folders_listed < n)
    }
}

/// Failures sharing a class and reason.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FailureGroup {
    pub mailbox: String,
    pub class: String,
    pub reason: String,
    pub count: u64,
}

/// A past or current run.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RunRow {
    pub id: i64,
    pub command: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub status: String,
    /// The fleet worker that ran it (PostgreSQL ledger only; the SQLite ledger has one
    /// process at a time and records none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
}

/// One folder's counts.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FolderCounts {
    pub folder_id: i64,
    pub source_name: String,
    pub mapped_name: Option<String>,
    pub dest_id: Option<String>,
    pub done: u64,
    pub done_bytes: u64,
    pub skipped: u64,
    pub other: u64,
}

impl Ledger {
    /// Progress of every mailbox the ledger knows, by key.
    pub fn progress(&self) -> Result<Vec<MailboxProgress>, LedgerError> {
        if let Some(pg) = self.pg() {
            return pg.block(pg.db.progress());
        }
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT mb.key, mb.destination, mb.state, mb.last_run, mb.last_error,
                   (SELECT COUNT(*) FROM folders f WHERE f.mailbox_id = mb.id),
                   COALESCE(SUM(m.state = 'pending'), 0), COALESCE(SUM(m.state = 'sending'), 0),
                   COALESCE(SUM(m.state = 'done'), 0), COALESCE(SUM(m.state = 'skipped'), 0),
                   COALESCE(SUM(m.state = 'failed'), 0),
                   COALESCE(SUM(CASE WHEN m.state = 'done' THEN m.size ELSE 0 END), 0),
                   COALESCE(SUM(m.size), 0), COALESCE(SUM(m.source_gone), 0),
                   mb.source_folders,
                   (SELECT COUNT(*) FROM folders f WHERE f.mailbox_id = mb.id
                      AND f.source_messages IS NOT NULL),
                   (SELECT COALESCE(SUM(f.source_messages), 0) FROM folders f
                      WHERE f.mailbox_id = mb.id),
                   (SELECT COALESCE(SUM(f.source_bytes), 0) FROM folders f
                      WHERE f.mailbox_id = mb.id)
                 FROM mailboxes mb
                 LEFT JOIN folders f ON f.mailbox_id = mb.id
                 LEFT JOIN messages m ON m.folder_id = f.id
                 GROUP BY mb.id ORDER BY mb.key",
            )?;
            let rows = st.query_map([], |r| {
                Ok(MailboxProgress {
                    mailbox: r.get(0)?,
                    destination: r.get(1)?,
                    state: r.get(2)?,
                    last_run: r.get(3)?,
                    last_error: r.get(4)?,
                    folders: r.get::<_, i64>(5)? as u64,
                    pending: r.get::<_, i64>(6)? as u64,
                    sending: r.get::<_, i64>(7)? as u64,
                    done: r.get::<_, i64>(8)? as u64,
                    skipped: r.get::<_, i64>(9)? as u64,
                    failed: r.get::<_, i64>(10)? as u64,
                    bytes_done: r.get::<_, i64>(11)? as u64,
                    bytes_total: r.get::<_, i64>(12)? as u64,
                    source_gone: r.get::<_, i64>(13)? as u64,
                    source_folders: r.get::<_, Option<i64>>(14)?.map(|n| n as u64),
                    folders_listed: r.get::<_, i64>(15)? as u64,
                    source_messages: r.get::<_, i64>(16)? as u64,
                    source_bytes: r.get::<_, i64>(17)? as u64,
                })
            })?;
            rows.collect()
        })
    }

    /// Failed and skipped messages grouped by mailbox, class and reason, largest groups first.
    /// Reasons are compared without their request ids and timestamps (each row keeps them).
    pub fn failure_groups(&self) -> Result<Vec<FailureGroup>, LedgerError> {
        if let Some(pg) = self.pg() {
            return pg.block(pg.db.failure_groups());
        }
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT mb.key, COALESCE(m.error_class, m.state), COALESCE(m.last_error, ''), COUNT(*)
                 FROM messages m JOIN folders f ON m.folder_id = f.id
                 JOIN mailboxes mb ON f.mailbox_id = mb.id
                 WHERE m.state IN ('failed', 'skipped')
                 GROUP BY 1, 2, 3 ORDER BY 4 DESC, 1",
            )?;
            let rows = st.query_map([], |r| {
                Ok(FailureGroup {
                    mailbox: r.get(0)?,
                    class: r.get(1)?,
                    reason: r.get(2)?,
                    count: r.get::<_, i64>(3)? as u64,
                })
            })?;
            let exact: Vec<FailureGroup> = rows.collect::<rusqlite::Result<_>>()?;
            Ok(regroup(exact))
        })
    }

    /// The most recent runs, newest first.
    pub fn runs(&self, limit: usize) -> Result<Vec<RunRow>, LedgerError> {
        if let Some(pg) = self.pg() {
            return pg.block(pg.db.runs(limit));
        }
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT id, command, started_at, finished_at, status FROM runs ORDER BY id DESC LIMIT ?1",
            )?;
            let rows = st.query_map(params![limit as i64], |r| {
                Ok(RunRow {
                    id: r.get(0)?,
                    command: r.get(1)?,
                    started_at: r.get(2)?,
                    finished_at: r.get(3)?,
                    status: r.get(4)?,
                    worker: None,
                })
            })?;
            rows.collect()
        })
    }

    /// Per-folder counts of one mailbox.
    pub fn folder_counts(&self, mailbox: i64) -> Result<Vec<FolderCounts>, LedgerError> {
        if let Some(pg) = self.pg() {
            return pg.block(pg.db.folder_counts(mailbox));
        }
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT f.id, f.source_name, f.mapped_name, f.dest_id,
                   COALESCE(SUM(m.state = 'done'), 0),
                   COALESCE(SUM(CASE WHEN m.state = 'done' THEN m.size ELSE 0 END), 0),
                   COALESCE(SUM(m.state = 'skipped'), 0),
                   COALESCE(SUM(m.state NOT IN ('done', 'skipped')), 0)
                 FROM folders f LEFT JOIN messages m ON m.folder_id = f.id AND m.source_gone = 0
                 WHERE f.mailbox_id = ?1 GROUP BY f.id ORDER BY f.source_name",
            )?;
            let rows = st.query_map([mailbox], |r| {
                Ok(FolderCounts {
                    folder_id: r.get(0)?,
                    source_name: r.get(1)?,
                    mapped_name: r.get(2)?,
                    dest_id: r.get(3)?,
                    done: r.get::<_, i64>(4)? as u64,
                    done_bytes: r.get::<_, i64>(5)? as u64,
                    skipped: r.get::<_, i64>(6)? as u64,
                    other: r.get::<_, i64>(7)? as u64,
                })
            })?;
            rows.collect()
        })
    }
}

/// Merges groups whose reasons differ only in request ids or timestamps, largest first.
pub(super) fn regroup(exact: Vec<FailureGroup>) -> Vec<FailureGroup> {
    let mut merged: Vec<FailureGroup> = Vec::new();
    for g in exact {
        let reason = crate::report::reason::group_key(&g.reason);
        match merged
            .iter_mut()
            .find(|m| m.mailbox == g.mailbox && m.class == g.class && m.reason == reason)
        {
            Some(m) => m.count += g.count,
            None => merged.push(FailureGroup { reason, ..g }),
        }
    }
    merged.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| a.mailbox.cmp(&b.mailbox))
    });
    merged
}
