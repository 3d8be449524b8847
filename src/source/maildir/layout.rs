//! Which folder lives in which directory, for the two layouts found on real hosts.
//!
//! - **Maildir++** (Courier, cPanel, Dovecot's default): the root's `cur/` `new/` are INBOX; every
//!   other folder is a dot-directory directly under the root, its name the folder's full name with
//!   `.` as the hierarchy delimiter (`.Archive.2019`), in modified UTF-7.
//! - **Dovecot `LAYOUT=fs`**: folders are nested directories (`Archive/2019/cur`), delimiter `/`,
//!   names in modified UTF-7. INBOX is `INBOX/` when it exists (Dovecot's `INBOX=~/Maildir/INBOX`
//!   setting), otherwise the root's own `cur/` `new/`.
//!
//! The raw folder name is what Dovecot would send over IMAP (modified UTF-7, layout's delimiter),
//! so a mailbox's identity stamps match whichever way it is read.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::error::MaildirError;
use crate::model::{FolderPath, SourceFolder, SpecialUse};

/// The two supported layouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// Dot-directories under the root, delimiter `.`.
    MaildirPlusPlus,
    /// Nested directories, delimiter `/`; `inbox` is the directory holding INBOX's `cur/`.
    Fs { inbox: PathBuf },
}

impl Layout {
    /// The hierarchy delimiter folder names use.
    pub fn delimiter(&self) -> char {
        match self {
            Layout::MaildirPlusPlus => '.',
            Layout::Fs { .. } => '/',
        }
    }
}

/// Directory names inside a Maildir that are never folders.
const MAILDIR_SUBDIRS: [&str; 3] = ["cur", "new", "tmp"];

fn is_dir(path: &Path) -> bool {
    fs::metadata(path).map(|m| m.is_dir()).unwrap_or(false)
}

/// A directory that is a mailbox: it has `cur/` or `new/`, or Dovecot's marks of a mailbox it
/// created but has not put mail in yet (Dovecot creates `cur/` `new/` `tmp/` lazily, after
/// writing `dovecot-uidlist`, and Maildir++ folders get an empty `maildirfolder` file).
pub(super) fn is_mail_dir(path: &Path) -> bool {
    is_dir(&path.join("cur"))
        || is_dir(&path.join("new"))
        || path.join(super::uidlist::UIDLIST).is_file()
        || path.join("maildirfolder").is_file()
}

/// Subdirectory names of `dir` as UTF-8 strings (names that are not UTF-8 are skipped with a
/// warning: they cannot be IMAP folder names either).
fn subdirs(dir: &Path) -> Result<Vec<String>, MaildirError> {
    let rd = fs::read_dir(dir).map_err(|e| MaildirError::io("listing", dir, e))?;
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| MaildirError::io("listing", dir, e))?;
        let path = entry.path();
        if !is_dir(&path) {
            continue;
        }
        match entry.file_name().into_string() {
            Ok(name) => out.push(name),
            Err(name) => {
                tracing::warn!(dir = %dir.display(), ?name, "skipping non-UTF-8 folder directory")
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Works out the layout of a user's Maildir root.
pub(super) fn detect(root: &Path) -> Result<Layout, MaildirError> {
    let meta = fs::metadata(root).map_err(|e| MaildirError::io("opening", root, e))?;
    if !meta.is_dir() {
        return Err(MaildirError::NotAMaildir {
            path: root.to_owned(),
        });
    }
    let names = subdirs(root)?;
    let root_is_mail = is_mail_dir(root);
    let has_dot_folder = names
        .iter()
        .any(|n| n.len() > 1 && n.starts_with('.') && n != "..");
    let inbox_dir = root.join("INBOX");
    let has_nested_folder = names.iter().any(|n| {
        !n.starts_with('.') && !MAILDIR_SUBDIRS.contains(&n.as_str()) && {
            let p = root.join(n);
            is_mail_dir(&p) || has_mail_below(&p, 8)
        }
    });
    // Dot-folders decide it: LAYOUT=fs never creates them, Maildir++ never nests.
    if has_dot_folder || (root_is_mail && !has_nested_folder) {
        return Ok(Layout::MaildirPlusPlus);
    }
    if is_mail_dir(&inbox_dir) {
        return Ok(Layout::Fs { inbox: inbox_dir });
    }
    if has_nested_folder {
        return Ok(Layout::Fs {
            inbox: root.to_owned(),
        });
    }
    Err(MaildirError::NotAMaildir {
        path: root.to_owned(),
    })
}

/// Whether some directory below `dir` (within `depth` levels) holds messages.
fn has_mail_below(dir: &Path, depth: usize) -> bool {
    if depth == 0 {
        return false;
    }
    let Ok(names) = subdirs(dir) else {
        return false;
    };
    names.iter().any(|n| {
        !n.starts_with('.') && !MAILDIR_SUBDIRS.contains(&n.as_str()) && {
            let p = dir.join(n);
            is_mail_dir(&p) || has_mail_below(&p, depth - 1)
        }
    })
}

/// Decodes one modified UTF-7 segment; a name that is not valid modified UTF-7 (written by some
/// other tool) is kept as it is rather than losing the folder.
fn decode_segment(segment: &str) -> String {
    crate::utf7::decode(segment).unwrap_or_else(|e| {
        tracing::warn!(%e, "folder name is not modified UTF-7; using it as it is");
        segment.to_owned()
    })
}

fn folder(raw: &str, delimiter: char, selectable: bool) -> Option<SourceFolder> {
    let segments: Vec<String> = raw
        .split(delimiter)
        .filter(|s| !s.is_empty())
        .map(decode_segment)
        .collect();
    Some(SourceFolder {
        raw_name: raw.to_owned(),
        path: FolderPath::new(segments)?,
        delimiter: Some(delimiter),
        special_use: None,
        selectable,
    })
}

/// Every folder of the tree: INBOX first, then by raw name. Parents that exist only because they
/// have children are listed as not selectable, as Dovecot lists them, so a destination can
/// build the same hierarchy.
pub(super) fn list(root: &Path, layout: &Layout) -> Result<Vec<SourceFolder>, MaildirError> {
    let delimiter = layout.delimiter();
    let mut found: Vec<(String, bool)> = Vec::new();
    match layout {
        Layout::MaildirPlusPlus => {
            for name in subdirs(root)? {
                let Some(raw) = name.strip_prefix('.') else {
                    continue;
                };
                if raw.is_empty() || raw == "." {
                    continue;
                }
                // Every dot-directory is a folder in Maildir++, even before it has cur/ and
                // new/ (Dovecot lists and selects it; it creates them on first use).
                found.push((raw.to_owned(), true));
            }
        }
        Layout::Fs { inbox } => {
            let skip_inbox = inbox != root;
            walk_fs(root, "", skip_inbox, &mut found, 0)?;
        }
    }
    // Synthesize missing parents (`.Archive.2019` without `.Archive`).
    let mut all: std::collections::BTreeMap<String, bool> = found.into_iter().collect();
    let names: Vec<String> = all.keys().cloned().collect();
    for name in names {
        let mut prefix = String::new();
        let parts: Vec<&str> = name.split(delimiter).collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            if !prefix.is_empty() {
                prefix.push(delimiter);
            }
            prefix.push_str(part);
            if !prefix.is_empty() {
                all.entry(prefix.clone()).or_insert(false);
            }
        }
    }
    let mut out = vec![SourceFolder {
        raw_name: "INBOX".to_owned(),
        path: FolderPath::new(vec!["INBOX".to_owned()]).expect("non-empty segment"),
        delimiter: Some(delimiter),
        special_use: Some(SpecialUse::Inbox),
        selectable: true,
    }];
    for (raw, selectable) in all {
        // A Maildir++ `.INBOX` directory would shadow the real INBOX; IMAP cannot show both.
        if raw.eq_ignore_ascii_case("INBOX") {
            continue;
        }
        if let Some(f) = folder(&raw, delimiter, selectable) {
            out.push(f);
        }
    }
    Ok(out)
}

/// Depth guard for LAYOUT=fs trees (a symlink loop must not hang a survey).
const MAX_DEPTH: usize = 64;

fn walk_fs(
    dir: &Path,
    prefix: &str,
    skip_inbox: bool,
    found: &mut Vec<(String, bool)>,
    depth: usize,
) -> Result<(), MaildirError> {
    if depth > MAX_DEPTH {
        tracing::warn!(dir = %dir.display(), "folder tree deeper than {MAX_DEPTH}; not descending");
        return Ok(());
    }
    for name in subdirs(dir)? {
        if name.starts_with('.') || MAILDIR_SUBDIRS.contains(&name.as_str()) {
            continue;
        }
        if depth == 0 && skip_inbox && name == "INBOX" {
            continue;
        }
        let path = dir.join(&name);
        let raw = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        let selectable = is_mail_dir(&path);
        let before = found.len();
        walk_fs(&path, &raw, skip_inbox, found, depth + 1)?;
        // An empty directory with no mail anywhere below is not a folder.
        if selectable || found.len() > before {
            found.push((raw, selectable));
        }
    }
    Ok(())
}

/// The directory holding a folder's `cur/` and `new/`, from its raw name. Refuses names that
/// could step outside the root.
pub(super) fn folder_dir(root: &Path, layout: &Layout, raw_name: &str) -> Option<PathBuf> {
    if raw_name == "INBOX" {
        return Some(match layout {
            Layout::MaildirPlusPlus => root.to_owned(),
            Layout::Fs { inbox } => inbox.clone(),
        });
    }
    if raw_name.is_empty() || raw_name.contains('\0') {
        return None;
    }
    match layout {
        Layout::MaildirPlusPlus => {
            if raw_name.contains('/') {
                return None;
            }
            Some(root.join(format!(".{raw_name}")))
        }
        Layout::Fs { .. } => {
            let mut p = root.to_owned();
            for seg in raw_name.split('/') {
                if seg.is_empty() || seg == "." || seg == ".." {
                    return None;
                }
                p.push(seg);
            }
            Some(p)
        }
    }
}

/// Whether an I/O error means "the file went away", which Maildir readers must expect: another
/// process renamed it (flag change, new/ -> cur/) or expunged it.
pub(super) fn is_gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}
