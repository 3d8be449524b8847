//! One folder's messages at one moment: which files, which UID each has, and the UIDVALIDITY
//! that makes those UIDs meaningful.
//!
//! ## UIDs with a `dovecot-uidlist` (Dovecot and cPanel trees)
//! The uidlist's UIDVALIDITY and UIDs are used as they are, so they equal what Dovecot serves over
//! IMAP. Files the uidlist does not know yet (mail delivered by something other than Dovecot since
//! Dovecot last looked) are numbered from the uidlist's next UID upward, in the order Dovecot
//! itself will number them (the delivery time in the file name, then the name; not the mtime,
//! which Dovecot ignores here), so in the usual case the UIDs mailferry reports are the ones
//! Dovecot will later assign (`tests/it/maildir_source.rs` checks this against real Dovecot). Residual risk: if a
//! file with an *older* name time arrives before Dovecot syncs, Dovecot's numbering will differ
//! from the provisional one under the same UIDVALIDITY. A consumer that keeps the size (or hash)
//! per UID can detect such a reuse; the source alone cannot, as it keeps no state.
//!
//! ## UIDs without a uidlist (plain Maildir, Courier without a uiddb)
//! There is nowhere to remember UIDs, and mailferry never writes into the source tree. Messages are
//! numbered 1..n in (mtime in whole seconds, base name) order; flag changes and new/ -> cur/
//! moves keep both, so they keep the UID. Those UIDs are only stable while the set of files stays
//! the same: a removed file shifts every later UID, an added file with an old mtime shifts the
//! ones after it. The UIDVALIDITY is therefore a hash of the folder's raw name and of the ordered
//! list of base names: it changes exactly when some UID could mean another file (and, as a cost,
//! also when mail is only appended), and the engine answers a UIDVALIDITY change by re-matching
//! messages by content hash, which never re-uploads. Whole seconds, not nanoseconds, so a copy of
//! the tree that keeps only second-precision mtimes (older rsync, tar) keeps its identity.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use super::error::MaildirError;
use super::filename::{MaildirName, dovecot_sort_key};
use super::layout::is_gone;
use super::uidlist::{read_keywords, read_uidlist};
use crate::model::{Flags, Uid, UidValidity};

/// One message file.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub uid: Uid,
    pub path: PathBuf,
    pub base: String,
    pub flags: Flags,
    pub mtime: SystemTime,
    /// Length of the file on disk.
    pub file_len: u64,
    /// `S=` and `W=` from the name.
    pub disk_size: Option<u64>,
    pub crlf_size: Option<u64>,
}

impl Entry {
    /// The CRLF size when the name tells it reliably: `W=` is trusted when `S=` agrees with the
    /// file's real length (a name that lies about one size may lie about the other).
    pub fn known_crlf_size(&self) -> Option<u64> {
        match (self.disk_size, self.crlf_size) {
            (Some(s), Some(w)) if s == self.file_len => Some(w),
            _ => None,
        }
    }
}

/// A folder's messages, ordered by UID.
#[derive(Debug, Clone)]
pub(super) struct FolderScan {
    pub uid_validity: UidValidity,
    pub uid_next: u32,
    pub entries: BTreeMap<Uid, Entry>,
}

struct Found {
    path: PathBuf,
    name: String,
    mtime: SystemTime,
    len: u64,
}

/// A scan retries when files vanish under it (renamed by a flag change between readdir and
/// stat); after this many tries the vanished files are left for the next pass.
const SCAN_ATTEMPTS: usize = 3;

/// Reads `dir/cur` and `dir/new` and numbers the messages. `raw_name` feeds the fallback
/// UIDVALIDITY so two folders never share one.
pub(super) fn scan(dir: &Path, raw_name: &str) -> Result<FolderScan, MaildirError> {
    let mut files = Vec::new();
    for attempt in 1..=SCAN_ATTEMPTS {
        let (f, vanished) = list_files(dir)?;
        files = f;
        if !vanished {
            break;
        }
        if attempt == SCAN_ATTEMPTS {
            tracing::warn!(dir = %dir.display(), "files kept vanishing while listing; those are left for the next pass");
        }
    }
    // The uidlist is read after the directories: a file Dovecot numbered meanwhile is then in it;
    // one it numbered before the listing certainly is.
    let uidlist = read_uidlist(dir)?;
    let keywords = read_keywords(dir)?;

    // One entry per base name; `cur/` wins over `new/` (a move seen half-way).
    let mut by_base: HashMap<String, Found> = HashMap::new();
    for f in files {
        let base = MaildirName::parse(&f.name).base.to_owned();
        let in_cur = f.path.parent().and_then(Path::file_name) == Some("cur".as_ref());
        match by_base.get(&base) {
            Some(existing)
                if !in_cur
                    || existing.path.parent().and_then(Path::file_name) == Some("cur".as_ref()) => {
            }
            _ => {
                by_base.insert(base, f);
            }
        }
    }

    let make = |uid: Uid, base: &str, f: Found| {
        let n = MaildirName::parse(&f.name);
        Entry {
            uid,
            flags: n.flags(&keywords),
            disk_size: n.disk_size,
            crlf_size: n.crlf_size,
            base: base.to_owned(),
            path: f.path,
            mtime: f.mtime,
            file_len: f.len,
        }
    };
    let overflow = || MaildirError::UidOverflow {
        path: dir.to_owned(),
    };

    let mut entries = BTreeMap::new();
    match uidlist {
        Some(list) => {
            let mut unlisted: Vec<(String, Found)> = Vec::new();
            let mut max_uid = 0u32;
            for (base, f) in by_base {
                match list.uids.get(&base).copied().and_then(Uid::new) {
                    Some(uid) => {
                        max_uid = max_uid.max(uid.get());
                        entries.insert(uid, make(uid, &base, f));
                    }
                    None => unlisted.push((base, f)),
                }
            }
            unlisted.sort_by(|(a, fa), (b, fb)| {
                dovecot_sort_key(a, secs(fa.mtime)).cmp(&dovecot_sort_key(b, secs(fb.mtime)))
            });
            let mut next = list
                .next_uid
                .max(max_uid.checked_add(1).ok_or_else(overflow)?);
            for (base, f) in unlisted {
                let uid = Uid::new(next).ok_or_else(overflow)?;
                entries.insert(uid, make(uid, &base, f));
                next = next.checked_add(1).ok_or_else(overflow)?;
            }
            Ok(FolderScan {
                uid_validity: UidValidity::new(list.uid_validity).ok_or_else(|| {
                    MaildirError::Uidlist {
                        path: dir.join(super::uidlist::UIDLIST),
                        line: 1,
                        reason: "UIDVALIDITY 0".to_owned(),
                    }
                })?,
                uid_next: next,
                entries,
            })
        }
        None => {
            let mut all: Vec<(String, Found)> = by_base.into_iter().collect();
            all.sort_by(|(a, fa), (b, fb)| (secs(fa.mtime), a).cmp(&(secs(fb.mtime), b)));
            let mut hasher = Sha256::new();
            hasher.update((raw_name.len() as u64).to_be_bytes());
            hasher.update(raw_name.as_bytes());
            for (base, _) in &all {
                // Length-prefixed, so no two lists hash the same input.
                hasher.update((base.len() as u64).to_be_bytes());
                hasher.update(base.as_bytes());
            }
            let digest = hasher.finalize();
            let v = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
            let uid_validity = UidValidity::new(v)
                .or(UidValidity::new(1))
                .expect("1 is non-zero");
            let mut next = 1u32;
            for (base, f) in all {
                let uid = Uid::new(next).ok_or_else(overflow)?;
                entries.insert(uid, make(uid, &base, f));
                next = next.checked_add(1).ok_or_else(overflow)?;
            }
            Ok(FolderScan {
                uid_validity,
                uid_next: next,
                entries,
            })
        }
    }
}

fn secs(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// Lists message files in `cur/` and `new/` (not `tmp/`: those are still being written).
/// Returns whether some file vanished between readdir and stat.
fn list_files(dir: &Path) -> Result<(Vec<Found>, bool), MaildirError> {
    let mut out = Vec::new();
    let mut vanished = false;
    for sub in ["cur", "new"] {
        let d = dir.join(sub);
        let rd = match fs::read_dir(&d) {
            Ok(rd) => rd,
            Err(e) if is_gone(&e) => continue,
            Err(e) => return Err(MaildirError::io("listing", d, e)),
        };
        for entry in rd {
            let entry = entry.map_err(|e| MaildirError::io("listing", &d, e))?;
            let Ok(name) = entry.file_name().into_string() else {
                tracing::warn!(dir = %d.display(), name = ?entry.file_name(), "skipping non-UTF-8 message file name");
                continue;
            };
            let path = entry.path();
            let meta = match fs::metadata(&path) {
                Ok(m) => m,
                Err(e) if is_gone(&e) => {
                    vanished = true;
                    continue;
                }
                Err(e) => return Err(MaildirError::io("reading metadata of", path, e)),
            };
            // Hidden files (tool leftovers) and empty files are not messages; the accounting
            // reports each one with the same rule's reason.
            if !meta.is_file() || super::accounting::skip_reason(&name, meta.len()).is_some() {
                continue;
            }
            let mtime = meta
                .modified()
                .map_err(|e| MaildirError::io("reading mtime of", &path, e))?;
            out.push(Found {
                path,
                name,
                mtime,
                len: meta.len(),
            });
        }
    }
    Ok((out, vanished))
}

/// The current path of the message whose base name is `base` (`cur/` first), or `None` when it
/// has been expunged.
pub(super) fn find_by_base(dir: &Path, base: &str) -> Result<Option<PathBuf>, MaildirError> {
    for sub in ["cur", "new"] {
        let d = dir.join(sub);
        let rd = match fs::read_dir(&d) {
            Ok(rd) => rd,
            Err(e) if is_gone(&e) => continue,
            Err(e) => return Err(MaildirError::io("listing", d, e)),
        };
        for entry in rd {
            let entry = entry.map_err(|e| MaildirError::io("listing", &d, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if MaildirName::parse(name).base == base {
                return Ok(Some(entry.path()));
            }
        }
    }
    Ok(None)
}
