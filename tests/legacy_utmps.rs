//! The utmps client against test daemons speaking utmps' protocol: `'E'` + record to utmpd
//! and `'+'` + record to wtmpd, each answered by one errno byte. The peers check the
//! records at the byte offsets of utmps' `struct utmpx` on 64-bit musl, independently of
//! the client's own layout code.
#![cfg(target_pointer_width = "64")]

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wtmpdb::Database;
use wtmpdb::legacy::utmps::{RawUtmpx, UtmpsMirror};
use wtmpdb::legacy::{LegacyError, LegacySession, LegacySink, Mirror, MirrorPaths};
use wtmpdb::session::{self, NewSession};
use wtmpdb::time::USEC_PER_SEC;

const RECORD: usize = 400;
type Record = [u8; RECORD];

/// 2200-01-01 00:00:00 UTC: past 2038 and 2106, exact in 64-bit utmps records.
const Y2200: i64 = 7_258_118_400;

#[derive(Clone, Copy)]
enum Reply {
    /// Store the record, answer 0.
    Store,
    /// Answer this errno without storing.
    Errno(u8),
    /// Read the request, then never answer.
    Silent,
    /// Read the request, then close without answering.
    Hangup,
}

/// A daemon's file: the records in order.
type File = Arc<Mutex<Vec<Record>>>;

fn field(r: &Record, from: usize, to: usize) -> String {
    let f = &r[from..to];
    let end = f.iter().position(|&b| b == 0).unwrap_or(f.len());
    String::from_utf8_lossy(&f[..end]).into_owned()
}
fn ut_type(r: &Record) -> i16 {
    i16::from_ne_bytes([r[0], r[1]])
}
fn ut_pid(r: &Record) -> i32 {
    i32::from_ne_bytes(r[4..8].try_into().unwrap())
}
fn ut_line(r: &Record) -> String {
    field(r, 8, 40)
}
fn ut_id(r: &Record) -> String {
    field(r, 40, 44)
}
fn ut_user(r: &Record) -> String {
    field(r, 44, 76)
}
fn ut_host(r: &Record) -> String {
    field(r, 76, 332)
}
fn tv_sec(r: &Record) -> i64 {
    i64::from_ne_bytes(r[344..352].try_into().unwrap())
}
fn tv_usec(r: &Record) -> i64 {
    i64::from_ne_bytes(r[352..360].try_into().unwrap())
}
fn addr(r: &Record) -> [u8; 16] {
    r[360..376].try_into().unwrap()
}

/// C `strncmp(a, b, n) == 0` on NUL-padded fields.
fn strneq(a: &[u8], b: &[u8], n: usize) -> bool {
    for i in 0..n {
        if a[i] != b[i] {
            return false;
        }
        if a[i] == 0 {
            return true;
        }
    }
    true
}

/// utmpd's putline: from the connection's file position on, overwrite the first record
/// with a matching id (INIT/LOGIN/USER/DEAD types, first three id bytes) and the same
/// line, else append. The position ends after the record written.
fn putline(file: &mut Vec<Record>, pos: &mut usize, rec: Record) {
    let process = |t: i16| (5..=8).contains(&t);
    let slot = file[*pos..]
        .iter()
        .position(|b| {
            process(ut_type(&rec))
                && process(ut_type(b))
                && strneq(&rec[40..44], &b[40..44], 3)
                && strneq(&rec[8..40], &b[8..40], 31)
        })
        .map(|i| i + *pos);
    match slot {
        Some(i) => {
            file[i] = rec;
            *pos = i + 1;
        }
        None => {
            file.push(rec);
            *pos = file.len();
        }
    }
}

/// utmpd's getline: from the file position on, the first LOGIN/USER record on the line.
fn getline(file: &[Record], pos: &mut usize, line: &[u8]) -> Option<Record> {
    let found = file[*pos..]
        .iter()
        .position(|b| (6..=7).contains(&ut_type(b)) && strneq(line, &b[8..40], 31));
    match found {
        Some(i) => {
            *pos += i + 1;
            Some(file[*pos - 1])
        }
        None => {
            *pos = file.len();
            None
        }
    }
}

/// Answers one request according to `reply`, keeping the connection's file position in
/// `pos`. Returns false when the connection is done.
fn serve_one(
    conn: &mut UnixStream,
    file: &File,
    pos: &mut usize,
    reply: Reply,
    wtmp: bool,
) -> bool {
    let mut cmd = [0u8; 1];
    if conn.read_exact(&mut cmd).is_err() {
        return false;
    }
    let payload = match (wtmp, cmd[0]) {
        (true, b'+') | (false, b'E') => RECORD,
        (false, b'l') => 32,
        (false, b'r') => 0,
        // utmps daemons exit on a command they do not know.
        _ => return false,
    };
    let mut buf = vec![0u8; payload];
    if conn.read_exact(&mut buf).is_err() {
        return false;
    }
    match (reply, cmd[0]) {
        (Reply::Store, b'r') => {
            *pos = 0;
            conn.write_all(&[0]).is_ok()
        }
        (Reply::Store, b'l') => {
            let f = file.lock().unwrap();
            let answer = match getline(&f, pos, &buf) {
                Some(rec) => [&[0u8][..], &rec[..]].concat(),
                None => vec![libc::ESRCH as u8],
            };
            conn.write_all(&answer).is_ok()
        }
        (Reply::Store, _) => {
            let rec: Record = buf.try_into().unwrap();
            let mut f = file.lock().unwrap();
            if wtmp {
                f.push(rec);
            } else {
                putline(&mut f, pos, rec);
            }
            conn.write_all(&[0]).is_ok() && !wtmp
        }
        (Reply::Errno(e), _) => conn.write_all(&[e]).is_ok() && !wtmp,
        (Reply::Silent, _) => {
            // Hold the connection until the client gives up.
            let _ = conn.read(&mut [0u8; 1]);
            false
        }
        (Reply::Hangup, _) => false,
    }
}

/// Starts a daemon on `path`; its thread lives until the test process ends.
fn daemon(path: &Path, reply: Reply, wtmp: bool) -> File {
    let listener = UnixListener::bind(path).unwrap();
    let file: File = Arc::default();
    let records = file.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut pos = 0;
            while serve_one(&mut conn, &records, &mut pos, reply, wtmp) {}
        }
    });
    file
}

struct Setup {
    _dir: tempfile::TempDir,
    utmpd: PathBuf,
    wtmpd: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    Setup {
        utmpd: dir.path().join(".utmpd-socket"),
        wtmpd: dir.path().join(".wtmpd-socket"),
        _dir: dir,
    }
}

fn client(s: &Setup, timeout: Duration) -> UtmpsMirror {
    UtmpsMirror::new(&s.utmpd, &s.wtmpd, timeout)
}

fn alice() -> LegacySession {
    LegacySession::new(
        "alice",
        Some("pts/3"),
        Some("192.0.2.44"),
        Some("sshd"),
        4242,
    )
}

#[test]
fn putline_and_append_write_login_and_logout() {
    let s = setup();
    let utmp = daemon(&s.utmpd, Reply::Store, false);
    let wtmp = daemon(&s.wtmpd, Reply::Store, true);
    let m = client(&s, Duration::from_secs(1));
    let at = Y2200 * USEC_PER_SEC + 123_456;

    m.login(&alice(), at).unwrap();
    {
        let u = utmp.lock().unwrap();
        assert_eq!(u.len(), 1);
        let r = &u[0];
        assert_eq!(ut_type(r), 7);
        assert_eq!(ut_pid(r), 4242);
        assert_eq!(ut_line(r), "pts/3");
        assert_eq!(ut_id(r), "ts/3");
        assert_eq!(ut_user(r), "alice");
        assert_eq!(ut_host(r), "192.0.2.44");
        assert_eq!((tv_sec(r), tv_usec(r)), (Y2200, 123_456));
        assert_eq!(addr(r)[..4], [192, 0, 2, 44]);
        assert!(r[332..344].iter().all(|&b| b == 0));
        assert!(r[364..].iter().all(|&b| b == 0));
    }

    let bob = LegacySession::new("bob", Some("pts/4"), None, None, 4243);
    m.login(&bob, at).unwrap();
    m.logout(&alice(), at + 3_600 * USEC_PER_SEC).unwrap();

    let u = utmp.lock().unwrap();
    // alice's slot was overwritten in place, bob's appended.
    assert_eq!(u.len(), 2);
    assert_eq!(ut_type(&u[0]), 8);
    assert_eq!(ut_line(&u[0]), "pts/3");
    assert_eq!(ut_user(&u[0]), "");
    assert_eq!(ut_host(&u[0]), "");
    assert_eq!(tv_sec(&u[0]), Y2200 + 3_600);
    assert_eq!(ut_user(&u[1]), "bob");

    let w = wtmp.lock().unwrap();
    let kinds: Vec<(i16, String)> = w.iter().map(|r| (ut_type(r), ut_user(r))).collect();
    assert_eq!(
        kinds,
        vec![
            (7, "alice".to_string()),
            (7, "bob".to_string()),
            (8, String::new())
        ]
    );
    assert_eq!(ut_line(&w[2]), "pts/3");
}

#[test]
fn eperm_is_reported_as_refused() {
    let s = setup();
    let _utmp = daemon(&s.utmpd, Reply::Errno(libc::EPERM as u8), false);
    let wtmp = daemon(&s.wtmpd, Reply::Store, true);
    let err = client(&s, Duration::from_secs(1))
        .login(&alice(), 0)
        .unwrap_err();
    assert!(
        matches!(&err, LegacyError::Refused { socket } if socket == &s.utmpd),
        "{err:?}"
    );
    assert!(err.to_string().contains("EPERM"), "{err}");
    // wtmp is written even when utmp is refused.
    assert_eq!(wtmp.lock().unwrap().len(), 1);
}

#[test]
fn other_errno_and_hangup() {
    let s = setup();
    let _utmp = daemon(&s.utmpd, Reply::Errno(libc::EIO as u8), false);
    let _wtmp = daemon(&s.wtmpd, Reply::Hangup, true);
    let err = client(&s, Duration::from_secs(1))
        .login(&alice(), 0)
        .unwrap_err();
    let LegacyError::Both(u, w) = &err else {
        panic!("{err:?}")
    };
    assert!(
        matches!(&**u, LegacyError::Daemon { errno, .. } if *errno == libc::EIO),
        "{u:?}"
    );
    assert!(matches!(&**w, LegacyError::NoReply { .. }), "{w:?}");
}

#[test]
fn missing_daemon_is_reported() {
    let s = setup();
    let m = client(&s, Duration::from_secs(1));
    // No socket file at all.
    let err = putline_error(&m);
    assert!(
        matches!(&err, LegacyError::DaemonAbsent { source, .. } if source.raw_os_error() == Some(libc::ENOENT)),
        "{err:?}"
    );
    assert!(err.to_string().contains("not running"), "{err}");
    // A socket file left behind by a daemon that is gone.
    drop(UnixListener::bind(&s.utmpd).unwrap());
    let err = putline_error(&m);
    assert!(
        matches!(&err, LegacyError::DaemonAbsent { source, .. } if source.raw_os_error() == Some(libc::ECONNREFUSED)),
        "{err:?}"
    );
}

fn putline_error(m: &UtmpsMirror) -> LegacyError {
    m.putline(&RawUtmpx::new(&alice(), 7, 0)).unwrap_err()
}

#[test]
fn silent_daemon_times_out_within_the_bound() {
    let s = setup();
    let _utmp = daemon(&s.utmpd, Reply::Silent, false);
    let _wtmp = daemon(&s.wtmpd, Reply::Silent, true);
    let bound = Duration::from_millis(300);
    let m = client(&s, bound);
    let start = Instant::now();
    let err = m.login(&alice(), 0).unwrap_err();
    let took = start.elapsed();
    let LegacyError::Both(u, w) = &err else {
        panic!("{err:?}")
    };
    for e in [u, w] {
        assert!(
            matches!(&**e, LegacyError::Timeout { op: "reply", timeout, .. } if *timeout == bound),
            "{e:?}"
        );
    }
    // Two exchanges, each bounded (the slack is for a loaded machine).
    assert!(took >= 2 * bound, "{took:?}");
    assert!(took < 2 * bound + Duration::from_millis(1500), "{took:?}");
}

#[test]
fn daemon_not_accepting_times_out_on_connect() {
    let s = setup();
    let listener = UnixListener::bind(&s.utmpd).unwrap();
    // Backlog 0 on a listener that never accepts: one connection waits in the queue, the
    // next finds it full (what an overloaded superserver looks like).
    // SAFETY: listen on our own listening socket only changes its backlog.
    assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 0) }, 0);
    let _queued = UnixStream::connect(&s.utmpd).unwrap();
    let bound = Duration::from_millis(200);
    let start = Instant::now();
    let err = putline_error(&client(&s, bound));
    let took = start.elapsed();
    assert!(
        matches!(
            &err,
            LegacyError::Timeout {
                op: "connection",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        took >= bound && took < bound + Duration::from_millis(1500),
        "{took:?}"
    );
}

#[test]
fn session_api_with_utmps_and_factory() {
    let s = setup();
    let utmp = daemon(&s.utmpd, Reply::Store, false);
    let wtmp = daemon(&s.wtmpd, Reply::Store, true);
    let paths = MirrorPaths {
        utmpd_socket: s.utmpd.clone(),
        wtmpd_socket: s.wtmpd.clone(),
        ..MirrorPaths::default()
    };
    let m = Mirror::from_option("utmps", &paths).unwrap();
    let db = Database::open_read_write(&s._dir.path().join("wtmp.db")).unwrap();
    let opened = session::open_session(
        &db,
        &m,
        &NewSession {
            user: "frank",
            tty: None,
            host: Some("2001:db8::5"),
            service: Some("xrdp"),
            pid: Some(777),
        },
        Y2200 * USEC_PER_SEC,
    )
    .unwrap();
    assert!(opened.warning.is_none(), "{:?}", opened.warning);
    let w = session::close_session(&db, &m, &opened.session, (Y2200 + 60) * USEC_PER_SEC);
    assert!(w.unwrap().is_none());
    let u = utmp.lock().unwrap();
    assert_eq!(u.len(), 1);
    assert_eq!(ut_line(&u[0]), "xrdp:777");
    assert_eq!(ut_type(&u[0]), 8);
    let w = wtmp.lock().unwrap();
    assert_eq!(w.len(), 2);
    assert_eq!(
        addr(&w[0]),
        "2001:db8::5"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets()
    );
    let row = db.entries(&Default::default()).next().unwrap().unwrap();
    assert_eq!(row.logout, Some((Y2200 + 60) * USEC_PER_SEC));
    // No terminal is stored as the empty string, as the PAM module stores it.
    assert_eq!(row.tty.as_deref(), Some(""));
}

#[test]
fn late_logout_leaves_a_newer_session_on_the_line_alone() {
    let s = setup();
    let utmp = daemon(&s.utmpd, Reply::Store, false);
    let wtmp = daemon(&s.wtmpd, Reply::Store, true);
    let m = client(&s, Duration::from_secs(1));
    let old = LegacySession::new("hank", Some("pts/5"), None, None, 10);
    let new = LegacySession::new("ivy", Some("pts/5"), None, None, 11);
    m.login(&old, 0).unwrap();
    // The pty is reused (same line and id: utmpd overwrites) before the old close.
    m.login(&new, USEC_PER_SEC).unwrap();
    m.logout(&old, 2 * USEC_PER_SEC).unwrap();
    {
        let u = utmp.lock().unwrap();
        assert_eq!(u.len(), 1);
        assert_eq!((ut_type(&u[0]), ut_user(&u[0])), (7, "ivy".to_string()));
        // The log still gets the logout.
        let w = wtmp.lock().unwrap();
        assert_eq!(w.len(), 3);
        assert_eq!((ut_type(&w[2]), ut_pid(&w[2])), (8, 10));
    }
    // Closing twice changes nothing in utmp either.
    m.logout(&new, 3 * USEC_PER_SEC).unwrap();
    m.logout(&new, 4 * USEC_PER_SEC).unwrap();
    let u = utmp.lock().unwrap();
    assert_eq!(u.len(), 1);
    assert_eq!((ut_type(&u[0]), tv_sec(&u[0])), (8, 3));
}
