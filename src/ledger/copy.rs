//! Copying a whole ledger between SQLite and PostgreSQL (`mailferry ledger copy`): a project
//! moves into fleet mode mid-way (SQLite -> PostgreSQL), or backs out of it / takes a backup
//! (PostgreSQL -> SQLite).
//!
//! Both backends hold the same `ledger` schema at the same version (PostgreSQL's `ledger` track
//! mirrors SQLite's migrations column for column, and each side is migrated by this build when
//! opened), so the copy is table by table, column for column, keeping every id: message rows
//! keep pointing at their folders, folders at their mailboxes, `updated_run` at its run. The
//! PostgreSQL side is in `postgres/copy.rs`; this module holds what both sides share (the
//! table list, batches) and the SQLite reads and writes.
//!
//! What is *not* copied: fleet mode's own tables (plan identity, workers, leases) and the
//! fleet's `runs.worker` column. They describe a fleet, not the migration's state; a copy into
//! PostgreSQL gets them when the plan is registered, a copy into SQLite has no use for them.
//!
//! Tables are read in batches ordered by id ("rows after id N"), so memory stays bounded by
//! one batch whatever the ledger's size.

use rusqlite::types::Value;
use serde::Serialize;

use super::postgres::PgLedgerError;
use super::{Ledger, LedgerError};

/// Rows read and written per statement.
pub(crate) const BATCH_ROWS: usize = 2000;

/// What a column holds. Integers are 64-bit on both sides (PostgreSQL's few `INTEGER` columns
/// take them by assignment cast); times are RFC 3339 text on both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Int,
    Text,
}

/// One table of the `ledger` schema, with its columns in copy order.
pub(crate) struct Table {
    pub name: &'static str,
    pub columns: &'static [(&'static str, Kind)],
    /// The first column is an identity id: batches are ordered by it, and PostgreSQL's sequence
    /// is moved past the highest one after the copy. `false`: a small table copied in one go.
    pub has_id: bool,
}

use Kind::{Int, Text};

/// Every table of the `ledger` schema, parents before children (foreign keys hold at every
/// step). A new SQLite migration that adds a table or column must add it here too: the unit
/// test `every_column_of_the_sqlite_schema_is_copied` fails until it does.
pub(crate) const TABLES: &[Table] = &[
    Table {
        name: "runs",
        columns: &[
            ("id", Int),
            ("command", Text),
            ("started_at", Text),
            ("finished_at", Text),
            ("status", Text),
            ("summary", Text),
        ],
        has_id: true,
    },
    Table {
        name: "mailboxes",
        columns: &[
            ("id", Int),
            ("key", Text),
            ("destination", Text),
            ("state", Text),
            ("last_run", Int),
            ("last_error", Text),
            ("last_error_class", Text),
            ("updated_at", Text),
            ("source_folders", Int),
        ],
        has_id: true,
    },
    Table {
        name: "folders",
        columns: &[
            ("id", Int),
            ("mailbox_id", Int),
            ("source_name", Text),
            ("mapped_name", Text),
            ("dest_id", Text),
            ("uid_validity", Int),
            ("highest_modseq", Int),
            ("uid_next", Int),
            ("source_messages", Int),
            ("source_bytes", Int),
        ],
        has_id: true,
    },
    Table {
        name: "messages",
        columns: &[
            ("id", Int),
            ("folder_id", Int),
            ("uid_validity", Int),
            ("uid", Int),
            ("size", Int),
            ("sha256", Text),
            ("message_id", Text),
            ("internal_date", Text),
            ("flags", Text),
            ("state", Text),
            ("dest_id", Text),
            ("attempts", Int),
            ("last_error", Text),
            ("error_class", Text),
            ("source_gone", Int),
            ("updated_run", Int),
            ("recheck", Int),
        ],
        has_id: true,
    },
    Table {
        name: "throttle",
        columns: &[("destination", Text), ("mailbox", Text), ("until_ms", Int)],
        has_id: false,
    },
];

impl Table {
    /// `a, b, c`
    pub(crate) fn column_list(&self) -> String {
        let names: Vec<&str> = self.columns.iter().map(|(n, _)| *n).collect();
        names.join(", ")
    }
}

/// One column of a batch.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Column {
    Int(Vec<Option<i64>>),
    Text(Vec<Option<String>>),
}

/// Rows of one table, column by column (the shape PostgreSQL's `unnest` takes).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Batch {
    pub columns: Vec<Column>,
    pub rows: usize,
}

impl Batch {
    pub(crate) fn new(table: &Table) -> Batch {
        let columns = table
            .columns
            .iter()
            .map(|(_, kind)| match kind {
                Int => Column::Int(Vec::new()),
                Text => Column::Text(Vec::new()),
            })
            .collect();
        Batch { columns, rows: 0 }
    }

    /// The id of the last row (the first column of a table with ids).
    pub(crate) fn last_id(&self) -> Option<i64> {
        match self.columns.first() {
            Some(Column::Int(ids)) => ids.last().copied().flatten(),
            _ => None,
        }
    }

    /// Row `i` as SQLite values.
    fn row(&self, i: usize) -> Vec<Value> {
        self.columns
            .iter()
            .map(|c| match c {
                Column::Int(v) => v[i].map_or(Value::Null, Value::Integer),
                Column::Text(v) => v[i].clone().map_or(Value::Null, Value::Text),
            })
            .collect()
    }
}

/// Rows copied (or found) in one table.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TableCount {
    pub table: String,
    pub rows: u64,
}

/// Why a copy did not happen. Nothing is left half-copied: each side writes in one transaction.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(
        "ledger {target} already holds data ({}): a copy goes only into a new or empty ledger",
        .found.iter().map(|c| format!("{} {}", c.rows, c.table)).collect::<Vec<_>>().join(", ")
    )]
    NotEmpty {
        target: String,
        /// The tables that are not empty, with their row counts.
        found: Vec<TableCount>,
    },
    /// A value of a type the schema does not allow (SQLite's loose typing let it in).
    #[error("ledger {source_ledger}: {table}.{column} holds {what}, not the schema's type")]
    BadValue {
        source_ledger: String,
        table: &'static str,
        column: &'static str,
        what: String,
    },
}

impl From<PgLedgerError> for CopyError {
    fn from(e: PgLedgerError) -> CopyError {
        CopyError::Ledger(LedgerError::Postgres(e))
    }
}

/// Keeps only the tables that hold rows (for [`CopyError::NotEmpty`]).
pub(crate) fn nonempty(counts: Vec<TableCount>) -> Vec<TableCount> {
    counts.into_iter().filter(|c| c.rows > 0).collect()
}

impl Ledger {
    /// Rows per table of the `ledger` schema (SQLite).
    pub fn table_counts(&self) -> Result<Vec<TableCount>, LedgerError> {
        self.with(|c| {
            TABLES
                .iter()
                .map(|t| {
                    let rows: i64 =
                        c.query_row(&format!("SELECT count(*) FROM {}", t.name), [], |r| {
                            r.get(0)
                        })?;
                    Ok(TableCount {
                        table: t.name.to_owned(),
                        rows: rows.max(0) as u64,
                    })
                })
                .collect()
        })
    }

    /// Up to [`BATCH_ROWS`] rows of `table` with an id above `after` (a table without ids: all
    /// of it), in id order.
    pub(crate) fn copy_read(&self, table: &Table, after: i64) -> Result<Batch, CopyError> {
        let sql = if table.has_id {
            format!(
                "SELECT {} FROM {} WHERE id > ?1 ORDER BY id LIMIT {BATCH_ROWS}",
                table.column_list(),
                table.name
            )
        } else {
            format!(
                "SELECT {} FROM {} WHERE ?1 IS NOT NULL ORDER BY 1, 2",
                table.column_list(),
                table.name
            )
        };
        let values: Vec<Vec<Value>> = self.with(|c| {
            let mut st = c.prepare_cached(&sql)?;
            let rows = st.query_map([after], |r| {
                (0..table.columns.len())
                    .map(|i| r.get::<_, Value>(i))
                    .collect::<rusqlite::Result<Vec<Value>>>()
            })?;
            rows.collect()
        })?;
        let mut batch = Batch::new(table);
        for row in values {
            for (i, value) in row.into_iter().enumerate() {
                let bad = |what: &str| CopyError::BadValue {
                    source_ledger: self.path.display().to_string(),
                    table: table.name,
                    column: table.columns[i].0,
                    what: what.to_owned(),
                };
                match (&mut batch.columns[i], value) {
                    (Column::Int(v), Value::Integer(n)) => v.push(Some(n)),
                    (Column::Int(v), Value::Null) => v.push(None),
                    (Column::Text(v), Value::Text(s)) => v.push(Some(s)),
                    (Column::Text(v), Value::Null) => v.push(None),
                    (_, Value::Real(_)) => return Err(bad("a real number")),
                    (_, Value::Blob(_)) => return Err(bad("a blob")),
                    (Column::Int(_), Value::Text(_)) => return Err(bad("text")),
                    (Column::Text(_), Value::Integer(_)) => return Err(bad("an integer")),
                }
            }
            batch.rows += 1;
        }
        Ok(batch)
    }

    /// Starts the copy's one write transaction on this (target) SQLite ledger, after checking
    /// that it is empty: the caller holds its run lock, so nobody else writes meanwhile.
    pub(crate) fn copy_begin(&self) -> Result<(), CopyError> {
        let found = nonempty(self.table_counts()?);
        if !found.is_empty() {
            return Err(CopyError::NotEmpty {
                target: self.path.display().to_string(),
                found,
            });
        }
        self.with(|c| c.execute_batch("BEGIN IMMEDIATE"))?;
        Ok(())
    }

    /// Writes `batch` into `table` (inside [`Ledger::copy_begin`]'s transaction).
    pub(crate) fn copy_write(&self, table: &Table, batch: &Batch) -> Result<(), CopyError> {
        let marks: Vec<String> = (1..=table.columns.len()).map(|i| format!("?{i}")).collect();
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            table.name,
            table.column_list(),
            marks.join(", ")
        );
        self.with(|c| {
            let mut st = c.prepare_cached(&sql)?;
            for i in 0..batch.rows {
                st.execute(rusqlite::params_from_iter(batch.row(i)))?;
            }
            Ok(())
        })?;
        Ok(())
    }

    /// Commits the copy (`ok`) or rolls it back, leaving the target as empty as it was.
    pub(crate) fn copy_end(&self, ok: bool) -> Result<(), LedgerError> {
        self.with(|c| c.execute_batch(if ok { "COMMIT" } else { "ROLLBACK" }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_column_of_the_sqlite_schema_is_copied() {
        // A column added by a future migration but missing here would be silently dropped by
        // every copy: compare with what SQLite itself reports.
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("l.db")).unwrap();
        let tables: Vec<String> = ledger
            .with(|c| {
                let mut st =
                    c.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")?;
                st.query_map([], |r| r.get(0))?.collect()
            })
            .unwrap();
        let mut listed: Vec<String> = TABLES.iter().map(|t| t.name.to_owned()).collect();
        listed.sort();
        assert_eq!(tables, listed);
        for t in TABLES {
            let columns: Vec<String> = ledger
                .with(|c| {
                    let mut st = c.prepare(&format!("PRAGMA table_info({})", t.name))?;
                    st.query_map([], |r| r.get(1))?.collect()
                })
                .unwrap();
            let mine: Vec<String> = t.columns.iter().map(|(n, _)| (*n).to_owned()).collect();
            assert_eq!(columns, mine, "table {}", t.name);
            assert_eq!(t.has_id, mine[0] == "id", "table {}", t.name);
        }
    }

    #[test]
    fn a_sqlite_copy_round_trips_every_value_and_refuses_a_full_target() {
        let dir = tempfile::tempdir().unwrap();
        let from = Ledger::open(&dir.path().join("from.db")).unwrap();
        let run = from.start_run("migrate").unwrap();
        let mb = from.mailbox("a@x", "exo").unwrap();
        from.set_mailbox_state(mb, run, "ok", None).unwrap();
        let folder = from.folder(mb, "INBOX").unwrap();
        from.set_folder_target(folder.id, "Inbox", "dest-1")
            .unwrap();
        from.with(|c| {
            for uid in 1..=3i64 {
                c.execute(
                    "INSERT INTO messages (folder_id, uid_validity, uid, size, internal_date,
                     state, updated_run, dest_id, recheck) VALUES (?1, 4294967295, ?2, ?3, 'd',
                     'done', ?4, 'x', 1)",
                    rusqlite::params![folder.id, uid, uid * 100, run],
                )?;
            }
            c.execute(
                "INSERT INTO throttle (destination, mailbox, until_ms) VALUES ('exo', 'a@x', 5)",
                [],
            )
        })
        .unwrap();
        let to = Ledger::open(&dir.path().join("to.db")).unwrap();
        to.copy_begin().unwrap();
        for t in TABLES {
            let batch = from.copy_read(t, 0).unwrap();
            to.copy_write(t, &batch).unwrap();
        }
        to.copy_end(true).unwrap();
        assert_eq!(to.table_counts().unwrap(), from.table_counts().unwrap());
        for t in TABLES {
            assert_eq!(to.copy_read(t, 0).unwrap(), from.copy_read(t, 0).unwrap());
        }
        assert_eq!(from.copy_read(&TABLES[3], 0).unwrap().last_id(), Some(3));
        assert_eq!(from.copy_read(&TABLES[3], 3).unwrap().rows, 0);
        match to.copy_begin() {
            Err(CopyError::NotEmpty { found, .. }) => assert_eq!(found.len(), TABLES.len()),
            other => panic!("a full target was accepted: {other:?}"),
        }
    }
}
