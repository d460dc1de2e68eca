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

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params, params_from_iter};

use crate::escape::decode_lossless;
use crate::time::Usec;

/// What a row records: the `Type` column, numbered as upstream numbers it (not as glibc's
/// utmp does: see [`Kind::from_utmp`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Kind {
    /// 0: never written by either implementation.
    #[default]
    Empty,
    /// 1: a boot (`reboot` / `soft-reboot`); its Logout is the shutdown.
    BootTime,
    /// 2: a run-level change (upstream defines it, nothing writes it).
    RunLevel,
    /// 3: a user session.
    UserProcess,
    /// Any other value found in a foreign or future file, kept as read.
    Other(i64),
}

impl Kind {
    pub const fn from_i64(v: i64) -> Kind {
        match v {
            0 => Kind::Empty,
            1 => Kind::BootTime,
            2 => Kind::RunLevel,
            3 => Kind::UserProcess,
            other => Kind::Other(other),
        }
    }

    /// The stored `Type` value.
    pub const fn as_i64(self) -> i64 {
        match self {
            Kind::Empty => 0,
            Kind::BootTime => 1,
            Kind::RunLevel => 2,
            Kind::UserProcess => 3,
            Kind::Other(v) => v,
        }
    }

    /// The row kind of a glibc utmp `ut_type` that becomes a row, if any
    /// (`BOOT_TIME` 2, `RUN_LVL` 1, `USER_PROCESS` 7).
    pub const fn from_utmp(ut_type: i16) -> Option<Kind> {
        match ut_type {
            crate::utmp_file::BOOT_TIME => Some(Kind::BootTime),
            crate::utmp_file::RUN_LVL => Some(Kind::RunLevel),
            crate::utmp_file::USER_PROCESS => Some(Kind::UserProcess),
            _ => None,
        }
    }
}

impl rusqlite::ToSql for Kind {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.as_i64().into())
    }
}

/// Where upstream keeps the database.
pub const DEFAULT_PATH: &str = "/var/lib/wtmpdb/wtmp.db";

/// Schema steps, applied in order; `PRAGMA user_version` holds how many are done.
const MIGRATIONS: [&str; 2] = [
    include_str!("../migrations/0001_upstream_table.sql"),
    include_str!("../migrations/0002_indexes.sql"),
];

/// The number of schema steps this version knows.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Cannot open database ({path}) read-only: {reason}")]
    OpenReadOnly { path: String, reason: String },
    #[error("Cannot create/open database ({path}): {reason}")]
    Open { path: String, reason: String },
    #[error("{path}: not a wtmpdb database (it has no wtmp table)")]
    NotWtmpdb { path: String },
    #[error("{context}: {source}")]
    Sql {
        context: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("Update of logout time changed wrong number of rows, expected 1, got {0}")]
    LogoutRows(usize),
    #[error("{0}")]
    Io(String),
}

impl Error {
    /// True when the failure is another process holding the database lock.
    pub fn is_busy(&self) -> bool {
        matches!(self, Error::Sql { source, .. } if source.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy))
    }
}

pub type Result<T> = std::result::Result<T, Error>;

fn sql(context: &'static str) -> impl FnOnce(rusqlite::Error) -> Error {
    move |source| Error::Sql { context, source }
}

/// One row of the `wtmp` table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    pub id: i64,
    pub kind: Kind,
    pub user: String,
    /// NULL in the database (never written by either implementation) reads as 0.
    pub login: Usec,
    pub logout: Option<Usec>,
    pub tty: Option<String>,
    pub host: Option<String>,
    pub service: Option<String>,
}

/// A row to insert; the database assigns the ID.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewEntry<'a> {
    pub kind: Kind,
    pub user: &'a str,
    pub login: Usec,
    pub logout: Option<Usec>,
    pub tty: Option<&'a str>,
    pub host: Option<&'a str>,
    pub service: Option<&'a str>,
}

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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Migrate {
    Always,
    /// Only when the table holds at most this many rows (by its largest ID).
    UpToRows(i64),
    Never,
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

/// An open wtmpdb database.
pub struct Database {
    conn: Connection,
    path: PathBuf,
    /// Read-only open of a 0-byte file: upstream treats it as an empty database.
    empty: bool,
}

fn reason(e: &rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqliteFailure(_, Some(msg)) if !msg.is_empty() => msg.clone(),
        rusqlite::Error::SqliteFailure(err, _) => {
            rusqlite::ffi::code_to_str(err.extended_code).to_string()
        }
        other => other.to_string(),
    }
}

/// SQLite's own text for an open failure (rusqlite appends the path, which the caller
/// already shows).
fn open_reason(e: &rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqliteFailure(err, _) => {
            rusqlite::ffi::code_to_str(err.extended_code).to_string()
        }
        other => other.to_string(),
    }
}

impl Database {
    /// Opens read-only: a missing file is an error, nothing is created or changed.
    pub fn open_read_only(path: &Path) -> Result<Database> {
        Self::open(path, &OpenOptions::read_only())
    }

    /// Opens read-write, creating the directory (0755) and the file if missing, and brings
    /// the schema up to date.
    pub fn open_read_write(path: &Path) -> Result<Database> {
        Self::open(path, &OpenOptions::read_write())
    }

    pub fn open(path: &Path, opts: &OpenOptions) -> Result<Database> {
        let shown = path.display().to_string();
        let conn = if opts.write {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                if !dir.exists() {
                    use std::os::unix::fs::DirBuilderExt;
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o755)
                        .create(dir)
                        .map_err(|e| Error::Open {
                            path: shown.clone(),
                            reason: format!("cannot create {}: {e}", dir.display()),
                        })?;
                }
            }
            Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_WRITE
                    | OpenFlags::SQLITE_OPEN_CREATE
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(|e| Error::Open {
                path: shown.clone(),
                reason: open_reason(&e),
            })?
        } else {
            Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(|e| Error::OpenReadOnly {
                path: shown.clone(),
                reason: open_reason(&e),
            })?
        };
        let fail = |e: rusqlite::Error| {
            if opts.write {
                Error::Open {
                    path: shown.clone(),
                    reason: reason(&e),
                }
            } else {
                Error::OpenReadOnly {
                    path: shown.clone(),
                    reason: reason(&e),
                }
            }
        };
        conn.busy_timeout(opts.busy_timeout).map_err(fail)?;
        // Sorts (only ever of small result sets) and temporary tables stay in memory: a
        // `last` never writes temporary files.
        conn.pragma_update(None, "temp_store", "MEMORY")
            .map_err(fail)?;
        let mut db = Database {
            conn,
            path: path.to_path_buf(),
            empty: false,
        };
        if opts.write {
            db.migrate(opts.migrate)?;
        } else {
            // Reading the schema is the first access to the file: it reports a foreign or
            // corrupt file here, once, with the path.
            let has_table = db.has_wtmp_table().map_err(fail)?;
            if !has_table {
                let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(1);
                if size == 0 {
                    db.empty = true;
                } else {
                    return Err(Error::NotWtmpdb { path: shown });
                }
            }
        }
        Ok(db)
    }

    fn has_wtmp_table(&self) -> rusqlite::Result<bool> {
        self.conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'wtmp'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n > 0)
    }

    fn user_version(&self) -> rusqlite::Result<i64> {
        self.conn.query_row("PRAGMA user_version", [], |r| r.get(0))
    }

    /// The schema step this file is at (0 for a file written by upstream).
    pub fn schema_version(&self) -> Result<i64> {
        self.user_version()
            .map_err(sql("Cannot read schema version"))
    }

    fn migrate(&mut self, policy: Migrate) -> Result<()> {
        let shown = self.path.display().to_string();
        let open_err = |e: rusqlite::Error| Error::Open {
            path: shown.clone(),
            reason: reason(&e),
        };
        let version = self.user_version().map_err(open_err)?;
        if version >= SCHEMA_VERSION {
            return Ok(());
        }
        // The upstream table first, on its own: a login into a large upstream database that
        // skips the index step must still find its table.
        if !self.has_wtmp_table().map_err(open_err)? {
            self.conn
                .execute_batch(MIGRATIONS[0])
                .map_err(sql("SQL error creating table"))?;
        }
        match policy {
            Migrate::Never => return Ok(()),
            Migrate::UpToRows(limit) => {
                let rows: i64 = self
                    .conn
                    .query_row("SELECT coalesce(max(ID), 0) FROM wtmp", [], |r| r.get(0))
                    .map_err(sql("SQL error reading table"))?;
                if rows > limit {
                    return Ok(());
                }
            }
            Migrate::Always => {}
        }
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql("Cannot upgrade database schema"))?;
        let version: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(sql("Cannot upgrade database schema"))?;
        for (step, script) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
            tx.execute_batch(script)
                .map_err(sql("Cannot upgrade database schema"))?;
            tx.pragma_update(None, "user_version", step as i64 + 1)
                .map_err(sql("Cannot upgrade database schema"))?;
        }
        tx.commit().map_err(sql("Cannot upgrade database schema"))
    }

    /// A second read-only connection to the same file (for reading on another thread).
    pub fn reopen_read_only(&self) -> Result<Database> {
        if self.empty {
            return Ok(Database {
                conn: Connection::open_in_memory().map_err(sql("Cannot open database"))?,
                path: self.path.clone(),
                empty: true,
            });
        }
        Database::open_read_only(&self.path)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The underlying connection, for tests and diagnostics in this crate.
    #[doc(hidden)]
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Records a login (or boot) and returns the new row's ID.
    pub fn login(&self, e: &NewEntry<'_>) -> Result<i64> {
        let mut stmt = self
            .conn
            .prepare_cached(INSERT)
            .map_err(sql("Adding an entry failed"))?;
        stmt.execute(params![
            e.kind, e.user, e.login, e.logout, e.tty, e.host, e.service
        ])
        .map_err(sql("Adding an entry failed"))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Sets the logout time of row `id`. A row already logged out keeps its first logout
    /// time (closing twice is harmless); a missing row is an error.
    pub fn logout(&self, id: i64, at: Usec) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare_cached("UPDATE wtmp SET Logout = ?1 WHERE ID = ?2 AND Logout IS NULL")
            .map_err(sql("Update of logout time failed"))?;
        let n = stmt
            .execute(params![at, id])
            .map_err(sql("Update of logout time failed"))?;
        if n == 1 {
            return Ok(());
        }
        let exists: bool = self
            .conn
            .query_row("SELECT count(*) FROM wtmp WHERE ID = ?", [id], |r| {
                r.get::<_, i64>(0)
            })
            .map(|c| c > 0)
            .map_err(sql("Update of logout time failed"))?;
        if exists {
            Ok(())
        } else {
            Err(Error::LogoutRows(0))
        }
    }

    /// The newest row on `tty` that has no logout (upstream's `wtmpdb_get_id`).
    pub fn newest_open_on_tty(&self, tty: &str) -> Result<Option<i64>> {
        if self.empty {
            return Ok(None);
        }
        self.conn
            .prepare_cached(
                "SELECT ID FROM wtmp WHERE TTY = ? AND Logout IS NULL ORDER BY Login DESC LIMIT 1",
            )
            .and_then(|mut s| s.query_row([tty], |r| r.get(0)).optional())
            .map_err(sql("Cannot search open entry"))
    }

    /// IDs of the newest open rows (at most `limit`) for this user, tty and service,
    /// newest first. Used to close a session whose ID was lost.
    pub fn open_sessions(
        &self,
        user: &str,
        tty: &str,
        service: &str,
        limit: usize,
    ) -> Result<Vec<i64>> {
        if self.empty {
            return Ok(Vec::new());
        }
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT ID FROM wtmp WHERE TTY = ?1 AND Logout IS NULL AND User = ?2 \
                 AND Type = 3 AND coalesce(Service, '') = ?3 ORDER BY Login DESC LIMIT ?4",
            )
            .map_err(sql("Cannot search open entry"))?;
        let rows = stmt
            .query_map(params![tty, user, service, limit as i64], |r| r.get(0))
            .map_err(sql("Cannot search open entry"))?;
        rows.collect::<rusqlite::Result<Vec<i64>>>()
            .map_err(sql("Cannot search open entry"))
    }

    /// Login time of the newest `reboot` row (upstream ignores `soft-reboot`).
    pub fn boot_time(&self) -> Result<Option<Usec>> {
        if self.empty {
            return Ok(None);
        }
        self.conn
            .prepare_cached(
                "SELECT Login FROM wtmp WHERE User = 'reboot' ORDER BY Login DESC LIMIT 1",
            )
            .and_then(|mut s| s.query_row([], |r| r.get(0)).optional())
            .map_err(sql("Cannot read boot time"))
    }

    /// ID and Logout of the newest boot row (the current boot, if it was recorded).
    pub fn newest_boot(&self) -> Result<Option<(i64, Option<Usec>)>> {
        if self.empty {
            return Ok(None);
        }
        self.conn
            .prepare_cached(
                "SELECT ID, Logout FROM wtmp WHERE Type = 1 ORDER BY Login DESC LIMIT 1",
            )
            .and_then(|mut s| s.query_row([], |r| Ok((r.get(0)?, r.get(1)?))).optional())
            .map_err(sql("Cannot read boot entries"))
    }

    /// Login times of every boot row, oldest first: one pass (over the boot index when
    /// present), so a report can answer "the next boot after t" from memory for any
    /// number of rows, also on an upstream file without indexes.
    pub fn boot_logins(&self) -> Result<Vec<Usec>> {
        if self.empty {
            return Ok(Vec::new());
        }
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT Login FROM wtmp WHERE Type = 1 AND Login IS NOT NULL ORDER BY Login",
            )
            .map_err(sql("Cannot read boot entries"))?;
        let rows = stmt
            .query_map([], |r| r.get(0))
            .map_err(sql("Cannot read boot entries"))?;
        rows.collect::<rusqlite::Result<Vec<Usec>>>()
            .map_err(sql("Cannot read boot entries"))
    }

    /// The smallest Login in the table (where the records begin).
    pub fn first_login(&self) -> Result<Option<Usec>> {
        if self.empty {
            return Ok(None);
        }
        self.conn
            .prepare_cached("SELECT min(Login) FROM wtmp")
            .and_then(|mut s| s.query_row([], |r| r.get::<_, Option<Usec>>(0)))
            .map_err(sql("Cannot read entries"))
    }

    /// True if the table holds no row at all.
    pub fn is_empty(&self) -> Result<bool> {
        if self.empty {
            return Ok(true);
        }
        self.conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM wtmp)")
            .and_then(|mut s| s.query_row([], |r| r.get::<_, bool>(0)))
            .map(|any| !any)
            .map_err(sql("Cannot read entries"))
    }

    /// Streams the rows newest first (Login descending, then Logout ascending with open
    /// rows first, then ID), in chunks, without holding a lock between chunks.
    pub fn entries(&self, filter: &Filter) -> Entries<'_> {
        Entries {
            db: self,
            filter: filter.clone(),
            order: None,
            pool: Vec::new(),
            cursor: (!self.empty).then_some(i64::MAX),
            chunk: 64,
            buf: VecDeque::new(),
            nulls_done: self.empty,
        }
    }

    /// Runs `f` inside one IMMEDIATE transaction (all or nothing).
    fn in_transaction<T>(
        &mut self,
        context: &'static str,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql(context))?;
        let v = f(&tx)?;
        tx.commit().map_err(sql(context))?;
        Ok(v)
    }

    /// Inserts a boot row unless the newest `reboot` row lies within `same_boot` of it (the
    /// same boot, recorded before); check and insert are one transaction, so two concurrent
    /// runs record it once. Returns the new row's ID, or None when it was already there.
    pub fn record_boot(&mut self, e: &NewEntry<'_>, same_boot: Usec) -> Result<Option<i64>> {
        self.in_transaction("Adding a boot entry failed", |tx| {
            if same_boot > 0 {
                let prev: Option<Usec> = tx
                    .query_row(
                        "SELECT Login FROM wtmp WHERE User = 'reboot' ORDER BY Login DESC LIMIT 1",
                        [],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(sql("Cannot read boot time"))?;
                if prev.is_some_and(|p| p.abs_diff(e.login) < same_boot.unsigned_abs()) {
                    return Ok(None);
                }
            }
            tx.execute(
                INSERT,
                params![e.kind, e.user, e.login, e.logout, e.tty, e.host, e.service],
            )
            .map_err(sql("Adding an entry failed"))?;
            Ok(Some(tx.last_insert_rowid()))
        })
    }

    /// Inserts many rows in one transaction: either all of them are committed or none.
    pub fn insert_all<'a>(
        &mut self,
        rows: impl IntoIterator<Item = NewEntry<'a>>,
        mut progress: impl FnMut(u64),
    ) -> Result<u64> {
        self.in_transaction("Import failed", |tx| {
            let mut stmt = tx.prepare_cached(INSERT).map_err(sql("Import failed"))?;
            let mut n = 0u64;
            for e in rows {
                stmt.execute(params![
                    e.kind, e.user, e.login, e.logout, e.tty, e.host, e.service
                ])
                .map_err(sql("Import failed"))?;
                n += 1;
                if n % 65536 == 0 {
                    progress(n);
                }
            }
            Ok(n)
        })
    }

    /// Moves every row with `Login <= threshold` into the archive database at `archive`
    /// (created if missing, appended to if present; never deleted). Each batch is copied
    /// and deleted in one transaction spanning both files, so a row is always in exactly
    /// one of them, and logins wait at most one batch.
    pub fn rotate(&mut self, threshold: Usec, archive: &Path) -> Result<u64> {
        // Each commit rewrites most pages of the User and TTY indexes (the moved rows are
        // spread over all of them): few, large batches keep that cost down, while one batch
        // still commits in about a second, so logins wait at most that long.
        let batch: i64 = 100_000;
        let any: bool = self
            .conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM wtmp WHERE Login <= ?)",
                [threshold],
                |r| r.get(0),
            )
            .map_err(sql("Cannot read entries"))?;
        if !any {
            return Ok(0);
        }
        // A new archive gets the table only: appending to index-free pages is sequential;
        // its indexes are built once at the end (or by the next write, if this run is cut
        // off: user_version stays at the table-only step until then).
        drop(Database::open(
            archive,
            &OpenOptions::read_write().migrate(Migrate::Never),
        )?);
        // Room for the indexes being rewritten, instead of reading them again per batch.
        let _ = self.conn.pragma_update(None, "cache_size", -131_072i64);
        let archive_str = archive
            .to_str()
            .ok_or_else(|| Error::Io(format!("{}: path is not UTF-8", archive.display())))?;
        self.conn
            .execute("ATTACH DATABASE ? AS archive", [archive_str])
            .map_err(sql("Cannot attach archive"))?;
        let result = (|| {
            let mut moved = 0u64;
            loop {
                let n = self.in_transaction("Rotating entries failed", |tx| {
                    tx.execute(
                        "CREATE TEMP TABLE IF NOT EXISTS rotate_batch(ID INTEGER PRIMARY KEY)",
                        [],
                    )
                    .map_err(sql("Rotating entries failed"))?;
                    tx.execute("DELETE FROM temp.rotate_batch", [])
                        .map_err(sql("Rotating entries failed"))?;
                    tx.execute(
                        "INSERT INTO temp.rotate_batch SELECT ID FROM main.wtmp \
                         WHERE Login <= ?1 ORDER BY Login LIMIT ?2",
                        params![threshold, batch],
                    )
                    .map_err(sql("Rotating entries failed"))?;
                    tx.execute(
                        "INSERT INTO archive.wtmp (Type, User, Login, Logout, TTY, RemoteHost, Service) \
                         SELECT Type, User, Login, Logout, TTY, RemoteHost, Service FROM main.wtmp \
                         WHERE ID IN (SELECT ID FROM temp.rotate_batch) ORDER BY Login, ID",
                        [],
                    )
                    .map_err(sql("Rotating entries failed"))?;
                    let n = tx
                        .execute(
                            "DELETE FROM main.wtmp WHERE ID IN (SELECT ID FROM temp.rotate_batch)",
                            [],
                        )
                        .map_err(sql("Rotating entries failed"))?;
                    Ok(n as u64)
                })?;
                moved += n;
                if n < batch as u64 {
                    break;
                }
            }
            Ok(moved)
        })();
        let _ = self.conn.execute("DETACH DATABASE archive", []);
        let _ = self.conn.pragma_update(None, "cache_size", -2000i64);
        let moved = result?;
        drop(Database::open_read_write(archive)?);
        Ok(moved)
    }
}

/// What `last` asks for; the remaining conditions are checked by the report.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Keep rows whose User or TTY equals one of these (no condition when empty).
    pub users_or_ttys: Vec<String>,
    /// Keep rows with Login at or before this time.
    pub login_at_most: Option<Usec>,
}

/// Rows newest first, fetched in growing chunks.
pub struct Entries<'a> {
    db: &'a Database,
    filter: Filter,
    /// Where the order of an unfiltered listing comes from; None until the first chunk.
    order: Option<Order>,
    /// Rows given back by the consumer, refilled instead of allocated.
    pool: Vec<Entry>,
    /// Next chunk takes rows with Login <= cursor; None when the non-NULL logins are done.
    cursor: Option<Usec>,
    chunk: i64,
    buf: VecDeque<Entry>,
    nulls_done: bool,
}

/// Where the newest-first order of an unfiltered listing comes from.
enum Order {
    /// Walk `wtmp_login` backwards, one chunk of (Login, ID) keys at a time (the index
    /// alone answers: no table access for the order).
    Index,
    /// No index (an upstream database opened read-only, which a reader must not change):
    /// all keys, 16 bytes a row, read in one pass and sorted in memory once, instead of a
    /// sort of the whole table per chunk.
    Memory { keys: Vec<(Usec, i64)>, next: usize },
}

const COLUMNS: &str = "ID, Type, User, Login, Logout, TTY, RemoteHost, Service";

/// Every row insert: a login, a boot, an imported session.
const INSERT: &str = "INSERT INTO wtmp (Type, User, Login, Logout, TTY, RemoteHost, Service) \
                      VALUES (?, ?, ?, ?, ?, ?, ?)";

fn integer(v: ValueRef<'_>) -> Option<i64> {
    match v {
        ValueRef::Integer(i) => Some(i),
        ValueRef::Real(f) => Some(f as i64),
        ValueRef::Text(b) => std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()),
        _ => None,
    }
}

fn entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<Entry> {
    let mut e = Entry::default();
    entry_into(r, &mut e)?;
    Ok(e)
}

/// Sets `dst` to a TEXT value, reusing its buffer.
fn set_text(dst: &mut String, v: ValueRef<'_>) {
    dst.clear();
    match v {
        ValueRef::Null => {}
        ValueRef::Text(b) | ValueRef::Blob(b) => dst.push_str(&decode_lossless(b)),
        ValueRef::Integer(i) => dst.push_str(&i.to_string()),
        ValueRef::Real(f) => dst.push_str(&f.to_string()),
    }
}

fn set_opt_text(dst: &mut Option<String>, v: ValueRef<'_>) {
    if matches!(v, ValueRef::Null) {
        *dst = None;
    } else {
        set_text(dst.get_or_insert_with(String::new), v);
    }
}

/// [`entry`] into an existing value, keeping its string buffers (no allocation once warm).
fn entry_into(r: &rusqlite::Row<'_>, e: &mut Entry) -> rusqlite::Result<()> {
    e.id = integer(r.get_ref(0)?).unwrap_or(0);
    e.kind = Kind::from_i64(integer(r.get_ref(1)?).unwrap_or(0));
    set_text(&mut e.user, r.get_ref(2)?);
    e.login = integer(r.get_ref(3)?).unwrap_or(0);
    e.logout = integer(r.get_ref(4)?);
    set_opt_text(&mut e.tty, r.get_ref(5)?);
    set_opt_text(&mut e.host, r.get_ref(6)?);
    set_opt_text(&mut e.service, r.get_ref(7)?);
    Ok(())
}

impl Entries<'_> {
    /// Gives rows back after use: the next chunks are read into their buffers instead of
    /// fresh allocations (a long listing then allocates almost nothing per row).
    pub fn recycle(&mut self, mut used: Vec<Entry>) {
        if self.pool.len() < 16_384 {
            self.pool.append(&mut used);
        }
    }

    fn where_filter(&self, sql: &mut String, args: &mut Vec<rusqlite::types::Value>) {
        use rusqlite::types::Value;
        if let Some(max) = self.filter.login_at_most {
            sql.push_str(" AND Login <= ?");
            args.push(Value::Integer(max));
        }
        if !self.filter.users_or_ttys.is_empty() {
            let marks = vec!["?"; self.filter.users_or_ttys.len()].join(", ");
            sql.push_str(&format!(" AND (User IN ({marks}) OR TTY IN ({marks}))"));
            for _ in 0..2 {
                for v in &self.filter.users_or_ttys {
                    args.push(Value::Text(v.clone()));
                }
            }
        }
    }

    fn query(&self, head: &str, first: rusqlite::types::Value, tail: &str) -> Result<Vec<Entry>> {
        let mut sql = format!("SELECT {COLUMNS} FROM wtmp WHERE {head}");
        let mut args = vec![first];
        self.where_filter(&mut sql, &mut args);
        sql.push_str(tail);
        let mut stmt = self.db.conn.prepare_cached(&sql).map_err(sql_err_read)?;
        let rows = stmt
            .query_map(params_from_iter(args.iter()), entry)
            .map_err(sql_err_read)?;
        let v = rows
            .collect::<rusqlite::Result<Vec<Entry>>>()
            .map_err(sql_err_read)?;
        // Dropping the statement resets it: the read lock is released before printing.
        Ok(v)
    }

    fn keys<V: rusqlite::ToSql>(&self, sql: &str, args: &[V]) -> Result<Vec<(Usec, i64)>> {
        let mut stmt = self.db.conn.prepare_cached(sql).map_err(sql_err_read)?;
        let rows = stmt
            .query_map(params_from_iter(args.iter()), |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(sql_err_read)?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(sql_err_read)
    }

    /// The rows of `keys`, in the order of `keys`. Rows are read as one range of IDs when
    /// the keys are dense in it (the usual case: IDs grow with time), so the table is read
    /// sequentially instead of one B-tree descent per row.
    fn rows_for(&mut self, keys: &[(Usec, i64)]) -> Result<Vec<Entry>> {
        let (Some(lo), Some(hi)) = (
            keys.iter().map(|k| k.1).min(),
            keys.iter().map(|k| k.1).max(),
        ) else {
            return Ok(Vec::new());
        };
        let dense = u128::from(hi.abs_diff(lo)) <= 2 * keys.len() as u128 + 64;
        // Where each ID goes in the output: an array over the ID range when dense.
        let mut by_offset: Vec<u32> = Vec::new();
        let mut by_id: std::collections::HashMap<i64, u32> = std::collections::HashMap::new();
        if dense {
            by_offset = vec![u32::MAX; (hi - lo + 1) as usize];
            for (i, k) in keys.iter().enumerate() {
                by_offset[(k.1 - lo) as usize] = i as u32;
            }
        } else {
            by_id = keys
                .iter()
                .enumerate()
                .map(|(i, k)| (k.1, i as u32))
                .collect();
        }
        let mut out: Vec<Entry> = Vec::with_capacity(keys.len());
        for _ in 0..keys.len() {
            out.push(self.pool.pop().unwrap_or_default());
        }
        let mut filled = vec![false; keys.len()];
        let ids;
        let (sql, arg): (String, rusqlite::types::Value) = if dense {
            (
                format!("SELECT {COLUMNS} FROM wtmp WHERE ID BETWEEN ?1 AND ?2"),
                rusqlite::types::Value::Integer(lo),
            )
        } else {
            ids = keys
                .iter()
                .map(|k| k.1.to_string())
                .collect::<Vec<_>>()
                .join(",");
            (
                format!("SELECT {COLUMNS} FROM wtmp WHERE ID IN (SELECT value FROM json_each(?1))"),
                rusqlite::types::Value::Text(format!("[{ids}]")),
            )
        };
        {
            let mut stmt = self.db.conn.prepare_cached(&sql).map_err(sql_err_read)?;
            let mut rows = if dense {
                stmt.query(params![arg, hi])
            } else {
                stmt.query(params![arg])
            }
            .map_err(sql_err_read)?;
            while let Some(r) = rows.next().map_err(sql_err_read)? {
                let id: i64 = integer(r.get_ref(0).map_err(sql_err_read)?).unwrap_or(0);
                let slot = if dense {
                    by_offset
                        .get((id - lo) as usize)
                        .copied()
                        .filter(|&i| i != u32::MAX)
                } else {
                    by_id.get(&id).copied()
                };
                if let Some(i) = slot {
                    let i = i as usize;
                    entry_into(r, &mut out[i]).map_err(sql_err_read)?;
                    // A row deleted or replaced since its key was read is skipped.
                    filled[i] = out[i].login == keys[i].0;
                }
            }
        }
        if filled.iter().all(|&f| f) {
            return Ok(out);
        }
        let mut kept = Vec::with_capacity(out.len());
        for (e, f) in out.into_iter().zip(filled) {
            if f {
                kept.push(e);
            } else {
                self.pool.push(e);
            }
        }
        Ok(kept)
    }

    /// The next chunk of keys of an unfiltered listing, always ending with a whole group
    /// of equal Login (so ties can be ordered); empty when done.
    fn next_keys(&mut self, cursor: Usec) -> Result<Vec<(Usec, i64)>> {
        let max = self.filter.login_at_most.unwrap_or(i64::MAX).min(cursor);
        if self.order.is_none() {
            let indexed: bool = self
                .db
                .conn
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'wtmp_login')",
                    [],
                    |r| r.get(0),
                )
                .map_err(sql_err_read)?;
            // A user or tty filter selects few rows: their keys come from wtmp_user and
            // wtmp_tty in one query and are ordered here, once.
            self.order = Some(if indexed && self.filter.users_or_ttys.is_empty() {
                Order::Index
            } else {
                let mut sql = String::from("SELECT Login, ID FROM wtmp WHERE Login <= ?");
                let mut args = vec![rusqlite::types::Value::Integer(max)];
                self.where_filter(&mut sql, &mut args);
                let mut keys = self.keys(&sql, &args)?;
                keys.sort_unstable_by(|a, b| b.cmp(a));
                Order::Memory { keys, next: 0 }
            });
        }
        let chunk = self.chunk as usize;
        self.chunk = (self.chunk * 4).min(4096);
        match self.order.as_mut() {
            Some(Order::Memory { keys, next }) => {
                let start = *next;
                let mut end = (start + chunk).min(keys.len());
                while end < keys.len() && end > start && keys[end].0 == keys[end - 1].0 {
                    end += 1;
                }
                *next = end;
                Ok(keys[start..end].to_vec())
            }
            _ => {
                let mut keys = self.keys(
                    "SELECT Login, ID FROM wtmp WHERE Login <= ?1 ORDER BY Login DESC LIMIT ?2",
                    &[max, chunk as i64],
                )?;
                if keys.len() == chunk {
                    let last = keys[chunk - 1].0;
                    keys.retain(|k| k.0 != last);
                    keys.extend(self.keys("SELECT Login, ID FROM wtmp WHERE Login = ?1", &[last])?);
                }
                Ok(keys)
            }
        }
    }

    /// The next chunk, newest first (possibly empty while not done).
    fn chunk(&mut self) -> Result<Vec<Entry>> {
        use rusqlite::types::Value;
        if let Some(cursor) = self.cursor {
            let keys = self.next_keys(cursor)?;
            match keys.last() {
                Some(&(login, _)) => self.cursor = login.checked_sub(1),
                None => self.cursor = None,
            }
            let mut rows = self.rows_for(&keys)?;
            order_ties(&mut rows);
            Ok(rows)
        } else if !self.nulls_done {
            self.nulls_done = true;
            let mut rows = self.query("Login IS NULL AND ?", Value::Integer(1), "")?;
            order_ties(&mut rows);
            Ok(rows)
        } else {
            Ok(Vec::new())
        }
    }
}

fn sql_err_read(e: rusqlite::Error) -> Error {
    Error::Sql {
        context: "SQL error",
        source: e,
    }
}

/// Within equal Login, upstream's order: no logout first, then earlier logout, then ID.
fn order_ties(rows: &mut [Entry]) {
    rows.sort_by(|a, b| {
        b.login
            .cmp(&a.login)
            .then_with(|| match (a.logout, b.logout) {
                (None, None) => std::cmp::Ordering::Equal,
                (None, Some(_)) => std::cmp::Ordering::Less,
                (Some(_), None) => std::cmp::Ordering::Greater,
                (Some(x), Some(y)) => x.cmp(&y),
            })
            .then_with(|| a.id.cmp(&b.id))
    });
}

impl Entries<'_> {
    /// The next chunk of rows at once (newest first), for a reader that hands rows on in
    /// batches; None when done.
    pub fn next_batch(&mut self) -> Option<Result<Vec<Entry>>> {
        if !self.buf.is_empty() {
            return Some(Ok(Vec::from(std::mem::take(&mut self.buf))));
        }
        loop {
            if self.cursor.is_none() && self.nulls_done {
                return None;
            }
            match self.chunk() {
                Ok(rows) if rows.is_empty() => continue,
                Ok(rows) => return Some(Ok(rows)),
                Err(e) => {
                    self.cursor = None;
                    self.nulls_done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

impl Iterator for Entries<'_> {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            match self.next_batch()? {
                Ok(rows) => self.buf = VecDeque::from(rows),
                Err(e) => return Some(Err(e)),
            }
        }
        self.buf.pop_front().map(Ok)
    }
}

// Added for the PAM module (pam/): per-connection settings a caller may change after open.
impl Database {
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
            .query_row("PRAGMA journal_mode", [], |r| r.get::<_, String>(0))
            .map(|m| m.to_ascii_lowercase())
            .map_err(sql("Cannot read journal mode"))
    }

    /// Sets this connection's rollback journal mode (`delete`, `truncate` or `persist`: all
    /// readable by upstream) and returns the mode in force afterwards.
    pub fn set_journal_mode(&self, mode: &str) -> Result<String> {
        if !matches!(mode, "delete" | "truncate" | "persist") {
            return Err(Error::Io(format!("unsupported journal mode {mode}")));
        }
        self.conn
            .query_row(&format!("PRAGMA journal_mode = {mode}"), [], |r| {
                r.get::<_, String>(0)
            })
            .map(|m| m.to_ascii_lowercase())
            .map_err(sql("Cannot set journal mode"))
    }
}

impl Error {
    /// True when the failure is another connection's lock, also when it surfaced while
    /// opening (where [`Error::Open`] carries SQLite's message rather than its code).
    pub fn is_locked(&self) -> bool {
        match self {
            Error::Open { reason, .. } => reason == "database is locked",
            other => other.is_busy(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_db() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_read_write(&dir.path().join("sub/wtmp.db")).unwrap();
        (dir, db)
    }

    fn session<'a>(user: &'a str, tty: &'a str, login: Usec) -> NewEntry<'a> {
        NewEntry {
            kind: Kind::UserProcess,
            user,
            login,
            tty: Some(tty),
            host: Some("10.0.0.1"),
            service: Some("sshd"),
            ..NewEntry::default()
        }
    }

    #[test]
    fn login_logout_round_trip_beyond_2106() {
        let (_d, db) = new_db();
        let after_2106 = 4_400_000_000 * 1_000_000;
        let id = db.login(&session("alice", "pts/0", after_2106)).unwrap();
        db.logout(id, after_2106 + 90 * 1_000_000).unwrap();
        // A second close keeps the first logout.
        db.logout(id, after_2106 + 999 * 1_000_000).unwrap();
        let rows: Vec<Entry> = db.entries(&Filter::default()).map(Result::unwrap).collect();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].login, after_2106);
        assert_eq!(rows[0].logout, Some(after_2106 + 90 * 1_000_000));
        assert!(matches!(db.logout(id + 1, 0), Err(Error::LogoutRows(0))));
    }

    #[test]
    fn chunked_scan_returns_every_row_once_in_order() {
        let (_d, mut db) = new_db();
        // Many equal logins straddle chunk boundaries.
        let rows: Vec<NewEntry<'_>> = (0..5000)
            .map(|i| {
                let mut e = session("u", "pts/1", (i / 7) * 1_000_000);
                e.logout = if i % 3 == 0 { None } else { Some(i) };
                e
            })
            .collect();
        db.insert_all(rows, |_| {}).unwrap();
        let got: Vec<Entry> = db.entries(&Filter::default()).map(Result::unwrap).collect();
        assert_eq!(got.len(), 5000);
        let mut ids: Vec<i64> = got.iter().map(|e| e.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 5000);
        for w in got.windows(2) {
            assert!(w[0].login >= w[1].login);
        }
    }

    #[test]
    fn open_session_lookup_and_boot_queries() {
        let (_d, db) = new_db();
        let boot = NewEntry {
            kind: Kind::BootTime,
            user: "reboot",
            login: 100,
            tty: Some("~"),
            ..NewEntry::default()
        };
        db.login(&boot).unwrap();
        let a = db.login(&session("alice", "pts/0", 200)).unwrap();
        let b = db.login(&session("alice", "pts/0", 300)).unwrap();
        assert_eq!(
            db.open_sessions("alice", "pts/0", "sshd", 2).unwrap(),
            vec![b, a]
        );
        assert_eq!(db.newest_open_on_tty("pts/0").unwrap(), Some(b));
        assert_eq!(db.boot_time().unwrap(), Some(100));
        assert_eq!(db.boot_logins().unwrap(), vec![100]);
        assert_eq!(db.first_login().unwrap(), Some(100));
    }

    #[test]
    fn queries_use_indexes() {
        let (_d, db) = new_db();
        let plan = |q: &str| -> String {
            let mut s = db.conn.prepare(&format!("EXPLAIN QUERY PLAN {q}")).unwrap();
            let rows = s.query_map([], |r| r.get::<_, String>(3)).unwrap();
            let rows: Vec<String> = rows.map(|r| r.unwrap()).collect();
            rows.join("\n")
        };
        for q in [
            "SELECT * FROM wtmp WHERE Login <= 5 ORDER BY Login DESC LIMIT 64",
            "SELECT ID FROM wtmp WHERE TTY = '~' AND Logout IS NULL ORDER BY Login DESC LIMIT 1",
            "SELECT Login FROM wtmp WHERE User = 'reboot' ORDER BY Login DESC LIMIT 1",
            "SELECT Login FROM wtmp WHERE Type = 1 AND Login IS NOT NULL ORDER BY Login",
            "SELECT min(Login) FROM wtmp",
        ] {
            let p = plan(q);
            assert!(!p.contains("SCAN wtmp\n") && p != "SCAN wtmp", "{q}: {p}");
            assert!(!p.contains("TEMP B-TREE"), "{q}: {p}");
        }
    }
}
