//! The files of a database, decided before SQLite opens them: which file a writer opens
//! (symbolic links are followed only when root or the caller owns them), the modes of what
//! the core creates (never the umask's: directories 0755, a database 0644, an archive the
//! database's own mode and owner), and that the files SQLite keeps beside a database
//! (`-journal`, `-wal`, `-shm`) have the database's mode.
//!
//! SQLite itself opens every file with `O_NOFOLLOW`, gives a journal it creates the
//! database's mode and, running as root, gives every journal it opens the database's owner;
//! a journal kept from earlier (`journal_mode=PERSIST`) keeps whatever mode
//! it was made with, which is why every writer checks the side files here. A writer's
//! connection is opened with `SQLITE_OPEN_NOFOLLOW` on the path resolved here, so no link is
//! followed that was not checked first, and an archive is attached the same way.

use std::fs::{self, File, Metadata, Permissions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::error::{Error, FileStep, Refusal, Result};
use crate::sys::euid;
// Where the front ends and the session's spool have always found them.
pub use super::side_files::{SIDE_SUFFIXES, side_file};

/// The mode of a directory the core creates.
pub(super) const DIR_MODE: u32 = 0o755;

/// The mode of a database the core creates: every user's `last` reads it.
pub(super) const FILE_MODE: u32 = 0o644;

/// Links followed from one path at most (the kernel gives up after 40 as well).
const MAX_LINKS: usize = 40;

/// The permission bits SQLite copies from a database to its side files.
fn perm(m: &Metadata) -> u32 {
    m.mode() & 0o777
}

pub(super) fn file_error(path: &Path, what: &'static str, file: &Path, source: io::Error) -> Error {
    Error::File(Box::new(FileStep {
        path: path.to_path_buf(),
        what,
        file: file.to_path_buf(),
        source,
    }))
}

fn refused(path: &Path, file: &Path, why: impl Into<String>) -> Error {
    Error::Refused(Box::new(Refusal {
        path: path.to_path_buf(),
        file: file.to_path_buf(),
        why: why.into(),
    }))
}

/// Creates the missing directories of the database `path` (each one 0755, set after it is
/// made, whatever the umask), syncing the directory each is made in. Directories that
/// exist are left as they are.
pub(super) fn create_parent(path: &Path) -> Result<()> {
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    let failed = |source| Error::CreateDirectory {
        path: path.to_path_buf(),
        source,
    };
    let mut missing = Vec::new();
    let mut at = dir;
    loop {
        match fs::symlink_metadata(at) {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::NotFound => missing.push(at),
            Err(e) => return Err(failed(e)),
        }
        match at.parent() {
            Some(up) if !up.as_os_str().is_empty() => at = up,
            _ => break,
        }
    }
    for d in missing.into_iter().rev() {
        match fs::DirBuilder::new().mode(DIR_MODE).create(d) {
            Ok(()) => {
                // Through a descriptor of the directory itself, never a link put in its place.
                let handle = fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
                    .open(d)
                    .map_err(failed)?;
                handle
                    .set_permissions(Permissions::from_mode(DIR_MODE))
                    .map_err(failed)?;
            }
            // Made by another process meanwhile: its mode is that process's (its name may
            // not be on disk yet either: synced below all the same).
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(failed(e)),
        }
        // The new directory's name is in its parent: synced, or a power cut may take the
        // directory away with the database a login is acknowledged in (the writers sync
        // only the directory that holds the database's files). A parent this user may not
        // read (mode 0711) cannot be opened to be synced: the write goes on without.
        let parent = d.parent().filter(|p| !p.as_os_str().is_empty());
        if let Ok(p) = fs::File::open(parent.unwrap_or(Path::new("."))) {
            p.sync_all().map_err(failed)?;
        }
    }
    Ok(())
}

/// The file a writer of `path` opens: `path` itself or, when it is a symbolic link, where
/// its chain of links leads. Every link on the way must belong to root or to the caller: a
/// link someone else put there (in a directory others may write) is refused, never followed.
pub(super) fn trusted_target(path: &Path) -> Result<PathBuf> {
    trusted_target_seen(path).map(|(at, _)| at)
}

/// [`trusted_target`], and whether something was there when it looked (false: the name
/// led to nothing), so that a writer tries to create only a file it did not find.
pub(super) fn trusted_target_seen(path: &Path) -> Result<(PathBuf, bool)> {
    let me = euid();
    let mut at = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        let meta = match fs::symlink_metadata(&at) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((at, false)),
            Err(e) => return Err(file_error(path, "cannot examine", &at, e)),
        };
        if !meta.file_type().is_symlink() {
            return Ok((at, true));
        }
        if meta.uid() != 0 && meta.uid() != me {
            return Err(refused(
                path,
                &at,
                format!(
                    "is a symbolic link owned by uid {}, neither root nor the caller: not followed",
                    meta.uid()
                ),
            ));
        }
        let to = fs::read_link(&at).map_err(|e| file_error(path, "cannot read", &at, e))?;
        at = match at.parent() {
            Some(dir) => dir.join(to),
            None => to,
        };
    }
    Err(refused(path, path, "has too many levels of symbolic links"))
}

/// The database file a writer of `path` would open, its links resolved only where
/// [`trusted_target`] follows them (for files kept beside it, such as the spool). None when a
/// link is refused or the file does not exist.
pub(crate) fn trusted_file(path: &Path) -> Option<PathBuf> {
    let target = trusted_target(path).ok()?;
    fs::canonicalize(target).ok()
}

/// Creates `file`, which must not exist (`O_EXCL`, never through a link), with `mode`
/// whatever the umask. `Ok(None)` when the name exists; a failure to set the mode after
/// creation is the `Err` of the inner result.
fn create_new(file: &Path, mode: u32) -> io::Result<Option<io::Result<File>>> {
    let created = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(file);
    match created {
        Ok(f) => Ok(Some(
            f.set_permissions(Permissions::from_mode(mode)).map(|()| f),
        )),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(None),
        Err(e) => Err(e),
    }
}

/// Creates the database file `file` with mode 0644 (set after creation, whatever the umask)
/// unless it exists; an existing file keeps the mode its admin chose.
pub(super) fn create_file(path: &Path, file: &Path) -> Result<()> {
    create_file_new(path, file).map(drop)
}

/// As [`create_file`], and whether this call created it (false: the name existed).
pub(super) fn create_file_new(path: &Path, file: &Path) -> Result<bool> {
    in_place_on_btrfs(file);
    match create_new(file, FILE_MODE) {
        Ok(Some(set)) => set
            .map(|_| true)
            .map_err(|e| file_error(path, "cannot set the mode of", file, e)),
        Ok(None) => Ok(false),
        Err(e) => Err(file_error(path, "cannot create", file, e)),
    }
}

/// Marks the directory of the database `file`, when it lies on btrfs, so that the files
/// made in it from now on (the database, its side files, the spool) are written in place
/// (see `sys::no_copy_on_write_on_btrfs`: on a full btrfs disk, SQLite's mapped `-shm`
/// index killed its process with SIGBUS). For a database about to be made, and by
/// `wtmpdb boot` and `wtmpdbd` as they start (for a directory made before). Best effort: a
/// directory this user may not change keeps its mark.
pub fn in_place_on_btrfs(file: &Path) {
    let dir = super::side_files::directory_of(file);
    if let Ok(d) = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(dir)
    {
        let _ = crate::sys::no_copy_on_write_on_btrfs(&d);
    }
}

/// The resolved, absolute name of the existing `file`, as a writer hands it to SQLite.
pub(super) fn resolved(path: &Path, file: &Path) -> Result<PathBuf> {
    fs::canonicalize(file).map_err(|e| file_error(path, "cannot resolve", file, e))
}

/// Opens the side file `side` (whose `lstat` gave `seen`) to change it, only if it is still
/// that same file: a regular file with no other name.
fn open_side(path: &Path, side: &Path, seen: &Metadata) -> Result<File> {
    if seen.nlink() != 1 {
        return Err(refused(
            path,
            side,
            "has other hard links: not changed (remove it)",
        ));
    }
    // O_PATH: closing a descriptor opened for reading would drop every fcntl lock this
    // process holds on the file (POSIX), those of its SQLite connections on `-shm` included,
    // and another process would then rebuild the index under them. A path descriptor holds
    // no locks and drops none (the kernel skips it on close).
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_NOFOLLOW)
        .open(side)
        .map_err(|e| file_error(path, "cannot open", side, e))?;
    let now = f
        .metadata()
        .map_err(|e| file_error(path, "cannot examine", side, e))?;
    if (now.dev(), now.ino()) != (seen.dev(), seen.ino()) || now.nlink() != 1 {
        return Err(refused(path, side, "changed while it was checked"));
    }
    Ok(f)
}

/// Gives every side file of the database `file` the database's mode, so that a `chmod` of
/// the database alone decides who reads its rows: a kept journal holds page images of recent
/// rows, and a journal a user cannot read breaks that user's `last` (SQLite must take it for
/// the journal of an interrupted write). Runs on every read-write open, before SQLite writes
/// anything. The owner needs no help: SQLite running as root gives a journal (and `-wal`,
/// `-shm`) the database's owner whenever it opens one. A side file of another user is left
/// alone unless the caller is root (it is not the caller's to change); one that is not a
/// regular file (SQLite never makes a link) is refused.
pub(super) fn align_side_files(path: &Path, file: &Path) -> Result<()> {
    let db = fs::metadata(file).map_err(|e| file_error(path, "cannot examine", file, e))?;
    let me = euid();
    for suffix in SIDE_SUFFIXES {
        let side = side_file(file, suffix);
        let seen = match fs::symlink_metadata(&side) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(file_error(path, "cannot examine", &side, e)),
        };
        if !seen.file_type().is_file() {
            return Err(refused(
                path,
                &side,
                "is not a regular file: SQLite never makes one (remove it)",
            ));
        }
        if perm(&seen) == perm(&db) || (me != 0 && seen.uid() != me) {
            continue;
        }
        let handle = open_side(path, &side, &seen)?;
        // Through the descriptor's name in /proc (a path descriptor takes no fchmod): the
        // very file checked, whatever happens to the name meanwhile.
        let by_fd = Path::new("/proc/self/fd").join(handle.as_raw_fd().to_string());
        fs::set_permissions(&by_fd, Permissions::from_mode(perm(&db)))
            .map_err(|e| file_error(path, "cannot give the database's mode to", &side, e))?;
    }
    Ok(())
}

/// Keeps a `-wal` file that belongs to another database: when the database file is empty
/// (logrotate's `create` just made it, after renaming the old one away) but a log with frames
/// sits beside it, the frames are the renamed database's newest commits, which SQLite would
/// delete on its first open of the empty file. The log is renamed to
/// `NAME-wal.orphaned-USEC` (to be copied next to the renamed database as its `-wal` file, or
/// opened with it, to recover them) and the stale `-shm` index removed. Returns the new name.
pub(super) fn keep_orphaned_log(path: &Path, file: &Path) -> Result<Option<PathBuf>> {
    let empty = fs::metadata(file).is_ok_and(|m| m.len() == 0);
    let log = side_file(file, "-wal");
    // Frames only behind a log's header, carrying its salts (a log wtmpdbd emptied and
    // kept allocated is a header and zeros: nothing to keep).
    if !empty || !super::side_files::log_may_hold_frames(&log) {
        return Ok(None);
    }
    set_aside_log(path, file).map(Some)
}

/// Renames the `-wal` file beside `file` (of the database `path`) to
/// `NAME-wal.orphaned-USEC` and removes the `-shm` index beside it (see
/// [`keep_orphaned_log`]); the new name.
pub(super) fn set_aside_log(path: &Path, file: &Path) -> Result<PathBuf> {
    let log = side_file(file, "-wal");
    let kept = side_file(file, &format!("-wal.orphaned-{}", crate::time::now()));
    fs::rename(&log, &kept)
        .map_err(|e| file_error(path, "cannot keep the orphaned log", &log, e))?;
    let index = side_file(file, "-shm");
    match fs::remove_file(&index) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(file_error(path, "cannot remove", &index, e))
        }
        _ => Ok(kept),
    }
}

/// Makes `archive` ready to receive rows of the database whose file is `db` (the database
/// `path`): a new archive is created by us (never through a link, `O_EXCL`) with the
/// database's mode, and its owner when the caller is root; an existing one must be a regular
/// file with no other name, owned by the database's owner or by the caller. Anything else
/// is refused before a row moves.
pub(super) fn prepare_archive(path: &Path, archive: &Path, db: &Metadata) -> Result<()> {
    let me = euid();
    let refuse = |why: String| Error::ArchiveRefused {
        archive: archive.to_path_buf(),
        why,
    };
    let failed = |what, e| file_error(path, what, archive, e);
    // Twice at most: once more when another process created the name meanwhile.
    for _ in 0..2 {
        let seen = match fs::symlink_metadata(archive) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let f = match create_new(archive, perm(db)) {
                    Ok(Some(set)) => {
                        set.map_err(|e| failed("cannot give the database's mode to", e))?
                    }
                    Ok(None) => continue,
                    Err(e) => return Err(failed("cannot create", e)),
                };
                // The owner after the mode: the mode was set while the file was still ours.
                if me == 0 {
                    std::os::unix::fs::fchown(&f, Some(db.uid()), Some(db.gid()))
                        .map_err(|e| failed("cannot give the database's owner to", e))?;
                }
                return Ok(());
            }
            Err(e) => return Err(failed("cannot examine", e)),
        };
        let t = seen.file_type();
        if t.is_symlink() {
            return Err(refuse("it is a symbolic link".into()));
        }
        if !t.is_file() {
            return Err(refuse("it is not a regular file".into()));
        }
        if seen.uid() != db.uid() && seen.uid() != me {
            return Err(refuse(format!(
                "it is owned by uid {}, neither the database's owner (uid {}) nor the caller",
                seen.uid(),
                db.uid()
            )));
        }
        if seen.nlink() != 1 {
            return Err(refuse(format!(
                "it has {} hard links: another file's name",
                seen.nlink()
            )));
        }
        return Ok(());
    }
    Err(refuse(
        "it was created and removed while it was checked".into(),
    ))
}

/// Whether the caller could open `file` for reading (for the message of a failed read).
pub(super) fn readable(file: &Path) -> bool {
    File::open(file).is_ok()
}
