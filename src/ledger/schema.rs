//! The ledger's schema and its migrations, keyed by SQLite's `user_version`.
//!
//! Each entry of [`MIGRATIONS`] takes the schema from version `i` to `i + 1`. Never edit a
//! released migration: append a new one.

use super::{Ledger, LedgerError};

const MIGRATIONS: &[&str] = &[
    // 0 -> 1: the first schema.
    "CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        command TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        status TEXT NOT NULL,
        summary TEXT
    );
    CREATE TABLE mailboxes (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        destination TEXT NOT NULL,
        state TEXT,
        last_run INTEGER REFERENCES runs(id),
        last_error TEXT,
        last_error_class TEXT,
        updated_at TEXT
    );
    CREATE TABLE folders (
        id INTEGER PRIMARY KEY,
        mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id),
        source_name TEXT NOT NULL,
        mapped_name TEXT,
        dest_id TEXT,
        uid_validity INTEGER,
        highest_modseq INTEGER,
        uid_next INTEGER,
        UNIQUE (mailbox_id, source_name)
    );
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        folder_id INTEGER NOT NULL REFERENCES folders(id),
        uid_validity INTEGER NOT NULL,
        uid INTEGER NOT NULL,
        size INTEGER NOT NULL,
        sha256 TEXT,
        message_id TEXT,
        internal_date TEXT NOT NULL,
        flags TEXT NOT NULL DEFAULT '',
        state TEXT NOT NULL CHECK (state IN ('pending','sending','done','skipped','failed')),
        dest_id TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        error_class TEXT,
        source_gone INTEGER NOT NULL DEFAULT 0,
        updated_run INTEGER,
        UNIQUE (folder_id, uid_validity, uid)
    );
    CREATE INDEX messages_by_state ON messages (folder_id, state);
    CREATE INDEX messages_by_hash ON messages (folder_id, sha256);",
    // 1 -> 2: rows whose write was interrupted stay marked until the destination has been
    // checked for an orphaned second copy (that check must survive a further crash).
    "ALTER TABLE messages ADD COLUMN recheck INTEGER NOT NULL DEFAULT 0;",
    // 2 -> 3: when a destination asked a mailbox to hold off (Graph's Retry-After), the instant
    // it may be asked again, so a restarted process does not come back early (issue 13.4).
    "CREATE TABLE throttle (
        destination TEXT NOT NULL,
        mailbox TEXT NOT NULL,
        until_ms INTEGER NOT NULL,
        PRIMARY KEY (destination, mailbox)
    );",
    // 3 -> 4: the source's own totals, so `status` can say how much there is to copy rather
    // than how much of what was listed so far (issue 12.12): per folder, the messages and bytes
    // its last complete listing found; per mailbox, how many folders its last folder list had.
    "ALTER TABLE folders ADD COLUMN source_messages INTEGER;
    ALTER TABLE folders ADD COLUMN source_bytes INTEGER;
    ALTER TABLE mailboxes ADD COLUMN source_folders INTEGER;",
];

/// The schema version this build writes.
pub const VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the ledger to [`VERSION`], refusing a ledger from a newer build.
pub(super) fn migrate(ledger: &Ledger) -> Result<(), LedgerError> {
    let found: i64 = ledger.with(|c| c.query_row("PRAGMA user_version", [], |r| r.get(0)))?;
    if found > VERSION {
        return Err(LedgerError::TooNew {
            path: ledger.path().to_owned(),
            found,
            known: VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        ledger.with(|c| {
            let tx = c.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()
        })?;
    }
    Ok(())
}
