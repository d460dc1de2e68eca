//! The schema: upstream's table first, then our additive steps, counted in
//! `PRAGMA user_version` (which upstream ignores), and when a writer applies them.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::error::{Access, Error, Result, SqliteError, sql};
use super::{Database, queries};

/// Schema steps, applied in order; `PRAGMA user_version` holds how many are done.
const MIGRATIONS: [&str; 3] = [
    include_str!("../../migrations/0001_upstream_table.sql"),
    include_str!("../../migrations/0002_indexes.sql"),
    include_str!("../../migrations/0003_process.sql"),
];

/// The number of schema steps this version knows.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// When a read-write open applies the schema steps after the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Migrate {
    Always,
    /// Only when the table holds at most this many rows (by its largest ID).
    UpToRows(i64),
    Never,
}

/// Upstream's table, as the first schema step creates it.
#[cfg(test)]
pub(super) fn upstream_table() -> &'static str {
    MIGRATIONS[0]
}

pub(super) fn has_wtmp_table(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(queries::HAS_WTMP_TABLE, [], |r| r.get::<_, i64>(0))
        .map(|n| n > 0)
}

fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(queries::USER_VERSION, [], |r| r.get(0))
}

/// Brings the schema of the database at `path`, just opened read-write, up to date as far
/// as `policy` allows. The table itself is always created.
/// True when it wrote something.
pub(super) fn migrate(conn: &mut Connection, path: &Path, policy: Migrate) -> Result<bool> {
    // Reading the schema is the first access to the file: a lock or a foreign file shows
    // here, reported as a failed open.
    let setup_failed = |source| Error::OpenSetup {
        path: path.to_path_buf(),
        access: Access::ReadWrite,
        source: SqliteError::new(source),
    };
    let version = user_version(conn).map_err(setup_failed)?;
    if version >= SCHEMA_VERSION {
        return Ok(false);
    }
    // The upstream table first, on its own: a login into a large upstream database that
    // skips the index step must still find its table.
    if !has_wtmp_table(conn).map_err(setup_failed)? {
        conn.execute_batch(MIGRATIONS[0])
            .map_err(sql("SQL error creating table"))?;
    }
    match policy {
        Migrate::Never => return Ok(true),
        Migrate::UpToRows(limit) => {
            let rows: i64 = conn
                .query_row(queries::MAX_ID, [], |r| r.get(0))
                .map_err(sql("SQL error reading table"))?;
            if rows > limit {
                return Ok(true);
            }
        }
        Migrate::Always => {}
    }
    const FAILED: &str = "Cannot upgrade database schema";
    // Version read again inside the write lock: another writer may have upgraded meanwhile.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql(FAILED))?;
    let version = user_version(&tx).map_err(sql(FAILED))?;
    for (step, script) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
        tx.execute_batch(script).map_err(sql(FAILED))?;
        tx.execute_batch(&queries::set_user_version(step as i64 + 1))
            .map_err(sql(FAILED))?;
    }
    tx.commit().map_err(sql(FAILED))?;
    Ok(true)
}

/// Every schema step on the connection of a new database that holds the table and its
/// rows: the indexes built once, from the rows (see `Database::build_new`).
pub(super) fn complete_new(conn: &Connection) -> rusqlite::Result<()> {
    for script in &MIGRATIONS[1..] {
        conn.execute_batch(script)?;
    }
    conn.execute_batch(&queries::set_user_version(SCHEMA_VERSION))
}

/// The table alone, on the connection of a new database.
pub(super) fn create_table(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(MIGRATIONS[0])
}

impl Database {
    /// The schema step this file is at (0 for a file written by upstream).
    pub fn schema_version(&self) -> Result<i64> {
        user_version(&self.conn).map_err(sql("Cannot read schema version"))
    }
}
