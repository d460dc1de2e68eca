//! Benchmark: what a direct-mode session (login + logout through the one write path, as the
//! PAM module writes it) costs while another process pins the WAL log with a read
//! transaction, as any user who may read the database can.
//!
//! ```text
//! cargo run --release --example pinned_log [-- POINT...]
//! ```
//!
//! A child process (this program, run with `--pin DB`) opens the database, runs `BEGIN;
//! SELECT count(*) FROM wtmp` and holds that snapshot until its stdin closes. Sessions are
//! then written one after the other; at each point (default 0, 500, 1000, 2000 sessions
//! written) a batch of [`BATCH`] sessions is timed (median and slowest), and this process's read calls and bytes
//! read (`/proc/self/io`) are counted per session, with the sizes of `-wal` and of the spool.
//! Then root's reader merges the spool once, under the pin, as `wtmpdb last` does; the pin
//! ends, sessions are written until the spool is empty (each merges a part), and the
//! table and spool are counted.

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use wtmpdb::session::{CloseTarget, SessionItems};
use wtmpdb::target::Target;
use wtmpdb::writer::Writer;

// The direct rusqlite calls below need SQLite loaded (see wtmpdb::sqlite).
wtmpdb::load_sqlite_at_start!();

/// Sessions timed at each point.
const BATCH: usize = 50;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--pin") {
        pin(Path::new(&args[2]));
        return;
    }
    let mut points: Vec<usize> = args[1..].iter().map(|a| a.parse().unwrap()).collect();
    if points.is_empty() {
        points = vec![0, 500, 1000, 2000];
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wtmp.db");
    let w = Writer::new(Target::File(db.clone()));
    session(&w, "first");
    let mut pinner = if std::env::var("PIN").is_ok_and(|v| v == "nobody") {
        // As `nobody` with Debian's python3 (root runs this): the database's directory
        // must be open to it, as /var/lib/wtmpdb is.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg("/usr/bin/python3")
            .arg("-c")
            .arg(PIN_PY);
        c
    } else {
        let mut c = Command::new(std::env::current_exe().unwrap());
        c.arg("--pin");
        c
    };
    let mut pinner = pinner
        .arg(&db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(pinner.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "pinned");
    println!("sessions  median ms  max ms  reads/session  MB read/session  -wal MB  spooled");
    let mut written = 0;
    let mut total = 1;
    for &point in &points {
        while written < point {
            session(&w, &format!("u{written}"));
            written += 1;
            total += 1;
        }
        let (calls, bytes) = io();
        let mut ms = Vec::new();
        for i in 0..BATCH {
            let t = Instant::now();
            session(&w, &format!("b{point}-{i}"));
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
            total += 1;
        }
        ms.sort_by(f64::total_cmp);
        let (calls2, bytes2) = io();
        println!(
            "{point:>8}  {:>9.2}  {:>6.2}  {:>13}  {:>15.2}  {:>7.1}  {:>7}",
            ms[BATCH / 2],
            ms[BATCH - 1],
            (calls2 - calls) / BATCH as u64,
            (bytes2 - bytes) as f64 / BATCH as f64 / 1e6,
            size(&wal(&db)) as f64 / 1e6,
            spooled(&db),
        );
    }
    // What root's `wtmpdb last` does before it reads, the reader still there: it merges what
    // waits (into the log, which then passes its bound by what was merged).
    let t = Instant::now();
    let before = spooled(&db);
    let left = wtmpdb::session::spool::merge_before_read(&db, &wtmpdb::journal::Events::off());
    println!(
        "root's read under the pin: merged {} records in {:.0} ms ({left:?}); -wal {:.1} MB",
        before - spooled(&db),
        t.elapsed().as_secs_f64() * 1000.0,
        size(&wal(&db)) as f64 / 1e6
    );
    drop(pinner.stdin.take());
    pinner.wait().unwrap();
    // The sessions after the pin merge what waits, 200 records a write: until the spool is
    // empty (or 100 sessions), each timed.
    let mut after = Vec::new();
    while after.len() < 100 && (after.is_empty() || spooled(&db) > 0) {
        let t = Instant::now();
        session(&w, &format!("after{}", after.len()));
        after.push(t.elapsed().as_secs_f64() * 1000.0);
        total += 1;
    }
    let ms = after[0];
    let drained = after.len();
    after.sort_by(f64::total_cmp);
    println!(
        "pin ended: {drained} sessions merged the spool, median {:.2} ms, slowest {:.2} ms",
        after[drained / 2],
        after[drained - 1]
    );
    // Root's reader merges what is left, as `wtmpdb last` does before it reads.
    while wtmpdb::session::spool::waiting(&db).unwrap() > 0 {
        if wtmpdb::session::spool::merge_before_read(&db, &wtmpdb::journal::Events::off())
            == wtmpdb::session::spool::BeforeRead::Nothing
        {
            break;
        }
    }
    let c = rusqlite::Connection::open(&db).unwrap();
    let (rows, open): (i64, i64) = c
        .query_row(
            "SELECT count(*), count(*) - count(Logout) FROM wtmp",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    println!(
        "first session after {ms:.2} ms; -wal {:.1} MB, spooled {}; rows {rows} of {total}, {open} open",
        size(&wal(&db)) as f64 / 1e6,
        spooled(&db)
    );
}

/// One login and its logout, as the PAM module writes them.
fn session(w: &Writer, user: &str) {
    let items = SessionItems::from_bytes(user.as_bytes(), Some(b"pts/7"), None, Some(b"sshd"));
    let logged = w.open(&items, 1, wtmpdb::time::now()).unwrap();
    let closed = w.close(
        CloseTarget::Id(logged.session.id, None),
        Some(logged.via),
        &items,
        1,
        wtmpdb::time::now(),
    );
    closed.row.unwrap();
}

/// The pinning reader as `nobody` runs it: read-only, as the file's mode allows.
const PIN_PY: &str = "import sqlite3, sys\n\
c = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True, isolation_level=None)\n\
c.execute('BEGIN')\n\
c.execute('SELECT count(*) FROM wtmp').fetchone()\n\
print('pinned', flush=True)\n\
sys.stdin.read()\n";

/// Holds a read transaction on `db` until stdin closes.
fn pin(db: &Path) {
    let c = rusqlite::Connection::open(db).unwrap();
    c.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    )
    .unwrap();
    c.execute_batch("BEGIN").unwrap();
    let _: i64 = c
        .query_row("SELECT count(*) FROM wtmp", [], |r| r.get(0))
        .unwrap();
    println!("pinned");
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

/// This process's read calls and bytes read so far.
fn io() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/self/io").unwrap();
    let get = |key: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    (get("syscr:"), get("rchar:"))
}

fn wal(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push("-wal");
    p.into()
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn spooled(db: &Path) -> usize {
    wtmpdb::session::spool::waiting(db).unwrap_or(0)
}
