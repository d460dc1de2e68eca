//! The daemon owns the database: `wtmpdb secure` hands over a database that every user can
//! open (as upstream and Debian leave theirs, 0644), rows kept, and then each attack a local
//! user had on the files fails, while every user still reads every row through the real
//! `wtmpdbd`:
//!
//! * holding a read transaction that pins the log (issue 17, point 3): nobody cannot open
//!   the database;
//! * holding a lock on a side file that sends logins to the spool (point 2): nobody cannot
//!   open the side files;
//! * Debian's logrotate stanza (point 1): the file it creates is the daemon's too (`create`
//!   copies the old file's owner and mode), and every row written after is in it.
//!
//! The daemon's memory under 2,048 hostile connections (point 4) is `crates/daemon/tests/
//! memory.rs`. A process that opened a file before the hand-over keeps its descriptor; the
//! command names it.

#[path = "../../../tests/support/mod.rs"]
mod support;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use wtmpdb::session::{CloseTarget, SessionItems};
use wtmpdb::target::Target;
use wtmpdb::writer::Writer;

const BIN: &str = env!("CARGO_BIN_EXE_wtmpdb");

fn daemon_bin() -> PathBuf {
    support::workspace_binary("wtmpdbd", "crates/daemon")
}

/// One login and its logout through `w`, as the PAM module writes them.
fn session(w: &Writer, user: &str) {
    let items = SessionItems::from_bytes(user.as_bytes(), Some(b"pts/7"), None, Some(b"sshd"));
    let logged = w.open(&items, 1, wtmpdb::time::now()).unwrap();
    w.close(
        CloseTarget::Id(logged.session.id, None),
        Some(logged.via),
        &items,
        1,
        wtmpdb::time::now(),
    )
    .row
    .unwrap();
}

#[track_caller]
fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "{}: {}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A directory nobody can enter, with a copy of the command nobody can run.
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
        for d in ["var", "var/lib", "var/lib/wtmpdb"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
            support::chmod(&dir.path().join(d), 0o755);
        }
        Place { dir, bin }
    }

    /// The database, at the default path in the namespace of [`Place::wtmpdb`].
    fn db(&self) -> PathBuf {
        self.dir.path().join("var/lib/wtmpdb/wtmp.db")
    }

    /// `wtmpdb args` as root, or as nobody with `nobody`, with the daemon's socket, in a
    /// mount namespace whose /var is the place's (when root).
    fn wtmpdb(&self, nobody: bool, socket: &Path, args: &[&str]) -> Output {
        let mut argv: Vec<String> = Vec::new();
        if support::is_root() {
            argv.extend(support::in_a_namespace_with_var(
                &self.dir.path().join("var"),
            ));
        }
        if nobody {
            argv.extend(
                [
                    "setpriv",
                    "--reuid=65534",
                    "--regid=65534",
                    "--clear-groups",
                ]
                .map(String::from),
            );
        }
        argv.push(self.bin.display().to_string());
        argv.extend(args.iter().map(|s| s.to_string()));
        Command::new(&argv[0])
            .args(&argv[1..])
            .current_dir(self.dir.path())
            .env("WTMPDB_SOCKET", socket)
            .env("TZ", "UTC")
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

/// Nobody tries what any user could do to a world-readable database: open it and hold a
/// read transaction, and open its `-shm` file to lock it. Returns what nobody's Python
/// printed: `denied denied` when both fail for want of permission.
fn nobodys_attacks(db: &Path) -> String {
    let script = "import os, sqlite3, sys\n\
        out = []\n\
        try:\n\
        \x20   c = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True)\n\
        \x20   c.execute('BEGIN')\n\
        \x20   c.execute('SELECT count(*) FROM wtmp').fetchone()\n\
        \x20   out.append('pinned')\n\
        except sqlite3.Error as e:\n\
        \x20   out.append('denied' if 'unable to open' in str(e) else 'error:' + str(e))\n\
        try:\n\
        \x20   os.open(sys.argv[1] + '-shm', os.O_RDONLY)\n\
        \x20   out.append('opened-shm')\n\
        except PermissionError:\n\
        \x20   out.append('denied')\n\
        print(' '.join(out), flush=True)\n";
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .arg(db)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn mode(p: &Path) -> (u32, u32, u32) {
    let m = std::fs::metadata(p).unwrap();
    (m.mode() & 0o7777, m.uid(), m.gid())
}

fn users(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| l.contains("pts/7"))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect()
}

#[test]
#[ignore = "needs root: the hand-over makes files root's, and nobody's attacks need setpriv"]
fn secure_hands_over_a_world_readable_database_and_each_attack_fails() {
    support::require_root();
    if support::tool("logrotate").is_none() || !Path::new("/usr/bin/python3").exists() {
        support::missing("logrotate and /usr/bin/python3");
        return;
    }
    let place = Place::new();
    let db = place.db();
    // The direct mode's database, as upstream's and Debian's: every user may open it.
    let direct = Writer::new(Target::File(db.clone()));
    for u in ["before1", "before2"] {
        session(&direct, u);
    }
    assert_eq!(mode(&db).0, 0o644);
    assert_eq!(
        nobodys_attacks(&db),
        "pinned opened-shm",
        "the attacks work on 0644"
    );

    // A reader of nobody's that opened it before the hand-over is named.
    let holder = support::nobody_runs_python(
        "import sqlite3, sys\n\
         c = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True)\n\
         c.execute('BEGIN'); c.execute('SELECT count(*) FROM wtmp').fetchone()\n\
         print('reading', flush=True)\n\
         sys.stdin.read()\n",
        &[db.as_os_str()],
        "reading",
    )
    .unwrap();
    let socket = place.dir.path().join("run/socket");
    let out = place.wtmpdb(false, &socket, &["secure", "-f", db.to_str().unwrap()]);
    let stdout = ok(Output {
        status: out.status,
        stdout: out.stdout.clone(),
        stderr: out.stderr.clone(),
    });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("mode 0600 (was 0644)"), "{stdout}");
    assert!(
        stderr.contains(&format!("process {} (python3, user 65534)", holder.id())),
        "the holder is named: {stderr}"
    );
    drop(holder); // its stdin closes: it ends
    for f in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{f}", db.display()));
        assert_eq!(mode(&p), (0o600, 0, 0), "{}", p.display());
    }
    // Nothing to do the second time.
    let again = ok(place.wtmpdb(false, &socket, &["secure", "-f", db.to_str().unwrap()]));
    assert!(again.contains("nothing changed"), "{again}");

    // The daemon owns it now; no warning about its mode.
    let log = place.dir.path().join("wtmpdbd.log");
    let d = support::Wtmpdbd::start_at_logging(&daemon_bin(), &socket, &db, &[], &log);
    let through = Writer::new(Target::Daemon {
        socket: socket.clone(),
    });
    for u in ["after1", "after2"] {
        session(&through, u);
    }
    assert_eq!(
        nobodys_attacks(&db),
        "denied denied",
        "nobody can neither pin the log nor lock a side file"
    );
    // Every row, for every user, through the daemon.
    let all = ["after2", "after1", "before2", "before1"];
    assert_eq!(users(&ok(place.wtmpdb(true, &socket, &["last"]))), all);
    assert_eq!(
        users(&ok(place.wtmpdb(true, &socket, &["last", "-f", "varlink"]))),
        all
    );

    // Debian's stanza: the new file is the daemon's too, and gets the next rows.
    std::thread::sleep(Duration::from_millis(1500)); // at rest: every row in the file
    let conf = place.dir.path().join("wtmpdb.logrotate");
    std::fs::write(
        &conf,
        format!(
            "{} {{\n\tmissingok\n\tyearly\n\tcreate\n\tnocompress\n\trotate 4\n}}\n",
            db.display()
        ),
    )
    .unwrap();
    ok(Command::new("logrotate")
        .arg("-f")
        .arg("-s")
        .arg(place.dir.path().join("logrotate.state"))
        .arg(&conf)
        .stdin(Stdio::null())
        .output()
        .unwrap());
    assert_eq!(
        mode(&db),
        (0o600, 0, 0),
        "logrotate's create keeps the mode"
    );
    session(&through, "rotated");
    assert_eq!(nobodys_attacks(&db), "denied denied");
    assert_eq!(
        users(&ok(place.wtmpdb(true, &socket, &["last"]))),
        ["rotated"]
    );
    let rotated = PathBuf::from(format!("{}.1", db.display()));
    assert_eq!(
        users(&ok(place.wtmpdb(
            false,
            &socket,
            &["last", "-f", rotated.to_str().unwrap()]
        ))),
        all,
        "the rotated file holds every earlier row"
    );
    drop(d);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(!logged.contains("wtmpdb secure"), "{logged}");
}

#[test]
#[ignore = "needs root: the daemon's database is root's"]
fn the_daemon_names_a_database_others_may_open_and_the_command_that_hands_it_over() {
    support::require_root();
    let place = Place::new();
    let db = place.db();
    session(&Writer::new(Target::File(db.clone())), "direct");
    let socket = place.dir.path().join("run/socket");
    let log = place.dir.path().join("wtmpdbd.log");
    let d = support::Wtmpdbd::start_at_logging(&daemon_bin(), &socket, &db, &[], &log);
    drop(d);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("other users may open it") && logged.contains("wtmpdb secure -f"),
        "{logged}"
    );
}

#[test]
fn secure_refuses_what_it_cannot_hand_over_and_changes_nothing() {
    let place = Place::new();
    let socket = place.dir.path().join("run/socket");
    let foreign = place.dir.path().join("notes.db");
    std::fs::write(&foreign, b"not a database, but readable\n").unwrap();
    support::chmod(&foreign, 0o644);
    for (args, message) in [
        (
            vec!["secure", "-f", foreign.to_str().unwrap()],
            if support::is_root() {
                "not a database"
            } else {
                "needs root"
            },
        ),
        (vec!["secure", "-f", "varlink"], "name the database file"),
        (vec!["secure", "-f", "/dev/null"], ""),
        (
            vec!["secure", "--group", "no such group here", "-f", "x.db"],
            "no group",
        ),
    ] {
        let out = place.wtmpdb(false, &socket, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: one line: {stderr}");
    }
    assert_eq!(mode(&foreign).0, 0o644, "nothing changed");
}
