//! `mailferry verify`: did everything arrive, once? Per folder it compares the source, the
//! ledger and the destination. With `deep`, every source message is matched to exactly one
//! destination item by identity (the Graph stamp, or the IMAP UID the APPEND returned, checked by
//! size) and flags and dates are compared; items found twice are listed as doubled. On an IMAP
//! destination the bytes are read back and hashed ([`altered`]).
//!
//! Without the ledger's identities (a mailbox migrated by another tool), it compares what it can
//! (counts and Message-IDs) and says so in the verdict.

mod altered;
mod extras;
mod independent;

use std::collections::{HashMap, HashSet};

use futures::StreamExt;
use serde::Serialize;

use super::connect::Connector;
use super::mailbox::target_label;
use super::ports::{MailSink, MailSource, StepError};
use crate::engine::ports::DestItem;
use crate::ledger::{Ledger, MessageState};
use crate::model::{MessageMeta, SourceFolder};
use crate::plan::{Mailbox, Plan};

/// The discrepancy kind of a message a pass listed and left pending (outside a date window).
pub const NOT_YET: &str = "not-yet-copied";

/// One message that is not as it should be.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Discrepancy {
    pub folder: String,
    pub uid: Option<u32>,
    pub message_id: Option<String>,
    /// `missing`, `not-yet-copied`, `doubled`, `extra`, `changed`, `altered`, `unexpected`.
    pub kind: String,
    pub detail: String,
}

/// One folder's comparison.
#[derive(Debug, Clone, Serialize, Default)]
pub struct FolderVerify {
    pub source: String,
    pub target: String,
    pub source_count: u64,
    pub source_bytes: u64,
    pub ledger_done: u64,
    pub ledger_done_bytes: u64,
    pub ledger_skipped: u64,
    pub destination_count: u64,
}

/// One mailbox's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct MailboxVerify {
    pub mailbox: String,
    pub destination: String,
    /// `perfect`, `investigate` or `failed` (could not compare).
    pub verdict: String,
    pub reasons: Vec<String>,
    pub deep: bool,
    pub folders: Vec<FolderVerify>,
    pub missing: Vec<Discrepancy>,
    pub doubled: Vec<Discrepancy>,
    pub changed: Vec<Discrepancy>,
    /// Items whose bytes at the destination differ from the source's (`verify --deep`, IMAP
    /// destinations): "altered by the destination".
    pub altered: Vec<Discrepancy>,
    /// Where every item of the source went (`null` when the source could not be read).
    pub accounting: Option<crate::source::accounting::SourceAccounting>,
}

/// The plan's verification.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub mailboxes: Vec<MailboxVerify>,
    pub perfect: bool,
}

/// Verifies the selected mailboxes.
pub async fn verify(
    plan: &Plan,
    ledger: Option<&Ledger>,
    mailboxes: &[&Mailbox],
    deep: bool,
    concurrency: usize,
) -> VerifyReport {
    // verify beside migrate: the same mailbox's Retry-After deadlines, read from and written to
    // the ledger (a handle of its own: the caller lends only a reference).
    let deadlines = ledger.and_then(|l| l.reopen().ok());
    let connector = match deadlines {
        Some(l) => Connector::new(plan).with_deadlines(std::sync::Arc::new(l)),
        None => Connector::new(plan),
    };
    let mut out: Vec<MailboxVerify> = futures::stream::iter(mailboxes)
        .map(|mb| verify_mailbox(&connector, ledger, mb, deep, plan.verify.accept_altered))
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    out.sort_by(|a, b| a.mailbox.cmp(&b.mailbox));
    let perfect = out.iter().all(|m| m.verdict == "perfect");
    VerifyReport {
        mailboxes: out,
        perfect,
    }
}

async fn verify_mailbox(
    connector: &Connector<'_>,
    ledger: Option<&Ledger>,
    mb: &Mailbox,
    deep: bool,
    accept_altered: bool,
) -> MailboxVerify {
    let mut v = MailboxVerify {
        mailbox: mb.key.clone(),
        destination: mb.destination.clone(),
        verdict: "perfect".into(),
        reasons: Vec::new(),
        deep,
        folders: Vec::new(),
        missing: Vec::new(),
        doubled: Vec::new(),
        changed: Vec::new(),
        altered: Vec::new(),
        accounting: None,
    };
    let _permit = connector.host_permit(mb).await;
    let result = async {
        let (mut src, sink, mapper) = connector.open(mb).await?;
        let folders = src.list_folders().await?;
        let mailbox_id = match ledger {
            Some(l) => l.find_mailbox(&mb.key).ok().flatten(),
            None => None,
        };
        if mailbox_id.is_none() {
            v.reasons.push(
                "no ledger record for this mailbox: compared counts and Message-IDs only".into(),
            );
        }
        let mappings = mapper.map(&folders);
        let accounting = src.accounting(&mappings).await?;
        if !accounting.unaccounted.is_empty() {
            v.reasons.push(format!(
                "source accounting: {} items not accounted for (first: {} - {})",
                accounting.unaccounted.len(),
                accounting.unaccounted[0].what,
                accounting.unaccounted[0].reason
            ));
        }
        v.accounting = Some(accounting);
        let mut seen: Vec<independent::Seen> = Vec::new();
        let mut listed: Vec<(SourceFolder, u64)> = Vec::new();
        for mapping in mappings {
            let Some(target) = &mapping.target else {
                continue;
            };
            if !mapping.source.selectable {
                continue;
            }
            let dest: String = sink.ensure_folder(target).await?;
            // The destination's own name where it has one to show (an IMAP server's folder;
            // Graph answers with an id, so its well-known-name form is shown instead).
            let label = match &sink {
                super::adapters::AnySink::Imap(_) => {
                    crate::utf7::decode(&dest).unwrap_or_else(|_| dest.clone())
                }
                super::adapters::AnySink::Graph(_) => target_label(target),
            };
            let status = src.select(&mapping.source).await?;
            let metas: Vec<MessageMeta> = src.fetch_meta(&mapping.source, None).await?;
            let items: Vec<DestItem> = sink.list_items(&dest).await?;
            // What the destination promises about received times (verify_dates).
            let dates = super::verify_dates::DateRule::for_sink(&sink);
            let ctx = FolderCtx {
                ledger,
                mailbox_id,
                folder: &mapping.source,
                label,
                deep,
                dates,
                uid_validity: status.uid_validity,
            };
            let mut expected = Vec::new();
            compare_folder(&ctx, &metas, &items, &mut v, &mut expected)?;
            altered::check(&sink, &dest, &mapping.source.raw_name, &expected, &mut v).await?;
            listed.push((mapping.source.clone(), metas.len() as u64));
            seen.push(independent::Seen {
                raw_name: mapping.source.raw_name.clone(),
                target: target_label(target),
                destination_count: items.len() as u64,
                ledger_skipped: v.folders.last().map_or(0, |f| f.ledger_skipped),
            });
        }
        if deep {
            match &mut src {
                super::adapters::AnySource::Maildir(m) => {
                    let counts = m.independent_counts().map_err(|e| {
                        StepError::new(crate::engine::ports::FailureClass::Transient, e.to_string())
                    })?;
                    let on_disk = independent::maildir_counts(&counts);
                    v.reasons
                        .extend(independent::compare(&on_disk, "message files on disk", &seen));
                }
                super::adapters::AnySource::Imap(i) => {
                    let mut by_status = HashMap::new();
                    for (folder, listed) in &listed {
                        let n = i
                            .status_messages(folder)
                            .await
                            .map_err(|e| {
                                StepError::new(crate::engine::ports::FailureClass::Transient, e.to_string())
                            })?
                            .unwrap_or(*listed);
                        if n != *listed {
                            v.reasons.push(format!(
                                "independent count: STATUS reports {n} messages in {}, the reader listed {listed}",
                                folder.raw_name
                            ));
                        }
                        by_status.insert(folder.raw_name.clone(), n);
                    }
                    v.reasons.extend(independent::compare(
                        &by_status,
                        "messages by STATUS",
                        &seen,
                    ));
                }
            }
        }
        src.close().await;
        Ok::<(), StepError>(())
    }
    .await;
    if let Err(e) = result {
        v.verdict = "failed".into();
        v.reasons.push(e.detail());
        return v;
    }
    let not_yet = v.missing.iter().filter(|d| d.kind == NOT_YET).count();
    if v.missing.len() > not_yet {
        v.reasons.push(format!(
            "{} missing at the destination",
            v.missing.len() - not_yet
        ));
    }
    if not_yet > 0 {
        v.reasons.push(format!(
            "{not_yet} not yet copied (pending in the ledger: outside --since/--before, or not reached yet)"
        ));
    }
    if !v.doubled.is_empty() {
        v.reasons
            .push(format!("{} doubled at the destination", v.doubled.len()));
    }
    if !v.changed.is_empty() {
        v.reasons
            .push(format!("{} with different flags or dates", v.changed.len()));
    }
    for f in &v.folders {
        if f.source_count != f.ledger_done + f.ledger_skipped && mailbox_id_known(&v) {
            v.reasons.push(format!(
                "folder {:?}: {} at the source, {} done + {} skipped in the ledger",
                f.source, f.source_count, f.ledger_done, f.ledger_skipped
            ));
        }
    }
    let altered = altered::conclude(&mut v, accept_altered);
    if altered
        || !(v.missing.is_empty() && v.doubled.is_empty() && v.changed.is_empty())
        || v.reasons.iter().any(|r| {
            r.starts_with("folder ")
                || r.starts_with("independent count")
                || r.starts_with("source accounting")
        })
    {
        v.verdict = "investigate".into();
    }
    v
}

fn mailbox_id_known(v: &MailboxVerify) -> bool {
    !v.reasons.iter().any(|r| r.starts_with("no ledger record"))
}

struct FolderCtx<'a> {
    ledger: Option<&'a Ledger>,
    mailbox_id: Option<i64>,
    folder: &'a SourceFolder,
    label: String,
    deep: bool,
    dates: super::verify_dates::DateRule,
    /// The source's UIDVALIDITY now: the ledger's rows under it are the ones that count (the
    /// folder row records one only after a complete pass, so a windowed pass leaves none).
    uid_validity: crate::model::UidValidity,
}

fn compare_folder(
    ctx: &FolderCtx<'_>,
    metas: &[MessageMeta],
    items: &[DestItem],
    v: &mut MailboxVerify,
    expected: &mut Vec<altered::Expected>,
) -> Result<(), StepError> {
    let lerr = |e: crate::ledger::LedgerError| {
        StepError::new(crate::engine::ports::FailureClass::Fatal, e.to_string())
    };
    let mut f = FolderVerify {
        source: ctx.folder.path.to_string(),
        target: ctx.label.clone(),
        source_count: metas.len() as u64,
        source_bytes: metas.iter().map(|m| m.size).sum(),
        destination_count: items.len() as u64,
        ..Default::default()
    };
    let disc = |m: &MessageMeta, kind: &str, detail: String| Discrepancy {
        folder: ctx.folder.raw_name.clone(),
        uid: Some(m.uid.get()),
        message_id: m.message_id.clone(),
        kind: kind.into(),
        detail,
    };
    let rows = match (ctx.ledger, ctx.mailbox_id) {
        (Some(l), Some(mb)) => match l.find_folder(mb, &ctx.folder.raw_name).map_err(lerr)? {
            Some(frow) => {
                let now = l.folder_messages(frow.id, ctx.uid_validity).map_err(lerr)?;
                match frow.uid_validity {
                    // The source renumbered since the last complete pass (the next migrate
                    // re-matches by content): the last pass's rows are what was copied.
                    Some(uv) if now.is_empty() && uv != ctx.uid_validity => {
                        l.folder_messages(frow.id, uv).map_err(lerr)?
                    }
                    _ => now,
                }
            }
            // Never passed: nothing recorded (verify reads the ledger, it never writes it).
            None => HashMap::new(),
        },
        _ => HashMap::new(),
    };
    for r in rows.values().filter(|r| !r.source_gone) {
        match r.state {
            MessageState::Done => {
                f.ledger_done += 1;
                f.ledger_done_bytes += r.size;
            }
            MessageState::Skipped => f.ledger_skipped += 1,
            _ => {}
        }
    }

    if ctx.mailbox_id.is_none() {
        // Another tool's migration: Message-IDs and counts are all there is.
        let mut dest_ids: HashMap<&str, u64> = HashMap::new();
        for i in items {
            if let Some(id) = i.message_id.as_deref() {
                *dest_ids.entry(id).or_default() += 1;
            }
        }
        for m in metas {
            if let Some(id) = m.message_id.as_deref() {
                match dest_ids.get_mut(id) {
                    Some(n) if *n > 0 => *n -= 1,
                    _ => v
                        .missing
                        .push(disc(m, "missing", "no item with this Message-ID".into())),
                }
            }
        }
        if items.len() < metas.len() {
            v.reasons.push(format!(
                "folder {:?}: {} at the source, {} at the destination",
                f.source,
                metas.len(),
                items.len()
            ));
        }
        v.folders.push(f);
        return Ok(());
    }

    // Index destination items by id and by stamp.
    let by_id: HashMap<&str, &DestItem> = items.iter().map(|i| (i.id.as_str(), i)).collect();
    let mut by_stamp: HashMap<(u32, u32), Vec<&DestItem>> = HashMap::new();
    for i in items {
        if let Some(s) = &i.stamp {
            by_stamp
                .entry((s.uid_validity.get(), s.uid.get()))
                .or_default()
                .push(i);
        }
    }
    let mut claimed: HashSet<&str> = HashSet::new();
    let mut dates_off = 0u64;
    for m in metas {
        let row = rows.get(&m.uid);
        if row.is_some_and(|r| r.state == MessageState::Skipped) {
            continue;
        }
        let Some(row) = row.filter(|r| r.state == MessageState::Done) else {
            // A row still pending was listed by a pass that left it for later: a windowed
            // pre-staging pass (`--since`/`--before`) or an interrupted one. Not lost.
            if row.is_some_and(|r| r.state == MessageState::Pending) {
                v.missing.push(disc(
                    m,
                    NOT_YET,
                    "not yet copied (outside the --since/--before window of the passes so far, or not reached yet)".into(),
                ));
            } else {
                v.missing.push(disc(
                    m,
                    "missing",
                    "not yet copied (no done row in the ledger)".into(),
                ));
            }
            continue;
        };
        let stamped = by_stamp.get(&(row.uid_validity.get(), row.uid.get()));
        let item = match (stamped, row.dest_id.as_deref().and_then(|d| by_id.get(d))) {
            (Some(list), _) if list.len() > 1 => {
                v.doubled.push(disc(
                    m,
                    "doubled",
                    format!("{} items carry this message's stamp", list.len()),
                ));
                claimed.extend(list.iter().map(|i| i.id.as_str()));
                list.first().copied()
            }
            (Some(list), _) => list.first().copied(),
            (None, Some(i)) => Some(*i),
            (None, None) => None,
        };
        let Some(item) = item else {
            v.missing.push(disc(
                m,
                "missing",
                match row.dest_id.as_deref() {
                    Some(id) => format!("destination item {id} not found"),
                    None => "no destination item recorded".to_owned(),
                },
            ));
            continue;
        };
        claimed.insert(item.id.as_str());
        if ctx.deep {
            // IMAP items carry no stamp: their bytes are read back and hashed after the listing
            // (`altered::check`, which leaves Graph items to their stamps).
            if let (None, Some(h)) = (&item.stamp, row.sha256) {
                expected.push(altered::Expected::new(&item.id, h, m));
            }
            if let (Some(s), Some(h)) = (&item.stamp, row.sha256)
                && s.sha256 != h
            {
                v.changed.push(disc(
                    m,
                    "changed",
                    "content hash differs from the stamp".into(),
                ));
            }
            if let Some(size) = item.size
                && size != m.size
            {
                v.changed.push(disc(
                    m,
                    "changed",
                    format!("size {} at the destination, {} at the source", size, m.size),
                ));
            }
            if !flags_match(&m.flags, &item.flags) {
                v.changed.push(disc(
                    m,
                    "changed",
                    format!(
                        "flags {:?} at the destination, {:?} at the source",
                        item.flags.to_ledger_string(),
                        m.flags.to_ledger_string()
                    ),
                ));
            }
            if let Some(r) = item.received
                && ctx.dates.differs(m.internal_date, r)
                && let super::verify_dates::DateRule::NotPromised(_) = ctx.dates
            {
                dates_off += 1;
            } else if let Some(r) = item.received
                && ctx.dates.differs(m.internal_date, r)
            {
                v.changed.push(disc(
                    m,
                    "changed",
                    format!(
                        "received {} at the destination, {} at the source",
                        r.to_rfc3339(),
                        m.internal_date.to_rfc3339()
                    ),
                ));
            }
        }
    }
    if dates_off > 0 {
        v.reasons
            .push(ctx.dates.note(&ctx.folder.raw_name, dates_off));
    }
    if ctx.deep {
        // Items at the destination that carry a stamp of this folder but were not claimed: a
        // second copy of something.
        // Without stamps (IMAP), an unclaimed item with a source message's Message-ID and size is
        // a second copy too.
        let source_keys = extras::SourceKeys::new(metas);
        for i in items.iter().filter(|i| !claimed.contains(i.id.as_str())) {
            let stamped_here = i
                .stamp
                .as_ref()
                .is_some_and(|s| s.folder == ctx.folder.raw_name);
            let same_as_source = source_keys.same_as_source(i);
            if stamped_here || same_as_source {
                v.doubled.push(Discrepancy {
                    folder: ctx.folder.raw_name.clone(),
                    uid: i.stamp.as_ref().map(|s| s.uid.get()),
                    message_id: i.message_id.clone(),
                    kind: "doubled".into(),
                    detail: extras::extra_detail(&i.id),
                });
            }
        }
    }
    extras::count_check(&ctx.folder.raw_name, metas.len(), items, &claimed, v);
    v.folders.push(f);
    Ok(())
}

/// Flags compare on what both sides can hold: \Seen, \Flagged, \Answered; keywords when the
/// destination reports any.
fn flags_match(src: &crate::model::Flags, dst: &crate::model::Flags) -> bool {
    src.seen == dst.seen && src.flagged == dst.flagged && src.answered == dst.answered
}
