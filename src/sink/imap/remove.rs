//! Removing one item the engine proved to be an orphaned second copy (an APPEND a killed run left
//! behind that the server committed after the next run had already looked for it). Only used on
//! items that match a source message exactly and that no ledger row owns.

use super::ImapSink;
use super::append::select;
use crate::imap::ImapError;
use crate::imap::conn::Conn;
use crate::imap::wire::Command;

impl ImapSink {
    /// Deletes one item (`UIDVALIDITY:UID`) with `UID STORE +FLAGS.SILENT (\Deleted)` and
    /// `UID EXPUNGE`; refuses without UIDPLUS, where EXPUNGE would remove other deleted mail too.
    pub async fn remove(&self, folder: &str, item_id: &str) -> Result<(), ImapError> {
        with_lease!(self, |c| self.remove_on(c, folder, item_id))
    }

    async fn remove_on(
        &self,
        conn: &mut Conn,
        folder: &str,
        item_id: &str,
    ) -> Result<(), ImapError> {
        let ctx = conn.ctx("UID EXPUNGE");
        let policy = |reason: String| ImapError::policy(ctx.clone(), reason);
        let Some((validity, uid)) = item_id
            .split_once(':')
            .and_then(|(v, u)| Some((v.parse::<u32>().ok()?, u.parse::<u32>().ok()?)))
        else {
            return Err(policy(format!("{item_id:?} is not an IMAP item id")).in_folder(folder));
        };
        if !self.caps.uidplus() {
            return Err(
                policy("the server lacks UIDPLUS: not removing a single item".into())
                    .in_folder(folder),
            );
        }
        let info = select(conn, folder).await?;
        if info.uid_validity != Some(validity) {
            return Err(
                policy(format!("UIDVALIDITY changed; {item_id} is stale")).in_folder(folder)
            );
        }
        for cmd in [
            format!("UID STORE {uid} +FLAGS.SILENT (\\Deleted)"),
            format!("UID EXPUNGE {uid}"),
        ] {
            conn.run(&Command::new(&cmd), "UID EXPUNGE")
                .await
                .map_err(|e| e.in_folder(folder))?;
        }
        Ok(())
    }
}
