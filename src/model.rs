//! Core value types shared by every module, free of I/O.
//!
//! Newtypes here cannot hold invalid values: a [`Uid`] or [`UidValidity`] is never zero (RFC 9051
//! forbids it), a [`FolderPath`] never has an empty segment. Sources produce these, `translate`
//! maps them, sinks and the ledger consume them.

use std::collections::BTreeSet;
use std::fmt;
use std::num::NonZeroU32;

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// An IMAP UID: a non-zero 32-bit number, unique within one folder and one UIDVALIDITY.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Uid(NonZeroU32);

impl Uid {
    /// `None` for 0, which is not a valid UID.
    pub fn new(value: u32) -> Option<Uid> {
        NonZeroU32::new(value).map(Uid)
    }
    /// The number.
    pub fn get(self) -> u32 {
        self.0.get()
    }
}

impl TryFrom<u32> for Uid {
    type Error = &'static str;
    fn try_from(value: u32) -> Result<Self, Self::Error> {
        Uid::new(value).ok_or("a UID cannot be 0")
    }
}

impl From<Uid> for u32 {
    fn from(value: Uid) -> u32 {
        value.get()
    }
}

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A folder's UIDVALIDITY: when it changes, every UID of the folder means something else.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct UidValidity(NonZeroU32);

impl UidValidity {
    /// `None` for 0, which is not a valid UIDVALIDITY.
    pub fn new(value: u32) -> Option<UidValidity> {
        NonZeroU32::new(value).map(UidValidity)
    }
    /// The number.
    pub fn get(self) -> u32 {
        self.0.get()
    }
}

impl TryFrom<u32> for UidValidity {
    type Error = &'static str;
    fn try_from(value: u32) -> Result<Self, Self::Error> {
        UidValidity::new(value).ok_or("a UIDVALIDITY cannot be 0")
    }
}

impl From<UidValidity> for u32 {
    fn from(value: UidValidity) -> u32 {
        value.get()
    }
}

impl fmt::Display for UidValidity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A folder's place in a tree, as decoded (Unicode) segments, independent of any server's
/// delimiter. Never empty, and no segment is empty.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct FolderPath(Vec<String>);

impl FolderPath {
    /// `None` when there is no segment or a segment is empty.
    pub fn new(segments: Vec<String>) -> Option<FolderPath> {
        if segments.is_empty() || segments.iter().any(|s| s.is_empty()) {
            None
        } else {
            Some(FolderPath(segments))
        }
    }
    /// Splits a display name on a delimiter (`None`: a flat name), dropping empty segments
    /// (a leading or doubled delimiter). `None` when nothing is left.
    pub fn parse(name: &str, delimiter: Option<char>) -> Option<FolderPath> {
        let segments: Vec<String> = match delimiter {
            Some(d) => name
                .split(d)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            None => vec![name.to_owned()],
        };
        FolderPath::new(segments)
    }
    /// The segments, outermost first.
    pub fn segments(&self) -> &[String] {
        &self.0
    }
    /// The last segment.
    pub fn leaf(&self) -> &str {
        self.0.last().expect("never empty")
    }
    /// The parent, if this is not a top-level folder.
    pub fn parent(&self) -> Option<FolderPath> {
        (self.0.len() > 1).then(|| FolderPath(self.0[..self.0.len() - 1].to_vec()))
    }
    /// This path with one more segment. `None` if the segment is empty.
    pub fn child(&self, segment: &str) -> Option<FolderPath> {
        if segment.is_empty() {
            return None;
        }
        let mut v = self.0.clone();
        v.push(segment.to_owned());
        Some(FolderPath(v))
    }
    /// Number of segments.
    pub fn depth(&self) -> usize {
        self.0.len()
    }
    /// The segments joined with `delimiter`, for display and for servers.
    pub fn join(&self, delimiter: char) -> String {
        self.0.join(&delimiter.to_string())
    }
}

impl TryFrom<Vec<String>> for FolderPath {
    type Error = &'static str;
    fn try_from(value: Vec<String>) -> Result<Self, Self::Error> {
        FolderPath::new(value).ok_or("a folder path needs at least one non-empty segment")
    }
}

impl From<FolderPath> for Vec<String> {
    fn from(value: FolderPath) -> Self {
        value.0
    }
}

impl fmt::Display for FolderPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.join('/'))
    }
}

/// The role of a special folder (RFC 6154, plus the INBOX).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpecialUse {
    Inbox,
    Sent,
    Drafts,
    Trash,
    Junk,
    Archive,
    All,
    Flagged,
}

impl SpecialUse {
    /// From an RFC 6154 attribute such as `\Sent` (case-insensitive).
    pub fn from_attribute(attr: &str) -> Option<SpecialUse> {
        match attr.trim_start_matches('\\').to_ascii_lowercase().as_str() {
            "sent" => Some(SpecialUse::Sent),
            "drafts" => Some(SpecialUse::Drafts),
            "trash" => Some(SpecialUse::Trash),
            "junk" => Some(SpecialUse::Junk),
            "archive" => Some(SpecialUse::Archive),
            "all" => Some(SpecialUse::All),
            "flagged" => Some(SpecialUse::Flagged),
            _ => None,
        }
    }
    /// The RFC 6154 attribute, for IMAP destinations.
    pub fn attribute(self) -> &'static str {
        match self {
            SpecialUse::Inbox => "",
            SpecialUse::Sent => "\\Sent",
            SpecialUse::Drafts => "\\Drafts",
            SpecialUse::Trash => "\\Trash",
            SpecialUse::Junk => "\\Junk",
            SpecialUse::Archive => "\\Archive",
            SpecialUse::All => "\\All",
            SpecialUse::Flagged => "\\Flagged",
        }
    }
}

/// A message's IMAP flags. System flags are fields; keywords (`$Forwarded` aside) are a set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Flags {
    pub seen: bool,
    pub answered: bool,
    pub flagged: bool,
    pub deleted: bool,
    pub draft: bool,
    /// `$Forwarded` (a keyword, but every client and Exchange treat it as a state).
    pub forwarded: bool,
    /// Other keywords, as the server spelled them.
    pub keywords: BTreeSet<String>,
}

impl Flags {
    /// Parses IMAP flag atoms (`\Seen`, `$Forwarded`, `Work`); `\Recent` and `\*` are dropped.
    pub fn from_atoms<'a>(atoms: impl IntoIterator<Item = &'a str>) -> Flags {
        let mut f = Flags::default();
        for a in atoms {
            match a.to_ascii_lowercase().as_str() {
                "\\seen" => f.seen = true,
                "\\answered" => f.answered = true,
                "\\flagged" => f.flagged = true,
                "\\deleted" => f.deleted = true,
                "\\draft" => f.draft = true,
                "$forwarded" => f.forwarded = true,
                "\\recent" | "\\*" | "" => {}
                _ => {
                    f.keywords.insert(a.to_owned());
                }
            }
        }
        f
    }
    /// The flags as IMAP atoms, system flags first, in a stable order.
    pub fn to_atoms(&self) -> Vec<String> {
        let mut v = Vec::new();
        for (on, name) in [
            (self.seen, "\\Seen"),
            (self.answered, "\\Answered"),
            (self.flagged, "\\Flagged"),
            (self.deleted, "\\Deleted"),
            (self.draft, "\\Draft"),
            (self.forwarded, "$Forwarded"),
        ] {
            if on {
                v.push(name.to_owned());
            }
        }
        v.extend(self.keywords.iter().cloned());
        v
    }
    /// A compact, stable text form for the ledger (`\Seen \Flagged Work`).
    pub fn to_ledger_string(&self) -> String {
        self.to_atoms().join(" ")
    }
    /// Inverse of [`Flags::to_ledger_string`].
    pub fn from_ledger_string(s: &str) -> Flags {
        Flags::from_atoms(s.split_whitespace())
    }
}

/// What a source knows about one message before its body is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageMeta {
    pub uid: Uid,
    /// RFC822.SIZE: bytes of the raw message.
    pub size: u64,
    pub flags: Flags,
    pub internal_date: DateTime<FixedOffset>,
    /// The Message-ID header value with its angle brackets, if the message has one.
    pub message_id: Option<String>,
    /// CONDSTORE MODSEQ, when the source offers it.
    pub modseq: Option<u64>,
}

/// A source folder's state when selected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolderStatus {
    pub uid_validity: UidValidity,
    pub uid_next: Option<u32>,
    pub exists: u32,
    pub highest_modseq: Option<u64>,
}

/// A folder as the source lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFolder {
    /// The name exactly as the server sent it (modified UTF-7 on IMAP): always send this back.
    pub raw_name: String,
    /// The decoded path.
    pub path: FolderPath,
    /// The hierarchy delimiter, if the server has one.
    pub delimiter: Option<char>,
    pub special_use: Option<SpecialUse>,
    /// `false` for `\Noselect` / `\NonExistent` containers.
    pub selectable: bool,
}

/// SHA-256 of raw message bytes, the content half of a message's identity.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentHash(pub [u8; 32]);

impl ContentHash {
    /// Hashes raw bytes.
    pub fn of(raw: &[u8]) -> ContentHash {
        ContentHash(Sha256::digest(raw).into())
    }
    /// From a finished SHA-256 digest (for bodies hashed while streamed).
    pub fn from_digest(digest: [u8; 32]) -> ContentHash {
        ContentHash(digest)
    }
    /// Lower-case hex.
    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }
    /// From lower- or upper-case hex.
    pub fn from_hex(s: &str) -> Option<ContentHash> {
        let v = hex::decode(s).ok()?;
        Some(ContentHash(v.try_into().ok()?))
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({})", self.to_hex())
    }
}

/// Where a message came from: what the sink stamps on every item it writes, so an ambiguous
/// failure or a lost ledger is resolved by asking the destination, never by guessing.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SourceIdentity {
    /// The mailbox key (the plan's EmailAddress, lower-cased).
    pub mailbox: String,
    /// The source folder's raw name.
    pub folder: String,
    pub uid_validity: UidValidity,
    pub uid: Uid,
    pub sha256: ContentHash,
}

impl SourceIdentity {
    /// The stamp text: `v1;{uidvalidity};{uid};{sha256};{mailbox};{folder}`. The variable-length
    /// parts come last so parsing needs no escaping.
    pub fn to_stamp(&self) -> String {
        format!(
            "v1;{};{};{};{};{}",
            self.uid_validity,
            self.uid,
            self.sha256.to_hex(),
            self.mailbox,
            self.folder
        )
    }
    /// Inverse of [`SourceIdentity::to_stamp`].
    pub fn from_stamp(s: &str) -> Option<SourceIdentity> {
        let mut it = s.splitn(6, ';');
        if it.next()? != "v1" {
            return None;
        }
        let uid_validity = UidValidity::new(it.next()?.parse().ok()?)?;
        let uid = Uid::new(it.next()?.parse().ok()?)?;
        let sha256 = ContentHash::from_hex(it.next()?)?;
        let mailbox = it.next()?.to_owned();
        let folder = it.next()?.to_owned();
        Some(SourceIdentity {
            mailbox,
            folder,
            uid_validity,
            uid,
            sha256,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_not_a_uid() {
        assert!(Uid::new(0).is_none());
        assert_eq!(Uid::new(7).unwrap().get(), 7);
        assert!(serde_json::from_str::<Uid>("0").is_err());
    }

    #[test]
    fn folder_path_rejects_empty_segments() {
        assert!(FolderPath::new(vec![]).is_none());
        assert!(FolderPath::new(vec!["a".into(), "".into()]).is_none());
        let p = FolderPath::parse("/a//b/", Some('/')).unwrap();
        assert_eq!(p.segments(), ["a", "b"]);
        assert_eq!(p.parent().unwrap().segments(), ["a"]);
        assert_eq!(FolderPath::parse("a.b", None).unwrap().segments(), ["a.b"]);
    }

    #[test]
    fn flags_round_trip_and_drop_recent() {
        let f = Flags::from_atoms(["\\Seen", "\\Recent", "$Forwarded", "Work", "\\FLAGGED"]);
        assert!(f.seen && f.flagged && f.forwarded && !f.answered);
        assert_eq!(f.to_ledger_string(), "\\Seen \\Flagged $Forwarded Work");
        assert_eq!(Flags::from_ledger_string(&f.to_ledger_string()), f);
    }

    #[test]
    fn stamp_round_trips_with_semicolons_in_folder() {
        let id = SourceIdentity {
            mailbox: "a@b.example".into(),
            folder: "Odd;name".into(),
            uid_validity: UidValidity::new(42).unwrap(),
            uid: Uid::new(9).unwrap(),
            sha256: ContentHash::of(b"hello"),
        };
        assert_eq!(SourceIdentity::from_stamp(&id.to_stamp()), Some(id));
        assert!(SourceIdentity::from_stamp("v2;1;1;00;a;b").is_none());
    }
}
