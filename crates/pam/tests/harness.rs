//! Drives the freshly built pam_wtmpdb.so through the real libpam, without root: service files
//! live in a temporary directory read with pam_start_confdir (Linux-PAM >= 1.4), the module is
//! named by absolute path, and every database is a temporary file. User "root" is used
//! because it exists in every passwd; the module only looks it up.
//!
//! Syslog output is not asserted here (that needs /dev/log, i.e. root): see tests/e2e/.

use std::ffi::{CStr, CString, c_char, c_int};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pam_wtmpdb::ffi::app::{
    PamConv, PamMessage, PamResponse, no_conversation, pam_authenticate, pam_close_session,
    pam_end, pam_open_session, pam_putenv, pam_set_item, pam_setcred, pam_start_confdir,
    pam_strerror,
};
use pam_wtmpdb::ffi::{
    PAM_PERM_DENIED, PAM_RHOST, PAM_SUCCESS, PAM_SYSTEM_ERR, PAM_TTY, PAM_USER_UNKNOWN,
    PAM_XDISPLAY, PamHandle,
};

#[path = "../../../tests/support/mod.rs"]
mod support;

// The direct rusqlite calls below need SQLite loaded (see wtmpdb::sqlite).
wtmpdb::load_sqlite_at_start!();

/// The documented bound plus slack for a loaded 2-core CI machine.
const BOUND: Duration = Duration::from_millis(1000 + 1500);

/// The module built for this test run. Cargo builds the cdylib into deps/ for tests and only
/// copies it up to the profile directory on `cargo build`, so the newest of both is taken.
fn module() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    [deps, deps.parent().unwrap()]
        .iter()
        .map(|d| d.join("libpam_wtmpdb.so"))
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .max()
        .map(|(_, p)| p)
        .unwrap_or_else(|| panic!("libpam_wtmpdb.so not found next to {}", exe.display()))
}

/// A service directory for pam_start_confdir with one service "svc".
struct Stack {
    dir: tempfile::TempDir,
}

impl Stack {
    /// `lines` uses MODULE for the module's path.
    fn new(lines: &str) -> Stack {
        let dir = tempfile::tempdir().unwrap();
        let text = lines.replace("MODULE", module().to_str().unwrap());
        std::fs::write(dir.path().join("svc"), text).unwrap();
        Stack { dir }
    }

    /// The module alone as `required`: the stack returns the module's own error code.
    fn required(args: &str) -> Stack {
        Stack::new(&format!("session required MODULE {args}\n"))
    }

    fn start(&self, user: &str) -> Handle {
        self.start_with(
            user,
            &PamConv {
                conv: Some(no_conversation),
                appdata_ptr: std::ptr::null_mut(),
            },
        )
    }

    /// With the application's conversation `conv` (libpam copies it).
    fn start_with(&self, user: &str, conv: &PamConv) -> Handle {
        let service = CString::new("svc").unwrap();
        let user = CString::new(user).unwrap();
        let confdir = CString::new(self.dir.path().to_str().unwrap()).unwrap();
        let mut h: *mut PamHandle = std::ptr::null_mut();
        // SAFETY: valid NUL-terminated strings and out pointer; libpam copies the conversation.
        let rc = unsafe {
            pam_start_confdir(
                service.as_ptr(),
                user.as_ptr(),
                conv,
                confdir.as_ptr(),
                &mut h,
            )
        };
        assert_eq!(rc, PAM_SUCCESS, "pam_start_confdir");
        assert!(!h.is_null());
        Handle {
            h,
            last: PAM_SUCCESS,
        }
    }
}

struct Handle {
    h: *mut PamHandle,
    last: c_int,
}

// SAFETY: a PAM handle may be used from any thread as long as one thread at a time uses it;
// each Handle is owned by exactly one thread.
unsafe impl Send for Handle {}

impl Handle {
    fn set(&mut self, item: c_int, value: &[u8]) -> &mut Self {
        let v = CString::new(value).unwrap();
        // SAFETY: valid handle; libpam copies string items.
        let rc = unsafe { pam_set_item(self.h, item, v.as_ptr().cast()) };
        assert_eq!(rc, PAM_SUCCESS);
        self
    }

    fn putenv(&mut self, kv: &str) -> &mut Self {
        let v = CString::new(kv).unwrap();
        // SAFETY: valid handle; libpam copies the string.
        let rc = unsafe { pam_putenv(self.h, v.as_ptr()) };
        assert_eq!(rc, PAM_SUCCESS);
        self
    }

    fn open(&mut self) -> c_int {
        // SAFETY: valid handle.
        self.last = unsafe { pam_open_session(self.h, 0) };
        self.last
    }

    fn authenticate(&mut self, flags: c_int) -> c_int {
        // SAFETY: valid handle.
        self.last = unsafe { pam_authenticate(self.h, flags) };
        self.last
    }

    fn setcred(&mut self) -> c_int {
        // SAFETY: valid handle.
        self.last = unsafe { pam_setcred(self.h, 0) };
        self.last
    }

    fn open_flags(&mut self, flags: c_int) -> c_int {
        // SAFETY: valid handle.
        self.last = unsafe { pam_open_session(self.h, flags) };
        self.last
    }

    fn close(&mut self) -> c_int {
        // SAFETY: valid handle.
        self.last = unsafe { pam_close_session(self.h, 0) };
        self.last
    }

    fn strerror(&self, rc: c_int) -> String {
        // SAFETY: valid handle; pam_strerror returns a static string.
        let p: *const c_char = unsafe { pam_strerror(self.h, rc) };
        // SAFETY: non-null static NUL-terminated string.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the handle came from pam_start_confdir and is ended exactly once.
        unsafe { pam_end(self.h, self.last) };
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Row {
    id: i64,
    user: String,
    login: i64,
    logout: Option<i64>,
    tty: Option<String>,
    host: Option<String>,
    service: Option<String>,
}

fn rows(db: &Path) -> Vec<Row> {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut s = c
        .prepare("SELECT ID, User, Login, Logout, TTY, RemoteHost, Service FROM wtmp ORDER BY ID")
        .unwrap();
    s.query_map([], |r| {
        Ok(Row {
            id: r.get(0)?,
            user: r.get(1)?,
            login: r.get(2)?,
            logout: r.get(3)?,
            tty: r.get(4)?,
            host: r.get(5)?,
            service: r.get(6)?,
        })
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

fn db_arg(db: &Path) -> String {
    format!("database={}", db.display())
}

#[test]
fn open_close_writes_one_row_with_login_and_logout() {
    let tmp = tempfile::tempdir().unwrap();
    // A missing directory chain is created.
    let db = tmp.path().join("a/b/wtmp.db");
    let stack = Stack::required(&format!("debug {}", db_arg(&db)));
    let before = wtmpdb::time::now();
    let mut h = stack.start("root");
    h.set(PAM_TTY, b"/dev/pts/9").set(PAM_RHOST, b"192.0.2.7");
    assert_eq!(h.open(), PAM_SUCCESS);
    assert_eq!(h.close(), PAM_SUCCESS);
    drop(h);
    let r = rows(&db);
    assert_eq!(r.len(), 1);
    let r = &r[0];
    assert_eq!(r.user, "root");
    assert_eq!(r.tty.as_deref(), Some("pts/9"));
    assert_eq!(r.host.as_deref(), Some("192.0.2.7"));
    assert_eq!(r.service.as_deref(), Some("svc"));
    assert!(r.login >= before);
    assert!(r.logout.unwrap() >= r.login);
}

#[test]
fn items_xdisplay_vtnr_and_unset() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("w.db");
    let stack = Stack::required(&db_arg(&db));
    let mut h = stack.start("root");
    h.set(PAM_TTY, b":0")
        .set(PAM_XDISPLAY, b":0")
        .putenv("XDG_VTNR=3");
    assert_eq!(h.open(), PAM_SUCCESS);
    drop(h);
    let mut h = stack.start("root");
    assert_eq!(h.open(), PAM_SUCCESS);
    drop(h);
    let r = rows(&db);
    assert_eq!(r[0].tty.as_deref(), Some("tty3"));
    assert_eq!(r[0].host.as_deref(), Some(":0"));
    assert_eq!(r[1].tty.as_deref(), Some(""));
    assert_eq!(r[1].host.as_deref(), Some(""));
}

#[test]
fn non_utf8_and_long_items_are_stored_by_the_rule() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("w.db");
    let stack = Stack::required(&db_arg(&db));
    let mut h = stack.start("root");
    let long_tty = vec![b't'; 5000];
    h.set(PAM_TTY, &long_tty).set(PAM_RHOST, b"h\xffst\x1b[2J");
    assert_eq!(h.open(), PAM_SUCCESS);
    assert_eq!(h.close(), PAM_SUCCESS);
    drop(h);
    let r = rows(&db);
    assert_eq!(r[0].host.as_deref(), Some("h\\xffst\x1b[2J"));
    assert_eq!(
        r[0].tty.as_deref().map(str::len),
        Some(wtmpdb::session::MAX_ITEM_BYTES)
    );
    assert!(r[0].logout.is_some(), "close matched the bounded items");
}

#[test]
fn skip_if_returns_ignore() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("w.db");
    // PAM_IGNORE lets pam_permit decide; any other code of ours is `bad`.
    let stack = Stack::new(&format!(
        "session [ignore=ignore default=bad] MODULE skip_if=sshd,svc,login {}\n\
         session required pam_permit.so\n",
        db_arg(&db)
    ));
    let mut h = stack.start("root");
    assert_eq!(h.open(), PAM_SUCCESS);
    assert_eq!(h.close(), PAM_SUCCESS);
    drop(h);
    assert!(!db.exists());
    // As the only module, upstream's observed result: the stack is denied.
    let stack = Stack::required(&format!("skip_if=svc {}", db_arg(&db)));
    let mut h = stack.start("root");
    assert_eq!(h.open(), PAM_PERM_DENIED);
    // Near misses are not skipped.
    let stack = Stack::required(&format!("skip_if=sv,svc2 {}", db_arg(&db)));
    let mut h = stack.start("root");
    assert_eq!(h.open(), PAM_SUCCESS);
    drop(h);
    assert_eq!(rows(&db).len(), 1);
}

#[test]
fn unknown_user_is_user_unknown() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("w.db");
    let stack = Stack::required(&db_arg(&db));
    let mut h = stack.start("no-such-user-wtmpdb-test");
    let rc = h.open();
    assert_eq!(rc, PAM_USER_UNKNOWN, "{}", h.strerror(rc));
    drop(h);
    assert!(!db.exists() || rows(&db).is_empty());
}

#[test]
fn unknown_option_is_not_fatal() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("w.db");
    let stack = Stack::required(&format!("bogus_opt utmp=maybe {} silent", db_arg(&db)));
    let mut h = stack.start("root");
    assert_eq!(h.open(), PAM_SUCCESS);
    assert_eq!(h.close(), PAM_SUCCESS);
    drop(h);
    assert!(rows(&db)[0].logout.is_some());
}

#[test]
fn two_handles_at_once_write_to_their_own_databases() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a.db"), tmp.path().join("b.db"));
    let sa = Stack::required(&db_arg(&a));
    let sb = Stack::required(&db_arg(&b));
    let mut ha = sa.start("root");
    ha.set(PAM_TTY, b"pts/1");
    let mut hb = sb.start("root");
    hb.set(PAM_TTY, b"pts/2");
    assert_eq!(ha.open(), PAM_SUCCESS);
    assert_eq!(hb.open(), PAM_SUCCESS);
    // Ending A first is what left upstream's B with a dangling database path.
    assert_eq!(ha.close(), PAM_SUCCESS);
    drop(ha);
    let mut hb2 = sb.start("root");
    hb2.set(PAM_TTY, b"pts/3");
    assert_eq!(hb2.open(), PAM_SUCCESS);
    assert_eq!(hb.close(), PAM_SUCCESS);
    assert_eq!(hb2.close(), PAM_SUCCESS);
    drop((hb, hb2));
    let (ra, rb) = (rows(&a), rows(&b));
    assert_eq!(ra.len(), 1);
    assert_eq!(ra[0].tty.as_deref(), Some("pts/1"));
    assert_eq!(rb.len(), 2);
    assert_eq!(rb[0].tty.as_deref(), Some("pts/2"));
    assert_eq!(rb[1].tty.as_deref(), Some("pts/3"));
    assert!(ra.iter().chain(&rb).all(|r| r.logout.is_some()));
}

#[test]
fn close_in_a_new_handle_uses_the_fallback() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("w.db");
    let stack = Stack::required(&db_arg(&db));
    let open = |tty: &[u8]| {
        let mut h = stack.start("root");
        h.set(PAM_TTY, tty);
        assert_eq!(h.open(), PAM_SUCCESS);
        // Ended without close: the ID in the handle is gone.
    };
    open(b"pts/4");
    open(b"pts/5");
    let close = |tty: &[u8]| {
        let mut h = stack.start("root");
        h.set(PAM_TTY, tty);
        h.close()
    };
    assert_eq!(close(b"pts/5"), PAM_SUCCESS);
    let r = rows(&db);
    assert!(r[0].logout.is_none(), "the other tty's session stays open");
    assert!(r[1].logout.is_some());
    // Nothing left to close on pts/5: harmless, nothing changes.
    let logout = r[1].logout;
    assert_eq!(close(b"pts/5"), PAM_PERM_DENIED);
    assert_eq!(rows(&db)[1].logout, logout);
    // Two open sessions on one tty are ambiguous: none is closed.
    open(b"pts/4");
    assert_eq!(close(b"pts/4"), PAM_PERM_DENIED);
    assert!(rows(&db).iter().filter(|r| r.logout.is_none()).count() == 2);
}

#[test]
fn closing_twice_is_harmless() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("w.db");
    let stack = Stack::required(&db_arg(&db));
    let mut h = stack.start("root");
    assert_eq!(h.open(), PAM_SUCCESS);
    assert_eq!(h.close(), PAM_SUCCESS);
    let first = rows(&db)[0].logout;
    assert!(first.is_some());
    assert_eq!(h.close(), PAM_SUCCESS);
    drop(h);
    assert_eq!(rows(&db)[0].logout, first);
}

#[test]
fn concurrent_threads_each_with_its_own_handle() {
    const THREADS: usize = 64;
    const ITERATIONS: usize = 100;
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("w.db");
    let stack = Stack::required(&db_arg(&db));
    let failures = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (stack, failures) = (&stack, &failures);
            s.spawn(move || {
                for i in 0..ITERATIONS {
                    let mut h = stack.start("root");
                    h.set(PAM_TTY, format!("pts/{t}").as_bytes())
                        .set(PAM_RHOST, format!("{t}.{i}").as_bytes());
                    let (o, c) = (h.open(), h.close());
                    if o != PAM_SUCCESS || c != PAM_SUCCESS {
                        failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        eprintln!("thread {t} iteration {i}: open {o} close {c}");
                    }
                }
            });
        }
    });
    assert_eq!(failures.into_inner(), 0);
    // On a loaded machine some calls wait out their turn and go to the spool; what is still
    // there after the last call is merged as a reader with write access merges it.
    let waiting = wtmpdb::session::spool::waiting(&db).unwrap_or(0);
    wtmpdb::session::spool::merge_before_read(&db, &wtmpdb::journal::Events::off());
    let r = rows(&db);
    assert_eq!(r.len(), THREADS * ITERATIONS, "{waiting} were in the spool");
    let mut hosts: Vec<&str> = r.iter().map(|r| r.host.as_deref().unwrap()).collect();
    hosts.sort();
    hosts.dedup();
    assert_eq!(
        hosts.len(),
        THREADS * ITERATIONS,
        "every session exactly once"
    );
    assert!(r.iter().all(|r| r.logout.is_some()));
    let c = rusqlite::Connection::open(&db).unwrap();
    let check: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

/// Runs a stack that must fail on `db`: alone as `required` it returns the documented error
/// within the bound; as `optional` before pam_permit the session still opens.
fn assert_fails_within_bound(db: &Path) {
    let stack = Stack::required(&db_arg(db));
    let mut h = stack.start("root");
    let t = Instant::now();
    let rc = h.open();
    let took = t.elapsed();
    assert_eq!(rc, PAM_SYSTEM_ERR, "{}", h.strerror(rc));
    assert!(took < BOUND, "open took {took:?}");
    drop(h);
    let stack = Stack::new(&format!(
        "session optional MODULE {}\nsession required pam_permit.so\n",
        db_arg(db)
    ));
    let mut h = stack.start("root");
    let t = Instant::now();
    assert_eq!(h.open(), PAM_SUCCESS);
    assert_eq!(h.close(), PAM_SUCCESS);
    assert!(t.elapsed() < BOUND * 2, "open+close took {:?}", t.elapsed());
}

#[test]
fn fault_unwritable_directory() {
    // /proc/self exists and refuses new files even to root.
    assert_fails_within_bound(Path::new("/proc/self/wtmpdb-test.db"));
    // A directory the caller may not write to: for a user, mode 0555; root writes through
    // permission bits, so for root a read-only mount.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ro");
    std::fs::create_dir(&dir).unwrap();
    let _mount;
    if support::is_root() {
        let Some(m) = support::Tmpfs::mount(&dir, "ro,size=64k") else {
            return;
        };
        _mount = m;
    } else {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    assert_fails_within_bound(&dir.join("w.db"));
}

/// Regression (issue 8, finding 4): `database=` followed a link that another user put in a
/// directory everyone may write, so the module wrote wherever that user pointed it.
#[test]
#[ignore = "needs root: nobody plants the link"]
fn fault_database_link_planted_by_another_user() {
    support::require_root();
    use std::os::unix::fs::PermissionsExt;
    let shared = tempfile::tempdir().unwrap();
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let victim = elsewhere.path().join("victim.db");
    let link = shared.path().join("w.db");
    let planted = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "ln",
            "-s",
        ])
        .args([&victim, &link])
        .status()
        .unwrap();
    assert!(planted.success());
    assert_fails_within_bound(&link);
    assert!(!victim.exists(), "the module wrote through the link");
}

/// A file that is not a database, with no spool the module may use (its name is taken by
/// a file): the login fails at once, within the bound, as it always did.
#[test]
fn fault_corrupt_file_without_a_spool() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("w.db");
    std::fs::write(&db, vec![0x5a; 8192]).unwrap();
    std::fs::write(tmp.path().join("w.db-spool"), b"not a directory").unwrap();
    assert_fails_within_bound(&db);
}

/// A file that is not a database (a page of zeros where its header was: what logrotate's
/// `copytruncate` under a writer left): the module's logins and logouts used to fail, each
/// record lost. Now they go to the spool within the bound, the file is left as it is, and
/// once the admin moves it aside the next write starts a new file and merges them, logout
/// included.
#[test]
fn a_corrupt_file_spools_and_the_next_write_after_it_is_moved_aside_merges() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("w.db");
    let stack = Stack::required(&db_arg(&db));
    let mut h = stack.start("root");
    assert_eq!(h.open(), PAM_SUCCESS);
    assert_eq!(h.close(), PAM_SUCCESS);
    drop(h);
    // Its first page zeroed.
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
        f.write_all_at(&[0u8; 4096], 0).unwrap();
    }
    let bad = std::fs::read(&db).unwrap();
    let spool = tmp.path().canonicalize().unwrap().join("w.db-spool");
    let mut during = stack.start("root");
    during.set(PAM_TTY, b"pts/7");
    let mut across = stack.start("root");
    across.set(PAM_TTY, b"pts/8");
    let t = Instant::now();
    assert_eq!(during.open(), PAM_SUCCESS);
    assert_eq!(across.open(), PAM_SUCCESS);
    assert_eq!(during.close(), PAM_SUCCESS);
    assert!(t.elapsed() < BOUND, "three writes took {:?}", t.elapsed());
    assert_eq!(
        std::fs::read_dir(&spool).unwrap().count(),
        3,
        "two logins and a logout"
    );
    assert_eq!(
        std::fs::read(&db).unwrap(),
        bad,
        "the file is left as it is"
    );
    // The admin moves it aside (with its side files): the next write merges the spool.
    for suffix in ["", "-wal", "-shm"] {
        let from = tmp.path().join(format!("w.db{suffix}"));
        if from.exists() {
            std::fs::rename(&from, tmp.path().join(format!("bad.db{suffix}"))).unwrap();
        }
    }
    assert_eq!(across.close(), PAM_SUCCESS);
    drop((during, across));
    let r = rows(&db);
    assert_eq!(r.len(), 2, "nothing lost, nothing twice: {r:?}");
    assert!(r.iter().all(|r| r.logout.is_some()), "both closed: {r:?}");
    assert_eq!(left_in_spool(&spool), 0);
}

/// How many names the spool directory `spool` holds besides its reserve (which the merge
/// fills: see `wtmpdb::session::spool::reserve`).
fn left_in_spool(spool: &Path) -> usize {
    std::fs::read_dir(spool)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name() != wtmpdb::session::spool::reserve::RESERVE_DIR)
        .count()
}

/// Child process mode of this test binary: holds `BEGIN EXCLUSIVE` on the database named in
/// the environment until its stdin closes. A separate process, so the lock is a real POSIX
/// lock as another program would hold it. Not a test by itself: ignored, and its
/// `child_process_` prefix lets scripts/test.sh skip it when it runs the ignored tests.
#[test]
#[ignore = "child-process helper, run by fault_database_locked_by_another_process"]
fn child_process_lock_holder() {
    support::lock_holder_child();
}

use support::hold_lock;

/// A real second process holds `BEGIN EXCLUSIVE` (an admin's sqlite3, a foreign program):
/// logins and logouts do not fail and do not wait out the bound; they go to the spool, a
/// 0700 directory beside the database, and the first write after the lock is gone merges
/// them, logout included, in order. Before the spool the login failed after 1 s with
/// "database is locked" and with `session optional` was lost.
#[test]
fn a_database_locked_by_another_process_spools_and_loses_nothing() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("w.db");
    // Create it (with our schema) first, as a running system would have it.
    let stack = Stack::required(&db_arg(&db));
    let mut h = stack.start("root");
    assert_eq!(h.open(), PAM_SUCCESS);
    drop(h);
    let spool = tmp.path().canonicalize().unwrap().join("w.db-spool");
    let mut holder = hold_lock(&db);
    let mut slowest = Duration::ZERO;
    // One session opened and closed while locked, one opened while locked and closed after.
    let mut during = stack.start("root");
    during.set(PAM_TTY, b"pts/7").set(PAM_RHOST, b"192.0.2.7");
    let mut across = stack.start("root");
    across.set(PAM_TTY, b"pts/8");
    let timed = |f: &mut dyn FnMut() -> c_int, slowest: &mut Duration| {
        let t = Instant::now();
        let rc = f();
        *slowest = (*slowest).max(t.elapsed());
        rc
    };
    assert_eq!(timed(&mut || during.open(), &mut slowest), PAM_SUCCESS);
    assert_eq!(timed(&mut || across.open(), &mut slowest), PAM_SUCCESS);
    assert_eq!(timed(&mut || during.close(), &mut slowest), PAM_SUCCESS);
    assert!(slowest < Duration::from_millis(300), "slowest {slowest:?}");
    assert_eq!(rows(&db).len(), 1, "written while the lock was held");
    let meta = std::fs::metadata(&spool).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    let spooled: Vec<_> = std::fs::read_dir(&spool)
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    assert_eq!(spooled.len(), 3, "two logins and a logout");
    for f in &spooled {
        assert_eq!(f.metadata().unwrap().permissions().mode() & 0o777, 0o600);
    }
    drop(holder.stdin.take());
    assert!(holder.wait().unwrap().success(), "the lock holder failed");
    // Released: the next write merges everything, then closes its own session.
    assert_eq!(across.close(), PAM_SUCCESS);
    drop((during, across));
    let r = rows(&db);
    assert_eq!(r.len(), 3, "nothing lost, nothing twice");
    let of = |tty: &str| r.iter().find(|r| r.tty.as_deref() == Some(tty)).unwrap();
    assert!(
        of("pts/7").logout.is_some(),
        "the spooled logout was merged"
    );
    assert_eq!(of("pts/7").host.as_deref(), Some("192.0.2.7"));
    assert!(of("pts/8").logout.is_some(), "closed through its token");
    assert!(of("pts/7").login < of("pts/8").login);
    assert_eq!(left_in_spool(&spool), 0, "spool emptied");
}

#[test]
fn two_lines_with_different_databases_in_one_stack_close_their_own_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a.db"), tmp.path().join("b.db"));
    let stack = Stack::new(&format!(
        "session required MODULE {}\nsession required MODULE {}\n",
        db_arg(&a),
        db_arg(&b)
    ));
    let mut h = stack.start("root");
    assert_eq!(h.open(), PAM_SUCCESS);
    assert_eq!(h.close(), PAM_SUCCESS);
    drop(h);
    for db in [&a, &b] {
        let r = rows(db);
        assert_eq!(r.len(), 1);
        assert!(r[0].logout.is_some());
    }
}

/// Output of a system tool, or None when it is not installed (which fails the test under
/// `CI=true`): util-linux moved `last` and `utmpdump` between packages over the years, and the
/// records are also checked byte for byte below.
fn tool(cmd: &str, args: &[&Path]) -> Option<String> {
    match Command::new(cmd).args(args).output() {
        Ok(out) => {
            assert!(out.status.success(), "{cmd} {args:?}: {out:?}");
            Some(String::from_utf8_lossy(&out.stdout).into_owned())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            support::missing(&format!("{cmd} is not installed"));
            None
        }
        Err(e) => panic!("{cmd}: {e}"),
    }
}

/// (type, pid, line, user, host) of every record of a glibc utmp/wtmp file.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn records(file: &Path) -> Vec<(i16, i32, String, String, String)> {
    let text = |f: &[c_char]| {
        let b: Vec<u8> = f.iter().map(|&c| c as u8).take_while(|&c| c != 0).collect();
        String::from_utf8(b).unwrap()
    };
    let bytes = std::fs::read(file).unwrap();
    let size = std::mem::size_of::<libc::utmpx>();
    assert_eq!(bytes.len() % size, 0);
    bytes
        .chunks_exact(size)
        .map(|c| {
            // SAFETY: `c` holds size_of::<utmpx>() bytes; utmpx is plain integers and byte
            // arrays, valid for any bit pattern, and read_unaligned needs no alignment.
            let u: libc::utmpx = unsafe { std::ptr::read_unaligned(c.as_ptr().cast()) };
            (
                u.ut_type,
                u.ut_pid,
                text(&u.ut_line),
                text(&u.ut_user),
                text(&u.ut_host),
            )
        })
        .collect()
}

/// Empty utmp and wtmp files (glibc does not create them) and the mirror options naming them.
fn legacy_files(dir: &Path) -> (PathBuf, PathBuf, String) {
    let (utmp, wtmp) = (dir.join("utmp"), dir.join("wtmp"));
    std::fs::write(&utmp, b"").unwrap();
    std::fs::write(&wtmp, b"").unwrap();
    let args = format!(
        "utmp=utmpx utmp_file={} wtmp_file={}",
        utmp.display(),
        wtmp.display()
    );
    (utmp, wtmp, args)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn utmpx_mirror_shows_the_session_to_who_and_last() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("w.db");
    let (utmp, wtmp, mirror) = legacy_files(tmp.path());
    let stack = Stack::required(&format!("{mirror} {} debug", db_arg(&db)));
    let pid = std::process::id() as i32;
    let mut h = stack.start("root");
    h.set(PAM_TTY, b"pts/42").set(PAM_RHOST, b"192.0.2.9");
    assert_eq!(h.open(), PAM_SUCCESS);

    let login = (7, pid, "pts/42".into(), "root".into(), "192.0.2.9".into());
    assert_eq!(records(&utmp), vec![login.clone()]);
    assert_eq!(records(&wtmp), vec![login.clone()]);
    if let Some(who) = tool("who", &[&utmp]) {
        let line = who.lines().find(|l| l.starts_with("root ")).expect(&who);
        assert!(
            line.contains("pts/42") && line.contains("(192.0.2.9)"),
            "{who}"
        );
    }
    if let Some(dump) = tool("utmpdump", &[&utmp]) {
        assert!(
            dump.starts_with(&format!("[7] [{pid:05}] [s/42] [root")),
            "{dump}"
        );
        assert!(
            dump.contains("[pts/42") && dump.contains("[192.0.2.9"),
            "{dump}"
        );
    }

    assert_eq!(h.close(), PAM_SUCCESS);
    drop(h);
    let logout = (8, pid, "pts/42".to_string(), String::new(), String::new());
    assert_eq!(records(&utmp), vec![logout.clone()]);
    assert_eq!(records(&wtmp), vec![login, logout]);
    if let Some(dump) = tool("utmpdump", &[&utmp]) {
        assert!(dump.starts_with("[8] "), "{dump}");
    }
    // last shows a logout in the current second as "still running".
    std::thread::sleep(Duration::from_millis(1100));
    if let Some(last) = tool("last", &[Path::new("-f"), &wtmp]) {
        let line = last.lines().find(|l| l.starts_with("root ")).expect(&last);
        assert!(
            line.contains("pts/42") && line.contains("192.0.2.9"),
            "{last}"
        );
        assert!(!line.contains("still logged in"), "{last}");
        assert!(line.contains(" - "), "a logout time: {last}");
    }
    if let Some(who) = tool("who", &[&utmp]) {
        assert!(!who.contains("root"), "{who}");
    }
    let r = rows(&db);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].tty.as_deref(), Some("pts/42"));
    assert!(r[0].logout.unwrap() >= r[0].login);
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn utmpx_mirror_without_tty_uses_service_and_pid() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("w.db");
    let (utmp, wtmp, mirror) = legacy_files(tmp.path());
    let stack = Stack::required(&format!("{mirror} {}", db_arg(&db)));
    let mut h = stack.start("root");
    assert_eq!(h.open(), PAM_SUCCESS);
    assert_eq!(h.close(), PAM_SUCCESS);
    drop(h);
    let line = format!("svc:{}", std::process::id());
    assert_eq!(records(&utmp)[0].0, 8);
    let w = records(&wtmp);
    assert_eq!(w.len(), 2);
    assert!(w.iter().all(|r| r.2 == line), "{w:?}");
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn database_failure_mirrors_no_login_but_the_logout() {
    let tmp = tempfile::tempdir().unwrap();
    let (utmp, wtmp, mirror) = legacy_files(tmp.path());
    let stack = Stack::new(&format!(
        "session optional MODULE {mirror} database=/proc/self/wtmpdb-test.db\n\
         session required pam_permit.so\n"
    ));
    let mut h = stack.start("root");
    h.set(PAM_TTY, b"pts/42");
    assert_eq!(h.open(), PAM_SUCCESS, "optional: the login goes on");
    assert!(records(&utmp).is_empty(), "no row, so no legacy login");
    assert!(records(&wtmp).is_empty());
    assert_eq!(h.close(), PAM_SUCCESS);
    // The logout reaches wtmp; utmp has no entry of ours to replace.
    assert!(records(&utmp).is_empty());
    assert_eq!(records(&wtmp).len(), 1);
    assert_eq!(records(&wtmp)[0].0, 8);
}

#[test]
fn mirror_failures_never_fail_the_session() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("w.db");
    let missing = tmp.path().join("missing");
    let stacks = [
        format!(
            "utmp=utmps utmpd_socket={0}/utmpd wtmpd_socket={0}/wtmpd",
            missing.display()
        ),
        format!(
            "utmp=utmpx utmp_file={0}/utmp wtmp_file={0}/wtmp",
            missing.display()
        ),
    ];
    for (i, mirror) in stacks.iter().enumerate() {
        let stack = Stack::required(&format!("{mirror} {} debug", db_arg(&db)));
        let mut h = stack.start("root");
        h.set(PAM_TTY, b"pts/42").set(PAM_RHOST, b"192.0.2.9");
        let t = Instant::now();
        assert_eq!(h.open(), PAM_SUCCESS, "{mirror}");
        assert_eq!(h.close(), PAM_SUCCESS, "{mirror}");
        assert!(t.elapsed() < BOUND, "{mirror}: {:?}", t.elapsed());
        drop(h);
        let r = rows(&db);
        assert_eq!(r.len(), i + 1);
        assert_eq!(r[i].host.as_deref(), Some("192.0.2.9"));
        assert!(r[i].logout.is_some());
    }
    assert!(!missing.exists());
}

#[test]
fn unknown_mirror_behaves_as_none() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("w.db");
    let (utmp, wtmp, _) = legacy_files(tmp.path());
    let stack = Stack::required(&format!(
        "utmp=bogus utmp_file={} wtmp_file={} {}",
        utmp.display(),
        wtmp.display(),
        db_arg(&db)
    ));
    let mut h = stack.start("root");
    h.set(PAM_TTY, b"pts/42").set(PAM_RHOST, b"192.0.2.9");
    assert_eq!(h.open(), PAM_SUCCESS);
    assert_eq!(h.close(), PAM_SUCCESS);
    drop(h);
    assert!(rows(&db)[0].logout.is_some());
    assert_eq!(std::fs::metadata(&utmp).unwrap().len(), 0);
    assert_eq!(std::fs::metadata(&wtmp).unwrap().len(), 0);
}

/// Child process mode of this test binary (single-threaded, so it may fork): opens a session
/// with the utmpx mirror in the directory named in the environment, then closes it in a
/// forked child, as a daemon that forks per session would. Prints the opener's PID. Not a test
/// by itself: ignored, and skipped by its `child_process_` prefix as the lock holder is.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
#[ignore = "child-process helper, run by forked_child_closes_the_openers_utmp_entry"]
fn child_process_fork_close() {
    let dir = std::env::var_os("WTMPDB_TEST_FORK_CLOSE").expect(
        "child-process helper, not a test: forked_child_closes_the_openers_utmp_entry runs it \
         with WTMPDB_TEST_FORK_CLOSE set",
    );
    let dir = PathBuf::from(dir);
    let (_, _, mirror) = legacy_files(&dir);
    let stack = Stack::required(&format!("{mirror} {}", db_arg(&dir.join("w.db"))));
    let mut h = stack.start("root");
    h.set(PAM_TTY, b"pts/47");
    assert_eq!(h.open(), PAM_SUCCESS);
    // SAFETY: this process runs only this test (--test-threads=1): no other thread is inside
    // the module or libpam, so the child inherits no held lock; it calls the module and
    // leaves with _exit, running no destructors of the parent's state.
    match unsafe { libc::fork() } {
        0 => {
            let rc = h.close();
            // SAFETY: _exit has no preconditions.
            unsafe { libc::_exit(if rc == PAM_SUCCESS { 0 } else { 1 }) }
        }
        -1 => panic!("fork: {}", std::io::Error::last_os_error()),
        child => {
            let mut status = 0;
            // SAFETY: waits for our own child; `status` is a valid out pointer.
            assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
            assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
            println!("opener {}", std::process::id());
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn forked_child_closes_the_openers_utmp_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let out = support::child_test("child_process_fork_close")
        .env("WTMPDB_TEST_FORK_CLOSE", tmp.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let opener: i32 = stdout
        .lines()
        // libtest may print its "test ... " prefix on the same line.
        .find_map(|l| l.split("opener ").nth(1))
        .expect(&stdout)
        .parse()
        .unwrap();
    // The logout carries the opener's PID (kept in the handle), so the entry is replaced.
    assert_eq!(
        records(&tmp.path().join("utmp")),
        vec![(8, opener, "pts/47".into(), String::new(), String::new())]
    );
    let w = records(&tmp.path().join("wtmp"));
    assert_eq!(
        w.iter().map(|r| (r.0, r.1)).collect::<Vec<_>>(),
        [(7, opener), (8, opener)]
    );
    assert!(rows(&tmp.path().join("w.db"))[0].logout.is_some());
}

// ---------------------------------------------------------------------------------------
// Guarantees of the README, each checked so that breaking it fails a test.

/// Child process mode: opens a session with `test_panic` (a debug-build option that makes
/// the module panic inside its call) and prints what libpam returned. A separate process,
/// because a panic that escaped the module's guard would abort the whole process.
#[test]
#[ignore = "child-process helper of a_panic_inside_the_module_is_system_err_and_the_host_lives"]
fn child_process_forced_panic() {
    let db = std::env::var_os("WTMPDB_TEST_PANIC_DB")
        .expect("run by a_panic_inside_the_module_is_system_err_and_the_host_lives only");
    let stack = Stack::required(&format!("test_panic database={}", Path::new(&db).display()));
    let mut h = stack.start("root");
    let rc = h.open();
    println!("open_rc={rc}");
    let rc = h.close();
    println!("close_rc={rc}");
    std::io::stdout().flush().unwrap();
}

#[test]
#[cfg_attr(
    not(debug_assertions),
    ignore = "the test_panic option exists in debug builds only"
)]
fn a_panic_inside_the_module_is_system_err_and_the_host_lives() {
    let tmp = tempfile::tempdir().unwrap();
    let out = support::child_test("child_process_forced_panic")
        .env("WTMPDB_TEST_PANIC_DB", tmp.path().join("w.db"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // An unwind across the C boundary aborts the process: no status 0, no rc lines.
    assert!(
        out.status.success(),
        "the host process died: {:?}\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    assert!(
        stdout.contains(&format!("open_rc={PAM_SYSTEM_ERR}")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("close_rc={PAM_SYSTEM_ERR}")),
        "{stdout}"
    );
    // The panic message goes to syslog, never to the host's terminal.
    assert!(!stderr.contains("test_panic given"), "{stderr}");
    assert!(!stdout.contains("test_panic given"), "{stdout}");
}

/// A database with upstream's table only (as upstream creates it) holding `rows` sessions.
fn upstream_db(path: &Path, rows: i64) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch(include_str!("../../../migrations/0001_upstream_table.sql"))
        .unwrap();
    c.execute_batch("BEGIN").unwrap();
    {
        let mut ins = c
            .prepare("INSERT INTO wtmp (Type, User, Login, Logout, TTY) VALUES (3, 'u', ?1, ?1, 'pts/1')")
            .unwrap();
        for i in 0..rows {
            ins.execute([i]).unwrap();
        }
    }
    c.execute_batch("COMMIT").unwrap();
}

fn schema_version(path: &Path) -> (i64, i64) {
    let c = rusqlite::Connection::open(path).unwrap();
    let v = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    let indexes = c
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'wtmp'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    (v, indexes)
}

#[test]
fn the_module_migrates_upstream_databases_up_to_the_limit_and_no_larger() {
    let limit = wtmpdb::session::MIGRATE_MAX_ROWS;
    let tmp = tempfile::tempdir().unwrap();
    for (n, migrated) in [(limit, true), (limit + 1, false)] {
        let db = tmp.path().join(format!("up-{n}.db"));
        upstream_db(&db, n);
        assert_eq!(schema_version(&db), (0, 0));
        let stack = Stack::required(&db_arg(&db));
        let mut h = stack.start("root");
        h.set(PAM_TTY, b"pts/2");
        assert_eq!(h.open(), PAM_SUCCESS);
        assert_eq!(h.close(), PAM_SUCCESS);
        drop(h);
        let (version, indexes) = schema_version(&db);
        if migrated {
            assert_eq!(version, wtmpdb::storage::SCHEMA_VERSION, "{n} rows");
            assert!(indexes > 0, "{n} rows: no index built");
        } else {
            assert_eq!((version, indexes), (0, 0), "{n} rows: the login migrated");
        }
        // Either way the session is recorded and closed.
        let last = rows(&db).pop().unwrap();
        assert_eq!(last.tty.as_deref(), Some("pts/2"));
        assert!(last.logout.is_some());
    }
}

/// The write path's storage design (see `wtmpdb::storage::WalSettings`): WAL, with the side
/// files kept after the last connection closes (an unprivileged reader needs both), in the
/// database's mode, and the log truncated by the writers' own checkpoints so that it never
/// grows with the number of logins.
#[test]
fn the_module_writes_in_wal_mode_and_keeps_the_side_files() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("w.db");
    let stack = Stack::required(&db_arg(&db));
    for _ in 0..200 {
        let mut h = stack.start("root");
        assert_eq!(h.open(), PAM_SUCCESS);
        assert_eq!(h.close(), PAM_SUCCESS);
    }
    // Looked at before any other connection opens it: one that does not persist the side
    // files (upstream's, sqlite3's) deletes them when it closes.
    let mode_of = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    for side in ["w.db-wal", "w.db-shm"] {
        let p = tmp.path().join(side);
        assert!(p.exists(), "{side} was deleted at close");
        assert_eq!(mode_of(&p), mode_of(&db), "{side}");
    }
    assert!(!tmp.path().join("w.db-journal").exists());
    // Bytes 18 and 19 of the header: 2 and 2 in WAL mode.
    let header = std::fs::read(&db).unwrap();
    assert_eq!(header[18..20], [2, 2], "not in WAL mode");
    // 400 writes of about six pages each: without the writers' checkpoints the log would
    // hold about 2,400 pages (9.6 MB) and every new connection would read all of it.
    let log = std::fs::metadata(tmp.path().join("w.db-wal"))
        .unwrap()
        .len();
    let limit = (wtmpdb::storage::WalSettings::CHECKPOINT_PAGES + 64) * 4120;
    assert!(log <= limit, "log of {log} bytes, over {limit}");
    assert_eq!(rows(&db).len(), 200);
}

/// `nobody` (a real second user, in a real second process: Debian's sqlite3 shell) opens
/// the world-readable database read-only and keeps a read transaction open. In a rollback
/// journal every login then waited out the bound and failed ("database is locked"); in WAL
/// mode a reader never stops a writer. Logins through the real libpam commit at once, and
/// the reader is still reading its snapshot when they do.
#[test]
#[ignore = "needs root: the reader runs as nobody"]
fn a_reader_holding_a_transaction_as_nobody_delays_no_login() {
    support::require_root();
    let (_tmp, db, stack) = a_session_in_a_world_readable_directory();
    let Some(sqlite3) = support::tool("sqlite3") else {
        return;
    };
    let mut reader = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&sqlite3)
        .args(["-readonly", "-batch"])
        .arg(&db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut to_reader = reader.stdin.take().unwrap();
    writeln!(to_reader, "BEGIN; SELECT 'holding', count(*) FROM wtmp;").unwrap();
    to_reader.flush().unwrap();
    let mut out = BufReader::new(reader.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim_end(), "holding|1", "the reader did not start");
    let mut slowest = Duration::ZERO;
    for i in 0..20 {
        let mut h = stack.start("root");
        h.set(PAM_TTY, format!("pts/{i}").as_bytes());
        let started = Instant::now();
        assert_eq!(h.open(), PAM_SUCCESS, "login {i} while nobody reads");
        assert_eq!(h.close(), PAM_SUCCESS, "logout {i} while nobody reads");
        slowest = slowest.max(started.elapsed());
    }
    // The bound is 1 s; a login that waited for the reader would take all of it.
    assert!(slowest < Duration::from_millis(500), "slowest {slowest:?}");
    // Still inside its transaction, the reader sees its snapshot; after it, every row.
    writeln!(to_reader, "SELECT 'snapshot', count(*) FROM wtmp; COMMIT;").unwrap();
    writeln!(to_reader, "SELECT 'now', count(*) FROM wtmp;").unwrap();
    drop(to_reader);
    let rest: Vec<String> = out.lines().map(Result::unwrap).collect();
    assert_eq!(rest, ["snapshot|1", "now|21"]);
    let status = reader.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut reader.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success() && err.is_empty(), "{err}");
    assert_eq!(rows(&db).len(), 21);
}

/// The same reader, held while 150 sessions log in and out through the real libpam: no
/// checkpoint can reset the log, which grew by some 34 KB a session for as long as the
/// reader lasted, each login reading all of it (nobody's read-only connection cannot attach
/// to the index). Now the log stays under its bound (`WalSettings::LOG_CAP_BYTES`), the
/// sessions past it wait in the spool, and once the reader ends the next logins merge them:
/// every session in the table once, closed.
#[test]
#[ignore = "needs root: the reader runs as nobody"]
fn a_reader_pinning_the_log_as_nobody_keeps_it_bounded() {
    support::require_root();
    let (_tmp, db, stack) = a_session_in_a_world_readable_directory();
    let Some(sqlite3) = support::tool("sqlite3") else {
        return;
    };
    let mut reader = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&sqlite3)
        .args(["-readonly", "-batch"])
        .arg(&db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut to_reader = reader.stdin.take().unwrap();
    writeln!(to_reader, "BEGIN; SELECT 'holding', count(*) FROM wtmp;").unwrap();
    to_reader.flush().unwrap();
    let mut out = BufReader::new(reader.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim_end(), "holding|1", "the reader did not start");
    let wal = db.with_file_name("w.db-wal");
    let bound = wtmpdb::storage::WalSettings::LOG_CAP_BYTES + (128 << 10);
    for i in 0..150 {
        let mut h = stack.start("root");
        h.set(PAM_TTY, format!("pts/{i}").as_bytes());
        assert_eq!(h.open(), PAM_SUCCESS, "login {i} while nobody reads");
        assert_eq!(h.close(), PAM_SUCCESS, "logout {i} while nobody reads");
        let log = std::fs::metadata(&wal).unwrap().len();
        assert!(
            log <= bound,
            "after {} sessions the log is {log} bytes",
            i + 1
        );
    }
    assert!(wtmpdb::session::spool::waiting(&db).unwrap() > 100);
    drop(to_reader);
    assert!(reader.wait().unwrap().success());
    for i in 0..5 {
        let mut h = stack.start("root");
        h.set(PAM_TTY, format!("pts/after{i}").as_bytes());
        assert_eq!(h.open(), PAM_SUCCESS);
        assert_eq!(h.close(), PAM_SUCCESS);
    }
    assert_eq!(wtmpdb::session::spool::waiting(&db).unwrap(), 0);
    assert!(!wtmpdb::storage::log_may_hold_frames(&wal), "at rest");
    let rows = rows(&db);
    assert_eq!(rows.len(), 1 + 150 + 5);
    assert!(rows.iter().all(|r| r.logout.is_some()), "{rows:?}");
    let mut ttys: Vec<_> = rows.iter().map(|r| r.tty.clone()).collect();
    ttys.sort();
    ttys.dedup();
    assert_eq!(ttys.len(), rows.len(), "each session once");
}

/// Child process mode of this test binary: opens a session through libpam on the database
/// named in the environment, says "open", and then holds it: on a line "close" it closes
/// the session and says "closed"; when stdin ends it exits (a session never closed, as when
/// a login's process dies). Not a test by itself (see `child_process_lock_holder`).
#[test]
#[ignore = "child-process helper, run by a_session_held_through_libpam_is_in_who_while_its_process_lives"]
fn child_process_session_holder() {
    let db = std::env::var_os("WTMPDB_TEST_SESSION_DB").expect(
        "child-process helper, not a test: \
         a_session_held_through_libpam_is_in_who_while_its_process_lives runs it",
    );
    let stack = Stack::required(&db_arg(Path::new(&db)));
    let mut h = stack.start("root");
    h.set(PAM_TTY, b"/dev/pts/41").set(PAM_RHOST, b"192.0.2.41");
    assert_eq!(h.open(), PAM_SUCCESS);
    println!("open");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    while std::io::stdin().read_line(&mut line).unwrap_or(0) > 0 {
        if line.trim() == "close" {
            assert_eq!(h.close(), PAM_SUCCESS);
            println!("closed");
            std::io::stdout().flush().unwrap();
        }
        line.clear();
    }
    // stdin closed: exit with the session still open if it was not closed.
    std::mem::forget(h);
}

/// A session holder and the reader of its output, waiting for `word`.
fn expect_line(out: &mut BufReader<std::process::ChildStdout>, word: &str) {
    let mut line = String::new();
    while out.read_line(&mut line).unwrap_or(0) > 0 {
        if line.trim_end().ends_with(word) {
            return;
        }
        line.clear();
    }
    panic!("session holder ended before saying {word}");
}

fn hold_session(db: &Path) -> (Child, BufReader<std::process::ChildStdout>) {
    let mut child = support::child_test("child_process_session_holder")
        .env("WTMPDB_TEST_SESSION_DB", db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    expect_line(&mut out, "open");
    (child, out)
}

/// Who is logged in on `db` now, by the library's `who` (without logind: the test's own
/// sessions are what is looked at).
fn logged_in(db: &Path) -> Vec<wtmpdb::report::who::Present> {
    let d = wtmpdb::Database::open_read_only(db).unwrap();
    let sys = wtmpdb::report::who::System {
        logind: None,
        ..Default::default()
    };
    wtmpdb::report::who::present(&d, &sys).unwrap().0
}

#[test]
fn a_session_held_through_libpam_is_in_who_while_its_process_lives() {
    use wtmpdb::report::who::Source;
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("w.db");

    // Held open, then its process dies without a logout: gone from who, its row still open.
    let (mut a, _out) = hold_session(&db);
    let now = logged_in(&db);
    assert_eq!(now.len(), 1, "{now:?}");
    assert_eq!(
        (now[0].user.as_str(), now[0].tty.as_str()),
        ("root", "pts/41")
    );
    assert_eq!(now[0].pid, Some(a.id() as i32));
    assert_eq!(now[0].source, Source::Wtmpdb);
    a.kill().unwrap();
    a.wait().unwrap();
    assert_eq!(logged_in(&db), []);
    assert!(rows(&db)[0].logout.is_none(), "the row itself stays open");

    // Held open, then logged out while its process lives on: gone from who.
    let (mut b, mut out) = hold_session(&db);
    let now = logged_in(&db);
    assert_eq!(now.len(), 1, "{now:?}");
    assert_eq!(now[0].pid, Some(b.id() as i32));
    writeln!(b.stdin.as_mut().unwrap(), "close").unwrap();
    expect_line(&mut out, "closed");
    assert_eq!(logged_in(&db), []);
    drop(b.stdin.take());
    assert!(b.wait().unwrap().success());

    // The process table is one upstream never reads: its reader's SELECT * still sees
    // exactly upstream's columns.
    let c = rusqlite::Connection::open(&db).unwrap();
    let cols = c.prepare("SELECT * FROM wtmp").unwrap().column_count();
    assert_eq!(cols, 8);
    let recorded: i64 = c
        .query_row(
            "SELECT count(*) FROM wtmp_process WHERE StartTime IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(recorded, 2);
}

/// Read access is enough to place `fcntl` read locks on the files SQLite locks: `nobody`
/// (a real second process) holds one on the WAL write-lock byte of `-shm` (offset 120), which
/// every writer must lock exclusively. Whatever the journal, such a user can keep writers out
/// of the database; the module then spools, so the sessions are recorded all the same, within
/// the bound, and merged by the first write after the lock is gone.
#[test]
#[ignore = "needs root: the lock holder runs as nobody"]
fn a_user_holding_an_fcntl_lock_on_the_side_files_suppresses_no_login() {
    support::require_root();
    let (tmp, db, stack) = a_session_in_a_world_readable_directory();
    let shm = tmp.path().join("w.db-shm");
    let Some(mut holder) = support::nobody_holds_a_shm_lock(&shm, 120) else {
        return;
    };
    let mut slowest = Duration::ZERO;
    for i in 0..5 {
        let mut h = stack.start("root");
        h.set(PAM_TTY, format!("pts/{i}").as_bytes());
        let t = Instant::now();
        assert_eq!(h.open(), PAM_SUCCESS, "login {i} under nobody's lock");
        assert_eq!(h.close(), PAM_SUCCESS, "logout {i} under nobody's lock");
        slowest = slowest.max(t.elapsed());
    }
    assert!(slowest < Duration::from_millis(500), "slowest {slowest:?}");
    // (Not read through SQLite now: any connection would stall on that lock for ten seconds.)
    let spool = tmp.path().canonicalize().unwrap().join("w.db-spool");
    let spooled: Vec<_> = std::fs::read_dir(&spool)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(spooled.len(), 10, "five logins, five logouts: {spooled:?}");
    drop(holder.stdin.take());
    assert!(holder.wait().unwrap().success());
    let mut h = stack.start("root");
    assert_eq!(h.open(), PAM_SUCCESS);
    assert_eq!(h.close(), PAM_SUCCESS);
    drop(h);
    let r = rows(&db);
    assert_eq!(r.len(), 7, "every session recorded once");
    assert!(r.iter().all(|r| r.logout.is_some()), "every logout merged");
}

/// Child process mode of this test binary: takes a shared `fcntl` lock on the bytes named
/// in the environment (`START LEN`) of the `-shm` file named there, opened read-only as any
/// user can open the world-readable file, and holds it until its stdin closes. Not a test by
/// itself (see `a_shared_lock_on_the_shm_recovery_bytes_spools_within_the_bound`).
#[test]
#[ignore = "child-process helper, run by a_shared_lock_on_the_shm_recovery_bytes_spools_within_the_bound"]
fn child_process_shm_lock_holder() {
    use std::os::fd::AsRawFd;
    let path = std::env::var_os("WTMPDB_TEST_SHM").expect("child-process helper, not a test");
    let bytes = std::env::var("WTMPDB_TEST_SHM_BYTES").unwrap();
    let (start, len) = bytes.split_once(' ').unwrap();
    let f = std::fs::File::open(path).unwrap();
    // SAFETY: a zeroed flock is a valid value; fcntl reads it through a live pointer.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_RDLCK as _;
    fl.l_whence = libc::SEEK_SET as _;
    fl.l_start = start.parse().unwrap();
    fl.l_len = len.parse().unwrap();
    // SAFETY: F_SETLK with a valid descriptor and a pointer to a live flock.
    assert_eq!(unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLK, &fl) }, 0);
    println!("locked");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

/// Any user may open the world-readable `-shm` file read-only and take a shared `fcntl`
/// lock on its bytes 120 to 122 (SQLite's write, checkpoint and recovery locks). Every
/// session connection is the first to open the index and must rebuild it, which takes those
/// bytes exclusively; SQLite retries that internally, sleeping without calling the busy
/// handler, for about 10 s and then fails with "locking protocol", and each statement of the
/// open did it again: a login waited as long as the lock was held (30 s measured), past the
/// 1 s bound and the spool. Now the writer looks for such a lock before SQLite opens the
/// file, and spools within the bound; the next write after the lock is gone merges it.
#[test]
fn a_shared_lock_on_the_shm_recovery_bytes_spools_within_the_bound() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("w.db");
    let stack = Stack::required(&db_arg(&db));
    let mut h = stack.start("root");
    assert_eq!(h.open(), PAM_SUCCESS);
    assert_eq!(h.close(), PAM_SUCCESS);
    drop(h);
    let shm = tmp.path().join("w.db-shm");
    assert!(shm.exists());
    // The last: every lock byte, the DMS byte (128) included, which keeps the index from
    // being rebuilt: SQLite then waits for the write lock through the busy handler.
    for (start, len) in [(120, 1), (121, 1), (122, 1), (120, 9)] {
        let mut holder = support::child_test("child_process_shm_lock_holder")
            .env("WTMPDB_TEST_SHM", &shm)
            .env("WTMPDB_TEST_SHM_BYTES", format!("{start} {len}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(holder.stdout.take().unwrap());
        let mut line = String::new();
        while out.read_line(&mut line).unwrap() > 0 && !line.contains("locked") {
            line.clear();
        }
        assert!(line.contains("locked"), "the lock holder died");
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        let mut h = stack.start("root");
        h.set(PAM_TTY, format!("pts/{start}").as_bytes());
        let t = Instant::now();
        assert_eq!(h.open(), PAM_SUCCESS);
        assert_eq!(h.close(), PAM_SUCCESS);
        let took = t.elapsed();
        drop(holder.stdin.take());
        assert!(holder.wait().unwrap().success());
        assert!(took < BOUND, "byte {start}: open and close took {took:?}");
    }
    // Lock gone: the next write merges the spool, nothing lost or doubled.
    let mut h = stack.start("root");
    assert_eq!(h.open(), PAM_SUCCESS);
    assert_eq!(h.close(), PAM_SUCCESS);
    drop(h);
    let r = rows(&db);
    assert_eq!(r.len(), 6, "{r:?}");
    assert!(r.iter().all(|r| r.logout.is_some()), "{r:?}");
}

/// Regression (issue 8): a session closed from a new handle (the ID is gone, as when
/// another process of the server closes it) while another process held the database's lock:
/// only logouts by ID were spooled, so this one failed (PAM_SYSTEM_ERR) and was lost, and
/// the session stayed open for good. The logout is now spooled by user, tty and service, and
/// the next write merges it onto the session, after the login spooled under the same lock.
#[test]
fn a_logout_by_lookup_under_another_process_lock_is_spooled_and_merged() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("w.db");
    let stack = Stack::required(&db_arg(&db));
    let mut h = stack.start("root");
    h.set(PAM_TTY, b"pts/7");
    assert_eq!(h.open(), PAM_SUCCESS);
    // Ended without close: the ID in the handle is gone.
    drop(h);
    let mut holder = hold_lock(&db);
    let mut h = stack.start("root");
    h.set(PAM_TTY, b"pts/8");
    assert_eq!(h.open(), PAM_SUCCESS, "spooled login");
    drop(h);
    for tty in [&b"pts/7"[..], b"pts/8"] {
        let mut h = stack.start("root");
        h.set(PAM_TTY, tty);
        let t = Instant::now();
        assert_eq!(h.close(), PAM_SUCCESS, "logout by lookup under the lock");
        assert!(t.elapsed() < BOUND, "{:?}", t.elapsed());
    }
    drop(holder.stdin.take());
    assert!(holder.wait().unwrap().success(), "the lock holder failed");
    let mut h = stack.start("root");
    h.set(PAM_TTY, b"pts/9");
    assert_eq!(h.open(), PAM_SUCCESS);
    assert_eq!(h.close(), PAM_SUCCESS);
    drop(h);
    let r = rows(&db);
    assert_eq!(r.len(), 3, "{r:?}");
    assert!(
        r.iter().all(|r| r.logout.is_some()),
        "a logout was lost: {r:?}"
    );
}

/// Regression: a login spooled while another process held the lock, closed from a new
/// handle (the ID is gone, as when another process of the server closes it): the close looks
/// the row up by user, tty and service, but looked before merging the spool, found nothing
/// ("not found"), and never merged: the logout was lost and, once merged, the login stayed
/// open for good. The close now merges the spool first, and finds the row.
#[test]
fn a_spooled_login_closed_from_a_new_handle_gets_its_logout() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("w.db");
    let stack = Stack::required(&db_arg(&db));
    let mut h = stack.start("root");
    assert_eq!(h.open(), PAM_SUCCESS);
    assert_eq!(h.close(), PAM_SUCCESS);
    drop(h);
    let mut holder = hold_lock(&db);
    let mut h = stack.start("root");
    h.set(PAM_TTY, b"pts/9");
    assert_eq!(h.open(), PAM_SUCCESS);
    // Ended without close: the ID in the handle is gone.
    drop(h);
    drop(holder.stdin.take());
    assert!(holder.wait().unwrap().success(), "the lock holder failed");
    let mut h = stack.start("root");
    h.set(PAM_TTY, b"pts/9");
    assert_eq!(h.close(), PAM_SUCCESS);
    drop(h);
    let r = rows(&db);
    let of = r
        .iter()
        .find(|r| r.tty.as_deref() == Some("pts/9"))
        .expect("the spooled login was merged");
    assert!(of.logout.is_some(), "the logout was lost: {r:?}");
}

/// Regression: a user who holds many `fcntl` locks, on files of their own anywhere, delayed
/// every login past its bound. Each writer looked for foreign locks on `-shm` by reading the
/// whole of `/proc/locks` (up to 4 MiB, three times when it takes more than one read), and
/// the kernel lists it again from its start for every read of a page: with 100,000 locks
/// held by `nobody` a login and a logout took 3 to 5 s each (measured). The check now stops
/// at the lock's deadline and leaves what it did not see to SQLite, whose sleeps the bounded
/// VFS ends there.
#[test]
#[ignore = "needs root: the lock holder runs as nobody"]
fn a_user_holding_many_fcntl_locks_elsewhere_delays_no_login_past_its_bound() {
    support::require_root();
    let (tmp, db, stack) = a_session_in_a_world_readable_directory();
    let theirs = tmp.path().join("nobody");
    std::fs::create_dir(&theirs).unwrap();
    let Some(mut holder) = support::nobody_holds_many_locks(&theirs, 100_000) else {
        return;
    };
    let slowest = slowest_call_of_sessions(&stack, 3);
    drop(holder.stdin.take());
    assert!(holder.wait().unwrap().success());
    // The bound of one call, with room for a loaded machine (as for the toggled lock).
    assert!(
        slowest < Duration::from_millis(1300),
        "slowest call {slowest:?}"
    );
    let r = rows(&db);
    assert_eq!(r.len(), 4, "every session recorded once: {r:?}");
    assert!(r.iter().all(|r| r.logout.is_some()), "every logout: {r:?}");
}

/// A user who takes and drops a shared lock on the index's write byte (120) over and over,
/// as any user may on the world-readable `-shm`, slips past the check for foreign locks made
/// before SQLite opens the file; SQLite's own retries of the index rebuild then slept up to
/// 10 s without calling the busy handler (0.4 to 5.7 s per login measured). Each call must
/// stay within its bound, and every session is recorded once the lock stops.
#[test]
#[ignore = "needs root: the lock toggler runs as nobody"]
fn a_user_toggling_a_lock_on_the_index_delays_no_login_past_its_bound() {
    support::require_root();
    let (tmp, db, stack) = a_session_in_a_world_readable_directory();
    let Some(mut toggler) = support::nobody_toggles_a_shm_lock(&tmp.path().join("w.db-shm"), 120)
    else {
        return;
    };
    let slowest = slowest_call_of_sessions(&stack, 30);
    drop(toggler.stdin.take());
    assert!(toggler.wait().unwrap().success());
    // The bound of one call, with room for a loaded machine.
    assert!(
        slowest < Duration::from_millis(1300),
        "slowest call {slowest:?}"
    );
    let mut h = stack.start("root");
    assert_eq!(h.open(), PAM_SUCCESS);
    assert_eq!(h.close(), PAM_SUCCESS);
    drop(h);
    let r = rows(&db);
    assert_eq!(r.len(), 32, "every session recorded once");
    assert!(r.iter().all(|r| r.logout.is_some()), "every logout merged");
}

/// A database in a new directory of mode 0755 (so that `nobody` may open its side files, as
/// in `/var/lib/wtmpdb`), written once through the module: its `-wal` and `-shm` exist.
fn a_session_in_a_world_readable_directory() -> (tempfile::TempDir, PathBuf, Stack) {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let db = tmp.path().join("w.db");
    let stack = Stack::required(&db_arg(&db));
    let mut h = stack.start("root");
    assert_eq!(h.open(), PAM_SUCCESS);
    assert_eq!(h.close(), PAM_SUCCESS);
    drop(h);
    (tmp, db, stack)
}

/// Opens and closes `count` sessions (on pts/0, pts/1, ...), each call asserted to succeed,
/// and returns the time the slowest call took.
fn slowest_call_of_sessions(stack: &Stack, count: usize) -> Duration {
    let mut slowest = Duration::ZERO;
    for i in 0..count {
        let mut h = stack.start("root");
        h.set(PAM_TTY, format!("pts/{i}").as_bytes());
        let t = Instant::now();
        assert_eq!(h.open(), PAM_SUCCESS, "login {i}");
        slowest = slowest.max(t.elapsed());
        let t = Instant::now();
        assert_eq!(h.close(), PAM_SUCCESS, "logout {i}");
        slowest = slowest.max(t.elapsed());
    }
    slowest
}

// ---------------------------------------------------------------------------------------
// Regressions of issue 16: the seams between the routing rules of the front ends.

/// Two users of every passwd (the module looks them up), as the two people of a test.
const ALICE: &str = "nobody";
const BOB: &str = "root";

/// Child process mode of this test binary, in the working directory it was started in (a
/// directory of the test's own: a relative file the module writes lands there): opens a
/// session on pts/31 through the module with the arguments in the environment, ends the
/// handle without closing it (the ID in it is gone, as when a server that forks closes the
/// session in another process), then closes the session from a new handle, and prints
/// what libpam returned for each. Not a test by itself (see `child_process_lock_holder`).
#[test]
#[ignore = "child-process helper, run by the tests of database=varlink"]
fn child_process_open_and_close_in_two_handles() {
    let args = std::env::var("WTMPDB_TEST_PAM_ARGS").expect(
        "child-process helper, not a test: \
         a_close_without_id_under_database_varlink_closes_the_daemons_row_and_creates_no_file \
         runs it with WTMPDB_TEST_PAM_ARGS set",
    );
    let stack = Stack::required(&args);
    let mut h = stack.start("root");
    h.set(PAM_TTY, b"pts/31").set(PAM_RHOST, b"192.0.2.31");
    println!("open_rc={}", h.open());
    drop(h);
    let mut h = stack.start("root");
    h.set(PAM_TTY, b"pts/31").set(PAM_RHOST, b"192.0.2.31");
    println!("close_rc={}", h.close());
    std::io::stdout().flush().unwrap();
}

/// Runs `child_process_open_and_close_in_two_handles` with the module arguments `args` and
/// the working directory `cwd`; returns what the open and the close returned.
fn open_and_close_in_two_handles(cwd: &Path, args: &str) -> (c_int, c_int) {
    let stdout = support::stdout_of_success(
        support::child_test("child_process_open_and_close_in_two_handles")
            .env("WTMPDB_TEST_PAM_ARGS", args)
            .current_dir(cwd),
    );
    let rc = |key: &str| -> c_int {
        stdout
            .lines()
            // libtest may print its "test ... " prefix on the same line.
            .find_map(|l| l.split(key).nth(1))
            .unwrap_or_else(|| panic!("no {key} in {stdout}"))
            .trim()
            .parse()
            .unwrap()
    };
    (rc("open_rc="), rc("close_rc="))
}

/// The names of the entries of `dir`, sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Regression (issue 16, defect 1): with `database=varlink` a session closed from a handle
/// without its ID (opened by another handle or process) was closed through the *relative
/// file* `./varlink` in the caller's working directory: the daemon's row stayed open for
/// good, and root created a database (with side files and a spool) wherever the caller ran.
/// The close now goes to the daemon, which finds the row by user, tty and service.
#[test]
#[ignore = "needs root: writes through wtmpdbd are for uid 0"]
fn a_close_without_id_under_database_varlink_closes_the_daemons_row_and_creates_no_file() {
    support::require_root();
    let tmp = tempfile::tempdir().unwrap();
    let bin = support::workspace_binary("wtmpdbd", "crates/daemon");
    let daemon = support::Wtmpdbd::start(&bin, &tmp.path().join("d"), &[]);
    let cwd = tmp.path().join("cwd");
    std::fs::create_dir(&cwd).unwrap();
    let args = format!("database=varlink socket={}", daemon.socket.display());
    let (open, close) = open_and_close_in_two_handles(&cwd, &args);
    let r = rows(&daemon.db);
    let stray = names_in(&cwd);
    let state = format!(
        "open returned {open}, close returned {close}; the daemon's rows: {r:?}; \
         files in the caller's working directory: {stray:?}"
    );
    assert_eq!(open, PAM_SUCCESS, "{state}");
    assert!(
        r.len() == 1 && r[0].tty.as_deref() == Some("pts/31") && r[0].logout.is_some(),
        "the daemon's row was not closed: {state}"
    );
    assert_eq!(close, PAM_SUCCESS, "{state}");
    assert!(
        !stray.iter().any(|n| n.starts_with("varlink")),
        "the module created files in the caller's working directory: {state}"
    );
}

/// Regression (issue 16, defect 1): with `database=varlink` and no daemon (its socket gone,
/// or left behind by a daemon that was stopped), the open failed but the close went to the
/// relative file `./varlink` and created it in the caller's working directory. Both calls
/// now fail and write nothing anywhere.
#[test]
fn with_database_varlink_and_no_daemon_open_and_close_fail_and_create_no_file() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = support::workspace_binary("wtmpdbd", "crates/daemon");
    // A socket left behind by a daemon that was killed (ECONNREFUSED), and none at all.
    let stale = support::Wtmpdbd::start(&bin, &tmp.path().join("d"), &[]);
    let stale_socket = stale.socket.clone();
    drop(stale);
    assert!(stale_socket.exists());
    let missing = tmp.path().join("none/socket");
    for socket in [stale_socket, missing] {
        let cwd = tempfile::tempdir().unwrap();
        let args = format!("database=varlink socket={}", socket.display());
        let (open, close) = open_and_close_in_two_handles(cwd.path(), &args);
        let stray = names_in(cwd.path());
        let state = format!(
            "socket {}: open returned {open}, close returned {close}; \
             files in the caller's working directory: {stray:?}",
            socket.display()
        );
        assert_ne!(open, PAM_SUCCESS, "{state}");
        assert_ne!(close, PAM_SUCCESS, "{state}");
        assert!(
            stray.is_empty(),
            "the module created files in the caller's working directory: {state}"
        );
    }
}

/// Rows of `db` for a message, or why there are none (a file renamed away may have no
/// table: its rows may be in the log it left behind).
fn rows_shown(db: &Path) -> String {
    let read = || -> rusqlite::Result<Vec<String>> {
        let c =
            rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let mut s = c.prepare("SELECT ID, User, Login, Logout, TTY FROM wtmp ORDER BY ID")?;
        s.query_map([], |r| {
            Ok(format!(
                "ID {} user {} tty {:?} login {} logout {:?}",
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Option<i64>>(3)?,
            ))
        })?
        .collect()
    };
    match read() {
        Ok(rows) => format!("{rows:#?}"),
        Err(e) => format!("(unreadable: {e})"),
    }
}

/// Regression (issue 16, defect 4): a logout by row ID closed whatever row had that ID.
/// Alice's session is row 1; the file is renamed away, as logrotate does, and the next
/// login (Bob's, on another tty) creates a new file where Bob's row is row 1 too. Alice's
/// close, with her own handle and so her ID, closed Bob's live session. A logout by ID now
/// closes the row only when it is the same session (user, tty, login time).
#[test]
fn a_logout_by_id_after_the_file_was_renamed_leaves_another_users_session_open() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("w.db");
    let stack = Stack::required(&db_arg(&db));
    let mut alice = stack.start(ALICE);
    alice.set(PAM_TTY, b"pts/1");
    assert_eq!(alice.open(), PAM_SUCCESS);
    // logrotate's rename; the next write creates the new file.
    std::fs::rename(&db, tmp.path().join("w.db.1")).unwrap();
    let mut bob = stack.start(BOB);
    bob.set(PAM_TTY, b"pts/2");
    assert_eq!(bob.open(), PAM_SUCCESS);
    // Bob stays logged in; his handle is ended as a server's would be that forked.
    drop(bob);
    let before = rows_shown(&db);
    let rc = alice.close();
    drop(alice);
    let r = rows(&db);
    let files = names_in(tmp.path());
    let bobs: Vec<&Row> = r.iter().filter(|r| r.user == BOB).collect();
    assert!(
        bobs.len() == 1 && bobs[0].logout.is_none(),
        "Alice's close (returned {rc}) closed Bob's live session.\n\
         The new file before the close: {before}\nafter: {}\nthe renamed file: {}\n\
         files: {files:?}",
        rows_shown(&db),
        rows_shown(&tmp.path().join("w.db.1")),
    );
}

/// Regression (issue 16, defect 4), through the daemon: the daemon's file is renamed away
/// while it runs and created anew empty (logrotate's `create`); Bob's login through the
/// daemon is row 1 of the new file, the ID Alice's session had in the old one; Alice's
/// close, with her handle and so her ID, closed Bob's live session.
#[test]
#[ignore = "needs root: writes through wtmpdbd are for uid 0"]
fn a_logout_by_id_through_the_daemon_after_its_file_was_renamed_leaves_another_users_session_open()
{
    support::require_root();
    let tmp = tempfile::tempdir().unwrap();
    let bin = support::workspace_binary("wtmpdbd", "crates/daemon");
    let daemon = support::Wtmpdbd::start(&bin, &tmp.path().join("d"), &[]);
    let stack = Stack::required(&format!(
        "database=varlink socket={}",
        daemon.socket.display()
    ));
    let mut alice = stack.start(ALICE);
    alice.set(PAM_TTY, b"pts/1");
    assert_eq!(alice.open(), PAM_SUCCESS);
    let renamed = daemon.db.with_extension("db.1");
    std::fs::rename(&daemon.db, &renamed).unwrap();
    std::fs::File::create(&daemon.db).unwrap();
    let mut bob = stack.start(BOB);
    bob.set(PAM_TTY, b"pts/2");
    assert_eq!(bob.open(), PAM_SUCCESS);
    drop(bob);
    let before = rows_shown(&daemon.db);
    let rc = alice.close();
    drop(alice);
    let r = rows(&daemon.db);
    let bobs: Vec<&Row> = r.iter().filter(|r| r.user == BOB).collect();
    assert!(
        bobs.len() == 1 && bobs[0].logout.is_none(),
        "Alice's close (returned {rc}) closed Bob's live session.\n\
         The daemon's new file before the close: {before}\nafter: {}\n\
         the renamed file: {}",
        rows_shown(&daemon.db),
        rows_shown(&renamed)
    );
}

/// Opens a session with PAM_TTY `:0` and no XDG_VTNR (its row's tty is `:0`), then closes it
/// in the same handle after XDG_VTNR was set (as pam_systemd, later in the stack, sets it),
/// so that the items at close say `tty2`. Returns what the close returned and the rows.
fn close_after_the_tty_changed(db: &Path, args: &str) -> (c_int, Vec<Row>) {
    let stack = Stack::required(args);
    let mut h = stack.start("root");
    h.set(PAM_TTY, b":0");
    assert_eq!(h.open(), PAM_SUCCESS);
    h.putenv("XDG_VTNR=2");
    let rc = h.close();
    drop(h);
    (rc, rows(db))
}

/// The session a handle opened is closed by the ID it kept, also when the items at close
/// differ from those at login (here the tty: XDG_VTNR appeared in between): the identity
/// checked is the one the login wrote.
#[test]
fn a_close_by_id_after_the_items_changed_closes_the_session() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("w.db");
    let (rc, r) = close_after_the_tty_changed(&db, &db_arg(&db));
    assert_eq!(rc, PAM_SUCCESS, "{r:?}");
    assert!(
        r.len() == 1 && r[0].tty.as_deref() == Some(":0") && r[0].logout.is_some(),
        "{r:?}"
    );
}

/// Regression: through the daemon, the close by ID sent the session's login time with the
/// items of the close, so the daemon checked the row against the tty at close (`tty2`)
/// instead of the tty the login wrote (`:0`): it took the session's own row for another's,
/// left it alone, looked for an open session on `tty2`, found none, and the session stayed
/// open for good (the file writer checks the identity the login kept).
#[test]
#[ignore = "needs root: writes through wtmpdbd are for uid 0"]
fn a_close_by_id_through_the_daemon_after_the_items_changed_closes_the_session() {
    support::require_root();
    let tmp = tempfile::tempdir().unwrap();
    let bin = support::workspace_binary("wtmpdbd", "crates/daemon");
    let daemon = support::Wtmpdbd::start(&bin, &tmp.path().join("d"), &[]);
    let args = format!("database=varlink socket={}", daemon.socket.display());
    let (rc, r) = close_after_the_tty_changed(&daemon.db, &args);
    assert_eq!(rc, PAM_SUCCESS, "{r:?}");
    assert!(
        r.len() == 1 && r[0].tty.as_deref() == Some(":0") && r[0].logout.is_some(),
        "the session's own row was not closed: {r:?}"
    );
}

// Failed logins: `authfail` and `showfailed`.

/// What a conversation was told: (style, text) of every message.
type Told = std::sync::Mutex<Vec<(c_int, String)>>;

/// A conversation that keeps every message in the `Told` behind `data` and answers none.
///
/// # Safety
/// Called by libpam with `n` valid messages and `data` the `Told` the test passed.
unsafe extern "C" fn telling(
    n: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    data: *mut std::ffi::c_void,
) -> c_int {
    // SAFETY: `data` is the test's `Told`, alive while the handle is.
    let told = unsafe { &*data.cast::<Told>() };
    for i in 0..n as usize {
        // SAFETY: libpam passes `n` valid message pointers (Linux-PAM's layout).
        let m = unsafe { &**msg.add(i) };
        // SAFETY: a NUL-terminated message.
        let text = unsafe { CStr::from_ptr(m.msg) }
            .to_string_lossy()
            .into_owned();
        told.lock().unwrap().push((m.msg_style, text));
    }
    // SAFETY: libpam frees the responses with free(): calloc'd, no answers.
    let r = unsafe { libc::calloc(n as usize, std::mem::size_of::<PamResponse>()) };
    // SAFETY: `resp` is libpam's valid out pointer.
    unsafe { *resp = r.cast() };
    PAM_SUCCESS
}

fn telling_conv(told: &Told) -> PamConv {
    PamConv {
        conv: Some(telling),
        appdata_ptr: std::ptr::from_ref(told).cast_mut().cast(),
    }
}

const PAM_AUTH_ERR: c_int = 7;
const PAM_TEXT_INFO: c_int = 4;
const PAM_SILENT: c_int = 0x8000;

fn failures(db: &Path) -> Vec<wtmpdb::storage::Failure> {
    let path = wtmpdb::storage::failures_path(db);
    let store = wtmpdb::storage::FailureStore::open_read(&path).unwrap();
    let mut all = Vec::new();
    if let Some(s) = store {
        s.each_between(i64::MIN, i64::MAX, |f| {
            all.push(f);
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
    }
    all
}

/// Debian's common-auth with the module after the real one (`pam_unix` there, `real` here):
/// success jumps over it, a failure reaches it.
fn debian_auth(real: &str, module_line: &str) -> String {
    let jump = if module_line.is_empty() { 1 } else { 2 };
    format!(
        "auth [success={jump} default=ignore] {real}\n{module_line}auth requisite pam_deny.so\nauth required pam_permit.so\n"
    )
}

#[test]
fn authfail_records_the_attempt_and_the_stack_fails_as_it_would_without_the_module() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("w.db");
    let line = format!("auth [default=die] MODULE authfail {}\n", db_arg(&db));
    for (stack, real) in [
        (debian_auth("pam_deny.so", &line), "jump"),
        // faillock's documented form: a `required` module that failed, then the line.
        (
            format!("auth required pam_deny.so\n{line}auth required pam_permit.so\n"),
            "required",
        ),
        // and pam_faillock's `sufficient` form.
        (
            format!("auth sufficient pam_deny.so\n{line}auth required pam_deny.so\n"),
            "sufficient",
        ),
    ] {
        let without = stack.replace(&line, "").replace("success=2", "success=1");
        let rc_without = Stack::new(&without).start("p4ss w0rd").authenticate(0);
        let s = Stack::new(&stack);
        let mut h = s.start("p4ss w0rd");
        h.set(PAM_TTY, b"ssh").set(PAM_RHOST, b"192.0.2.7");
        let t = Instant::now();
        let rc = h.authenticate(0);
        assert!(t.elapsed() < BOUND);
        assert_eq!(rc, rc_without, "{real}: {}", h.strerror(rc));
        assert_eq!(rc, PAM_AUTH_ERR, "{real}: {}", h.strerror(rc));
    }
    let f = failures(&db);
    assert_eq!(f.len(), 3);
    let f = &f[0];
    assert_eq!(f.user, "p4ss w0rd", "the name as typed");
    assert_eq!(f.tty.as_deref(), Some("ssh"));
    assert_eq!(f.host.as_deref(), Some("192.0.2.7"));
    assert_eq!(f.service.as_deref(), Some("svc"));
    assert_eq!(f.pid, Some(i64::from(std::process::id())));
    let failed = wtmpdb::storage::failures_path(&db);
    let mode = std::fs::metadata(&failed).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "root's alone");
    // The session database never holds a failure (upstream's tools read it).
    assert!(!db.exists() || rows(&db).is_empty());
}

#[test]
fn a_successful_authentication_is_untouched_and_records_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("w.db");
    let line = format!("auth [default=die] MODULE authfail {}\n", db_arg(&db));
    let s = Stack::new(&debian_auth("pam_permit.so", &line));
    let mut h = s.start("root");
    assert_eq!(h.authenticate(0), PAM_SUCCESS);
    assert_eq!(h.setcred(), PAM_SUCCESS);
    drop(h);
    assert!(failures(&db).is_empty());
}

#[test]
fn a_failure_waits_for_a_locked_file_no_longer_than_its_bound() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("w.db");
    let line = format!("auth [default=die] MODULE authfail {}\n", db_arg(&db));
    let s = Stack::new(&debian_auth("pam_deny.so", &line));
    assert_eq!(s.start("x").authenticate(0), PAM_AUTH_ERR);
    let mut holder = hold_lock(&wtmpdb::storage::failures_path(&db));
    let t = Instant::now();
    assert_eq!(s.start("y").authenticate(0), PAM_AUTH_ERR);
    let took = t.elapsed();
    drop(holder.stdin.take());
    assert!(holder.wait().unwrap().success());
    assert!(took < Duration::from_millis(900), "took {took:?}");
    // The locked attempt is dropped (and logged), not waited for.
    assert_eq!(failures(&db).len(), 1);
}

#[test]
fn showfailed_tells_the_attempts_once_through_the_conversation() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("w.db");
    let auth = Stack::new(&debian_auth(
        "pam_deny.so",
        &format!("auth [default=die] MODULE authfail {}\n", db_arg(&db)),
    ));
    for host in ["192.0.2.1", "192.0.2.2", "192.0.2.7"] {
        let mut h = auth.start("root");
        h.set(PAM_RHOST, host.as_bytes()).set(PAM_TTY, b"ssh");
        assert_eq!(h.authenticate(0), PAM_AUTH_ERR);
    }
    // Another name's attempt is not root's.
    assert_eq!(auth.start("alice").authenticate(0), PAM_AUTH_ERR);
    let session = Stack::required(&format!("showfailed {}", db_arg(&db)));
    let told = Told::default();
    let mut h = session.start_with("root", &telling_conv(&told));
    assert_eq!(h.open(), PAM_SUCCESS);
    drop(h);
    let said = std::mem::take(&mut *told.lock().unwrap());
    assert_eq!(said.len(), 1, "{said:?}");
    assert_eq!(said[0].0, PAM_TEXT_INFO);
    let text = &said[0].1;
    assert!(
        text.contains("There were 3 failed login attempts since the last successful login."),
        "{text}"
    );
    assert!(text.starts_with("Last failed login: "), "{text}");
    assert!(text.contains(" from 192.0.2.7 on ssh"), "{text}");
    // Told once: the next login hears of nothing.
    let mut h = session.start_with("root", &telling_conv(&told));
    assert_eq!(h.open(), PAM_SUCCESS);
    drop(h);
    assert!(told.lock().unwrap().is_empty());
    // Silent: the PAM_SILENT flag or the option.
    assert_eq!(auth.start("root").authenticate(0), PAM_AUTH_ERR);
    let mut h = session.start_with("root", &telling_conv(&told));
    assert_eq!(h.open_flags(PAM_SILENT), PAM_SUCCESS);
    drop(h);
    assert_eq!(auth.start("root").authenticate(0), PAM_AUTH_ERR);
    let quiet = Stack::required(&format!("showfailed silent {}", db_arg(&db)));
    let mut h = quiet.start_with("root", &telling_conv(&told));
    assert_eq!(h.open(), PAM_SUCCESS);
    drop(h);
    assert!(told.lock().unwrap().is_empty());
    // Without showfailed: nothing said, and the attempts stay for the next one to tell.
    assert_eq!(auth.start("root").authenticate(0), PAM_AUTH_ERR);
    let plain = Stack::required(&db_arg(&db));
    let mut h = plain.start_with("root", &telling_conv(&told));
    assert_eq!(h.open(), PAM_SUCCESS);
    drop(h);
    assert!(told.lock().unwrap().is_empty());
    let mut h = session.start_with("root", &telling_conv(&told));
    assert_eq!(h.open(), PAM_SUCCESS);
    drop(h);
    let said = told.lock().unwrap();
    assert!(
        said[0].1.contains("There was 1 failed login attempt"),
        "{said:?}"
    );
}

// Journal events, read back from Debian's real systemd-journald.

use support::{Journald, journal_field};

/// A remote host no printer of ours would let through raw: a newline, an escape, a C1
/// control, a right-to-left override and a tab.
const HOSTILE_RHOST: &[u8] = b"evil\nhost\x1b[31m\xc2\x9b\xe2\x80\xaex\ty";

/// The one entry of `entries` whose `name` is `value`.
fn entry_with<'a>(
    entries: &'a [serde_json::Value],
    name: &str,
    value: &str,
) -> Vec<&'a serde_json::Value> {
    entries
        .iter()
        .filter(|e| journal_field(e, name).as_deref() == Some(value.as_bytes()))
        .collect()
}

fn field(e: &serde_json::Value, name: &str) -> Option<String> {
    journal_field(e, name).map(|v| String::from_utf8(v).unwrap())
}

#[test]
#[ignore = "needs root: journald runs in a mount namespace of its own"]
fn sessions_and_failures_through_libpam_reach_the_real_journal_intact() {
    support::require_root();
    let tmp = tempfile::tempdir().unwrap();
    let Some(mut journald) = Journald::start(&tmp.path().join("journald")) else {
        return;
    };
    let db = tmp.path().join("w.db");
    let socket = journald.socket();
    let events = format!("{} journal_socket={}", db_arg(&db), socket.display());
    // A session with hostile strings, opened and closed.
    let stack = Stack::required(&events);
    let mut h = stack.start("root");
    h.set(PAM_TTY, b"pts/\x01\xe2\x80\xae9")
        .set(PAM_RHOST, HOSTILE_RHOST);
    assert_eq!(h.open(), PAM_SUCCESS);
    assert_eq!(h.close(), PAM_SUCCESS);
    drop(h);
    // A failure whose typed name is not sent, and one whose is (the admin's choice).
    let typed = "p4ss\nw0rd\u{202e}";
    for extra in ["", "journal_failed_user"] {
        let line = format!("auth [default=die] MODULE authfail {events} {extra}\n");
        let s = Stack::new(&format!("auth required pam_deny.so\n{line}"));
        let mut h = s.start(typed);
        h.set(PAM_TTY, b"ssh").set(PAM_RHOST, HOSTILE_RHOST);
        assert_eq!(h.authenticate(0), PAM_AUTH_ERR);
    }
    // With `nojournal`, nothing is sent.
    let quiet = Stack::required(&format!("{events} nojournal"));
    let mut h = quiet.start("root");
    h.set(PAM_TTY, b"pts/quiet");
    assert_eq!(h.open(), PAM_SUCCESS);
    assert_eq!(h.close(), PAM_SUCCESS);
    drop(h);

    let entries = journald.stop_and_read(&["SYSLOG_IDENTIFIER=wtmpdb"]);
    let r = rows(&db);
    assert_eq!(r.len(), 2, "{r:?}");
    let row = &r[0];
    let logins = entry_with(&entries, "MESSAGE_ID", wtmpdb::journal::message_id::LOGIN);
    let logouts = entry_with(&entries, "MESSAGE_ID", wtmpdb::journal::message_id::LOGOUT);
    let failed = entry_with(&entries, "MESSAGE_ID", wtmpdb::journal::message_id::FAILED);
    assert_eq!(
        (logins.len(), logouts.len(), failed.len()),
        (1, 1, 2),
        "one event per record, none with nojournal: {entries:#?}"
    );
    for (e, kind) in [(logins[0], "login"), (logouts[0], "logout")] {
        assert_eq!(field(e, "WTMPDB_TYPE").as_deref(), Some(kind));
        assert_eq!(field(e, "WTMPDB_ID"), Some(row.id.to_string()));
        assert_eq!(field(e, "WTMPDB_USER").as_deref(), Some("root"));
        assert_eq!(field(e, "WTMPDB_TTY"), row.tty.clone(), "{e:#}");
        assert_eq!(
            journal_field(e, "WTMPDB_RHOST").as_deref(),
            Some(HOSTILE_RHOST)
        );
        assert_eq!(field(e, "WTMPDB_SERVICE").as_deref(), Some("svc"));
        assert_eq!(field(e, "WTMPDB_LOGIN_USEC"), Some(row.login.to_string()));
        assert_eq!(
            field(e, "WTMPDB_DATABASE").as_deref(),
            Some(db.to_str().unwrap())
        );
        let message = field(e, "MESSAGE").unwrap();
        assert!(
            !message.contains(['\n', '\x1b', '\u{9b}', '\u{202e}']),
            "the readable message is escaped: {message:?}"
        );
    }
    for e in [logins[0], logouts[0]] {
        assert_eq!(field(e, "WTMPDB_PID"), Some(std::process::id().to_string()));
    }
    assert_eq!(field(logins[0], "WTMPDB_LOGOUT_USEC"), None);
    assert_eq!(
        field(logouts[0], "WTMPDB_LOGOUT_USEC"),
        Some(row.logout.unwrap().to_string())
    );
    let mut f = failures(&db);
    f.sort_by_key(|f| f.id);
    assert_eq!(f.len(), 2);
    for (e, f) in failed.iter().zip(&f) {
        assert_eq!(field(e, "WTMPDB_ID"), Some(f.id.to_string()));
        assert_eq!(field(e, "WTMPDB_TYPE").as_deref(), Some("failed"));
        assert_eq!(field(e, "WTMPDB_TTY").as_deref(), Some("ssh"));
        assert_eq!(
            journal_field(e, "WTMPDB_RHOST").as_deref(),
            Some(HOSTILE_RHOST)
        );
        assert_eq!(field(e, "WTMPDB_LOGIN_USEC"), Some(f.time.to_string()));
        assert_eq!(field(e, "PRIORITY").as_deref(), Some("5"));
    }
    assert_eq!(field(failed[0], "WTMPDB_USER"), None, "not sent by default");
    assert!(
        !failed[0].to_string().contains("p4ss"),
        "the typed name is nowhere in the entry: {:#}",
        failed[0]
    );
    assert_eq!(field(failed[1], "WTMPDB_USER").as_deref(), Some(typed));
}

#[test]
#[ignore = "needs root: journald runs in a mount namespace of its own"]
fn a_spooled_login_is_sent_when_merged_and_a_large_entry_goes_through_a_memfd() {
    support::require_root();
    let tmp = tempfile::tempdir().unwrap();
    let Some(mut journald) = Journald::start(&tmp.path().join("journald")) else {
        return;
    };
    let db = tmp.path().join("w.db");
    let args = format!(
        "{} journal_socket={}",
        db_arg(&db),
        journald.socket().display()
    );
    let stack = Stack::required(&args);
    let mut h = stack.start("root");
    h.set(PAM_TTY, b"pts/1");
    assert_eq!(h.open(), PAM_SUCCESS);
    drop(h);
    // Spooled under another process's lock: no row, no event yet.
    let holder = hold_lock(&db);
    let mut h = stack.start("root");
    h.set(PAM_TTY, b"pts/2");
    assert_eq!(h.open(), PAM_SUCCESS);
    drop(h);
    support::release_lock(holder);
    // Merged by root's reader (`wtmpdb last` merges the spool before it reads).
    let cli = support::workspace_binary("wtmpdb", "crates/cli");
    let st = Command::new(&cli)
        .args(["last", "-f"])
        .arg(&db)
        .env("WTMPDB_JOURNAL_SOCKET", journald.socket())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    // Another spooled login, merged by the next write.
    let holder = hold_lock(&db);
    let mut h = stack.start("root");
    h.set(PAM_TTY, b"pts/4");
    assert_eq!(h.open(), PAM_SUCCESS);
    drop(h);
    support::release_lock(holder);
    // The next write merges it.
    let mut h = stack.start("root");
    h.set(PAM_TTY, b"pts/3");
    assert_eq!(h.open(), PAM_SUCCESS);
    drop(h);
    // An entry larger than a datagram may be.
    let mut events = wtmpdb::journal::Events::default();
    events.socket = journald.socket();
    let mut big = wtmpdb::journal::Event::default();
    let value: Vec<u8> = (0..400_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    big.field("MESSAGE", "large")
        .field("SYSLOG_IDENTIFIER", "wtmpdb")
        .field("WTMPDB_TYPE", "large")
        .field("WTMPDB_BIG", &value);
    events.send(&big).expect("sent through a memfd");

    let entries = journald.stop_and_read(&["SYSLOG_IDENTIFIER=wtmpdb"]);
    let logins = entry_with(&entries, "MESSAGE_ID", wtmpdb::journal::message_id::LOGIN);
    let ttys: Vec<_> = logins
        .iter()
        .map(|e| (field(e, "WTMPDB_TTY").unwrap(), field(e, "WTMPDB_SPOOLED")))
        .collect();
    let mut sorted = ttys.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            ("pts/1".to_string(), None),
            ("pts/2".to_string(), Some("1".to_string())),
            ("pts/3".to_string(), None),
            ("pts/4".to_string(), Some("1".to_string())),
        ],
        "each login once, a spooled one when merged (by a reader, by a write)"
    );
    let large = entry_with(&entries, "WTMPDB_TYPE", "large");
    assert_eq!(large.len(), 1);
    assert_eq!(journal_field(large[0], "WTMPDB_BIG"), Some(value));
}

#[test]
#[ignore = "needs root: journald runs in a mount namespace of its own"]
fn through_the_daemon_each_record_is_sent_once_by_the_daemon() {
    support::require_root();
    let tmp = tempfile::tempdir().unwrap();
    let Some(mut journald) = Journald::start(&tmp.path().join("journald")) else {
        return;
    };
    let socket = journald.socket();
    let bin = support::workspace_binary("wtmpdbd", "crates/daemon");
    let journal_arg = format!("--journal-socket={}", socket.display());
    let daemon = support::Wtmpdbd::start(&bin, &tmp.path().join("d"), &[&journal_arg]);
    // The module is told the same socket: were it to send too, each record would be there
    // twice.
    let args = format!(
        "database=varlink socket={} journal_socket={}",
        daemon.socket.display(),
        socket.display()
    );
    let stack = Stack::required(&args);
    let mut h = stack.start("root");
    h.set(PAM_TTY, b"pts/4").set(PAM_RHOST, b"192.0.2.9");
    assert_eq!(h.open(), PAM_SUCCESS);
    assert_eq!(h.close(), PAM_SUCCESS);
    drop(h);
    let line = format!("auth required pam_deny.so\nauth [default=die] MODULE authfail {args}\n");
    let s = Stack::new(&line);
    let mut h = s.start("nosuchuser");
    assert_eq!(h.authenticate(0), PAM_AUTH_ERR);
    drop(h);
    // A boot and a shutdown through the daemon, the command told the journal's socket too.
    let cli = support::workspace_binary("wtmpdb", "crates/cli");
    for cmd in ["boot", "shutdown"] {
        let st = Command::new(&cli)
            .args([cmd, "-f", "varlink"])
            .env("WTMPDB_SOCKET", &daemon.socket)
            .env("WTMPDB_JOURNAL_SOCKET", &socket)
            .status()
            .unwrap();
        assert!(st.success(), "{cmd}");
    }
    let daemon_pid = daemon.pid().to_string();
    let db = daemon.db.clone();
    drop(daemon);
    let entries = journald.stop_and_read(&["SYSLOG_IDENTIFIER=wtmpdb"]);
    assert_eq!(
        entries.len(),
        5,
        "login, logout, failure, boot, shutdown once each: {entries:#?}"
    );
    assert_eq!(entry_with(&entries, "WTMPDB_TYPE", "boot").len(), 1);
    assert_eq!(entry_with(&entries, "WTMPDB_TYPE", "shutdown").len(), 1);
    for e in &entries {
        assert_eq!(
            field(e, "_PID"),
            Some(daemon_pid.clone()),
            "sent by the daemon"
        );
    }
    let r = rows(&db);
    let login = entry_with(&entries, "WTMPDB_TYPE", "login");
    assert_eq!(field(login[0], "WTMPDB_ID"), Some(r[0].id.to_string()));
    assert_eq!(
        field(login[0], "WTMPDB_RHOST").as_deref(),
        Some("192.0.2.9")
    );
    let logout = entry_with(&entries, "WTMPDB_TYPE", "logout");
    assert_eq!(
        field(logout[0], "WTMPDB_LOGOUT_USEC"),
        Some(r[0].logout.unwrap().to_string())
    );
}

/// `wtmpdb boot` and `shutdown` run beside journald (in its mount namespace, so on the
/// default socket path) send one event each.
#[test]
#[ignore = "needs root: journald runs in a mount namespace of its own"]
fn boot_and_shutdown_reach_journald_on_its_default_socket() {
    support::require_root();
    let tmp = tempfile::tempdir().unwrap();
    let Some(mut journald) = Journald::start(&tmp.path().join("journald")) else {
        return;
    };
    let Some(nsenter) = support::tool("nsenter") else {
        return;
    };
    let bin = support::workspace_binary("wtmpdb", "crates/cli");
    let db = tmp.path().join("w.db");
    for cmd in ["boot", "shutdown"] {
        let st = Command::new(&nsenter)
            .args(["-m", "-t", &journald.pid().to_string()])
            .arg(&bin)
            .args([cmd, "-f"])
            .arg(&db)
            .status()
            .unwrap();
        assert!(st.success(), "{cmd}");
    }
    let entries = journald.stop_and_read(&["SYSLOG_IDENTIFIER=wtmpdb"]);
    let r = rows(&db);
    let kinds: Vec<_> = entries
        .iter()
        .map(|e| {
            (
                field(e, "WTMPDB_TYPE").unwrap(),
                field(e, "MESSAGE_ID").unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("boot".into(), wtmpdb::journal::message_id::BOOT.to_string()),
            (
                "shutdown".into(),
                wtmpdb::journal::message_id::SHUTDOWN.to_string()
            )
        ]
    );
    assert_eq!(field(&entries[1], "WTMPDB_ID"), Some(r[0].id.to_string()));
    assert_eq!(
        field(&entries[1], "WTMPDB_LOGOUT_USEC"),
        Some(r[0].logout.unwrap().to_string())
    );
}

/// The whole way a fleet ships them: sessions and failures through the real libpam, into
/// Debian's journald, uploaded by systemd-journal-upload over HTTP on 127.0.0.1 to
/// systemd-journal-remote, read back from the received file: every field intact.
#[test]
#[ignore = "needs root: journald runs in a mount namespace of its own"]
fn events_shipped_by_journal_upload_arrive_at_journal_remote_intact() {
    support::require_root();
    let tmp = tempfile::tempdir().unwrap();
    let Some(mut journald) = Journald::start(&tmp.path().join("journald")) else {
        return;
    };
    let db = tmp.path().join("w.db");
    let args = format!(
        "{} journal_socket={}",
        db_arg(&db),
        journald.socket().display()
    );
    let stack = Stack::required(&args);
    for tty in [&b"pts/5"[..], b"pts/\xe2\x80\xae6"] {
        let mut h = stack.start("root");
        h.set(PAM_TTY, tty).set(PAM_RHOST, HOSTILE_RHOST);
        assert_eq!(h.open(), PAM_SUCCESS);
        assert_eq!(h.close(), PAM_SUCCESS);
    }
    let line = format!("auth required pam_deny.so\nauth [default=die] MODULE authfail {args}\n");
    let s = Stack::new(&line);
    let mut h = s.start("nobody-typed");
    h.set(PAM_TTY, b"ssh").set(PAM_RHOST, HOSTILE_RHOST);
    assert_eq!(h.authenticate(0), PAM_AUTH_ERR);
    drop(h);
    let local = journald.stop();
    let received = tmp.path().join("remote.journal");
    if support::ship_over_loopback(&local, &received).is_none() {
        return;
    }
    let sent = support::journal_entries(
        &["--directory".as_ref(), local.as_os_str()],
        &["SYSLOG_IDENTIFIER=wtmpdb"],
    );
    let got = support::journal_entries(
        &["--file".as_ref(), received.as_os_str()],
        &["SYSLOG_IDENTIFIER=wtmpdb"],
    );
    assert_eq!(sent.len(), 5, "{sent:#?}");
    assert_eq!(got.len(), sent.len(), "every event arrived: {got:#?}");
    let r = rows(&db);
    for (s, g) in sent.iter().zip(&got) {
        for name in [
            "MESSAGE",
            "MESSAGE_ID",
            "WTMPDB_ID",
            "WTMPDB_TYPE",
            "WTMPDB_USER",
            "WTMPDB_TTY",
            "WTMPDB_RHOST",
            "WTMPDB_SERVICE",
            "WTMPDB_LOGIN_USEC",
            "WTMPDB_LOGOUT_USEC",
            "WTMPDB_PID",
            "WTMPDB_DATABASE",
        ] {
            assert_eq!(journal_field(s, name), journal_field(g, name), "{name}");
        }
        assert_eq!(
            journal_field(g, "WTMPDB_RHOST").as_deref(),
            Some(HOSTILE_RHOST)
        );
    }
    let logins = entry_with(&got, "WTMPDB_TYPE", "login");
    assert_eq!(logins.len(), 2);
    for (e, row) in logins.iter().zip(&r) {
        assert_eq!(field(e, "WTMPDB_ID"), Some(row.id.to_string()));
        assert_eq!(field(e, "WTMPDB_TTY"), row.tty.clone());
        assert_eq!(field(e, "WTMPDB_LOGIN_USEC"), Some(row.login.to_string()));
    }
    assert_eq!(entry_with(&got, "WTMPDB_TYPE", "failed").len(), 1);
}

/// A journald that takes nothing (stopped with SIGSTOP: its socket's queue fills) delays no
/// login: the events it cannot take are dropped at once, every row is written.
#[test]
#[ignore = "needs root: journald runs in a mount namespace of its own"]
fn a_stopped_journald_delays_no_login_and_the_rows_stay_the_record() {
    support::require_root();
    let tmp = tempfile::tempdir().unwrap();
    let Some(mut journald) = Journald::start(&tmp.path().join("journald")) else {
        return;
    };
    let db = tmp.path().join("w.db");
    let stack = Stack::required(&format!(
        "{} journal_socket={}",
        db_arg(&db),
        journald.socket().display()
    ));
    let pid = journald.pid().to_string();
    assert!(
        Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let sessions = 700;
    let mut slowest = Duration::ZERO;
    for i in 0..sessions {
        let mut h = stack.start("root");
        h.set(PAM_TTY, format!("pts/{i}").as_bytes());
        let t = Instant::now();
        assert_eq!(h.open(), PAM_SUCCESS);
        assert_eq!(h.close(), PAM_SUCCESS);
        slowest = slowest.max(t.elapsed());
    }
    assert!(
        Command::new("kill")
            .args(["-CONT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let entries = journald.stop_and_read(&["SYSLOG_IDENTIFIER=wtmpdb"]);
    let r = rows(&db);
    assert_eq!(r.len(), sessions);
    assert!(r.iter().all(|r| r.logout.is_some()));
    assert!(
        entries.len() < 2 * sessions,
        "a stopped journald cannot have taken every event: {}",
        entries.len()
    );
    assert!(slowest < BOUND, "the slowest session took {slowest:?}");
}

/// The unwinder is linked into the module (see src/lib.rs): a login process that loads it
/// loads no libgcc_s, whose constructor probes the CPU (CPUID traps to the hypervisor on a
/// virtual machine). The panic guard still works with it: see
/// a_panic_inside_the_module_is_system_err_and_the_host_lives.
#[test]
fn the_module_needs_no_libgcc_s() {
    let Some(readelf) = support::tool("readelf") else {
        return;
    };
    let out = Command::new(readelf)
        .arg("-d")
        .arg(module())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let dynamic = String::from_utf8_lossy(&out.stdout);
    let needed: Vec<&str> = dynamic.lines().filter(|l| l.contains("(NEEDED)")).collect();
    assert!(
        needed.iter().any(|l| l.contains("libc.so")),
        "no NEEDED entries read: {dynamic}"
    );
    assert!(!needed.iter().any(|l| l.contains("libgcc_s")), "{needed:?}");
}

/// A C application whose thread is cancelled inside pam_open_session (`test_cancel` makes
/// the cancellation pending inside the module's call, acted on at its next open or write):
/// the module's call completes and records the login, the thread ends cancelled after it
/// (in libpam's C frames), and the process lives. Without the guard's deferral the cancellation unwound through the
/// module's Rust frames, which the guard cannot let pass, and the process aborted.
#[test]
#[cfg_attr(
    not(debug_assertions),
    ignore = "the test_cancel option exists in debug builds only"
)]
fn a_thread_cancelled_inside_the_module_ends_after_the_call_and_the_host_lives() {
    let Some(cc) = support::tool("cc") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("w.db");
    let stack = Stack::required(&format!("test_cancel database={}", db.display()));
    let host = tmp.path().join("cancel_host");
    let built = Command::new(cc)
        .arg("-pthread")
        .arg("-o")
        .arg(&host)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/cancel_host.c"))
        .arg("-lpam")
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "cc: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let stdout = support::stdout_of_success(
        Command::new(&host)
            .arg(stack.dir.path())
            .arg("svc")
            .stdin(Stdio::null()),
    );
    assert!(stdout.ends_with("0 failures\n"), "{stdout}");
    let recorded = rows(&db);
    assert_eq!(recorded.len(), 1, "the login is recorded");
    assert_eq!(recorded[0].tty.as_deref(), Some("pts/77"));
}
