//! One mailbox's pass: list the source folders, map them, and run each folder's pass. A folder
//! that fails is recorded and the others continue; an error that concerns the whole mailbox
//! (access denied, credentials, the ledger) stops this mailbox only.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Instant;

use futures::StreamExt;

use super::folder::folder_pass;
use super::orphans::{LedgerFolders, SweepJob};
use super::ports::{MailSink, MailSource, StepError};
use super::{MailboxCtx, cancelled};
use crate::engine::ports::FailureClass;
use crate::report::MailboxSummary;
use crate::translate::{FolderMapper, FolderMapping, Target};

/// A short, stable label for where a folder goes (`inbox`, `Archive/2019`), for the ledger and
/// reports.
pub fn target_label(target: &Target) -> String {
    target.to_string()
}

/// Runs every folder of one mailbox. Returns the summary; `status` is `ok`, `failed`,
/// `interrupted` or `dry-run`.
pub(crate) async fn mailbox_pass<S: MailSource, K: MailSink>(
    ctx: &MailboxCtx<K>,
    src: &mut S,
    mapper: &FolderMapper,
) -> MailboxSummary {
    let started = Instant::now();
    let mut sum = MailboxSummary {
        mailbox: ctx.mailbox_key.clone(),
        destination: ctx.destination.clone(),
        ..Default::default()
    };
    let result = run(ctx, src, mapper, &mut sum).await;
    sum.seconds = started.elapsed().as_secs_f64();
    sum.status = match result {
        Err(e) => {
            sum.error = Some(e.detail());
            "failed".into()
        }
        Ok(()) if cancelled(&ctx.cancel) => "interrupted".into(),
        Ok(()) if ctx.opts.dry_run => "dry-run".into(),
        Ok(()) => "ok".into(),
    };
    sum
}

async fn run<S: MailSource, K: MailSink>(
    ctx: &MailboxCtx<K>,
    src: &mut S,
    mapper: &FolderMapper,
    sum: &mut MailboxSummary,
) -> Result<(), StepError> {
    let folders = src.list_folders().await?;
    if let Some(w) = crate::report::folder_list_warning(&folders) {
        tracing::warn!(mailbox = %ctx.mailbox_key, "{w}");
        sum.warnings.push(w);
    }
    let mappings = mapper.map(&folders);
    let acc = src.accounting(&mappings).await?;
    // The folder count `status` needs to tell a complete source total from a partial one.
    let copied = mappings
        .iter()
        .filter(|m| m.target.is_some() && m.source.selectable)
        .count();
    ctx.ledger
        .set_source_folders(ctx.mailbox_id, copied as u64)
        .map_err(|e| StepError::caused_by(FailureClass::Fatal, e))?;
    ctx.events.send(crate::report::Event::FoldersListed {
        mailbox: ctx.mailbox_key.clone(),
        folders: copied as u64,
    });
    let result = folders_pass(ctx, src, mappings, sum).await;
    sum.accounting = Some(Box::new(acc));
    result
}

async fn folders_pass<S: MailSource, K: MailSink>(
    ctx: &MailboxCtx<K>,
    src: &mut S,
    mappings: Vec<crate::translate::FolderMapping>,
    sum: &mut MailboxSummary,
) -> Result<(), StepError> {
    let known = if ctx.opts.dry_run {
        LedgerFolders::default()
    } else {
        super::orphans::ledger_folders(ctx)?
    };
    // Each folder with the keys of the destination folder it writes to: its label (case folded,
    // as Exchange names are) and, when the ledger knows it, the destination folder's id.
    let work: Vec<(&FolderMapping, String, Vec<String>)> = mappings
        .iter()
        .filter(|m| m.source.selectable)
        .filter_map(|m| {
            let label = target_label(m.target.as_ref()?);
            let mut keys = vec![label.to_lowercase()];
            keys.extend(known.dest.get(&m.source.raw_name).cloned());
            Some((m, label, keys))
        })
        .collect();
    // Folders with writes an earlier run left in doubt, and every folder writing into the same
    // destination folder as one of them, pass last: their in-doubt rows are resolved meanwhile
    // (lane `ahead`), while the other folders copy their new messages at once (lane `source`).
    // A new write elsewhere cannot duplicate an in-doubt one: each in-doubt row is one message,
    // looked up only in its own destination folder, by its stamp or, among unstamped items,
    // by its content; only a write into that same folder could be mistaken for it.
    let held: HashSet<&str> = work
        .iter()
        .filter(|(m, _, _)| known.in_doubt.contains(&m.source.raw_name))
        .flat_map(|(_, _, keys)| keys.iter().map(String::as_str))
        .collect();
    let (later, first): (Vec<_>, Vec<_>) = work
        .iter()
        .partition(|(_, _, keys)| keys.iter().any(|k| held.contains(k.as_str())));
    let (resolved_tx, resolved_rx) = tokio::sync::oneshot::channel::<()>();
    let (sweep_tx, sweep_rx) = futures::channel::mpsc::unbounded::<SweepJob>();
    let sweeping = Sweeping::default();

    let ahead = async {
        let mut s = MailboxSummary::default();
        for (m, label, _) in later
            .iter()
            .filter(|(m, _, _)| known.in_doubt.contains(&m.source.raw_name))
        {
            if cancelled(&ctx.cancel) {
                break;
            }
            match super::orphans::resolve_ahead(ctx, &m.source, label).await {
                Ok(r) => s.absorb(&r),
                // The folder's own pass resolves what is still open, and reports the failure.
                Err(e) => tracing::warn!(
                    mailbox = %ctx.mailbox_key,
                    folder = %m.source.raw_name,
                    "resolving interrupted writes: {}", e.message
                ),
            }
        }
        let _ = resolved_tx.send(());
        s
    };
    let source = async {
        let sweep_tx = sweep_tx;
        let mut resolved_rx = Some(resolved_rx);
        for (i, (m, label, keys)) in first.iter().chain(later.iter()).enumerate() {
            if i >= first.len()
                && let Some(rx) = resolved_rx.take()
            {
                let _ = rx.await;
            }
            if cancelled(&ctx.cancel) {
                break;
            }
            // An orphan check removes unowned copies in its destination folder: no write may
            // land there while it runs.
            sweeping.wait_clear(keys).await;
            let Some(job) = pass_one(ctx, src, m, label, sum).await? else {
                continue;
            };
            sweeping.start(&job.keys);
            let _ = sweep_tx.unbounded_send(job);
        }
        // Closing the queue lets the sweep lane end once its checks are done.
        drop(sweep_tx);
        Ok::<(), StepError>(())
    };
    let sweeps = sweep_rx
        .map(|job| {
            let sweeping = &sweeping;
            async move {
                let mut s = MailboxSummary::default();
                let r = super::orphans::sweep(ctx, &job, &mut s).await;
                sweeping.finish(&job.keys);
                (job, s, r)
            }
        })
        .buffer_unordered(SWEEPS_AT_ONCE)
        .collect::<Vec<_>>();
    let (result, ahead_sum, swept) = futures::join!(source, ahead, sweeps);
    sum.absorb(&ahead_sum);
    let mut stop = None;
    for (job, s, r) in swept {
        sum.absorb(&s);
        match r {
            Ok(()) => {}
            Err(e) if matches!(e.class, FailureClass::Mailbox | FailureClass::Fatal) => {
                stop.get_or_insert(with_folder(e, &job.folder.raw_name));
            }
            Err(e) => folder_failed(sum, &job.folder.raw_name, &e),
        }
    }
    result?;
    if let Some(e) = stop {
        return Err(e);
    }
    if !ctx.opts.dry_run
        && !cancelled(&ctx.cancel)
        && ctx.sink.keeps_subscriptions()
        && let Err(e) = sync_subscriptions(ctx, src, &mappings).await
    {
        sum.failed += 1;
        *sum.failures
            .entry(format!("subscriptions: {}", e.message))
            .or_default() += 1;
    }
    Ok(())
}

/// Orphan checks of one mailbox run at once (each one's look-ups go through the governor).
const SWEEPS_AT_ONCE: usize = 4;

/// One folder's pass, its counts added to `sum`. Returns the orphan check it still owes; an
/// error stops the mailbox.
async fn pass_one<S: MailSource, K: MailSink>(
    ctx: &MailboxCtx<K>,
    src: &mut S,
    mapping: &FolderMapping,
    label: &str,
    sum: &mut MailboxSummary,
) -> Result<Option<SweepJob>, StepError> {
    let Some(target) = &mapping.target else {
        return Ok(None);
    };
    match folder_pass(ctx, src, &mapping.source, target, label).await {
        Ok(r) => {
            sum.absorb(&r.summary);
            match r.abort {
                Some(e) => Err(with_folder(e, &mapping.source.raw_name)),
                None => Ok(r.sweep),
            }
        }
        Err(e) if matches!(e.class, FailureClass::Mailbox | FailureClass::Fatal) => {
            Err(with_folder(e, &mapping.source.raw_name))
        }
        Err(e) => {
            // This folder failed (source gone away mid-pass, a folder the destination refuses):
            // record it, keep going with the rest of the mailbox.
            folder_failed(sum, &mapping.source.raw_name, &e);
            Ok(None)
        }
    }
}

fn folder_failed(sum: &mut MailboxSummary, folder: &str, e: &StepError) {
    sum.failed += 1;
    *sum.failures
        .entry(crate::report::reason::group_key(&format!(
            "folder {folder:?}: {}",
            e.message
        )))
        .or_default() += 1;
}

/// Destination folders (by key: label and id) with an orphan check running: a folder writing
/// there waits for it.
#[derive(Default)]
struct Sweeping {
    running: Mutex<HashMap<String, usize>>,
    changed: tokio::sync::Notify,
}

impl Sweeping {
    fn start(&self, keys: &[String]) {
        let mut running = self.lock();
        for k in keys {
            *running.entry(k.clone()).or_default() += 1;
        }
    }

    fn finish(&self, keys: &[String]) {
        {
            let mut running = self.lock();
            for k in keys {
                if let Some(n) = running.get_mut(k) {
                    *n -= 1;
                    if *n == 0 {
                        running.remove(k);
                    }
                }
            }
        }
        self.changed.notify_waiters();
    }

    async fn wait_clear(&self, keys: &[String]) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before the check, so a `finish` in between is not missed.
            changed.as_mut().enable();
            if !keys.iter().any(|k| self.lock().contains_key(k)) {
                return;
            }
            changed.await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Makes each copied folder's subscription at the destination what it is at the source
/// (folders are created subscribed; INBOX is handled like any other).
async fn sync_subscriptions<S: MailSource, K: MailSink>(
    ctx: &MailboxCtx<K>,
    src: &mut S,
    mappings: &[FolderMapping],
) -> Result<(), StepError> {
    let Some(subscribed) = src.subscriptions().await? else {
        return Ok(());
    };
    for m in mappings.iter().filter(|m| m.source.selectable) {
        let Some(target) = &m.target else { continue };
        let dest = ctx.sink.ensure_folder(target).await?;
        ctx.sink
            .set_subscribed(&dest, subscribed.contains(&m.source.raw_name))
            .await?;
    }
    Ok(())
}

fn with_folder(e: StepError, folder: &str) -> StepError {
    if e.message.contains(folder) {
        e
    } else {
        e.context(format_args!("folder {folder:?}"))
    }
}
