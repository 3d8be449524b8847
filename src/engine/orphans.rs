//! After a crash, a write the killed run had fully sent can still be committed by the destination
//! *after* the next run looked for it (its bytes were already in the server's socket buffer), so
//! the next run, finding nothing, writes the message again; and two interrupted runs in a row can
//! each leave a copy. Every row found in `sending` is therefore marked in the ledger (`recheck`)
//! and, once done, checked at the end of a folder pass after a short settling time: any exact
//! copy that no ledger row owns is such an orphan and is removed, then the mark is cleared. The
//! mark survives further crashes. Found by the reliability suite's SIGKILL test on the IMAP route.

use std::collections::HashSet;
use std::time::Duration;

use tokio::time::Instant;

use super::MailboxCtx;
use super::ports::{MailSink, StepError, identity};
use crate::engine::ports::FailureClass;
use crate::ledger::MessageState;
use crate::model::{FolderStatus, SourceFolder};
use crate::report::MailboxSummary;

/// How long an orphaned write is given to land before the check. Servers commit a fully received
/// command within milliseconds; seconds leave a wide margin on a loaded machine.
const SETTLE: Duration = Duration::from_secs(5);

/// Removes unowned exact copies of the folder's done rows marked for a recheck.
pub(crate) async fn sweep<K: MailSink>(
    ctx: &MailboxCtx<K>,
    folder: &SourceFolder,
    status: &FolderStatus,
    dest: &str,
    folder_id: i64,
    since: Instant,
    sum: &mut MailboxSummary,
) -> Result<(), StepError> {
    let lerr = |e: crate::ledger::LedgerError| StepError::caused_by(FailureClass::Fatal, e);
    let marked = ctx
        .ledger
        .recheck_rows(folder_id, status.uid_validity)
        .map_err(lerr)?;
    if marked.is_empty() {
        return Ok(());
    }
    tokio::time::sleep_until(since + SETTLE).await;
    let rows = ctx
        .ledger
        .folder_messages(folder_id, status.uid_validity)
        .map_err(lerr)?;
    let mut owned: HashSet<String> = rows
        .values()
        .filter(|r| r.state == MessageState::Done)
        .filter_map(|r| r.dest_id.clone())
        .collect();
    for row in &marked {
        let Some(hash) = row.sha256 else { continue };
        let id = identity(&ctx.mailbox_key, folder, status, row.uid, hash);
        let copies = ctx
            .sink
            .copies(dest, &id, row.message_id.as_deref(), row.size)
            .await?;
        let mut clean = true;
        for copy in copies {
            // `insert` also keeps one orphan from being counted twice by identical messages.
            if !owned.insert(copy.clone()) {
                continue;
            }
            match ctx.sink.remove(dest, &copy).await {
                Ok(()) => sum.orphans_removed += 1,
                Err(e) => {
                    clean = false;
                    *sum.failures
                        .entry(format!(
                            "orphaned copy {copy} of UID {} not removed: {}",
                            row.uid, e.message
                        ))
                        .or_default() += 1;
                }
            }
        }
        if clean {
            ctx.ledger.clear_recheck(row.id).map_err(lerr)?;
        }
    }
    Ok(())
}
