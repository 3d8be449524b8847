//! Folder and message rows on PostgreSQL, with the SQLite ledger's transitions
//! (`pending -> sending -> done`, or `skipped`/`failed`) each written under the mailbox's lease
//! fence: a worker that lost its lease records nothing.
//!
//! Every write also checks that the rows it touches belong to the leased mailbox, so a fence on
//! one mailbox can never cover a write to another. Batches are one statement over arrays
//! (`unnest`), one round trip however many rows.

use std::collections::HashMap;

use tokio_postgres::Row;

use super::lease::{Fail, Lease};
use super::{PgLedger, PgLedgerError, db_err};
use crate::ledger::{FolderRow, MessageRow, MessageState, NewMessage};
use crate::model::{ContentHash, Flags, Uid, UidValidity};

const COLUMNS: &str = "id, uid_validity, uid, size, sha256, message_id, internal_date, flags, state, \
                       dest_id, attempts, last_error, error_class, source_gone";

const FOLDER_COLUMNS: &str =
    "id, source_name, mapped_name, dest_id, uid_validity, highest_modseq, uid_next";

fn state_from(s: &str) -> Option<MessageState> {
    Some(match s {
        "pending" => MessageState::Pending,
        "sending" => MessageState::Sending,
        "done" => MessageState::Done,
        "skipped" => MessageState::Skipped,
        "failed" => MessageState::Failed,
        _ => return None,
    })
}

impl PgLedger {
    /// Records a mailbox-level outcome (`ok`, `failed`, `interrupted`) with its error, if any.
    pub async fn set_mailbox_state(
        &self,
        lease: &Lease,
        run: i64,
        state: &str,
        error: Option<(&str, &str)>,
    ) -> Result<(), PgLedgerError> {
        let now = crate::ledger::now();
        self.fenced(lease, async |t| {
            let st = t
                .st(
                    "UPDATE mailboxes SET state = $2, last_run = $3, last_error = $4,
                     last_error_class = $5, updated_at = $6 WHERE id = $1",
                )
                .await?;
            t.tx.execute(
                &st,
                &[
                    &lease.mailbox_id,
                    &state,
                    &run,
                    &error.map(|e| e.0),
                    &error.map(|e| e.1),
                    &now,
                ],
            )
            .await?;
            Ok(())
        })
        .await
    }

    /// The folder row for a source folder of the leased mailbox, created on first use.
    pub async fn folder(
        &self,
        lease: &Lease,
        source_name: &str,
    ) -> Result<FolderRow, PgLedgerError> {
        let row = self
            .fenced(lease, async |t| {
                let ins = t
                    .st(
                        "INSERT INTO folders (mailbox_id, source_name) VALUES ($1, $2)
                         ON CONFLICT (mailbox_id, source_name) DO NOTHING",
                    )
                    .await?;
                t.tx.execute(&ins, &[&lease.mailbox_id, &source_name])
                    .await?;
                let sel = t
                    .st("SELECT id, source_name, mapped_name, dest_id, uid_validity, highest_modseq,
                         uid_next FROM folders WHERE mailbox_id = $1 AND source_name = $2")
                    .await?;
                Ok(t.tx
                    .query_one(&sel, &[&lease.mailbox_id, &source_name])
                    .await?)
            })
            .await?;
        self.folder_row(&row)
    }

    /// Records newly seen messages as `pending` (one statement; rows already known are kept).
    pub async fn insert_pending(
        &self,
        lease: &Lease,
        folder: i64,
        uid_validity: UidValidity,
        new: &[NewMessage],
    ) -> Result<(), PgLedgerError> {
        let uids: Vec<i64> = new.iter().map(|m| i64::from(m.uid.get())).collect();
        let sizes: Vec<i64> = new.iter().map(|m| m.size as i64).collect();
        let ids: Vec<Option<&str>> = new.iter().map(|m| m.message_id.as_deref()).collect();
        let dates: Vec<String> = new.iter().map(|m| m.internal_date.to_rfc3339()).collect();
        let flags: Vec<String> = new.iter().map(|m| m.flags.to_ledger_string()).collect();
        let validity = i64::from(uid_validity.get());
        self.fenced(lease, async |t| {
            self.own_folder(t, lease, folder).await?;
            let st = t
                .st("INSERT INTO messages
                     (folder_id, uid_validity, uid, size, message_id, internal_date, flags, state)
                     SELECT $1, $2, u.uid, u.size, u.message_id, u.internal_date, u.flags, 'pending'
                     FROM unnest($3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::text[])
                       AS u(uid, size, message_id, internal_date, flags)
                     ON CONFLICT (folder_id, uid_validity, uid) DO NOTHING")
                .await?;
            t.tx.execute(
                &st,
                &[&folder, &validity, &uids, &sizes, &ids, &dates, &flags],
            )
            .await?;
            Ok(())
        })
        .await
    }

    /// Marks rows `sending` with their content hash, before the write starts (one commit).
    pub async fn mark_sending(
        &self,
        lease: &Lease,
        rows: &[(i64, ContentHash)],
        run: i64,
    ) -> Result<(), PgLedgerError> {
        let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let hashes: Vec<String> = rows.iter().map(|r| r.1.to_hex()).collect();
        self.fenced(lease, async |t| {
            let st = t
                .st("UPDATE messages m SET state = 'sending', sha256 = u.hash,
                     attempts = m.attempts + 1, updated_run = $3
                     FROM unnest($1::bigint[], $2::text[]) AS u(id, hash), folders f
                     WHERE m.id = u.id AND f.id = m.folder_id AND f.mailbox_id = $4")
                .await?;
            let n =
                t.tx.execute(&st, &[&ids, &hashes, &run, &lease.mailbox_id])
                    .await?;
            self.all_rows_matched(lease, n, ids.len())
        })
        .await
    }

    /// Marks rows `done` with their destination id and the flags now at the destination.
    pub async fn mark_done(
        &self,
        lease: &Lease,
        rows: &[(i64, String, Flags)],
        run: i64,
    ) -> Result<(), PgLedgerError> {
        let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let dests: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
        let flags: Vec<String> = rows.iter().map(|r| r.2.to_ledger_string()).collect();
        self.fenced(lease, async |t| {
            let st = t
                .st(
                    "UPDATE messages m SET state = 'done', dest_id = u.dest, flags = u.flags,
                     last_error = NULL, error_class = NULL, updated_run = $4
                     FROM unnest($1::bigint[], $2::text[], $3::text[]) AS u(id, dest, flags),
                       folders f
                     WHERE m.id = u.id AND f.id = m.folder_id AND f.mailbox_id = $5",
                )
                .await?;
            let n =
                t.tx.execute(&st, &[&ids, &dests, &flags, &run, &lease.mailbox_id])
                    .await?;
            self.all_rows_matched(lease, n, ids.len())
        })
        .await
    }

    /// Sets a row's final or retry state with its reason (`failed`, `skipped`, or back to
    /// `pending`).
    pub async fn mark_state(
        &self,
        lease: &Lease,
        id: i64,
        state: MessageState,
        error: Option<(&str, &str)>,
        run: i64,
    ) -> Result<(), PgLedgerError> {
        self.fenced(lease, async |t| {
            let st = t
                .st(
                    "UPDATE messages m SET state = $2, last_error = $3, error_class = $4,
                     updated_run = $5 FROM folders f
                     WHERE m.id = $1 AND f.id = m.folder_id AND f.mailbox_id = $6",
                )
                .await?;
            let n =
                t.tx.execute(
                    &st,
                    &[
                        &id,
                        &state.as_str(),
                        &error.map(|e| e.0),
                        &error.map(|e| e.1),
                        &run,
                        &lease.mailbox_id,
                    ],
                )
                .await?;
            self.all_rows_matched(lease, n, 1)
        })
        .await
    }

    /// The rows of a folder under one UIDVALIDITY, by UID (a read: not fenced).
    pub async fn folder_messages(
        &self,
        folder: i64,
        uid_validity: UidValidity,
    ) -> Result<HashMap<Uid, MessageRow>, PgLedgerError> {
        let rows = self
            .read(
                &format!(
                    "SELECT {COLUMNS} FROM messages WHERE folder_id = $1 AND uid_validity = $2"
                ),
                &[&folder, &i64::from(uid_validity.get())],
            )
            .await?;
        rows.iter()
            .map(|r| self.message_row(r).map(|m| (m.uid, m)))
            .collect()
    }

    /// Every row of a folder, whatever its UIDVALIDITY (a read: not fenced).
    pub async fn all_folder_messages(&self, folder: i64) -> Result<Vec<MessageRow>, PgLedgerError> {
        let rows = self
            .read(
                &format!(
                    "SELECT {COLUMNS} FROM messages WHERE folder_id = $1 ORDER BY uid_validity, uid"
                ),
                &[&folder],
            )
            .await?;
        rows.iter().map(|r| self.message_row(r)).collect()
    }

    /// All folder rows of a mailbox (a read: not fenced).
    pub async fn folders(&self, mailbox: i64) -> Result<Vec<FolderRow>, PgLedgerError> {
        let rows = self
            .read(
                &format!(
                    "SELECT {FOLDER_COLUMNS} FROM folders WHERE mailbox_id = $1 ORDER BY source_name"
                ),
                &[&mailbox],
            )
            .await?;
        rows.iter().map(|r| self.folder_row(r)).collect()
    }

    pub(super) async fn read(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>, PgLedgerError> {
        // A read changes nothing: after a lost connection it simply runs again.
        let first = std::time::Instant::now();
        loop {
            let conn = self.conn().await?;
            match conn.client.query(sql, params).await {
                Ok(rows) => return Ok(rows),
                Err(e) if self.again(&conn, &e, first) => continue,
                Err(e) => return Err(db_err(&self.url, e)),
            }
        }
    }

    /// Fails unless `folder` belongs to the leased mailbox.
    pub(super) async fn own_folder(
        &self,
        t: &mut super::lease::Tx<'_>,
        lease: &Lease,
        folder: i64,
    ) -> Result<(), Fail> {
        let st = t
            .st("SELECT 1 FROM folders WHERE id = $1 AND mailbox_id = $2")
            .await?;
        if t.tx
            .query_opt(&st, &[&folder, &lease.mailbox_id])
            .await?
            .is_none()
        {
            return Err(Fail::Ledger(self.corrupt(format!(
                "folder {folder} is not a folder of mailbox {}",
                lease.mailbox
            ))));
        }
        Ok(())
    }

    /// A batch must touch exactly its rows; fewer means some id is not the leased mailbox's
    /// (the transaction is then rolled back).
    pub(super) fn all_rows_matched(
        &self,
        lease: &Lease,
        got: u64,
        want: usize,
    ) -> Result<(), Fail> {
        if got == want as u64 {
            return Ok(());
        }
        Err(Fail::Ledger(self.corrupt(format!(
            "{} of {want} message rows are not rows of mailbox {}; nothing was recorded",
            want as u64 - got.min(want as u64),
            lease.mailbox
        ))))
    }

    pub(super) fn message_row(&self, r: &Row) -> Result<MessageRow, PgLedgerError> {
        let bad = |what: &str| self.corrupt(format!("message row {}: {what}", r.get::<_, i64>(0)));
        let u32_of = |v: i64, what: &str| u32::try_from(v).map_err(|_| bad(what));
        let state: String = r.get(8);
        Ok(MessageRow {
            id: r.get(0),
            uid_validity: UidValidity::new(u32_of(r.get(1), "UIDVALIDITY")?)
                .ok_or_else(|| bad("UIDVALIDITY 0"))?,
            uid: Uid::new(u32_of(r.get(2), "UID")?).ok_or_else(|| bad("UID 0"))?,
            size: r.get::<_, i64>(3) as u64,
            sha256: r
                .get::<_, Option<String>>(4)
                .as_deref()
                .and_then(ContentHash::from_hex),
            message_id: r.get(5),
            internal_date: r.get(6),
            flags: Flags::from_ledger_string(r.get::<_, &str>(7)),
            state: state_from(&state).ok_or_else(|| bad(&format!("state {state:?}")))?,
            dest_id: r.get(9),
            attempts: r.get::<_, i32>(10).max(0) as u32,
            last_error: r.get(11),
            error_class: r.get(12),
            source_gone: r.get::<_, i32>(13) != 0,
        })
    }

    fn folder_row(&self, r: &Row) -> Result<FolderRow, PgLedgerError> {
        Ok(FolderRow {
            id: r.get(0),
            source_name: r.get(1),
            mapped_name: r.get(2),
            dest_id: r.get(3),
            uid_validity: r
                .get::<_, Option<i64>>(4)
                .and_then(|v| u32::try_from(v).ok())
                .and_then(UidValidity::new),
            highest_modseq: r.get::<_, Option<i64>>(5).map(|m| m as u64),
            uid_next: r
                .get::<_, Option<i64>>(6)
                .and_then(|v| u32::try_from(v).ok()),
        })
    }
}
