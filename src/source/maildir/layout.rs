//! Which folder lives in which directory, for the two layouts found on real hosts.
//!
//! - **Maildir++** (Courier, cPanel, Dovecot's default): the root's `cur/` `new/` are INBOX; every
//!   other folder is a dot-directory directly under the root, its name the folder's full name with
//!   `.` as the hierarchy delimiter (`.Archive.2019`), in modified UTF-7.
//! - **Dovecot `LAYOUT=fs`**: folders are nested directories (`Archive/2019/cur`), delimiter `/`,
//!   names in modified UTF-7. INBOX is `INBOX/` when it exists (Dovecot's `INBOX=~/Maildir/INBOX`
//!   setting), otherwise the root's own `cur/` `new/`. With `INBOX/`, INBOX's children live inside
//!   it (`INBOX/Projects/2019/cur` is the folder `INBOX/Projects/2019`).
//! - A directory whose name is INBOX in another case (a Maildir++ `.Inbox`) is a folder of its
//!   own on disk; it is listed under its directory name (`.Inbox`), never dropped.
//!
//! The raw folder name is what Dovecot would send over IMAP (modified UTF-7, layout's delimiter),
//! so a mailbox's identity stamps match whichever way it is read.

use std::collections::BTreeMap;
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

/// Undoes Dovecot's `listescape` plugin (escape character `\`), which stores a `/`, `\`, `.` or
/// leading `~` in a folder name as `\2f`, `\5c`, `\2e`, `\7e` on disk. Only those four codes are
/// decoded: they are all the plugin writes, and a tree without the plugin may hold a literal
/// backslash before other hex digits (`Invoices\2024` stays as it is).
pub(super) fn unescape_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    let mut rest = segment;
    while let Some(pos) = rest.find('\\') {
        out.push_str(&rest[..pos]);
        let code = rest.get(pos + 1..pos + 3).map(str::to_ascii_lowercase);
        let decoded = match code.as_deref() {
            Some("2f") => Some('/'),
            Some("5c") => Some('\\'),
            Some("2e") => Some('.'),
            Some("7e") => Some('~'),
            _ => None,
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[pos + 3..];
            }
            None => {
                out.push('\\');
                rest = &rest[pos + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// A folder found in the tree, with the directory holding its messages (`None` for a parent
/// that exists only because it has children).
#[derive(Debug, Clone)]
pub(super) struct FoundFolder {
    pub folder: SourceFolder,
    pub dir: Option<PathBuf>,
}

/// Every folder of the tree: INBOX first, then by name. Parents that exist only because they
/// have children are listed as not selectable, as Dovecot lists them, so a destination can
/// build the same hierarchy.
///
/// The raw name is what Dovecot sends over IMAP: the on-disk segments with `listescape`
/// sequences undone (still modified UTF-7), joined with the layout's delimiter.
pub(super) fn list(root: &Path, layout: &Layout) -> Result<Vec<FoundFolder>, MaildirError> {
    let delimiter = layout.delimiter();
    // On-disk segments (escaped) -> directory.
    let mut found: Vec<(Vec<String>, PathBuf)> = Vec::new();
    match layout {
        Layout::MaildirPlusPlus => {
            for name in subdirs(root)? {
                let Some(rest) = name.strip_prefix('.') else {
                    continue;
                };
                let segments: Vec<String> = rest
                    .split('.')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
                if segments.is_empty() {
                    continue;
                }
                // Every dot-directory is a folder in Maildir++, even before it has cur/ and
                // new/ (Dovecot lists and selects it; it creates them on first use).
                found.push((segments, root.join(&name)));
            }
        }
        Layout::Fs { inbox } => {
            let skip_inbox = inbox != root;
            walk_fs(root, &[], skip_inbox, &mut found, 0)?;
        }
    }
    // Keyed by the IMAP-level segments; missing parents (`.Archive.2019` without `.Archive`)
    // are added as containers.
    let mut all: BTreeMap<Vec<String>, Option<PathBuf>> = BTreeMap::new();
    for (segments, dir) in found {
        let imap: Vec<String> = segments.iter().map(|s| unescape_segment(s)).collect();
        for n in 1..imap.len() {
            all.entry(imap[..n].to_vec()).or_insert(None);
        }
        all.insert(imap, Some(dir));
    }
    let inbox_dir = match layout {
        Layout::MaildirPlusPlus => root.to_owned(),
        Layout::Fs { inbox } => inbox.clone(),
    };
    let mut out = vec![FoundFolder {
        folder: SourceFolder {
            raw_name: "INBOX".to_owned(),
            path: FolderPath::new(vec!["INBOX".to_owned()]).expect("non-empty segment"),
            delimiter: Some(delimiter),
            special_use: Some(SpecialUse::Inbox),
            selectable: true,
        },
        dir: Some(inbox_dir.clone()),
    }];
    for (segments, dir) in all {
        let mut raw_name = segments.join(&delimiter.to_string());
        if segments.len() == 1 && segments[0].eq_ignore_ascii_case("INBOX") {
            match &dir {
                // The parent of `INBOX/Projects`: that is INBOX itself, already listed.
                None => continue,
                Some(d) if *d == inbox_dir => continue,
                // A Maildir++ `.Inbox` (or a `LAYOUT=fs` `Inbox/` beside `INBOX/`) is a folder
                // of its own on disk, whose IMAP name would collide with INBOX. Its mail is
                // still the user's: it is listed under the directory's own name, so its
                // identity never mixes with INBOX's, and the mapper decides where it goes.
                Some(d) => {
                    tracing::info!(dir = %d.display(), "a folder directory named like INBOX is listed on its own");
                    if *layout == Layout::MaildirPlusPlus {
                        raw_name = format!(".{raw_name}");
                    }
                }
            }
        }
        let decoded: Vec<String> = segments.iter().map(|s| decode_segment(s)).collect();
        let Some(path) = FolderPath::new(decoded) else {
            continue;
        };
        out.push(FoundFolder {
            folder: SourceFolder {
                raw_name,
                path,
                delimiter: Some(delimiter),
                special_use: None,
                selectable: dir.is_some(),
            },
            dir,
        });
    }
    Ok(out)
}

/// Depth guard for LAYOUT=fs trees (a symlink loop must not hang a survey).
const MAX_DEPTH: usize = 64;

fn walk_fs(
    dir: &Path,
    prefix: &[String],
    skip_inbox: bool,
    found: &mut Vec<(Vec<String>, PathBuf)>,
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
        let path = dir.join(&name);
        let mut segments = prefix.to_vec();
        segments.push(name);
        if depth == 0 && skip_inbox && segments[0] == "INBOX" {
            // `INBOX=~/Maildir/INBOX`: INBOX's own messages are listed as INBOX, and Dovecot
            // keeps INBOX's children inside it (`INBOX/Projects/cur`): those are folders.
            walk_fs(&path, &segments, skip_inbox, found, depth + 1)?;
            continue;
        }
        walk_fs(&path, &segments, skip_inbox, found, depth + 1)?;
        // A directory that is not a mailbox is a container: listed through its children (an
        // empty one with no mail anywhere below is not a folder at all).
        if is_mail_dir(&path) {
            found.push((segments, path));
        }
    }
    Ok(())
}

/// Whether an I/O error means "the file went away", which Maildir readers must expect: another
/// process renamed it (flag change, new/ -> cur/) or expunged it.
pub(super) fn is_gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listescape_decodes_only_what_the_plugin_writes() {
        assert_eq!(unescape_segment("a\\2fb"), "a/b");
        assert_eq!(
            unescape_segment("Clients \\5c Partners"),
            "Clients \\ Partners"
        );
        assert_eq!(unescape_segment("\\7etilde\\2E"), "~tilde.");
        assert_eq!(unescape_segment("x\\2024"), "x\\2024");
        assert_eq!(
            unescape_segment("Clients \\ Partners"),
            "Clients \\ Partners"
        );
        assert_eq!(unescape_segment("end\\"), "end\\");
        assert_eq!(unescape_segment("\\5"), "\\5");
    }
}
