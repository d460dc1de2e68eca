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

/// The directory that holds `file`: its parent, or `.` for a bare name (whose parent is
/// empty).
pub fn directory_of(file: &Path) -> &Path {
    match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// The magic number of a WAL header whose checksums read the data as little-endian words
/// (SQLite also writes 0x377f0683, big-endian words).
const WAL_MAGIC_LE: u32 = 0x377f_0682;

/// The WAL format version every SQLite since 3.7.0 writes.
const WAL_VERSION: u32 = 3_007_000;

/// The 32-byte header of a log that holds no frame, as SQLite writes one for pages of
/// `page_size` bytes with the salts `salts` and a checkpoint count of 0 (so that the writer
/// that next rebuilds an index from it draws salts of its own for its frames). Its checksum
/// is SQLite's (`walChecksumBytes` over its first 24 bytes, little-endian words). None for a
/// page size SQLite's recovery does not take (a power of two from 512 to 65536): it would
/// build zero salts from such a header, and a reader without the index would retry against
/// it until it gave up.
pub fn empty_log_header(page_size: u32, salts: [u8; 8]) -> Option<[u8; 32]> {
    if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
        return None;
    }
    let mut h = [0u8; 32];
    h[0..4].copy_from_slice(&WAL_MAGIC_LE.to_be_bytes());
    h[4..8].copy_from_slice(&WAL_VERSION.to_be_bytes());
    h[8..12].copy_from_slice(&page_size.to_be_bytes());
    h[16..24].copy_from_slice(&salts);
    let (mut s1, mut s2) = (0u32, 0u32);
    for pair in h[..24].chunks_exact(8) {
        let word = |i: usize| u32::from_le_bytes([pair[i], pair[i + 1], pair[i + 2], pair[i + 3]]);
        s1 = s1.wrapping_add(word(0)).wrapping_add(s2);
        s2 = s2.wrapping_add(word(4)).wrapping_add(s1);
    }
    h[24..28].copy_from_slice(&s1.to_be_bytes());
    h[28..32].copy_from_slice(&s2.to_be_bytes());
    Some(h)
}

/// Whether `start` (a log's first bytes) begins with a WAL header's magic number, in either
/// byte order of its checksums.
fn has_log_magic(start: &[u8]) -> bool {
    start
        .first_chunk::<4>()
        .is_some_and(|m| (u32::from_be_bytes(*m) | 1) == (WAL_MAGIC_LE | 1))
}

/// Whether `header` starts with a WAL header's magic number (either byte order of its
/// checksums) and SQLite's format version.
pub fn is_log_header(header: &[u8; 32]) -> bool {
    has_log_magic(header)
        && u32::from_be_bytes([header[4], header[5], header[6], header[7]]) == WAL_VERSION
}

/// Whether the `-wal` file `log` may hold frames: a regular file that starts with a
/// header's magic number (either byte order of its checksums) and whose first frame carries
/// the header's salts. SQLite's recovery reads no frame behind a header without the magic,
/// and none at all when the first frame's salts are not the header's. A log a checkpoint
/// emptied is either empty, or a header with salts of its own and zeros behind it (kept
/// allocated by wtmpdbd through a rest, `Database::refill_emptied_log`), or such a header
/// over the frames of the last write, which carry other salts (a log of at most
/// `WalSettings::REFILL_BYTES` the writers' VFS kept instead of truncating it, see `vfs`).
pub fn log_may_hold_frames(log: &Path) -> bool {
    use std::io::Read;
    // A header (32 bytes) and a frame's header (24: page, size, salts, checksums).
    if !std::fs::symlink_metadata(log).is_ok_and(|m| m.is_file() && m.len() > 32) {
        return false;
    }
    let mut start = [0u8; 56];
    std::fs::File::open(log)
        .and_then(|mut f| f.read_exact(&mut start))
        .is_ok_and(|()| has_log_magic(&start))
        && start[16..24] == start[40..48]
}
