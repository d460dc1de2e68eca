//! `wtmpdb export`: every record as one JSON line (our own shape, or Elastic Common Schema),
//! resumable with a cursor file.
//!
//! A record gives one event when it is written (a login, a boot, a failed attempt) and one
//! when it is closed (a logout, a shutdown). Each run reads, in ID order and in one read
//! transaction (one snapshot: what is committed during the run is in the next), the rows the
//! cursor holds open and the rows after its last ID, and nothing else of the table.
//! The cursor remembers, for the file it was taken on (its device and inode), the highest
//! row ID exported and the rows that were still open: the next run emits the rows after that
//! ID and the logouts of those open rows, nothing else. After a rotate that renamed the file
//! (logrotate's `create`), the rest of the renamed file is exported first (found by its
//! inode beside the new one), then the new file from its first row.
//!
//! Exactly once: the output is flushed, then the cursor replaced atomically, with SIGINT,
//! SIGTERM and SIGHUP held back in between; only a crash or SIGKILL in that window repeats
//! the last batch (each event has a stable `event_id` to drop such a repeat by).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::escape::json_string_into;
use crate::journal::What;
use crate::storage::{Database, Entry, Failure, FailureStore, Kind, failures_path};
use crate::time::Usec;

/// The output's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Our fields, exact values.
    Json,
    /// Elastic Common Schema, as Auditbeat's login dataset fills it.
    Ecs,
}

/// A file by device and inode: what a rename keeps and a new file does not.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

impl FileId {
    pub fn of(path: &Path) -> io::Result<FileId> {
        let m = std::fs::metadata(path)?;
        Ok(FileId {
            dev: m.dev(),
            ino: m.ino(),
        })
    }
}

/// Where the last run stopped, in one file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    /// The session database it was taken on (None: nothing exported yet).
    pub file: Option<FileId>,
    /// The highest row ID exported.
    pub last_id: i64,
    /// Rows at or below `last_id` still open, with their login time: their logout is
    /// still to come (found in an archive by that time when a rotate moved the row).
    pub open: BTreeMap<i64, Usec>,
    /// The failures' file it was taken on, and the highest attempt exported.
    pub failed_file: Option<FileId>,
    pub failed_last_id: i64,
}

impl Cursor {
    /// The cursor in `path`; the default (from the beginning) when there is none yet.
    pub fn load(path: &Path) -> io::Result<Cursor> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Cursor::default()),
            Err(e) => return Err(e),
        };
        let bad = || {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: not a cursor", path.display()),
            )
        };
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|_| bad())?;
        if v.get("version").and_then(|x| x.as_u64()) != Some(1) {
            return Err(bad());
        }
        let id = |d: &str, i: &str| -> Option<FileId> {
            Some(FileId {
                dev: v.get(d)?.as_u64()?,
                ino: v.get(i)?.as_u64()?,
            })
        };
        let int = |k: &str| v.get(k).and_then(|x| x.as_i64()).unwrap_or(0);
        Ok(Cursor {
            file: id("dev", "ino"),
            last_id: int("last_id"),
            open: v
                .get("open")
                .and_then(|o| o.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|x| Some((x.get(0)?.as_i64()?, x.get(1)?.as_i64()?)))
                        .collect()
                })
                .unwrap_or_default(),
            failed_file: id("failed_dev", "failed_ino"),
            failed_last_id: int("failed_last_id"),
        })
    }

    /// Replaces the cursor in `path` atomically (a new file, synced, renamed over it).
    pub fn save(&self, path: &Path) -> io::Result<()> {
        let mut v = serde_json::json!({
            "version": 1,
            "last_id": self.last_id,
            "open": self.open.iter().map(|(id, login)| [*id, *login]).collect::<Vec<_>>(),
            "failed_last_id": self.failed_last_id,
        });
        if let Some(f) = self.file {
            v["dev"] = f.dev.into();
            v["ino"] = f.ino.into();
        }
        if let Some(f) = self.failed_file {
            v["failed_dev"] = f.dev.into();
            v["failed_ino"] = f.ino.into();
        }
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut tmp = tempfile_in(dir)?;
        tmp.1.write_all(v.to_string().as_bytes())?;
        tmp.1.write_all(b"\n")?;
        tmp.1.sync_all()?;
        std::fs::rename(&tmp.0, path)?;
        std::fs::File::open(dir)?.sync_all()
    }
}

/// A new file in `dir` for the cursor's replacement.
fn tempfile_in(dir: &Path) -> io::Result<(PathBuf, std::fs::File)> {
    for n in 0..100u32 {
        let p = dir.join(format!(".wtmpdb-cursor.{}.{n}", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&p)
        {
            Ok(f) => return Ok((p, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("cannot create the cursor's new file"))
}

/// What an export run is given.
#[derive(Clone, Debug)]
pub struct Options {
    pub database: PathBuf,
    pub format: Format,
    /// Export the failed attempts too (their file is root's).
    pub failures: bool,
}

/// The boots of one snapshot: which boot a time belongs to.
struct Boots(Vec<(Usec, i64)>);

impl Boots {
    /// The newest boot that began at or before `t`: its row ID and time.
    fn of(&self, t: Usec) -> Option<(i64, Usec)> {
        let i = self.0.partition_point(|(at, _)| *at <= t);
        i.checked_sub(1).map(|i| (self.0[i].1, self.0[i].0))
    }
}

/// Exports what happened since `cursor` in the database (and, when asked, its failures'
/// file) to `out`, and advances `cursor`. Returns how many events were written.
pub fn run(opts: &Options, cursor: &mut Cursor, out: &mut dyn Write) -> Result<u64, Error> {
    let mut count = 0;
    let mut line = String::with_capacity(1024);
    // The file at the name is looked at before the renamed one is read: a rotate renames
    // the file and then its log (`-wal`), and only then can a writer make the new file, so
    // a new file seen with its table means the renamed file read after it has its log
    // beside it. Read the other way round, a run could read the renamed file without the
    // commits still in its log, then find the new file and move the cursor past them.
    let live = open_stable(&opts.database)?;
    if let Some(was) = cursor.file {
        if live.as_ref().map(|(_, id)| *id) != Some(was) {
            // Renamed (a rotate): the rest of the file the cursor was taken on, found
            // beside its old name by its inode, first.
            if let Some(old) = sibling_with(&opts.database, was) {
                if let Some((db, id)) = open_stable(&old)? {
                    if id == was {
                        count += rows_since(&db, opts.format, cursor, out, &mut line)?;
                    }
                }
            }
        }
    }
    if let Some((db, id)) = live {
        if cursor.file != Some(id) {
            // A new file (or the first run): from its first row.
            *cursor = Cursor {
                file: Some(id),
                failed_file: cursor.failed_file,
                failed_last_id: cursor.failed_last_id,
                ..Cursor::default()
            };
        }
        count += rows_since(&db, opts.format, cursor, out, &mut line)?;
    }
    if opts.failures {
        count += failures_since(opts, cursor, out)?;
    }
    Ok(count)
}

/// The database at `path` and which file it is: looked at before and after the open, so
/// that a rename in between is seen (and the open done again). None: no file there, or one
/// without the table yet (just created, empty or in its first writer's first moments). A
/// file without its table is not taken: the cursor stays on the file it was taken on, so
/// that the next run reads again what a rotate's renamed file got after this one looked
/// (its log renamed after it, a copy its writer made into it).
fn open_stable(path: &Path) -> Result<Option<(Database, FileId)>, Error> {
    loop {
        let Ok(before) = FileId::of(path) else {
            return Ok(None);
        };
        let db = match Database::open_read_only(path) {
            Ok(db) if !db.has_table() => return Ok(None),
            Ok(db) => db,
            Err(crate::storage::Error::NotWtmpdb { .. }) => return Ok(None),
            Err(e) if FileId::of(path).ok() == Some(before) => return Err(e.into()),
            Err(_) => continue,
        };
        if FileId::of(path).ok() == Some(before) {
            return Ok(Some((db, before)));
        }
    }
}

/// A file in the directory of `path` that is `id` (a renamed database).
fn sibling_with(path: &Path, id: FileId) -> Option<PathBuf> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| FileId::of(p).is_ok_and(|f| f == id))
}

/// The events of `db` after `cursor` (new rows, logouts of the rows it holds open), read in
/// one statement (one snapshot), written to `out` as they are read; advances `cursor`.
fn rows_since(
    db: &Database,
    format: Format,
    cursor: &mut Cursor,
    out: &mut dyn Write,
    line: &mut String,
) -> Result<u64, Error> {
    let mut boots = Boots(db.boot_rows()?);
    let database = db.file().to_string_lossy().into_owned();
    let mut count = 0;
    let mut open = BTreeMap::new();
    let mut seen_open = Vec::new();
    let mut last = cursor.last_id;
    let mut failed: Option<io::Error> = None;
    let listed: Vec<i64> = cursor.open.keys().copied().collect();
    // Only the rows the cursor holds open and the new ones come.
    db.each_row_since(cursor.last_id, &listed, |e| {
        let new = e.id > cursor.last_id;
        if failed.is_some() {
            return;
        }
        if !new {
            seen_open.push(e.id);
        }
        if new && e.kind == Kind::BootTime && boots.of(e.login).map(|b| b.0) != Some(e.id) {
            // Written after the look at the boots.
            let at = boots.0.partition_point(|b| *b <= (e.login, e.id));
            boots.0.insert(at, (e.login, e.id));
        }
        let boot = boots.of(e.login);
        line.clear();
        if new {
            row_line(line, format, &e, false, boot, &database);
            count += 1;
            last = last.max(e.id);
        }
        if e.logout.is_some() {
            row_line(line, format, &e, true, boot, &database);
            count += 1;
        } else {
            open.insert(e.id, e.login);
        }
        if let Err(err) = out.write_all(line.as_bytes()) {
            failed = Some(err);
        }
    })?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    // Open rows gone from the file: a rotate moved them, closed, into an archive.
    let mut gone: BTreeMap<i64, Usec> = cursor.open.clone();
    for id in seen_open {
        gone.remove(&id);
    }
    if !gone.is_empty() {
        count += logouts_in_archives(db.file(), &gone, format, &boots, &database, out, line)?;
    }
    cursor.last_id = last;
    cursor.open = open;
    Ok(count)
}

/// The logouts of the sessions `gone` (row ID and login time in the live file) that a rotate
/// moved into the archives beside `live` (`NAME_YYYYMMDD.db`): each found by its login time,
/// when exactly one closed row of an archive has it, and printed under its live ID.
fn logouts_in_archives(
    live: &Path,
    gone: &BTreeMap<i64, Usec>,
    format: Format,
    boots: &Boots,
    database: &str,
    out: &mut dyn Write,
    line: &mut String,
) -> Result<u64, Error> {
    let Ok(archives) = crate::ops::archives_of(live) else {
        return Ok(0);
    };
    let mut count = 0;
    let mut left = gone.clone();
    // Newest first: a rotate moves the newest closed rows into the newest archive.
    for (_, archive) in archives.iter().rev() {
        if left.is_empty() {
            break;
        }
        let Ok(db) = Database::open_read_only(archive) else {
            continue;
        };
        let mut found = Vec::new();
        for (&id, &login) in &left {
            let rows = db.rows_with_login(login)?;
            if let [row] = rows.as_slice() {
                if row.logout.is_some() {
                    found.push((id, row.clone()));
                }
            }
        }
        for (id, row) in found {
            left.remove(&id);
            line.clear();
            let e = Entry { id, ..row };
            row_line(line, format, &e, true, boots.of(e.login), database);
            out.write_all(line.as_bytes())?;
            count += 1;
        }
    }
    Ok(count)
}

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Storage(#[from] crate::storage::Error),
    #[error(transparent)]
    Failures(#[from] crate::storage::FailedError),
    #[error("{0}")]
    Io(#[from] io::Error),
}

fn failures_since(opts: &Options, cursor: &mut Cursor, out: &mut dyn Write) -> Result<u64, Error> {
    let path = failures_path(&opts.database);
    let Ok(id) = FileId::of(&path) else {
        return Ok(0);
    };
    if cursor.failed_file != Some(id) {
        cursor.failed_file = Some(id);
        cursor.failed_last_id = 0;
    }
    let Some(store) = FailureStore::open_read(&path)? else {
        return Ok(0);
    };
    let mut list = Vec::new();
    store.each_after_id(cursor.failed_last_id, |f| list.push(f))?;
    // Their boots come from the session database's boot rows.
    let boots = match Database::open_read_only(&opts.database) {
        Ok(db) => Boots(db.boot_rows()?),
        Err(_) => Boots(Vec::new()),
    };
    let file = path.to_string_lossy();
    let mut line = String::new();
    for f in &list {
        line.clear();
        failure_line(&mut line, opts.format, f, boots.of(f.time), &file);
        out.write_all(line.as_bytes())?;
        cursor.failed_last_id = cursor.failed_last_id.max(f.id);
    }
    Ok(list.len() as u64)
}

/// `"name":"value"` (with the comma before it unless first).
fn str_field(out: &mut String, name: &str, value: &str) {
    if !out.ends_with('{') {
        out.push(',');
    }
    out.push('"');
    out.push_str(name);
    out.push_str("\":\"");
    json_str(out, value);
    out.push('"');
}

/// `value` as the contents of a JSON string: printable ASCII as it is, the rest as
/// [`json_string_into`] escapes it.
fn json_str(out: &mut String, value: &str) {
    if value
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        out.push_str(value);
    } else {
        json_string_into(out, value);
    }
}

fn int_field(out: &mut String, name: &str, value: i64) {
    if !out.ends_with('{') {
        out.push(',');
    }
    out.push('"');
    out.push_str(name);
    out.push_str("\":");
    push_int(out, value);
}

/// `value` in decimal, without the formatting machinery (the export writes millions).
fn push_int(out: &mut String, value: i64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut v = value.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if value < 0 {
        out.push('-');
    }
    // Only ASCII digits were written.
    out.push_str(std::str::from_utf8(&buf[i..]).unwrap_or_default());
}

fn opt_str(out: &mut String, name: &str, value: Option<&str>) {
    match value {
        Some(v) => str_field(out, name, v),
        None => {
            if !out.ends_with('{') {
                out.push(',');
            }
            let _ = write!(out, "\"{name}\":null");
        }
    }
}

/// The stable ID of one event, for a consumer to drop a repeat by: `"NAME":"DATABASE:KIND:ID"`.
fn event_id_field(out: &mut String, name: &str, database: &str, what: What, id: i64) {
    if !out.ends_with('{') {
        out.push(',');
    }
    out.push('"');
    out.push_str(name);
    out.push_str("\":\"");
    json_str(out, database);
    out.push(':');
    out.push_str(what.name());
    out.push(':');
    push_int(out, id);
    out.push('"');
}

/// One event of row `e` (its closing when `closed`), as a line.
fn row_line(
    out: &mut String,
    format: Format,
    e: &Entry,
    closed: bool,
    boot: Option<(i64, Usec)>,
    database: &str,
) {
    let what = What::of_row(e.kind, closed);
    let time = if closed {
        e.logout.unwrap_or(e.login)
    } else {
        e.login
    };
    out.push('{');
    match format {
        Format::Json => {
            str_field(out, "kind", what.name());
            int_field(out, "time_usec", time);
            int_field(out, "id", e.id);
            int_field(out, "type", e.kind.as_i64());
            str_field(out, "user", &e.user);
            opt_str(out, "tty", e.tty.as_deref());
            opt_str(out, "rhost", e.host.as_deref());
            opt_str(out, "service", e.service.as_deref());
            int_field(out, "login_usec", e.login);
            match e.logout.filter(|_| closed) {
                Some(l) => int_field(out, "logout_usec", l),
                None => opt_str(out, "logout_usec", None),
            }
            boot_fields(out, boot);
            str_field(out, "database", database);
            event_id_field(out, "event_id", database, what, e.id);
        }
        Format::Ecs => {
            let action = match what {
                What::Login | What::Row => "user_login",
                What::Logout => "user_logout",
                What::Boot => "boot",
                What::Shutdown => "shutdown",
                What::Failed => "user_login",
            };
            out.push_str("\"@timestamp\":\"");
            push_rfc3339(out, time);
            out.push('"');
            out.push_str(",\"event\":{");
            out.push_str("\"category\":[\"authentication\"]");
            str_field(out, "action", action);
            str_field(out, "outcome", "success");
            str_field(out, "kind", "event");
            str_field(out, "module", "wtmpdb");
            event_id_field(out, "id", database, what, e.id);
            out.push('}');
            let session = matches!(what, What::Login | What::Logout | What::Row);
            if session {
                out.push_str(",\"user\":{");
                str_field(out, "name", &e.user);
                if let Some(t) = &e.tty {
                    str_field(out, "terminal", t);
                }
                out.push('}');
                if let Some(h) = e.host.as_deref().filter(|h| !h.is_empty()) {
                    source(out, h);
                }
                if let Some(s) = &e.service {
                    out.push_str(",\"service\":{");
                    str_field(out, "name", s);
                    out.push('}');
                }
            } else if let Some(k) = &e.host {
                out.push_str(",\"host\":{\"os\":{");
                str_field(out, "kernel", k);
                out.push_str("}}");
            }
            ecs_extra(out, e.id, what, boot, e.login, e.logout.filter(|_| closed));
        }
    }
    out.push_str("}\n");
}

fn boot_fields(out: &mut String, boot: Option<(i64, Usec)>) {
    match boot {
        Some((id, at)) => {
            int_field(out, "boot_id", id);
            int_field(out, "boot_usec", at);
        }
        None => {
            opt_str(out, "boot_id", None);
            opt_str(out, "boot_usec", None);
        }
    }
}

/// `source.ip` for an address, `source.domain` for a name.
fn source(out: &mut String, host: &str) {
    out.push_str(",\"source\":{");
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.parse::<std::net::IpAddr>().is_ok() {
        str_field(out, "ip", bare);
    } else {
        str_field(out, "domain", host);
    }
    out.push('}');
}

/// Our exact values beside the ECS fields.
fn ecs_extra(
    out: &mut String,
    id: i64,
    what: What,
    boot: Option<(i64, Usec)>,
    login: Usec,
    logout: Option<Usec>,
) {
    out.push_str(",\"wtmpdb\":{");
    int_field(out, "id", id);
    str_field(out, "kind", what.name());
    int_field(out, "login_usec", login);
    if let Some(l) = logout {
        int_field(out, "logout_usec", l);
    }
    if let Some((b, at)) = boot {
        int_field(out, "boot_id", b);
        int_field(out, "boot_usec", at);
    }
    out.push('}');
}

fn failure_line(
    out: &mut String,
    format: Format,
    f: &Failure,
    boot: Option<(i64, Usec)>,
    file: &str,
) {
    out.push('{');
    match format {
        Format::Json => {
            str_field(out, "kind", "failed");
            int_field(out, "time_usec", f.time);
            int_field(out, "id", f.id);
            str_field(out, "user", &f.user);
            opt_str(out, "tty", f.tty.as_deref());
            opt_str(out, "rhost", f.host.as_deref());
            opt_str(out, "service", f.service.as_deref());
            match f.pid {
                Some(p) => int_field(out, "pid", p),
                None => opt_str(out, "pid", None),
            }
            boot_fields(out, boot);
            str_field(out, "database", file);
            event_id_field(out, "event_id", file, What::Failed, f.id);
        }
        Format::Ecs => {
            out.push_str("\"@timestamp\":\"");
            push_rfc3339(out, f.time);
            out.push('"');
            out.push_str(",\"event\":{\"category\":[\"authentication\"]");
            str_field(out, "action", "user_login");
            str_field(out, "outcome", "failure");
            str_field(out, "kind", "event");
            str_field(out, "module", "wtmpdb");
            event_id_field(out, "id", file, What::Failed, f.id);
            out.push('}');
            out.push_str(",\"user\":{");
            str_field(out, "name", &f.user);
            if let Some(t) = &f.tty {
                str_field(out, "terminal", t);
            }
            out.push('}');
            if let Some(p) = f.pid {
                let _ = write!(out, ",\"process\":{{\"pid\":{p}}}");
            }
            if let Some(h) = f.host.as_deref().filter(|h| !h.is_empty()) {
                source(out, h);
            }
            if let Some(s) = &f.service {
                out.push_str(",\"service\":{");
                str_field(out, "name", s);
                out.push('}');
            }
            ecs_extra(out, f.id, What::Failed, boot, f.time, None);
        }
    }
    out.push_str("}\n");
}

/// `usec` as UTC in RFC 3339 with microseconds (`2026-12-06T19:43:17.123456Z`).
pub fn rfc3339(usec: Usec) -> String {
    let mut s = String::with_capacity(27);
    push_rfc3339(&mut s, usec);
    s
}

/// [`rfc3339`] appended to `out`.
fn push_rfc3339(out: &mut String, usec: Usec) {
    let secs = usec.div_euclid(1_000_000);
    let micros = usec.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let pad = |out: &mut String, v: i64, width: usize| {
        let mut digits = String::new();
        push_int(&mut digits, v);
        for _ in digits.len()..width {
            out.push('0');
        }
        out.push_str(&digits);
    };
    pad(out, y, 4);
    out.push('-');
    pad(out, m, 2);
    out.push('-');
    pad(out, d, 2);
    out.push('T');
    pad(out, rem / 3600, 2);
    out.push(':');
    pad(out, rem % 3600 / 60, 2);
    out.push(':');
    pad(out, rem % 60, 2);
    out.push('.');
    pad(out, micros, 6);
    out.push('Z');
}

/// Runs [`run`] and then saves the cursor, with the signals that end a run held back in
/// between (see the module's documentation); `out` is flushed before the cursor moves.
pub fn run_and_save(
    opts: &Options,
    cursor_file: Option<&Path>,
    cursor: &mut Cursor,
    out: &mut dyn Write,
) -> Result<u64, Error> {
    let _held = crate::sys::HoldSignals::new(&[libc::SIGINT, libc::SIGTERM, libc::SIGHUP]);
    let mut next = cursor.clone();
    let n = run(opts, &mut next, out)?;
    out.flush()?;
    if let Some(path) = cursor_file {
        if next != *cursor {
            next.save(path)?;
        }
    }
    *cursor = next;
    Ok(n)
}

/// How often `--follow` looks for new commits.
pub const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// The state of the files `--follow` watches: a change means a commit may have happened.
pub fn watch_state(database: &Path) -> Vec<(u64, i64, i64, u64)> {
    let mut names = vec![database.to_path_buf()];
    let mut wal = database.as_os_str().to_owned();
    wal.push("-wal");
    names.push(wal.into());
    names.push(failures_path(database));
    let mut fwal = failures_path(database).into_os_string();
    fwal.push("-wal");
    names.push(fwal.into());
    names
        .iter()
        .map(|p| match std::fs::metadata(p) {
            Ok(m) => (m.ino(), m.mtime(), m.mtime_nsec(), m.size()),
            Err(_) => (0, 0, 0, 0),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_in_decimal() {
        for v in [0, 7, -7, 10, 1_796_586_569_617_495, i64::MIN, i64::MAX] {
            let mut s = String::new();
            push_int(&mut s, v);
            assert_eq!(s, v.to_string());
        }
    }

    #[test]
    fn rfc3339_of_known_times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            rfc3339(1_796_586_569_617_495),
            "2026-12-06T19:49:29.617495Z"
        );
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999999Z");
        assert_eq!(rfc3339(951_782_400_000_000), "2000-02-29T00:00:00.000000Z");
    }
}
