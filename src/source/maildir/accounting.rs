//! Every file the tree holds under a `cur/`, `new/` or `tmp/` directory, accounted for: taken
//! (a message of a listed folder), skipped for a stated reason, or not accounted for (mail the
//! reader cannot take: a directory that is neither layout's folder, a name that is not UTF-8).
//!
//! The walk here is deliberately plain and shares nothing with [`super::layout`]'s folder rules:
//! it visits every directory below the root (symlinks are not followed) and classifies each file
//! by the directory it sits in. Only the set of listed folder directories comes from the listing,
//! so a folder the layout code fails to list shows up here as mail that nobody took, rather than
//! vanishing (which is how `INBOX/Projects` once went missing without a word).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use super::error::MaildirError;
use super::filename::MaildirName;
use crate::source::accounting::SourceAccounting;

/// Depth guard for the walk.
const MAX_DEPTH: usize = 64;

/// Why a file was skipped, stated once per kind (the words reach reports and the terminal).
pub(crate) const TMP: &str =
    "in tmp/: a delivery still being written (mail programs move it to new/ when complete)";
pub(crate) const EMPTY: &str = "empty file (0 bytes): not a message";
pub(crate) const HIDDEN: &str =
    "hidden file (name starts with '.'): a tool's leftover, not a message";
pub(crate) const DUPLICATE: &str =
    "the same message is also in cur/ (a move from new/ seen half-way): taken once";
const NOT_UTF8: &str = "the file name is not UTF-8: rename the file to migrate it";
const DIR_NOT_UTF8: &str = "a directory on the way has a name that is not UTF-8";
const NOT_A_FOLDER: &str = "its directory is not a folder of this tree's layout";
const TOO_DEEP: &str = "directory tree deeper than 64 levels: not walked";

/// Whether a file in a folder's `cur/` or `new/` is a message the reader takes. The scan uses
/// this same rule, so what the accounting calls skipped is exactly what the reader leaves.
pub(super) fn skip_reason(name: &str, len: u64) -> Option<&'static str> {
    if name.starts_with('.') {
        Some(HIDDEN)
    } else if len == 0 {
        Some(EMPTY)
    } else {
        None
    }
}

/// Accounts for every file of the tree rooted at `root`; `folder_dirs` are the directories of
/// the listed (selectable) folders, `excluded` those a plan rule leaves out (with the reason).
pub(super) fn account(
    root: &Path,
    folder_dirs: &[PathBuf],
    excluded: &HashMap<PathBuf, String>,
) -> Result<SourceAccounting, MaildirError> {
    let folders: HashSet<PathBuf> = folder_dirs.iter().cloned().collect();
    let mut acc = SourceAccounting {
        unit: "message files".into(),
        ..SourceAccounting::default()
    };
    let mut stack = vec![(root.to_owned(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            acc.unaccounted(dir.display().to_string(), TOO_DEEP);
            continue;
        }
        let rd = fs::read_dir(&dir).map_err(|e| MaildirError::io("listing", &dir, e))?;
        let role = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let in_mail_subdir = matches!(role, "cur" | "new" | "tmp");
        let owner_listed = dir.parent().is_some_and(|p| folders.contains(p));
        // Base names in this folder's cur/, to recognise a new/ file seen twice.
        let cur_bases: HashSet<String> = if role == "new" {
            dir.parent()
                .map(|p| bases_in(&p.join("cur")))
                .unwrap_or_default()
        } else {
            HashSet::new()
        };
        for entry in rd {
            let entry = entry.map_err(|e| MaildirError::io("listing", &dir, e))?;
            let path = entry.path();
            let ft = entry
                .file_type()
                .map_err(|e| MaildirError::io("reading metadata of", &path, e))?;
            if ft.is_dir() {
                if entry.file_name().to_str().is_none() && has_files_below(&path) {
                    // Whatever is below cannot be named as a folder: every file counts.
                    for f in files_below(&path) {
                        acc.total += 1;
                        acc.unaccounted(f.display().to_string(), DIR_NOT_UTF8);
                    }
                    continue;
                }
                stack.push((path, depth + 1));
                continue;
            }
            if !ft.is_file() || !in_mail_subdir {
                continue;
            }
            acc.total += 1;
            if role == "tmp" {
                acc.skip(path.display().to_string(), TMP);
                continue;
            }
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                acc.unaccounted(path.display().to_string(), NOT_UTF8);
                continue;
            };
            if !owner_listed {
                acc.unaccounted(path.display().to_string(), NOT_A_FOLDER);
                continue;
            }
            let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
            if let Some(reason) = dir.parent().and_then(|p| excluded.get(p)) {
                acc.skip(path.display().to_string(), reason.as_str());
            } else if let Some(reason) = skip_reason(&name, len) {
                acc.skip(path.display().to_string(), reason);
            } else if role == "new" && cur_bases.contains(MaildirName::parse(&name).base) {
                acc.skip(path.display().to_string(), DUPLICATE);
            } else {
                acc.taken += 1;
            }
        }
    }
    acc.sort();
    Ok(acc)
}

fn bases_in(dir: &Path) -> HashSet<String> {
    let Ok(rd) = fs::read_dir(dir) else {
        return HashSet::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .map(|n| MaildirName::parse(&n).base.to_owned())
        .collect()
}

fn has_files_below(dir: &Path) -> bool {
    !files_below(dir).is_empty()
}

/// Every file under `dir` that sits directly in a `cur/`, `new/` or `tmp/` directory.
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_owned(), 0usize)];
    while let Some((d, depth)) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        let role = d.file_name().map(|n| n.to_string_lossy().into_owned());
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() && depth < MAX_DEPTH => stack.push((e.path(), depth + 1)),
                Ok(t) if t.is_file() && matches!(role.as_deref(), Some("cur" | "new" | "tmp")) => {
                    out.push(e.path())
                }
                _ => {}
            }
        }
    }
    out
}

/// Message files per directory (each `cur/`+`new/` pair counted under the folder directory),
/// by the plain walk: the independent count `verify --deep` compares with the destination.
pub(super) fn count_per_dir(root: &Path) -> Result<BTreeMap<PathBuf, u64>, MaildirError> {
    let mut out: BTreeMap<PathBuf, u64> = BTreeMap::new();
    let mut stack = vec![(root.to_owned(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            continue;
        }
        let rd = fs::read_dir(&dir).map_err(|e| MaildirError::io("listing", &dir, e))?;
        let role = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let cur_bases = if role == "new" {
            dir.parent()
                .map(|p| bases_in(&p.join("cur")))
                .unwrap_or_default()
        } else {
            HashSet::new()
        };
        for entry in rd.flatten() {
            let Ok(ft) = entry.file_type() else { continue };
            if ft.is_dir() {
                stack.push((entry.path(), depth + 1));
                continue;
            }
            if !ft.is_file() || !matches!(role, "cur" | "new") {
                continue;
            }
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
            if skip_reason(&name, len).is_some()
                || (role == "new" && cur_bases.contains(MaildirName::parse(&name).base))
            {
                continue;
            }
            if let Some(folder) = dir.parent() {
                *out.entry(folder.to_owned()).or_default() += 1;
            }
        }
    }
    Ok(out)
}
