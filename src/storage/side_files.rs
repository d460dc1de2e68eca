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
