//! Writes a crash left in doubt: their resolution at the destination, and the orphan check.
//!
//! A row left `sending` by a killed run (or a lost response) is resolved by asking the
//! destination before anything is re-sent: found, it is `done`; not found, `pending`. The look-ups
//! run concurrently (the sink's governor paces them), either inside the folder's pass or, after a
//! crash, ahead of it ([`resolve_ahead`], started by `mailbox` when the run begins so the folders
//! without such rows start their new writes at once).
//!
//! After a crash, a write the killed run had fully sent can still be committed by the destination
//! *after* the next run looked for it (its bytes were already in the server's socket buffer), so
//! the next run, finding nothing, writes the message again; and two interrupted runs in a row can
//! each leave a copy. Every row found in `sending` is therefore marked in the ledger (`recheck`)
//! and, once done, checked after the folder's writes, after a short settling time counted once
//! per run: any exact copy that no ledger row owns is such an orphan and is removed, then the
//! mark is cleared. The mark survives further crashes. Found by the reliability suite's SIGKILL
//! test on the IMAP route. The check ([`sweep`]) runs beside the mailbox's later folders, never
//! before them (see `mailbox` for why that is safe).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::StreamExt;

use super::MailboxCtx;
use super::ports::{MailSink, StepError};
use crate::engine::ports::FailureClass;
use crate::ledger::{MessageRow, MessageState};
use crate::model::{FolderStatus, SourceFolder, SourceIdentity, Uid, UidValidity};
use crate::report::MailboxSummary;

/// How long an orphaned write is given to land before the check. Servers commit a fully received
/// command within milliseconds; seconds leave a wide margin on a loaded machine.
const SETTLE: Duration = Duration::from_secs(5);

fn lerr(e: crate::ledger::LedgerError) -> StepError {
    StepError::caused_by(FailureClass::Fatal, e)
}

/// The rows of `rows` (one UIDVALIDITY of one folder) left `sending`, resolved at the destination
/// folder `dest`: marked for the orphan check first (so the check survives a further crash), then
/// looked up concurrently, the answers applied one by one in UID order so `claimed` decides as a
/// sequential pass would.
pub(crate) async fn resolve_open<K: MailSink>(
    ctx: &MailboxCtx<K>,
    folder: &SourceFolder,
    uid_validity: UidValidity,
    dest: &str,
    rows: &mut HashMap<Uid, MessageRow>,
    sum: &mut MailboxSummary,
) -> Result<(), StepError> {
    // Destination items other rows already own: identical messages (same content, no Message-ID
    // to tell them apart) match each other's items by content, and a resolved row must never take
    // an item another row holds (found by the SIGKILL test on the IMAP route).
    let mut claimed: HashSet<String> = rows
        .values()
        .filter(|r| r.state == MessageState::Done)
        .filter_map(|r| r.dest_id.clone())
        .collect();
    let mut open: Vec<&mut MessageRow> = rows
        .values_mut()
        .filter(|r| r.state == MessageState::Sending)
        .collect();
    if open.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = open.iter().map(|r| r.id).collect();
    ctx.ledger.mark_recheck(&ids).map_err(lerr)?;
    open.sort_by_key(|r| r.uid);
    let parallel = ctx.sink.parallelism().max(1) * 2;
    let lookups: Vec<Result<Vec<String>, StepError>> = futures::stream::iter(open.iter())
        .map(|row| lookup(ctx, folder, uid_validity, dest, row))
        .buffered(parallel)
        .collect()
        .await;
    for (row, found) in open.into_iter().zip(lookups) {
        apply(ctx, row, found?, &mut claimed, sum)?;
    }
    Ok(())
}

/// Resolves, before the folder's pass, the rows of `folder` an earlier run left `sending`, from
/// what the ledger recorded (the destination folder and each row's UIDVALIDITY): nothing of the
/// source is needed, so this runs while other folders use the source connection. Does nothing
/// when the folder now maps elsewhere (its pass then resolves the rows itself). Returns the
/// count of rows resolved (in `resolved`).
pub(crate) async fn resolve_ahead<K: MailSink>(
    ctx: &MailboxCtx<K>,
    folder: &SourceFolder,
    mapped_name: &str,
) -> Result<MailboxSummary, StepError> {
    let mut sum = MailboxSummary::default();
    let frow = ctx
        .ledger
        .folder(ctx.mailbox_id, &folder.raw_name)
        .map_err(lerr)?;
    let Some(dest) = frow
        .dest_id
        .filter(|_| frow.mapped_name.as_deref() == Some(mapped_name))
    else {
        return Ok(sum);
    };
    let mut by_validity: HashMap<UidValidity, HashMap<Uid, MessageRow>> = HashMap::new();
    for r in ctx.ledger.all_folder_messages(frow.id).map_err(lerr)? {
        by_validity
            .entry(r.uid_validity)
            .or_default()
            .insert(r.uid, r);
    }
    for (validity, mut rows) in by_validity {
        resolve_open(ctx, folder, validity, &dest, &mut rows, &mut sum).await?;
    }
    Ok(sum)
}

/// What the ledger says about the mailbox's folders before the run touches them.
#[derive(Debug, Default)]
pub(crate) struct LedgerFolders {
    /// Source folders with rows left `sending` (those `resolve_ahead` has work for).
    pub in_doubt: HashSet<String>,
    /// The destination folder each source folder was last written to.
    pub dest: HashMap<String, String>,
}

/// Reads [`LedgerFolders`]: the per-folder counts are one aggregate query; only folders with
/// open rows are read row by row.
pub(crate) fn ledger_folders<K>(ctx: &MailboxCtx<K>) -> Result<LedgerFolders, StepError> {
    let mut out = LedgerFolders::default();
    for f in ctx.ledger.folder_counts(ctx.mailbox_id).map_err(lerr)? {
        if f.other > 0
            && ctx
                .ledger
                .all_folder_messages(f.folder_id)
                .map_err(lerr)?
                .iter()
                .any(|r| r.state == MessageState::Sending)
        {
            out.in_doubt.insert(f.source_name.clone());
        }
        if let Some(d) = f.dest_id {
            out.dest.insert(f.source_name, d);
        }
    }
    Ok(out)
}

/// Asks the destination for the items of an interrupted write (none to ask for without a hash:
/// such a row never reached the write).
async fn lookup<K: MailSink>(
    ctx: &MailboxCtx<K>,
    folder: &SourceFolder,
    uid_validity: UidValidity,
    dest: &str,
    row: &MessageRow,
) -> Result<Vec<String>, StepError> {
    let Some(hash) = row.sha256 else {
        return Ok(Vec::new());
    };
    let id = SourceIdentity {
        mailbox: ctx.mailbox_key.clone(),
        folder: folder.raw_name.clone(),
        uid_validity,
        uid: row.uid,
        sha256: hash,
    };
    ctx.sink
        .find(dest, &id, row.message_id.as_deref(), row.size, &row.flags)
        .await
}

fn apply<K: MailSink>(
    ctx: &MailboxCtx<K>,
    row: &mut MessageRow,
    found: Vec<String>,
    claimed: &mut HashSet<String>,
    sum: &mut MailboxSummary,
) -> Result<(), StepError> {
    let found: Vec<String> = found.into_iter().filter(|f| !claimed.contains(f)).collect();
    match found.first() {
        Some(item) => {
            claimed.insert(item.clone());
            // The destination holds the flags the write carried: those the ledger recorded when
            // the row was listed. A difference is synced by the pass like any flag change.
            ctx.ledger
                .mark_done(&[(row.id, item.clone(), row.flags.clone())], ctx.run)
                .map_err(lerr)?;
            row.state = MessageState::Done;
            row.dest_id = Some(item.clone());
            // Further unowned copies (two interrupted runs each wrote it) are left to the
            // orphan check, which runs once every row has its item (identical messages own one
            // copy each).
            sum.resolved += 1;
        }
        None => {
            ctx.ledger
                .mark_state(row.id, MessageState::Pending, None, ctx.run)
                .map_err(lerr)?;
            row.state = MessageState::Pending;
        }
    }
    Ok(())
}

/// A folder's orphan check, handed by its pass to the mailbox, which runs it beside the later
/// folders.
pub(crate) struct SweepJob {
    pub folder: SourceFolder,
    pub status: FolderStatus,
    pub dest: String,
    pub folder_id: i64,
    /// The destination folder's keys (case-folded label, id): no other folder writes there
    /// while the check runs.
    pub keys: Vec<String>,
}

/// Removes unowned exact copies of the folder's done rows marked for a recheck.
pub(crate) async fn sweep<K: MailSink>(
    ctx: &MailboxCtx<K>,
    job: &SweepJob,
    sum: &mut MailboxSummary,
) -> Result<(), StepError> {
    let SweepJob {
        folder,
        status,
        dest,
        folder_id,
        ..
    } = job;
    let marked = ctx
        .ledger
        .recheck_rows(*folder_id, status.uid_validity)
        .map_err(lerr)?;
    if marked.is_empty() {
        return Ok(());
    }
    tokio::time::sleep_until(ctx.started + SETTLE).await;
    let rows = ctx
        .ledger
        .folder_messages(*folder_id, status.uid_validity)
        .map_err(lerr)?;
    let mut owned: HashSet<String> = rows
        .values()
        .filter(|r| r.state == MessageState::Done)
        .filter_map(|r| r.dest_id.clone())
        .collect();
    for row in &marked {
        let Some(hash) = row.sha256 else { continue };
        let id = super::ports::identity(&ctx.mailbox_key, folder, status, row.uid, hash);
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
