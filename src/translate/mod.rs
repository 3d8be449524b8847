//! Pure translation of source folders to destination folders: no I/O, same input, same output.
//!
//! The engine, `survey` and the sinks all ask [`FolderMapper::map`] where each source folder
//! goes, so the survey's report of renamed folders is exactly what `migrate` will do. The rules
//! (in order):
//!
//! 1. **exclude**: a plan glob matching the source path (`/`-joined, case-insensitive) drops
//!    the folder ([`FolderMapping::excluded_by`]).
//! 2. **INBOX. prefix**: in `.`-delimited Courier / Maildir++ trees every folder lives under
//!    `INBOX.`; those become top-level folders, because Exchange's tree root is not its Inbox.
//! 3. **rename**: a plan rule `"from" = "to"` moves the folder (and its children) verbatim.
//! 4. **well-known folders**: INBOX and RFC 6154 special-use folders, failing that a top-level
//!    name in a common language (Sent, Gesendet, Envoyés, Papierkorb, Spam, ...) map to
//!    Exchange's well-known folders; their children keep their place under them.
//! 5. **nest_under**: every other folder goes under the given folder.
//! 6. **names**: each segment is made acceptable to the target ([`names`]), paths deeper than
//!    the limit are flattened with ` - `, and names equal to a sibling's but for case get
//!    ` (2)`, ` (3)`, ... in the order of their source names. Exchange's own top-level folders
//!    (Calendar, Contacts, Outbox, ...) count as siblings, so mail never lands in them.
//!
//! Every change is returned as a [`FolderChange`] with a human reason, for `survey` and logs.
//! [`keywords`] maps IMAP keywords to Outlook categories (pure as well); how flags become Graph
//! properties lives with the sink (`sink::graph`).

pub mod keywords;
mod mapper;
pub mod names;
mod wellknown;

use std::fmt;

use crate::model::{FolderPath, SourceFolder, SpecialUse};

pub use keywords::{KeywordAction, KeywordMap};
pub use mapper::FolderMapper;

/// Default hierarchy depth limit for Exchange Online (docs/graph-facts.md, section 2).
pub const GRAPH_MAX_DEPTH: usize = 300;

/// What kind of destination folder names are made for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetKind {
    /// Exchange Online through Microsoft Graph.
    Graph,
    /// An IMAP server with this hierarchy delimiter.
    Imap { delimiter: char },
}

/// Where one source folder goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolderMapping {
    pub source: SourceFolder,
    /// `None`: excluded, not migrated.
    pub target: Option<Target>,
    /// Every way the name differs from the source, each with its reason.
    pub changes: Vec<FolderChange>,
    /// The exclude pattern that dropped this folder.
    pub excluded_by: Option<String>,
}

/// A destination folder.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// One of Exchange's well-known folders (IMAP: the destination's special-use folder).
    WellKnown(WellKnownFolder),
    /// A folder created by path.
    Path {
        /// The well-known folder the path starts under; `None`: the top of the mailbox
        /// (Graph `msgfolderroot`, IMAP the personal namespace root).
        under: Option<WellKnownFolder>,
        /// The segments to create, outermost first, already valid for the target.
        path: FolderPath,
        /// A special use the target cannot express as a well-known folder (`\All`,
        /// `\Flagged`), for IMAP destinations that can set it.
        special: Option<SpecialUse>,
    },
}

impl fmt::Display for Target {
    /// `sentitems`, `inbox/Receipts`, `Projects/2024` (Graph well-known names as roots).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::WellKnown(w) => f.write_str(w.graph_name()),
            Target::Path {
                under: Some(w),
                path,
                ..
            } => write!(f, "{}/{}", w.graph_name(), path),
            Target::Path {
                under: None, path, ..
            } => write!(f, "{path}"),
        }
    }
}

impl Target {
    /// The folder as the destination names it: Graph's well-known names for Graph
    /// (`sentitems`, `inbox/Receipts`, the [`Display`](fmt::Display) form); for an IMAP server
    /// the name mailferry creates a special folder under when the server has none marked with
    /// its special use (`Sent`, `INBOX/Receipts`), with the server's delimiter.
    pub fn label(&self, kind: TargetKind) -> String {
        let TargetKind::Imap { delimiter } = kind else {
            return self.to_string();
        };
        let sep = delimiter.to_string();
        match self {
            Target::WellKnown(w) => w.imap_name().to_owned(),
            Target::Path { under, path, .. } => {
                let mut parts: Vec<&str> = under.map(|w| w.imap_name()).into_iter().collect();
                parts.extend(path.segments().iter().map(String::as_str));
                parts.join(&sep)
            }
        }
    }
}

/// Exchange's well-known mail folders that imported mail may go to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WellKnownFolder {
    Inbox,
    SentItems,
    Drafts,
    DeletedItems,
    JunkEmail,
    Archive,
}

impl WellKnownFolder {
    /// The locale-independent name Graph accepts in place of a folder id.
    pub fn graph_name(self) -> &'static str {
        match self {
            WellKnownFolder::Inbox => "inbox",
            WellKnownFolder::SentItems => "sentitems",
            WellKnownFolder::Drafts => "drafts",
            WellKnownFolder::DeletedItems => "deleteditems",
            WellKnownFolder::JunkEmail => "junkemail",
            WellKnownFolder::Archive => "archive",
        }
    }
    /// The English display name in Exchange.
    pub fn display_name(self) -> &'static str {
        match self {
            WellKnownFolder::Inbox => "Inbox",
            WellKnownFolder::SentItems => "Sent Items",
            WellKnownFolder::Drafts => "Drafts",
            WellKnownFolder::DeletedItems => "Deleted Items",
            WellKnownFolder::JunkEmail => "Junk Email",
            WellKnownFolder::Archive => "Archive",
        }
    }
    /// The matching RFC 6154 role, for IMAP destinations.
    /// The IMAP folder this one becomes when the destination marks none with its special use.
    pub fn imap_name(self) -> &'static str {
        match self {
            WellKnownFolder::Inbox => "INBOX",
            WellKnownFolder::SentItems => "Sent",
            WellKnownFolder::Drafts => "Drafts",
            WellKnownFolder::DeletedItems => "Trash",
            WellKnownFolder::JunkEmail => "Junk",
            WellKnownFolder::Archive => "Archive",
        }
    }

    pub fn special_use(self) -> SpecialUse {
        match self {
            WellKnownFolder::Inbox => SpecialUse::Inbox,
            WellKnownFolder::SentItems => SpecialUse::Sent,
            WellKnownFolder::Drafts => SpecialUse::Drafts,
            WellKnownFolder::DeletedItems => SpecialUse::Trash,
            WellKnownFolder::JunkEmail => SpecialUse::Junk,
            WellKnownFolder::Archive => SpecialUse::Archive,
        }
    }
    /// The well-known folder for a special use; `None` for `\All` and `\Flagged`.
    pub fn from_special_use(s: SpecialUse) -> Option<WellKnownFolder> {
        match s {
            SpecialUse::Inbox => Some(WellKnownFolder::Inbox),
            SpecialUse::Sent => Some(WellKnownFolder::SentItems),
            SpecialUse::Drafts => Some(WellKnownFolder::Drafts),
            SpecialUse::Trash => Some(WellKnownFolder::DeletedItems),
            SpecialUse::Junk => Some(WellKnownFolder::JunkEmail),
            SpecialUse::Archive => Some(WellKnownFolder::Archive),
            SpecialUse::All | SpecialUse::Flagged => None,
        }
    }
}

/// Why a name changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChangeKind {
    /// Mapped to a well-known folder.
    WellKnown,
    /// The Courier/Maildir++ `INBOX.` prefix was dropped.
    InboxPrefix,
    /// A plan `rename` rule.
    Renamed,
    /// Moved under the plan's `nest_under` folder.
    Nested,
    /// Characters the target cannot take were replaced or removed, or the name was cut.
    Sanitized,
    /// The name is one of Exchange's own top-level folders.
    Reserved,
    /// Another folder's name differs only in case; a ` (N)` suffix was added.
    Collision,
    /// The path was deeper than the target allows; the rest was joined into one name.
    Flattened,
}

/// One change between the source name and the target name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolderChange {
    pub kind: ChangeKind,
    /// The name (segment or path) before.
    pub from: String,
    /// The name after.
    pub to: String,
    /// Why, in words an operator understands.
    pub reason: String,
}

#[cfg(test)]
mod tests;
