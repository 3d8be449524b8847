//! Reading the destination back: [`ImapSink::find`] (resolving an ambiguous write without
//! guessing), [`ImapSink::list_items`] (verify, resume), [`ImapSink::set_flags`] (flag sync),
//! [`ImapSink::content_hashes`] (verify --deep: what the destination holds, byte for byte).

use super::ImapSink;
use super::append::select;
use crate::engine::ports::DestItem;
use crate::imap::conn::Conn;
use crate::imap::fetch::uid_set;
use crate::imap::wire::{Command, Response};
use crate::imap::{ErrorKind, ImapError};
use crate::model::{ContentHash, Flags};

impl ImapSink {
    /// Items in `folder` that are this message: same Message-ID and size; for a message without
    /// Message-ID, same size and same SHA-256 of the bytes. Returns every match as
    /// `UIDVALIDITY:UID` (the caller decides what several matches mean).
    pub async fn find(
        &self,
        folder: &str,
        message_id: Option<&str>,
        size: u64,
        sha256: &ContentHash,
    ) -> Result<Vec<String>, ImapError> {
        with_lease!(self, |c| self.find_on(c, folder, message_id, size, sha256))
    }

    pub(super) async fn find_on(
        &self,
        conn: &mut Conn,
        folder: &str,
        message_id: Option<&str>,
        size: u64,
        sha256: &ContentHash,
    ) -> Result<Vec<String>, ImapError> {
        let info = select(conn, folder).await?;
        let validity = info
            .uid_validity
            .ok_or_else(|| ImapError::protocol(conn.ctx("SELECT"), "no UIDVALIDITY"))?;
        let mut search = Command::new("UID SEARCH ");
        match message_id {
            Some(id) => {
                search.text("HEADER Message-ID ").astring(id);
            }
            None => {
                search.text(&format!(
                    "LARGER {} SMALLER {}",
                    size.saturating_sub(1),
                    size + 1
                ));
            }
        }
        let reply = conn
            .run(&search, "UID SEARCH")
            .await
            .map_err(|e| e.in_folder(folder))?;
        let mut candidates: Vec<u32> = Vec::new();
        for r in reply.untagged {
            if let Response::Data { name, args, .. } = r
                && name == "SEARCH"
            {
                candidates.extend(args.iter().filter_map(|v| v.number()).map(|n| n as u32));
            }
        }
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let set = uid_set(&candidates);
        let attrs = match message_id {
            Some(_) => "UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]",
            None => "UID RFC822.SIZE BODY.PEEK[]",
        };
        let outcome = conn
            .uid_fetch(&set, attrs, None, "UID FETCH (find)")
            .await
            .map_err(|e| e.in_folder(folder))?;
        let mut out = Vec::new();
        for (uid, item) in outcome.items {
            if item.size != Some(size) {
                continue;
            }
            let same = match message_id {
                // SEARCH HEADER matches substrings: compare the whole value.
                Some(id) => {
                    item.header
                        .as_deref()
                        .and_then(crate::header::message_id)
                        .as_deref()
                        == Some(id)
                }
                None => item.body.flatten().is_some_and(|b| b.sha256() == *sha256),
            };
            if same {
                out.push(format!("{validity}:{uid}"));
            }
        }
        Ok(out)
    }

    /// Every item of a folder: id, size, flags, INTERNALDATE, Message-ID. The count is checked
    /// against EXISTS.
    pub async fn list_items(&self, folder: &str) -> Result<Vec<DestItem>, ImapError> {
        with_lease!(self, |c| list_on(c, folder))
    }

    /// Replaces an item's flags (`UID STORE ... FLAGS.SILENT`), with `UNCHANGEDSINCE` when given
    /// and CONDSTORE is offered. Fails if the folder's UIDVALIDITY no longer matches the id, or
    /// (code `MODIFIED`) if the item changed since `unchanged_since`.
    pub async fn set_flags(
        &self,
        folder: &str,
        item_id: &str,
        flags: &Flags,
        unchanged_since: Option<u64>,
    ) -> Result<(), ImapError> {
        with_lease!(self, |c| self.store_on(
            c,
            folder,
            item_id,
            flags,
            unchanged_since
        ))
    }

    async fn store_on(
        &self,
        conn: &mut Conn,
        folder: &str,
        item_id: &str,
        flags: &Flags,
        unchanged_since: Option<u64>,
    ) -> Result<(), ImapError> {
        let parsed = item_id
            .split_once(':')
            .and_then(|(v, u)| Some((v.parse::<u32>().ok()?, u.parse::<u32>().ok()?)));
        let Some((validity, uid)) = parsed else {
            return Err(ImapError::policy(
                conn.ctx("UID STORE"),
                format!("{item_id:?} is not an IMAP item id (UIDVALIDITY:UID)"),
            )
            .in_folder(folder));
        };
        let info = select(conn, folder).await?;
        if info.uid_validity != Some(validity) {
            return Err(ImapError::protocol(
                conn.ctx("UID STORE"),
                format!(
                    "UIDVALIDITY is now {:?}, the item id {item_id} is stale",
                    info.uid_validity
                ),
            )
            .in_folder(folder));
        }
        let atoms = self.flag_list(flags, &info);
        let modifier = match unchanged_since {
            Some(m) if self.caps.condstore() => format!(" (UNCHANGEDSINCE {m})"),
            _ => String::new(),
        };
        let cmd = Command::new(&format!("UID STORE {uid}{modifier} FLAGS.SILENT ({atoms})"));
        let done = conn
            .run(&cmd, "UID STORE")
            .await
            .map_err(|e| e.in_folder(folder))?
            .done;
        if done.code_name() == Some("MODIFIED") {
            return Err(ImapError::new(
                conn.ctx("UID STORE"),
                ErrorKind::No {
                    code: done.code_string(),
                    text: "the item changed since the given MODSEQ".into(),
                },
            )
            .in_folder(folder));
        }
        Ok(())
    }
}

/// UIDs per `UID FETCH BODY.PEEK[]` of [`ImapSink::content_hashes`]: bodies under the spool
/// threshold are held in memory until their batch is hashed, so a batch stays small.
const HASH_BATCH: usize = 16;

impl ImapSink {
    /// The SHA-256 of each given item's bytes as the destination holds them (`UID FETCH
    /// BODY.PEEK[]` in small batches; a large body is spooled and hashed as it is read, and each
    /// batch's bodies are dropped once hashed). Items are `UIDVALIDITY:UID` ids; ones the folder no
    /// longer holds, or of another UIDVALIDITY, are absent from the answer.
    pub async fn content_hashes(
        &self,
        folder: &str,
        item_ids: &[String],
    ) -> Result<std::collections::HashMap<String, ContentHash>, ImapError> {
        with_lease!(self, |c| hashes_on(c, folder, item_ids))
    }
}

async fn hashes_on(
    conn: &mut Conn,
    folder: &str,
    item_ids: &[String],
) -> Result<std::collections::HashMap<String, ContentHash>, ImapError> {
    let info = select(conn, folder).await?;
    let mut out = std::collections::HashMap::new();
    let Some(validity) = info.uid_validity else {
        return Ok(out);
    };
    let uids: Vec<u32> = item_ids
        .iter()
        .filter_map(|id| {
            let (v, u) = id.split_once(':')?;
            (v.parse::<u32>().ok()? == validity).then(|| u.parse::<u32>().ok())?
        })
        .collect();
    for batch in uids.chunks(HASH_BATCH) {
        let outcome = conn
            .uid_fetch(
                &uid_set(batch),
                "UID BODY.PEEK[]",
                None,
                "UID FETCH BODY.PEEK[] (verify)",
            )
            .await
            .map_err(|e| e.in_folder(folder))?;
        for (uid, item) in outcome.items {
            if let Some(body) = item.body.flatten() {
                out.insert(format!("{validity}:{uid}"), body.sha256());
            }
        }
    }
    Ok(out)
}

/// LIST of one folder's items on a connection (see [`ImapSink::list_items`]).
async fn list_on(conn: &mut Conn, folder: &str) -> Result<Vec<DestItem>, ImapError> {
    let info = select(conn, folder).await?;
    let validity = info
        .uid_validity
        .ok_or_else(|| ImapError::protocol(conn.ctx("SELECT"), "no UIDVALIDITY"))?;
    let outcome = conn
        .uid_fetch(
            "1:*",
            "UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]",
            None,
            "UID FETCH 1:* (list)",
        )
        .await
        .map_err(|e| e.in_folder(folder))?;
    let exists = outcome
        .exists
        .unwrap_or(info.exists)
        .saturating_sub(outcome.expunged);
    let mut out = Vec::with_capacity(outcome.items.len());
    for item in outcome.items.into_values() {
        let meta = item
            .into_meta()
            .map_err(|detail| ImapError::protocol(conn.ctx("UID FETCH 1:* (list)"), detail))?;
        out.push(DestItem {
            id: format!("{validity}:{}", meta.uid),
            stamp: None,
            message_id: meta.message_id,
            size: Some(meta.size),
            flags: meta.flags,
            received: Some(meta.internal_date),
        });
    }
    if out.len() != exists as usize {
        return Err(ImapError::protocol(
            conn.ctx("UID FETCH 1:* (list)"),
            format!("listed {} items but EXISTS is {exists}", out.len()),
        )
        .in_folder(folder));
    }
    Ok(out)
}
