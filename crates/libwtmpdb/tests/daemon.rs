//! The C library through the real `wtmpdbd`: a C program (tests/c/calls.c) built against the
//! installed header calls the functions with the database name "varlink" (the daemon only)
//! and NULL (the daemon when its socket answers), against a daemon of the test's own on a
//! temporary socket and database. Debug builds of the library take that socket from
//! `LIBWTMPDB_TEST_SOCKET`; release builds always use /run/wtmpdb/socket.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::support::{self, Wtmpdbd};
use common::{compile, have, install};

// The direct rusqlite calls below need SQLite loaded (see wtmpdb::sqlite).
wtmpdb::load_sqlite_at_start!();

/// What the test needs: the daemon, the installed library and the C program, in a
/// directory `nobody` can enter.
struct Setup {
    dir: tempfile::TempDir,
    libdir: PathBuf,
    calls: PathBuf,
    daemon: Wtmpdbd,
}

const NOBODY: &[&str] = &["--reuid=65534", "--regid=65534", "--clear-groups"];

fn setup() -> Option<Setup> {
    if !cfg!(debug_assertions) {
        // The socket cannot be named in a release build of the library.
        support::missing("a debug build of libwtmpdb (LIBWTMPDB_TEST_SOCKET)");
        return None;
    }
    if !(have("make") && have("cc") && have("pkg-config")) {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    support::chmod(dir.path(), 0o755);
    let dest = dir.path().join("root");
    let libdir = install(&dest);
    let calls = dir.path().join("calls");
    let built = compile(&dest, &libdir, "calls.c", &calls, &[]);
    assert!(
        built.status.success(),
        "cc: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let bin = support::workspace_binary("wtmpdbd", "crates/daemon");
    let daemon = Wtmpdbd::start(&bin, &dir.path().join("d"), &[]);
    Some(Setup {
        dir,
        libdir,
        calls,
        daemon,
    })
}

impl Setup {
    /// The C program with `db` and `calls`, as this user, or first through `wrap` (setpriv,
    /// unshare); returns its lines.
    fn run(&self, wrap: &[&str], db: &str, calls: &[String]) -> Vec<String> {
        let mut cmd = match wrap.split_first() {
            Some((w, rest)) => {
                let mut c = Command::new(w);
                c.args(rest).arg(&self.calls);
                c
            }
            None => Command::new(&self.calls),
        };
        let out: Output = cmd
            .arg(db)
            .args(calls)
            .env("LD_LIBRARY_PATH", &self.libdir)
            .env("LIBWTMPDB_TEST_SOCKET", &self.daemon.socket)
            .env_remove("LD_PRELOAD")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{cmd:?}: {}\n{stdout}\n{stderr}",
            out.status
        );
        // The library writes nothing to stderr.
        assert_eq!(stderr, "", "{stdout}");
        stdout.lines().map(str::to_owned).collect()
    }

    fn rows(&self, sql: &str) -> Vec<String> {
        let c = rusqlite::Connection::open(&self.daemon.db).unwrap();
        let mut s = c.prepare(sql).unwrap();
        s.query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }
}

fn args(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The line of `name` (the first one) split into its return code and the rest.
fn result<'a>(lines: &'a [String], name: &str) -> (i64, &'a str) {
    let line = lines
        .iter()
        .find(|l| l.split(' ').next() == Some(name))
        .unwrap_or_else(|| panic!("no {name} line in {lines:#?}"));
    let rest = &line[name.len() + 1..];
    let (rc, tail) = rest.split_once(' ').unwrap_or((rest, ""));
    (rc.parse().unwrap(), tail)
}

fn row_lines(lines: &[String]) -> Vec<&str> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("row "))
        .collect()
}

const LOGIN: i64 = 1_700_000_000_000_000;
/// After 2106: beyond 32-bit unsigned seconds.
const LATE: i64 = 5_000_000_000_000_000;
const BOOT: i64 = 1_699_999_000_000_000;

#[test]
#[ignore = "needs root: writes through wtmpdbd are for uid 0"]
fn the_c_library_writes_and_reads_through_the_real_daemon() {
    support::require_root();
    let Some(s) = setup() else { return };
    let lines = s.run(
        &[],
        "varlink",
        &args(&[
            // A row from 2001, which the rotation at the end moves (not the newest row: that
            // one always stays, so that no ID is handed out twice).
            "login:3:old:1000000000000000:tty1:NULL:NULL",
            &format!("login:3:alice:{LOGIN}:/dev/pts/5:192.0.2.5:sshd"),
            // Stored without /dev/ (as the PAM modules store it), found either way.
            "get_id:/dev/pts/5",
            &format!("logout:@:{}", LOGIN + 60_000_000),
            &format!("login:3:bob:{LATE}:pts/6:NULL:sshd"),
            &format!("login:1:reboot:{BOOT}:~:6.1.0-test:NULL"),
            "boottime",
            "get_id:pts/404",
            "read_all",
            "read_all_stop",
            // Rows older than 20 years.
            "rotate:7300",
        ]),
    );
    let logins: Vec<i64> = lines
        .iter()
        .filter(|l| l.starts_with("login "))
        .map(|l| l.split(' ').nth(1).unwrap().parse().unwrap())
        .collect();
    let (old, alice) = (logins[0], logins[1]);
    assert!(old > 0 && alice == old + 1, "{lines:#?}");
    assert!(alice > 0, "{lines:#?}");
    assert_eq!(result(&lines, "get_id"), (alice, "-"), "{lines:#?}");
    assert_eq!(result(&lines, "logout"), (0, "-"));
    assert_eq!(result(&lines, "boottime"), (BOOT, "-"));
    // No open session on pts/404: -ENOENT and a message.
    let missing = lines
        .iter()
        .rev()
        .find(|l| l.starts_with("get_id "))
        .unwrap();
    assert!(
        missing.starts_with("get_id -2 Open entry for tty 'pts/404' not found"),
        "{missing}"
    );
    // read_all: every row, newest login first, NULL for SQL NULL; the stopped read -4.
    let rows = row_lines(&lines);
    let bob = format!("{}|3|bob|{LATE}|NULL|pts/6|NULL|sshd", alice + 1);
    let alice_row = format!(
        "{alice}|3|alice|{LOGIN}|{}|pts/5|192.0.2.5|sshd",
        LOGIN + 60_000_000
    );
    let boot = format!("{}|1|reboot|{BOOT}|NULL|~|6.1.0-test|NULL", alice + 2);
    let old_row = format!("{old}|3|old|1000000000000000|NULL|tty1|NULL|NULL");
    assert_eq!(rows[..4], [&bob, &alice_row, &boot, &old_row], "{lines:#?}");
    assert_eq!(rows[4], bob, "read_all_stop: the first row");
    assert_eq!(rows.len(), 5, "{lines:#?}");
    assert!(lines.contains(&"read_all 0 -".to_string()), "{lines:#?}");
    assert!(
        lines.contains(&"read_all_stop -4 SQL error: query aborted".to_string()),
        "{lines:#?}"
    );
    // rotate: the row from 2001 moved into an archive beside the daemon's database.
    let rotate = lines.iter().find(|l| l.starts_with("rotate ")).unwrap();
    let f: Vec<&str> = rotate.split(' ').collect();
    assert_eq!(f[..3], ["rotate", "0", "1"], "{rotate}");
    let archive = Path::new(f[3]);
    assert_eq!(archive.parent(), s.daemon.db.parent(), "{rotate}");
    let moved: String = rusqlite::Connection::open(archive)
        .unwrap()
        .query_row("SELECT group_concat(User) FROM wtmp", [], |r| r.get(0))
        .unwrap();
    assert_eq!(moved, "old");
    // Everything is in the daemon's database (and "varlink" made no file of that name).
    assert_eq!(
        s.rows("SELECT User FROM wtmp ORDER BY ID"),
        ["alice", "bob", "reboot"]
    );
    assert!(!Path::new("varlink").exists());

    // NULL: the daemon answers, so it takes the calls. The C program runs in a mount
    // namespace whose /var is an empty directory, so a call that went to the system
    // database instead would leave its file there.
    if support::tool("unshare").is_some() {
        let var = s.dir.path().join("var");
        std::fs::create_dir(&var).unwrap();
        let wrap = support::in_a_namespace_with_var(&var);
        let wrap: Vec<&str> = wrap.iter().map(String::as_str).collect();
        let lines = s.run(
            &wrap,
            "-",
            &args(&[
                &format!("login:3:carol:{}:pts/7:NULL:login", LOGIN + 1),
                "get_id:pts/7",
                &format!("logout:@:{}", LOGIN + 2),
                "boottime",
                "logwtmpdb:pts/8:dave:192.0.2.8:sshd",
                "logwtmpdb:pts/8::NULL:NULL",
            ]),
        );
        let (carol, _) = result(&lines, "login");
        assert!(carol > 0, "{lines:#?}");
        assert_eq!(result(&lines, "get_id"), (carol, "-"));
        assert_eq!(result(&lines, "logout"), (0, "-"));
        assert_eq!(result(&lines, "boottime"), (BOOT, "-"));
        assert!(
            lines
                .iter()
                .filter(|l| l.starts_with("logwtmpdb "))
                .all(|l| !l.contains(" -1") && l.ends_with(" -")),
            "{lines:#?}"
        );
        assert_eq!(
            s.rows("SELECT User FROM wtmp WHERE Logout IS NOT NULL AND User IN ('carol', 'dave') ORDER BY ID"),
            ["carol", "dave"]
        );
        let stray: Vec<_> = walk(Path::new(&var));
        assert!(
            stray.is_empty(),
            "NULL wrote the system database: {stray:?}"
        );
    }
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// As a user other than root: every write is the daemon's refusal (-EIO with its message),
/// with "varlink" and with NULL, and every read works, although the database file is
/// root's and 0600. As root the program runs as nobody; otherwise as this user (the daemon
/// then runs as this user too, and its writes are refused all the same).
#[test]
fn an_unprivileged_caller_reads_through_the_daemon_and_may_not_write() {
    let Some(s) = setup() else { return };
    let wrap: Vec<&str> = if support::is_root() {
        std::iter::once("setpriv")
            .chain(NOBODY.iter().copied())
            .collect()
    } else {
        Vec::new()
    };
    // Rows to read, written into the daemon's file directly, as a foreign writer would.
    {
        let c = rusqlite::Connection::open(&s.daemon.db).unwrap();
        c.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS wtmp(ID INTEGER PRIMARY KEY, Type INTEGER,
               User TEXT NOT NULL, Login INTEGER, Logout INTEGER, TTY TEXT, RemoteHost TEXT,
               Service TEXT) STRICT;
             INSERT INTO wtmp (Type, User, Login, Logout, TTY, RemoteHost, Service) VALUES
               (1, 'reboot', {BOOT}, NULL, '~', '6.1.0-test', NULL),
               (3, 'erin', {LOGIN}, NULL, 'pts/9', '192.0.2.9', 'sshd');"
        ))
        .unwrap();
    }
    let erin: i64 = s.rows("SELECT CAST(ID AS TEXT) FROM wtmp WHERE User = 'erin'")[0]
        .parse()
        .unwrap();
    if support::is_root() {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(&s.daemon.db).unwrap();
        assert_eq!((m.uid(), m.mode() & 0o777), (0, 0o600));
    }
    for db in ["varlink", "-"] {
        let lines = s.run(
            &wrap,
            db,
            &args(&[
                &format!("login:3:mallory:{LOGIN}:pts/1:NULL:NULL"),
                &format!("logout:{erin}:{LOGIN}"),
                "rotate:0",
                "logwtmpdb:pts/1:mallory:NULL:NULL",
                "get_id:pts/9",
                "boottime",
                "read_all",
            ]),
        );
        for call in ["login", "logout", "logwtmpdb"] {
            let (rc, msg) = result(&lines, call);
            assert_eq!(rc, -5, "{db}: {call} must be refused with -EIO: {lines:#?}");
            assert!(msg.contains("PermissionDenied"), "{db}: {call}: {msg}");
        }
        let rotate = lines.iter().find(|l| l.starts_with("rotate ")).unwrap();
        assert!(rotate.starts_with("rotate -5 0 - "), "{db}: {rotate}");
        assert_eq!(result(&lines, "get_id"), (erin, "-"), "{db}: {lines:#?}");
        assert_eq!(result(&lines, "boottime"), (BOOT, "-"), "{db}");
        assert_eq!(result(&lines, "read_all"), (0, "-"), "{db}");
        assert_eq!(
            row_lines(&lines),
            [
                format!("{erin}|3|erin|{LOGIN}|NULL|pts/9|192.0.2.9|sshd"),
                format!("{}|1|reboot|{BOOT}|NULL|~|6.1.0-test|NULL", erin - 1),
            ],
            "{db}"
        );
    }
    // Nothing is remembered between calls of one process: NULL without a daemon (the
    // socket's name changed to one nothing listens on) used the file, and NULL uses the
    // daemon again at the next call once it answers; "varlink" does not stick either: a file
    // named after it is that file.
    let other = s.dir.path().join("other.db");
    {
        let c = rusqlite::Connection::open(&other).unwrap();
        c.execute_batch(
            "CREATE TABLE wtmp(ID INTEGER PRIMARY KEY, Type INTEGER, User TEXT NOT NULL,
               Login INTEGER, Logout INTEGER, TTY TEXT, RemoteHost TEXT, Service TEXT) STRICT;
             INSERT INTO wtmp VALUES (1, 1, 'reboot', 42, NULL, '~', NULL, NULL);",
        )
        .unwrap();
    }
    support::chmod(&other, 0o644);
    let none = s.dir.path().join("no-daemon/socket");
    let lines = s.run(
        &wrap,
        "-",
        &args(&[
            &format!("socket={}", none.display()),
            "boottime",
            &format!("socket={}", s.daemon.socket.display()),
            "boottime",
            "db=varlink",
            "boottime",
            &format!("db={}", other.display()),
            "boottime",
            "db=varlink",
            "boottime",
        ]),
    );
    let times: Vec<&str> = lines.iter().map(|l| l.split(' ').nth(1).unwrap()).collect();
    let boot = BOOT.to_string();
    assert_ne!(
        times[0], boot,
        "NULL without a daemon went to the daemon: {lines:#?}"
    );
    assert_eq!(times[1..], [&boot, &boot, "42", &boot], "{lines:#?}");

    // Nothing was written.
    assert_eq!(
        s.rows("SELECT User FROM wtmp ORDER BY ID"),
        ["reboot", "erin"]
    );
    assert_eq!(
        s.rows("SELECT CAST(count(*) AS TEXT) FROM wtmp WHERE Logout IS NOT NULL"),
        ["0"]
    );
}

/// Regression (issue 16, defect 3): a daemon that accepts the connection and never answers
/// (here stopped with SIGSTOP: the kernel still queues connections on its socket) was
/// reported as -EAGAIN, "Resource temporarily unavailable": the code that means "kept in
/// the spool, recorded later", although nothing was kept. It is now a timeout, -ETIMEDOUT,
/// within the call's bound. (The daemon refuses nothing here: it never reads the call, so
/// no root is needed.)
#[test]
fn a_daemon_that_does_not_answer_is_a_timeout_not_a_spooled_login() {
    let Some(s) = setup() else { return };
    let pid = s.daemon.pid();
    // SAFETY: a signal to our own child, which is still ours to wait for (not yet reaped).
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let t = std::time::Instant::now();
    let lines = s.run(
        &[],
        "varlink",
        &args(&[&format!("login:3:alice:{LOGIN}:pts/5:192.0.2.5:sshd")]),
    );
    let took = t.elapsed();
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    let (rc, message) = result(&lines, "login");
    assert_eq!(
        rc,
        -i64::from(libc::ETIMEDOUT),
        "a daemon that did not answer: wtmpdb_login returned {rc} ({message:?}) after {took:?}"
    );
    assert!(
        !message.contains("Resource temporarily unavailable"),
        "{message:?}"
    );
    assert!(
        took < std::time::Duration::from_secs(10),
        "wtmpdb_login took {took:?}"
    );
}

/// Fills the listen queue of the Unix socket `socket` (whose listener does not accept):
/// connects until the kernel says it is full, closing each connection, which stays queued
/// until the listener accepts it, as any user who may connect can. Returns how many.
fn fill_listen_queue(socket: &Path) -> usize {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: sockaddr_un is plain data; all-zero is a valid (unnamed) address.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let path = socket.as_os_str().as_bytes();
    assert!(path.len() < addr.sun_path.len());
    for (dst, &src) in addr.sun_path.iter_mut().zip(path) {
        *dst = src as libc::c_char;
    }
    for n in 0..100_000 {
        // SAFETY: plain system call; the result is checked.
        let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0) };
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        // SAFETY: `addr` is an initialised sockaddr_un and the length is its size.
        let rc = unsafe {
            libc::connect(
                fd,
                (&addr as *const libc::sockaddr_un).cast(),
                size_of::<libc::sockaddr_un>() as libc::socklen_t,
            )
        };
        let err = std::io::Error::last_os_error();
        // SAFETY: `fd` is ours and closed once.
        unsafe { libc::close(fd) };
        if rc != 0 {
            assert_eq!(
                err.raw_os_error(),
                Some(libc::EAGAIN),
                "connect #{n}: {err}"
            );
            return n;
        }
    }
    panic!("the listen queue of {} never filled", socket.display());
}

/// Regression: the connect to the daemon was not bounded, only the exchanges after it. A
/// daemon that does not answer (stopped, or stuck) and whose listen queue is full (any user
/// may connect, and a closed connection stays queued until accepted) held `wtmpdb_login` in
/// `connect` for good, and every login of a PAM stack or of sshd with it. The connect is
/// bounded by the call's timeout too: -ETIMEDOUT, as for a daemon that takes the connection
/// and does not answer. (A watchdog kills the daemon after 20 s, which ends the connect.)
#[test]
fn a_daemon_with_a_full_listen_queue_is_a_timeout_not_a_hang() {
    let Some(s) = setup() else { return };
    let pid = s.daemon.pid();
    // SAFETY: a signal to our own child, which is still ours to wait for (not yet reaped).
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let queued = fill_listen_queue(&s.daemon.socket);
    let (done, watch) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if watch
            .recv_timeout(std::time::Duration::from_secs(20))
            .is_err()
        {
            // SAFETY: as above; the daemon is reaped only when the test ends.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    });
    let t = std::time::Instant::now();
    let lines = s.run(
        &[],
        "varlink",
        &args(&[&format!("login:3:alice:{LOGIN}:pts/5:192.0.2.5:sshd")]),
    );
    let took = t.elapsed();
    let _ = done.send(());
    watchdog.join().unwrap();
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    let (rc, message) = result(&lines, "login");
    assert!(
        took < std::time::Duration::from_secs(10),
        "wtmpdb_login took {took:?} with {queued} connections queued (returned {rc}, \
         {message:?})"
    );
    assert_eq!(
        rc,
        -i64::from(libc::ETIMEDOUT),
        "wtmpdb_login returned {rc} ({message:?}) after {took:?}"
    );
}
