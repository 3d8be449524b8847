//! The PostgreSQL side of `mailferry ledger copy` (see `src/ledger/copy.rs` for the whole
//! story): importing a SQLite ledger into an empty PostgreSQL one, and exporting the
//! PostgreSQL ledger into an empty SQLite file.
//!
//! An import runs in one transaction under the plan-registration lock, so a worker started
//! meanwhile waits and then finds the copied ledger (or, if it came first, the import finds its
//! rows and refuses). After the rows, each identity sequence is moved past the highest copied
//! id, or the next row a worker inserts would collide with a copied one.
//!
//! An export reads in one `REPEATABLE READ` snapshot, so it is consistent even while workers
//! run (as `pg_dump` is).

use tokio_postgres::types::ToSql;
use tokio_postgres::{IsolationLevel, Transaction};

use super::identity::PLAN_LOCK;
use super::{PgLedger, PgLedgerError, db_err};
use crate::ledger::Ledger;
use crate::ledger::copy::{
    BATCH_ROWS, Batch, Column, CopyError, Kind, TABLES, Table, TableCount, nonempty,
};

/// Fleet mode's own tables: an import needs them empty as well (a registered plan or a worker
/// means the ledger is in use).
const FLEET_TABLES: &[&str] = &["fleet_plan", "workers", "leases"];

impl PgLedger {
    /// Rows per table: the `ledger` schema's, then fleet mode's own.
    pub async fn table_counts(&self) -> Result<Vec<TableCount>, PgLedgerError> {
        let conn = self.conn().await?;
        let mut out = Vec::new();
        for name in TABLES
            .iter()
            .map(|t| t.name)
            .chain(FLEET_TABLES.iter().copied())
        {
            let row = conn
                .client
                .query_one(&format!("SELECT count(*) FROM {name}"), &[])
                .await
                .map_err(|e| db_err(&self.url, e))?;
            out.push(TableCount {
                table: name.to_owned(),
                rows: row.get::<_, i64>(0).max(0) as u64,
            });
        }
        Ok(out)
    }

    /// Copies every table of the SQLite ledger `from` into this one, which must be empty
    /// (fleet tables included), keeping ids; then moves the identity sequences past them.
    /// Rows copied per table. Registering the plan is the caller's next step.
    pub async fn import_ledger(&self, from: &Ledger) -> Result<Vec<TableCount>, CopyError> {
        let err = |e| CopyError::from(db_err(&self.url, e));
        let mut conn = self.conn().await?;
        let tx = conn.client.transaction().await.map_err(err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PLAN_LOCK])
            .await
            .map_err(err)?;
        // This transaction is the copy's own and may last minutes between statements while the
        // SQLite side is read: the connection's idle limit is for workers' short transactions.
        tx.batch_execute("SET LOCAL idle_in_transaction_session_timeout = 0")
            .await
            .map_err(err)?;
        let mut found = Vec::new();
        for name in TABLES
            .iter()
            .map(|t| t.name)
            .chain(FLEET_TABLES.iter().copied())
        {
            let row = tx
                .query_one(&format!("SELECT count(*) FROM {name}"), &[])
                .await
                .map_err(err)?;
            found.push(TableCount {
                table: name.to_owned(),
                rows: row.get::<_, i64>(0).max(0) as u64,
            });
        }
        let found = nonempty(found);
        if !found.is_empty() {
            return Err(CopyError::NotEmpty {
                target: self.url.to_string(),
                found,
            });
        }
        let mut counts = Vec::new();
        for table in TABLES {
            let mut rows = 0u64;
            let mut after = 0i64;
            loop {
                let batch = from.copy_read(table, after)?;
                if batch.rows == 0 {
                    break;
                }
                insert(&tx, table, &batch).await.map_err(err)?;
                rows += batch.rows as u64;
                match batch.last_id() {
                    Some(id) if table.has_id && batch.rows == BATCH_ROWS => after = id,
                    _ => break,
                }
            }
            counts.push(TableCount {
                table: table.name.to_owned(),
                rows,
            });
        }
        for table in TABLES.iter().filter(|t| t.has_id) {
            // `setval(…, max + 1, false)`: the next id handed out is max + 1 (1 when empty).
            tx.execute(
                &format!(
                    "SELECT setval(pg_get_serial_sequence('{0}', 'id'),
                       COALESCE((SELECT max(id) FROM {0}), 0) + 1, false)",
                    table.name
                ),
                &[],
            )
            .await
            .map_err(err)?;
        }
        tx.commit().await.map_err(err)?;
        Ok(counts)
    }

    /// Copies every table of the `ledger` schema into the SQLite ledger `to`, which must be
    /// empty (its caller holds its run lock), from one consistent snapshot. Rows per table.
    pub async fn export_ledger(&self, to: &Ledger) -> Result<Vec<TableCount>, CopyError> {
        let err = |e| CopyError::from(db_err(&self.url, e));
        let mut conn = self.conn().await?;
        let tx = conn
            .client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(err)?;
        tx.batch_execute("SET LOCAL idle_in_transaction_session_timeout = 0")
            .await
            .map_err(err)?;
        to.copy_begin()?;
        let mut counts = Vec::new();
        let copied = async {
            for table in TABLES {
                let mut rows = 0u64;
                let mut after = 0i64;
                loop {
                    let batch = read(&tx, table, after).await.map_err(err)?;
                    if batch.rows == 0 {
                        break;
                    }
                    to.copy_write(table, &batch)?;
                    rows += batch.rows as u64;
                    match batch.last_id() {
                        Some(id) if table.has_id && batch.rows == BATCH_ROWS => after = id,
                        _ => break,
                    }
                }
                counts.push(TableCount {
                    table: table.name.to_owned(),
                    rows,
                });
            }
            Ok::<(), CopyError>(())
        }
        .await;
        if let Err(e) = copied {
            // Leave the target as empty as it was; the rollback's own failure says less than
            // the error that caused it.
            let _ = to.copy_end(false);
            return Err(e);
        }
        to.copy_end(true)?;
        tx.commit().await.map_err(err)?;
        Ok(counts)
    }
}

/// Inserts a batch in one statement: one array parameter per column, `unnest`ed into rows.
async fn insert(
    tx: &Transaction<'_>,
    table: &Table,
    batch: &Batch,
) -> Result<u64, tokio_postgres::Error> {
    let arrays: Vec<String> = table
        .columns
        .iter()
        .enumerate()
        .map(|(i, (_, kind))| match kind {
            Kind::Int => format!("${}::bigint[]", i + 1),
            Kind::Text => format!("${}::text[]", i + 1),
        })
        .collect();
    let sql = format!(
        "INSERT INTO {} ({}) SELECT * FROM unnest({})",
        table.name,
        table.column_list(),
        arrays.join(", ")
    );
    let params: Vec<&(dyn ToSql + Sync)> = batch
        .columns
        .iter()
        .map(|c| match c {
            Column::Int(v) => v as &(dyn ToSql + Sync),
            Column::Text(v) => v as &(dyn ToSql + Sync),
        })
        .collect();
    tx.execute(&sql, &params).await
}

/// Up to [`BATCH_ROWS`] rows after id `after`, in id order (a table without ids: all of it).
/// Integer columns are read as `bigint` whatever their declared width.
async fn read(
    tx: &Transaction<'_>,
    table: &Table,
    after: i64,
) -> Result<Batch, tokio_postgres::Error> {
    let select: Vec<String> = table
        .columns
        .iter()
        .map(|(name, kind)| match kind {
            Kind::Int => format!("{name}::bigint"),
            Kind::Text => (*name).to_owned(),
        })
        .collect();
    let sql = if table.has_id {
        format!(
            "SELECT {} FROM {} WHERE id > $1 ORDER BY id LIMIT {BATCH_ROWS}",
            select.join(", "),
            table.name
        )
    } else {
        // Ordered so that two exports of one ledger write identical files.
        format!(
            "SELECT {} FROM {} WHERE $1::bigint IS NOT NULL ORDER BY 1, 2",
            select.join(", "),
            table.name
        )
    };
    let rows = tx.query(&sql, &[&after]).await?;
    let mut batch = Batch::new(table);
    for row in &rows {
        for (i, column) in batch.columns.iter_mut().enumerate() {
            match column {
                Column::Int(v) => v.push(row.try_get(i)?),
                Column::Text(v) => v.push(row.try_get(i)?),
            }
        }
        batch.rows += 1;
    }
    Ok(batch)
}
