//! Binds the concrete sources (IMAP, Maildir) and sinks (Graph, IMAP) to the engine's ports, and
//! turns each module's own error into a [`StepError`] that keeps its message and class.

use crate::body::Body;
use crate::engine::ports::{DestItem, FailureClass, OutgoingMessage};
use crate::model::{
    Flags, FolderPath, FolderStatus, MessageMeta, SourceFolder, SourceIdentity, Uid,
};
use crate::plan;
use crate::sink::graph::GraphMailbox;
use crate::sink::imap::{AppendItem, ImapSink};
use crate::source::imap::{ImapError, ImapSource};
use crate::source::maildir::MaildirSource;
use crate::translate::{KeywordMap, Target, WellKnownFolder};

use super::ports::{FolderListing, MailSink, MailSource, StepError};

fn imap_err(e: ImapError) -> StepError {
    let class = if e.is_auth_failure() || e.is_tls() || e.is_connect() {
        FailureClass::Mailbox
    } else {
        FailureClass::Transient
    };
    StepError::caused_by(class, e)
}

/// A source of either kind.
pub enum AnySource {
    Imap(Box<ImapSource>),
    Maildir(MaildirSource),
}

impl MailSource for AnySource {
    async fn list_folders(&mut self) -> Result<Vec<SourceFolder>, StepError> {
        match self {
            AnySource::Imap(s) => s.list_folders().await.map_err(imap_err),
            AnySource::Maildir(s) => s
                .list_folders()
                .map_err(|e| StepError::caused_by(FailureClass::Mailbox, e)),
        }
    }
    async fn select(&mut self, folder: &SourceFolder) -> Result<FolderStatus, StepError> {
        match self {
            AnySource::Imap(s) => s.select(folder).await.map_err(imap_err),
            AnySource::Maildir(s) => s
                .select(folder)
                .map_err(|e| StepError::caused_by(FailureClass::Transient, e)),
        }
    }
    async fn fetch_meta(
        &mut self,
        folder: &SourceFolder,
        changed_since: Option<u64>,
    ) -> Result<Vec<MessageMeta>, StepError> {
        match self {
            AnySource::Imap(s) => s.fetch_meta(folder, changed_since).await.map_err(imap_err),
            AnySource::Maildir(s) => s
                .fetch_meta(folder)
                .map_err(|e| StepError::caused_by(FailureClass::Transient, e)),
        }
    }
    async fn list_messages(
        &mut self,
        folders: &[SourceFolder],
    ) -> Result<Vec<FolderListing>, StepError> {
        match self {
            AnySource::Imap(s) => Ok(s
                .examine_meta_many(folders)
                .await
                .map_err(imap_err)?
                .into_iter()
                .map(|r| r.map_err(imap_err))
                .collect()),
            AnySource::Maildir(s) => {
                let transient = |e: crate::source::maildir::MaildirError| {
                    StepError::caused_by(FailureClass::Transient, e)
                };
                Ok(folders
                    .iter()
                    .map(|f| {
                        let status = s.select(f).map_err(transient)?;
                        Ok((status, s.fetch_meta(f).map_err(transient)?))
                    })
                    .collect())
            }
        }
    }
    async fn fetch_bodies(
        &mut self,
        folder: &SourceFolder,
        uids: &[Uid],
    ) -> Result<Vec<(Uid, Body)>, StepError> {
        match self {
            AnySource::Imap(s) => s.fetch_bodies(folder, uids).await.map_err(imap_err),
            AnySource::Maildir(s) => s
                .fetch_bodies(folder, uids)
                .map_err(|e| StepError::caused_by(FailureClass::Transient, e)),
        }
    }
    async fn accounting(
        &mut self,
        mappings: &[crate::translate::FolderMapping],
    ) -> Result<crate::source::accounting::SourceAccounting, StepError> {
        match self {
            AnySource::Imap(_) => Ok(super::accounting::imap(mappings)),
            AnySource::Maildir(s) => s
                .accounting(&super::accounting::exclusions(mappings))
                .map_err(|e| StepError::new(FailureClass::Transient, e.to_string())),
        }
    }
    async fn subscriptions(
        &mut self,
    ) -> Result<Option<std::collections::HashSet<String>>, StepError> {
        match self {
            AnySource::Imap(s) => s.subscribed().await.map(Some).map_err(imap_err),
            AnySource::Maildir(s) => s
                .subscriptions()
                .map_err(|e| StepError::new(FailureClass::Transient, e.to_string())),
        }
    }
    async fn close(self) {
        if let AnySource::Imap(s) = self {
            s.logout().await;
        }
    }
}

/// Graph as a sink for one mailbox. Keywords reach it as the categories the plan's keyword
/// mapping makes of them (`translate::keywords`).
pub struct GraphMailboxSink {
    mailbox: GraphMailbox,
    parallelism: usize,
    keywords: KeywordMap,
    received_date: crate::sink::graph::ReceivedDate,
}

impl GraphMailboxSink {
    pub fn new(mailbox: GraphMailbox, dest: &plan::GraphDestination) -> GraphMailboxSink {
        // Enough writes in flight to fill the per-mailbox concurrency the governor allows; the
        // governor, not this number, keeps requests inside Microsoft's limits.
        GraphMailboxSink {
            mailbox,
            parallelism: dest.concurrency_per_mailbox.max(1) as usize,
            keywords: KeywordMap::default(),
            received_date: dest.received_date,
        }
    }
    /// What importMime copies carry for the received time (verify's date rule follows it).
    pub fn received_date(&self) -> crate::sink::graph::ReceivedDate {
        self.received_date
    }
    /// Keywords become categories under these rules (the built-in ones without).
    pub fn with_keywords(mut self, keywords: KeywordMap) -> GraphMailboxSink {
        self.keywords = keywords;
        self
    }
    pub fn mailbox(&self) -> &GraphMailbox {
        &self.mailbox
    }
}

fn graph_err(e: crate::sink::graph::GraphError) -> StepError {
    StepError::caused_by(e.class(), e)
}

/// An IMAP server as a sink.
pub struct ImapDestSink {
    sink: ImapSink,
    max_message_bytes: u64,
    connections: usize,
}

impl ImapDestSink {
    pub fn new(sink: ImapSink, max_message_bytes: u64, connections: usize) -> ImapDestSink {
        ImapDestSink {
            sink,
            max_message_bytes,
            connections,
        }
    }
    /// The destination's hierarchy delimiter (`/` for a flat server without one).
    pub fn delimiter(&self) -> char {
        self.sink.delimiter().unwrap_or('/')
    }
    pub fn sink(&self) -> &ImapSink {
        &self.sink
    }
    /// The destination's own folder for a well-known role: found by special-use attribute, or
    /// created under its conventional IMAP name.
    async fn ensure_well_known(&self, w: WellKnownFolder) -> Result<String, StepError> {
        let path = FolderPath::parse(w.imap_name(), None).expect("non-empty literal");
        let special = (w != WellKnownFolder::Inbox).then(|| w.special_use());
        self.sink
            .ensure_folder(&path, special)
            .await
            .map_err(imap_sink_err)
    }
}

fn imap_sink_err(e: ImapError) -> StepError {
    StepError::caused_by(ImapSink::classify(&e), e)
}

/// A sink of either kind.
pub enum AnySink {
    Graph(GraphMailboxSink),
    Imap(Box<ImapDestSink>),
}

impl AnySink {
    /// The SHA-256 of the bytes an IMAP destination holds for each item (`verify --deep`);
    /// `None` for Graph, whose items carry the source's hash in their stamp.
    pub async fn content_hashes(
        &self,
        folder_id: &str,
        item_ids: &[String],
    ) -> Result<Option<std::collections::HashMap<String, crate::model::ContentHash>>, StepError>
    {
        match self {
            AnySink::Graph(_) => Ok(None),
            AnySink::Imap(s) => s
                .sink
                .content_hashes(folder_id, item_ids)
                .await
                .map(Some)
                .map_err(imap_sink_err),
        }
    }
}

impl MailSink for AnySink {
    fn parallelism(&self) -> usize {
        match self {
            AnySink::Graph(g) => g.parallelism,
            AnySink::Imap(s) => s.connections,
        }
    }
    fn max_message_bytes(&self) -> u64 {
        match self {
            AnySink::Graph(_) => crate::plan::DEFAULT_MAX_MESSAGE_BYTES,
            AnySink::Imap(s) => s.max_message_bytes,
        }
    }
    fn batch_size(&self) -> usize {
        match self {
            AnySink::Graph(_) => 16,
            AnySink::Imap(_) => 64,
        }
    }
    async fn ensure_folder(&self, target: &Target) -> Result<String, StepError> {
        match self {
            AnySink::Graph(g) => {
                let (root, path): (Option<&str>, Vec<String>) = match target {
                    Target::WellKnown(w) => (Some(w.graph_name()), Vec::new()),
                    Target::Path { under, path, .. } => {
                        (under.map(|w| w.graph_name()), path.segments().to_vec())
                    }
                };
                g.mailbox
                    .ensure_folder(root, &path)
                    .await
                    .map_err(graph_err)
            }
            AnySink::Imap(s) => {
                match target {
                    Target::WellKnown(w) => s.ensure_well_known(*w).await,
                    Target::Path {
                        under: None,
                        path,
                        special,
                    } => s
                        .sink
                        .ensure_folder(path, *special)
                        .await
                        .map_err(imap_sink_err),
                    Target::Path {
                        under: Some(w),
                        path,
                        special,
                    } => {
                        // The child goes under wherever the destination keeps that special folder.
                        let parent = s.ensure_well_known(*w).await?;
                        let parent = crate::utf7::decode(&parent).unwrap_or(parent);
                        let full = path.segments().iter().fold(
                            FolderPath::parse(&parent, Some(s.delimiter())),
                            |acc, seg| acc.and_then(|p| p.child(seg)),
                        );
                        let full = full.ok_or_else(|| {
                            StepError::new(
                                FailureClass::Rejected,
                                format!("cannot build a folder path under {parent:?}"),
                            )
                        })?;
                        s.sink
                            .ensure_folder(&full, *special)
                            .await
                            .map_err(imap_sink_err)
                    }
                }
            }
        }
    }
    async fn write_batch(
        &self,
        folder_id: &str,
        messages: &[OutgoingMessage<'_>],
    ) -> Vec<Result<String, StepError>> {
        match self {
            AnySink::Graph(g) => {
                let flags: Vec<Flags> =
                    messages.iter().map(|m| g.keywords.apply(m.flags)).collect();
                let mapped: Vec<OutgoingMessage<'_>> = messages
                    .iter()
                    .zip(&flags)
                    .map(|(m, f)| OutgoingMessage { flags: f, ..*m })
                    .collect();
                let writes = mapped.iter().map(|m| g.mailbox.write(folder_id, m));
                futures::future::join_all(writes)
                    .await
                    .into_iter()
                    .map(|r| r.map_err(graph_err))
                    .collect()
            }
            AnySink::Imap(s) => {
                let items: Vec<AppendItem<'_>> = messages
                    .iter()
                    .map(|m| AppendItem {
                        body: m.body,
                        flags: m.flags,
                        internal_date: m.internal_date,
                    })
                    .collect();
                s.sink
                    .append_batch(folder_id, &items)
                    .await
                    .into_iter()
                    .map(|r| r.map_err(imap_sink_err))
                    .collect()
            }
        }
    }
    async fn find(
        &self,
        folder_id: &str,
        identity: &SourceIdentity,
        message_id: Option<&str>,
        size: u64,
        flags: &Flags,
    ) -> Result<Vec<String>, StepError> {
        match self {
            AnySink::Graph(g) => g
                .mailbox
                .resolve(folder_id, identity, message_id, &g.keywords.apply(flags))
                .await
                .map_err(graph_err),
            AnySink::Imap(s) => s
                .sink
                .find(folder_id, message_id, size, &identity.sha256)
                .await
                .map_err(imap_sink_err),
        }
    }
    async fn copies(
        &self,
        folder_id: &str,
        identity: &SourceIdentity,
        message_id: Option<&str>,
        size: u64,
    ) -> Result<Vec<String>, StepError> {
        match self {
            AnySink::Graph(g) => g
                .mailbox
                .copies(folder_id, identity, message_id)
                .await
                .map_err(graph_err),
            AnySink::Imap(s) => s
                .sink
                .find(folder_id, message_id, size, &identity.sha256)
                .await
                .map_err(imap_sink_err),
        }
    }
    async fn remove(&self, folder_id: &str, item_id: &str) -> Result<(), StepError> {
        match self {
            AnySink::Graph(g) => g.mailbox.delete_item(item_id).await.map_err(graph_err),
            AnySink::Imap(s) => s
                .sink
                .remove(folder_id, item_id)
                .await
                .map_err(imap_sink_err),
        }
    }
    async fn set_flags(
        &self,
        folder_id: &str,
        item_id: &str,
        flags: &Flags,
    ) -> Result<(), StepError> {
        match self {
            AnySink::Graph(g) => g
                .mailbox
                .set_flags(item_id, &g.keywords.apply(flags))
                .await
                .map_err(graph_err),
            AnySink::Imap(s) => s
                .sink
                .set_flags(folder_id, item_id, flags, None)
                .await
                .map_err(imap_sink_err),
        }
    }
    fn keeps_subscriptions(&self) -> bool {
        matches!(self, AnySink::Imap(_))
    }
    async fn set_subscribed(&self, folder_id: &str, subscribed: bool) -> Result<(), StepError> {
        match self {
            // Exchange has no folder subscriptions: every folder shows.
            AnySink::Graph(_) => Ok(()),
            AnySink::Imap(s) => s
                .sink
                .set_subscribed(folder_id, subscribed)
                .await
                .map_err(imap_sink_err),
        }
    }
    fn dropped_keywords(&self, flags: &Flags) -> Vec<String> {
        match self {
            AnySink::Graph(g) => g.keywords.map(flags).dropped,
            // An IMAP destination takes every keyword as it is.
            AnySink::Imap(_) => Vec::new(),
        }
    }
    async fn list_items(&self, folder_id: &str) -> Result<Vec<DestItem>, StepError> {
        match self {
            AnySink::Graph(g) => g.mailbox.list_items(folder_id).await.map_err(graph_err),
            AnySink::Imap(s) => s.sink.list_items(folder_id).await.map_err(imap_sink_err),
        }
    }
}
