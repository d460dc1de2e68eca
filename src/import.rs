//! `wtmpdb import`: turns legacy wtmp files into wtmpdb rows.
//!
//! A wtmp file is a log of events (login, process death, boot, shutdown); wtmpdb stores
//! sessions with their logout time. The pairing follows util-linux `last`, so that a file
//! and its import list the same sessions:
//!
//! * a login (USER_PROCESS with a user and a line) ends at the next later record, in file
//!   order, on the same `ut_line` that is a DEAD_PROCESS or another login (a new login on a
//!   line means the previous one is gone);
//! * a boot record leaves the sessions still open as they are (wtmpdb shows them as
//!   "crash") and starts a new boot row;
//! * a shutdown record, or a change to runlevel 0 or 6, ends the sessions still open at its
//!   time (`last` shows them as "down"); a shutdown record also ends the boot row;
//! * records before a boot or shutdown never end a session opened after it, and vice versa.
//!
//! Like `last`, records that old programs wrote with a wrong `ut_type` are retyped: a
//! record on line `~` is classified by its user (`reboot`, `shutdown`, `runlevel`), any
//! other record with a user is a login unless the user is `LOGIN`, and a record without a
//! user ends the session on its line. We also take `ut_id == "~~"` as a system record.
//!
//! Everything is worked out in memory in one forward pass (strings are stored once, so a
//! row costs about 40 bytes) and then inserted, with final logout times, in transactions
//! that hold the write lock about 20 ms each, their commit included, and that the import
//! copies into the database file itself right after (`Database::import_rows`), so that
//! logins are never locked out for longer nor left a batch to copy. An import cut off part-way keeps what it committed, and importing the file again
//! adds only what is missing: a row whose event the database already holds is not added
//! twice (it only gets its logout time if it had none, as when a growing wtmp is imported
//! again).
//!
//! Into a database that does not exist yet there are no logins to leave room for: the
//! file's rows are written into a new database under a temporary name, in one transaction,
//! with the indexes built once at the end, and the file is moved into place only when
//! complete ([`import_new`], `storage::build_new`). If a login or another import created the
//! database meanwhile, that build is thrown away and the rows go into the live database
//! as above.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use crate::escape::{decode_lossless, for_terminal};
use crate::storage::{self, Database, NewEntry};
use crate::time::Usec;
use crate::utmp_file::{self, RECORD_SIZE, RawRecord, Reader};

/// What one imported file gave.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportSummary {
    pub path: PathBuf,
    /// Complete records read.
    pub records: u64,
    /// Session rows inserted (wtmpdb USER_PROCESS).
    pub sessions: u64,
    /// Boot rows inserted (wtmpdb BOOT_TIME).
    pub boots: u64,
    /// Rows of the file the database already held (an earlier import of the same file, or
    /// of an interrupted run), not added again.
    pub already_present: u64,
    /// Messages for stderr, each a complete line without the newline.
    pub warnings: Vec<String>,
}

/// Why a file was not imported. Its `Display` is the complete message for the user.
#[derive(Debug, thiserror::Error)]
#[error("Error importing {}: {}", path.display(), reason)]
pub struct ImportError {
    pub path: PathBuf,
    pub reason: ImportFailure,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportFailure {
    #[error("cannot open it: {0}")]
    Open(io::Error),
    #[error("read error: {0}")]
    Read(io::Error),
    /// A FIFO, a device, a directory, a /proc file (see [`crate::input`]).
    #[error("{0}; nothing imported")]
    NotAFile(&'static str),
    #[error("not a wtmp file ({0}); nothing imported")]
    NotWtmp(String),
    #[error("{}", database_failure(.error, *.committed))]
    Database {
        error: storage::Error,
        /// Rows of the file inserted before the failure (in batches that committed).
        committed: u64,
    },
}

fn database_failure(error: &storage::Error, committed: u64) -> String {
    if committed == 0 {
        format!("{error}; nothing from this file was imported")
    } else {
        format!(
            "{error}; {committed} rows of this file were imported before, the rest were not \
             (importing the file again adds only the missing rows)"
        )
    }
}

/// Files larger than this (or with more records than [`PROGRESS_MIN_RECORDS`]) get a
/// progress line when stderr is a terminal.
pub const PROGRESS_MIN_BYTES: u64 = 64 << 20;
pub const PROGRESS_MIN_RECORDS: u64 = 100_000;

/// After this many records a file that is mostly invalid is refused without reading on.
const EARLY_CHECK_RECORDS: u64 = 1024;

/// Imports `paths` in order and prints each file's warnings to stderr. Stops at the first file that fails; the files before it stay
/// imported. With `progress`, large files show a progress line when stderr is a terminal.
pub fn import_files<P: AsRef<Path>>(
    db: &mut Database,
    paths: &[P],
    progress: bool,
) -> Result<Vec<ImportSummary>, ImportError> {
    let mut done = Vec::with_capacity(paths.len());
    for path in paths {
        let summary = import_file(db, path.as_ref(), progress)?;
        print_warnings(&summary);
        done.push(summary);
    }
    Ok(done)
}

/// Imports one wtmp file (see the module documentation). Warnings are returned, not printed; the
/// progress line (see [`import_files`]) is the only output.
pub fn import_file(
    db: &mut Database,
    path: &Path,
    progress: bool,
) -> Result<ImportSummary, ImportError> {
    let Parsed {
        matcher,
        warnings,
        mut bar,
    } = parse(path, progress)?;
    let fail = |reason| ImportError {
        path: path.to_path_buf(),
        reason,
    };
    let total = matcher.rows.len() as u64;
    let logins = matcher.login_range();
    let mut committed = 0;
    let occurrences = matcher.occurrences();
    let inserted = db
        .import_rows(
            matcher.entries().zip(occurrences),
            logins,
            &mut committed,
            |n| bar.set(50 + n * 50 / total.max(1)),
        )
        .map_err(|error| fail(ImportFailure::Database { error, committed }))?;
    bar.clear();
    Ok(summary(path, &matcher, warnings, total, inserted))
}

/// Imports `log` into the database `path` when that does not exist yet: builds it whole
/// under a temporary name and moves it into place (see `storage::build_new`), much faster
/// than an import into a live database, which must leave logins room every few
/// milliseconds. None when the database exists (or was created meanwhile): nothing was
/// written, and the caller imports into it as usual. The warnings are printed.
pub fn import_new(
    path: &Path,
    log: &Path,
    progress: bool,
) -> Result<Option<ImportSummary>, ImportError> {
    if std::fs::symlink_metadata(path).is_ok() {
        storage::remove_abandoned(path);
        return Ok(None);
    }
    let Parsed {
        matcher,
        warnings,
        mut bar,
    } = parse(log, progress)?;
    let total = matcher.rows.len() as u64;
    let built = storage::build_new(path, matcher.entries(), |n| {
        bar.set(50 + n * 50 / total.max(1))
    })
    .map_err(|error| ImportError {
        path: log.to_path_buf(),
        reason: ImportFailure::Database {
            error,
            committed: 0,
        },
    })?;
    bar.clear();
    match built {
        storage::Built::Exists => Ok(None),
        storage::Built::Created(inserted) => {
            let done = summary(log, &matcher, warnings, total, inserted);
            print_warnings(&done);
            Ok(Some(done))
        }
    }
}

fn print_warnings(summary: &ImportSummary) {
    let mut err = io::stderr().lock();
    for w in &summary.warnings {
        let _ = writeln!(err, "{}", for_terminal(w));
    }
}

fn summary(
    path: &Path,
    matcher: &Matcher,
    mut warnings: Vec<String>,
    total: u64,
    inserted: u64,
) -> ImportSummary {
    let already_present = total - inserted;
    if already_present > 0 {
        warnings.push(format!(
            "{}: {already_present} of {total} rows were already in the database (imported \
             before); only the {inserted} missing ones were added",
            path.display()
        ));
    }
    ImportSummary {
        path: path.to_path_buf(),
        records: matcher.records(),
        sessions: matcher.sessions,
        boots: matcher.boots,
        already_present,
        warnings,
    }
}

/// A file read and its sessions worked out, before any row is stored.
struct Parsed {
    matcher: Matcher,
    warnings: Vec<String>,
    bar: ProgressLine,
}

fn parse(path: &Path, progress: bool) -> Result<Parsed, ImportError> {
    let fail = |reason| ImportError {
        path: path.to_path_buf(),
        reason,
    };
    if let Some(why) = crate::input::not_a_record_stream(path) {
        return Err(fail(ImportFailure::NotAFile(why)));
    }
    let file = File::open(path).map_err(|e| fail(ImportFailure::Open(e)))?;
    // A pipe or device has no size: it is read to its end, without progress.
    let size = file
        .metadata()
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len());
    let show = progress
        && size.is_some_and(|s| {
            s > PROGRESS_MIN_BYTES || s / RECORD_SIZE as u64 > PROGRESS_MIN_RECORDS
        })
        && io::stderr().is_terminal();
    let mut bar = ProgressLine::new(show, path);
    let size = size.unwrap_or(u64::MAX);

    // Only what was there when we looked: a live wtmp may grow while we read it, and its
    // new last record may still be half written.
    let mut reader = Reader::new(BufReader::with_capacity(256 * RECORD_SIZE, file.take(size)));
    let mut matcher = Matcher::new();
    loop {
        let rec = match reader.next_record() {
            Ok(Some(rec)) => rec,
            Ok(None) => break,
            Err(e) => return Err(fail(ImportFailure::Read(e))),
        };
        if matcher.records() == 0 {
            if let Some(what) = utmp_file::recognize_foreign(rec.as_bytes()) {
                return Err(fail(ImportFailure::NotWtmp(format!("it is {what}"))));
            }
        }
        matcher.feed(rec);
        let n = matcher.records();
        if n == EARLY_CHECK_RECORDS {
            if let Some(why) = matcher.foreign_reason() {
                return Err(fail(ImportFailure::NotWtmp(why)));
            }
        }
        if show && n % 4096 == 0 {
            bar.set(reader.bytes_read() * 50 / size.max(1));
        }
    }
    let spare = reader.spare();
    if matcher.records() == 0 {
        // Too short for one record, but it may still be clearly something else.
        if let Some(what) = utmp_file::recognize_foreign(spare) {
            return Err(fail(ImportFailure::NotWtmp(format!("it is {what}"))));
        }
    }
    if let Some(why) = matcher.foreign_reason() {
        return Err(fail(ImportFailure::NotWtmp(why)));
    }
    let mut warnings = Vec::new();
    if !spare.is_empty() {
        warnings.push(format!(
            "Warning: utmp-format file is not a multiple of sizeof(struct utmp) in length: \
             {} spare bytes, {}",
            spare.len(),
            path.display()
        ));
    }
    warnings.extend(matcher.warnings());

    Ok(Parsed {
        matcher,
        warnings,
        bar,
    })
}

/// "\rimporting FILE: 45%" on stderr, cleared when done or dropped.
struct ProgressLine {
    enabled: bool,
    name: String,
    shown: Option<u64>,
    width: usize,
}

impl ProgressLine {
    fn new(enabled: bool, path: &Path) -> Self {
        ProgressLine {
            enabled,
            name: for_terminal(&path.display().to_string()).into_owned(),
            shown: None,
            width: 0,
        }
    }

    fn set(&mut self, percent: u64) {
        let percent = percent.min(100);
        if !self.enabled || self.shown == Some(percent) {
            return;
        }
        self.shown = Some(percent);
        let line = format!("importing {}: {percent}%", self.name);
        self.width = self.width.max(line.chars().count());
        let mut err = io::stderr().lock();
        let _ = write!(err, "\r{line}");
        let _ = err.flush();
    }

    fn clear(&mut self) {
        if self.shown.take().is_some() {
            let mut err = io::stderr().lock();
            let _ = write!(err, "\r{:1$}\r", "", self.width);
            let _ = err.flush();
        }
    }
}

impl Drop for ProgressLine {
    fn drop(&mut self) {
        self.clear();
    }
}

/// Strings stored once, by their raw bytes.
#[derive(Default)]
struct Interner {
    ids: HashMap<Box<[u8]>, u32>,
    texts: Vec<String>,
}

impl Interner {
    fn intern(&mut self, bytes: &[u8]) -> u32 {
        if let Some(&id) = self.ids.get(bytes) {
            return id;
        }
        let id = self.texts.len() as u32;
        self.texts.push(decode_lossless(bytes).into_owned());
        self.ids.insert(bytes.into(), id);
        id
    }

    fn get(&self, bytes: &[u8]) -> Option<u32> {
        self.ids.get(bytes).copied()
    }

    fn text(&self, id: u32) -> &str {
        &self.texts[id as usize]
    }
}

#[derive(Clone, Copy, Debug)]
struct Row {
    boot: bool,
    user: u32,
    tty: u32,
    host: u32,
    login: Usec,
    logout: Option<Usec>,
}

/// What a record means for the sessions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Event {
    Boot,
    Shutdown,
    /// A runlevel change, with the level character from `ut_pid`.
    RunLevel(u8),
    Login,
    /// Ends the session on the record's line.
    Dead,
    Ignore,
}

fn classify(r: &RawRecord<'_>) -> Event {
    use utmp_file::{BOOT_TIME, DEAD_PROCESS, RUN_LVL, USER_PROCESS};
    let (line, user) = (r.line(), r.user());
    let system = line.first() == Some(&b'~') || r.id() == b"~~";
    // Prefix comparisons, as `last` does them.
    let ut_type = if system {
        if user.starts_with(b"shutdown") {
            return Event::Shutdown;
        } else if user.starts_with(b"reboot") {
            return Event::Boot;
        } else if user.starts_with(b"runlevel") {
            RUN_LVL
        } else {
            r.ut_type()
        }
    } else if user.is_empty() {
        DEAD_PROCESS
    } else if user.starts_with(b"date") && matches!(line.first(), Some(b'|' | b'{')) {
        // Clock change records (OLD_TIME / NEW_TIME) of old writers.
        return Event::Ignore;
    } else if r.ut_type() != DEAD_PROCESS && !line.is_empty() && !user.starts_with(b"LOGIN") {
        USER_PROCESS
    } else {
        r.ut_type()
    };
    match ut_type {
        BOOT_TIME => Event::Boot,
        RUN_LVL => Event::RunLevel((r.pid() & 0xff) as u8),
        USER_PROCESS if user.is_empty() => Event::Dead,
        USER_PROCESS => Event::Login,
        DEAD_PROCESS => Event::Dead,
        _ => Event::Ignore,
    }
}

/// The pairing state machine: feed it records in file order, then take its rows.
pub struct Matcher {
    strings: Interner,
    rows: Vec<Row>,
    /// Index of the open session per line (interned `ut_line`).
    open: HashMap<u32, usize>,
    /// The boot row of the running system, while it has no shutdown.
    boot: Option<usize>,
    /// A change to runlevel 0/6 since that boot: when the next boot comes without a
    /// shutdown record, the system went down cleanly at this time.
    went_down: Option<Usec>,
    records: u64,
    /// Records that are all zero bytes (what /dev/zero or a hole in a file gives).
    zero: u64,
    unknown_type: u64,
    bad_usec: u64,
    sessions: u64,
    boots: u64,
    reboot: u32,
    tilde: u32,
}

impl Default for Matcher {
    fn default() -> Self {
        Self::new()
    }
}

impl Matcher {
    pub fn new() -> Self {
        let mut strings = Interner::default();
        let reboot = strings.intern(b"reboot");
        let tilde = strings.intern(b"~");
        Matcher {
            strings,
            rows: Vec::new(),
            open: HashMap::new(),
            boot: None,
            went_down: None,
            records: 0,
            zero: 0,
            unknown_type: 0,
            bad_usec: 0,
            sessions: 0,
            boots: 0,
            reboot,
            tilde,
        }
    }

    /// Takes the next record of the file.
    pub fn feed(&mut self, r: RawRecord<'_>) {
        self.records += 1;
        if r.as_bytes().iter().all(|&b| b == 0) {
            self.zero += 1;
            return;
        }
        if !r.has_known_type() {
            self.unknown_type += 1;
            return;
        }
        if !r.tv_usec_is_valid() {
            self.bad_usec += 1;
        }
        let t = r.time();
        match classify(&r) {
            Event::Boot => {
                // Sessions still open stay open: the system crashed under them.
                self.open.clear();
                if let Some(b) = self.boot.take() {
                    self.rows[b].logout = self.went_down;
                }
                self.went_down = None;
                self.boot = Some(self.rows.len());
                let host = self.strings.intern(r.host());
                self.rows.push(Row {
                    boot: true,
                    user: self.reboot,
                    tty: self.tilde,
                    host,
                    login: t,
                    logout: None,
                });
                self.boots += 1;
            }
            Event::Shutdown => {
                self.close_all(t);
                if let Some(b) = self.boot.take() {
                    self.rows[b].logout = Some(t);
                }
                self.went_down = None;
            }
            Event::RunLevel(b'0' | b'6') => {
                self.close_all(t);
                if self.boot.is_some() && self.went_down.is_none() {
                    self.went_down = Some(t);
                }
            }
            Event::Login => {
                let tty = self.strings.intern(r.line());
                let row = self.rows.len();
                if !r.line().is_empty() {
                    if let Some(prev) = self.open.insert(tty, row) {
                        self.rows[prev].logout = Some(t);
                    }
                }
                let user = self.strings.intern(r.user());
                let host = self.strings.intern(r.host());
                self.rows.push(Row {
                    boot: false,
                    user,
                    tty,
                    host,
                    login: t,
                    logout: None,
                });
                self.sessions += 1;
            }
            Event::Dead => {
                // A line never seen in a login has nothing to end.
                if let Some(prev) = self
                    .strings
                    .get(r.line())
                    .and_then(|tty| self.open.remove(&tty))
                {
                    self.rows[prev].logout = Some(t);
                }
            }
            Event::RunLevel(_) | Event::Ignore => {}
        }
    }

    fn close_all(&mut self, t: Usec) {
        for (_, row) in self.open.drain() {
            self.rows[row].logout = Some(t);
        }
    }

    /// Records fed so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Session rows so far.
    pub fn sessions(&self) -> u64 {
        self.sessions
    }

    /// Boot rows so far.
    pub fn boots(&self) -> u64 {
        self.boots
    }

    /// Why the records fed so far do not look like a wtmp file, if they don't: most of
    /// them have a `ut_type` glibc does not define.
    pub fn foreign_reason(&self) -> Option<String> {
        if self.records > 0 && self.zero == self.records {
            return Some(format!("all {} records read are zero bytes", self.records));
        }
        (self.unknown_type * 2 > self.records).then(|| {
            format!(
                "{} of {} records have an invalid ut_type",
                self.unknown_type, self.records
            )
        })
    }

    /// Notes about records that were skipped or repaired.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.unknown_type > 0 {
            w.push(format!(
                "Warning: {} records with an invalid ut_type were ignored",
                self.unknown_type
            ));
        }
        if self.bad_usec > 0 {
            w.push(format!(
                "Warning: {} records have tv_usec outside 0..999999; their times were \
                 taken to the whole second",
                self.bad_usec
            ));
        }
        w
    }

    /// The smallest and largest Login of the rows to insert (`0..=0` when there are none).
    pub fn login_range(&self) -> std::ops::RangeInclusive<Usec> {
        let lo = self.rows.iter().map(|r| r.login).min();
        let hi = self.rows.iter().map(|r| r.login).max();
        match (lo, hi) {
            (Some(lo), Some(hi)) => lo..=hi,
            _ => 0..=0,
        }
    }

    /// For each row, how many earlier rows of this file record the same event (Login, kind,
    /// user, tty): 0 for nearly all. Lets an import match the n-th such row with the n-th
    /// one already in the database. Sorts row indexes (4 bytes a row) instead of hashing.
    pub fn occurrences(&self) -> Vec<u32> {
        let key = |r: &Row| (r.login, r.boot, r.user, r.tty);
        let mut order: Vec<u32> = (0..self.rows.len() as u32).collect();
        order.sort_by_key(|&i| (key(&self.rows[i as usize]), i));
        let mut occ = vec![0u32; self.rows.len()];
        for w in 1..order.len() {
            let (prev, cur) = (order[w - 1] as usize, order[w] as usize);
            if key(&self.rows[prev]) == key(&self.rows[cur]) {
                occ[cur] = occ[prev] + 1;
            }
        }
        occ
    }

    /// The rows to insert, in the order their first record appeared.
    pub fn entries(&self) -> impl Iterator<Item = NewEntry<'_>> + '_ {
        self.rows.iter().map(|r| NewEntry {
            kind: if r.boot {
                storage::Kind::BootTime
            } else {
                storage::Kind::UserProcess
            },
            user: self.strings.text(r.user),
            login: r.login,
            logout: r.logout,
            tty: Some(self.strings.text(r.tty)),
            host: Some(self.strings.text(r.host)),
            service: None,
        })
    }
}

/// What one imported btmp file gave: its records, and the attempts added (not recorded
/// already).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BtmpSummary {
    pub records: u64,
    pub added: u64,
}

/// Why a btmp file could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum BtmpError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Store(#[from] storage::FailedError),
}

/// Imports the legacy btmp file `path` (the failed logins login and sshd wrote, `struct utmp`
/// records as in wtmp) into the failures' file `store`: every whole record is an attempt,
/// as util-linux `lastb` lists every record (user as written, `ut_line` as tty, `ut_host`,
/// the PID; no service). A file imported again adds nothing.
pub fn import_btmp(store: &storage::FailureStore, path: &Path) -> Result<BtmpSummary, BtmpError> {
    let failed = |source| BtmpError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = Reader::new(BufReader::new(File::open(path).map_err(failed)?));
    let mut records = Vec::new();
    while let Some(r) = reader.next_record().map_err(failed)? {
        records.push((
            r.time(),
            decode_lossless(r.user()).into_owned(),
            decode_lossless(r.line()).into_owned(),
            decode_lossless(r.host()).into_owned(),
            r.pid(),
        ));
    }
    let attempts: Vec<storage::NewFailure<'_>> = records
        .iter()
        .map(|(time, user, tty, host, pid)| storage::NewFailure {
            time: *time,
            user,
            tty: Some(tty.as_str()).filter(|t| !t.is_empty()),
            host: Some(host.as_str()).filter(|h| !h.is_empty()),
            service: None,
            pid: Some(i64::from(*pid)).filter(|&p| p > 0),
        })
        .collect();
    let added = store.import(&attempts)?;
    Ok(BtmpSummary {
        records: records.len() as u64,
        added,
    })
}
