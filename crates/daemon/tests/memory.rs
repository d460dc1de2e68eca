//! The daemon's memory under hostile readers: `nobody` opens 2,048 connections at once, each
//! asking for the whole of a 300,000-row table (ReadAll, a stream it never reads, oneway
//! calls, refused calls, large bad messages), while root logs in. The daemon's peak resident
//! memory (VmHWM) must stay under [`CAP_MIB`], it must come back near idle afterwards, the
//! login must complete, and its log must stay short.

#[path = "../../../tests/support/mod.rs"]
mod support;

// The direct rusqlite calls below need SQLite loaded (see wtmpdb::sqlite).
wtmpdb::load_sqlite_at_start!();

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The bound the README states for the daemon's resident memory under these clients: the
/// issue's target. Measured: 35 to 38 MiB, most of it one whole-table read (a reply of up
/// to 16 MiB, SQLite's cache and sort keys); a connection waiting for a call holds no
/// thread (with a thread each, as before the poller: 80 to 92 MiB).
const CAP_MIB: u64 = 64;
/// Connections of `nobody`, as the issue measured (the daemon serves 2,048 at once).
const CONNECTIONS: usize = 2048;
const ROWS: i64 = 300_000;
/// Past this the daemon is killed (the machine is shared): the test has failed anyway.
const ABORT_MIB: u64 = 2048;

/// A field of /proc/PID/status, in KiB.
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Where the daemon's memory is, for the report: its threads, and the resident anonymous and
/// file-backed pages (/proc/PID/smaps_rollup).
fn memory_breakdown(pid: u32) -> String {
    let threads = status_kib(pid, "Threads:").unwrap_or(0);
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let field = |name: &str| {
        rollup
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("?")
            .to_string()
    };
    format!(
        "threads {threads}, Rss {} KiB (anonymous {} KiB, file {} KiB)",
        field("Rss:"),
        field("Pss_Anon:"),
        field("Pss_File:"),
    )
}

/// Upstream's table (no index: the readers' costliest order, keys sorted in memory), with
/// `rows` sessions of realistic sizes.
fn upstream_database(db: &Path, rows: i64) {
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch(&format!(
        "CREATE TABLE wtmp(ID INTEGER PRIMARY KEY, Type INTEGER, User TEXT NOT NULL,
             Login INTEGER, Logout INTEGER, TTY TEXT, RemoteHost TEXT, Service TEXT) STRICT;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
         INSERT INTO wtmp(Type, User, Login, Logout, TTY, RemoteHost, Service)
         SELECT 3, printf('user%03d', i % 400), 1600000000000000 + i * 60000000,
                1600000000000000 + i * 60000000 + 3600000000, 'pts/' || (i % 200),
                printf('192.0.2.%d', i % 250), 'sshd' FROM n;"
    ))
    .unwrap();
}

fn call(s: &mut UnixStream, method: &str, params: Value) -> Value {
    let mut m = serde_json::to_vec(&json!({"method": method, "parameters": params})).unwrap();
    m.push(0);
    s.write_all(&m).unwrap();
    let mut buf = Vec::new();
    let mut byte = [0u8; 4096];
    loop {
        let n = s.read(&mut byte).unwrap();
        assert!(n > 0, "the daemon closed the connection");
        buf.extend_from_slice(&byte[..n]);
        if buf.last() == Some(&0) {
            buf.pop();
            return serde_json::from_slice(&buf).unwrap();
        }
    }
}

/// The daemon, killed when the test ends however it ends (one left running with the attack
/// queued would take the machine's memory).
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
#[ignore = "needs root: runs the attack as nobody and logs in as root"]
fn hostile_readers_do_not_grow_the_daemon_past_its_cap() {
    support::require_root();
    let dir = tempfile::tempdir().unwrap();
    support::chmod(dir.path(), 0o755);
    let db = dir.path().join("db/wtmp.db");
    let socket = dir.path().join("run/socket");
    let made = Instant::now();
    upstream_database(&db, ROWS);
    eprintln!("{ROWS} rows in {:.1} s", made.elapsed().as_secs_f64());
    let log = dir.path().join("daemon.log");
    // WTMPDBD_UNDER_TEST: another build to measure the same way (the figures before a change).
    let bin = std::env::var_os("WTMPDBD_UNDER_TEST")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_wtmpdbd").into());
    let daemon = Killed(
        Command::new(bin)
            .arg("--socket")
            .arg(&socket)
            .arg("--database")
            .arg(&db)
            // Every connection of nobody's served: the bound must hold with all of them at once.
            .args([
                "--max-per-user",
                "2048",
                "--write-timeout",
                "5",
                "--verbose",
            ])
            .stdin(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let pid = daemon.0.id();
    let t = Instant::now();
    while UnixStream::connect(&socket).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "wtmpdbd did not start"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut root = UnixStream::connect(&socket).unwrap();
    root.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    assert_eq!(
        call(&mut root, "org.openSUSE.wtmpdb.Ping", json!({}))["parameters"]["Alive"],
        true
    );
    std::thread::sleep(Duration::from_millis(300));
    let idle = status_kib(pid, "VmRSS:").unwrap();

    // The watcher: the peak as it happens, and the daemon killed if it runs away.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let stop = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut peak = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let Some(rss) = status_kib(pid, "VmRSS:") else {
                    break;
                };
                peak = peak.max(rss);
                if rss > ABORT_MIB * 1024 {
                    // SAFETY: kill has no memory preconditions; pid is our child's.
                    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            peak
        })
    };

    let script = include_str!("attack.py");
    let started = Instant::now();
    let Some(mut attack) = support::nobody_runs_python(
        script,
        &[socket.as_os_str(), CONNECTIONS.to_string().as_ref()],
        "ready",
    ) else {
        return;
    };
    let opened = started.elapsed();
    // Root's logins while every connection is busy, each on a connection of its own as
    // pam_wtmpdb makes them: they must complete; their latencies are printed for the README
    // (a benchmark figure: the only bound asserted is a generous one).
    std::thread::sleep(Duration::from_secs(1));
    let mut logins = Vec::new();
    let mut r = Value::Null;
    let mut breakdown = String::new();
    let until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < until {
        let t = Instant::now();
        let mut c = UnixStream::connect(&socket).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        r = call(
            &mut c,
            "org.openSUSE.wtmpdb.Login",
            json!({"Type": 3, "User": "root-under-attack", "LoginTime": 1_900_000_000_000_000i64, "TTY": "pts/999"}),
        );
        logins.push(t.elapsed());
        if r["parameters"]["ID"].as_i64().is_none() {
            break;
        }
        if logins.len() == 20 {
            breakdown = memory_breakdown(pid);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let login = *logins.iter().max().unwrap();
    logins.sort();
    let pct = |p: usize| logins[(logins.len() * p / 100).min(logins.len() - 1)];
    // The attack's counts go to its stderr, as the test's own lines.
    drop(attack.stdin.take());
    attack.wait().unwrap();
    let attacked = started.elapsed();
    drop(root);
    // Back near idle once the connections are gone (a stream's worker notices at its next
    // write, within the write timeout; idle workers end a second later): the main thread
    // (accepting), the poller and the committer are left.
    let t = Instant::now();
    while status_kib(pid, "Threads:").is_some_and(|n| n > 3) && t.elapsed().as_secs() < 20 {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let peak_seen = watcher.join().unwrap();
    let hwm = status_kib(pid, "VmHWM:");
    let after = status_kib(pid, "VmRSS:");
    drop(daemon);
    let log = std::fs::read_to_string(&log).unwrap();
    let lines = log.lines().count();
    eprintln!(
        "{CONNECTIONS} connections opened in {:.1} s, attack {:.1} s\n\
         daemon RSS idle {} KiB, peak {} KiB (VmHWM {:?} KiB), after {:?} KiB\n\
         root's logins under attack: {} (p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms); \
         daemon log: {lines} lines\n\
         mid-attack: {breakdown}",
        opened.as_secs_f64(),
        attacked.as_secs_f64(),
        idle,
        peak_seen,
        hwm,
        after,
        logins.len(),
        pct(50).as_secs_f64() * 1000.0,
        pct(99).as_secs_f64() * 1000.0,
        login.as_secs_f64() * 1000.0,
    );
    for l in log.lines().filter(|l| l.contains("more ")).take(5) {
        eprintln!("  {l}");
    }
    assert!(
        r["parameters"]["ID"].as_i64().is_some(),
        "root's login: {r}"
    );
    let hwm = hwm.expect("the daemon survived the attack");
    assert!(
        hwm <= CAP_MIB * 1024,
        "peak RSS {hwm} KiB, past the cap of {CAP_MIB} MiB"
    );
    let after = after.unwrap();
    assert!(
        after <= idle + 16 * 1024,
        "RSS {after} KiB after the attack, idle was {idle} KiB"
    );
    assert!(
        login < Duration::from_secs(10),
        "root's login took {login:?}"
    );
    // Refusals are logged at a bounded rate (a few lines a second, plus their counts).
    let secs = attacked.as_secs() + 4;
    assert!(lines as u64 <= 40 * secs, "{lines} log lines in {secs} s");
}
