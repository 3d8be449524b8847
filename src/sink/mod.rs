//! Sinks: where messages are written.
//!
//! [`graph`] writes into Exchange Online through Microsoft Graph, [`imap`] APPENDs to any IMAP server.
//! The types here are the contract between the engine and both sinks: what one message carries on
//! its way out, what an item at the destination looks like when listed back, and how a failure is
//! classified so the engine knows whether to retry, skip, resolve or stop.

pub mod graph;
pub mod imap;

use chrono::{DateTime, FixedOffset};
use serde::Serialize;

use crate::body::Body;
use crate::model::{Flags, SourceIdentity};

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
