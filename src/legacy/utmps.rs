//! A client of skarnet's utmps daemons, in Rust, needing no C library support: musl's
//! utmpx functions are stubs, and linking libutmps would tie the build to skalibs.
//!
//! Protocol (utmps' `utmps-utmpd` and `utmps-wtmpd`, reached through `s6-ipcserver` on a
//! Unix stream socket; the daemon learns our euid/egid from the socket credentials):
//!
//! * utmpd, putline: send `'E'` followed by the record; the reply is one byte, an errno
//!   value, 0 for success. The daemon overwrites the entry with the same id rule and line,
//!   else appends. It answers `EPERM` unless we are root or run with its group (`utmp`)
//!   as effective group.
//! * utmpd, getline (used at logout): send `'l'` followed by the 32-byte line; the reply
//!   is `0` and the first `LOGIN_PROCESS`/`USER_PROCESS` record on that line, or one errno
//!   byte (`ESRCH`: none). It moves the connection's file position; `'r'` (reply: one
//!   errno byte) rewinds it, since putline searches forward from there.
//! * wtmpd, append: send `'+'` followed by the record; the reply is one errno byte; then
//!   the daemon closes. A non-root client may only append records whose `ut_user` maps to
//!   its own uid, so a non-root logout record (empty user) is refused with `EPERM`.
//!
//! The record is utmps' `struct utmpx` copied byte for byte in host order with the C ABI's
//! padding (400 bytes on 64-bit targets, with 64-bit seconds: no Y2038 limit). Its layout
//! is [`RawUtmpx`], checked at compile time against the offsets utmps has on x86_64 and
//! aarch64 musl; on 32-bit targets it follows the C ABI unchecked (no reference offsets).
//!
//! Every exchange (connect, send, reply) must finish within the configured timeout (1 s by
//! default), so a stuck or overloaded daemon delays a login by at most that much per
//! daemon (utmpd, then wtmpd); the socket is non-blocking and every wait goes through
//! `poll`. Sends use `MSG_NOSIGNAL`: a PAM module must not kill its host with `SIGPIPE`
//! when a daemon goes away. The socket calls are the safe functions of the crate's `sys`
//! module, shared with the varlink client.

use std::io;
use std::mem::{offset_of, size_of};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{
    LegacyError, LegacySession, LegacySink, UT_DEAD_PROCESS, UT_HOSTSIZE, UT_IDSIZE, UT_LINESIZE,
    UT_NAMESIZE, UT_USER_PROCESS, fill,
};
use crate::sys::{self, UnixAddr};
use crate::time::{USEC_PER_SEC, Usec};

/// utmps' `struct timeval` (musl ≥ 1.2: 64-bit `time_t` and `suseconds_t` everywhere).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RawTimeval {
    pub tv_sec: i64,
    pub tv_usec: i64,
}

/// utmps' `struct utmpx` (`src/include/utmps/utmpx.h`), field for field; `repr(C)` gives it
/// the target's C layout, padding included.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RawUtmpx {
    pub ut_type: i16,
    pub ut_pid: i32,
    pub ut_line: [u8; UT_LINESIZE],
    pub ut_id: [u8; UT_IDSIZE],
    pub ut_user: [u8; UT_NAMESIZE],
    pub ut_host: [u8; UT_HOSTSIZE],
    /// `struct exit_status { short e_termination; short e_exit; }`
    pub ut_exit: [i16; 2],
    pub ut_session: i32,
    pub ut_tv: RawTimeval,
    pub ut_addr_v6: [u32; 4],
    pub dummy: [u8; 20],
}

/// Bytes of one record on the wire.
pub const RECORD_SIZE: usize = size_of::<RawUtmpx>();

// The offsets utmps has on x86_64 and aarch64 musl (see the protocol notes). A target
// whose C ABI lays the struct out differently fails to build instead of sending records
// the daemon would misread.
#[cfg(target_pointer_width = "64")]
const _: () = {
    assert!(RECORD_SIZE == 400);
    assert!(offset_of!(RawUtmpx, ut_type) == 0);
    assert!(offset_of!(RawUtmpx, ut_pid) == 4);
    assert!(offset_of!(RawUtmpx, ut_line) == 8);
    assert!(offset_of!(RawUtmpx, ut_id) == 40);
    assert!(offset_of!(RawUtmpx, ut_user) == 44);
    assert!(offset_of!(RawUtmpx, ut_host) == 76);
    assert!(offset_of!(RawUtmpx, ut_exit) == 332);
    assert!(offset_of!(RawUtmpx, ut_session) == 336);
    assert!(offset_of!(RawUtmpx, ut_tv) == 344);
    assert!(offset_of!(RawUtmpx, ut_tv) + offset_of!(RawTimeval, tv_usec) == 352);
    assert!(offset_of!(RawUtmpx, ut_addr_v6) == 360);
    assert!(offset_of!(RawUtmpx, dummy) == 376);
};

impl RawUtmpx {
    /// The record of `session`: `USER_PROCESS` with user, host and address, or
    /// `DEAD_PROCESS` with those cleared.
    pub fn new(session: &LegacySession, kind: i16, at: Usec) -> RawUtmpx {
        let mut r = RawUtmpx {
            ut_type: kind,
            ut_pid: session.pid,
            ut_line: [0; UT_LINESIZE],
            ut_id: session.id,
            ut_user: [0; UT_NAMESIZE],
            ut_host: [0; UT_HOSTSIZE],
            ut_exit: [0; 2],
            ut_session: 0,
            ut_tv: RawTimeval {
                tv_sec: at.div_euclid(USEC_PER_SEC),
                tv_usec: at.rem_euclid(USEC_PER_SEC),
            },
            ut_addr_v6: [0; 4],
            dummy: [0; 20],
        };
        fill(&mut r.ut_line, &session.line);
        if kind == UT_USER_PROCESS {
            fill(&mut r.ut_user, &session.user);
            fill(&mut r.ut_host, session.host.as_deref().unwrap_or(""));
            let addr = session.addr_v6();
            for (word, b) in r.ut_addr_v6.iter_mut().zip(addr.chunks_exact(4)) {
                *word = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        r
    }

    /// The bytes utmps' `utmps_utmpx_pack` would send (a copy of the struct), with padding
    /// zeroed.
    pub fn to_bytes(&self) -> [u8; RECORD_SIZE] {
        let mut b = [0u8; RECORD_SIZE];
        let mut put = |at: usize, v: &[u8]| b[at..at + v.len()].copy_from_slice(v);
        put(offset_of!(RawUtmpx, ut_type), &self.ut_type.to_ne_bytes());
        put(offset_of!(RawUtmpx, ut_pid), &self.ut_pid.to_ne_bytes());
        put(offset_of!(RawUtmpx, ut_line), &self.ut_line);
        put(offset_of!(RawUtmpx, ut_id), &self.ut_id);
        put(offset_of!(RawUtmpx, ut_user), &self.ut_user);
        put(offset_of!(RawUtmpx, ut_host), &self.ut_host);
        let exit = offset_of!(RawUtmpx, ut_exit);
        put(exit, &self.ut_exit[0].to_ne_bytes());
        put(exit + 2, &self.ut_exit[1].to_ne_bytes());
        put(
            offset_of!(RawUtmpx, ut_session),
            &self.ut_session.to_ne_bytes(),
        );
        let tv = offset_of!(RawUtmpx, ut_tv);
        put(
            tv + offset_of!(RawTimeval, tv_sec),
            &self.ut_tv.tv_sec.to_ne_bytes(),
        );
        put(
            tv + offset_of!(RawTimeval, tv_usec),
            &self.ut_tv.tv_usec.to_ne_bytes(),
        );
        let addr = offset_of!(RawUtmpx, ut_addr_v6);
        for (i, w) in self.ut_addr_v6.iter().enumerate() {
            put(addr + 4 * i, &w.to_ne_bytes());
        }
        put(offset_of!(RawUtmpx, dummy), &self.dummy);
        b
    }
}

/// Writes sessions to a utmpd and a wtmpd socket.
#[derive(Clone, Debug)]
pub struct UtmpsMirror {
    utmpd: PathBuf,
    wtmpd: PathBuf,
    timeout: Duration,
}

impl UtmpsMirror {
    pub fn new(utmpd_socket: &Path, wtmpd_socket: &Path, timeout: Duration) -> UtmpsMirror {
        UtmpsMirror {
            utmpd: utmpd_socket.to_path_buf(),
            wtmpd: wtmpd_socket.to_path_buf(),
            timeout,
        }
    }

    /// `pututxline` through utmpd.
    pub fn putline(&self, record: &RawUtmpx) -> Result<(), LegacyError> {
        let conn = Conn::connect(&self.utmpd, self.timeout)?;
        conn.command(b'E', &record.to_bytes())
    }

    /// Marks our own utmp entry dead: only an entry on the same line with the same PID is
    /// overwritten. When the line now belongs to a newer session (a late close after the
    /// pty was reused), or holds no live entry, utmp is left alone. utmpd would otherwise
    /// overwrite any entry with the same id and line, the newer session's included.
    pub fn putline_own(&self, record: &RawUtmpx) -> Result<(), LegacyError> {
        let conn = Conn::connect(&self.utmpd, self.timeout)?;
        let mut request = [0u8; 1 + UT_LINESIZE];
        request[0] = b'l';
        request[1..].copy_from_slice(&record.ut_line);
        conn.send_all(&request)?;
        match conn.recv_byte()? {
            0 => {
                let mut found = [0u8; RECORD_SIZE];
                conn.recv_exact(&mut found)?;
                let pid = offset_of!(RawUtmpx, ut_pid);
                let found_pid = i32::from_ne_bytes([
                    found[pid],
                    found[pid + 1],
                    found[pid + 2],
                    found[pid + 3],
                ]);
                if found_pid != record.ut_pid {
                    return Ok(());
                }
            }
            e if i32::from(e) == libc::ESRCH => return Ok(()),
            e => return conn.status(e),
        }
        // getline left the daemon's file position after our entry; putline searches
        // forward from there, so rewind or it would append.
        conn.command(b'r', &[])?;
        conn.command(b'E', &record.to_bytes())
    }

    /// `updwtmpx` through wtmpd.
    pub fn append(&self, record: &RawUtmpx) -> Result<(), LegacyError> {
        let conn = Conn::connect(&self.wtmpd, self.timeout)?;
        conn.command(b'+', &record.to_bytes())
    }
}

impl LegacySink for UtmpsMirror {
    fn name(&self) -> &'static str {
        "utmps"
    }
    fn login(&self, session: &LegacySession, at: Usec) -> Result<(), LegacyError> {
        let record = RawUtmpx::new(session, UT_USER_PROCESS, at);
        LegacyError::combine(self.putline(&record), self.append(&record))
    }
    fn logout(&self, session: &LegacySession, at: Usec) -> Result<(), LegacyError> {
        let record = RawUtmpx::new(session, UT_DEAD_PROCESS, at);
        LegacyError::combine(self.putline_own(&record), self.append(&record))
    }
}

/// One connection to a utmps daemon. Each connection gets its own daemon process (and file
/// position), so it serves one operation and is closed; the deadline covers the whole
/// operation.
struct Conn<'a> {
    fd: OwnedFd,
    socket: &'a Path,
    timeout: Duration,
    deadline: Instant,
}

impl<'a> Conn<'a> {
    fn connect(socket: &'a Path, timeout: Duration) -> Result<Conn<'a>, LegacyError> {
        let io_err = |op, source| LegacyError::Socket {
            socket: socket.to_path_buf(),
            op,
            source,
        };
        let Some(addr) = UnixAddr::new(socket) else {
            return Err(io_err(
                "connect",
                io::Error::new(io::ErrorKind::InvalidInput, "unusable socket path"),
            ));
        };
        let fd = sys::unix_stream_socket(true).map_err(|e| io_err("socket", e))?;
        let conn = Conn {
            fd,
            socket,
            timeout,
            // An absurd timeout (Duration::MAX) means "wait very long", not a panic.
            deadline: Instant::now()
                .checked_add(timeout)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(u64::from(u32::MAX))),
        };
        loop {
            let Err(err) = sys::connect(conn.fd.as_fd(), &addr) else {
                return Ok(conn);
            };
            match err.raw_os_error().unwrap_or(0) {
                libc::EINTR => {}
                // The listener's backlog is full (Linux answers EAGAIN, not EINPROGRESS, for
                // Unix sockets): the superserver is not accepting. Retry until the deadline.
                libc::EAGAIN => {
                    let left = conn.left("connection")?;
                    std::thread::sleep(left.min(Duration::from_millis(10)));
                }
                libc::EINPROGRESS => {
                    conn.wait(sys::poll_writable, "connection")?;
                    return match conn.socket_error() {
                        0 => Ok(conn),
                        e => Err(conn.connect_error(io::Error::from_raw_os_error(e))),
                    };
                }
                _ => return Err(conn.connect_error(err)),
            }
        }
    }

    /// Sends a command with its payload and reads the one-byte errno reply.
    fn command(&self, command: u8, payload: &[u8]) -> Result<(), LegacyError> {
        let mut request = Vec::with_capacity(1 + payload.len());
        request.push(command);
        request.extend_from_slice(payload);
        self.send_all(&request)?;
        let status = self.recv_byte()?;
        self.status(status)
    }

    fn status(&self, errno: u8) -> Result<(), LegacyError> {
        match i32::from(errno) {
            0 => Ok(()),
            libc::EPERM => Err(LegacyError::Refused {
                socket: self.socket.to_path_buf(),
            }),
            errno => Err(LegacyError::Daemon {
                socket: self.socket.to_path_buf(),
                errno,
            }),
        }
    }

    fn connect_error(&self, err: io::Error) -> LegacyError {
        match err.raw_os_error().unwrap_or(0) {
            libc::ENOENT | libc::ECONNREFUSED => LegacyError::DaemonAbsent {
                socket: self.socket.to_path_buf(),
                source: err,
            },
            _ => LegacyError::Socket {
                socket: self.socket.to_path_buf(),
                op: "connect",
                source: err,
            },
        }
    }

    fn socket_error(&self) -> i32 {
        sys::socket_error(self.fd.as_fd()).unwrap_or_else(|e| e.raw_os_error().unwrap_or(libc::EIO))
    }

    /// Time left before the deadline, or the timeout error for `op`.
    fn left(&self, op: &'static str) -> Result<Duration, LegacyError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(LegacyError::Timeout {
                socket: self.socket.to_path_buf(),
                op,
                timeout: self.timeout,
            })
        } else {
            Ok(left)
        }
    }

    /// Waits until the socket is ready (`poll`: [`sys::poll_readable`] or
    /// [`sys::poll_writable`]), or has an error or hang-up to report.
    fn wait(
        &self,
        poll: fn(BorrowedFd<'_>, Duration) -> io::Result<bool>,
        op: &'static str,
    ) -> Result<(), LegacyError> {
        loop {
            let left = self.left(op)?;
            match poll(self.fd.as_fd(), left) {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(err) if err.raw_os_error() == Some(libc::EINTR) => {}
                Err(err) => {
                    return Err(LegacyError::Socket {
                        socket: self.socket.to_path_buf(),
                        op: "poll",
                        source: err,
                    });
                }
            }
        }
    }

    fn send_all(&self, mut buf: &[u8]) -> Result<(), LegacyError> {
        while !buf.is_empty() {
            self.wait(sys::poll_writable, "send")?;
            // A closed peer is EPIPE, not SIGPIPE.
            let n = match sys::send_nosignal(self.fd.as_fd(), buf) {
                Ok(n) => n,
                Err(err) => match err.raw_os_error().unwrap_or(0) {
                    libc::EINTR | libc::EAGAIN => continue,
                    _ => {
                        return Err(LegacyError::Socket {
                            socket: self.socket.to_path_buf(),
                            op: "send",
                            source: err,
                        });
                    }
                },
            };
            buf = &buf[n..];
        }
        Ok(())
    }

    fn recv_byte(&self) -> Result<u8, LegacyError> {
        let mut b = [0u8; 1];
        self.recv_exact(&mut b)?;
        Ok(b[0])
    }

    /// Fills `buf`; the daemon closing first means it gave up on us.
    fn recv_exact(&self, mut buf: &mut [u8]) -> Result<(), LegacyError> {
        while !buf.is_empty() {
            self.wait(sys::poll_readable, "reply")?;
            let err = match sys::recv(self.fd.as_fd(), buf) {
                Ok(0) => {
                    return Err(LegacyError::NoReply {
                        socket: self.socket.to_path_buf(),
                    });
                }
                Ok(n) => {
                    buf = &mut buf[n..];
                    continue;
                }
                Err(err) => err,
            };
            match err.raw_os_error().unwrap_or(0) {
                libc::EINTR | libc::EAGAIN => {}
                libc::ECONNRESET => {
                    return Err(LegacyError::NoReply {
                        socket: self.socket.to_path_buf(),
                    });
                }
                _ => {
                    return Err(LegacyError::Socket {
                        socket: self.socket.to_path_buf(),
                        op: "receive",
                        source: err,
                    });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_pointer_width = "64")]
    #[test]
    fn record_bytes_at_the_documented_offsets() {
        let s = LegacySession::new("alice", Some("pts/3"), Some("192.0.2.9"), None, 4321);
        // 2200-01-01: far beyond both 2038 and 2106, exact in utmps records.
        let at = 7_258_118_400 * USEC_PER_SEC + 250_000;
        let b = RawUtmpx::new(&s, UT_USER_PROCESS, at).to_bytes();
        assert_eq!(i16::from_ne_bytes([b[0], b[1]]), 7);
        assert_eq!(i32::from_ne_bytes(b[4..8].try_into().unwrap()), 4321);
        assert_eq!(&b[8..13], b"pts/3");
        assert!(b[13..40].iter().all(|&x| x == 0));
        assert_eq!(&b[40..44], b"ts/3");
        assert_eq!(&b[44..49], b"alice");
        assert_eq!(&b[76..85], b"192.0.2.9");
        assert_eq!(
            i64::from_ne_bytes(b[344..352].try_into().unwrap()),
            7_258_118_400
        );
        assert_eq!(i64::from_ne_bytes(b[352..360].try_into().unwrap()), 250_000);
        assert_eq!(&b[360..364], &[192, 0, 2, 9]);
        assert!(b[364..400].iter().all(|&x| x == 0));

        let d = RawUtmpx::new(&s, UT_DEAD_PROCESS, at).to_bytes();
        assert_eq!(i16::from_ne_bytes([d[0], d[1]]), 8);
        assert!(d[44..332].iter().all(|&x| x == 0));
        assert_eq!(&d[40..44], b"ts/3");
    }
}
