//! The names of the files SQLite keeps beside a database (`-journal`, `-wal`, `-shm`). A
//! module of its own, on nothing else in storage: the errors, the file checks and the
//! `/proc/locks` scanner all name side files.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// What SQLite keeps beside a database file, by suffix of its name.
pub const SIDE_SUFFIXES: [&str; 3] = ["-journal", "-wal", "-shm"];

/// The name of the side file of `file` with `suffix` (`wtmp.db` gives `wtmp.db-journal`).
pub fn side_file(file: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(file.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

/// Whether the `-wal` file `log` may hold frames: a regular file longer than a log's
/// header that starts with a header's magic number (either byte order of its checksums).
/// A log a checkpoint emptied is either empty or, kept allocated by wtmpdbd through a rest
/// (`Database::refill_emptied_log`), zeros: SQLite's recovery reads no frame behind a header
/// without the magic, and neither does anything of ours.
pub fn log_may_hold_frames(log: &Path) -> bool {
    use std::io::Read;
    const MAGIC: [[u8; 4]; 2] = [[0x37, 0x7f, 0x06, 0x82], [0x37, 0x7f, 0x06, 0x83]];
    if !std::fs::symlink_metadata(log).is_ok_and(|m| m.is_file() && m.len() > 32) {
        return false;
    }
    let mut magic = [0u8; 4];
    std::fs::File::open(log)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| MAGIC.contains(&magic))
}
