//! The database that wtmpdbd owns: who may open its files, and how an existing database
//! that every user can open (upstream's, Debian's `/var/log/wtmp.db`, one this project's
//! direct mode made) is handed to the daemon.
//!
//! Every attack of a local user on the direct mode goes through the files: a read
//! transaction held open pins the `-wal` log, a lock on a side file sends logins to the spool.
//! A user who cannot open the files can do neither; reads then go through the daemon, which
//! bounds them. So the rule is one mode: root's alone (0600), or readable by one group the
//! admin names (0640). The hand-over changes the mode in place (`fchmod` and `fchown` of the
//! open file, never through a link): the inode stays, so no row moves, every writer's
//! connection stays valid and a write in flight lands where it always would. What a mode
//! cannot take back is a descriptor opened before: those processes are found and named.

use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::files;

/// Who may open the daemon's database besides root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Private {
    /// The group that may read it (mode 0640), or none (0600).
    pub group: Option<u32>,
}

impl Private {
    /// Root alone.
    pub const ROOT: Private = Private { group: None };

    /// The mode of the database and its side files: 0600, or 0640 with a readers' group.
    pub const fn mode(self) -> u32 {
        match self.group {
            None => 0o600,
            Some(_) => 0o640,
        }
    }

    /// The group the files get: the readers' group, else root's.
    pub fn gid(self) -> u32 {
        self.group.unwrap_or(0)
    }

    /// What is wrong with a file of this metadata for this rule: None when it is root's with
    /// no more access than the rule allows.
    pub fn exposure(self, m: &Metadata) -> Option<String> {
        let mode = m.mode() & 0o7777;
        if m.uid() != 0 {
            return Some(format!("owned by user {}, not root", m.uid()));
        }
        if mode & 0o007 != 0 {
            return Some(format!("mode {mode:04o}: other users may open it"));
        }
        // Root's group holds nobody but root on the systems this runs on.
        if mode & 0o070 != 0 && m.gid() != 0 && self.group != Some(m.gid()) {
            return Some(format!("mode {mode:04o}: group {} may open it", m.gid()));
        }
        if mode & 0o020 != 0 {
            return Some(format!("mode {mode:04o}: its group may write it"));
        }
        None
    }
}

/// A process other than the caller that has one of the database's files open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    /// Its real user ID.
    pub uid: u32,
    /// Its command name (`/proc/PID/comm`), as the kernel gives it.
    pub command: String,
    /// The file it holds.
    pub file: PathBuf,
}

/// What [`hand_over`] did.
#[derive(Debug)]
pub struct HandedOver {
    /// The database file (its links resolved as a writer follows them).
    pub file: PathBuf,
    /// Each file whose owner or mode changed.
    pub changed: Vec<Changed>,
    /// Processes that opened one of the files before, and keep that access until they
    /// close it.
    pub holders: Vec<Holder>,
    /// Records found in a spool that another user could write, made by a user who could
    /// not write the database: renamed `.bad-NAME`, never merged.
    pub set_aside: Vec<PathBuf>,
}

/// A file whose owner or mode [`hand_over`] changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Changed {
    pub path: PathBuf,
    /// Its permission bits before.
    pub before: u32,
    /// Its permission bits and group now (the owner is root).
    pub mode: u32,
    pub gid: u32,
}

/// Why a hand-over did not happen. Nothing is changed in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum HandOverError {
    #[error("handing {0} to wtmpdbd needs root (its files become root's)")]
    NotRoot(PathBuf),
    #[error("{path}: {source}")]
    Unreadable {
        path: PathBuf,
        #[source]
        source: super::Error,
    },
    #[error("{path}: cannot change its owner or mode: {source}")]
    Change {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: {why}; not changed")]
    Refused { path: PathBuf, why: String },
}

/// Makes the database `path` (its side files, its spool, and the failed logins' file beside
/// it with its side files) the daemon's: root's, with the mode `private` allows. The file must be a wtmpdb database (checked by opening it read-only
/// first: a foreign file is refused before anything changes). Files are changed in the
/// order a reader needs them, the database first: once it is closed to others, nobody new
/// can open the side files through SQLite. Returns what changed and who still holds a file.
pub fn hand_over(path: &Path, private: Private) -> Result<HandedOver, HandOverError> {
    if crate::sys::euid() != 0 {
        return Err(HandOverError::NotRoot(path.to_path_buf()));
    }
    // The same checks and links a reader follows: a FIFO, a device, a foreign database or a
    // link planted by another user end here, before any change.
    super::Database::open_read_only(path).map_err(|source| HandOverError::Unreadable {
        path: path.to_path_buf(),
        source,
    })?;
    let file = files::trusted_file(path).ok_or_else(|| HandOverError::Refused {
        path: path.to_path_buf(),
        why: "it is a link that neither root nor the caller owns, or it is gone".into(),
    })?;
    // Whose records a spool may hold: root's, and those of whoever could write the
    // database itself until now.
    let writer = fs::metadata(&file).map(|m| m.uid()).unwrap_or(0);
    let mut changed = Vec::new();
    let mut all = Vec::new();
    // The sessions' database, then the failed logins' beside it (see `failed`), each with
    // its side files.
    for (db, required) in [
        (file.clone(), true),
        (super::failed::failures_path(path), false),
    ] {
        if !required && fs::symlink_metadata(&db).is_err() {
            continue;
        }
        make_private(&db, private, &mut changed)?;
        all.push(db.clone());
        for suffix in files::SIDE_SUFFIXES {
            let side = files::side_file(&db, suffix);
            if fs::symlink_metadata(&side).is_ok() {
                make_private(&side, private, &mut changed)?;
                all.push(side);
            }
        }
    }
    // The spool is created 0700 and root's (see `session::spool`); one that is not is
    // refused by every writer, and made so here.
    let spool = crate::session::spool::spool_dir(path);
    let mut set_aside = Vec::new();
    if let Ok(m) = fs::symlink_metadata(&spool) {
        if m.is_dir() && (m.uid() != 0 || m.mode() & 0o077 != 0) {
            let before = m.mode() & 0o7777;
            // Never through a link put in its place since.
            let dir = fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
                .open(&spool)
                .map_err(|source| HandOverError::Change {
                    path: spool.clone(),
                    source,
                })?;
            std::os::unix::fs::fchown(&dir, Some(0), Some(0))
                .and_then(|()| dir.set_permissions(fs::Permissions::from_mode(0o700)))
                .map_err(|source| HandOverError::Change {
                    path: spool.clone(),
                    source,
                })?;
            changed.push(Changed {
                path: spool.clone(),
                before,
                mode: 0o700,
                gid: 0,
            });
            // Closed now: nobody else adds a name. What another user put there (a logout
            // that closes root's open session, a login never made) is not merged.
            set_aside =
                foreign_records(&spool, writer).map_err(|source| HandOverError::Change {
                    path: spool.clone(),
                    source,
                })?;
        }
    }
    // Root's processes (the daemon, a login in flight) keep their access whatever the mode:
    // only other users' descriptors are access the hand-over cannot take back.
    let holders = holders(&all).into_iter().filter(|h| h.uid != 0).collect();
    Ok(HandedOver {
        file,
        changed,
        holders,
        set_aside,
    })
}

/// Renames each record in the spool `dir` owned by neither root nor `writer` to
/// `.bad-NAME`, which no merge reads; returns the new names.
fn foreign_records(dir: &Path, writer: u32) -> io::Result<Vec<PathBuf>> {
    let mut aside = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str().filter(|n| !n.starts_with('.')) else {
            if name.to_str().is_none() {
                // Not a name a writer makes: out of the way too.
                let bad = dir.join(format!(".bad-{}", name.to_string_lossy()));
                fs::rename(entry.path(), &bad)?;
                aside.push(bad);
            }
            continue;
        };
        let owner = entry.metadata()?.uid();
        if owner != 0 && owner != writer {
            let bad = dir.join(format!(".bad-{name}"));
            fs::rename(entry.path(), &bad)?;
            aside.push(bad);
        }
    }
    aside.sort();
    Ok(aside)
}

/// Gives the regular file `file` root's ownership and the mode of `private`, through a
/// descriptor opened without following a link.
fn make_private(
    file: &Path,
    private: Private,
    changed: &mut Vec<Changed>,
) -> Result<(), HandOverError> {
    let err = |source| HandOverError::Change {
        path: file.to_path_buf(),
        source,
    };
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(file)
        .map_err(err)?;
    let m = f.metadata().map_err(err)?;
    if !m.is_file() {
        return Err(HandOverError::Refused {
            path: file.to_path_buf(),
            why: "not a regular file".into(),
        });
    }
    if m.nlink() > 1 {
        // Another name would keep the old access to the same rows (or be a file of
        // someone else's that was linked here to have its mode changed).
        return Err(HandOverError::Refused {
            path: file.to_path_buf(),
            why: format!("it has {} names (hard links)", m.nlink()),
        });
    }
    let before = m.mode() & 0o7777;
    if m.uid() == 0 && m.gid() == private.gid() && before == private.mode() {
        return Ok(());
    }
    // Owner first, then mode: chown clears no bits we keep, and the mode is the last word.
    std::os::unix::fs::fchown(&f, Some(0), Some(private.gid())).map_err(err)?;
    f.set_permissions(fs::Permissions::from_mode(private.mode()))
        .map_err(err)?;
    changed.push(Changed {
        path: file.to_path_buf(),
        before,
        mode: private.mode(),
        gid: private.gid(),
    });
    Ok(())
}

/// The processes other than this one with a descriptor open on one of `files` (matched by
/// device and inode through `/proc/PID/fd`). Processes that vanish, or whose descriptors
/// this caller may not see, are passed over.
pub fn holders(files: &[PathBuf]) -> Vec<Holder> {
    let ids: Vec<(u64, u64, &PathBuf)> = files
        .iter()
        .filter_map(|f| fs::metadata(f).ok().map(|m| (m.dev(), m.ino(), f)))
        .collect();
    let me = std::process::id();
    let mut found = Vec::new();
    let Ok(procs) = fs::read_dir("/proc") else {
        return found;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        let mut held: Vec<&PathBuf> = Vec::new();
        for fd in fds.flatten() {
            // stat through the descriptor's link: the open file itself, even if renamed.
            let Ok(m) = fs::metadata(fd.path()) else {
                continue;
            };
            if let Some((_, _, f)) = ids.iter().find(|(d, i, _)| *d == m.dev() && *i == m.ino()) {
                if !held.contains(f) {
                    held.push(f);
                }
            }
        }
        if held.is_empty() {
            continue;
        }
        let uid = fs::metadata(p.path()).map(|m| m.uid()).unwrap_or(u32::MAX);
        let command = fs::read_to_string(p.path().join("comm"))
            .map(|c| c.trim_end_matches('\n').to_string())
            .unwrap_or_default();
        for f in held {
            found.push(Holder {
                pid,
                uid,
                command: command.clone(),
                file: f.clone(),
            });
        }
    }
    found.sort_by(|a, b| (a.pid, &a.file).cmp(&(b.pid, &b.file)));
    found
}

/// Why the daemon's database `path` is not private by the rule `private` (for the daemon's
/// warning at start): None when it is, or when it does not exist yet.
pub fn exposure(path: &Path, private: Private) -> Option<String> {
    let file = files::trusted_file(path)?;
    let m = fs::metadata(&file).ok()?;
    private
        .exposure(&m)
        .map(|why| format!("{}: {why}", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mode_follows_the_readers() {
        assert_eq!(Private::ROOT.mode(), 0o600);
        assert_eq!(Private { group: Some(4) }.mode(), 0o640);
        assert_eq!(Private { group: Some(4) }.gid(), 4);
        assert_eq!(Private::ROOT.gid(), 0);
    }

    /// A spool another user could write (here: nobody's) may hold records of that user's
    /// making, a logout that closes root's open session among them: once the spool is root's,
    /// the next writer would merge them. They are set aside; root's own stay.
    #[test]
    #[ignore = "needs root: files of another user"]
    fn records_of_another_user_in_a_spool_taken_over_are_set_aside() {
        use std::os::unix::fs::chown;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("wtmp.db");
        drop(super::super::Database::open_read_write(&db).unwrap());
        let spool = crate::session::spool::spool_dir(&db);
        fs::create_dir(&spool).unwrap();
        chown(&spool, Some(65534), Some(65534)).unwrap();
        let forged = spool.join("00000000000000000001-0000000000000000001-logout");
        fs::write(&forged, "wtmpdb-spool 1\nlogout row 1\nat 1000000\n").unwrap();
        chown(&forged, Some(65534), Some(65534)).unwrap();
        let roots = spool.join("00000000000000000002-0000000000000000002-logout");
        fs::write(&roots, "wtmpdb-spool 1\nlogout row 1\nat 2000000\n").unwrap();
        let done = hand_over(&db, Private::ROOT).unwrap();
        assert!(!forged.exists(), "another user's record left to be merged");
        assert!(roots.exists());
        assert_eq!(done.set_aside.len(), 1, "{:?}", done.set_aside);
        assert!(
            done.set_aside[0]
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".bad-")
        );
    }

    #[test]
    fn a_world_readable_file_is_exposed_and_a_private_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x");
        fs::write(&f, b"").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
        let m = fs::metadata(&f).unwrap();
        if m.uid() == 0 {
            assert!(Private::ROOT.exposure(&m).unwrap().contains("other users"));
            fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
            assert_eq!(Private::ROOT.exposure(&fs::metadata(&f).unwrap()), None);
        } else {
            assert!(Private::ROOT.exposure(&m).unwrap().contains("not root"));
        }
    }
}
