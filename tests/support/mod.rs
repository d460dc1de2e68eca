//! Shared by the test crates of the workspace, each of which includes this file as a module
//! (the root crate's tests with `mod support;`, the other crates' with `#[path]`). Not every
//! test file uses every item.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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

/// A btrfs file system in a sparse file under `dir`, mounted through a loop device for as
/// long as the value lives (needs root), with a subvolume: there `stat` gives files a device
/// number of the subvolume's, while the kernel lists their locks in `/proc/locks` under the
/// file system's. None, through [`missing`], without `mkfs.btrfs` (Debian's btrfs-progs) or
/// a kernel that mounts btrfs.
pub struct Btrfs {
    mount: PathBuf,
}

impl Btrfs {
    #[track_caller]
    pub fn mount(dir: &Path) -> Option<Btrfs> {
        let mkfs = tool("mkfs.btrfs")?;
        let btrfs = tool("btrfs")?;
        let image = dir.join("btrfs.img");
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(256 << 20))
            .unwrap();
        let made = Command::new(mkfs)
            .args(["-q", "-f"])
            .arg(&image)
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let mount = dir.join("btrfs");
        std::fs::create_dir(&mount).unwrap();
        let mounted = made
            && Command::new("mount")
                .args(["-t", "btrfs", "-o", "loop"])
                .arg(&image)
                .arg(&mount)
                .status()
                .is_ok_and(|s| s.success());
        if !mounted {
            missing("cannot make and mount a btrfs file system here");
            return None;
        }
        let fs = Btrfs { mount };
        let sub = fs.subvolume();
        assert!(
            Command::new(btrfs)
                .args(["subvolume", "create"])
                .arg(&sub)
                .stdout(Stdio::null())
                .status()
                .unwrap()
                .success()
        );
        for d in [&fs.mount, &sub] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Some(fs)
    }

    /// The subvolume's directory.
    pub fn subvolume(&self) -> PathBuf {
        self.mount.join("sub")
    }
}

impl Drop for Btrfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mount).status();
    }
}

/// Runs the Python program `script` as `nobody` (Debian's python3: one under root's home is
/// not nobody's to run) with the arguments `args`, and returns the child once it printed its
/// first line, which must be `ready`; it runs on until its stdin closes, as the script must
/// make sure. None through [`missing`] without python3.
pub fn nobody_runs_python(
    script: &str,
    args: &[&std::ffi::OsStr],
    ready: &str,
) -> Option<std::process::Child> {
    python_child(true, script, args, ready)
}

/// [`nobody_runs_python`] as the test's own user.
pub fn runs_python(
    script: &str,
    args: &[&std::ffi::OsStr],
    ready: &str,
) -> Option<std::process::Child> {
    python_child(false, script, args, ready)
}

fn python_child(
    as_nobody: bool,
    script: &str,
    args: &[&std::ffi::OsStr],
    ready: &str,
) -> Option<std::process::Child> {
    use std::io::BufRead;
    let python = Path::new("/usr/bin/python3");
    if !python.exists() {
        missing("/usr/bin/python3 is not installed");
        return None;
    }
    let mut cmd = if as_nobody {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(python);
        c
    } else {
        Command::new(python)
    };
    let mut child = cmd
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim_end(), ready, "{script:?} {args:?}");
    Some(child)
}

/// Another process (of the test's user, root) in a writer's first moments on the `-shm`
/// index of the database `db`: it found no other connection on the index, emptied it (to 3
/// bytes) and holds its DMS byte shared, but has not yet locked it to rebuild it. Returned
/// once there; when its stdin closes it exits, after rebuilding the index as that writer
/// would (it reads the database through Python's sqlite3, the system's SQLite) when
/// `rebuilds`, without (a writer killed in those moments) otherwise.
pub fn writer_in_its_first_moments(db: &Path, rebuilds: bool) -> Option<std::process::Child> {
    let mut shm = db.as_os_str().to_owned();
    shm.push("-shm");
    runs_python(
        "import fcntl, os, sqlite3, sys\n\
         fd = os.open(sys.argv[1], os.O_RDWR)\n\
         fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB, 1, 128, 0)\n\
         os.ftruncate(fd, 3)\n\
         print('ready', flush=True)\n\
         sys.stdin.read()\n\
         if sys.argv[3] == 'rebuild':\n\
         \x20   sqlite3.connect(sys.argv[2]).execute('SELECT count(*) FROM wtmp').fetchall()\n",
        &[
            shm.as_ref(),
            db.as_os_str(),
            if rebuilds { "rebuild" } else { "exit" }.as_ref(),
        ],
        "ready",
    )
}

/// `nobody`, in a process of its own, opens `shm` (a `-shm` file) read-only, as any user may,
/// and holds a shared `fcntl` lock on its byte `byte` until the child's stdin closes. Returns
/// the child once the lock is held (see [`nobody_runs_python`]).
pub fn nobody_holds_a_shm_lock(shm: &Path, byte: u32) -> Option<std::process::Child> {
    nobody_runs_python(
        "import fcntl, os, sys\n\
         fd = os.open(sys.argv[1], os.O_RDONLY)\n\
         fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB, 1, int(sys.argv[2]), 0)\n\
         print('locked', flush=True)\n\
         sys.stdin.read()\n",
        &[shm.as_os_str(), byte.to_string().as_ref()],
        "locked",
    )
}

/// The Python program of [`reader_pins_the_log`]: a read-only connection, as the file's mode
/// gives every user, that holds `BEGIN; SELECT` until its stdin closes.
const PIN_PY: &str = "import sqlite3, sys\n\
    c = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True, isolation_level=None)\n\
    c.execute('BEGIN')\n\
    c.execute('SELECT count(*) FROM wtmp').fetchone()\n\
    print('pinned', flush=True)\n\
    sys.stdin.read()\n";

/// A reader in a process of its own that opens the database `db` read-only and holds a read
/// transaction until the child's stdin closes, as any user who may read the file can: as
/// `nobody` when the test runs as root (its directory must be open to `nobody`), as the
/// test's user otherwise. Returns the child once the transaction is open; None through
/// [`missing`] without Debian's python3.
pub fn reader_pins_the_log(db: &Path) -> Option<std::process::Child> {
    if is_root() {
        nobody_runs_python(PIN_PY, &[db.as_os_str()], "pinned")
    } else {
        runs_python(PIN_PY, &[db.as_os_str()], "pinned")
    }
}

/// `nobody` takes and drops a shared `fcntl` lock on byte `byte` of `shm` over and over (held
/// 5 to 50 ms, free 0.05 to 0.3 ms), until the child's stdin closes: a lock that any check
/// made before SQLite opens the file is likely to miss. Returns once the loop runs.
pub fn nobody_toggles_a_shm_lock(shm: &Path, byte: u32) -> Option<std::process::Child> {
    nobody_runs_python(
        "import fcntl, os, random, select, sys, time\n\
         fd, byte = os.open(sys.argv[1], os.O_RDONLY), int(sys.argv[2])\n\
         print('started', flush=True)\n\
         while not select.select([sys.stdin], [], [], 0)[0]:\n\
         \x20   try:\n\
         \x20       fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB, 1, byte, 0)\n\
         \x20   except OSError:\n\
         \x20       pass\n\
         \x20   time.sleep(random.uniform(0.005, 0.05))\n\
         \x20   fcntl.lockf(fd, fcntl.LOCK_UN, 1, byte, 0)\n\
         \x20   time.sleep(random.uniform(0.00005, 0.0003))\n",
        &[shm.as_os_str(), byte.to_string().as_ref()],
        "started",
    )
}

/// The workspace's root directory (where Cargo.lock is), from the including crate's
/// manifest directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|d| d.join("Cargo.lock").is_file() && d.join("crates").is_dir())
        .expect("the workspace root")
        .to_path_buf()
}

/// The newest modification time of the files under `path` (itself, if a file).
fn newest_mtime(path: &Path) -> Option<(std::time::SystemTime, PathBuf)> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.is_file() {
        return Some((meta.modified().ok()?, path.to_path_buf()));
    }
    std::fs::read_dir(path)
        .ok()?
        .filter_map(|e| newest_mtime(&e.ok()?.path()))
        .max()
}

/// The binary `name` of the workspace crate in `crate_dir` (relative to the workspace root),
/// for a test of another crate: cargo tells a test only where its own crate's binaries are,
/// so this one is taken from the profile directory (`target/debug`), where `cargo build` and
/// `cargo test --workspace` put it. The test fails, with the command that builds it, when
/// the binary is missing or older than any source it is built from (the core's and its own
/// crate's), so that no test runs an old build.
#[track_caller]
pub fn workspace_binary(name: &str, crate_dir: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let bin = exe.parent().unwrap().parent().unwrap().join(name);
    let package = match name {
        "wtmpdb" => "wtmpdb-cli",
        other => other,
    };
    let build = format!("cargo build -p {package} (cargo test --workspace builds it too)");
    let built = std::fs::metadata(&bin)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| panic!("{} is not built: {build}", bin.display()));
    let root = workspace_root();
    let sources = ["src", "migrations", "Cargo.toml", "Cargo.lock"]
        .iter()
        .map(|s| root.join(s))
        .chain(
            ["src", "Cargo.toml"]
                .iter()
                .map(|s| root.join(crate_dir).join(s)),
        );
    for source in sources {
        if let Some((changed, file)) = newest_mtime(&source) {
            assert!(
                changed <= built,
                "{} is older than {}: {build}",
                bin.display(),
                file.display()
            );
        }
    }
    bin
}

/// A `wtmpdbd` of a test's own (the binary `bin`, see [`workspace_binary`]), listening on
/// `DIR/run/socket` with the database `DIR/db/wtmp.db`; killed when dropped.
pub struct Wtmpdbd {
    child: std::process::Child,
    pub socket: PathBuf,
    pub db: PathBuf,
}

impl Wtmpdbd {
    /// Starts it with the options `args` besides `--socket` and `--database`, and waits until
    /// its socket answers.
    #[track_caller]
    pub fn start(bin: &Path, dir: &Path, args: &[&str]) -> Wtmpdbd {
        Wtmpdbd::start_at(bin, &dir.join("run/socket"), &dir.join("db/wtmp.db"), args)
    }

    /// [`Wtmpdbd::start`] on the socket `socket` with the database `db`.
    #[track_caller]
    pub fn start_at(bin: &Path, socket: &Path, db: &Path, args: &[&str]) -> Wtmpdbd {
        Wtmpdbd::spawn(bin, socket, db, args, None)
    }

    /// [`Wtmpdbd::start_at`] with its log (standard error) written to the file `log`.
    #[track_caller]
    pub fn start_at_logging(
        bin: &Path,
        socket: &Path,
        db: &Path,
        args: &[&str],
        log: &Path,
    ) -> Wtmpdbd {
        Wtmpdbd::spawn(bin, socket, db, args, Some(log))
    }

    #[track_caller]
    fn spawn(bin: &Path, socket: &Path, db: &Path, args: &[&str], log: Option<&Path>) -> Wtmpdbd {
        let (socket, db) = (socket.to_path_buf(), db.to_path_buf());
        let stderr = match log {
            Some(f) => std::process::Stdio::from(std::fs::File::create(f).unwrap()),
            None => std::process::Stdio::inherit(),
        };
        let child = Command::new(bin)
            .arg("--socket")
            .arg(&socket)
            .arg("--database")
            .arg(&db)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let d = Wtmpdbd { child, socket, db };
        let t = std::time::Instant::now();
        while std::os::unix::net::UnixStream::connect(&d.socket).is_err() {
            assert!(
                t.elapsed() < std::time::Duration::from_secs(10),
                "wtmpdbd did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        d
    }

    /// Its process ID, for a signal (SIGSTOP: a daemon that accepts connections and never
    /// answers).
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for Wtmpdbd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `chmod MODE path`.
pub fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `nobody`, in a process of its own, holds `count` shared `fcntl` locks on files of its own
/// in `dir` (which this makes nobody's), as any user may: each lock is a line of
/// `/proc/locks`, which the kernel walks from its start again for every read of it. Returns
/// the child once the locks are held (they go when its stdin closes); None through
/// [`missing`] without Debian's python3.
pub fn nobody_holds_many_locks(dir: &Path, count: usize) -> Option<std::process::Child> {
    std::os::unix::fs::chown(dir, Some(65534), Some(65534)).unwrap();
    nobody_runs_python(
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
        &[dir.as_os_str(), count.to_string().as_ref()],
        "locked",
    )
}

/// The command prefix that runs a program in a private mount namespace whose `/var` is the
/// directory `var` (bound over it): a program that fell back to the system database under
/// /var leaves its file in `var`, and the machine's own /var stays untouched. Needs root and
/// util-linux's `unshare`.
pub fn in_a_namespace_with_var(var: &Path) -> Vec<String> {
    let mut argv: Vec<String> = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        "mount --bind \"$0\" /var && exec \"$@\"",
    ]
    .map(String::from)
    .to_vec();
    argv.push(var.display().to_string());
    argv
}

/// The arguments that make this test binary run its ignored helper test `name` alone (a
/// `child_process_*` test: the body of a child process), printing what the helper prints;
/// they follow the binary's path, for a wrapper that runs it (`sh` under a umask, `strace`).
pub fn child_test_args(name: &str) -> [&str; 5] {
    [
        "--ignored",
        "--exact",
        name,
        "--nocapture",
        "--test-threads=1",
    ]
}

/// This test binary as a child process running its helper test `name` (see
/// [`child_test_args`]), standard input closed unless the caller sets it.
pub fn child_test(name: &str) -> Command {
    let mut c = Command::new(std::env::current_exe().expect("the test binary's path"));
    c.args(child_test_args(name))
        .stdin(std::process::Stdio::null());
    c
}

/// Runs `cmd` to its end (standard input as the command has it), asserts that it succeeded
/// (else the failure shows its status and both outputs), and returns its standard output.
#[track_caller]
pub fn stdout_of_success(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{:?}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs this test binary's helper test `name` (see [`child_test`]) under `strace -f -y`,
/// tracing the system calls `calls` (strace's `trace=` list), with the variables `env` set;
/// asserts that it succeeded and returns the trace (each descriptor with its file's path).
/// None through [`missing`] when strace is not installed.
#[track_caller]
pub fn strace_child_test(
    calls: &str,
    name: &str,
    env: &[(&str, &std::ffi::OsStr)],
) -> Option<String> {
    let strace = tool("strace")?;
    let out = Command::new(strace)
        .args(["-f", "-qq", "-y", "-e", &format!("trace={calls}")])
        .arg(std::env::current_exe().expect("the test binary's path"))
        .args(child_test_args(name))
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let trace = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{trace}");
    Some(trace)
}

/// The body of a test binary's `child_process_lock_holder` helper (each test file that
/// uses [`hold_lock`] declares one, ignored, that calls this): holds `BEGIN EXCLUSIVE` on the
/// database named by `WTMPDB_TEST_LOCK_HOLDER`, as an admin's `sqlite3` or a foreign program
/// would, says `locked`, and keeps the lock until its standard input closes.
pub fn lock_holder_child() {
    use std::io::Write;
    let path = std::env::var_os("WTMPDB_TEST_LOCK_HOLDER")
        .expect("child-process helper, not a test: hold_lock runs it");
    // A failures' file (`NAME-failed`) has its own table.
    let failures = path.to_string_lossy().ends_with("-failed");
    wtmpdb::sqlite::load().unwrap();
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch(if failures {
        "BEGIN EXCLUSIVE; INSERT INTO failed (Time, User) VALUES (0, 'lock');"
    } else {
        "BEGIN EXCLUSIVE; INSERT INTO wtmp (Type, User) VALUES (0, 'lock');"
    })
    .unwrap();
    println!("locked");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

/// Starts this test binary's `child_process_lock_holder` on `db` (a second process: SQLite's
/// locks are per process) and returns once it holds the lock; [`release_lock`] ends it.
pub fn hold_lock(db: &Path) -> std::process::Child {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut child = child_test("child_process_lock_holder")
        .env("WTMPDB_TEST_LOCK_HOLDER", db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while out.read_line(&mut line).unwrap_or(0) > 0 {
        if line.trim_end().ends_with("locked") {
            // Keep reading: the child's test harness still reports its result on exit, and a
            // closed pipe would make it fail with "Broken pipe".
            std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
            return child;
        }
        line.clear();
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the lock holder died");
}

/// Ends a [`hold_lock`] holder: its lock goes with it.
pub fn release_lock(mut holder: std::process::Child) {
    drop(holder.stdin.take());
    assert!(holder.wait().unwrap().success(), "the lock holder failed");
}

/// A database as its first writer leaves it between setting WAL mode (the file's header
/// written) and committing its table: an SQLite file whose schema holds nothing.
pub fn database_without_its_table(db: &Path) {
    wtmpdb::sqlite::load().unwrap();
    let mode: String = rusqlite::Connection::open(db)
        .unwrap()
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    assert!(std::fs::metadata(db).unwrap().len() > 0);
}

/// A reader of `db` holding a read transaction until it is dropped, as any user who may
/// read the file can: no checkpoint can copy the log past its snapshot. Its own close
/// leaves the log alone (it must not do the writers' work).
pub fn pinning_reader(db: &Path) -> rusqlite::Connection {
    wtmpdb::sqlite::load().unwrap();
    let reader = rusqlite::Connection::open(db).unwrap();
    reader
        .set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )
        .unwrap();
    reader.execute_batch("BEGIN").unwrap();
    let _: i64 = reader
        .query_row("SELECT count(*) FROM wtmp", [], |r| r.get(0))
        .unwrap();
    reader
}

/// Debian's real `systemd-journald`, started (as root) in a mount namespace of its own: a
/// tmpfs on its `/run` (so the machine's `/dev/log` and journal sockets are never taken
/// over), its journal files in a private directory, rate limits off. Its native socket is
/// reached from outside through `/proc/PID/root`; killed when dropped.
pub struct Journald {
    child: Option<std::process::Child>,
    dir: PathBuf,
}

/// journald's program in Debian's `systemd` package.
pub const JOURNALD: &str = "/lib/systemd/systemd-journald";

impl Journald {
    /// Starts it in `dir` (which must exist); None, through [`missing`], when journald or
    /// `unshare`/`journalctl` is not installed.
    #[track_caller]
    pub fn start(dir: &Path) -> Option<Journald> {
        if !Path::new(JOURNALD).exists() {
            missing(&format!(
                "{JOURNALD} (Debian's systemd package) is not installed"
            ));
            return None;
        }
        tool("unshare")?;
        tool("journalctl")?;
        std::fs::create_dir_all(dir.join("journal")).unwrap();
        let conf = dir.join("journald.conf");
        std::fs::write(
            &conf,
            "[Journal]\nStorage=volatile\nReadKMsg=no\nForwardToSyslog=no\nForwardToKMsg=no\n\
             ForwardToConsole=no\nForwardToWall=no\nRateLimitBurst=0\nAudit=no\n",
        )
        .unwrap();
        let script = format!(
            "set -e; mount -t tmpfs tmpfs /run; mkdir -p /run/systemd/journal /run/log/journal; \
             mount --bind '{j}' /run/log/journal; mount --bind '{c}' /etc/systemd/journald.conf; \
             exec {JOURNALD}",
            j = dir.join("journal").display(),
            c = conf.display()
        );
        let child = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", &script])
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(dir.join("journald.log")).unwrap())
            .stderr(std::fs::File::create(dir.join("journald.err")).unwrap())
            .spawn()
            .unwrap();
        let j = Journald {
            child: Some(child),
            dir: dir.to_path_buf(),
        };
        let t = std::time::Instant::now();
        while !j.socket().exists() {
            assert!(
                t.elapsed() < std::time::Duration::from_secs(10),
                "journald did not start: {}",
                std::fs::read_to_string(dir.join("journald.err")).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Some(j)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Its native socket, from outside its namespace.
    pub fn socket(&self) -> PathBuf {
        PathBuf::from(format!(
            "/proc/{}/root/run/systemd/journal/socket",
            self.pid()
        ))
    }

    /// Stops it (its files then complete) and reads back every entry that `matches` (as
    /// journalctl takes them) with `journalctl --directory … -o json`.
    pub fn stop_and_read(&mut self, matches: &[&str]) -> Vec<serde_json::Value> {
        let machine = self.stop();
        journal_entries(&["--directory".as_ref(), machine.as_os_str()], matches)
    }

    /// Stops it (its files then complete): the directory of its journal files.
    pub fn stop(&mut self) -> PathBuf {
        if let Some(mut c) = self.child.take() {
            // SIGTERM: journald syncs and closes its files.
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
        std::fs::read_dir(self.dir.join("journal"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.is_dir())
            .expect("journald wrote no journal directory")
    }
}

impl Drop for Journald {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The bytes of one field of a journal entry as `journalctl -o json` gives it: a string, or
/// an array of byte values for one that is not printable UTF-8 (None: absent, or sent more
/// than once).
pub fn journal_field(entry: &serde_json::Value, name: &str) -> Option<Vec<u8>> {
    match entry.get(name)? {
        serde_json::Value::String(s) => Some(s.as_bytes().to_vec()),
        serde_json::Value::Array(a) if a.iter().all(|v| v.is_u64()) => {
            Some(a.iter().map(|v| v.as_u64().unwrap() as u8).collect())
        }
        _ => None,
    }
}

/// The entries that `matches` in the journal files `source` names (journalctl's
/// `--directory DIR` or `--file FILE`), as `journalctl -o json` gives them.
pub fn journal_entries(source: &[&std::ffi::OsStr], matches: &[&str]) -> Vec<serde_json::Value> {
    let out = Command::new("journalctl")
        .args(source)
        .args(["-o", "json", "--no-pager", "--all"])
        .args(matches)
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Debian's `systemd-journal-remote` and `-upload` (package systemd-journal-remote).
pub const JOURNAL_REMOTE: &str = "/lib/systemd/systemd-journal-remote";
pub const JOURNAL_UPLOAD: &str = "/lib/systemd/systemd-journal-upload";

/// Ships the journal files in `dir` with `systemd-journal-upload` over HTTP on 127.0.0.1 to
/// a `systemd-journal-remote` writing `received` (a `.journal` file); None, through
/// [`missing`], without the programs.
#[track_caller]
pub fn ship_over_loopback(dir: &Path, received: &Path) -> Option<()> {
    for p in [JOURNAL_REMOTE, JOURNAL_UPLOAD] {
        if !Path::new(p).exists() {
            missing(&format!(
                "{p} (Debian's systemd-journal-remote) is not installed"
            ));
            return None;
        }
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut remote = Command::new(JOURNAL_REMOTE)
        .arg(format!("--listen-http=127.0.0.1:{port}"))
        .arg("--split-mode=none")
        .arg(format!("--output={}", received.display()))
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(10),
            "journal-remote did not listen"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let up = Command::new(JOURNAL_UPLOAD)
        .arg(format!("--url=http://127.0.0.1:{port}"))
        .arg(format!("--directory={}", dir.display()))
        .arg("--follow=no")
        .arg(format!(
            "--save-state={}",
            dir.with_extension("upload-state").display()
        ))
        .status()
        .unwrap();
    // SIGTERM: journal-remote closes its file.
    let _ = Command::new("kill").arg(remote.id().to_string()).status();
    let _ = remote.wait();
    assert!(up.success(), "journal-upload failed");
    Some(())
}
