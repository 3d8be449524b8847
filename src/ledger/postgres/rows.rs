//! The rest of the SQLite ledger's writes on PostgreSQL, each fenced by the mailbox's lease:
//! flags, source presence, the UIDVALIDITY-change claim by content hash, the orphan-check marks,
//! folder targets and sync points, and the source totals. Each mirrors the SQLite method of the
//! same name statement by statement (src/ledger/{messages,mod,totals}.rs); what is added is the
//! fence and the check that every row touched belongs to the leased mailbox (a write naming a
//! folder or row of another mailbox is refused and rolled back, nothing recorded). One
//! difference follows: an id that names no row at all is refused too, where SQLite's `UPDATE`
//! silently touches nothing.
//!
//! Throttle deadlines are the exception: they belong to a destination mailbox, not to a lease,
//! and only ever move forward, so a stale worker recording one does no harm (unfenced).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::lease::{Fail, Lease};
use super::{PgLedger, PgLedgerError, db_err};
use crate::ledger::MessageRow;
use crate::model::{ContentHash, Flags, Uid, UidValidity};

fn to_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl PgLedger {
    /// Records the flags now at the destination for a done row.
    pub async fn set_flags(
        &self,
        lease: &Lease,
        id: i64,
        flags: &Flags,
    ) -> Result<(), PgLedgerError> {
        let flags = flags.to_ledger_string();
        self.fenced(lease, async |t| {
            let st = t
                .st("UPDATE messages m SET flags = $2 FROM folders f
                     WHERE m.id = $1 AND f.id = m.folder_id AND f.mailbox_id = $3")
                .await?;
            let n = t.tx.execute(&st, &[&id, &flags, &lease.mailbox_id]).await?;
            self.all_rows_matched(lease, n, 1)
        })
        .await
    }

    /// Marks which rows of a folder are no longer at the source (all others: present).
    pub async fn set_source_gone(
        &self,
        lease: &Lease,
        folder: i64,
        gone: &[i64],
    ) -> Result<(), PgLedgerError> {
        let ids = distinct(gone);
        self.fenced(lease, async |t| {
            self.own_folder(t, lease, folder).await?;
            let clear = t
                .st("UPDATE messages SET source_gone = 0 WHERE folder_id = $1")
                .await?;
            t.tx.execute(&clear, &[&folder]).await?;
            let set = t
                .st("UPDATE messages m SET source_gone = 1 FROM folders f
                     WHERE m.id = ANY($1::bigint[]) AND f.id = m.folder_id AND f.mailbox_id = $2")
                .await?;
            let n = t.tx.execute(&set, &[&ids, &lease.mailbox_id]).await?;
            self.all_rows_matched(lease, n, ids.len())
        })
        .await
    }

    /// After a UIDVALIDITY change: finds a `done` row of an older UIDVALIDITY with this content
    /// and moves it to the new key, so the message is not uploaded again. Each old row is claimed
    /// at most once (the row is locked, then re-keyed), so two identical source messages still
    /// map to two destination items.
    pub async fn claim_by_hash(
        &self,
        lease: &Lease,
        folder: i64,
        uid_validity: UidValidity,
        uid: Uid,
        hash: &ContentHash,
    ) -> Result<Option<MessageRow>, PgLedgerError> {
        let validity = i64::from(uid_validity.get());
        let uid_i = i64::from(uid.get());
        let hex = hash.to_hex();
        let found = self
            .fenced_once(lease, async |t| {
                self.own_folder(t, lease, folder).await?;
                let find = t
                    .st(
                        // The columns of `messages::COLUMNS`, spelled out: a prepared statement's
                        // text must be static.
                        "SELECT id, uid_validity, uid, size, sha256, message_id, internal_date,
                         flags, state, dest_id, attempts, last_error, error_class, source_gone
                         FROM messages WHERE folder_id = $1 AND sha256 = $2
                         AND uid_validity <> $3 AND state = 'done' ORDER BY uid LIMIT 1
                         FOR UPDATE",
                    )
                    .await?;
                let Some(old) = t.tx.query_opt(&find, &[&folder, &hex, &validity]).await? else {
                    return Ok(None);
                };
                // The new key may already hold a pending row from this listing: it is replaced.
                let delete = t
                    .st(
                        "DELETE FROM messages WHERE folder_id = $1 AND uid_validity = $2
                         AND uid = $3 AND state <> 'done'",
                    )
                    .await?;
                t.tx.execute(&delete, &[&folder, &validity, &uid_i]).await?;
                let rekey = t
                    .st(
                        "UPDATE messages SET uid_validity = $2, uid = $3, source_gone = 0
                         WHERE id = $1",
                    )
                    .await?;
                t.tx.execute(&rekey, &[&old.get::<_, i64>(0), &validity, &uid_i])
                    .await?;
                Ok(Some(old))
            })
            .await?;
        found
            .map(|r| {
                self.message_row(&r).map(|m| MessageRow {
                    uid_validity,
                    uid,
                    ..m
                })
            })
            .transpose()
    }

    /// Marks rows whose write was interrupted: they are checked for orphaned copies once done.
    pub async fn mark_recheck(&self, lease: &Lease, ids: &[i64]) -> Result<(), PgLedgerError> {
        let ids = distinct(ids);
        self.fenced(lease, async |t| {
            let st = t
                .st("UPDATE messages m SET recheck = 1 FROM folders f
                     WHERE m.id = ANY($1::bigint[]) AND f.id = m.folder_id AND f.mailbox_id = $2")
                .await?;
            let n = t.tx.execute(&st, &[&ids, &lease.mailbox_id]).await?;
            self.all_rows_matched(lease, n, ids.len())
        })
        .await
    }

    /// The orphan check of a row is done.
    pub async fn clear_recheck(&self, lease: &Lease, id: i64) -> Result<(), PgLedgerError> {
        self.fenced(lease, async |t| {
            let st = t
                .st("UPDATE messages m SET recheck = 0 FROM folders f
                     WHERE m.id = $1 AND f.id = m.folder_id AND f.mailbox_id = $2")
                .await?;
            let n = t.tx.execute(&st, &[&id, &lease.mailbox_id]).await?;
            self.all_rows_matched(lease, n, 1)
        })
        .await
    }

    /// Records where a folder goes at the destination.
    pub async fn set_folder_target(
        &self,
        lease: &Lease,
        folder: i64,
        mapped_name: &str,
        dest_id: &str,
    ) -> Result<(), PgLedgerError> {
        self.fenced(lease, async |t| {
            let st = t
                .st("UPDATE folders SET mapped_name = $2, dest_id = $3
                     WHERE id = $1 AND mailbox_id = $4")
                .await?;
            let n =
                t.tx.execute(&st, &[&folder, &mapped_name, &dest_id, &lease.mailbox_id])
                    .await?;
            self.folder_matched(lease, folder, n)
        })
        .await
    }

    /// Records the source state a pass was completed against (for the next run's "nothing
    /// changed" shortcut). Only call this when every message of the folder reached a final state.
    pub async fn set_folder_sync_point(
        &self,
        lease: &Lease,
        folder: i64,
        uid_validity: UidValidity,
        highest_modseq: Option<u64>,
        uid_next: Option<u32>,
    ) -> Result<(), PgLedgerError> {
        let validity = i64::from(uid_validity.get());
        let modseq = highest_modseq.map(|m| m as i64);
        let next = uid_next.map(i64::from);
        self.fenced(lease, async |t| {
            let st = t
                .st(
                    "UPDATE folders SET uid_validity = $2, highest_modseq = $3, uid_next = $4
                     WHERE id = $1 AND mailbox_id = $5",
                )
                .await?;
            let n =
                t.tx.execute(
                    &st,
                    &[&folder, &validity, &modseq, &next, &lease.mailbox_id],
                )
                .await?;
            self.folder_matched(lease, folder, n)
        })
        .await
    }

    /// Forgets the sync point, so the next pass lists the folder in full.
    pub async fn clear_folder_sync_point(
        &self,
        lease: &Lease,
        folder: i64,
    ) -> Result<(), PgLedgerError> {
        self.fenced(lease, async |t| {
            let st = t
                .st("UPDATE folders SET highest_modseq = NULL, uid_next = NULL
                     WHERE id = $1 AND mailbox_id = $2")
                .await?;
            let n = t.tx.execute(&st, &[&folder, &lease.mailbox_id]).await?;
            self.folder_matched(lease, folder, n)
        })
        .await
    }

    /// Records how many folders the source's folder list holds that a pass will copy (for the
    /// leased mailbox). Until every one of them has a listing, the mailbox's source total is
    /// partial.
    pub async fn set_source_folders(
        &self,
        lease: &Lease,
        folders: u64,
    ) -> Result<(), PgLedgerError> {
        let folders = folders as i64;
        self.fenced(lease, async |t| {
            let st = t
                .st("UPDATE mailboxes SET source_folders = $2 WHERE id = $1")
                .await?;
            t.tx.execute(&st, &[&lease.mailbox_id, &folders]).await?;
            Ok(())
        })
        .await
    }

    /// Records what a complete listing of a folder found at the source. `bytes` is `None` when
    /// the pass learnt only the count: the bytes of the last full listing are kept then.
    pub async fn set_folder_source_total(
        &self,
        lease: &Lease,
        folder: i64,
        messages: u64,
        bytes: Option<u64>,
    ) -> Result<(), PgLedgerError> {
        let messages = messages as i64;
        let bytes = bytes.map(|b| b as i64);
        self.fenced(lease, async |t| {
            let st = t
                .st("UPDATE folders SET source_messages = $2,
                       source_bytes = COALESCE($3::bigint, source_bytes,
                         (SELECT SUM(size)::bigint FROM messages m
                          WHERE m.folder_id = $1 AND m.source_gone = 0))
                     WHERE id = $1 AND mailbox_id = $4")
                .await?;
            let n =
                t.tx.execute(&st, &[&folder, &messages, &bytes, &lease.mailbox_id])
                    .await?;
            self.folder_matched(lease, folder, n)
        })
        .await
    }

    /// Records that `mailbox` at `destination` must not be sent anything before `until`. A
    /// later deadline already recorded is kept (deadlines only move forward). Not fenced.
    pub(super) async fn set_throttle_deadline_once(
        &self,
        destination: &str,
        mailbox: &str,
        until: SystemTime,
    ) -> Result<(), PgLedgerError> {
        let mut conn = self.conn().await?;
        let st = conn
            .prepared(
                "INSERT INTO throttle (destination, mailbox, until_ms) VALUES ($1, $2, $3)
                 ON CONFLICT (destination, mailbox) DO UPDATE
                 SET until_ms = GREATEST(throttle.until_ms, excluded.until_ms)",
            )
            .await
            .map_err(|e| db_err(&self.url, e))?;
        conn.client
            .execute(&st, &[&destination, &mailbox, &to_ms(until)])
            .await
            .map_err(|e| db_err(&self.url, e))?;
        Ok(())
    }

    /// The recorded deadline of `mailbox` at `destination`, if one is still in the future (by
    /// this machine's clock, as the SQLite ledger: the deadline is compared with the instant
    /// the caller will sleep until).
    pub(super) async fn throttle_deadline_once(
        &self,
        destination: &str,
        mailbox: &str,
    ) -> Result<Option<SystemTime>, PgLedgerError> {
        let mut conn = self.conn().await?;
        let st = conn
            .prepared("SELECT until_ms FROM throttle WHERE destination = $1 AND mailbox = $2")
            .await
            .map_err(|e| db_err(&self.url, e))?;
        let ms: Option<i64> = conn
            .client
            .query_opt(&st, &[&destination, &mailbox])
            .await
            .map_err(|e| db_err(&self.url, e))?
            .map(|r| r.get(0));
        Ok(ms
            .map(|ms| UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64))
            .filter(|t| *t > SystemTime::now()))
    }

    /// A folder update must touch its one row; none means the folder is not the leased
    /// mailbox's (or does not exist): refused, the transaction rolled back.
    fn folder_matched(&self, lease: &Lease, folder: i64, got: u64) -> Result<(), Fail> {
        if got == 1 {
            return Ok(());
        }
        Err(Fail::Ledger(self.corrupt(format!(
            "folder {folder} is not a folder of mailbox {}; nothing was recorded",
            lease.mailbox
        ))))
    }
}

/// The ids once each, so "every row matched" compares like with like.
fn distinct(ids: &[i64]) -> Vec<i64> {
    let mut v = ids.to_vec();
    v.sort_unstable();
    v.dedup();
    v
}
