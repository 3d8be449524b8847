//! Message rows and their state transitions.

use std::collections::HashMap;

use chrono::{DateTime, FixedOffset};
use rusqlite::{OptionalExtension, params};

use super::{Ledger, LedgerError};
use crate::model::{ContentHash, Flags, Uid, UidValidity};

/// Where one message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageState {
    /// Listed, not yet written.
    Pending,
    /// A write was started; it may or may not have reached the destination.
    Sending,
    /// At the destination, with its id.
    Done,
    /// Deliberately not copied (too large, excluded by a rule); the reason is recorded.
    Skipped,
    /// Copy failed; the reason and class are recorded; retried by `--retry-failed` or when transient.
    Failed,
}

impl MessageState {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageState::Pending => "pending",
            MessageState::Sending => "sending",
            MessageState::Done => "done",
            MessageState::Skipped => "skipped",
            MessageState::Failed => "failed",
        }
    }
    fn parse(s: &str) -> MessageState {
        match s {
            "sending" => MessageState::Sending,
            "done" => MessageState::Done,
            "skipped" => MessageState::Skipped,
            "failed" => MessageState::Failed,
            _ => MessageState::Pending,
        }
    }
}

/// One message's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRow {
    pub id: i64,
    pub uid_validity: UidValidity,
    pub uid: Uid,
    pub size: u64,
    pub sha256: Option<ContentHash>,
    pub message_id: Option<String>,
    pub internal_date: String,
    pub flags: Flags,
    pub state: MessageState,
    pub dest_id: Option<String>,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub error_class: Option<String>,
    pub source_gone: bool,
}

/// A message newly seen at the source.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub uid: Uid,
    pub size: u64,
    pub message_id: Option<String>,
    pub internal_date: DateTime<FixedOffset>,
    pub flags: Flags,
}

const COLUMNS: &str = "id, uid_validity, uid, size, sha256, message_id, internal_date, flags, state, \
                       dest_id, attempts, last_error, error_class, source_gone";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MessageRow> {
    let bad = |i| rusqlite::Error::IntegralValueOutOfRange(i, 0);
    Ok(MessageRow {
        id: r.get(0)?,
        uid_validity: UidValidity::new(r.get(1)?).ok_or_else(|| bad(1))?,
        uid: Uid::new(r.get(2)?).ok_or_else(|| bad(2))?,
        size: r.get::<_, i64>(3)? as u64,
        sha256: r
            .get::<_, Option<String>>(4)?
            .as_deref()
            .and_then(ContentHash::from_hex),
        message_id: r.get(5)?,
        internal_date: r.get(6)?,
        flags: Flags::from_ledger_string(&r.get::<_, String>(7)?),
        state: MessageState::parse(&r.get::<_, String>(8)?),
        dest_id: r.get(9)?,
        attempts: r.get(10)?,
        last_error: r.get(11)?,
        error_class: r.get(12)?,
        source_gone: r.get(13)?,
    })
}

impl Ledger {
    /// The rows of a folder under one UIDVALIDITY, by UID.
    pub fn folder_messages(
        &self,
        folder: i64,
        uid_validity: UidValidity,
    ) -> Result<HashMap<Uid, MessageRow>, LedgerError> {
        if let Some(pg) = self.pg() {
            return pg.block(pg.db.folder_messages(folder, uid_validity));
        }
        self.with(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM messages WHERE folder_id = ?1 AND uid_validity = ?2"
            ))?;
            let rows = st.query_map(params![folder, uid_validity.get()], row)?;
            rows.map(|r| r.map(|r| (r.uid, r))).collect()
        })
    }

    /// Every row of a folder, whatever its UIDVALIDITY.
    pub fn all_folder_messages(&self, folder: i64) -> Result<Vec<MessageRow>, LedgerError> {
        if let Some(pg) = self.pg() {
            return pg.block(pg.db.all_folder_messages(folder));
        }
        self.with(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM messages WHERE folder_id = ?1 ORDER BY uid_validity, uid"
            ))?;
            let rows = st.query_map([folder], row)?;
            rows.collect()
        })
    }

    /// Records newly seen messages as `pending` (one transaction); returns their rows by UID.
    pub fn insert_pending(
        &self,
        folder: i64,
        uid_validity: UidValidity,
        new: &[NewMessage],
    ) -> Result<(), LedgerError> {
        if let Some(pg) = self.pg() {
            return pg.block(pg.db.insert_pending(pg.lease()?, folder, uid_validity, new));
        }
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut st = tx.prepare_cached(
                    "INSERT OR IGNORE INTO messages
                     (folder_id, uid_validity, uid, size, message_id, internal_date, flags, state)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending')",
                )?;
                for m in new {
                    st.execute(params![
                        folder,
                        uid_validity.get(),
                        m.uid.get(),
                        m.size as i64,
                        m.message_id,
                        m.internal_date.to_rfc3339(),
                        m.flags.to_ledger_string()
                    ])?;
                }
            }
            tx.commit()
        })
    }

    /// Marks rows `sending` with their content hash, before the write starts (one commit).
    pub fn mark_sending(&self, rows: &[(i64, ContentHash)], run: i64) -> Result<(), LedgerError> {
        if let Some(pg) = self.pg() {
            return pg.block(pg.db.mark_sending(pg.lease()?, rows, run));
        }
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut st = tx.prepare_cached(
                    "UPDATE messages SET state = 'sending', sha256 = ?2, attempts = attempts + 1,
                     updated_run = ?3 WHERE id = ?1",
                )?;
                for (id, hash) in rows {
                    st.execute(params![id, hash.to_hex(), run])?;
                }
            }
            tx.commit()
        })
    }

    /// Marks rows `done` with their destination id and the flags now at the destination.
    pub fn mark_done(&self, rows: &[(i64, String, Flags)], run: i64) -> Result<(), LedgerError> {
        if let Some(pg) = self.pg() {
            return pg.block(pg.db.mark_done(pg.lease()?, rows, run));
        }
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut st = tx.prepare_cached(
                    "UPDATE messages SET state = 'done', dest_id = ?2, flags = ?3, last_error = NULL,
                     error_class = NULL, updated_run = ?4 WHERE id = ?1",
                )?;
                for (id, dest, flags) in rows {
                    st.execute(params![id, dest, flags.to_ledger_string(), run])?;
                }
            }
            tx.commit()
        })
    }

    /// Sets a row's final or retry state with its reason (`failed`, `skipped`, or back to `pending`).
    pub fn mark_state(
        &self,
        id: i64,
        state: MessageState,
        error: Option<(&str, &str)>,
        run: i64,
    ) -> Result<(), LedgerError> {
        if let Some(pg) = self.pg() {
            return pg.block(pg.db.mark_state(pg.lease()?, id, state, error, run));
        }
        self.with(|c| {
            c.execute(
                "UPDATE messages SET state = ?2, last_error = ?3, error_class = ?4, updated_run = ?5
                 WHERE id = ?1",
                params![id, state.as_str(), error.map(|e| e.0), error.map(|e| e.1), run],
            )?;
            Ok(())
        })
    }

    /// Records the flags now at the destination for a done row.
    pub fn set_flags(&self, id: i64, flags: &Flags) -> Result<(), LedgerError> {
        if let Some(pg) = self.pg() {
            return pg.block(pg.db.set_flags(pg.lease()?, id, flags));
        }
        self.with(|c| {
            c.execute(
                "UPDATE messages SET flags = ?2 WHERE id = ?1",
                params![id, flags.to_ledger_string()],
            )?;
            Ok(())
        })
    }

    /// Marks which rows of a folder are no longer at the source (all others: present).
    pub fn set_source_gone(&self, folder: i64, gone: &[i64]) -> Result<(), LedgerError> {
        if let Some(pg) = self.pg() {
            return pg.block(pg.db.set_source_gone(pg.lease()?, folder, gone));
        }
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "UPDATE messages SET source_gone = 0 WHERE folder_id = ?1",
                [folder],
            )?;
            {
                let mut st =
                    tx.prepare_cached("UPDATE messages SET source_gone = 1 WHERE id = ?1")?;
                for id in gone {
                    st.execute([id])?;
                }
            }
            tx.commit()
        })
    }

    /// After a UIDVALIDITY change: finds a `done` row of an older UIDVALIDITY with this content
    /// and moves it to the new key, so the message is not uploaded again. Each old row is claimed
    /// at most once, so two identical source messages still map to two destination items.
    pub fn claim_by_hash(
        &self,
        folder: i64,
        uid_validity: UidValidity,
        uid: Uid,
        hash: &ContentHash,
    ) -> Result<Option<MessageRow>, LedgerError> {
        if let Some(pg) = self.pg() {
            return pg.block(
                pg.db
                    .claim_by_hash(pg.lease()?, folder, uid_validity, uid, hash),
            );
        }
        self.with(|c| {
            let tx = c.transaction()?;
            let found = tx
                .query_row(
                    &format!(
                        "SELECT {COLUMNS} FROM messages WHERE folder_id = ?1 AND sha256 = ?2
                         AND uid_validity != ?3 AND state = 'done' ORDER BY uid LIMIT 1"
                    ),
                    params![folder, hash.to_hex(), uid_validity.get()],
                    row,
                )
                .optional()?;
            if let Some(old) = &found {
                // The new key may already hold a pending row from this listing: it is replaced.
                tx.execute(
                    "DELETE FROM messages WHERE folder_id = ?1 AND uid_validity = ?2 AND uid = ?3
                     AND state != 'done'",
                    params![folder, uid_validity.get(), uid.get()],
                )?;
                tx.execute(
                    "UPDATE messages SET uid_validity = ?2, uid = ?3, source_gone = 0 WHERE id = ?1",
                    params![old.id, uid_validity.get(), uid.get()],
                )?;
            }
            tx.commit()?;
            Ok(found.map(|r| MessageRow { uid_validity, uid, ..r }))
        })
    }

    /// Marks rows whose write was interrupted: they are checked for orphaned copies once done.
    pub fn mark_recheck(&self, ids: &[i64]) -> Result<(), LedgerError> {
        if let Some(pg) = self.pg() {
            return pg.block(pg.db.mark_recheck(pg.lease()?, ids));
        }
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut st = tx.prepare_cached("UPDATE messages SET recheck = 1 WHERE id = ?1")?;
                for id in ids {
                    st.execute([id])?;
                }
            }
            tx.commit()
        })
    }

    /// Done rows of a folder still waiting for the orphan check.
    pub fn recheck_rows(
        &self,
        folder: i64,
        uid_validity: UidValidity,
    ) -> Result<Vec<MessageRow>, LedgerError> {
        if let Some(pg) = self.pg() {
            return pg.block(pg.db.recheck_rows(folder, uid_validity));
        }
        self.with(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM messages WHERE folder_id = ?1 AND uid_validity = ?2
                 AND recheck = 1 AND state = 'done'"
            ))?;
            let rows = st.query_map(params![folder, uid_validity.get()], row)?;
            rows.collect()
        })
    }

    /// The orphan check of a row is done.
    pub fn clear_recheck(&self, id: i64) -> Result<(), LedgerError> {
        if let Some(pg) = self.pg() {
            return pg.block(pg.db.clear_recheck(pg.lease()?, id));
        }
        self.with(|c| {
            c.execute("UPDATE messages SET recheck = 0 WHERE id = ?1", [id])?;
            Ok(())
        })
    }
}
