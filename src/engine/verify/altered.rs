//! Bytes changed by the destination: `verify --deep` on an IMAP destination reads back each
//! matched item's bytes and compares their SHA-256 with the source's, as the ledger recorded it
//! when the message was copied.
//!
//! Sizes and flags can agree while the bytes do not: Dovecot, for one, stores NUL bytes of an
//! APPENDed message as 0x80, so a copy of the same length differs. Such an item is "altered by the
//! destination", a class of its own: a difference (exit 4) unless the plan says
//! `[verify] accept_altered = true`, when it is reported as a warning and the verdict stands.
//! Graph items carry the source hash in their stamp and are compared there.

use super::{Discrepancy, MailboxVerify};
use crate::engine::adapters::AnySink;
use crate::engine::ports::StepError;
use crate::model::{ContentHash, MessageMeta};

/// The discrepancy kind.
pub const ALTERED: &str = "altered";

/// One source message matched to a destination item, with the hash the source's bytes had.
pub(super) struct Expected {
    pub item_id: String,
    pub source_sha256: ContentHash,
    pub uid: u32,
    pub message_id: Option<String>,
}

impl Expected {
    pub(super) fn new(item_id: &str, source_sha256: ContentHash, m: &MessageMeta) -> Self {
        Expected {
            item_id: item_id.to_owned(),
            source_sha256,
            uid: m.uid.get(),
            message_id: m.message_id.clone(),
        }
    }
}

/// Reads the destination's bytes of `expected` in `dest_folder` (IMAP only; Graph returns
/// without reading) and records each item whose hash differs in `v.altered`.
pub(super) async fn check(
    sink: &AnySink,
    dest_folder: &str,
    source_folder: &str,
    expected: &[Expected],
    v: &mut MailboxVerify,
) -> Result<(), StepError> {
    if expected.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = expected.iter().map(|e| e.item_id.clone()).collect();
    let Some(held) = sink.content_hashes(dest_folder, &ids).await? else {
        return Ok(());
    };
    for e in expected {
        // An item gone since the listing is not this check's to report (the listing found it).
        let Some(h) = held.get(&e.item_id) else {
            continue;
        };
        if *h != e.source_sha256 {
            v.altered.push(Discrepancy {
                folder: source_folder.to_owned(),
                uid: Some(e.uid),
                message_id: e.message_id.clone(),
                kind: ALTERED.into(),
                detail: format!(
                    "altered by the destination: item {} holds bytes with SHA-256 {}, the source's are {}",
                    e.item_id,
                    h.to_hex(),
                    e.source_sha256.to_hex()
                ),
            });
        }
    }
    Ok(())
}

/// The verdict's reason for altered items; `true` when they make the mailbox a difference.
pub(super) fn conclude(v: &mut MailboxVerify, accept: bool) -> bool {
    if v.altered.is_empty() {
        return false;
    }
    let n = v.altered.len();
    if accept {
        v.reasons.push(format!(
            "warning: {n} altered by the destination (bytes differ from the source's; accepted by [verify] accept_altered)"
        ));
        false
    } else {
        v.reasons.push(format!(
            "{n} altered by the destination (bytes differ from the source's; [verify] accept_altered = true accepts this)"
        ));
        true
    }
}
