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

#[cfg(test)]
mod tests {
    use crate::ledger::Ledger;

    #[test]
    fn the_source_total_is_partial_until_every_folder_is_listed() {
        let dir = tempfile::tempdir().unwrap();
        let l = Ledger::open(&dir.path().join("state.db")).unwrap();
        let mb = l.mailbox("ann@example.org", "graph").unwrap();
        l.set_source_folders(mb, 3).unwrap();
        let inbox = l.folder(mb, "INBOX").unwrap();
        l.set_folder_source_total(inbox.id, 40, Some(4000)).unwrap();
        let p = &l.progress().unwrap()[0];
        assert_eq!(p.source_messages, 40);
        assert_eq!(p.source_bytes, 4000);
        assert_eq!(p.folders_listed, 1);
        assert_eq!(p.source_folders, Some(3));
        assert!(p.source_total_partial());

        for (name, n) in [("Sent", 5), ("Archive", 7)] {
            let f = l.folder(mb, name).unwrap();
            l.set_folder_source_total(f.id, n, Some(n * 100)).unwrap();
        }
        let p = &l.progress().unwrap()[0];
        assert_eq!(p.source_messages, 52);
        assert_eq!(p.source_bytes, 5200);
        assert!(!p.source_total_partial());

        // A count without bytes keeps the bytes of the last full listing.
        l.set_folder_source_total(inbox.id, 41, None).unwrap();
        let p = &l.progress().unwrap()[0];
        assert_eq!((p.source_messages, p.source_bytes), (53, 5200));
    }

    #[test]
    fn a_mailbox_whose_folder_list_never_completed_is_partial() {
        let dir = tempfile::tempdir().unwrap();
        let l = Ledger::open(&dir.path().join("state.db")).unwrap();
        l.mailbox("bob@example.org", "graph").unwrap();
        let p = &l.progress().unwrap()[0];
        assert_eq!(p.source_folders, None);
        assert!(p.source_total_partial());
    }
}
