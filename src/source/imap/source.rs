//! [`ImapSource`]: the read side. Lists folders, reads metadata and bodies, and survives a dropped
//! connection by reconnecting, re-selecting and retrying the interrupted read once (every read
//! here is idempotent). Every answer is checked: UIDVALIDITY must be present and stable, a full
//! metadata listing must return exactly EXISTS messages, each body must have its RFC822.SIZE.

use std::collections::HashMap;
use std::time::Duration;

use crate::body::Body;
use crate::imap::ImapError;
use crate::imap::conn::Conn;
use crate::imap::fetch::{FetchItem, uid_set};
use crate::imap::ops::{FetchOutcome, SelectInfo};
use crate::imap::{Capabilities, ImapAuth, ImapEndpoint};
use crate::model::{
    FolderPath, FolderStatus, MessageMeta, SourceFolder, SpecialUse, Uid, UidValidity,
};

/// Runs `$body` (an expression using `$c: &mut Conn`) on a live connection with `$folder`
/// selected (when given). If the connection drops, reconnects, re-selects (checking UIDVALIDITY
/// did not change) and runs it once more, as [`ImapSource::give_up`] decides.
macro_rules! with_conn {
    ($self:ident, $folder:expr, |$c:ident| $body:expr) => {{
        let folder: Option<&SourceFolder> = $folder;
        crate::imap::reconnect::with_reconnect!($self.ready(folder), |$c| $body, |e, attempt| {
            $self.give_up(folder, e, attempt)
        })
    }};
}

/// UIDs spanned by one metadata FETCH, so a huge folder is listed in bounded replies.
const META_PAGE_UIDS: u32 = 20_000;
/// Folders whose EXAMINE + FETCH are on the wire ahead of the one being read.
const PIPELINE_FOLDERS: usize = 16;
/// UIDs per body FETCH command (the caller bounds the bytes by the set it passes).
const BODY_CHUNK: usize = 200;
const META_ATTRS: &str = "UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]";

/// A read-only IMAP session on one mailbox. See the module docs.
#[derive(Debug)]
pub struct ImapSource {
    endpoint: ImapEndpoint,
    auth: ImapAuth,
    conn: Option<Conn>,
    caps: Capabilities,
    /// UIDVALIDITY seen per folder (raw name), to detect a change across reconnects.
    validity: HashMap<String, u32>,
    /// The state the last `select` returned, while no other command has run since: a
    /// `fetch_meta` right after it uses this instead of a second EXAMINE (one round trip less
    /// per folder on every pass).
    fresh: Option<(String, FolderStatus)>,
    /// UIDs per metadata FETCH ([`META_PAGE_UIDS`] unless a test makes pages small).
    meta_page: u32,
    /// The row's `UserRoot`: only that subtree is listed (shared-namespace servers).
    user_root: Option<super::UserRoot>,
}

impl ImapSource {
    /// Connects and logs in.
    pub async fn connect(endpoint: ImapEndpoint, auth: ImapAuth) -> Result<ImapSource, ImapError> {
        let conn = Conn::connect(&endpoint, &auth).await?;
        let caps = conn.caps.clone();
        Ok(ImapSource {
            endpoint,
            auth,
            conn: Some(conn),
            caps,
            validity: HashMap::new(),
            fresh: None,
            meta_page: META_PAGE_UIDS,
            user_root: None,
        })
    }

    /// Reads only the folders under `root` from now on, the root being the INBOX (see
    /// [`super::user_root`]).
    pub fn set_user_root(&mut self, root: super::UserRoot) {
        self.user_root = Some(root);
    }

    /// Raw names of the subscribed folders (`LSUB "" "*"`), outside the user root left out.
    pub async fn subscribed(&mut self) -> Result<std::collections::HashSet<String>, ImapError> {
        self.fresh = None;
        with_conn!(self, None, |c| c.lsub("*"))
    }

    /// Lists metadata in pages of `uids` UIDs instead of 20,000 (tests use this to exercise
    /// paging without loading 20,000 messages).
    #[doc(hidden)]
    pub fn set_meta_page(&mut self, uids: u32) {
        self.meta_page = uids.max(1);
    }

    /// The capabilities announced after login.
    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    /// Every folder (`LIST "" "*"`), with decoded paths, raw names kept, special-use attributes
    /// mapped and INBOX marked [`SpecialUse::Inbox`].
    pub async fn list_folders(&mut self) -> Result<Vec<SourceFolder>, ImapError> {
        self.fresh = None;
        let entries = with_conn!(self, None, |c| c.list("*"))?;
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let is_inbox = e.raw_name.eq_ignore_ascii_case("INBOX");
            // An 8-bit name keeps its bytes in `raw_name`; its path shows them as U+FFFD.
            let shown = crate::imap::names::for_display(&e.raw_name);
            let decoded = match crate::utf7::decode(&shown) {
                Ok(d) => d,
                Err(err) => {
                    tracing::warn!(folder = %shown, "folder name is not modified UTF-7 ({err}); using it as is");
                    shown.into_owned()
                }
            };
            let Some(path) = (if is_inbox {
                FolderPath::new(vec!["INBOX".into()])
            } else {
                FolderPath::parse(&decoded, e.delimiter)
            }) else {
                tracing::warn!(folder = %e.raw_name, "skipping a folder with an empty name");
                continue;
            };
            let attr = |name: &str| e.attributes.iter().any(|a| a.eq_ignore_ascii_case(name));
            let special_use = if is_inbox {
                Some(SpecialUse::Inbox)
            } else {
                e.attributes
                    .iter()
                    .find_map(|a| SpecialUse::from_attribute(a))
            };
            out.push(SourceFolder {
                raw_name: e.raw_name.clone(),
                path,
                delimiter: e.delimiter,
                special_use,
                selectable: !attr("\\Noselect") && !attr("\\NonExistent"),
            });
        }
        Ok(match &self.user_root {
            Some(root) => root.scope(out),
            None => out,
        })
    }

    /// The personal namespace's prefix and delimiter, when the server offers NAMESPACE.
    pub async fn namespace(&mut self) -> Result<Option<(String, Option<char>)>, ImapError> {
        self.fresh = None;
        with_conn!(self, None, |c| c.namespace())
    }

    /// EXAMINEs a folder (read-only) and reports its state; UIDVALIDITY is required.
    pub async fn select(&mut self, folder: &SourceFolder) -> Result<FolderStatus, ImapError> {
        let raw = folder.raw_name.clone();
        let info =
            with_conn!(self, None, |c| c.select_raw(&raw, true)).map_err(|e| e.in_folder(&raw))?;
        let status = self.folder_status(&raw, &info)?;
        self.fresh = Some((raw, status.clone()));
        Ok(status)
    }

    /// The folder's message count from `STATUS (MESSAGES)`: a count independent of the
    /// EXAMINE/FETCH listing, which `verify --deep` compares with it.
    pub async fn status_messages(
        &mut self,
        folder: &SourceFolder,
    ) -> Result<Option<u64>, ImapError> {
        self.fresh = None;
        let raw = folder.raw_name.clone();
        let status = with_conn!(self, None, |c| c.status(&raw, "MESSAGES"))
            .map_err(|e| e.in_folder(&raw))?;
        Ok(status.get("MESSAGES").copied())
    }

    /// The folder's total size from `STATUS (SIZE)` when the server offers STATUS=SIZE.
    pub async fn status_size(&mut self, folder: &SourceFolder) -> Result<Option<u64>, ImapError> {
        self.fresh = None;
        if !self.caps.status_size() {
            return Ok(None);
        }
        let raw = folder.raw_name.clone();
        let status =
            with_conn!(self, None, |c| c.status(&raw, "SIZE")).map_err(|e| e.in_folder(&raw))?;
        Ok(status.get("SIZE").copied())
    }

    /// Metadata of every message (or, with `changed_since`, of those whose MODSEQ is greater),
    /// in UID order. A full listing must return exactly as many messages as EXISTS; if it does
    /// not (a message arrived or left meanwhile) the listing is redone once, then it is an error.
    pub async fn fetch_meta(
        &mut self,
        folder: &SourceFolder,
        changed_since: Option<u64>,
    ) -> Result<Vec<MessageMeta>, ImapError> {
        if changed_since.is_some() && !self.caps.condstore() {
            return Err(ImapError::policy(
                self.ctx("UID FETCH (CHANGEDSINCE)", folder),
                "the server does not offer CONDSTORE",
            ));
        }
        let (_, metas) = self.listing(folder, changed_since).await?;
        Ok(metas)
    }

    /// `select` and then `fetch_meta`, with the EXAMINE and the first metadata FETCH pipelined:
    /// one round trip instead of two.
    pub async fn examine_meta(
        &mut self,
        folder: &SourceFolder,
    ) -> Result<(FolderStatus, Vec<MessageMeta>), ImapError> {
        let mut all = self.examine_meta_many(std::slice::from_ref(folder)).await?;
        all.pop().unwrap_or_else(|| {
            Err(ImapError::protocol(
                self.ctx("EXAMINE", folder),
                "no result for the folder",
            ))
        })
    }

    /// [`Self::examine_meta`] for many folders, pipelined across folders too (see
    /// [`Conn::examine_fetch_many`]): the survey reads a whole mailbox without a round trip per
    /// folder. One result per folder, in order; a folder that fails does not stop the others.
    /// The outer error means no session could be had at all.
    pub async fn examine_meta_many(
        &mut self,
        folders: &[SourceFolder],
    ) -> Result<Vec<Result<(FolderStatus, Vec<MessageMeta>), ImapError>>, ImapError> {
        self.fresh = None;
        let attrs = self.meta_attrs();
        let set = format!("1:{}", self.meta_page);
        let names: Vec<&str> = folders.iter().map(|f| f.raw_name.as_str()).collect();
        let conn = match self.ready(None).await {
            Ok(c) => c,
            Err(e) => {
                self.conn = None;
                return Err(e);
            }
        };
        let (pages, failure) = conn
            .examine_fetch_many(&names, &set, &attrs, PIPELINE_FOLDERS)
            .await;
        if let Some(e) = failure {
            if self.conn.as_ref().is_none_or(|c| !c.is_usable()) {
                self.conn = None;
            }
            tracing::warn!(host = %self.endpoint.host, user = %self.auth.user(), "IMAP connection lost while listing folders ({e}); going on folder by folder");
        }
        let mut pages = pages.into_iter();
        let mut out = Vec::with_capacity(folders.len());
        for folder in folders {
            let result = match pages.next() {
                Some(Ok((info, page))) => self.finish_listing(folder, &info, page, &attrs).await,
                Some(Err(e)) => Err(e),
                // Not read before the connection failed: on its own, reconnecting as needed.
                None => self.listing(folder, None).await,
            };
            out.push(result);
        }
        Ok(out)
    }

    fn meta_attrs(&self) -> String {
        let mut attrs = META_ATTRS.to_owned();
        if self.caps.condstore() {
            attrs.push_str(" MODSEQ");
        }
        attrs
    }

    /// Completes a listing whose EXAMINE and first page were read in a pipeline.
    async fn finish_listing(
        &mut self,
        folder: &SourceFolder,
        info: &SelectInfo,
        page: FetchOutcome,
        attrs: &str,
    ) -> Result<(FolderStatus, Vec<MessageMeta>), ImapError> {
        let status = self.folder_status(&folder.raw_name, info)?;
        match self
            .collect(folder, &status, Some(page), attrs, None)
            .await?
        {
            Ok(metas) => Ok((status, metas)),
            Err(mismatch) => {
                tracing::warn!(folder = %folder.raw_name, "{mismatch}; listing again");
                self.listing(folder, None).await
            }
        }
    }

    /// Selects (or uses the fresh selection) and lists; a count that does not match EXISTS is
    /// listed once more, then it is an error.
    async fn listing(
        &mut self,
        folder: &SourceFolder,
        changed_since: Option<u64>,
    ) -> Result<(FolderStatus, Vec<MessageMeta>), ImapError> {
        let attrs = self.meta_attrs();
        let modifier = changed_since.map(|m| format!("CHANGEDSINCE {m}"));
        let mut last_mismatch = String::new();
        for attempt in 0..2 {
            let status = match self.fresh.take() {
                Some((name, status)) if attempt == 0 && name == folder.raw_name => status,
                _ => {
                    let status = self.select(folder).await?;
                    self.fresh = None;
                    status
                }
            };
            match self
                .collect(folder, &status, None, &attrs, modifier.as_deref())
                .await?
            {
                Ok(metas) => return Ok((status, metas)),
                Err(mismatch) => {
                    tracing::warn!(folder = %folder.raw_name, "{mismatch}; listing again");
                    last_mismatch = mismatch;
                }
            }
        }
        Err(ImapError::protocol(
            self.ctx("UID FETCH (metadata)", folder),
            last_mismatch,
        ))
    }

    /// Reads the metadata pages of a selected folder (the first one may be given, already read
    /// as `UID 1:PAGE`). Pages follow the messages that exist, by sequence number, never UID
    /// arithmetic: a server announcing UIDNEXT 4294967295, or UIDs with huge gaps, costs no more
    /// round trips than a dense folder. `Ok(Err(_))` when a full listing does not count EXISTS
    /// messages.
    async fn collect(
        &mut self,
        folder: &SourceFolder,
        status: &FolderStatus,
        first: Option<FetchOutcome>,
        attrs: &str,
        modifier: Option<&str>,
    ) -> Result<Result<Vec<MessageMeta>, String>, ImapError> {
        let mut exists = status.exists;
        let mut items: Vec<FetchItem> = Vec::new();
        // The next sequence number to read. UIDs ascend with sequence numbers, so the messages
        // the pipelined page `UID 1:PAGE` returned are sequence numbers 1..=n.
        let mut next = 1u32;
        if let Some(page) = first {
            if let Some(n) = page.exists {
                exists = n;
            }
            exists = exists.saturating_sub(page.expunged);
            next = u32::try_from(page.items.len())
                .unwrap_or(u32::MAX)
                .saturating_add(1);
            items.extend(page.items.into_values());
        }
        while next <= exists {
            let last = next.saturating_add(self.meta_page - 1);
            let final_page = last >= exists;
            let set = if final_page {
                format!("{next}:*")
            } else {
                format!("{next}:{last}")
            };
            let label = format!("FETCH {set} (metadata)");
            let outcome = with_conn!(self, Some(folder), |c| c
                .seq_fetch(&set, attrs, modifier, &label))?;
            if let Some(n) = outcome.exists {
                exists = n;
            }
            exists = exists.saturating_sub(outcome.expunged);
            items.extend(outcome.items.into_values());
            if final_page {
                break;
            }
            next = last.saturating_add(1);
        }
        let mut metas = Vec::with_capacity(items.len());
        for item in items {
            metas.push(item.into_meta().map_err(|detail| {
                ImapError::protocol(self.ctx("UID FETCH (metadata)", folder), detail)
            })?);
        }
        metas.sort_by_key(|m| m.uid);
        metas.dedup_by_key(|m| m.uid);
        if modifier.is_some() || metas.len() == exists as usize {
            return Ok(Ok(metas));
        }
        Ok(Err(format!(
            "the server listed {} messages but EXISTS is {exists}",
            metas.len()
        )))
    }

    /// The raw bytes (`BODY.PEEK[]`) of the given UIDs, in UID order. UIDs that no longer exist
    /// are simply absent; each body must be exactly its RFC822.SIZE long.
    pub async fn fetch_bodies(
        &mut self,
        folder: &SourceFolder,
        uids: &[Uid],
    ) -> Result<Vec<(Uid, Body)>, ImapError> {
        self.fresh = None;
        let mut wanted: Vec<u32> = uids.iter().map(|u| u.get()).collect();
        wanted.sort_unstable();
        wanted.dedup();
        let mut out = Vec::with_capacity(wanted.len());
        for chunk in wanted.chunks(BODY_CHUNK) {
            let set = uid_set(chunk);
            let label = format!("UID FETCH {} (BODY.PEEK[])", short_set(&set));
            let outcome = with_conn!(self, Some(folder), |c| c.uid_fetch(
                &set,
                "UID RFC822.SIZE BODY.PEEK[]",
                None,
                &label
            ))?;
            for (uid, item) in outcome.items {
                if chunk.binary_search(&uid).is_err() {
                    continue;
                }
                let Some(Some(body)) = item.body else {
                    continue;
                };
                if let Some(size) = item.size
                    && body.len() != size
                {
                    return Err(ImapError::protocol(
                        self.ctx(&label, folder),
                        format!(
                            "UID {uid}: body is {} bytes but RFC822.SIZE is {size}",
                            body.len()
                        ),
                    ));
                }
                if let Some(uid) = Uid::new(uid) {
                    out.push((uid, body));
                }
            }
        }
        Ok(out)
    }

    /// Ends the session politely.
    pub async fn logout(mut self) {
        if let Some(conn) = self.conn.take() {
            conn.logout().await;
        }
    }

    fn ctx(&self, command: &str, folder: &SourceFolder) -> Box<crate::imap::ErrorContext> {
        Box::new(crate::imap::ErrorContext {
            host: self.endpoint.host.clone(),
            user: self.auth.user().to_owned(),
            folder: Some(folder.raw_name.clone()),
            command: command.to_owned(),
        })
    }

    fn folder_status(&mut self, raw: &str, info: &SelectInfo) -> Result<FolderStatus, ImapError> {
        let ctx = || {
            Box::new(crate::imap::ErrorContext {
                host: self.endpoint.host.clone(),
                user: self.auth.user().to_owned(),
                folder: Some(raw.to_owned()),
                command: "EXAMINE".into(),
            })
        };
        let uid_validity = info
            .uid_validity
            .and_then(UidValidity::new)
            .ok_or_else(|| ImapError::protocol(ctx(), "the server sent no UIDVALIDITY"))?;
        self.validity.insert(raw.to_owned(), uid_validity.get());
        Ok(FolderStatus {
            uid_validity,
            uid_next: info.uid_next,
            exists: info.exists,
            highest_modseq: info.highest_modseq,
        })
    }

    /// After a failed attempt: `None` to try again (the connection dropped and this was the first
    /// attempt), else the error to return.
    fn give_up(
        &mut self,
        folder: Option<&SourceFolder>,
        e: ImapError,
        attempt: u32,
    ) -> Option<ImapError> {
        let dead = self.conn.as_ref().is_none_or(|c| !c.is_usable());
        if dead {
            self.conn = None;
        }
        let e = match folder {
            Some(f) => e.in_folder(&f.raw_name),
            None => e,
        };
        if attempt >= 2 || !(dead && (e.is_connection_drop() || e.is_connect())) {
            return Some(e);
        }
        tracing::warn!(host = %self.endpoint.host, user = %self.auth.user(), "IMAP connection lost ({e}); reconnecting");
        None
    }

    /// A connected session with `folder` selected, reconnecting if needed.
    async fn ready(&mut self, folder: Option<&SourceFolder>) -> Result<&mut Conn, ImapError> {
        if self.conn.is_none() {
            self.conn = Some(self.reconnect().await?);
        }
        if let Some(f) = folder {
            let needs_select = self.conn.as_ref().is_none_or(|c| {
                c.selected
                    .as_ref()
                    .is_none_or(|(name, _)| name != &f.raw_name)
            });
            if needs_select {
                let conn = self.conn.as_mut().ok_or_else(|| {
                    ImapError::connection_lost(Default::default(), "no connection")
                })?;
                let info = conn.select_raw(&f.raw_name, true).await?;
                let before = self.validity.get(&f.raw_name).copied();
                let status = self.folder_status(&f.raw_name, &info)?;
                if before.is_some_and(|b| b != status.uid_validity.get()) {
                    return Err(ImapError::protocol(
                        self.ctx("EXAMINE", f),
                        format!(
                            "UIDVALIDITY changed from {} to {} during the session: the folder's UIDs no longer mean the same messages",
                            before.unwrap_or_default(),
                            status.uid_validity
                        ),
                    ));
                }
            }
        }
        self.conn
            .as_mut()
            .ok_or_else(|| ImapError::connection_lost(Default::default(), "no connection"))
    }

    /// A new session; a server that is restarting gets a few short chances.
    async fn reconnect(&mut self) -> Result<Conn, ImapError> {
        let mut delay = Duration::from_millis(200);
        let mut tries = 0;
        loop {
            tries += 1;
            match Conn::connect(&self.endpoint, &self.auth).await {
                Ok(c) => {
                    self.caps = c.caps.clone();
                    return Ok(c);
                }
                Err(e) if tries < 4 && (e.is_connect() || e.is_connection_drop()) => {
                    tokio::time::sleep(delay).await;
                    delay *= 3;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// A UID set shortened for error labels.
fn short_set(set: &str) -> String {
    if set.len() <= 40 {
        set.to_owned()
    } else {
        format!("{}...", &set[..set.floor_char_boundary(37)])
    }
}

/// Compile-time check: the engine spawns these futures, so they must be `Send`.
#[cfg(test)]
#[allow(dead_code, clippy::let_underscore_future)]
fn futures_are_send(src: &mut ImapSource, f: &SourceFolder) {
    fn is_send<T: Send>(_: &T) {}
    is_send(&src.list_folders());
    is_send(&src.fetch_meta(f, None));
    is_send(&src.fetch_bodies(f, &[]));
}
