//! One pass over one source folder: compare the source with the ledger, resolve writes a crash
//! left ambiguous, copy what is missing (newest first, bodies bounded by the memory budget, writes
//! in flight in parallel), bring changed flags over, and note what vanished at the source.
//!
//! Exactly-once rests on three rules kept here: a message is written only when its row is not
//! `done`; its row is committed as `sending` (with the content hash) before the write starts; and
//! a `sending` row is resolved by asking the destination before anything is re-sent.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use tokio::task::JoinSet;

use super::batch::{BatchOutcome, WriteBatch, write_batch};
use super::budget::Budget;
use super::orphans::SweepJob;
use super::ports::{MailSink, MailSource, StepError};
use super::{MailboxCtx, cancelled};
use crate::body::Body;
use crate::engine::ports::FailureClass;
use crate::ledger::{MessageRow, MessageState, NewMessage};
use crate::model::{FolderStatus, MessageMeta, SourceFolder, Uid};
use crate::report::{Event, MailboxSummary};
use crate::translate::Target;

/// Bytes of bodies one folder pass may hold between fetch and recorded write: shared by the
/// batches being written (one per sink connection) and the one being fetched, so a run of 5-10
/// MB messages cannot fill every slot at once. A single larger message takes the whole window,
/// alone. The process-wide budget still bounds all mailboxes together. IMAP to IMAP copied as
/// fast with a 16 MiB window as with 24 MiB or with none (up to 80 MiB), at a lower peak RSS
/// (42 MiB against 50 and 72; docs/benchmarks.md).
const MAILBOX_WINDOW_BYTES: u64 = 16 << 20;

/// Bytes of bodies one fetch/write batch may carry with `parallel` batches being written.
fn batch_bytes(parallel: usize) -> u64 {
    (MAILBOX_WINDOW_BYTES / (parallel as u64 + 1)).max(1 << 20)
}

/// A folder's pass result: its counts, an error that stops the whole mailbox, and the orphan
/// check still owed (run by the mailbox beside its later folders).
pub(crate) struct FolderResult {
    pub summary: MailboxSummary,
    pub abort: Option<StepError>,
    pub sweep: Option<SweepJob>,
}

/// Runs one folder's pass.
pub(crate) async fn folder_pass<S: MailSource, K: MailSink>(
    ctx: &MailboxCtx<K>,
    src: &mut S,
    folder: &SourceFolder,
    target: &Target,
    mapped_name: &str,
) -> Result<FolderResult, StepError> {
    let ledger = &ctx.ledger;
    let lerr = |e: crate::ledger::LedgerError| StepError::caused_by(FailureClass::Fatal, e);
    let mut sum = MailboxSummary {
        folders: 1,
        ..Default::default()
    };
    let frow = ledger
        .folder(ctx.mailbox_id, &folder.raw_name)
        .map_err(lerr)?;
    let status = src.select(folder).await?;

    // Nothing changed at the source since the last complete pass (CONDSTORE): skip the listing.
    let unchanged = frow.uid_validity == Some(status.uid_validity)
        && frow.uid_next.is_some()
        && frow.uid_next == status.uid_next
        && matches!((frow.highest_modseq, status.highest_modseq), (Some(a), Some(b)) if a == b)
        && frow.mapped_name.as_deref() == Some(mapped_name)
        && frow.dest_id.is_some()
        && !ctx.opts.retry_failed
        && !ctx.opts.repair
        // An interrupted write still owes its orphan check, which only a full pass does.
        && ledger.recheck_rows(frow.id, status.uid_validity).map_err(lerr)?.is_empty();
    if unchanged {
        sum.folders_unchanged = 1;
        sum.listed = status.exists as u64;
        sum.already_present = status.exists as u64;
        ledger
            .set_folder_source_total(frow.id, status.exists as u64, None)
            .map_err(lerr)?;
        // Listed (nothing to copy): progress counts it towards a complete total.
        ctx.events.send(Event::FolderPlanned {
            mailbox: ctx.mailbox_key.clone(),
            folder: folder.raw_name.clone(),
            folder_name: folder.path.to_string(),
            messages: 0,
            bytes: 0,
        });
        return Ok(FolderResult {
            summary: sum,
            abort: None,
            sweep: None,
        });
    }

    let metas = src.fetch_meta(folder, None).await?;
    sum.listed = metas.len() as u64;
    ledger
        .set_folder_source_total(
            frow.id,
            metas.len() as u64,
            Some(metas.iter().map(|m| m.size).sum()),
        )
        .map_err(lerr)?;
    let rematch = frow.uid_validity.is_some_and(|v| v != status.uid_validity);

    let mut rows = ledger
        .folder_messages(frow.id, status.uid_validity)
        .map_err(lerr)?;
    let new: Vec<NewMessage> = metas
        .iter()
        .filter(|m| !rows.contains_key(&m.uid))
        .map(|m| NewMessage {
            uid: m.uid,
            size: m.size,
            message_id: m.message_id.clone(),
            internal_date: m.internal_date,
            flags: m.flags.clone(),
        })
        .collect();

    if ctx.opts.dry_run {
        let (n, b) = plan_counts(ctx, &metas, &rows);
        sum.pending = n;
        sum.pending_bytes = b;
        sum.already_present = metas.len() as u64 - n;
        return Ok(FolderResult {
            summary: sum,
            abort: None,
            sweep: None,
        });
    }

    let dest = ctx.sink.ensure_folder(target).await?;
    ledger
        .set_folder_target(frow.id, mapped_name, &dest)
        .map_err(lerr)?;
    if !new.is_empty() {
        ledger
            .insert_pending(frow.id, status.uid_validity, &new)
            .map_err(lerr)?;
        rows = ledger
            .folder_messages(frow.id, status.uid_validity)
            .map_err(lerr)?;
    }

    if ctx.opts.repair {
        super::repair::recheck_done(ctx, folder, &dest, &mut rows, &mut sum).await?;
    }

    // Writes a crash or a lost response left open: ask the destination before re-sending (the
    // mailbox has usually resolved them already, ahead of this pass; see `orphans`). This
    // folder's own new writes start only after: a look-up matches unstamped items by content, so
    // a new write of an identical message landing meanwhile could be taken for the open one.
    super::orphans::resolve_open(ctx, folder, status.uid_validity, &dest, &mut rows, &mut sum)
        .await?;

    // Decide, per listed message, what this pass does with it.
    let mut todo: Vec<(&MessageMeta, MessageRow)> = Vec::new();
    let mut flag_updates: Vec<(&MessageMeta, MessageRow)> = Vec::new();
    let mut deferred = false;
    for m in &metas {
        let Some(row) = rows.get(&m.uid) else {
            continue;
        };
        match row.state {
            MessageState::Done => {
                sum.already_present += 1;
                if row.flags != m.flags {
                    flag_updates.push((m, row.clone()));
                }
            }
            MessageState::Sending => deferred = true,
            MessageState::Skipped if !ctx.opts.retry_failed => {}
            MessageState::Failed
                if !ctx.opts.retry_failed
                    && !matches!(row.error_class.as_deref(), Some("transient" | "ambiguous")) => {}
            _ => {
                if let Some(reason) = skip_reason(ctx, m) {
                    ledger
                        .mark_state(
                            row.id,
                            MessageState::Skipped,
                            Some((&reason, "rejected")),
                            ctx.run,
                        )
                        .map_err(lerr)?;
                    *sum.skipped.entry(reason.clone()).or_default() += 1;
                    ctx.events.send(Event::ItemProblem {
                        mailbox: ctx.mailbox_key.clone(),
                        folder: folder.raw_name.clone(),
                        folder_name: folder.path.to_string(),
                        uid: m.uid.get(),
                        outcome: "skipped".into(),
                        reason,
                    });
                } else if in_window(ctx, m) {
                    todo.push((m, row.clone()));
                } else {
                    deferred = true;
                    sum.pending += 1;
                    sum.pending_bytes += m.size;
                }
            }
        }
    }
    if ctx.opts.newest_first {
        todo.sort_by(|a, b| {
            b.0.internal_date
                .cmp(&a.0.internal_date)
                .then(b.0.uid.cmp(&a.0.uid))
        });
    } else {
        todo.sort_by_key(|t| t.0.uid);
    }
    ctx.events.send(Event::FolderPlanned {
        mailbox: ctx.mailbox_key.clone(),
        folder: folder.raw_name.clone(),
        folder_name: folder.path.to_string(),
        messages: todo.len() as u64,
        bytes: todo.iter().map(|t| t.0.size).sum(),
    });

    let abort = copy(
        ctx, src, folder, frow.id, &status, &dest, rematch, todo, &mut sum,
    )
    .await?;
    if abort.is_none() && !cancelled(&ctx.cancel) {
        sync_flags(ctx, &dest, flag_updates, &mut sum).await;
    }
    // The orphan check waits for the settling time: the mailbox runs it beside its later folders
    // (never beside writes into the same destination folder).
    let sweep = abort.is_none().then(|| SweepJob {
        folder: folder.clone(),
        status: status.clone(),
        dest: dest.clone(),
        folder_id: frow.id,
        keys: vec![mapped_name.to_lowercase(), dest.clone()],
    });

    // What the ledger holds that the source no longer lists (any older UIDVALIDITY included).
    let present: HashSet<Uid> = metas.iter().map(|m| m.uid).collect();
    let all = ledger.all_folder_messages(frow.id).map_err(lerr)?;
    let gone: Vec<i64> = all
        .iter()
        .filter(|r| r.uid_validity != status.uid_validity || !present.contains(&r.uid))
        .map(|r| r.id)
        .collect();
    sum.source_gone = gone.len() as u64;
    ledger.set_source_gone(frow.id, &gone).map_err(lerr)?;

    // Remember the source state only when every listed message reached a final state, so the
    // next run may skip this folder when nothing changed.
    let open = ledger
        .folder_messages(frow.id, status.uid_validity)
        .map_err(lerr)?
        .values()
        .any(|r| {
            matches!(r.state, MessageState::Pending | MessageState::Sending)
                || (r.state == MessageState::Failed && r.error_class.as_deref() != Some("rejected"))
        });
    if open || deferred || abort.is_some() || cancelled(&ctx.cancel) || sum.failed > 0 {
        ledger.clear_folder_sync_point(frow.id).map_err(lerr)?;
    } else {
        ledger
            .set_folder_sync_point(
                frow.id,
                status.uid_validity,
                status.highest_modseq,
                status.uid_next,
            )
            .map_err(lerr)?;
    }
    Ok(FolderResult {
        summary: sum,
        abort,
        sweep,
    })
}

/// What a dry run would copy: messages not yet done, inside the window and the size limit.
fn plan_counts<K>(
    ctx: &MailboxCtx<K>,
    metas: &[MessageMeta],
    rows: &HashMap<Uid, MessageRow>,
) -> (u64, u64) {
    metas
        .iter()
        .filter(|m| {
            rows.get(&m.uid)
                .is_none_or(|r| r.state != MessageState::Done)
        })
        .filter(|m| skip_reason(ctx, m).is_none() && in_window(ctx, m))
        .fold((0, 0), |(n, b), m| (n + 1, b + m.size))
}

fn skip_reason<K>(ctx: &MailboxCtx<K>, m: &MessageMeta) -> Option<String> {
    if m.size > ctx.max_message_bytes {
        return Some(format!(
            "larger than the destination's limit ({} bytes > {} bytes)",
            m.size, ctx.max_message_bytes
        ));
    }
    if m.flags.deleted && !ctx.opts.migrate_deleted {
        return Some("marked \\Deleted at the source (set folders.migrate_deleted to copy)".into());
    }
    None
}

fn in_window<K>(ctx: &MailboxCtx<K>, m: &MessageMeta) -> bool {
    let t: DateTime<Utc> = m.internal_date.with_timezone(&Utc);
    ctx.opts.since.is_none_or(|s| t >= s) && ctx.opts.before.is_none_or(|b| t < b)
}

/// Fetches bodies in batches bounded by bytes and writes them with up to `parallelism` batches in
/// flight. Returns the error that must stop the mailbox, if one happened.
#[allow(clippy::too_many_arguments)]
async fn copy<S: MailSource, K: MailSink>(
    ctx: &MailboxCtx<K>,
    src: &mut S,
    folder: &SourceFolder,
    folder_id: i64,
    status: &FolderStatus,
    dest: &str,
    rematch: bool,
    todo: Vec<(&MessageMeta, MessageRow)>,
    sum: &mut MailboxSummary,
) -> Result<Option<StepError>, StepError> {
    let mut inflight: JoinSet<BatchOutcome> = JoinSet::new();
    let parallel = ctx.sink.parallelism().max(1);
    let max_items = ctx.sink.batch_size().max(1);
    let max_bytes = batch_bytes(parallel);
    let window = Budget::new(MAILBOX_WINDOW_BYTES);
    let mut abort = None;
    let mut i = 0;
    while i < todo.len() {
        if cancelled(&ctx.cancel) || abort.is_some() {
            break;
        }
        let mut j = i;
        let mut bytes = 0;
        while j < todo.len() && j - i < max_items && (j == i || bytes + todo[j].0.size <= max_bytes)
        {
            bytes += todo[j].0.size;
            j += 1;
        }
        let chunk = &todo[i..j];
        i = j;
        // The folder's window first, so a pass waiting on its own writes holds nothing of the
        // process-wide budget other mailboxes could use.
        let local = window.reserve(bytes).await;
        let reservation = (ctx.budget.reserve(bytes).await, local);
        let uids: Vec<Uid> = chunk.iter().map(|c| c.0.uid).collect();
        let bodies = src.fetch_bodies(folder, &uids).await;
        let bodies = match bodies {
            Ok(b) => b,
            Err(e) => {
                abort = Some(e);
                break;
            }
        };
        let mut by_uid: HashMap<Uid, Body> = bodies.into_iter().collect();
        let mut items = Vec::with_capacity(chunk.len());
        for (meta, row) in chunk {
            match by_uid.remove(&meta.uid) {
                Some(body) => items.push(((*meta).clone(), row.clone(), body)),
                // Asked for and not returned: a server that answers FETCH without BODY[] (or
                // with BODY[] NIL) must not leave the message pending behind an "ok" run. A
                // transient failure is retried next run; if the message was expunged meanwhile,
                // that run no longer lists it and counts it as gone.
                None => {
                    let reason = format!(
                        "folder {:?} UID {}: the source sent no body (BODY[] missing or NIL, or the message was expunged after it was listed)",
                        folder.raw_name, meta.uid
                    );
                    ctx.ledger
                        .mark_state(
                            row.id,
                            MessageState::Failed,
                            Some((&reason, "transient")),
                            ctx.run,
                        )
                        .map_err(|e| StepError::new(FailureClass::Fatal, e.to_string()))?;
                    sum.failed += 1;
                    *sum.failures
                        .entry(crate::report::reason::group_key(&reason))
                        .or_default() += 1;
                    ctx.events.send(Event::ItemProblem {
                        mailbox: ctx.mailbox_key.clone(),
                        folder: folder.raw_name.clone(),
                        folder_name: folder.path.to_string(),
                        uid: meta.uid.get(),
                        outcome: "failed".into(),
                        reason,
                    });
                }
            }
        }
        while inflight.len() >= parallel {
            if let Some(done) = inflight.join_next().await {
                absorb(done, sum, &mut abort);
            }
        }
        let batch = WriteBatch {
            ledger: Arc::clone(&ctx.ledger),
            sink: Arc::clone(&ctx.sink),
            events: ctx.events.clone(),
            run: ctx.run,
            mailbox: ctx.mailbox_key.clone(),
            folder: folder.clone(),
            folder_id,
            status: status.clone(),
            dest: dest.to_owned(),
            rematch,
            items,
            _reservation: reservation,
        };
        inflight.spawn(write_batch(batch));
    }
    while let Some(done) = inflight.join_next().await {
        absorb(done, sum, &mut abort);
    }
    // Whatever the loop did not reach stays pending for the next run.
    sum.pending += todo.len().saturating_sub(i) as u64;
    Ok(abort)
}

fn absorb(
    done: Result<BatchOutcome, tokio::task::JoinError>,
    sum: &mut MailboxSummary,
    abort: &mut Option<StepError>,
) {
    match done {
        Ok(o) => {
            sum.absorb(&o.summary);
            if abort.is_none() {
                *abort = o.abort;
            }
        }
        Err(e) => {
            *abort = Some(StepError::new(
                FailureClass::Fatal,
                format!("write task failed: {e}"),
            ))
        }
    }
}

async fn sync_flags<K: MailSink>(
    ctx: &MailboxCtx<K>,
    dest: &str,
    updates: Vec<(&MessageMeta, MessageRow)>,
    sum: &mut MailboxSummary,
) {
    let parallel = ctx.sink.parallelism().max(1);
    let results: Vec<_> = futures::stream::iter(updates)
        .map(|(meta, row)| async move {
            let item = row.dest_id.clone().unwrap_or_default();
            let r = ctx.sink.set_flags(dest, &item, &meta.flags).await;
            (meta, row, r)
        })
        .buffer_unordered(parallel)
        .collect()
        .await;
    for (meta, row, r) in results {
        match r {
            Ok(()) => {
                if ctx.ledger.set_flags(row.id, &meta.flags).is_ok() {
                    sum.flags_updated += 1;
                    sum.count_dropped(ctx.sink.dropped_keywords(&meta.flags));
                }
            }
            Err(e) => {
                *sum.failures
                    .entry(format!("flag update: {}", e.message))
                    .or_default() += 1;
            }
        }
    }
}
