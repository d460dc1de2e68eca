//! `wtmpdb` through the real `wtmpdbd` (a daemon of the test's own on a temporary socket,
//! named by WTMPDB_SOCKET): `boot` and `shutdown` write through it without `-f` when it
//! answers and with `-f varlink`; `last`, `who`, `users`, `lastlog` and `boottime` read
//! through it with `-f varlink`, and without `-f` when this user may not read the database
//! file, and then print what a direct read of the file prints. The commands that use the
//! default database run in a mount namespace whose /var is a directory of the test's, so the
//! default path /var/lib/wtmpdb/wtmp.db is the daemon's file there, and nothing a broken
//! routing would write can reach the machine's own.

#[path = "../../../tests/support/mod.rs"]
mod support;

// The direct rusqlite calls below need SQLite loaded (see wtmpdb::sqlite).
wtmpdb::load_sqlite_at_start!();

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use support::Wtmpdbd;
use wtmpdb::process::Process;
use wtmpdb::storage::{Database, Kind, NewEntry};
use wtmpdb::time::USEC_PER_SEC;

const BIN: &str = env!("CARGO_BIN_EXE_wtmpdb");
const NOBODY: [&str; 4] = [
    "setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
];

/// A directory `nobody` can enter, with a copy of the binary it can run, `var/` (the /var
/// of the namespace) and `tmp/` (1777, for the copy of the daemon's rows).
struct Place {
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl Place {
    fn new() -> Place {
        let dir = tempfile::tempdir().unwrap();
        support::chmod(dir.path(), 0o755);
        let bin = dir.path().join("wtmpdb");
        std::fs::copy(BIN, &bin).unwrap();
        support::chmod(&bin, 0o755);
        for d in ["var/lib/wtmpdb", "tmp"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        support::chmod(&dir.path().join("tmp"), 0o1777);
        Place { dir, bin }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// The database at the default path inside the namespace.
    fn default_db(&self) -> PathBuf {
        self.path("var/lib/wtmpdb/wtmp.db")
    }

    /// `wtmpdb args` with WTMPDB_SOCKET=`socket`, run through `wrap` (NOBODY, or nothing),
    /// and in the namespace when `namespace`.
    fn run(&self, namespace: bool, wrap: &[&str], socket: &Path, args: &[&str]) -> Output {
        let mut argv: Vec<String> = Vec::new();
        if namespace {
            argv.extend(support::in_a_namespace_with_var(&self.path("var")));
        }
        argv.extend(wrap.iter().map(|s| s.to_string()));
        argv.push(self.bin.display().to_string());
        argv.extend(args.iter().map(|s| s.to_string()));
        Command::new(&argv[0])
            .args(&argv[1..])
            .current_dir(self.dir.path())
            .env("WTMPDB_SOCKET", socket)
            .env("TZ", "UTC")
            .env("LC_ALL", "C")
            .env("TMPDIR", self.path("tmp"))
            .env_remove("XDG_RUNTIME_DIR")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[track_caller]
fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "{}: {}\n{}",
        o.status,
        text(&o),
        String::from_utf8_lossy(&o.stderr)
    );
    text(&o)
}

#[track_caller]
fn failed(o: Output) -> String {
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn daemon_bin() -> PathBuf {
    support::workspace_binary("wtmpdbd", "crates/daemon")
}

/// Rows for every report: an earlier boot that crashed with a session in it; the running
/// boot (at the kernel's boot time); in it alice (open, her process is this test's: alive),
/// bob (open, his process has exited), carol (open, no process recorded: unverified), dave
/// (closed), and erin, who logged in before the running boot only.
fn seed(db: &Path) {
    let d = Database::open_read_write(db).unwrap();
    let boot = wtmpdb::time::boot_time();
    let day = 86_400 * USEC_PER_SEC;
    let row = |kind, user, login, logout, tty, host| NewEntry {
        kind,
        user,
        login,
        logout,
        tty: Some(tty),
        host,
        service: (kind == Kind::UserProcess).then_some("sshd"),
    };
    d.login(&row(
        Kind::BootTime,
        "reboot",
        boot - 3 * day,
        None,
        "~",
        Some("6.1.0-old"),
    ))
    .unwrap();
    d.login(&row(
        Kind::UserProcess,
        "erin",
        boot - 2 * day,
        None,
        "pts/1",
        Some("192.0.2.1"),
    ))
    .unwrap();
    d.login(&row(
        Kind::BootTime,
        "reboot",
        boot,
        None,
        "~",
        Some("6.1.0-now"),
    ))
    .unwrap();
    let me = Process::current(std::process::id() as i32);
    assert!(me.start_time.is_some());
    d.login_with_process(
        &row(
            Kind::UserProcess,
            "alice",
            boot + 60 * USEC_PER_SEC,
            None,
            "pts/2",
            Some("192.0.2.2"),
        ),
        &me,
    )
    .unwrap();
    let mut gone = Command::new("true").spawn().unwrap();
    let gone_pid = gone.id() as i32;
    gone.wait().unwrap();
    d.login_with_process(
        &row(
            Kind::UserProcess,
            "bob",
            boot + 120 * USEC_PER_SEC,
            None,
            "pts/3",
            None,
        ),
        &Process {
            pid: gone_pid,
            start_time: Some(1),
        },
    )
    .unwrap();
    d.login(&row(
        Kind::UserProcess,
        "carol",
        boot + 180 * USEC_PER_SEC,
        None,
        "tty2",
        None,
    ))
    .unwrap();
    d.login(&row(
        Kind::UserProcess,
        "dave",
        boot + 240 * USEC_PER_SEC,
        Some(boot + 300 * USEC_PER_SEC),
        "pts/4",
        Some("2001:db8::4"),
    ))
    .unwrap();
}

/// Every read whose output is compared between the file and the daemon.
const READS: &[&[&str]] = &[
    &["last"],
    &["last", "-j"],
    &["last", "-x", "-n", "3", "alice", "reboot"],
    &["who", "--no-logind"],
    &["who", "--no-logind", "-j"],
    &["who", "--no-logind", "-q", "-H"],
    &["users", "--no-logind"],
    &["lastlog"],
    &["lastlog", "-j"],
    &["lastlog", "-u", "alice"],
    &["lastlog", "-u", "nosuchuser"],
    &["boottime"],
];

/// What `who` shows of the seeded rows: alice (alive) and carol (unverified); bob's process
/// has exited, dave logged out, erin's session belongs to an earlier boot.
#[track_caller]
fn check_who(out: &str) {
    let names: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(names, ["alice", "carol"], "{out}");
    assert!(out.lines().next().unwrap().ends_with("[wtmpdb]"), "{out}");
    assert!(
        out.lines()
            .nth(1)
            .unwrap()
            .ends_with("[wtmpdb, unverified]"),
        "{out}"
    );
}

/// With `-f varlink` every report prints through the daemon what it prints from the file;
/// runs as any user (the daemon then runs as that user too). Writes as a user other than
/// root are the daemon's refusal; `import` has no daemon method.
#[test]
fn reads_with_f_varlink_print_what_the_file_prints() {
    let p = Place::new();
    let db = p.path("d/db/wtmp.db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    seed(&db);
    let d = Wtmpdbd::start_at(&daemon_bin(), &p.path("d/run/socket"), &db, &[]);
    let file = db.display().to_string();
    for args in READS {
        eprintln!("wtmpdb {args:?}");
        let direct = ok(p.run(false, &[], &d.socket, &[args, &["-f", &file][..]].concat()));
        let through = ok(p.run(
            false,
            &[],
            &d.socket,
            &[args, &["-f", "varlink"][..]].concat(),
        ));
        // `last` names its source in the footer: the file's path, or varlink.
        let direct = direct.replace(&file, "varlink");
        assert_eq!(through, direct, "{args:?}");
    }
    check_who(&ok(p.run(
        false,
        &[],
        &d.socket,
        &["who", "--no-logind", "-f", "varlink"],
    )));
    if !support::is_root() {
        let err = failed(p.run(false, &[], &d.socket, &["shutdown", "-f", "varlink"]));
        assert!(err.contains("PermissionDenied"), "{err}");
    }
    let err = failed(p.run(
        false,
        &[],
        &d.socket,
        &["import", "-f", "varlink", "/dev/null"],
    ));
    assert!(err.contains("wtmpdbd has no method for import"), "{err}");
    assert!(!p.path("varlink").exists());
}

/// An unprivileged user, without `-f`, on a root-only database (0600, as wtmpdbd keeps it):
/// `last`, `who`, `users`, `lastlog` and `boottime` read through the daemon and print what
/// root reads from the file itself. Writes are the daemon's refusal, not the file's.
#[test]
#[ignore = "needs root: a root-only database, a user who cannot read it, and a mount namespace"]
fn an_unprivileged_user_reads_a_root_only_database_through_the_daemon() {
    support::require_root();
    if support::tool("unshare").is_none() || support::tool("setpriv").is_none() {
        return;
    }
    let p = Place::new();
    let db = p.default_db();
    seed(&db);
    for f in ["wtmp.db", "wtmp.db-wal", "wtmp.db-shm"] {
        let f = db.with_file_name(f);
        if f.exists() {
            support::chmod(&f, 0o600);
        }
    }
    let d = Wtmpdbd::start_at(&daemon_bin(), &p.path("run/socket"), &db, &[]);
    // nobody cannot read the file itself.
    let direct = p.run(
        true,
        &NOBODY,
        &d.socket,
        &["who", "-f", "/var/lib/wtmpdb/wtmp.db"],
    );
    let err = failed(direct);
    assert!(err.contains("Cannot open database"), "{err}");
    for args in READS {
        eprintln!("wtmpdb {args:?}");
        let root = ok(p.run(true, &[], &d.socket, args));
        let nobody = ok(p.run(true, &NOBODY, &d.socket, args));
        assert_eq!(nobody, root, "{args:?}");
        assert!(!nobody.is_empty(), "{args:?}");
    }
    check_who(&ok(p.run(
        true,
        &NOBODY,
        &d.socket,
        &["who", "--no-logind"],
    )));
    assert_eq!(
        ok(p.run(true, &NOBODY, &d.socket, &["users", "--no-logind"])),
        "alice carol\n"
    );
    let lastlog = ok(p.run(true, &NOBODY, &d.socket, &["lastlog"]));
    for user in ["alice", "bob", "carol", "dave", "erin"] {
        assert!(lastlog.contains(user), "{lastlog}");
    }
    // Without the daemon, nobody's read fails as it did before (the file's error).
    let none = p.path("no-daemon/socket");
    let err = failed(p.run(true, &NOBODY, &none, &["who"]));
    assert!(err.contains("Cannot open database"), "{err}");
    // Writes through the daemon are root's: nobody gets its refusal, and nothing changed.
    let rows = |db: &Path| -> i64 {
        rusqlite::Connection::open(db)
            .unwrap()
            .query_row("SELECT count(*) FROM wtmp WHERE Logout IS NULL", [], |r| {
                r.get(0)
            })
            .unwrap()
    };
    let before = rows(&db);
    for args in [&["shutdown"][..], &["shutdown", "-f", "varlink"]] {
        let err = failed(p.run(true, &NOBODY, &d.socket, args));
        assert!(err.contains("PermissionDenied"), "{args:?}: {err}");
    }
    // This boot is recorded (the daemon's GetBootTime says so): nothing to write.
    let out = ok(p.run(true, &NOBODY, &d.socket, &["boot"]));
    assert_eq!(out, "Boot entry already recorded.\n");
    assert_eq!(rows(&db), before);
    // The copies of the daemon's rows were removed.
    assert_eq!(std::fs::read_dir(p.path("tmp")).unwrap().count(), 0);
}

/// `boot` and `shutdown` go through the daemon: with `-f varlink`, and without `-f` when it
/// answers (the default file, in the namespace, stays untouched). The row is upstream's
/// (Type 1, `reboot`, tty `~`, the kernel release), recorded once per boot, and `shutdown`
/// closes only the current boot row, never an older crashed one.
#[test]
#[ignore = "needs root: writes through wtmpdbd are for uid 0"]
fn boot_and_shutdown_write_through_the_daemon() {
    support::require_root();
    if support::tool("unshare").is_none() {
        return;
    }
    let boot_rows = |db: &Path| -> Vec<(i64, String, i64, Option<i64>, String, String)> {
        let c = rusqlite::Connection::open(db).unwrap();
        // (An empty file until the daemon's first write.)
        c.execute_batch(
            "CREATE TABLE IF NOT EXISTS wtmp(ID INTEGER PRIMARY KEY, Type INTEGER, User TEXT NOT NULL,
               Login INTEGER, Logout INTEGER, TTY TEXT, RemoteHost TEXT, Service TEXT) STRICT;",
        )
        .unwrap();
        let mut s = c
            .prepare("SELECT Type, User, Login, Logout, TTY, RemoteHost FROM wtmp ORDER BY ID")
            .unwrap();
        s.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    };
    let release = wtmpdb::ops::kernel_release();
    let check_boot = |row: &(i64, String, i64, Option<i64>, String, String)| {
        assert_eq!((row.0, row.1.as_str(), row.4.as_str()), (1, "reboot", "~"));
        assert_eq!(row.5, release);
        assert!(
            row.2.abs_diff(wtmpdb::time::boot_time()) < 5 * USEC_PER_SEC as u64,
            "{row:?}"
        );
    };

    // -f varlink.
    let p = Place::new();
    let d = Wtmpdbd::start(&daemon_bin(), &p.path("d1"), &[]);
    // Another user's boot is refused by the daemon.
    let err = failed(p.run(false, &NOBODY, &d.socket, &["boot", "-f", "varlink"]));
    assert!(err.contains("PermissionDenied"), "{err}");
    ok(p.run(false, &[], &d.socket, &["boot", "-f", "varlink"]));
    ok(p.run(false, &[], &d.socket, &["shutdown", "-f", "varlink"]));
    let rows = boot_rows(&d.db);
    assert_eq!(rows.len(), 1, "{rows:?}");
    check_boot(&rows[0]);
    assert!(
        rows[0].3.is_some(),
        "shutdown -f varlink did not close the boot: {rows:?}"
    );
    assert!(!p.path("varlink").exists());
    drop(d);

    // Without -f: the daemon answers, so it takes the writes.
    let d = Wtmpdbd::start(&daemon_bin(), &p.path("d2"), &[]);
    ok(p.run(true, &[], &d.socket, &["boot"]));
    assert_eq!(
        ok(p.run(true, &[], &d.socket, &["boot"])),
        "Boot entry already recorded.\n"
    );
    let rows = boot_rows(&d.db);
    assert_eq!(rows.len(), 1, "{rows:?}");
    check_boot(&rows[0]);
    assert_eq!(rows[0].3, None);
    ok(p.run(true, &[], &d.socket, &["shutdown"]));
    assert!(boot_rows(&d.db)[0].3.is_some());
    // An older boot that crashed is open; the current one is closed: nothing to close.
    rusqlite::Connection::open(&d.db)
        .unwrap()
        .execute(
            "INSERT INTO wtmp (Type, User, Login, TTY, RemoteHost) VALUES (1, 'reboot', 1000, '~', 'old')",
            [],
        )
        .unwrap();
    let err = failed(p.run(true, &[], &d.socket, &["shutdown"]));
    assert!(err.contains("Open entry for tty '~' not found"), "{err}");
    let rows = boot_rows(&d.db);
    assert_eq!(
        rows[1].3, None,
        "shutdown closed the old crashed boot: {rows:?}"
    );
    // Nothing reached the default file.
    assert!(!p.default_db().exists());

    // -f varlink without a daemon: one error, no file named varlink.
    let none = p.path("no-daemon/socket");
    let err = failed(p.run(false, &[], &none, &["boot", "-f", "varlink"]));
    assert!(err.contains("Cannot connect to wtmpdbd"), "{err}");
    assert!(!p.path("varlink").exists());
}

/// Failed logins through the daemon: root records and reads them (our RecordFailure,
/// ReadFailures, FailedNotice); `nobody` can do neither, nor read the file beside the
/// daemon's database; `wtmpdb lastb -f varlink` prints what the file prints.
#[test]
#[ignore = "needs root: failures through wtmpdbd are for uid 0"]
fn failures_through_the_daemon_are_root_s_alone() {
    use std::os::unix::fs::PermissionsExt;
    use wtmpdb::storage::{NewFailure, failures_path};
    support::require_root();
    let p = Place::new();
    let d = Wtmpdbd::start(&daemon_bin(), &p.path("d1"), &[]);
    let timeout = std::time::Duration::from_secs(5);
    let mut c = wtmpdb::varlink::Client::connect(&d.socket, timeout).unwrap();
    let t = 1_796_552_945 * USEC_PER_SEC;
    for (i, user) in ["root", "hunter2"].iter().enumerate() {
        c.record_failure(&NewFailure {
            time: t + i as i64 * 60 * USEC_PER_SEC,
            user,
            tty: Some("ssh:notty"),
            host: Some("192.0.2.7"),
            service: Some("sshd"),
            pid: Some(77),
        })
        .unwrap();
    }
    let file = failures_path(&d.db);
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let through = ok(p.run(false, &[], &d.socket, &["lastb", "-f", "varlink"]));
    let direct = ok(p.run(
        false,
        &[],
        &d.socket,
        &["lastb", "-f", d.db.to_str().unwrap()],
    ));
    let body = |s: &str| s.split("\n\n").next().unwrap().to_string();
    assert_eq!(body(&through), body(&direct));
    assert!(
        through.starts_with("hunter2  ssh:notty    192.0.2.7 "),
        "{through}"
    );
    // nobody: refused by the daemon and by the file, never the data.
    let o = p.run(false, &NOBODY, &d.socket, &["lastb", "-f", "varlink"]);
    assert!(o.stdout.is_empty());
    let err = failed(o);
    assert!(err.contains("PermissionDenied"), "{err}");
    let o = p.run(
        false,
        &NOBODY,
        &d.socket,
        &["lastb", "-f", d.db.to_str().unwrap()],
    );
    assert!(o.stdout.is_empty());
    let err = failed(o);
    assert!(err.contains("readable only by root"), "{err}");
    // The notice: root's one attempt, told once.
    let n = c.failed_notice("root", t + 3600 * USEC_PER_SEC).unwrap();
    assert_eq!(n.count, 1);
    assert_eq!(n.last.unwrap().host.as_deref(), Some("192.0.2.7"));
    assert_eq!(
        c.failed_notice("root", t + 7200 * USEC_PER_SEC)
            .unwrap()
            .count,
        0
    );
}

/// `wtmpdb lastb` without `-f`: a caller who may not read the failures' file reads through
/// the daemon when the daemon lets it (its `--readers` group); anyone else gets the file's
/// one line, not the daemon's refusal, and never the data.
#[test]
#[ignore = "needs root: a root-only failures' file, users who cannot read it, a mount namespace"]
fn lastb_without_f_reads_through_the_daemon_for_its_readers_group_only() {
    use wtmpdb::storage::{NewFailure, failures_path};
    support::require_root();
    if support::tool("unshare").is_none() || support::tool("setpriv").is_none() {
        return;
    }
    let p = Place::new();
    let db = p.default_db();
    let d = Wtmpdbd::start_at(
        &daemon_bin(),
        &p.path("run/socket"),
        &db,
        &["--readers", "65534"],
    );
    let timeout = std::time::Duration::from_secs(5);
    let mut c = wtmpdb::varlink::Client::connect(&d.socket, timeout).unwrap();
    c.record_failure(&NewFailure {
        time: 1_796_552_945 * USEC_PER_SEC,
        user: "hunter2",
        tty: Some("ssh:notty"),
        host: Some("192.0.2.7"),
        service: Some("sshd"),
        pid: None,
    })
    .unwrap();
    drop(c);
    let file = failures_path(&db);
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(
        (meta.mode() & 0o777, meta.gid()),
        (0o640, 65534),
        "the readers' group's"
    );
    // Root's alone now: the group reads only through the daemon.
    for f in std::fs::read_dir(db.parent().unwrap()).unwrap() {
        let f = f.unwrap().path();
        if f.to_string_lossy().contains("-failed") {
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    }
    let root = ok(p.run(true, &[], &d.socket, &["lastb"]));
    assert!(root.starts_with("hunter2 "), "{root}");
    // nobody (gid 65534, the readers' group): through the daemon, the same lines.
    let group = ok(p.run(true, &NOBODY, &d.socket, &["lastb"]));
    assert_eq!(group, root);
    // Another user: one line, no data.
    let other = [
        "setpriv",
        "--reuid=65533",
        "--regid=65533",
        "--clear-groups",
    ];
    let o = p.run(true, &other, &d.socket, &["lastb"]);
    assert!(o.stdout.is_empty());
    let err = failed(o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("readable only by root"), "{err}");
}

/// `wtmpdb lastb` without `-f` when no failures' file is at the default path: the daemon's
/// database may lie elsewhere (as `last` knows), so its failures are asked for, not "no
/// entries" printed over them; a caller it refuses hears the refusal.
#[test]
#[ignore = "needs root: a daemon of root's, a mount namespace"]
fn lastb_without_f_asks_the_daemon_when_there_is_no_file() {
    use wtmpdb::storage::NewFailure;
    support::require_root();
    if support::tool("unshare").is_none() || support::tool("setpriv").is_none() {
        return;
    }
    let p = Place::new();
    std::fs::create_dir_all(p.path("elsewhere")).unwrap();
    let db = p.path("elsewhere/wtmp.db");
    let d = Wtmpdbd::start_at(&daemon_bin(), &p.path("run/socket"), &db, &[]);
    let timeout = std::time::Duration::from_secs(5);
    let mut c = wtmpdb::varlink::Client::connect(&d.socket, timeout).unwrap();
    c.record_failure(&NewFailure {
        time: 1_796_552_945 * USEC_PER_SEC,
        user: "hunter2",
        tty: Some("ssh:notty"),
        host: Some("192.0.2.7"),
        service: Some("sshd"),
        pid: None,
    })
    .unwrap();
    drop(c);
    assert!(!p.default_db().exists());
    let root = ok(p.run(true, &[], &d.socket, &["lastb"]));
    assert!(root.starts_with("hunter2 "), "{root}");
    let o = p.run(true, &NOBODY, &d.socket, &["lastb"]);
    assert!(o.stdout.is_empty(), "{}", text(&o));
    let err = failed(o);
    assert!(err.contains("refused"), "{err}");
}
