//! The source's own totals as last seen by a listing: what `status` measures progress against,
//! and how it knows that a total is still partial (folders not yet listed).

use rusqlite::params;

use super::{Ledger, LedgerError};

impl Ledger {
    /// Records how many folders the source's folder list holds that a pass will copy. Until
    /// every one of them has a listing, the mailbox's source total is partial.
    pub fn set_source_folders(&self, mailbox: i64, folders: u64) -> Result<(), LedgerError> {
        if let Some(pg) = self.pg() {
            let _ = mailbox;
            return pg.block(pg.db.set_source_folders(pg.lease()?, folders));
        }
        self.with(|c| {
            c.execute(
                "UPDATE mailboxes SET source_folders = ?2 WHERE id = ?1",
                params![mailbox, folders as i64],
            )?;
            Ok(())
        })
    }

    /// Records what a complete listing of a folder found at the source. `bytes` is `None`
    /// when the pass learnt only the count (an unchanged folder whose listing was skipped):
    /// the bytes of the last full listing are kept then.
    pub fn set_folder_source_total(
        &self,
        folder: i64,
        messages: u64,
        bytes: Option<u64>,
    ) -> Result<(), LedgerError> {
        if let Some(pg) = self.pg() {
            return pg.block(
                pg.db
                    .set_folder_source_total(pg.lease()?, folder, messages, bytes),
            );
        }
        self.with(|c| {
            c.execute(
                "UPDATE folders SET source_messages = ?2,
                   source_bytes = COALESCE(?3, source_bytes,
                     (SELECT SUM(size) FROM messages m WHERE m.folder_id = ?1 AND m.source_gone = 0))
                 WHERE id = ?1",
                params![folder, messages as i64, bytes.map(|b| b as i64)],
            )?;
            Ok(())
        })
    }
}
