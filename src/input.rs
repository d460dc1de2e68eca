//! What a file named on the command line must be before anything reads it: a regular file.
//! A FIFO would block the open (or the read) until a writer comes, `/dev/zero` and
//! `/dev/urandom` never end, a directory is no database, and a `/proc` or `/sys` file claims
//! to be empty while it has contents; each of these gets one clear message at once instead
//! of a hang, an endless read, or "an empty database".

use std::fs;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

/// Why `path` cannot be read as a file of records, if it cannot. A name that does not exist
/// (or cannot be examined) passes: the open that follows reports it as it always did.
pub fn not_a_regular_file(path: &Path) -> Option<&'static str> {
    let meta = fs::metadata(path).ok()?;
    let t = meta.file_type();
    let what = if t.is_dir() {
        "it is a directory"
    } else if t.is_fifo() {
        "it is a FIFO (named pipe), not a file"
    } else if t.is_char_device() {
        "it is a character device, not a file"
    } else if t.is_block_device() {
        "it is a block device, not a file"
    } else if t.is_socket() {
        "it is a socket, not a file"
    } else if !t.is_file() {
        "it is not a regular file"
    } else if meta.len() == 0 && has_contents(path) {
        // A regular empty file reads nothing; a kernel file (procfs, sysfs) reports size 0
        // and yet has contents.
        "it reports a size of 0 but has contents (a /proc or /sys file), not a database or wtmp file"
    } else {
        return None;
    };
    Some(what)
}

/// As [`not_a_regular_file`], for a file of records to import, which may also be the
/// anonymous pipe of a shell's process substitution (`wtmpdb import <(zcat wtmp.1.gz)`,
/// a `/dev/fd/N` whose link names `pipe:[...]`): its other end is a process, so reading it
/// ends. A named FIFO is refused: opening it waits for a writer that may never come.
pub fn not_a_record_stream(path: &Path) -> Option<&'static str> {
    if is_anonymous_pipe(path) {
        return None;
    }
    not_a_regular_file(path)
}

/// Whether `path` is, through its links, an open descriptor's anonymous pipe.
fn is_anonymous_pipe(path: &Path) -> bool {
    let mut at = path.to_path_buf();
    for _ in 0..40 {
        let Ok(to) = fs::read_link(&at) else {
            return false;
        };
        if to.as_os_str().as_encoded_bytes().starts_with(b"pipe:") {
            return true;
        }
        at = match at.parent() {
            Some(dir) => dir.join(to),
            None => to,
        };
    }
    false
}

/// Whether reading `path` gives at least one byte while its size still reads 0 (the caller
/// checked that it is a regular file). A file that was empty at the caller's look and was
/// written since (a database's first writer at work) has a size now: it does not lie about
/// it, as a kernel file does. Read through SQLite's VFS, never a descriptor of our own: the
/// file may be a database a writer of this process is creating (its first transaction, the
/// file still empty), and closing a descriptor of it would drop that writer's locks (see
/// `storage::vfs::file_start`).
fn has_contents(path: &Path) -> bool {
    crate::storage::vfs::file_start::<1>(path).is_some_and(|(_, size)| size == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_pass() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, b"").unwrap();
        assert_eq!(not_a_regular_file(&empty), None);
        assert_eq!(not_a_regular_file(&dir.path().join("missing")), None);
        assert!(
            not_a_regular_file(dir.path())
                .unwrap()
                .contains("directory")
        );
        assert!(
            not_a_regular_file(Path::new("/dev/zero"))
                .unwrap()
                .contains("character device")
        );
        assert!(
            not_a_regular_file(Path::new("/proc/self/status"))
                .unwrap()
                .contains("/proc")
        );
        // Written between the caller's look, which found it empty, and this read (a
        // database's first writer at work): not a kernel file's size.
        let grown = dir.path().join("grown");
        std::fs::write(&grown, b"SQLite format 3\0").unwrap();
        assert!(!has_contents(&grown));
        assert!(has_contents(Path::new("/proc/self/status")));
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo");
        assert!(not_a_regular_file(&fifo).unwrap().contains("FIFO"));
        assert!(not_a_record_stream(&fifo).unwrap().contains("FIFO"));
        // The anonymous pipe of a child's output, by its /proc/self/fd name.
        let mut child = std::process::Command::new("true")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::os::fd::AsRawFd;
        let fd = child.stdout.as_ref().unwrap().as_raw_fd();
        let pipe = std::path::PathBuf::from(format!("/proc/self/fd/{fd}"));
        assert!(not_a_regular_file(&pipe).unwrap().contains("FIFO"));
        assert_eq!(not_a_record_stream(&pipe), None);
        child.wait().unwrap();
    }
}
