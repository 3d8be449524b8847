//! One batch of fetched messages on its way to the sink, run as its own task so several batches
//! can be in flight while the reader fetches the next one.
//!
//! Order of events for each message: hash the bytes; after a UIDVALIDITY change, try to claim the
//! ledger row of the same content first (no upload); commit `sending` with the hash; write; commit
//! `done` with the destination id. A failure is recorded by class: rejected items are skipped with
//! the reason, transient ones wait for the next run, ambiguous ones are looked up at once and
//! otherwise stay `sending` for the next run to resolve.

use std::sync::Arc;

use super::budget::Reservation;
use super::ports::{MailSink, StepError, identity};
use crate::body::Body;
use crate::engine::ports::{FailureClass, OutgoingMessage};
use crate::ledger::{Ledger, MessageRow, MessageState};
use crate::model::{ContentHash, FolderStatus, MessageMeta, SourceFolder};
use crate::report::reason::group_key;
use crate::report::{Event, Events, MailboxSummary};

/// Everything a write task owns.
pub(crate) struct WriteBatch<K> {
    pub ledger: Arc<Ledger>,
    pub sink: Arc<K>,
    pub events: Events,
    pub run: i64,
    pub mailbox: String,
    pub folder: SourceFolder,
    /// The folder's ledger row id.
    pub folder_id: i64,
    pub status: FolderStatus,
    pub dest: String,
    pub rematch: bool,
    pub items: Vec<(MessageMeta, MessageRow, Body)>,
    /// Released when the task ends, returning the bodies' bytes to the process-wide budget and
    /// to the mailbox's own window.
    pub _reservation: (Reservation, Reservation),
}

/// What a batch did.
pub(crate) struct BatchOutcome {
    pub summary: MailboxSummary,
    pub abort: Option<StepError>,
}

pub(crate) async fn write_batch<K: MailSink>(b: WriteBatch<K>) -> BatchOutcome {
    let mut sum = MailboxSummary::default();
    match run(&b, &mut sum).await {
        Ok(abort) => BatchOutcome {
            summary: sum,
            abort,
        },
        Err(e) => BatchOutcome {
            summary: sum,
            abort: Some(StepError::caused_by(FailureClass::Fatal, e)),
        },
    }
}

async fn run<K: MailSink>(
    b: &WriteBatch<K>,
    sum: &mut MailboxSummary,
) -> Result<Option<StepError>, crate::ledger::LedgerError> {
    // A spooled body's hash was computed while it was written.
    let hashed: Vec<(&MessageMeta, &MessageRow, &Body, ContentHash)> = b
        .items
        .iter()
        .map(|(m, r, body)| (m, r, body, body.sha256()))
        .collect();

    let mut to_write = Vec::with_capacity(hashed.len());
    for (meta, row, body, hash) in hashed {
        let claimed = if b.rematch {
            b.ledger
                .claim_by_hash(b.folder_id, b.status.uid_validity, meta.uid, &hash)?
        } else {
            None
        };
        if let Some(old) = claimed {
            sum.already_present += 1;
            if let Some(item) = old.dest_id.as_deref().filter(|_| old.flags != meta.flags)
                && b.sink.set_flags(&b.dest, item, &meta.flags).await.is_ok()
            {
                b.ledger.set_flags(old.id, &meta.flags)?;
                sum.flags_updated += 1;
                sum.count_dropped(b.sink.dropped_keywords(&meta.flags));
            }
            continue;
        }
        to_write.push((meta, row, body, hash));
    }
    if to_write.is_empty() {
        return Ok(None);
    }

    let sending: Vec<(i64, ContentHash)> = to_write.iter().map(|t| (t.1.id, t.3)).collect();
    b.ledger.mark_sending(&sending, b.run)?;

    let identities: Vec<_> = to_write
        .iter()
        .map(|(m, _, _, h)| identity(&b.mailbox, &b.folder, &b.status, m.uid, *h))
        .collect();
    let outgoing: Vec<OutgoingMessage<'_>> = to_write
        .iter()
        .zip(&identities)
        .map(|((m, _, body, _), id)| OutgoingMessage {
            body,
            flags: &m.flags,
            internal_date: m.internal_date,
            identity: id,
            message_id: m.message_id.as_deref(),
        })
        .collect();
    let results = b.sink.write_batch(&b.dest, &outgoing).await;

    let mut done = Vec::new();
    let mut abort = None;
    let (mut copied, mut bytes) = (0u64, 0u64);
    for (((meta, row, body, _), id), result) in to_write.iter().zip(&identities).zip(results) {
        let result = match result {
            Err(e) if e.class == FailureClass::Ambiguous => {
                // The write may have happened: look before deciding anything.
                match b
                    .sink
                    .find(
                        &b.dest,
                        id,
                        meta.message_id.as_deref(),
                        meta.size,
                        &meta.flags,
                    )
                    .await
                {
                    Ok(found) if !found.is_empty() => Ok(found[0].clone()),
                    _ => Err(e),
                }
            }
            other => other,
        };
        match result {
            Ok(item) => {
                sum.count_dropped(b.sink.dropped_keywords(&meta.flags));
                done.push((row.id, item, meta.flags.clone()));
                copied += 1;
                bytes += body.len();
            }
            Err(e) => {
                let (state, class) = match e.class {
                    FailureClass::Rejected => (MessageState::Skipped, "rejected"),
                    FailureClass::Ambiguous => (MessageState::Sending, "ambiguous"),
                    FailureClass::Transient => (MessageState::Failed, "transient"),
                    // Not this message's fault: it waits for the mailbox to be fixed.
                    FailureClass::Mailbox | FailureClass::Fatal => {
                        (MessageState::Pending, e.class.as_str())
                    }
                };
                b.ledger
                    .mark_state(row.id, state, Some((&e.detail(), class)), b.run)?;
                let outcome = if state == MessageState::Skipped {
                    *sum.skipped.entry(group_key(&e.message)).or_default() += 1;
                    "skipped"
                } else if state == MessageState::Pending {
                    sum.pending += 1;
                    if abort.is_none() {
                        abort = Some(e.clone());
                    }
                    "pending"
                } else {
                    sum.failed += 1;
                    *sum.failures.entry(group_key(&e.message)).or_default() += 1;
                    "failed"
                };
                b.events.send(Event::ItemProblem {
                    mailbox: b.mailbox.clone(),
                    folder: b.folder.raw_name.clone(),
                    folder_name: b.folder.path.to_string(),
                    uid: meta.uid.get(),
                    outcome: outcome.into(),
                    reason: e.detail(),
                });
            }
        }
    }
    b.ledger.mark_done(&done, b.run)?;
    sum.copied += copied;
    sum.copied_bytes += bytes;
    if copied > 0 {
        b.events.send(Event::Copied {
            mailbox: b.mailbox.clone(),
            messages: copied,
            bytes,
        });
    }
    Ok(abort)
}
