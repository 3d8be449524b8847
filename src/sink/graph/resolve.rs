//! Resolving a write that may or may not have reached Exchange: a crash or a lost response can
//! fall between the importMime create and the PATCH that stamps the item, leaving an unstamped
//! copy that a stamp lookup cannot see. Resolution looks by stamp first; then among the folder's
//! unstamped items, by Message-ID when the message has one (else all of them), comparing the
//! SHA-256 of each candidate's MIME with the source's. A match found unstamped is stamped (and its
//! flags set) now, which completes the interrupted write instead of repeating it.

use crate::model::{Flags, SourceIdentity};

use super::flags::patch_body;
use super::lookup::{by_message_id_raw, find_by_stamp, list_raw, mime_of, patch_message};
use super::{GraphError, GraphMailbox};

/// The ids of the items that are this message (empty: it was never written).
pub(crate) async fn resolve(
    mb: &GraphMailbox,
    folder_id: &str,
    identity: &SourceIdentity,
    message_id: Option<&str>,
    flags: &Flags,
) -> Result<Vec<String>, GraphError> {
    let stamped = find_by_stamp(mb, folder_id, identity).await?;
    if !stamped.is_empty() {
        return Ok(stamped);
    }
    let candidates = match message_id {
        Some(mid) => by_message_id_raw(mb, folder_id, mid).await?,
        None => list_raw(mb, folder_id).await?,
    };
    for c in candidates.iter().filter(|c| c.stamp.is_none()) {
        let Some(id) = c.id() else { continue };
        let mime = mime_of(mb, id).await?;
        if super::received::is_copy_of(&mime, &identity.sha256) {
            let patch = patch_body(flags, Some(&identity.to_stamp()));
            patch_message(mb, id, &patch, "stamp a resolved item").await?;
            tracing::info!(mailbox = %mb.user, item = %id, "unstamped item of an interrupted write found by content and stamped");
            return Ok(vec![id.to_owned()]);
        }
    }
    Ok(Vec::new())
}

/// Every item in the folder that is this message, stamped or not, changing nothing (for the
/// engine's check for orphaned copies after a crash).
pub(crate) async fn copies(
    mb: &GraphMailbox,
    folder_id: &str,
    identity: &SourceIdentity,
    message_id: Option<&str>,
) -> Result<Vec<String>, GraphError> {
    let mut out = find_by_stamp(mb, folder_id, identity).await?;
    let candidates = match message_id {
        Some(mid) => by_message_id_raw(mb, folder_id, mid).await?,
        None => list_raw(mb, folder_id).await?,
    };
    for c in candidates.iter().filter(|c| c.stamp.is_none()) {
        let Some(id) = c.id() else { continue };
        if super::received::is_copy_of(&mime_of(mb, id).await?, &identity.sha256) {
            out.push(id.to_owned());
        }
    }
    Ok(out)
}
