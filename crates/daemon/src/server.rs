//! The socket: listening (socket activation or our own bind), readiness, accepting with
//! credentials, and one thread per connection, each bounded in time, size and calls.
//!
//! Thread per connection, with a bounded count and small stacks, rather than a poll loop:
//! every write waits on SQLite (a commit and an fdatasync, or the lock's bounded wait), and
//! a stream of a million rows reads for seconds; in a poll loop either would stop every
//! other client, or need a worker pool and a hand-off anyway. An idle connection costs its
//! thread's touched stack pages (tens of KiB), measured in the benchmark with 1,000 of them.

use std::collections::HashMap;
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::{Config, LOG_DEBUG, LOG_ERR, LOG_INFO, LOG_NOTICE, LOG_WARNING, ROOT_RESERVE};
use crate::methods::{Next, Service, Sink};
use crate::protocol::{self, Reply};
use crate::sys;
use crate::{log, params, refusal};

/// Stack of a connection thread: parsing is bounded by serde_json's recursion limit (128),
/// SQLite's deepest use here is a prepared statement and a read.
const THREAD_STACK: usize = 256 * 1024;

/// How the socket came to us.
pub enum Listening {
    Activated(UnixListener),
    Bound(UnixListener),
}

/// The socket to listen on: the activation socket if there is one, else our own bind.
pub fn listen(cfg: &Config) -> io::Result<Listening> {
    if let Some(l) = sys::activation_socket()? {
        return Ok(Listening::Activated(l));
    }
    bind(&cfg.socket).map(Listening::Bound)
}

/// How long the check for a daemon already on the socket waits.
const STALE_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Binds `path`: its directory is created 0755, a stale socket left by an earlier run (one
/// nothing answers on) is replaced, a live one is an error, and the socket is made 0666
/// (writes are authorized per call, by credentials, not by the file's mode).
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        create_dirs(dir)?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            // Bounded: a daemon that is stopped with its listen queue full would hold an
            // unbounded connect for good. Such a daemon is there all the same.
            match wtmpdb::varlink::Client::connect(path, STALE_CHECK) {
                Ok(_) | Err(wtmpdb::varlink::Error::Timeout { .. }) => {
                    return Err(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        format!("{}: another daemon answers there", path.display()),
                    ));
                }
                Err(_) => {}
            }
            std::fs::remove_file(path)?;
        }
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{}: exists and is not a socket", path.display()),
            ));
        }
        Err(_) => {}
    }
    let l = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    Ok(l)
}

/// Creates `dir` and its missing parents, each 0755 whatever the umask (the daemon runs
/// with 0077); directories that exist are left as they are.
pub fn create_dirs(dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() || dir.exists() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dirs(parent)?;
    }
    match std::fs::DirBuilder::new().mode(0o755).create(dir) {
        Ok(()) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Tells the service manager we are ready (`Type=notify`), when NOTIFY_SOCKET names one:
/// a path, or an abstract address (`@name`). Without it there is nothing to do.
pub fn notify(state: &str) -> io::Result<()> {
    let Some(addr) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(());
    };
    let sock = UnixDatagram::unbound()?;
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(addr.as_os_str());
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let a = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        sock.send_to_addr(state.as_bytes(), &a)?;
    } else {
        sock.send_to(state.as_bytes(), Path::new(&addr))?;
    }
    Ok(())
}

/// Counts of what the daemon is doing, for the idle exit and the connection bounds.
#[derive(Default)]
pub struct State {
    pub connections: AtomicUsize,
    /// Open connections per user (root included).
    per_user: Mutex<HashMap<u32, usize>>,
    /// Milliseconds since the start when the last connection ended or began.
    pub last_activity_ms: AtomicU64,
    /// Milliseconds since `trims` when the allocator last gave memory back.
    last_trim_ms: AtomicU64,
    trims: Trims,
}

/// The clock of the allocator's trims.
struct Trims(Instant);

impl Default for Trims {
    fn default() -> Trims {
        Trims(Instant::now())
    }
}

impl Trims {
    fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
}

impl State {
    /// Counts a new connection of `peer` in, or says why it is refused: a user other than
    /// root past `max_per_user`, or past `max_connections` in all; root is refused only past
    /// `max_connections` + ROOT_RESERVE, so no other user's connections can shut out logins.
    fn admit(&self, peer: &sys::Peer, cfg: &Config) -> Result<(), String> {
        let mut per = self.per_user.lock().unwrap_or_else(|e| e.into_inner());
        let total = self.connections.load(Ordering::SeqCst);
        let mine = per.get(&peer.uid).copied().unwrap_or(0);
        if peer.is_root() {
            if total >= cfg.max_connections + ROOT_RESERVE {
                return Err("Too many connections".into());
            }
        } else if mine >= cfg.max_per_user {
            return Err(format!(
                "Too many connections of uid {} ({})",
                peer.uid, cfg.max_per_user
            ));
        } else if total >= cfg.max_connections {
            return Err("Too many connections".into());
        }
        *per.entry(peer.uid).or_insert(0) += 1;
        self.connections.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn leave(&self, uid: u32) {
        let mut per = self.per_user.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = per.get_mut(&uid) {
            *n -= 1;
            if *n == 0 {
                per.remove(&uid);
            }
        }
        let last_one = self.connections.fetch_sub(1, Ordering::SeqCst) == 1;
        drop(per);
        // What the connections freed goes back to the system: when the last one ends, and
        // at most once a second otherwise.
        let now = self.trims.elapsed().as_millis() as u64;
        let last = self.last_trim_ms.load(Ordering::SeqCst);
        let due = now.saturating_sub(last) >= 1000
            && self
                .last_trim_ms
                .compare_exchange(last, now, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok();
        if last_one || due {
            sys::trim_malloc();
        }
    }
}

/// Serves until Quit, a fatal accept error, or the idle exit. Returns the exit code.
pub fn serve(listener: UnixListener, cfg: Config, idle_exit: Option<Duration>) -> i32 {
    let database = cfg.database.clone();
    let service = Arc::new(Service::new(cfg));
    let state = Arc::new(State::default());
    let start = Instant::now();
    if let Some(idle) = idle_exit {
        let state = Arc::clone(&state);
        std::thread::Builder::new()
            .name("idle".into())
            .spawn(move || idle_watch(&state, start, idle, &database))
            .expect("spawning the idle watcher");
    }
    loop {
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
                ) =>
            {
                log!(LOG_ERR, "accept: {e}; pausing");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => continue,
            Err(e) => {
                log!(LOG_ERR, "accept: {e}");
                return 1;
            }
        };
        // Credentials are taken here, once, at accept: what the kernel recorded at connect.
        let peer = match sys::peer_credentials(&stream) {
            Ok(p) => p,
            Err(e) => {
                refusal!(
                    LOG_WARNING,
                    "refusing a client whose credentials cannot be read: {e}"
                );
                continue; // dropped: closed without a word
            }
        };
        state
            .last_activity_ms
            .store(start.elapsed().as_millis() as u64, Ordering::SeqCst);
        if let Err(why) = state.admit(&peer, &service.config) {
            refusal!(
                LOG_WARNING,
                "refusing pid {} uid {}: {why}",
                peer.pid,
                peer.uid
            );
            refuse(stream, &why);
            continue;
        }
        let (service, st) = (Arc::clone(&service), Arc::clone(&state));
        let uid = peer.uid;
        let spawned = std::thread::Builder::new()
            .stack_size(THREAD_STACK)
            .spawn(move || {
                let code = connection(stream, &peer, &service);
                st.last_activity_ms
                    .store(start.elapsed().as_millis() as u64, Ordering::SeqCst);
                st.leave(uid);
                if let Some(code) = code {
                    log!(LOG_NOTICE, "exiting on Quit({code})");
                    std::process::exit(code);
                }
            });
        if let Err(e) = spawned {
            state.leave(uid);
            log!(LOG_ERR, "cannot start a connection thread: {e}");
        }
    }
}

/// Exits when no connection has been open for `idle` (socket activation: the service
/// manager keeps the socket and starts us again on the next connection), and no record
/// waits in the spool of `database` (the committer merges them once the database is free;
/// gone, we would leave them out of every reader's sight until the next connection).
fn idle_watch(state: &State, start: Instant, idle: Duration, database: &Path) {
    loop {
        std::thread::sleep(Duration::from_millis(200).min(idle));
        if state.connections.load(Ordering::SeqCst) > 0 {
            continue;
        }
        if wtmpdb::session::spool::waiting(database).is_ok_and(|n| n > 0) {
            continue;
        }
        let last = Duration::from_millis(state.last_activity_ms.load(Ordering::SeqCst));
        if start.elapsed().saturating_sub(last) >= idle {
            log!(LOG_INFO, "idle for {} s: exiting", idle.as_secs_f64());
            let _ = notify("STOPPING=1");
            std::process::exit(0);
        }
    }
}

/// Tells a refused client why, without waiting for it (a short write timeout).
fn refuse(mut stream: UnixStream, why: &str) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
    let r = Reply::error(protocol::INTERNAL_ERROR, params!("ErrorMsg" => why));
    let _ = std::io::Write::write_all(&mut stream, &r.encode());
}

/// Why a connection's next message did not come.
enum ReadEnd {
    /// The client closed its end between messages.
    Closed,
    /// Idle too long between messages.
    Idle,
    /// A message took longer than the bound from its first byte.
    Slow,
    /// A message longer than the bound.
    TooLong,
    Io(io::Error),
}

/// The most of its read buffer a connection keeps between messages.
const BUF_KEPT: usize = 4096;

/// Connections of users other than root that may hold a message longer than [`BUF_KEPT`]
/// at once (up to `max_message` bytes, and its parse, many times that): no call needs one,
/// and 2,048 connections each sending the longest message would otherwise hold 128 MiB
/// and their parses several times more.
const LONG_MESSAGES: usize = 4;

static LONG: Mutex<usize> = Mutex::new(0);
static LONG_FREED: std::sync::Condvar = std::sync::Condvar::new();

/// A turn to receive and handle a long message; given back when dropped.
struct LongTurn;

impl LongTurn {
    /// A turn, waiting at most until `until`.
    fn take(until: Instant) -> Option<LongTurn> {
        let mut held = LONG.lock().unwrap_or_else(|e| e.into_inner());
        while *held >= LONG_MESSAGES {
            let left = until.checked_duration_since(Instant::now())?;
            held = LONG_FREED
                .wait_timeout(held, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        *held += 1;
        Some(LongTurn)
    }
}

impl Drop for LongTurn {
    fn drop(&mut self) {
        *LONG.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        LONG_FREED.notify_one();
    }
}

/// The connection's incoming bytes, split at NULs, each message bounded.
struct Messages {
    buf: Vec<u8>,
    /// Bytes of `buf` already searched for a NUL.
    scanned: usize,
    /// Root's messages are not held back by others' long ones.
    root: bool,
    /// Held from a long message's arrival until the next message is asked for.
    long: Option<LongTurn>,
}

impl Messages {
    fn next(&mut self, stream: &mut UnixStream, cfg: &Config) -> Result<Vec<u8>, ReadEnd> {
        self.long = None;
        let mut started: Option<Instant> = None;
        let idle_since = Instant::now();
        // Small: an idle connection's thread touches only the stack it uses, and this buffer
        // is most of it (1,000 idle connections are measured in tests/e2e/daemon.sh).
        let mut chunk = [0u8; 1024];
        loop {
            if let Some(i) = self.buf[self.scanned..].iter().position(|&b| b == 0) {
                let end = self.scanned + i;
                let msg = self.buf[..end].to_vec();
                self.buf.drain(..=end);
                // A long message leaves no long buffer behind for the connection's life.
                self.buf.shrink_to(BUF_KEPT);
                self.scanned = 0;
                return Ok(msg);
            }
            self.scanned = self.buf.len();
            if self.buf.len() > cfg.max_message {
                return Err(ReadEnd::TooLong);
            }
            if !self.buf.is_empty() && started.is_none() {
                started = Some(Instant::now());
            }
            // The time left: of the message once it began, of the idle bound before.
            let left = match started {
                Some(t) => cfg.message_timeout.checked_sub(t.elapsed()),
                None => cfg.idle_timeout.checked_sub(idle_since.elapsed()),
            };
            let Some(left) = left.filter(|d| !d.is_zero()) else {
                return Err(if started.is_some() {
                    ReadEnd::Slow
                } else {
                    ReadEnd::Idle
                });
            };
            // Without a turn the buffer never grows past BUF_KEPT (it grows by doubling, by
            // at most a chunk at a time).
            if self.buf.len() + chunk.len() > BUF_KEPT && self.long.is_none() && !self.root {
                // Within the message's own deadline, or it is too slow.
                self.long = Some(LongTurn::take(Instant::now() + left).ok_or(ReadEnd::Slow)?);
            }
            stream.set_read_timeout(Some(left)).map_err(ReadEnd::Io)?;
            match stream.read(&mut chunk) {
                Ok(0) if self.buf.is_empty() => return Err(ReadEnd::Closed),
                Ok(0) => {
                    return Err(ReadEnd::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "closed in the middle of a message",
                    )));
                }
                Ok(n) => {
                    if started.is_none() {
                        started = Some(Instant::now());
                    }
                    self.buf.extend_from_slice(&chunk[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(ReadEnd::Io(e)),
            }
        }
    }
}

/// Serves one connection; Some(code) when it asked the daemon to quit.
fn connection(mut stream: UnixStream, peer: &sys::Peer, service: &Service) -> Option<i32> {
    let cfg = &service.config;
    if let Err(e) = stream.set_write_timeout(Some(cfg.write_timeout)) {
        log!(LOG_ERR, "connection of pid {}: {e}", peer.pid);
        return None;
    }
    let mut messages = Messages {
        buf: Vec::new(),
        scanned: 0,
        root: peer.is_root(),
        long: None,
    };
    let mut calls = 0u64;
    loop {
        let msg = match messages.next(&mut stream, cfg) {
            Ok(m) => m,
            Err(end) => {
                let (level, why, reply) = match end {
                    ReadEnd::Closed => (LOG_DEBUG, "closed".to_string(), None),
                    ReadEnd::Idle => (LOG_DEBUG, "idle".to_string(), None),
                    ReadEnd::Slow => (
                        LOG_INFO,
                        format!(
                            "a message took longer than {} s",
                            cfg.message_timeout.as_secs_f64()
                        ),
                        Some("The message did not arrive in time"),
                    ),
                    ReadEnd::TooLong => (
                        LOG_INFO,
                        format!("a message longer than {} bytes", cfg.max_message),
                        Some("The message is too long"),
                    ),
                    ReadEnd::Io(e) => (LOG_DEBUG, e.to_string(), None),
                };
                let line = format_args!(
                    "connection of pid {} uid {} ends: {why}",
                    peer.pid, peer.uid
                );
                if reply.is_some() {
                    crate::config::log_refusal(level, line);
                } else {
                    crate::config::log(level, line);
                }
                if let Some(text) = reply {
                    let r = Reply::invalid("", text);
                    let _ = std::io::Write::write_all(&mut stream, &r.encode());
                }
                return None;
            }
        };
        calls += 1;
        if calls > cfg.max_requests {
            let r = Reply::error(
                protocol::INTERNAL_ERROR,
                params!("ErrorMsg" => format!("More than {} calls on one connection", cfg.max_requests)),
            );
            let _ = std::io::Write::write_all(&mut stream, &r.encode());
            refusal!(
                LOG_INFO,
                "connection of pid {}: call limit reached",
                peer.pid
            );
            return None;
        }
        let call = match protocol::parse_call(&msg) {
            Ok(c) => c,
            Err(bad) => {
                refusal!(LOG_INFO, "pid {} sent a bad message: {bad}", peer.pid);
                let r = Reply::invalid(bad.parameter(), bad.to_string());
                if std::io::Write::write_all(&mut stream, &r.encode()).is_err() {
                    return None;
                }
                continue;
            }
        };
        let mut out = Timed {
            stream: &stream,
            timeout: cfg.write_timeout,
        };
        match service.dispatch(&call, peer, &mut out) {
            Ok(Next::Continue) => {}
            Ok(Next::Quit(code)) => return Some(code),
            Err(e) => {
                log!(LOG_DEBUG, "connection of pid {}: {e}", peer.pid);
                return None;
            }
        }
    }
}

/// The connection's replies: each message must be taken whole within `timeout` of its
/// first byte, however slowly the client reads (the socket's own timeout bounds each
/// write(2), which a client taking a byte at a time would reset). A stream's next batch is
/// read from the database only once this one is sent, so a client that does not read holds
/// one batch for at most this long.
struct Timed<'a> {
    stream: &'a UnixStream,
    timeout: Duration,
}

impl Sink for Timed<'_> {
    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        use std::io::Write;
        let until = Instant::now() + self.timeout;
        let mut rest = bytes;
        while !rest.is_empty() {
            let left = until
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    io::Error::new(io::ErrorKind::TimedOut, "the client did not take a reply")
                })?;
            self.stream.set_write_timeout(Some(left))?;
            match (&mut &*self.stream).write(rest) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => rest = &rest[n..],
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted
                            | io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e),
            }
        }
        // The other writes of the connection (its errors) have the whole bound again.
        self.stream.set_write_timeout(Some(self.timeout))
    }
}
