//! One mailbox's pass: list the source folders, map them, and run each folder's pass. A folder
//! that fails is recorded and the others continue; an error that concerns the whole mailbox
//! (access denied, credentials, the ledger) stops this mailbox only.

use std::time::Instant;

use super::folder::folder_pass;
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
    for mapping in &mappings {
        if cancelled(&ctx.cancel) {
            break;
        }
        let Some(target) = &mapping.target else {
            continue;
        };
        if !mapping.source.selectable {
            continue;
        }
        let label = target_label(target);
        match folder_pass(ctx, src, &mapping.source, target, &label).await {
            Ok(r) => {
                sum.absorb(&r.summary);
                if let Some(e) = r.abort {
                    return Err(with_folder(e, &mapping.source.raw_name));
                }
            }
            Err(e) if matches!(e.class, FailureClass::Mailbox | FailureClass::Fatal) => {
                return Err(with_folder(e, &mapping.source.raw_name));
            }
            Err(e) => {
                // This folder failed (source gone away mid-pass, a folder the destination refuses):
                // record it, keep going with the rest of the mailbox.
                sum.failed += 1;
                *sum.failures
                    .entry(crate::report::reason::group_key(&format!(
                        "folder {:?}: {}",
                        mapping.source.raw_name, e.message
                    )))
                    .or_default() += 1;
            }
        }
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
