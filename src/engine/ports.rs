//! The two ports the engine drives: a [`MailSource`] it reads from and a [`MailSink`] it writes
//! to. Adapters for the IMAP and Maildir sources and the Graph and IMAP sinks live in
//! [`super::adapters`]; the engine itself knows nothing of HTTP or IMAP.

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset};
use serde::Serialize;

use crate::body::Body;
use crate::model::{
    ContentHash, Flags, FolderStatus, MessageMeta, SourceFolder, SourceIdentity, Uid,
};
use crate::translate::Target;

/// A failure at a source or sink, reduced to what the engine needs: how to treat it, and a
/// message for the operator (already naming the host, folder, UID or request id it concerns).
/// The error it came from is kept as its source, so the report's detail can show the whole chain
/// (an I/O error under a connect failure, say) while summaries group by the message alone.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct StepError {
    pub class: FailureClass,
    pub message: String,
    #[source]
    source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl StepError {
    pub fn new(class: FailureClass, message: impl Into<String>) -> StepError {
        StepError {
            class,
            message: message.into(),
            source: None,
        }
    }

    /// A failure caused by `error`: its text is the message, and it stays the source.
    pub fn caused_by(
        class: FailureClass,
        error: impl std::error::Error + Send + Sync + 'static,
    ) -> StepError {
        StepError {
            class,
            message: error.to_string(),
            source: Some(Arc::new(error)),
        }
    }

    /// The same failure with its message prefixed (a folder name, say), the source kept.
    pub fn context(mut self, prefix: impl std::fmt::Display) -> StepError {
        self.message = format!("{prefix}: {}", self.message);
        self
    }

    /// The message followed by every underlying cause not already part of it, for the report
    /// detail and the ledger.
    pub fn detail(&self) -> String {
        let mut out = self.message.clone();
        let mut next = self
            .source
            .as_deref()
            .and_then(|e| (e as &dyn std::error::Error).source());
        while let Some(cause) = next {
            let text = cause.to_string();
            if !out.contains(&text) {
                out.push_str(": caused by: ");
                out.push_str(&text);
            }
            next = cause.source();
        }
        out
    }
}

/// One folder's state and every message's metadata, or why it could not be read.
pub type FolderListing = Result<(FolderStatus, Vec<MessageMeta>), StepError>;

/// Where messages come from (IMAP or Maildir). One instance is one connection: calls are
/// sequential, on the mailbox's own task, so its futures need not be `Send`.
pub trait MailSource: Send {
    fn list_folders(&mut self) -> impl Future<Output = Result<Vec<SourceFolder>, StepError>>;
    /// Selects (read-only) a folder for the calls that follow.
    fn select(
        &mut self,
        folder: &SourceFolder,
    ) -> impl Future<Output = Result<FolderStatus, StepError>>;
    /// Every message of the selected folder (or only those changed since a MODSEQ).
    fn fetch_meta(
        &mut self,
        folder: &SourceFolder,
        changed_since: Option<u64>,
    ) -> impl Future<Output = Result<Vec<MessageMeta>, StepError>>;
    /// `select` then a full `fetch_meta` for each folder, pipelined where the source can (no
    /// round trip per folder). One result per folder, in order; the outer error means the
    /// source could not be read at all.
    fn list_messages(
        &mut self,
        folders: &[SourceFolder],
    ) -> impl Future<Output = Result<Vec<FolderListing>, StepError>>;
    /// Raw bytes of the given UIDs; expunged ones are simply absent.
    fn fetch_bodies(
        &mut self,
        folder: &SourceFolder,
        uids: &[Uid],
    ) -> impl Future<Output = Result<Vec<(Uid, Body)>, StepError>>;
    /// Where every item of the source goes, given the folder mappings (plan exclusions become
    /// skip reasons): see [`crate::source::accounting`].
    fn accounting(
        &mut self,
        mappings: &[crate::translate::FolderMapping],
    ) -> impl Future<Output = Result<crate::source::accounting::SourceAccounting, StepError>>;
    /// Raw names of the folders the user subscribed to; `None` when the source keeps no
    /// subscriptions.
    fn subscriptions(
        &mut self,
    ) -> impl Future<Output = Result<Option<std::collections::HashSet<String>>, StepError>>;
    /// Ends the session politely.
    fn close(self) -> impl Future<Output = ()>;
}

/// Where messages go (Graph or IMAP). Shared between concurrent write tasks.
pub trait MailSink: Send + Sync + 'static {
    /// How many write batches the engine may have in flight for one mailbox.
    fn parallelism(&self) -> usize;
    /// The destination's largest acceptable message, in bytes.
    fn max_message_bytes(&self) -> u64;
    /// How many messages one `write_batch` call should carry at most.
    fn batch_size(&self) -> usize;
    /// Makes sure the target folder exists; returns the destination's folder id.
    fn ensure_folder(
        &self,
        target: &Target,
    ) -> impl Future<Output = Result<String, StepError>> + Send;
    /// Writes messages into one folder; one result per message, in order.
    fn write_batch(
        &self,
        folder_id: &str,
        messages: &[OutgoingMessage<'_>],
    ) -> impl Future<Output = Vec<Result<String, StepError>>> + Send;
    /// Items in the folder that are this message (for resolving a write that may have happened);
    /// an item found without its identity stamp is completed with it and `flags`.
    fn find(
        &self,
        folder_id: &str,
        identity: &SourceIdentity,
        message_id: Option<&str>,
        size: u64,
        flags: &Flags,
    ) -> impl Future<Output = Result<Vec<String>, StepError>> + Send;
    /// Every item in the folder that is this message, changing nothing (the check for orphaned
    /// copies after a crash).
    fn copies(
        &self,
        folder_id: &str,
        identity: &SourceIdentity,
        message_id: Option<&str>,
        size: u64,
    ) -> impl Future<Output = Result<Vec<String>, StepError>> + Send;
    /// Deletes one item that is proven to be a redundant copy.
    fn remove(
        &self,
        folder_id: &str,
        item_id: &str,
    ) -> impl Future<Output = Result<(), StepError>> + Send;
    /// Brings an item's flags in line with the source.
    fn set_flags(
        &self,
        folder_id: &str,
        item_id: &str,
        flags: &Flags,
    ) -> impl Future<Output = Result<(), StepError>> + Send;
    /// Whether folders here have a subscription state worth making equal to the source's.
    fn keeps_subscriptions(&self) -> bool {
        false
    }
    /// Subscribes (or unsubscribes) a destination folder.
    fn set_subscribed(
        &self,
        folder_id: &str,
        subscribed: bool,
    ) -> impl Future<Output = Result<(), StepError>> + Send;
    /// The keywords of `flags` this destination does not take (Graph: junk marks, `$MDNSent`,
    /// plan rules), for the report's count.
    fn dropped_keywords(&self, _flags: &Flags) -> Vec<String> {
        Vec::new()
    }
    /// Everything in a folder, for verify.
    fn list_items(
        &self,
        folder_id: &str,
    ) -> impl Future<Output = Result<Vec<DestItem>, StepError>> + Send;
}

/// The identity of a message about to be written.
pub fn identity(
    mailbox: &str,
    folder: &SourceFolder,
    status: &FolderStatus,
    uid: Uid,
    sha256: ContentHash,
) -> SourceIdentity {
    SourceIdentity {
        mailbox: mailbox.to_owned(),
        folder: folder.raw_name.clone(),
        uid_validity: status.uid_validity,
        uid,
        sha256,
    }
}

/// One message on its way to a sink.
#[derive(Debug, Clone, Copy)]
pub struct OutgoingMessage<'a> {
    /// The raw RFC 5322 bytes exactly as the source holds them (in memory or spooled).
    pub body: &'a Body,
    pub flags: &'a Flags,
    /// The source's INTERNALDATE (received time).
    pub internal_date: DateTime<FixedOffset>,
    /// Where it came from; Graph stamps it on the item.
    pub identity: &'a SourceIdentity,
    /// The Message-ID header value, with angle brackets.
    pub message_id: Option<&'a str>,
}

/// An item as a destination lists it back (for resume and verify).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DestItem {
    /// The sink's id: a Graph message id, or `UIDVALIDITY:UID` on IMAP.
    pub id: String,
    /// The identity stamp, when the item carries one (Graph items written by mailferry).
    #[serde(skip)]
    pub stamp: Option<SourceIdentity>,
    pub message_id: Option<String>,
    /// Size in bytes, when the destination reports it (IMAP RFC822.SIZE).
    pub size: Option<u64>,
    pub flags: Flags,
    pub received: Option<DateTime<FixedOffset>>,
}

/// What a failed sink call means for the message and the mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureClass {
    /// Worth trying again later (throttling or outage outlasting the retry policy, connection lost
    /// before the request was sent). The message stays pending for the next run.
    Transient,
    /// The request may have been committed (response lost): never re-send blindly; resolve by
    /// identity first.
    Ambiguous,
    /// The destination refuses this item for good (too large, invalid content): skip with reason.
    Rejected,
    /// The mailbox cannot be written at all (no licence, access denied, quota full): stop this
    /// mailbox, keep going with the others.
    Mailbox,
    /// Credentials or configuration are wrong (bad secret, wrong tenant): nothing will work.
    Fatal,
}

impl FailureClass {
    /// The ledger's text for this class.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Transient => "transient",
            FailureClass::Ambiguous => "ambiguous",
            FailureClass::Rejected => "rejected",
            FailureClass::Mailbox => "mailbox",
            FailureClass::Fatal => "fatal",
        }
    }
}

/// Asked right before each write leaves for the destination (a Graph request, an IMAP APPEND):
/// may this process still write for `mailbox` (the destination user)? Fleet mode answers from
/// the mailbox's lease: a worker frozen past its lease must not send the writes it had queued
/// when it wakes (another worker may have taken the mailbox over and resolved those very
/// messages already). `Err` carries the reason; nothing is sent.
pub trait SendGate: Send + Sync {
    fn may_send(&self, mailbox: &str) -> Result<(), String>;
}

impl std::fmt::Debug for dyn SendGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SendGate")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detail_keeps_the_cause_chain_and_the_message_groups() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot connect (host h)")]
        struct Outer(#[source] std::io::Error);
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused by peer");
        let e = StepError::caused_by(FailureClass::Mailbox, Outer(io)).context("folder \"A\"");
        assert_eq!(e.message, "folder \"A\": cannot connect (host h)");
        assert_eq!(
            e.detail(),
            "folder \"A\": cannot connect (host h): caused by: refused by peer"
        );
        // A cause already spelled out in the message is not repeated.
        let plain = StepError::new(FailureClass::Transient, "x: refused");
        assert_eq!(plain.detail(), "x: refused");
    }
}
