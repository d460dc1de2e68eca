//! Shared by the test crates of the workspace, each of which includes this file as a module
//! (the root crate's tests with `mod support;`, the other crates' with `#[path]`). Not every
//! test file uses every item.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Something a test needs is not here: a system tool, or a facility such as mounting a tmpfs.
/// Under `CI=true` that fails the test, because CI must run every check; elsewhere it prints a
/// SKIP line on stderr and the caller leaves out the checks that need it.
#[track_caller]
pub fn missing(what: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{what}: under CI=true every check must run");
    }
    eprintln!("SKIP: {what}: the checks that need it are not run");
}

/// Where the program `cmd` is on PATH, or None through [`missing`] (which fails under
/// `CI=true`).
#[track_caller]
pub fn tool(cmd: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(cmd))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        missing(&format!("{cmd} is not installed"));
    }
    found
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// First line of a test marked `#[ignore = "needs root: ..."]`: run by hand without root, it
/// fails and says how to run it, instead of passing without checking anything.
#[track_caller]
pub fn require_root() {
    assert!(
        is_root(),
        "this test needs root: run it as root with --ignored (scripts/test.sh does, as root)"
    );
}

/// A tmpfs mounted on a directory for as long as the value lives (mounting needs root).
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs with `options` (as `mount -o` takes them) on `dir`; None, through
    /// [`missing`], when this machine cannot mount one.
    #[track_caller]
    pub fn mount(dir: &Path, options: &str) -> Option<Tmpfs> {
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            missing(&format!("cannot mount a tmpfs ({options}) here"));
            return None;
        }
        Some(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// `nobody`, in a process of its own, opens `shm` (a `-shm` file) read-only, as any user may,
/// and holds a shared `fcntl` lock on its byte `byte` until the child's stdin closes. Returns
/// the child once the lock is held; None through [`missing`] without Debian's python3 (one
/// under root's home is not nobody's to run).
pub fn nobody_holds_a_shm_lock(shm: &Path, byte: u32) -> Option<std::process::Child> {
    use std::io::BufRead;
    let python = Path::new("/usr/bin/python3");
    if !python.exists() {
        missing("/usr/bin/python3 is not installed");
        return None;
    }
    let mut holder = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(python)
        .arg("-c")
        .arg(
            "import fcntl, os, sys\n\
             fd = os.open(sys.argv[1], os.O_RDONLY)\n\
             fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB, 1, int(sys.argv[2]), 0)\n\
             print('locked', flush=True)\n\
             sys.stdin.read()\n",
        )
        .arg(shm)
        .arg(byte.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(
        line.trim_end(),
        "locked",
        "nobody could not lock {}",
        shm.display()
    );
    Some(holder)
}

/// `nobody`, in a process of its own, holds `count` shared `fcntl` locks on files of its own
/// in `dir` (which this makes nobody's), as any user may: each lock is a line of
/// `/proc/locks`, which the kernel walks from its start again for every read of it. Returns
/// the child once the locks are held (they go when its stdin closes); None through
/// [`missing`] without Debian's python3.
pub fn nobody_holds_many_locks(dir: &Path, count: usize) -> Option<std::process::Child> {
    use std::io::BufRead;
    let python = Path::new("/usr/bin/python3");
    if !python.exists() {
        missing("/usr/bin/python3 is not installed");
        return None;
    }
    std::os::unix::fs::chown(dir, Some(65534), Some(65534)).unwrap();
    let mut holder = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(python)
        .arg("-c")
        .arg(
            "import fcntl, os, resource, sys\n\
             soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n\
             resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))\n\
             left, i, fds = int(sys.argv[2]), 0, []\n\
             while left > 0:\n\
             \x20   fd = os.open(os.path.join(sys.argv[1], str(i)), os.O_RDWR | os.O_CREAT, 0o600)\n\
             \x20   fds.append(fd)\n\
             \x20   for j in range(min(left, 64)):\n\
             \x20       fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB, 1, 2 * j, 0)\n\
             \x20   left, i = left - 64, i + 1\n\
             print('locked', flush=True)\n\
             sys.stdin.read()\n",
        )
        .arg(dir)
        .arg(count.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim_end(), "locked", "nobody could not take its locks");
    Some(holder)
}
