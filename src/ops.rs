//! The maintenance operations behind `wtmpdb boot`, `shutdown` and `rotate`, with their
//! rules: what counts as the same boot, which boot a shutdown closes, where an archive goes.
//! The command line only parses arguments and prints; a daemon or the C library calls these
//! same functions.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::storage::{self, Database, Kind, NewEntry};
use crate::target::{Store, Target};
use crate::time::{self, USEC_PER_SEC, Usec};
use crate::varlink;

/// Default age in days above which `rotate` moves rows (upstream's).
pub const ROTATE_DEFAULT_DAYS: u32 = 60;

/// Largest accepted `rotate` age: 100 years, further back than any wtmp and far from
/// overflowing microseconds.
pub const ROTATE_MAX_DAYS: u32 = 36_525;

/// Two runs of `boot` whose kernel boot times lie closer than this are the same boot: the
/// kernel's boot time is computed from two clocks and moves by a few microseconds between
/// runs.
pub const SAME_BOOT_WINDOW: Usec = 2 * USEC_PER_SEC;

#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error(transparent)]
    Storage(#[from] storage::Error),
    /// Through wtmpdbd.
    #[error(transparent)]
    Daemon(#[from] varlink::Error),
    /// `shutdown` found no open current boot.
    #[error("Open entry for tty '~' not found")]
    NoOpenBoot,
    /// `boottime` found no boot row.
    #[error("Couldn't read boot entry: Boot time not found")]
    NoBootTime,
    #[error("rotate: {days} days is more than the maximum of {ROTATE_MAX_DAYS}")]
    RotateDays { days: u32 },
    /// An old archive could not be deleted (the rotation itself is done).
    #[error("rotate: cannot delete the old archive {}: {source}", file.display())]
    Prune {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What kind of start `boot` records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootKind {
    /// A kernel boot: the row's time is the kernel's boot time, user `reboot`.
    Reboot,
    /// systemd's soft reboot (userspace restarted on the same kernel): now, `soft-reboot`.
    SoftReboot,
}

impl BootKind {
    /// Asks systemd; without evidence from it (no systemd, a container, a late start) this
    /// is an ordinary boot.
    pub fn detect() -> BootKind {
        match soft_reboots() {
            Some(n) if n > 0 => BootKind::SoftReboot,
            _ => BootKind::Reboot,
        }
    }

    pub fn user(self) -> &'static str {
        match self {
            BootKind::Reboot => "reboot",
            BootKind::SoftReboot => "soft-reboot",
        }
    }
}

/// systemd's count of soft reboots in this kernel boot, when systemd can tell.
fn soft_reboots() -> Option<u64> {
    if !Path::new("/run/systemd/system").exists() {
        return None;
    }
    let out = std::process::Command::new("systemctl")
        .args(["show", "--property=SoftRebootsCount", "--value"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// The running kernel's release (`uname -r`), stored as the boot row's remote host.
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The boot row `boot` writes for `kind` at `now`, and the window within which an earlier
/// `reboot` row is the same boot (0: every soft reboot is a new start of userspace).
fn boot_row(kind: BootKind, now: Usec) -> (Usec, String, Usec) {
    let at = match kind {
        BootKind::Reboot => time::boot_time(),
        BootKind::SoftReboot => now,
    };
    let same_boot = match kind {
        BootKind::Reboot => SAME_BOOT_WINDOW,
        BootKind::SoftReboot => 0,
    };
    (at, kernel_release(), same_boot)
}

/// Records the start of the system (`kind` from [`BootKind::detect`], `now` the current
/// time). Returns the new row's ID, or None when this boot was recorded before (running
/// `boot` twice in one boot, by hand or by a restarted unit, records it once).
pub fn record_boot(db: &mut Database, kind: BootKind, now: Usec) -> Result<Option<i64>, OpError> {
    let (at, release, same_boot) = boot_row(kind, now);
    let entry = NewEntry {
        kind: Kind::BootTime,
        user: kind.user(),
        login: at,
        tty: Some("~"),
        host: Some(&release),
        ..NewEntry::default()
    };
    Ok(db.record_boot(&entry, same_boot)?)
}

/// [`record_boot`] into `target` (as upstream's `wtmpdb boot` writes: through wtmpdbd when
/// the target says so, each exchange bounded by `timeout`, else into the file, whose
/// indexes this is the place to build).
pub fn record_boot_at(
    target: &Target,
    timeout: Duration,
    kind: BootKind,
    now: Usec,
    events: &crate::journal::Events,
) -> Result<Option<i64>, OpError> {
    match target.connect(timeout)? {
        Store::Daemon(mut c) => record_boot_through(&mut c, kind, now),
        Store::File(path) => {
            let mut db = Database::open_read_write(&path)?;
            let id = record_boot(&mut db, kind, now)?;
            if let Some(Ok(Some(entry))) = id.map(|id| db.row(id)) {
                events.row(&entry, false, db.file(), false, None);
            }
            // At every boot: room for records on a full disk (see
            // `session::spool::reserve`), as far as the disk has it. A reserve that cannot
            // be made (not ours) is left to the writers, which do without it.
            let _ = crate::session::spool::fill_reserve(db.file());
            Ok(id)
        }
    }
}

/// [`record_shutdown`] into `target`, as [`record_boot_at`].
pub fn record_shutdown_at(
    target: &Target,
    timeout: Duration,
    at: Usec,
    events: &crate::journal::Events,
) -> Result<(), OpError> {
    match target.connect(timeout)? {
        Store::Daemon(mut c) => record_shutdown_through(&mut c, at),
        Store::File(path) => {
            let db = Database::open_read_write(&path)?;
            let id = record_shutdown(&db, at)?;
            if let Ok(Some(entry)) = db.row(id) {
                events.row(&entry, true, db.file(), false, None);
            }
            Ok(())
        }
    }
}

/// [`record_boot`] through wtmpdbd, as upstream's `wtmpdb boot` writes it there: a `Login`
/// of Type 1 (BOOT_TIME), user `reboot` (or `soft-reboot`), tty `~`, the kernel release as
/// the remote host. The same boot is recognised by the daemon's `GetBootTime` (the newest
/// `reboot` row, the row [`record_boot`] compares with); unlike there, the look and the write
/// are two calls, so two runs at the same moment may both write it.
pub fn record_boot_through(
    client: &mut varlink::Client,
    kind: BootKind,
    now: Usec,
) -> Result<Option<i64>, OpError> {
    let (at, release, same_boot) = boot_row(kind, now);
    if same_boot > 0 {
        if let Some(prev) = client.boot_time()? {
            if prev.abs_diff(at) < same_boot.unsigned_abs() {
                return Ok(None);
            }
        }
    }
    let id = client.login(
        Kind::BootTime.as_i64(),
        kind.user(),
        at,
        Some("~"),
        Some(&release),
        None,
    )?;
    Ok(Some(id))
}

/// Records the stop of the system at `at`: closes the current (newest) boot row only, never
/// an older crashed boot, which stays a crash.
pub fn record_shutdown(db: &Database, at: Usec) -> Result<i64, OpError> {
    match db.newest_boot()? {
        Some((id, None)) => {
            db.logout(id, at)?;
            Ok(id)
        }
        _ => Err(OpError::NoOpenBoot),
    }
}

/// [`record_shutdown`] through wtmpdbd: the newest boot row is the newest row on tty `~`
/// (the daemon's `ReadEntries`; upstream's `GetID("~")` would find the newest *open* one,
/// an old crashed boot when the current one is closed), closed with `Logout`.
pub fn record_shutdown_through(client: &mut varlink::Client, at: Usec) -> Result<(), OpError> {
    let mut newest = None;
    let q = varlink::Query {
        tty: Some("~"),
        limit: Some(1),
        ..varlink::Query::default()
    };
    client.read_entries(&q, |e| newest = Some(e))?;
    match newest {
        Some(e) if e.kind == Kind::BootTime && e.logout.is_none() => Ok(client.logout(e.id, at)?),
        _ => Err(OpError::NoOpenBoot),
    }
}

/// The time of the last (non-soft) boot.
pub fn boot_time(db: &Database) -> Result<Usec, OpError> {
    db.boot_time()?.ok_or(OpError::NoBootTime)
}

/// NAME of the archives `NAME_YYYYMMDD.db` of the database at `db`: its file name without
/// the last extension.
fn archive_stem(db: &Path) -> OsString {
    let name = db.file_name().map(Path::new).unwrap_or(Path::new("wtmp"));
    match name.file_stem() {
        Some(s) if !s.is_empty() => s.to_os_string(),
        _ => name.as_os_str().to_os_string(),
    }
}

/// `DIR/NAME_YYYYMMDD.db` beside the database: NAME is the file name without its last
/// extension, the date is the threshold's local date.
pub fn archive_path(db: &Path, threshold: Usec) -> PathBuf {
    let date = time::local(threshold)
        .map(|t| format!("{:04}{:02}{:02}", t.year, t.month, t.day))
        .unwrap_or_else(|| "19700101".into());
    let mut file = archive_stem(db);
    file.push(format!("_{date}.db"));
    db.with_file_name(file)
}

/// The date of `name` if it is exactly an archive name of the database at `db`
/// (`NAME_YYYYMMDD.db`, a plausible date), else None.
fn archive_date(db: &Path, name: &OsStr) -> Option<u32> {
    let stem = archive_stem(db);
    let rest = name.as_bytes().strip_prefix(stem.as_bytes())?;
    let digits = rest.strip_prefix(b"_")?.strip_suffix(b".db")?;
    if digits.len() != 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let date: u32 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    let (month, day) = (date / 100 % 100, date % 100);
    ((1..=12).contains(&month) && (1..=31).contains(&day)).then_some(date)
}

/// What a rotation did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rotated {
    /// Rows taken out of the live table.
    pub moved: u64,
    /// Where they went; None when they were deleted (`keep` 0).
    pub archive: Option<PathBuf>,
}

/// Applies `retention` at `now` to the failed logins of the session database `path` (see
/// [`crate::storage::failures_path`]); nothing when none were ever recorded. Returns how
/// many were forgotten.
pub fn prune_failures(
    path: &Path,
    retention: crate::storage::Retention,
    now: Usec,
) -> Result<u64, crate::storage::FailedError> {
    use crate::storage::{FailureStore, failures_path};
    match FailureStore::open_read(&failures_path(path))? {
        Some(store) => store.prune(retention, now),
        None => Ok(0),
    }
}

/// Moves the rows older than `days` days before `now` into the archive beside the database
/// at `path` (see [`Database::rotate`] for the guarantees), or, with `keep` 0 (no archives
/// are kept), deletes them: the same rows stay alive either way.
pub fn rotate(
    db: &mut Database,
    path: &Path,
    days: u32,
    now: Usec,
    keep: Option<u32>,
) -> Result<Rotated, OpError> {
    if days > ROTATE_MAX_DAYS {
        return Err(OpError::RotateDays { days });
    }
    let threshold = now - i64::from(days) * 86_400 * USEC_PER_SEC;
    let archive = (keep != Some(0)).then(|| archive_path(path, threshold));
    // A rotate killed on an earlier day left rows in both files: they go where it put them.
    // (A directory that cannot be listed has none to finish: the rotate goes on.)
    let mut moved = 0;
    for (_, earlier) in archives_of(path).unwrap_or_default() {
        if archive.as_deref() != Some(earlier.as_path()) {
            moved += db.finish_rotate(&earlier)?;
        }
    }
    moved += db.rotate(threshold, archive.as_deref())?;
    Ok(Rotated {
        // No archive was written when nothing moved.
        archive: archive.filter(|_| moved > 0),
        moved,
    })
}

/// The archives of the database at `path`, with their dates: the files beside it named
/// exactly `NAME_YYYYMMDD.db` that are regular files with no other name and have the
/// database file's owner.
pub fn archives_of(path: &Path) -> Result<Vec<(u32, PathBuf)>, OpError> {
    use std::os::unix::fs::MetadataExt;
    let failed = |file: &Path, source| OpError::Prune {
        file: file.to_path_buf(),
        source,
    };
    let db = std::fs::metadata(path).map_err(|e| failed(path, e))?;
    let dir = crate::storage::directory_of(path);
    let is_ours = |m: &std::fs::Metadata| {
        m.file_type().is_file()
            && m.nlink() == 1
            && m.uid() == db.uid()
            && (m.dev(), m.ino()) != (db.dev(), db.ino())
    };
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| failed(dir, e))? {
        let entry = entry.map_err(|e| failed(dir, e))?;
        let name = entry.file_name();
        let Some(date) = archive_date(path, &name) else {
            continue;
        };
        let file = path.with_file_name(&name);
        match std::fs::symlink_metadata(&file) {
            Ok(m) if is_ours(&m) => found.push((date, file)),
            _ => continue,
        }
    }
    Ok(found)
}

/// Keeps the `keep` newest archives of the database at `path` (by the date in their names;
/// `written`, the one a rotation just wrote, always stays and counts as one of them) and
/// deletes the others, as logrotate's `rotate COUNT` does. Only this database's archives are
/// touched: a file beside it counts as one only if its name is exactly `NAME_YYYYMMDD.db`,
/// it is a regular file with no other name, and it has the database file's owner; its
/// `-journal`, `-wal` or `-shm` go with it. Returns the files deleted, oldest first.
pub fn remove_old_archives(
    path: &Path,
    keep: u32,
    written: Option<&Path>,
) -> Result<Vec<PathBuf>, OpError> {
    use std::os::unix::fs::MetadataExt;
    let failed = |file: &Path, source| OpError::Prune {
        file: file.to_path_buf(),
        source,
    };
    let db = std::fs::metadata(path).map_err(|e| failed(path, e))?;
    let is_ours = |m: &std::fs::Metadata| {
        m.file_type().is_file()
            && m.nlink() == 1
            && m.uid() == db.uid()
            && (m.dev(), m.ino()) != (db.dev(), db.ino())
    };
    let mut found: Vec<(u32, PathBuf)> = archives_of(path)?
        .into_iter()
        .filter(|(_, f)| written.is_none_or(|w| w.file_name() != f.file_name()))
        .collect();
    // Newest first; the written archive is one of the kept.
    found.sort_by(|a, b| b.cmp(a));
    let keep = keep.saturating_sub(u32::from(written.is_some())) as usize;
    let mut removed: Vec<PathBuf> = found.into_iter().skip(keep).map(|(_, f)| f).collect();
    removed.reverse();
    for file in &removed {
        std::fs::remove_file(file).map_err(|e| failed(file, e))?;
        for suffix in storage::files::SIDE_SUFFIXES {
            let side = storage::files::side_file(file, suffix);
            if std::fs::symlink_metadata(&side).is_ok_and(|m| is_ours(&m)) {
                std::fs::remove_file(&side).map_err(|e| failed(&side, e))?;
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_lies_next_to_the_database() {
        let t = 1_758_499_200 * USEC_PER_SEC; // 2025-09-22 UTC, ±1 day by zone
        let p = archive_path(Path::new("/srv/rot2.d/wtmpdata"), t);
        assert_eq!(p.parent(), Some(Path::new("/srv/rot2.d")));
        let name = p.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with("wtmpdata_2025092") && name.ends_with(".db"),
            "{name}"
        );
        let q = archive_path(Path::new("my.wtmp.sqlite3"), t);
        assert!(q.to_str().unwrap().starts_with("my.wtmp_2025092"));
    }

    #[test]
    fn shutdown_closes_only_the_newest_boot() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Database::open_read_write(&dir.path().join("w.db")).unwrap();
        let boot = |login| NewEntry {
            kind: Kind::BootTime,
            user: "reboot",
            login,
            tty: Some("~"),
            ..NewEntry::default()
        };
        let s = USEC_PER_SEC;
        let old = db.login(&boot(100 * s)).unwrap();
        let cur = db.record_boot(&boot(200 * s), SAME_BOOT_WINDOW).unwrap();
        // The same boot again, a few microseconds apart: recorded once.
        let again = db
            .record_boot(&boot(200 * s + 7), SAME_BOOT_WINDOW)
            .unwrap();
        assert_eq!(again, None);
        record_shutdown(&db, 300 * s).unwrap();
        let twice = record_shutdown(&db, 400 * s);
        assert!(matches!(twice, Err(OpError::NoOpenBoot)), "{twice:?}");
        let rows: Vec<_> = db
            .entries(&Default::default())
            .map(Result::unwrap)
            .collect();
        let logout = |id| rows.iter().find(|e| e.id == id).unwrap().logout;
        assert_eq!((logout(old), logout(cur.unwrap())), (None, Some(300 * s)));
    }

    /// Regression: a rotate killed between its archive's commit and its delete leaves the
    /// batch in both files, with marks in the archive. Run again the same day, it updates
    /// those copies; run on a later day (the monthly timer after a shutdown cut it off), it
    /// writes into an archive of another name, and copied every such row a second time
    /// there. Here the killed run's archive is made by hand, as the kill left it.
    #[test]
    fn rotate_on_a_later_day_after_a_kill_keeps_every_row_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let mut db = Database::open_read_write(&path).unwrap();
        let day = 86_400 * USEC_PER_SEC;
        let now = 1_700_000_000 * USEC_PER_SEC;
        let session = |user: &'static str, login: Usec| NewEntry {
            kind: Kind::UserProcess,
            user,
            login,
            logout: Some(login + 1),
            tty: Some("pts/1"),
            ..NewEntry::default()
        };
        let a = db.login(&session("a", now - 100 * day)).unwrap();
        let b = db.login(&session("b", now - 99 * day)).unwrap();
        db.login(&session("c", now - 98 * day)).unwrap();
        db.login(&session("keep", now)).unwrap();
        // The killed run (60 days, a day earlier) committed a and b in its archive.
        let first = archive_path(&path, now - day - 60 * day);
        drop(
            Database::open(
                &first,
                &storage::OpenOptions::read_write().journal(storage::Journal::Keep),
            )
            .unwrap(),
        );
        let c = rusqlite::Connection::open(&first).unwrap();
        c.execute_batch(
            "CREATE TABLE wtmp_rotated(SourceID INTEGER PRIMARY KEY, ID INTEGER NOT NULL)",
        )
        .unwrap();
        for (id, user, login) in [(a, "a", now - 100 * day), (b, "b", now - 99 * day)] {
            c.execute(
                "INSERT INTO wtmp (Type, User, Login, Logout, TTY) VALUES (3, ?1, ?2, ?3, 'pts/1')",
                rusqlite::params![user, login, login + 1],
            )
            .unwrap();
            c.execute(
                "INSERT INTO wtmp_rotated (SourceID, ID) VALUES (?1, ?2)",
                rusqlite::params![id, c.last_insert_rowid()],
            )
            .unwrap();
        }
        drop(c);
        let done = rotate(&mut db, &path, 60, now, None).unwrap();
        let second = done.archive.clone().unwrap();
        assert_ne!(second, first);
        let users = |p: &Path| -> Vec<String> {
            let d = Database::open_read_only(p).unwrap();
            let mut u: Vec<String> = d
                .entries(&Default::default())
                .map(|e| e.unwrap().user)
                .collect();
            u.sort();
            u
        };
        let mut all = [users(&first), users(&second), users(&path)].concat();
        all.sort();
        assert_eq!(all, ["a", "b", "c", "keep"], "every row once");
        assert_eq!(users(&path), ["keep"]);
        let marks: i64 = rusqlite::Connection::open(&first)
            .unwrap()
            .query_row("SELECT count(*) FROM wtmp_rotated", [], |r| r.get(0))
            .unwrap();
        assert_eq!(marks, 0, "the interrupted run's marks are done with");
    }
}
