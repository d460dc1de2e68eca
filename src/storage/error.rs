//! What can go wrong in storage. Each variant names the step that failed and keeps the error
//! it came from, so callers decide on the SQLite code (see [`Error::is_locked`]) and never on
//! message text; the messages themselves are upstream's where upstream has one.
//!
//! A failure of SQLite is kept as a [`SqliteError`], a type of this crate: no type of the
//! SQLite binding is part of the public API, and the front ends need no binding of their own
//! to read one.

use std::path::{Path, PathBuf};

use rusqlite::ffi;

/// How a database was being opened when it failed; the two read differently to the user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Reading only: a missing file is an error and nothing is created.
    ReadOnly,
    /// Reading and writing: the directory and the file are created if missing.
    ReadWrite,
}

impl Access {
    /// The start of an open failure message, as upstream words it for each mode.
    fn cannot_open(self, path: &Path) -> String {
        match self {
            Access::ReadOnly => format!("Cannot open database ({}) read-only", path.display()),
            Access::ReadWrite => format!("Cannot create/open database ({})", path.display()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The directory of a database to be created (the parent of `path`) could not be made.
    #[error(
        "{}: cannot create {}: {source}",
        Access::ReadWrite.cannot_open(path),
        path.parent().unwrap_or(Path::new("")).display()
    )]
    CreateDirectory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A step on a file before SQLite opens it failed (see [`FileStep`]).
    #[error(transparent)]
    File(Box<FileStep>),
    /// A writer refused a file it was to open (see [`Refusal`]).
    #[error(transparent)]
    Refused(Box<Refusal>),
    /// A read found the journal of an interrupted write (or a journal it cannot read, which
    /// SQLite must take for one), and the caller cannot write the database to roll it back.
    #[error(
        "{}: {}; root must recover it: any wtmpdb command run as root does, and so does the next login",
        Access::ReadOnly.cannot_open(path),
        if *readable {
            "a write to it was interrupted and left its journal to roll back".to_string()
        } else {
            format!(
                "its journal {} cannot be read (it lacks the database's mode)",
                super::side_files::side_file(path, "-journal").display()
            )
        }
    )]
    HotJournal {
        path: PathBuf,
        /// Whether the caller can read the journal (it cannot tell an interrupted write
        /// from a kept, invalidated journal otherwise).
        readable: bool,
    },
    /// Rotate refused the file with the archive's name; nothing was moved.
    #[error("rotate: refusing to write the archive {}: {why}; nothing was moved", archive.display())]
    ArchiveRefused { archive: PathBuf, why: String },
    /// SQLite could not open (or create) the file itself.
    #[error("{}: {}", access.cannot_open(path), source.code_text())]
    Open {
        path: PathBuf,
        access: Access,
        #[source]
        source: SqliteError,
    },
    /// The file opened, but setting up the connection or reading its schema failed: it is
    /// locked, corrupt, or not an SQLite database.
    #[error("{}: {}", access.cannot_open(path), source.message_text())]
    OpenSetup {
        path: PathBuf,
        access: Access,
        #[source]
        source: SqliteError,
    },
    /// The name is not a regular file (a FIFO, a device, a directory, a /proc file): refused
    /// before SQLite opens it, which could block or read forever.
    #[error("{}: {why}", access.cannot_open(path))]
    NotAFile {
        path: PathBuf,
        access: Access,
        why: &'static str,
    },
    /// A read found a `wtmp` table another tool made that does not hold what wtmpdb's does
    /// (IDs that are not unique, Login values that are not numbers): reading it would
    /// silently show fewer rows.
    #[error("{}: not a wtmpdb table: {why}", path.display())]
    ForeignTable { path: PathBuf, why: String },
    /// `--lastlog2` named an SQLite file without lastlog2's table.
    #[error("{}: not a lastlog2 database (it has no Lastlog2 table)", path.display())]
    NotLastlog2 { path: PathBuf },
    /// A read-only open found an SQLite file without the `wtmp` table.
    #[error("{}: not a wtmpdb database (it has no wtmp table)", path.display())]
    NotWtmpdb { path: PathBuf },
    /// A statement on an open database failed; `context` says what it was for.
    #[error("{context}: {source}")]
    Sql {
        context: &'static str,
        #[source]
        source: SqliteError,
    },
    /// A logout named a row that does not exist.
    #[error("Update of logout time changed wrong number of rows, expected 1, got {0}")]
    LogoutRows(usize),
    /// A journal mode upstream could not read (anything but a rollback journal).
    #[error("unsupported journal mode {mode}")]
    UnsupportedJournalMode { mode: String },
    /// Another process holds a lock on the database's `-shm` file that SQLite never takes (see
    /// `proc_locks::foreign_shm_lock`): opening it would stall for about ten seconds.
    #[error(
        "{}: process {} holds a lock on byte {} of {} that no SQLite connection takes; \
         not waiting for it",
        path.display(),
        lock.pid,
        lock.byte,
        super::side_files::side_file(path, "-shm").display()
    )]
    ForeignShmLock {
        path: PathBuf,
        lock: super::proc_locks::ForeignLock,
        /// A shared lock on a byte SQLite takes only exclusively: a user keeping writers out
        /// (see `proc_locks::shared_lock_on_a_writer_byte`), which no retry gets past.
        shuts_writers_out: bool,
    },
    /// The database file was truncated to nothing by another program (logrotate's
    /// `copytruncate`) while a write was under way: its commit, made over the file as it
    /// was, is in the log only, and is not copied into the emptied file (see
    /// `vfs::watch_truncation`). The next writer keeps that log as
    /// `NAME-wal.orphaned-USEC` and starts the file afresh.
    #[error(
        "{}: the file was truncated to nothing by another program during this write \
         (logrotate's copytruncate?): the write is not in it",
        path.display()
    )]
    TruncatedUnderWrite { path: PathBuf },
    /// A database read without locks (its `-wal` file was gone) changed while it was read.
    #[error(
        "{}: the database changed while it was read without its WAL file (a writer is \
         active); run the command again",
        path.display()
    )]
    ChangedWhileUnlocked { path: PathBuf },
}

/// A step on a file before SQLite opens it that failed: creating the database file,
/// resolving its name, giving a side file the database's mode and owner (see `files`).
#[derive(Debug, thiserror::Error)]
#[error("{}: {what} {}: {source}", Access::ReadWrite.cannot_open(path), file.display())]
pub struct FileStep {
    /// The database being opened.
    pub path: PathBuf,
    pub what: &'static str,
    /// The file the step was on.
    pub file: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// A file a writer refused to open: a symbolic link that neither root nor the caller owns, a
/// side file that is not what SQLite makes.
#[derive(Debug, thiserror::Error)]
#[error("{}: {} {why}", Access::ReadWrite.cannot_open(path), file.display())]
pub struct Refusal {
    /// The database being opened.
    pub path: PathBuf,
    /// The file refused.
    pub file: PathBuf,
    pub why: String,
}

impl Error {
    /// The SQLite error this failure came from, if any.
    pub fn sqlite(&self) -> Option<&SqliteError> {
        match self {
            Error::Open { source, .. }
            | Error::OpenSetup { source, .. }
            | Error::Sql { source, .. } => Some(source),
            _ => None,
        }
    }

    /// The primary SQLite result code of a failure to open the database (the file itself,
    /// or the first statements on it): `SQLITE_CANTOPEN` (14) for a file that cannot be
    /// opened, `SQLITE_NOTADB` (26) for one that is not a database, and so on. None for any
    /// other failure. Upstream's C library returns this code negated.
    pub fn open_code(&self) -> Option<i32> {
        match self {
            Error::Open { source, .. } | Error::OpenSetup { source, .. } => source.code(),
            _ => None,
        }
    }

    /// True when a read found a journal it must roll back first (SQLITE_READONLY_ROLLBACK:
    /// the connection is read-only).
    pub(crate) fn is_hot_journal(&self) -> bool {
        self.sqlite()
            .and_then(SqliteError::extended_code)
            .is_some_and(|code| code == ffi::SQLITE_READONLY_ROLLBACK)
    }

    /// True when a read-only open of a WAL database failed with one of the codes of an
    /// index in the making (see [`index_in_the_making`]): the open is tried again.
    pub(crate) fn is_index_in_the_making(&self) -> bool {
        matches!(self, Error::Open { .. } | Error::OpenSetup { .. })
            && self
                .sqlite()
                .and_then(SqliteError::extended_code)
                .is_some_and(index_in_the_making)
    }

    /// True when a statement on an open database found another process holding the lock.
    pub fn is_busy(&self) -> bool {
        matches!(self, Error::Sql { source, .. } if source.is_busy())
    }

    /// True when the failure is another connection's lock, also when it surfaced while
    /// opening (the first statements on a file are the first to meet a lock), or a lock
    /// another process holds on the `-shm` file that must not be waited for.
    pub fn is_locked(&self) -> bool {
        matches!(self, Error::ForeignShmLock { .. })
            || self.sqlite().is_some_and(SqliteError::is_busy)
    }

    /// True when SQLite found the database itself unusable: its file or its log is
    /// corrupt (`SQLITE_CORRUPT`, "database disk image is malformed"), is not a database
    /// (`SQLITE_NOTADB`), could not be read or written (`SQLITE_IOERR`, also what the
    /// writers' VFS reports for a file truncated under a connection, see
    /// `vfs::truncated_under_us`), or the disk is full (`SQLITE_FULL`). Never for what a
    /// statement was given (a constraint, a type, a missing row): no input of the caller's
    /// causes these, and a write that failed with one committed nothing.
    ///
    /// Also for a write that found no `wtmp` table: every connection that writes made sure
    /// of it at its open, so the file was emptied or replaced under it since (logrotate's
    /// `copytruncate` between the open and the write: one login in some 200 under two login
    /// loops and a copytruncate every quarter second was lost so).
    pub fn is_damaged(&self) -> bool {
        if matches!(self, Error::TruncatedUnderWrite { .. }) || self.table_gone() {
            return true;
        }
        self.is_malformed()
            || self
                .sqlite()
                .and_then(SqliteError::code)
                .is_some_and(|code| matches!(code, ffi::SQLITE_IOERR | ffi::SQLITE_FULL))
    }

    /// True for a statement that failed as SQLite found no `wtmp` table (`SQLITE_ERROR`,
    /// "no such table: wtmp").
    fn table_gone(&self) -> bool {
        self.sqlite().is_some_and(|e| {
            e.code() == Some(ffi::SQLITE_ERROR)
                && e.0.message.as_deref() == Some("no such table: wtmp")
        })
    }

    /// True for a corrupt or foreign-looking database (`SQLITE_CORRUPT`, `SQLITE_NOTADB`):
    /// what a log left beside another database file makes SQLite report (see
    /// `Database::set_aside_foreign_log`).
    pub(crate) fn is_malformed(&self) -> bool {
        self.sqlite()
            .and_then(SqliteError::code)
            .is_some_and(|code| matches!(code, ffi::SQLITE_CORRUPT | ffi::SQLITE_NOTADB))
    }

    /// The lock of another process that a session write would not wait for (see
    /// [`Error::ForeignShmLock`]).
    pub fn foreign_lock(&self) -> Option<super::ForeignLock> {
        match self {
            Error::ForeignShmLock { lock, .. } => Some(*lock),
            _ => None,
        }
    }

    /// True for a lock that keeps every writer out whatever they wait (see
    /// [`Error::ForeignShmLock`]): trying again cannot help.
    pub fn shuts_writers_out(&self) -> bool {
        matches!(
            self,
            Error::ForeignShmLock {
                shuts_writers_out: true,
                ..
            }
        )
    }
}

/// True for the extended result codes SQLite gives a read-only connection (one that may not
/// write the `-shm` index) while another process (re)builds the index, or while a foreign
/// tool's close removes the side files: the read-only codes (`SQLITE_READONLY_RECOVERY`
/// when the index needs rebuilding and its builder has not locked it yet,
/// `SQLITE_READONLY_CANTINIT` when no connection that may write it has it open), except
/// `SQLITE_READONLY_ROLLBACK` (a journal to roll back, which lasts), and "unable to open"
/// (a side file went away between two steps). Each passes within a moment.
pub(crate) fn index_in_the_making(extended_code: i32) -> bool {
    matches!(
        extended_code & 0xff,
        ffi::SQLITE_READONLY | ffi::SQLITE_CANTOPEN
    ) && extended_code != ffi::SQLITE_READONLY_ROLLBACK
}

/// A failure that SQLite reported, or that the binding to it found (a value of an
/// unexpected type, say): its text, and SQLite's result code when SQLite gave one.
#[derive(Debug)]
pub struct SqliteError(
    // Boxed so that a path and an SQLite error together do not make every `Result` of
    // this crate larger than a plain `Sql` failure does.
    Box<SqliteFailure>,
);

#[derive(Debug)]
struct SqliteFailure {
    /// SQLite's extended result code; None when the binding failed, not SQLite.
    code: Option<i32>,
    /// SQLite's own message for the failure, when it gave one.
    message: Option<String>,
    /// The whole text, as the binding words it.
    text: String,
}

impl SqliteError {
    /// Keeps what a failure of the binding says, without the binding's type.
    pub(crate) fn new(e: rusqlite::Error) -> SqliteError {
        let text = e.to_string();
        let (code, message) = match e {
            rusqlite::Error::SqliteFailure(err, message) => (Some(err.extended_code), message),
            _ => (None, None),
        };
        SqliteError(Box::new(SqliteFailure {
            code,
            message,
            text,
        }))
    }

    /// SQLite's primary result code (`SQLITE_BUSY` is 5, `SQLITE_CANTOPEN` 14), if SQLite
    /// reported the failure.
    pub fn code(&self) -> Option<i32> {
        self.0.code.map(|code| code & 0xff)
    }

    /// SQLite's extended result code (`SQLITE_READONLY_ROLLBACK` is 776), if SQLite reported
    /// the failure.
    pub fn extended_code(&self) -> Option<i32> {
        self.0.code
    }

    /// Busy, or "locking protocol": what SQLite reports when the WAL index's locks stayed
    /// taken through all its internal retries (cut short by the bounded VFS, see `vfs`), a
    /// lock held by someone else as much as busy is.
    pub fn is_busy(&self) -> bool {
        self.code()
            .is_some_and(|code| matches!(code, ffi::SQLITE_BUSY | ffi::SQLITE_PROTOCOL))
    }

    /// SQLite's text for the error code of a failed open. Its message is not used: the
    /// binding appends the path to it, and the path is already at the start of ours. When
    /// SQLite could not be loaded at all, the loader's message (SQLite has no text then).
    fn code_text(&self) -> String {
        match self.0.code {
            Some(code) if crate::sqlite::is_loaded() => ffi::code_to_str(code).to_string(),
            _ => self.0.text.clone(),
        }
    }

    /// SQLite's message for a failed statement ("database is locked", "file is not a
    /// database"), or the code's text when it gave none.
    fn message_text(&self) -> String {
        match &self.0.message {
            Some(msg) if !msg.is_empty() => msg.clone(),
            _ => self.code_text(),
        }
    }
}

impl std::fmt::Display for SqliteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.text)
    }
}

impl std::error::Error for SqliteError {}

pub type Result<T> = std::result::Result<T, Error>;

/// Wraps a failed statement with what it was for: `.map_err(sql("Cannot read entries"))`.
pub(crate) fn sql(context: &'static str) -> impl FnOnce(rusqlite::Error) -> Error {
    move |source| Error::Sql {
        context,
        source: SqliteError::new(source),
    }
}
