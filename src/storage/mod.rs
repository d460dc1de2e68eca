//! The only code that touches SQLite.
//!
//! The file format is upstream's: one STRICT table `wtmp`, rollback journal (no WAL, so an
//! unprivileged user can read a root-owned 0644 database without write access to its
//! directory). Our additions are indexes (see `migrations/`) tracked by `PRAGMA
//! user_version`; upstream ignores both.
//!
//! Readers never keep a read transaction open while they print: [`Entries`] fetches a
//! bounded chunk, resets its statement (which releases the shared lock) and hands the rows
//! out, so a login can commit between two chunks.
//!
//! A writer first settles the files (see `files`): the directory and the database are
//! created with fixed modes, a link is followed only when root or the caller owns it, and
//! the side files get the database's mode; SQLite then opens the resolved file
//! with `SQLITE_OPEN_NOFOLLOW`. A reader that finds the journal of an interrupted write rolls
//! it back through one read-write connection when the caller may write the file, and
//! otherwise says that root must.
//!
//! By concern: `schema` (migrations and when to apply them), `record` (a row and its kind),
//! `queries` (every statement), `read` (lookups and the chunked reader), `write` (rows in
//! and out), `files` (the files and their modes), `error`; this file opens a database and
//! holds the connection settings.

mod error;
pub mod files;
mod foreign;
mod lastlog2;
mod queries;
mod read;
mod record;
mod schema;
mod write;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

pub use error::{Access, Error, FileStep, Refusal, Result};
pub use lastlog2::{Lastlog2, Latest};
pub use read::{Entries, Filter, OpenRow};
pub use record::{Entry, Kind, NewEntry};
pub use schema::{Migrate, SCHEMA_VERSION};

use error::sql;

/// Where upstream keeps the database.
pub const DEFAULT_PATH: &str = "/var/lib/wtmpdb/wtmp.db";

/// How to open a database.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    pub write: bool,
    /// How long to wait for another process's lock before failing with "database is locked".
    pub busy_timeout: Duration,
    /// Create missing indexes (and later schema steps) on a read-write open. A login may
    /// prefer to skip this on a large upstream database and leave it to `wtmpdb`.
    pub migrate: Migrate,
}

impl OpenOptions {
    pub fn read_only() -> Self {
        OpenOptions {
            write: false,
            busy_timeout: Duration::from_secs(5),
            migrate: Migrate::Never,
        }
    }
    pub fn read_write() -> Self {
        OpenOptions {
            write: true,
            busy_timeout: Duration::from_secs(5),
            migrate: Migrate::Always,
        }
    }
    pub fn busy_timeout(mut self, t: Duration) -> Self {
        self.busy_timeout = t;
        self
    }
    pub fn migrate(mut self, m: Migrate) -> Self {
        self.migrate = m;
        self
    }
}

/// What an open file holds, decided once at open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Contents {
    /// The `wtmp` table (with or without rows).
    Table,
    /// Nothing: a 0-byte file opened read-only, which upstream reads as a database without
    /// rows. No statement may run against it (there is no table), so every read asks
    /// [`Database::table`] first.
    Nothing,
}

/// An open wtmpdb database.
pub struct Database {
    conn: Connection,
    path: PathBuf,
    /// The file SQLite opened: for a writer, `path` with its links resolved (see `files`).
    file: PathBuf,
    contents: Contents,
}

impl Database {
    /// Opens read-only: a missing file is an error, nothing is created or changed.
    pub fn open_read_only(path: &Path) -> Result<Database> {
        Self::open(path, &OpenOptions::read_only())
    }

    /// Opens read-write, creating the directory (0755) and the file (0644) if missing, and
    /// brings the schema up to date.
    pub fn open_read_write(path: &Path) -> Result<Database> {
        Self::open(path, &OpenOptions::read_write())
    }

    pub fn open(path: &Path, opts: &OpenOptions) -> Result<Database> {
        if let Some(why) = crate::input::not_a_regular_file(path) {
            let access = if opts.write {
                Access::ReadWrite
            } else {
                Access::ReadOnly
            };
            let path = path.to_path_buf();
            return Err(Error::NotAFile { path, access, why });
        }
        if opts.write {
            return Self::open_writer(path, opts);
        }
        match Self::open_reader(path, opts) {
            Err(e) if e.is_hot_journal() => {
                if !recover_journal(path, opts)? {
                    return Err(Error::HotJournal {
                        path: path.to_path_buf(),
                        readable: files::readable(&files::side_file(
                            &std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
                            "-journal",
                        )),
                    });
                }
                Self::open_reader(path, opts)
            }
            other => other,
        }
    }

    fn open_writer(path: &Path, opts: &OpenOptions) -> Result<Database> {
        let (conn, file) = connect_writer(path, true)?;
        let mut db = Database {
            conn,
            path: path.to_path_buf(),
            file,
            contents: Contents::Table,
        };
        db.setup(opts)?;
        schema::migrate(&mut db.conn, path, opts.migrate)?;
        Ok(db)
    }

    fn open_reader(path: &Path, opts: &OpenOptions) -> Result<Database> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = match foreign::immutable_uri(path) {
            Some(uri) => Connection::open_with_flags(uri, flags | OpenFlags::SQLITE_OPEN_URI),
            None => Connection::open_with_flags(path, flags),
        }
        .map_err(open_failed(path, Access::ReadOnly))?;
        let mut db = Database {
            conn,
            path: path.to_path_buf(),
            file: path.to_path_buf(),
            contents: Contents::Table,
        };
        db.setup(opts)?;
        // Reading the schema is the first access to the file: it reports a foreign or
        // corrupt file here, once, with the path (and a journal to roll back, see `open`).
        if !schema::has_wtmp_table(&db.conn).map_err(setup_failed(path, Access::ReadOnly))? {
            let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(1);
            if size != 0 {
                return Err(Error::NotWtmpdb {
                    path: path.to_path_buf(),
                });
            }
            db.contents = Contents::Nothing;
        } else {
            foreign::check_table(&db.conn, path)?;
        }
        Ok(db)
    }

    /// The connection settings of every open.
    fn setup(&self, opts: &OpenOptions) -> Result<()> {
        let access = if opts.write {
            Access::ReadWrite
        } else {
            Access::ReadOnly
        };
        self.conn
            .busy_timeout(opts.busy_timeout)
            .map_err(setup_failed(&self.path, access))?;
        self.conn
            .execute_batch(queries::TEMP_STORE_MEMORY)
            .map_err(setup_failed(&self.path, access))
    }

    /// The connection to read the table through, or None when the file holds no table
    /// (see [`Contents::Nothing`]): then every read answers "no rows".
    fn table(&self) -> Option<&Connection> {
        match self.contents {
            Contents::Table => Some(&self.conn),
            Contents::Nothing => None,
        }
    }

    /// A second read-only connection to the same file (for reading on another thread).
    pub fn reopen_read_only(&self) -> Result<Database> {
        if self.table().is_some() {
            return Database::open_read_only(&self.path);
        }
        // Reads nothing, as this connection does (also if the file was written since).
        Ok(Database {
            conn: Connection::open_in_memory().map_err(sql("Cannot open database"))?,
            path: self.path.clone(),
            file: self.file.clone(),
            contents: Contents::Nothing,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The underlying connection, for tests and diagnostics in this crate.
    #[doc(hidden)]
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Replaces the busy handling with `handler` (called with the retry count; true = retry),
    /// for callers that bound their total waiting themselves.
    pub fn set_busy_handler(&self, handler: fn(i32) -> bool) -> Result<()> {
        self.conn
            .busy_handler(Some(handler))
            .map_err(sql("Cannot set busy handler"))
    }

    /// The journal mode of this connection, lower case (`delete`, `persist`, `wal`, ...).
    pub fn journal_mode(&self) -> Result<String> {
        self.conn
            .query_row(queries::JOURNAL_MODE, [], |r| r.get::<_, String>(0))
            .map(|m| m.to_ascii_lowercase())
            .map_err(sql("Cannot read journal mode"))
    }

    /// Sets this connection's rollback journal mode (`delete`, `truncate` or `persist`: all
    /// readable by upstream) and returns the mode in force afterwards.
    pub fn set_journal_mode(&self, mode: &str) -> Result<String> {
        let statement =
            queries::set_journal_mode(mode).ok_or_else(|| Error::UnsupportedJournalMode {
                mode: mode.to_string(),
            })?;
        self.conn
            .query_row(statement, [], |r| r.get::<_, String>(0))
            .map(|m| m.to_ascii_lowercase())
            .map_err(sql("Cannot set journal mode"))
    }
}

fn open_failed(path: &Path, access: Access) -> impl FnOnce(rusqlite::Error) -> Error + '_ {
    move |source| Error::Open {
        path: path.to_path_buf(),
        access,
        source: Box::new(source),
    }
}

fn setup_failed(path: &Path, access: Access) -> impl FnOnce(rusqlite::Error) -> Error + '_ {
    move |source| Error::OpenSetup {
        path: path.to_path_buf(),
        access,
        source: Box::new(source),
    }
}

/// A writer's connection to `path` and the file it opened. The files are settled first (see
/// `files`): with `create`, the missing directories (0755) and the database file (0644);
/// always, a link is followed only when root or the caller owns it, and the side files get
/// the database's mode. SQLite then opens the resolved name and follows no link
/// (one put in its place since is refused).
fn connect_writer(path: &Path, create: bool) -> Result<(Connection, PathBuf)> {
    if create {
        files::create_parent(path)?;
    }
    let target = files::trusted_target(path)?;
    if create {
        files::create_file(path, &target)?;
    }
    let file = files::resolved(path, &target)?;
    files::align_side_files(path, &file)?;
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_NOFOLLOW;
    let conn =
        Connection::open_with_flags(&file, flags).map_err(open_failed(path, Access::ReadWrite))?;
    Ok((conn, file))
}

/// Rolls back the journal of an interrupted write that a read-only open of `path` found, if
/// the caller may write the database: one read-write connection's first read does it, under
/// SQLite's own locks. False when the caller cannot write it (the file opened read-only).
fn recover_journal(path: &Path, opts: &OpenOptions) -> Result<bool> {
    let (conn, _) = connect_writer(path, false)?;
    if conn
        .is_readonly(rusqlite::MAIN_DB)
        .map_err(setup_failed(path, Access::ReadWrite))?
    {
        return Ok(false);
    }
    conn.busy_timeout(opts.busy_timeout)
        .map_err(setup_failed(path, Access::ReadWrite))?;
    schema::has_wtmp_table(&conn).map_err(setup_failed(path, Access::ReadWrite))?;
    Ok(true)
}
