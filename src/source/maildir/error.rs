//! The Maildir source's error type. Every variant names the file or directory involved, because
//! the operator's next step is almost always to look at that path on the old host.

use std::io;
use std::path::PathBuf;

/// What can go wrong reading a Maildir tree.
#[derive(Debug, thiserror::Error)]
pub enum MaildirError {
    /// The root has neither `cur/`/`new/` (Maildir++ INBOX) nor an `INBOX/` or folder directories
    /// (Dovecot `LAYOUT=fs`).
    #[error(
        "{path} is not a Maildir: no cur/ or new/ directory, no INBOX/ and no folder directories"
    )]
    NotAMaildir { path: PathBuf },

    /// A file system call failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (`reading`, `listing`, `opening`...).
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A `dovecot-uidlist` line that cannot be parsed. Dovecot would rebuild the file (and change
    /// the folder's UIDVALIDITY); mailferry refuses to guess UIDs instead.
    #[error("{path} line {line}: {reason}")]
    Uidlist {
        path: PathBuf,
        line: usize,
        reason: String,
    },

    /// The engine asked for a folder this tree does not have (or no longer has).
    #[error("folder {folder:?} not found under {root}")]
    UnknownFolder { root: PathBuf, folder: String },

    /// More messages than 32-bit UIDs can number after the uidlist's highest UID.
    #[error("{path}: UIDs would exceed 4294967295")]
    UidOverflow { path: PathBuf },
}

impl MaildirError {
    pub(super) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        MaildirError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
