//! The daemon on a real socket with a real database: bounds, bad input, the wire format.
//! Each test starts its own `wtmpdbd` on a socket in a temporary directory.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wtmpdbd::methods::TEST_PANIC_METHOD;

#[path = "../../../tests/support/mod.rs"]
mod support;

// The direct rusqlite calls below need SQLite loaded (see wtmpdb::sqlite).
wtmpdb::load_sqlite_at_start!();

/// Child process mode of this test binary (see `support::hold_lock`). Not a test by itself.
#[test]
#[ignore = "child-process helper, run by the tests that hold a database's lock"]
fn child_process_lock_holder() {
    support::lock_holder_child()
}

struct Daemon {
    child: Child,
    dir: tempfile::TempDir,
}

impl Daemon {
    fn start(args: &[&str]) -> Daemon {
        Daemon::start_on(tempfile::tempdir().unwrap(), args)
    }

    /// As [`Daemon::start`], in `dir` (whose `db/wtmp.db` may be there already).
    fn start_on(dir: tempfile::TempDir, args: &[&str]) -> Daemon {
        Daemon::start_with(dir, args, &[])
    }

    /// As [`Daemon::start_on`], with the variables `env` set.
    fn start_with(dir: tempfile::TempDir, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let socket = dir.path().join("run/socket");
        let db = dir.path().join("db/wtmp.db");
        let child = Command::new(env!("CARGO_BIN_EXE_wtmpdbd"))
            .arg("--socket")
            .arg(&socket)
            .arg("--database")
            .arg(&db)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let d = Daemon { child, dir };
        let t = Instant::now();
        while UnixStream::connect(d.socket()).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "the daemon did not start"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        d
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("run/socket")
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("db/wtmp.db")
    }

    fn connect(&self) -> Conn {
        let s = UnixStream::connect(self.socket()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Conn { s, buf: Vec::new() }
    }

    /// Runs the Python client `script` as nobody against this daemon, with its socket, a
    /// findings file and `extra` as arguments; once it says `ready` and has run its checks
    /// (it waits for its standard input to close), returns the JSON it wrote there, and the
    /// line itself (printed too). None when Python cannot run as nobody here (see
    /// `support::nobody_runs_python`).
    fn nobody_finds(&self, script: &str, extra: &[&str]) -> Option<(Value, String)> {
        let out = self.dir.path().join("seen.json");
        std::fs::write(&out, "").unwrap();
        support::chmod(&out, 0o666);
        let (socket, found) = (self.socket(), out.clone());
        let mut args = vec![socket.as_os_str(), found.as_os_str()];
        args.extend(extra.iter().map(std::ffi::OsStr::new));
        let mut client = support::nobody_runs_python(script, &args, "ready")?;
        drop(client.stdin.take());
        assert!(client.wait().unwrap().success());
        let line = std::fs::read_to_string(&out).unwrap();
        eprintln!("{line}");
        let seen = serde_json::from_str(&line).expect("the client's findings");
        Some((seen, line))
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Conn {
    s: UnixStream,
    buf: Vec<u8>,
}

impl Conn {
    fn send_raw(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).unwrap();
    }

    /// The next reply, or None when the daemon closed the connection.
    fn reply(&mut self) -> Option<Value> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == 0) {
                let msg: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(serde_json::from_slice(&msg[..i]).unwrap());
            }
            let mut chunk = [0u8; 65536];
            match self.s.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("reading a reply: {e}"),
            }
        }
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        let mut m = serde_json::to_vec(&json!({"method": method, "parameters": params})).unwrap();
        m.push(0);
        self.send_raw(&m);
        self.reply().expect("a reply")
    }
}

const W: &str = "org.openSUSE.wtmpdb.";

fn error(v: &Value) -> &str {
    v["error"].as_str().unwrap_or("")
}

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn bad_input_gets_an_error_and_the_connection_carries_on() {
    let d = Daemon::start(&[]);
    let mut c = d.connect();
    for (raw, want) in [
        (&b"{not json\0"[..], "org.varlink.service.InvalidParameter"),
        (b"[1,2]\0", "org.varlink.service.InvalidParameter"),
        (b"\xff\xfe\0", "org.varlink.service.InvalidParameter"),
        (
            b"{\"parameters\":{}}\0",
            "org.varlink.service.InvalidParameter",
        ),
        (
            b"{\"method\":\"org.openSUSE.wtmpdb.Nope\"}\0",
            "org.varlink.service.MethodNotFound",
        ),
        (
            b"{\"method\":\"com.example.X\"}\0",
            "org.varlink.service.InterfaceNotFound",
        ),
        (
            b"{\"method\":\"org.openSUSE.wtmpdb.GetID\",\"parameters\":{\"TTY\":7}}\0",
            "org.varlink.service.InvalidParameter",
        ),
        (
            b"{\"method\":\"org.openSUSE.wtmpdb.GetID\",\"parameters\":{}}\0",
            "org.varlink.service.InvalidParameter",
        ),
        (
            b"{\"method\":\"org.openSUSE.wtmpdb.Ping\",\"parameters\":{\"x\":1}}\0",
            "org.varlink.service.InvalidParameter",
        ),
        (
            b"{\"method\":\"org.openSUSE.wtmpdb.Ping\",\"more\":\"yes\"}\0",
            "org.varlink.service.InvalidParameter",
        ),
    ] {
        c.send_raw(raw);
        let r = c.reply().expect("a reply");
        assert_eq!(error(&r), want, "{:?} -> {r}", String::from_utf8_lossy(raw));
    }
    // A string longer than any item, within the message bound: refused by name.
    let r = c.call(&format!("{W}GetID"), json!({"TTY": "x".repeat(5000)}));
    assert_eq!(error(&r), "org.varlink.service.InvalidParameter");
    assert_eq!(r["parameters"]["parameter"], "TTY");
    // Floats and integers beyond 64 bits are not IDs.
    let r = c.call(&format!("{W}Logout"), json!({"ID": 1.5, "LogoutTime": 1}));
    assert_eq!(error(&r), "org.varlink.service.InvalidParameter");
    let raw = format!(
        "{{\"method\":\"{W}Logout\",\"parameters\":{{\"ID\":18446744073709551616,\"LogoutTime\":1}}}}\0"
    );
    c.send_raw(raw.as_bytes());
    assert_eq!(
        error(&c.reply().unwrap()),
        "org.varlink.service.InvalidParameter"
    );
    // Deeply nested JSON: an error, not a stack overflow.
    let deep = format!("{}{}\0", "[".repeat(100_000 / 2), "]".repeat(100_000 / 2));
    let mut c2 = d.connect();
    c2.send_raw(deep.as_bytes());
    let r = c2.reply();
    assert!(r.is_none() || error(r.as_ref().unwrap()).contains("InvalidParameter"));
    // Still serving, on the same connection.
    let r = c.call(&format!("{W}Ping"), json!({}));
    assert_eq!(r["parameters"]["Alive"], true);
}

#[test]
fn an_oversized_message_is_refused_and_the_daemon_carries_on() {
    let mut d = Daemon::start(&["--max-message", "4096"]);
    let mut c = d.connect();
    let big = vec![b'x'; 100_000];
    // The daemon stops reading at the bound, so the write may fail part-way.
    let _ = c.s.write_all(&big);
    let r = c.reply().expect("an error before the close");
    assert_eq!(error(&r), "org.varlink.service.InvalidParameter");
    assert!(
        r["parameters"]["ErrorMsg"]
            .as_str()
            .unwrap()
            .contains("too long")
    );
    assert!(c.reply().is_none(), "closed after the error");
    let r = d.connect().call(&format!("{W}Ping"), json!({}));
    assert_eq!(r["parameters"]["Alive"], true);
    assert!(d.alive());
}

#[test]
fn a_slow_drip_client_is_dropped_at_the_message_deadline() {
    let d = Daemon::start(&["--message-timeout", "1.5", "--idle-timeout", "30"]);
    let mut c = d.connect();
    let msg = format!("{{\"method\":\"{W}Ping\"}}\0");
    let start = Instant::now();
    let mut dropped = false;
    // One byte every 200 ms: each read comes well within any per-read timeout, and the
    // message as a whole needs 4 s.
    for b in msg.as_bytes() {
        if c.s.write_all(&[*b]).is_err() {
            dropped = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        if start.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    let r = c.reply();
    let waited = start.elapsed();
    if let Some(r) = &r {
        assert!(
            r["parameters"]["ErrorMsg"]
                .as_str()
                .unwrap()
                .contains("in time"),
            "{r}"
        );
        assert!(c.reply().is_none(), "closed after the error");
    }
    assert!(r.is_some() || dropped);
    assert!(waited < Duration::from_secs(4), "dropped after {waited:?}");
    let r = d.connect().call(&format!("{W}Ping"), json!({}));
    assert_eq!(r["parameters"]["Alive"], true);
}

/// A bug in a call of root's ends that connection, not the thread serving it: the main
/// thread is one of those that accept and serve root's connections, and a panic that ended
/// it would end the daemon and every login after it (a panic ended a spare acceptor before,
/// and left fewer of them). The call that panics exists only in debug builds, and only when
/// the daemon was started with WTMPDB_TEST_PANIC set.
#[test]
#[ignore = "needs root: only root's connections are served by the accepting threads"]
fn a_panic_in_a_call_of_root_ends_that_connection_only() {
    let mut d = Daemon::start_with(
        tempfile::tempdir().unwrap(),
        &[],
        &[("WTMPDB_TEST_PANIC", "1")],
    );
    // More than the threads accepting (the main thread and its spares), one at a time.
    for i in 0..12 {
        let mut c = d.connect();
        c.send_raw(format!("{{\"method\":\"{TEST_PANIC_METHOD}\"}}\0").as_bytes());
        assert!(
            c.reply().is_none(),
            "call {i}: the connection ends without a reply"
        );
        assert!(d.alive(), "call {i}: the daemon still runs");
        let r = d.connect().call(&format!("{W}Ping"), json!({}));
        assert_eq!(r["parameters"]["Alive"], true, "call {i}: {r}");
    }
    // Logins still land.
    let r = d.connect().call(
        &format!("{W}Login"),
        json!({"Type": 7, "User": "after", "LoginTime": 1_700_000_000_000_000i64, "TTY": "pts/1"}),
    );
    assert!(r["parameters"]["ID"].as_i64().is_some(), "{r}");
}

/// The same for a user other than root, whose calls the workers answer: a panic ended the
/// worker without counting it out, and once as many calls had panicked as there are
/// workers (nine), no call of any user but root was answered again.
#[test]
#[ignore = "needs root: runs a client as nobody"]
fn a_panic_in_a_call_of_another_user_ends_that_connection_only() {
    support::require_root();
    let dir = tempfile::tempdir().unwrap();
    support::chmod(dir.path(), 0o755);
    let d = Daemon::start_with(dir, &[], &[("WTMPDB_TEST_PANIC", "1")]);
    let Some((seen, line)) = d.nobody_finds(include_str!("panics.py"), &[TEST_PANIC_METHOD]) else {
        return;
    };
    // Twelve calls that panic, more than the workers, each followed by a ping.
    for (i, r) in seen.as_array().unwrap().iter().enumerate() {
        assert_eq!(r, &json!(["closed", true]), "call {i}: {line}");
    }
    assert_eq!(seen.as_array().unwrap().len(), 12);
}

#[test]
fn an_idle_connection_is_closed() {
    let d = Daemon::start(&["--idle-timeout", "0.5"]);
    let mut c = d.connect();
    assert_eq!(
        c.call(&format!("{W}Ping"), json!({}))["parameters"]["Alive"],
        true
    );
    let t = Instant::now();
    assert!(c.reply().is_none());
    assert!(t.elapsed() < Duration::from_secs(3));
}

#[test]
fn calls_per_connection_and_connections_are_bounded() {
    let d = Daemon::start(&[
        "--max-requests",
        "3",
        "--max-connections",
        "2",
        "--max-per-user",
        "2",
    ]);
    let mut c = d.connect();
    for _ in 0..3 {
        assert_eq!(
            c.call(&format!("{W}Ping"), json!({}))["parameters"]["Alive"],
            true
        );
    }
    let r = c.call(&format!("{W}Ping"), json!({}));
    assert!(
        r["parameters"]["ErrorMsg"]
            .as_str()
            .unwrap()
            .contains("More than 3 calls")
    );
    assert!(c.reply().is_none());
    drop(c);
    std::thread::sleep(Duration::from_millis(200));
    // Root has 256 connections beyond the bound (no user can lock logins out); others
    // have the bound.
    let cap = if is_root() { 2 + 256 } else { 2 };
    let mut held: Vec<Conn> = (0..cap).map(|_| d.connect()).collect();
    for c in held.iter_mut().step_by(50) {
        assert_eq!(
            c.call(&format!("{W}Ping"), json!({}))["parameters"]["Alive"],
            true
        );
    }
    let mut over = d.connect();
    let r = over.reply().expect("told why");
    assert!(
        r["parameters"]["ErrorMsg"]
            .as_str()
            .unwrap()
            .contains("Too many connections"),
        "{r}"
    );
    assert!(over.reply().is_none());
    held.pop();
    std::thread::sleep(Duration::from_millis(200));
    let mut again = d.connect();
    assert_eq!(
        again.call(&format!("{W}Ping"), json!({}))["parameters"]["Alive"],
        true
    );
}

/// The poller's side (connections of users other than root; root's have a thread each, so
/// the tests above, run as root, do not reach it): `nobody` pipelines calls, sends bad input,
/// a message too long, a slow drip, leaves a connection idle, sends more long messages at
/// once than there are long turns, and reads while a stream it does not read holds the one
/// turn. Each bound holds as for root, and the waiting read is answered in full.
#[test]
#[ignore = "needs root: runs a client as nobody"]
fn a_client_other_than_root_is_served_by_the_poller_within_every_bound() {
    support::require_root();
    let dir = tempfile::tempdir().unwrap();
    support::chmod(dir.path(), 0o755);
    std::fs::create_dir_all(dir.path().join("db")).unwrap();
    // Enough rows that a stream nobody reads fills the socket and waits.
    let conn = rusqlite::Connection::open(dir.path().join("db/wtmp.db")).unwrap();
    conn.execute_batch(
        "CREATE TABLE wtmp(ID INTEGER PRIMARY KEY, Type INTEGER, User TEXT NOT NULL,
             Login INTEGER, Logout INTEGER, TTY TEXT, RemoteHost TEXT, Service TEXT) STRICT;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
         INSERT INTO wtmp(Type, User, Login, Logout, TTY, RemoteHost, Service)
         SELECT 3, 'user' || (i % 50), 1600000000000000 + i, 1600000000000001 + i,
                'pts/' || (i % 9), '192.0.2.1', 'sshd' FROM n;",
    )
    .unwrap();
    drop(conn);
    let d = Daemon::start_on(
        dir,
        &[
            "--max-message",
            "4096",
            "--message-timeout",
            "1",
            "--idle-timeout",
            "1",
            "--write-timeout",
            "1",
            "--max-reads",
            "1",
        ],
    );
    let Some((seen, _)) = d.nobody_finds(include_str!("poller.py"), &[]) else {
        return;
    };
    assert_eq!(seen["pipelined"], json!([true, true]));
    assert_eq!(
        seen["bad_then_ping"],
        json!(["org.varlink.service.InvalidParameter", null, true])
    );
    assert!(
        seen["too_long"][0].as_str().unwrap().contains("too long"),
        "{seen}"
    );
    assert!(
        seen["slow_drip"][0].as_str().unwrap().contains("in time"),
        "{seen}"
    );
    let drip = seen["slow_drip_s"].as_f64().unwrap();
    assert!(
        (0.9..3.0).contains(&drip),
        "slow drip dropped after {drip} s"
    );
    let idle = seen["idle_s"].as_f64().unwrap();
    assert!(
        (0.9..3.0).contains(&idle),
        "idle connection closed after {idle} s"
    );
    assert_eq!(seen["long_answered"], 8);
    assert_eq!(seen["waited"], json!([true, 20000]), "{seen}");
    let waited = seen["waited_s"].as_f64().unwrap();
    assert!(
        (0.5..9.0).contains(&waited),
        "the read waited {waited} s for the stream's turn"
    );
}

/// A worker answers a connection's pipelined calls one after the other, each reply bounded
/// by the write timeout: a client of another user that sends thousands of bad messages at
/// once and reads their errors slowly (each in time) held a worker for the time of all of
/// them, and ten such connections held every worker, for tens of write timeouts, while the
/// calls of every other user waited. A worker now lets others go first once it has served
/// one connection for the write timeout.
#[test]
#[ignore = "needs root: runs clients as nobody"]
fn pipelined_calls_read_slowly_keep_no_other_call_waiting() {
    support::require_root();
    let dir = tempfile::tempdir().unwrap();
    support::chmod(dir.path(), 0o755);
    let d = Daemon::start_on(dir, &["--write-timeout", "1"]);
    let Some((seen, _)) = d.nobody_finds(include_str!("slow_errors.py"), &["1", "12"]) else {
        return;
    };
    let waits: Vec<f64> = seen["waits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_f64().unwrap())
        .collect();
    assert!(!waits.is_empty());
    let worst = waits.iter().copied().fold(0.0, f64::max);
    // A worker held for one write timeout and one call's reply, ten connections for nine
    // workers: a ping waits about two rounds at most.
    assert!(worst < 5.0, "a ping waited {worst} s: {waits:?}");
}

/// Root's connections are served by the thread that accepted them: while some stay open
/// (an admin's `wtmpdb last` reading, sshd processes between login and logout), another
/// thread must be accepting, or the next login waits for them to end.
#[test]
#[ignore = "needs root: only root's connections are served by the accepting thread"]
fn root_connections_held_open_keep_no_login_waiting() {
    support::require_root();
    let d = Daemon::start(&[]);
    let mut held = Vec::new();
    for _ in 0..12 {
        let mut c = d.connect();
        let r = c.call(&format!("{W}Ping"), json!({}));
        assert_eq!(r["parameters"]["Alive"], true, "{r}");
        held.push(c);
    }
    let mut c = d.connect();
    let r = c.call(
        &format!("{W}Login"),
        json!({"Type": 3, "User": "alice", "LoginTime": 1, "TTY": "pts/1"}),
    );
    let id = r["parameters"]["ID"]
        .as_i64()
        .unwrap_or_else(|| panic!("{r}"));
    let r = c.call(&format!("{W}Logout"), json!({"ID": id, "LogoutTime": 2}));
    assert_eq!(r["parameters"]["Success"], true, "{r}");
    // Each held connection is still served.
    for c in &mut held {
        let r = c.call(&format!("{W}Ping"), json!({}));
        assert_eq!(r["parameters"]["Alive"], true, "{r}");
    }
}

#[test]
fn the_service_interface_describes_itself() {
    let d = Daemon::start(&[]);
    let mut c = d.connect();
    let r = c.call("org.varlink.service.GetInfo", json!({}));
    assert_eq!(r["parameters"]["product"], "wtmpdb (wtmpdbd)");
    let r = c.call(
        "org.varlink.service.GetInterfaceDescription",
        json!({"interface": "org.openSUSE.wtmpdb"}),
    );
    let text = r["parameters"]["description"].as_str().unwrap();
    assert!(text.starts_with('#') && text.contains("interface org.openSUSE.wtmpdb"));
    for m in [
        "Login",
        "Logout",
        "GetID",
        "GetBootTime",
        "ReadAll",
        "ReadEntries",
        "Rotate",
        "Quit",
        "Ping",
        "SetLogLevel",
        "GetEnvironment",
    ] {
        assert!(text.contains(&format!("method {m}(")), "{m}");
    }
    let r = c.call(
        "org.varlink.service.GetInterfaceDescription",
        json!({"interface": "com.example"}),
    );
    assert_eq!(error(&r), "org.varlink.service.InterfaceNotFound");
    // A oneway call gets no reply: the next reply is the Ping's.
    c.send_raw(format!("{{\"method\":\"{W}GetBootTime\",\"oneway\":true}}\0").as_bytes());
    assert_eq!(
        c.call(&format!("{W}Ping"), json!({}))["parameters"]["Alive"],
        true
    );
}

/// Rows written into the database file directly (as a foreign writer would), read back
/// through the daemon: 64-bit IDs and times after 2038 and 2106, real nulls.
fn seed(db: &Path) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS wtmp(ID INTEGER PRIMARY KEY, Type INTEGER, User TEXT NOT NULL,
             Login INTEGER, Logout INTEGER, TTY TEXT, RemoteHost TEXT, Service TEXT) STRICT;
         INSERT INTO wtmp VALUES (5000000000, 3, 'alice', 2240611200000000, NULL, 'pts/1', NULL, 'sshd');
         INSERT INTO wtmp VALUES (5000000001, 3, 'bob', 4354819200000000, 4354819260000000, NULL, '192.0.2.1', NULL);
         INSERT INTO wtmp VALUES (5000000002, 1, 'reboot', 4354819100000000, NULL, '~', '6.1.0', NULL);",
    )
    .unwrap();
}

#[test]
fn reads_carry_64_bit_ids_and_real_nulls() {
    let d = Daemon::start(&[]);
    seed(&d.db());
    let mut c = d.connect();
    let r = c.call(&format!("{W}ReadAll"), json!({}));
    let data = r["parameters"]["Data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    // Newest first: bob in 2108, the boot just before, alice in 2041.
    assert_eq!(data[0]["ID"], 5_000_000_001i64);
    assert_eq!(data[0]["Login"], 4_354_819_200_000_000i64);
    assert!(data[0]["TTY"].is_null() && data[0]["Service"].is_null());
    assert_eq!(data[2]["User"], "alice");
    assert!(data[2]["Logout"].is_null() && data[2]["RemoteHost"].is_null());
    let r = c.call(&format!("{W}GetID"), json!({"TTY": "pts/1"}));
    assert_eq!(r["parameters"]["ID"], 5_000_000_000i64);
    let r = c.call(&format!("{W}GetBootTime"), json!({}));
    assert_eq!(r["parameters"]["BootTime"], 4_354_819_100_000_000i64);
}

/// ReadEntries carries the process recorded for each open session (what `wtmpdb who`
/// checks), with and without `more`; closed sessions, boots and ReadAll's rows (upstream's
/// shape) carry none.
#[test]
fn the_stream_carries_the_process_of_open_sessions() {
    let d = Daemon::start(&[]);
    seed(&d.db());
    rusqlite::Connection::open(d.db())
        .unwrap()
        .execute_batch(
            "CREATE TABLE wtmp_process(ID INTEGER PRIMARY KEY, PID INTEGER NOT NULL, StartTime INTEGER);
             INSERT INTO wtmp_process VALUES (5000000000, 4242, 987654321);
             INSERT INTO wtmp_process VALUES (5000000001, 4343, NULL);",
        )
        .unwrap();
    let mut c = d.connect();
    for more in [true, false] {
        c.send_raw(format!("{{\"method\":\"{W}ReadEntries\",\"more\":{more}}}\0").as_bytes());
        let r = c.reply().unwrap();
        let data = r["parameters"]["Data"].as_array().unwrap();
        let by_user = |u: &str| data.iter().find(|e| e["User"] == u).unwrap();
        let alice = by_user("alice");
        assert_eq!(
            (&alice["PID"], &alice["PIDStart"]),
            (&json!(4242), &json!(987654321))
        );
        // bob logged out, the boot is no session.
        for u in ["bob", "reboot"] {
            assert!(by_user(u).get("PID").is_none(), "{more}: {u}");
        }
    }
    let r = c.call(&format!("{W}ReadAll"), json!({}));
    for e in r["parameters"]["Data"].as_array().unwrap() {
        assert!(e.get("PID").is_none() && e.get("PIDStart").is_none(), "{e}");
    }
}

#[test]
fn read_all_refuses_a_result_too_big_for_one_reply_and_the_stream_delivers_it() {
    let d = Daemon::start(&["--max-reply", "20000"]);
    {
        let conn = rusqlite::Connection::open(d.db()).unwrap();
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS wtmp(ID INTEGER PRIMARY KEY, Type INTEGER, User TEXT NOT NULL,
                 Login INTEGER, Logout INTEGER, TTY TEXT, RemoteHost TEXT, Service TEXT) STRICT;",
        )
        .unwrap();
        let tx = conn.unchecked_transaction().unwrap();
        for i in 0..2000i64 {
            tx.execute(
                "INSERT INTO wtmp(Type, User, Login, TTY) VALUES (3, ?1, ?2, ?3)",
                rusqlite::params![
                    format!("u{}", i % 7),
                    1_000_000 * i,
                    format!("pts/{}", i % 3)
                ],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
    let mut c = d.connect();
    let r = c.call(&format!("{W}ReadAll"), json!({}));
    assert_eq!(error(&r), "org.openSUSE.wtmpdb.InternalError");
    assert!(
        r["parameters"]["ErrorMsg"]
            .as_str()
            .unwrap()
            .contains("ReadEntries")
    );
    // The stream: every row, in batches, newest first, the last reply without continues.
    c.send_raw(format!("{{\"method\":\"{W}ReadEntries\",\"more\":true}}\0").as_bytes());
    let mut rows = Vec::new();
    let mut replies = 0;
    loop {
        let r = c.reply().unwrap();
        replies += 1;
        rows.extend(r["parameters"]["Data"].as_array().unwrap().iter().cloned());
        if r.get("continues") != Some(&Value::Bool(true)) {
            break;
        }
    }
    assert_eq!(rows.len(), 2000);
    assert!(replies > 2);
    assert!(
        rows.windows(2)
            .all(|w| w[0]["Login"].as_i64() >= w[1]["Login"].as_i64())
    );
    // Filters: user and tty exact, since/until inclusive, limit.
    c.send_raw(
        format!(
            "{{\"method\":\"{W}ReadEntries\",\"more\":true,\"parameters\":{{\"User\":\"u3\",\"TTY\":\"pts/1\",\"Since\":100000000,\"Until\":1500000000,\"Limit\":5}}}}\0"
        )
        .as_bytes(),
    );
    let r = c.reply().unwrap();
    let data = r["parameters"]["Data"].as_array().unwrap();
    assert_eq!(data.len(), 5);
    for e in data {
        let login = e["Login"].as_i64().unwrap();
        assert!((100_000_000..=1_500_000_000).contains(&login));
        assert_eq!(
            (e["User"].as_str(), e["TTY"].as_str()),
            (Some("u3"), Some("pts/1"))
        );
    }
    assert_eq!(data[0]["Login"], 1_480_000_000i64); // i = 1480: i % 7 == 3, i % 3 == 1
    // The same connection goes on.
    assert_eq!(
        c.call(&format!("{W}Ping"), json!({}))["parameters"]["Alive"],
        true
    );
}

#[test]
fn writes_need_root() {
    if is_root() {
        // Covered as root by writes_through_the_daemon and, for other users, by
        // tests/e2e/daemon.sh (setpriv).
        return;
    }
    let d = Daemon::start(&[]);
    let mut c = d.connect();
    for (m, p) in [
        ("Login", json!({"Type": 3, "User": "x", "LoginTime": 1})),
        ("Logout", json!({"ID": 1, "LogoutTime": 1})),
        ("Rotate", json!({"Days": 1})),
        ("Quit", json!({})),
        ("SetLogLevel", json!({"Level": 7})),
        ("GetEnvironment", json!({})),
    ] {
        let r = c.call(&format!("{W}{m}"), p);
        assert_eq!(error(&r), "org.varlink.service.PermissionDenied", "{m}");
    }
}

#[test]
#[ignore = "needs root: writes are for uid 0"]
fn writes_through_the_daemon() {
    let d = Daemon::start(&[]);
    let mut c = d.connect();
    let r = c.call(
        &format!("{W}Login"),
        json!({"Type": 3, "User": "carol", "LoginTime": 4_354_819_200_000_000i64,
               "TTY": "/dev/pts/4", "RemoteHost": "192.0.2.9", "Service": null}),
    );
    let id = r["parameters"]["ID"].as_i64().unwrap();
    assert!(id > 0, "{r}");
    let r = c.call(&format!("{W}GetID"), json!({"TTY": "pts/4"}));
    assert_eq!(r["parameters"]["ID"], id);
    let r = c.call(
        &format!("{W}Logout"),
        json!({"ID": id, "LogoutTime": 4_354_819_260_000_000i64}),
    );
    assert_eq!(r["parameters"]["Success"], true);
    let r = c.call(
        &format!("{W}Logout"),
        json!({"ID": id + 100, "LogoutTime": 1}),
    );
    assert_eq!(error(&r), "org.openSUSE.wtmpdb.InternalError");
    assert_eq!(r["parameters"]["Success"], false);
    let conn = rusqlite::Connection::open(d.db()).unwrap();
    let row: (String, String, Option<String>, i64) = conn
        .query_row(
            "SELECT User, TTY, Service, Logout FROM wtmp WHERE ID = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(
        row,
        ("carol".into(), "pts/4".into(), None, 4_354_819_260_000_000)
    );
    // The database is the daemon's alone.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(d.db()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let r = c.call(&format!("{W}Quit"), json!({"ExitCode": 7}));
    assert_eq!(r["parameters"]["Success"], true);
    let mut d = d;
    let status = d.child.wait().unwrap();
    assert_eq!(status.code(), Some(7));
}

/// The reply to a Login comes only after the row is committed and synced: a SIGKILL right
/// after the reply loses nothing, on every try.
#[test]
#[ignore = "needs root: writes are for uid 0"]
fn a_sigkill_right_after_the_reply_loses_no_login() {
    for round in 0..20 {
        let mut d = Daemon::start(&[]);
        let mut c = d.connect();
        let r = c.call(
            &format!("{W}Login"),
            json!({"Type": 3, "User": format!("k{round}"), "LoginTime": 1_000 + round, "TTY": "pts/1"}),
        );
        d.child.kill().unwrap(); // SIGKILL
        d.child.wait().unwrap();
        let id = r["parameters"]["ID"].as_i64().expect("an ID");
        let conn = rusqlite::Connection::open(d.db()).unwrap();
        let user: String = conn
            .query_row("SELECT User FROM wtmp WHERE ID = ?1", [id], |r| r.get(0))
            .unwrap_or_else(|e| panic!("round {round}: row {id} lost: {e}"));
        assert_eq!(user, format!("k{round}"));
    }
}

#[test]
#[ignore = "needs root: writes are for uid 0"]
fn a_login_while_the_database_is_locked_is_spooled_and_survives_a_sigkill() {
    let mut d = Daemon::start(&[]);
    let mut c = d.connect();
    // Create the schema through the daemon first.
    let r = c.call(
        &format!("{W}Login"),
        json!({"Type": 3, "User": "first", "LoginTime": 1, "TTY": "pts/0"}),
    );
    assert!(r["parameters"]["ID"].as_i64().unwrap() > 0);
    let lock = rusqlite::Connection::open(d.db()).unwrap();
    lock.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let t = Instant::now();
    let r = c.call(
        &format!("{W}Login"),
        json!({"Type": 3, "User": "spooled", "LoginTime": 2, "TTY": "pts/1"}),
    );
    assert!(t.elapsed() < Duration::from_secs(3));
    let id = r["parameters"]["ID"].as_i64().expect("an ID");
    assert!(id >= 1 << 62, "a spooled login's token (2^62 or more): {r}");
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);
    // The next daemon's first write merges the spool.
    let d2 = Daemon {
        child: Command::new(env!("CARGO_BIN_EXE_wtmpdbd"))
            .arg("--socket")
            .arg(d.socket())
            .arg("--database")
            .arg(d.db())
            .spawn()
            .unwrap(),
        dir: tempfile::tempdir().unwrap(),
    };
    let t = Instant::now();
    let mut c = loop {
        if let Ok(s) = UnixStream::connect(d.socket()) {
            break Conn { s, buf: Vec::new() };
        }
        assert!(t.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(10));
    };
    let r = c.call(&format!("{W}Logout"), json!({"ID": id, "LogoutTime": 3}));
    assert_eq!(r["parameters"]["Success"], true, "{r}");
    let conn = rusqlite::Connection::open(d.db()).unwrap();
    let logout: i64 = conn
        .query_row("SELECT Logout FROM wtmp WHERE User = 'spooled'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(logout, 3);
    drop(d2);
}

/// Issue 17: a login and a logout the daemon spooled (another process held the database's
/// lock) stayed out of the table until the next write: `last` and `who` missed the login,
/// and the session looked open. The committer merges the spool when no write comes: once the
/// lock is gone, both are in the table within a second, without another call.
#[test]
#[ignore = "needs root: writes are for uid 0"]
fn spooled_records_are_in_the_table_soon_after_the_lock_goes_without_another_write() {
    let d = Daemon::start(&[]);
    let mut c = d.connect();
    let r = c.call(
        &format!("{W}Login"),
        json!({"Type": 3, "User": "before", "LoginTime": 1, "TTY": "pts/0"}),
    );
    let before = r["parameters"]["ID"].as_i64().expect("an ID");
    assert!(before < 1 << 62, "written, not spooled: {r}");
    let holder = support::hold_lock(&d.db());
    let r = c.call(
        &format!("{W}Login"),
        json!({"Type": 3, "User": "spooled", "LoginTime": 2, "TTY": "pts/1"}),
    );
    let token = r["parameters"]["ID"].as_i64().expect("an ID");
    assert!(token >= 1 << 62, "a spooled login's token: {r}");
    let r = c.call(
        &format!("{W}Logout"),
        json!({"ID": before, "LogoutTime": 3}),
    );
    assert_eq!(r["parameters"]["Success"], true, "{r}");
    drop(c);
    let rows = || -> Vec<(String, Option<i64>)> {
        let conn = rusqlite::Connection::open_with_flags(
            d.db(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        let mut s = conn
            .prepare("SELECT User, Logout FROM wtmp WHERE Type = 3 ORDER BY Login")
            .unwrap();
        s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    // While the lock is held, the committer's tries fail and the records wait.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(rows(), [("before".to_string(), None)]);
    assert_eq!(
        wtmpdb::session::spool::waiting(&d.db()).unwrap(),
        2,
        "the login and the logout wait in the spool"
    );
    support::release_lock(holder);
    let freed = Instant::now();
    let want = [
        ("before".to_string(), Some(3)),
        ("spooled".to_string(), None),
    ];
    while rows() != want {
        assert!(
            freed.elapsed() < Duration::from_secs(2),
            "2 s after the lock went, the table is still {:?}",
            rows()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "merged {} ms after the lock went",
        freed.elapsed().as_millis()
    );
    // The merge removes its files right after its commit.
    while wtmpdb::session::spool::waiting(&d.db()).unwrap() > 0 {
        assert!(
            freed.elapsed() < Duration::from_secs(2),
            "the merged records' files are still in the spool"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Regression: a login the daemon spooled (another program held the database's lock) was
/// invisible to `GetID`, which read the table only: the C library's logout by tty (Debian's
/// sshd: `wtmpdb_get_id`, then `wtmpdb_logout`) got NoEntryFound (-ENOENT), or the ID of an
/// older session left open on the same tty, which it then closed instead. `GetID` sees the
/// spool as the file writer's lookup does: the spooled login's token, which `Logout` takes.
#[test]
#[ignore = "needs root: writes are for uid 0"]
fn get_id_finds_a_login_the_daemon_spooled() {
    let d = Daemon::start(&[]);
    let mut c = d.connect();
    // An older session on the tty that was never logged out (a crash).
    let r = c.call(
        &format!("{W}Login"),
        json!({"Type": 3, "User": "stale", "LoginTime": 1, "TTY": "pts/1"}),
    );
    let stale = r["parameters"]["ID"].as_i64().unwrap();
    let lock = rusqlite::Connection::open(d.db()).unwrap();
    lock.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let r = c.call(
        &format!("{W}Login"),
        json!({"Type": 3, "User": "spooled", "LoginTime": 2, "TTY": "pts/1"}),
    );
    let token = r["parameters"]["ID"].as_i64().expect("an ID");
    assert!(token >= 1 << 62, "a spooled login's token: {r}");
    let r = c.call(&format!("{W}GetID"), json!({"TTY": "pts/1"}));
    assert_eq!(
        r["parameters"]["ID"].as_i64(),
        Some(token),
        "GetID under the lock (the stale session is {stale}): {r}"
    );
    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);
    let r = c.call(&format!("{W}GetID"), json!({"TTY": "pts/1"}));
    assert_eq!(
        r["parameters"]["ID"].as_i64(),
        Some(token),
        "GetID after the lock (the stale session is {stale}): {r}"
    );
    let r = c.call(&format!("{W}Logout"), json!({"ID": token, "LogoutTime": 3}));
    assert_eq!(r["parameters"]["Success"], true, "{r}");
    let conn = rusqlite::Connection::open(d.db()).unwrap();
    let mut s = conn
        .prepare("SELECT User, Logout FROM wtmp ORDER BY ID")
        .unwrap();
    let rows: Vec<(String, Option<i64>)> = s
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        rows,
        [
            ("stale".to_string(), None),
            ("spooled".to_string(), Some(3))
        ]
    );
}

/// Regression: another program's connection that opens and closes the database between two
/// writes (as the sqlite3 shell does; its close deletes `-wal` and `-shm` when it thinks it
/// is the last) must not make the daemon's next write vanish into a deleted log.
#[test]
#[ignore = "needs root: writes are for uid 0"]
fn a_write_after_another_program_closed_the_database_is_kept() {
    let d = Daemon::start(&[]);
    let mut c = d.connect();
    let mut ids = Vec::new();
    // A rotation through the daemon first (its own connection, an archive attached).
    let r = c.call(
        &format!("{W}Login"),
        json!({"Type": 3, "User": "old", "LoginTime": 1, "TTY": "tty1"}),
    );
    let old = r["parameters"]["ID"].as_i64().unwrap();
    let r = c.call(&format!("{W}Logout"), json!({"ID": old, "LogoutTime": 2}));
    assert_eq!(r["parameters"]["Success"], true);
    let r = c.call(
        &format!("{W}Login"),
        json!({"Type": 3, "User": "new", "LoginTime": 4_354_819_200_000_000i64, "TTY": "tty2"}),
    );
    assert!(r["parameters"]["ID"].as_i64().is_some());
    let r = c.call(&format!("{W}Rotate"), json!({"Days": 30}));
    assert_eq!(r["parameters"]["Entries"], 1, "{r}");
    for round in 0..5 {
        let r = c.call(
            &format!("{W}Login"),
            json!({"Type": 3, "User": format!("r{round}"), "LoginTime": 10 + round, "TTY": "pts/2"}),
        );
        ids.push(r["parameters"]["ID"].as_i64().expect("an ID"));
        // The sqlite3 shell (scripts/apt-packages), as an administrator would run it.
        let out = Command::new("sqlite3")
            .arg(d.db())
            .arg("SELECT count(*) FROM wtmp")
            .output()
            .expect("sqlite3");
        let n = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert_eq!(n, (round + 2).to_string(), "round {round}");
    }
    let r = c.call(
        &format!("{W}Logout"),
        json!({"ID": ids[0], "LogoutTime": 99}),
    );
    assert_eq!(r["parameters"]["Success"], true);
    let other = rusqlite::Connection::open(d.db()).unwrap();
    let logout: i64 = other
        .query_row("SELECT Logout FROM wtmp WHERE ID = ?1", [ids[0]], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(logout, 99);
}

/// Concurrent logins share transactions: 64 clients at once, every one acknowledged with a
/// distinct ID whose row is there.
#[test]
#[ignore = "needs root: writes are for uid 0"]
fn concurrent_logins_are_each_committed() {
    let d = Daemon::start(&[]);
    let socket = d.socket();
    let threads: Vec<_> = (0..64)
        .map(|i| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                let s = UnixStream::connect(&socket).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut c = Conn { s, buf: Vec::new() };
                let r = c.call(
                    &format!("{W}Login"),
                    json!({"Type": 3, "User": format!("c{i}"), "LoginTime": 1000 + i, "TTY": format!("pts/{i}")}),
                );
                let id = r["parameters"]["ID"].as_i64().unwrap();
                let r = c.call(&format!("{W}Logout"), json!({"ID": id, "LogoutTime": 5000 + i}));
                assert_eq!(r["parameters"]["Success"], true);
                id
            })
        })
        .collect();
    let mut ids: Vec<i64> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 64);
    let conn = rusqlite::Connection::open(d.db()).unwrap();
    let n: i64 = conn
        .query_row(
            "SELECT count(*) FROM wtmp WHERE Logout = 4000 + Login",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 64);
}

/// The daemon keeps its writer's connection open between writes, and still follows the name:
/// after logrotate's rename + create, the next login goes into the new file, where `last`
/// reads, not into the renamed one.
#[test]
#[ignore = "needs root: writes are for uid 0"]
fn a_login_after_the_file_was_renamed_and_created_anew_goes_into_the_new_file() {
    let d = Daemon::start(&[]);
    let mut c = d.connect();
    let login = |c: &mut Conn, user: &str| {
        let r = c.call(
            &format!("{W}Login"),
            json!({"Type": 3, "User": user, "LoginTime": 7, "TTY": "pts/3"}),
        );
        r["parameters"]["ID"].as_i64().expect("an ID")
    };
    login(&mut c, "before");
    let renamed = d.db().with_extension("db.1");
    std::fs::rename(d.db(), &renamed).unwrap();
    std::fs::File::create(d.db()).unwrap();
    login(&mut c, "after");
    let users = |path: &Path| -> Vec<String> {
        let conn =
            rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .unwrap();
        let mut s = conn.prepare("SELECT User FROM wtmp ORDER BY ID").unwrap();
        s.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(users(&d.db()), ["after"], "the new file has the new login");
    // And the daemon goes on writing there.
    login(&mut c, "later");
    assert_eq!(users(&d.db()), ["after", "later"]);
}

fn users_in(path: &Path) -> Vec<String> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut s = conn
        .prepare("SELECT User FROM wtmp ORDER BY ID")
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    s.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn login_as(c: &mut Conn, user: &str) -> i64 {
    let r = c.call(
        &format!("{W}Login"),
        json!({"Type": 3, "User": user, "LoginTime": 7, "TTY": "pts/3"}),
    );
    r["parameters"]["ID"].as_i64().expect("an ID")
}

/// Regression: the daemon's kept connection commits into the log beside the database, and
/// logrotate's rename + create left those commits in a log that the next open set aside as
/// `wtmp.db-wal.orphaned-*`: acknowledged logins in neither the new file nor the renamed
/// one (which had no table at all), without a word. The connection, which still has the
/// renamed file and its log open, now copies the log into that file before it goes.
#[test]
#[ignore = "needs root: writes are for uid 0"]
fn logins_before_the_file_was_renamed_and_created_anew_are_in_the_renamed_file() {
    let d = Daemon::start(&[]);
    let mut c = d.connect();
    login_as(&mut c, "before1");
    login_as(&mut c, "before2");
    let renamed = d.db().with_extension("db.1");
    std::fs::rename(d.db(), &renamed).unwrap();
    std::fs::File::create(d.db()).unwrap();
    login_as(&mut c, "after");
    assert_eq!(users_in(&d.db()), ["after"]);
    assert_eq!(users_in(&renamed), ["before1", "before2"]);
    let dir = d.db().parent().unwrap().to_path_buf();
    let orphaned: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("orphaned"))
        .collect();
    assert!(orphaned.is_empty(), "{orphaned:?}");
}

/// The daemon's kept connection also follows its side files: after an admin (or a cleaning
/// script) deleted the `-wal` file, the next login is written where a reader looks, a new
/// log beside the name, not into the deleted one that only the daemon still has open.
#[test]
#[ignore = "needs root: writes are for uid 0"]
fn a_login_after_the_log_was_deleted_is_where_readers_look() {
    let d = Daemon::start(&[]);
    let mut c = d.connect();
    login_as(&mut c, "before");
    // At rest: "before" is in the file, the log emptied.
    std::thread::sleep(Duration::from_millis(500));
    let log = d.db().with_extension("db-wal");
    std::fs::remove_file(&log).unwrap();
    login_as(&mut c, "after");
    assert!(log.exists(), "a new log beside the name");
    assert_eq!(users_in(&d.db()), ["before", "after"]);
}

/// Regression: an admin moved the database to another directory (another disk) and left a
/// link at its name; its side files stayed behind. The name still led to the file the daemon
/// had open, and the side files beside its old place were still those of the open, so the
/// kept connection took itself for current and went on committing into the log left
/// behind, where no reader looks: readers follow the link and look beside the moved file
/// (and every other writer opened a second log of the same file there).
#[test]
#[ignore = "needs root: writes are for uid 0"]
fn a_login_after_the_file_was_moved_behind_a_link_is_where_readers_look() {
    let d = Daemon::start(&[]);
    let mut c = d.connect();
    login_as(&mut c, "before");
    // At rest: "before" is in the file, the log emptied.
    std::thread::sleep(Duration::from_millis(500));
    let elsewhere = d.dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let moved = elsewhere.join("wtmp.db");
    std::fs::rename(d.db(), &moved).unwrap();
    std::os::unix::fs::symlink(&moved, d.db()).unwrap();
    login_as(&mut c, "after");
    assert!(
        moved.with_extension("db-wal").exists(),
        "no log beside the moved file: the login went into the one left behind"
    );
    assert_eq!(users_in(&d.db()), ["before", "after"]);
}

/// Regression: a database replaced with `mv` while the daemon kept its connection: the log
/// beside the name was still the old file's, and the next open read the new file through
/// it, the old file's pages over the new one's (the new file's own rows gone from every
/// reader, and the logins after it written on that mix). The old connection now empties
/// its log into the file it had open before it goes.
#[test]
#[ignore = "needs root: writes are for uid 0"]
fn a_database_replaced_by_mv_is_written_as_it_is() {
    let d = Daemon::start(&[]);
    let mut c = d.connect();
    login_as(&mut c, "old");
    let other = d.db().with_extension("new");
    {
        let o = rusqlite::Connection::open(&other).unwrap();
        o.execute_batch(
            "CREATE TABLE wtmp (ID INTEGER PRIMARY KEY, Type INTEGER, User TEXT NOT NULL, \
             Login INTEGER, Logout INTEGER, TTY TEXT, RemoteHost TEXT, Service TEXT) STRICT;\
             INSERT INTO wtmp (Type, User, Login) VALUES (3, 'restored', 1);",
        )
        .unwrap();
    }
    std::fs::rename(&other, d.db()).unwrap();
    login_as(&mut c, "after");
    assert_eq!(users_in(&d.db()), ["restored", "after"]);
}

/// Regression: the committer opened its connection with every schema step, so the first
/// login through the daemon on a large upstream database built our indexes first: 3.3 s
/// for 2 million rows (measured), past the PAM module's 3 s wait for the reply, and the
/// login failed there although the daemon wrote it afterwards. The committer now applies
/// the steps only to a small file, as the session writer does.
#[test]
#[ignore = "needs root: writes are for uid 0"]
fn the_first_login_through_the_daemon_does_not_build_indexes_of_a_large_upstream_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db/wtmp.db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    {
        // Upstream's table and nothing else, one row more than a session write migrates.
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(
            "CREATE TABLE wtmp (ID INTEGER PRIMARY KEY, Type INTEGER, User TEXT NOT NULL, \
             Login INTEGER, Logout INTEGER, TTY TEXT, RemoteHost TEXT, Service TEXT) STRICT;\
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20001)\
             INSERT INTO wtmp (Type, User, Login, Logout, TTY) \
             SELECT 3, 'u' || i, i, i + 1, 'pts/1' FROM n;",
        )
        .unwrap();
    }
    let d = Daemon::start_on(dir, &[]);
    let mut c = d.connect();
    let id = login_as(&mut c, "first");
    assert_eq!(id, 20002);
    let conn = rusqlite::Connection::open(d.db()).unwrap();
    let indexes: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'wtmp'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(indexes, 0, "the login built the indexes");
    assert_eq!(users_in(&d.db()).last().map(String::as_str), Some("first"));
}

/// Failed attempts from many connections at once (a brute force against many sshd
/// processes) are each recorded: the daemon writes them one after the other through the
/// failures' file it keeps open, none waits out the lock's bound and is dropped; a file
/// replaced under the name (an admin's `mv`) is written anew.
#[test]
#[ignore = "needs root: RecordFailure is for uid 0"]
fn concurrent_failed_attempts_are_each_recorded() {
    const THREADS: usize = 32;
    const EACH: usize = 50;
    let d = Daemon::start(&[]);
    let started = Instant::now();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let d = &d;
            s.spawn(move || {
                let mut c = d.connect();
                for i in 0..EACH {
                    let r = c.call(
                        &format!("{W}RecordFailure"),
                        json!({"User": format!("guess{t}-{i}"), "Time": 1_000_000 + i as i64,
                               "TTY": "ssh:notty", "RemoteHost": "192.0.2.66", "Service": "sshd"}),
                    );
                    assert!(r["parameters"]["ID"].as_i64().unwrap() > 0, "{r}");
                }
            });
        }
    });
    eprintln!(
        "{} attempts through {THREADS} connections in {:?}",
        THREADS * EACH,
        started.elapsed()
    );
    let failed = PathBuf::from(format!("{}-failed", d.db().display()));
    let count = |p: &Path| -> i64 {
        rusqlite::Connection::open(p)
            .unwrap()
            .query_row("SELECT count(*) FROM failed", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(count(&failed), (THREADS * EACH) as i64);
    // Replaced under its name: the next attempt goes into the new file.
    let moved = PathBuf::from(format!("{}.old", failed.display()));
    std::fs::rename(&failed, &moved).unwrap();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::rename(
            format!("{}{suffix}", failed.display()),
            format!("{}{suffix}", moved.display()),
        );
    }
    let mut c = d.connect();
    let r = c.call(
        &format!("{W}RecordFailure"),
        json!({"User": "after-mv", "Time": 2_000_000}),
    );
    assert!(r["parameters"]["ID"].as_i64().unwrap() > 0, "{r}");
    assert_eq!(count(&failed), 1);
}

/// The failures' file is self-contained at rest: within a second of the daemon's last
/// RecordFailure, a copy of the file alone (no `-wal` beside it) holds every attempt.
#[test]
#[ignore = "needs root: RecordFailure is for uid 0"]
fn recorded_failures_are_in_the_file_itself_within_a_second() {
    let d = Daemon::start(&[]);
    let mut c = d.connect();
    for i in 0..3 {
        let r = c.call(
            &format!("{W}RecordFailure"),
            json!({"User": format!("guess{i}"), "Time": 1_000_000 + i}),
        );
        assert!(r["parameters"]["ID"].as_i64().unwrap() > 0, "{r}");
    }
    std::thread::sleep(Duration::from_millis(1000));
    let failed = PathBuf::from(format!("{}-failed", d.db().display()));
    let copy_dir = tempfile::tempdir().unwrap();
    let copy = copy_dir.path().join("copy.db");
    std::fs::copy(&failed, &copy).unwrap();
    let n: i64 = rusqlite::Connection::open(&copy)
        .unwrap()
        .query_row("SELECT count(*) FROM failed", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 3);
}

/// A reply larger than the socket's buffer, taken by a client that reads a little at a time
/// and never waits the whole write timeout between reads: each write(2) of the daemon keeps
/// going (the kernel's send timeout bounds each wait for room, not the call), yet the
/// reply as a whole must be taken within the write timeout of its first byte, or the
/// connection ends.
#[test]
fn a_client_reading_a_large_reply_slowly_is_dropped_at_the_write_deadline() {
    let d = Daemon::start(&["--write-timeout", "1"]);
    {
        let conn = rusqlite::Connection::open(d.db()).unwrap();
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS wtmp(ID INTEGER PRIMARY KEY, Type INTEGER, User TEXT NOT NULL,
                 Login INTEGER, Logout INTEGER, TTY TEXT, RemoteHost TEXT, Service TEXT) STRICT;
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40000)
             INSERT INTO wtmp(Type, User, Login, Logout, TTY, RemoteHost, Service)
             SELECT 3, 'user' || (i % 50), 1600000000000000 + i, 1600000000000001 + i,
                    'pts/' || (i % 9), '192.0.2.1', 'sshd' FROM n;",
        )
        .unwrap();
    }
    // Read at once, the reply is whole: several megabytes.
    let mut fast = d.connect();
    fast.send_raw(format!("{{\"method\":\"{W}ReadAll\"}}\0").as_bytes());
    let mut size = 0;
    loop {
        let mut chunk = vec![0u8; 1 << 20];
        let n = fast.s.read(&mut chunk).unwrap();
        assert!(n > 0, "closed after {size} bytes");
        size += n;
        if chunk[n - 1] == 0 {
            break;
        }
    }
    assert!(size > 4 << 20, "the reply is {size} bytes");
    let mut c = d.connect();
    c.send_raw(format!("{{\"method\":\"{W}ReadAll\"}}\0").as_bytes());
    let start = Instant::now();
    let mut got = 0usize;
    let mut whole = false;
    // About 160 KiB every 0.7 s: a 5 MiB reply would take more than 20 s.
    'reading: while start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(700));
        let mut want = 160 * 1024;
        while want > 0 {
            let mut chunk = [0u8; 16 * 1024];
            let n = chunk.len().min(want);
            match c.s.read(&mut chunk[..n]) {
                Ok(0) => break 'reading,
                Ok(n) => {
                    got += n;
                    want -= n;
                    if chunk[..n].contains(&0) {
                        whole = true;
                        break 'reading;
                    }
                }
                Err(_) => break 'reading,
            }
        }
    }
    let took = start.elapsed();
    assert!(
        !whole,
        "the reply of {got} bytes was taken whole after {took:?}, past the write timeout"
    );
    assert!(
        took < Duration::from_secs(5),
        "the connection ended after {took:?}"
    );
    // The daemon serves on.
    let r = d.connect().call(&format!("{W}Ping"), json!({}));
    assert_eq!(r["parameters"]["Alive"], true);
}

/// The reserve's slots in the spool of `db`.
fn reserve_slots(db: &Path) -> usize {
    let spool = wtmpdb::session::spool::spool_dir(db);
    std::fs::read_dir(spool.join(wtmpdb::session::spool::reserve::RESERVE_DIR))
        .map_or(0, Iterator::count)
}

/// A full disk failed the group's write, then the session writer's, and the spool's file
/// too: the login was lost. The daemon fills the spool's reserve as it starts; on a disk
/// full to the last byte a login and its logout go into slots of it (acknowledged, the
/// login's ID its token), and once there is room again the committer merges them without
/// another call, and fills the reserve again.
#[test]
#[ignore = "needs root: mounts a tiny tmpfs, writes are for uid 0"]
fn a_login_and_logout_on_a_full_disk_go_into_the_reserve_and_are_merged() {
    support::require_root();
    let dir = tempfile::tempdir().unwrap();
    let db_dir = dir.path().join("db");
    std::fs::create_dir(&db_dir).unwrap();
    let Some(_mount) = support::Tmpfs::mount(&db_dir, "size=2m") else {
        return;
    };
    let d = Daemon::start_on(dir, &[]);
    let slots = wtmpdb::session::spool::reserve::RESERVE_SLOTS;
    assert_eq!(
        reserve_slots(&d.db()),
        slots,
        "filled as the daemon started"
    );
    let mut c = d.connect();
    assert!(login_as(&mut c, "first") < 1 << 62);
    let filler = db_dir.join("filler");
    {
        let mut f = std::fs::File::create(&filler).unwrap();
        while f.write_all(&[0; 4096]).is_ok() {}
        while f.write_all(&[0]).is_ok() {}
    }
    // The log has room for a few more; then a login finds none.
    let mut written = 1;
    let token = loop {
        let id = login_as(&mut c, &format!("user{written}"));
        if id >= 1 << 62 {
            break id;
        }
        written += 1;
        assert!(written < 10_000, "the disk never filled");
    };
    assert_eq!(reserve_slots(&d.db()), slots - 1, "the login took a slot");
    let r = c.call(&format!("{W}Logout"), json!({"ID": token, "LogoutTime": 9}));
    assert_eq!(r["parameters"]["Success"], true, "{r}");
    assert_eq!(reserve_slots(&d.db()), slots - 2, "the logout took a slot");
    assert_eq!(wtmpdb::session::spool::waiting(&d.db()).unwrap(), 2);
    drop(c);
    std::fs::remove_file(&filler).unwrap();
    let user = format!("user{written}");
    let merged = || -> Option<Option<i64>> {
        let conn = rusqlite::Connection::open_with_flags(
            d.db(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        let mut s = conn
            .prepare("SELECT Logout FROM wtmp WHERE User = ?1")
            .unwrap();
        let found: Vec<Option<i64>> = s
            .query_map([&user], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(found.len() <= 1, "{found:?}");
        found.first().copied()
    };
    let t = Instant::now();
    while merged() != Some(Some(9)) || reserve_slots(&d.db()) < slots {
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "3 s after the disk had room: {:?}, {} slots",
            merged(),
            reserve_slots(&d.db())
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(wtmpdb::session::spool::waiting(&d.db()).unwrap(), 0);
    drop(d);
}
