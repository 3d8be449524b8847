//! `migrate --repair`: the ledger's `done` rows checked against what the destination holds now.
//! A row whose item is gone (deleted by a user, lost in a restore, a folder wiped) goes back to
//! `pending`, and the same folder pass copies it again.
//!
//! An item counts as present when the destination lists its recorded id, or (Graph) an item
//! carrying the row's identity stamp, whose new id is then recorded. Only rows proven absent
//! from a complete listing are returned to pending, so a repair never makes a second copy of
//! something that is there.

use std::collections::{HashMap, HashSet};

use super::MailboxCtx;
use super::ports::{MailSink, StepError};
use crate::engine::ports::{DestItem, FailureClass};
use crate::ledger::{MessageRow, MessageState};
use crate::model::{SourceFolder, Uid};
use crate::report::MailboxSummary;

/// Re-checks the folder's `done` rows (of the current UIDVALIDITY) against the destination
/// folder `dest`; rows whose item is gone become `pending` in the ledger and in `rows`.
pub(crate) async fn recheck_done<K: MailSink>(
    ctx: &MailboxCtx<K>,
    folder: &SourceFolder,
    dest: &str,
    rows: &mut HashMap<Uid, MessageRow>,
    sum: &mut MailboxSummary,
) -> Result<(), StepError> {
    let lerr = |e: crate::ledger::LedgerError| StepError::new(FailureClass::Fatal, e.to_string());
    let items: Vec<DestItem> = ctx.sink.list_items(dest).await?;
    let ids: HashSet<&str> = items.iter().map(|i| i.id.as_str()).collect();
    let by_stamp: HashMap<(u32, u32), &str> = items
        .iter()
        .filter_map(|i| {
            let s = i.stamp.as_ref()?;
            (s.folder == folder.raw_name)
                .then_some(((s.uid_validity.get(), s.uid.get()), i.id.as_str()))
        })
        .collect();
    let mut taken: HashSet<&str> = HashSet::new();
    for row in rows
        .values_mut()
        .filter(|r| r.state == MessageState::Done && !r.source_gone)
    {
        if let Some(id) = row.dest_id.as_deref().filter(|id| ids.contains(id)) {
            if let Some(id) = items.iter().map(|i| i.id.as_str()).find(|i| *i == id) {
                taken.insert(id);
            }
            continue;
        }
        let stamped = by_stamp
            .get(&(row.uid_validity.get(), row.uid.get()))
            .copied()
            .filter(|id| !taken.contains(id));
        if let Some(id) = stamped {
            // There under another id (Graph gives a moved item a new one): record it.
            taken.insert(id);
            ctx.ledger
                .mark_done(&[(row.id, id.to_owned(), row.flags.clone())], ctx.run)
                .map_err(lerr)?;
            row.dest_id = Some(id.to_owned());
            continue;
        }
        ctx.ledger
            .mark_state(row.id, MessageState::Pending, None, ctx.run)
            .map_err(lerr)?;
        row.state = MessageState::Pending;
        row.dest_id = None;
        sum.repaired += 1;
    }
    if sum.repaired > 0 {
        tracing::info!(
            mailbox = %ctx.mailbox_key,
            folder = %folder.raw_name,
            missing = sum.repaired,
            "repair: recorded as copied but not at the destination; copying again"
        );
    }
    Ok(())
}
