//! What a reader checks of a file it did not write: a `wtmp` table of another shape than
//! upstream's, and a database in WAL mode copied without its side files.
//!
//! Upstream's table is STRICT with ID an INTEGER PRIMARY KEY, so its IDs are unique and its
//! Login values numbers. A table another tool made may be neither: then the chunked reader,
//! which pairs keys with rows by ID and bounds them by Login, would silently leave rows out.
//! Such a table is checked row by row once per read (upstream's never is), and refused with
//! what is wrong.
//!
//! A database in WAL mode needs its `-shm` file to be read; SQLite creates it (and `-wal`)
//! beside the database when the directory lets it, as root always. A copy of such a file
//! without side files has nothing in a WAL to read, and is opened immutable, which creates
//! nothing.

use std::path::Path;

use rusqlite::Connection;

use super::error::{Error, Result, SqliteError};
use super::queries;

/// Refuses a `wtmp` table whose IDs are not unique or whose Login holds text.
pub(super) fn check_table(conn: &Connection, path: &Path) -> Result<()> {
    let failed = |source| Error::OpenSetup {
        path: path.to_path_buf(),
        access: super::Access::ReadOnly,
        source: SqliteError::new(source),
    };
    let (strict, rowid): (bool, bool) = conn
        .query_row(queries::WTMP_TABLE_SHAPE, [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .map_err(failed)?;
    if strict && rowid {
        return Ok(());
    }
    let count = |q: &str| conn.query_row(q, [], |r| r.get::<_, i64>(0));
    // A rowid alias is unique by construction; a STRICT INTEGER column holds no text.
    let shared_ids = if rowid {
        0
    } else {
        count(queries::WTMP_SHARED_IDS).map_err(failed)?
    };
    let text_logins = if strict {
        0
    } else {
        count(queries::WTMP_TEXT_LOGINS).map_err(failed)?
    };
    let mut why = Vec::new();
    if shared_ids > 0 {
        why.push(format!(
            "{shared_ids} rows have an ID another row has, or none (ID is not an INTEGER PRIMARY KEY)"
        ));
    }
    if text_logins > 0 {
        why.push(format!(
            "{text_logins} rows hold text in Login, which is microseconds since the epoch"
        ));
    }
    if why.is_empty() {
        return Ok(());
    }
    Err(Error::ForeignTable {
        path: path.to_path_buf(),
        why: why.join("; "),
    })
}

/// The name a reader hands SQLite for `path`: an `immutable=1` URI for a WAL database
/// without side files (see the module documentation), else None (the path itself).
pub(super) fn immutable_uri(path: &Path) -> Option<String> {
    super::wal_without_log(path).then(|| super::immutable_uri(path))
}
