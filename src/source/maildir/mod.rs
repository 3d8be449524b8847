//! The Maildir source: reads a user's Maildir or Maildir++ tree straight from disk (cPanel and
//! Dovecot hosts), so an administrator with shell access to the old host can migrate without
//! anyone's password and without loading the old IMAP server.
//!
//! What it owns, file by file:
//! - [`layout`]: Maildir++ vs Dovecot `LAYOUT=fs`, folder names (modified UTF-7, Dovecot's
//!   `listescape` sequences) and directories.
//! - `filename`: `base:2,FLAGS` names, `S=`/`W=` sizes, flag letters and keywords.
//! - `uidlist`: Dovecot's `dovecot-uidlist` and `dovecot-keywords`.
//! - `scan`: one folder's files and their UIDs/UIDVALIDITY (the rules are documented there).
//! - `message`: bytes handed on (CRLF line ends), sizes and the Message-ID.
//!
//! The bytes [`MaildirSource::fetch_bodies`] returns are the file's bytes with every bare LF turned
//! into CRLF, exactly what Dovecot serves over IMAP for the same file; `MessageMeta::size` is
//! the length of those bytes. INTERNALDATE is the file's mtime (Dovecot sets it to the internal
//! date when it saves). A message whose file is renamed by a flag change or moved from `new/` to
//! `cur/` keeps its UID: identity is the base name, never the full file name.
//!
//! Every file under a `cur/`, `new/` or `tmp/` of the tree is accounted for by
//! [`MaildirSource::accounting`] (taken, skipped with a reason, or not accounted for), by a walk
//! that does not use the layout code; `verify --deep` counts through the same plain walk.
//!
//! Not read: `tmp/` (files still being written), Courier's `courierimapuiddb` and
//! `courierimapkeywords/`, Dovecot setups whose control files live outside the Maildir
//! (`CONTROL=`), and special-use folder roles (Dovecot keeps those in its config, not the tree;
//! `translate` maps common names). The file system is only read, never written.

mod accounting;
mod error;
pub(crate) mod filename;
pub mod layout;
mod message;
mod scan;
mod subscriptions;
mod uidlist;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Timelike, Utc};

pub use error::MaildirError;
pub use layout::Layout;

use crate::body::Body;
use crate::model::{FolderStatus, MessageMeta, SourceFolder, Uid};
use scan::FolderScan;

/// A tree's message files counted by a plain walk, beside the listing's folder directories.
#[derive(Debug, Clone, Default)]
pub struct IndependentCounts {
    /// Message files per folder directory (its `cur/` and `new/` together).
    pub per_dir: BTreeMap<PathBuf, u64>,
    /// Each listed folder's directory, by raw name.
    pub folder_dirs: HashMap<String, PathBuf>,
}

/// One user's Maildir tree, opened for reading.
#[derive(Debug)]
pub struct MaildirSource {
    root: PathBuf,
    layout: Layout,
    /// The last scan of each folder (by raw name): `fetch_bodies` finds files through it and
    /// rescans only when a file has moved since.
    scans: HashMap<String, FolderScan>,
    /// Raw name -> directory, from the last listing (names are not always reversible to
    /// directory names: `listescape`, literal backslashes).
    dirs: HashMap<String, PathBuf>,
}

impl MaildirSource {
    /// `root` is one user's Maildir (the directory holding cur/ new/ tmp/ of INBOX, or for
    /// Dovecot's LAYOUT=fs the Maildir root with INBOX/ and nested folder dirs). Detects the
    /// layout.
    pub fn open(root: &Path) -> Result<MaildirSource, MaildirError> {
        let layout = layout::detect(root)?;
        Ok(MaildirSource {
            root: root.to_owned(),
            layout,
            scans: HashMap::new(),
            dirs: HashMap::new(),
        })
    }

    /// The layout found by [`MaildirSource::open`].
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The tree's root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every folder: INBOX first (special use `Inbox`), then the others by raw name. Parents
    /// that only exist as containers are listed with `selectable: false`.
    pub fn list_folders(&mut self) -> Result<Vec<SourceFolder>, MaildirError> {
        let found = layout::list(&self.root, &self.layout)?;
        self.dirs = found
            .iter()
            .filter_map(|f| Some((f.folder.raw_name.clone(), f.dir.clone()?)))
            .collect();
        Ok(found.into_iter().map(|f| f.folder).collect())
    }

    /// Scans the folder and reports its UIDVALIDITY, next UID and message count. This scan is
    /// the snapshot the following `fetch_meta` and `fetch_bodies` calls serve, so the UIDs they
    /// use always belong to the UIDVALIDITY reported here (call `select` again for a fresh look).
    pub fn select(&mut self, folder: &SourceFolder) -> Result<FolderStatus, MaildirError> {
        let scan = self.rescan(folder)?;
        Ok(FolderStatus {
            uid_validity: scan.uid_validity,
            uid_next: Some(scan.uid_next),
            exists: u32::try_from(scan.entries.len()).unwrap_or(u32::MAX),
            highest_modseq: None,
        })
    }

    /// Metadata of every message of the folder's last `select` (scanning first if there was
    /// none), by ascending UID. Reads each file's header block for the Message-ID; reads the
    /// whole file (in bounded chunks) only when its name does not carry a trustworthy `W=` size.
    /// A message expunged since the scan is left out.
    pub fn fetch_meta(&mut self, folder: &SourceFolder) -> Result<Vec<MessageMeta>, MaildirError> {
        let scan = match self.scans.get(&folder.raw_name) {
            Some(s) => s.clone(),
            None => self.rescan(folder)?.clone(),
        };
        let mut out = Vec::with_capacity(scan.entries.len());
        for entry in scan.entries.values() {
            let known = entry.known_crlf_size();
            let info = match message::inspect(&entry.path, known.is_none()) {
                Ok(info) => info,
                // Renamed (flag change) or expunged since the scan: look again once.
                Err(MaildirError::Io { source, .. }) if layout::is_gone(&source) => {
                    match self.relocate(folder, entry.uid, &entry.base)? {
                        Some(path) => message::inspect(&path, known.is_none())?,
                        None => continue,
                    }
                }
                Err(e) => return Err(e),
            };
            let size = known.or(info.crlf_size).unwrap_or(entry.file_len);
            // Whole seconds, as IMAP's INTERNALDATE has them (Dovecot sets the mtime from it).
            let internal_date = DateTime::<Utc>::from(entry.mtime)
                .with_nanosecond(0)
                .unwrap_or_else(|| DateTime::<Utc>::from(entry.mtime))
                .fixed_offset();
            out.push(MessageMeta {
                uid: entry.uid,
                size,
                flags: entry.flags.clone(),
                internal_date,
                message_id: info.message_id,
                modseq: None,
            });
        }
        Ok(out)
    }

    /// The raw bytes (CRLF line ends, see the module docs) of the given UIDs of the folder's last
    /// `select`, in the order asked. A UID that is not (or no longer) in the folder is left out,
    /// as IMAP's UID FETCH does; a file renamed since the scan is found by its base name.
    pub fn fetch_bodies(
        &mut self,
        folder: &SourceFolder,
        uids: &[Uid],
    ) -> Result<Vec<(Uid, Body)>, MaildirError> {
        if !self.scans.contains_key(&folder.raw_name) {
            self.rescan(folder)?;
        }
        let mut out = Vec::with_capacity(uids.len());
        for &uid in uids {
            let Some(entry) = self
                .scans
                .get(&folder.raw_name)
                .and_then(|s| s.entries.get(&uid))
                .map(|e| (e.path.clone(), e.base.clone()))
            else {
                continue;
            };
            let (path, base) = entry;
            let body = match message::read_crlf(&path) {
                Ok(body) => body,
                Err(e) if layout::is_gone(&e) => match self.relocate(folder, uid, &base)? {
                    Some(p) => {
                        message::read_crlf(&p).map_err(|e| MaildirError::io("reading", p, e))?
                    }
                    None => continue,
                },
                Err(e) => return Err(MaildirError::io("reading", path, e)),
            };
            out.push((uid, body));
        }
        Ok(out)
    }

    /// Where every file of the tree went (see [`crate::source::accounting`]): lists the folders
    /// first, then walks the whole tree without the layout's rules. `excluded` maps the raw
    /// names of folders a plan rule leaves out to the rule, which becomes the skip reason.
    pub fn accounting(
        &mut self,
        excluded: &HashMap<String, String>,
    ) -> Result<crate::source::accounting::SourceAccounting, MaildirError> {
        let folders = layout::list(&self.root, &self.layout)?;
        let dirs: Vec<PathBuf> = folders
            .iter()
            .filter(|f| f.folder.selectable)
            .filter_map(|f| f.dir.clone())
            .collect();
        let excluded_dirs: HashMap<PathBuf, String> = folders
            .iter()
            .filter_map(|f| Some((f.dir.clone()?, excluded.get(&f.folder.raw_name)?.clone())))
            .collect();
        accounting::account(&self.root, &dirs, &excluded_dirs)
    }

    /// Message files per folder directory by a plain walk of the tree (no layout rules), and
    /// each listed folder's directory by raw name: what `verify --deep` compares with the
    /// destination, independently of the listing migrate used.
    pub fn independent_counts(&mut self) -> Result<IndependentCounts, MaildirError> {
        let per_dir = accounting::count_per_dir(&self.root)?;
        let folder_dirs = layout::list(&self.root, &self.layout)?
            .into_iter()
            .filter_map(|f| Some((f.folder.raw_name, f.dir?)))
            .collect();
        Ok(IndependentCounts {
            per_dir,
            folder_dirs,
        })
    }

    /// The folder's directory, from the last listing (listing again once if the name is not
    /// known yet, e.g. when the engine resumes from its ledger without listing).
    fn folder_dir(&mut self, folder: &SourceFolder) -> Result<PathBuf, MaildirError> {
        if !self.dirs.contains_key(&folder.raw_name) {
            self.list_folders()?;
        }
        match self.dirs.get(&folder.raw_name) {
            // A folder deleted since the listing must not read as an empty one.
            Some(dir) if dir.is_dir() => Ok(dir.clone()),
            _ => Err(MaildirError::UnknownFolder {
                root: self.root.clone(),
                folder: folder.raw_name.clone(),
            }),
        }
    }

    fn rescan(&mut self, folder: &SourceFolder) -> Result<&FolderScan, MaildirError> {
        let dir = self.folder_dir(folder)?;
        let scan = scan::scan(&dir, &folder.raw_name)?;
        Ok(self
            .scans
            .entry(folder.raw_name.clone())
            .insert_entry(scan)
            .into_mut())
    }

    /// Finds where the message with `base` lives now (after a flag change renamed it or a
    /// `new/` -> `cur/` move) and records the new path in the snapshot. Only the snapshot's entry
    /// is updated, never the UID assignment: the engine's UIDs keep meaning what they meant.
    fn relocate(
        &mut self,
        folder: &SourceFolder,
        uid: Uid,
        base: &str,
    ) -> Result<Option<PathBuf>, MaildirError> {
        let dir = self.folder_dir(folder)?;
        let found = scan::find_by_base(&dir, base)?;
        if let (Some(path), Some(entry)) = (
            &found,
            self.scans
                .get_mut(&folder.raw_name)
                .and_then(|s| s.entries.get_mut(&uid)),
        ) {
            entry.path = path.clone();
        }
        Ok(found)
    }
}
