//! The socket: listening (socket activation or our own bind), readiness, accepting with
//! credentials, and serving the connections, each bounded in time, size and calls.
//!
//! A connection waiting for a call costs no thread. A few threads accept; a connection of
//! root is served by the thread that accepted it, from accept to its end (logins and logouts
//! wait for nothing another user does: no queue, no poll, no hand-off); any other is watched
//! by the poller
//! (epoll), which reads it without waiting and, once a message is whole, hands it to a
//! bounded set of workers (`max_reads` + [`WORKERS`]; a thread each, started when calls
//! queue and ended after a second without any). A read of a user other than root whose turn
//! is taken waits without a thread too: it is set aside with its call, and handed to a
//! worker with the turn once one is free (or refused as busy after the wait). The workers
//! and the poller run at the lowest priority (nice 19), below root's threads and the committer.
//!
//! Why not a thread per connection (as before): 2,048 idle connections of one user held
//! 2,048 threads, their touched stacks 35 MB of the daemon's 80 to 92 MB under attack
//! (tests/memory.rs); with the poller, 35 to 38 MB. Why not a poll loop alone: every write
//! waits on SQLite (a commit and an fdatasync, or the lock's bounded wait), and a stream of
//! a million rows reads for seconds: in the loop either would stop every other client.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::config::{Config, LOG_DEBUG, LOG_ERR, LOG_INFO, LOG_NOTICE, LOG_WARNING, ROOT_RESERVE};
use crate::methods::{Next, READ_QUEUE_WAIT, Service, Sink, Turn};
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
    /// Milliseconds since `trims` when the last connection ended with a trim still to come
    /// (0: none due), see [`State::trim_when_quiet`].
    trim_due_since_ms: AtomicU64,
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
        // What the connections freed goes back to the system: at most once a second while
        // connections come and go, and once they are over (by the poller, see
        // `trim_when_quiet`).
        let now = self.trims.elapsed().as_millis() as u64;
        let last = self.last_trim_ms.load(Ordering::SeqCst);
        let due = now.saturating_sub(last) >= 1000
            && self
                .last_trim_ms
                .compare_exchange(last, now, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok();
        if due {
            sys::trim_malloc();
        } else if last_one {
            self.trim_due_since_ms.store(now.max(1), Ordering::SeqCst);
        }
    }

    /// The trim after the last connection, once none has come for [`TRIM_QUIET`]. Done
    /// there, at every connection's end, it cost each login's connection (each the only
    /// one, as a PAM module makes them) the trim and, at the next one, the page faults of
    /// the memory given back: 16 µs a session in a client's loop.
    fn trim_when_quiet(&self) {
        let since = self.trim_due_since_ms.load(Ordering::SeqCst);
        let now = self.trims.elapsed().as_millis() as u64;
        if since == 0
            || self.connections.load(Ordering::SeqCst) > 0
            || now.saturating_sub(since) < TRIM_QUIET.as_millis() as u64
        {
            return;
        }
        if self
            .trim_due_since_ms
            .compare_exchange(since, 0, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            self.last_trim_ms.store(now, Ordering::SeqCst);
            sys::trim_malloc();
        }
    }
}

/// How long the daemon has had no connection before it gives the memory they freed back.
const TRIM_QUIET: Duration = Duration::from_millis(300);

/// How often the poller checks the connections' deadlines, the connections waiting for a
/// long message's turn and the calls waiting for a turn to read.
const TICK: Duration = Duration::from_millis(100);

/// Bytes the poller reads from a connection at once (on its own stack).
const READ_CHUNK: usize = 16 * 1024;

/// Threads serving the calls of users other than root at once, besides `max_reads` (the
/// reads under way): a call waits in the queue for one of them, a read waits for its turn
/// without any. Root's calls each have a thread of their own.
const WORKERS: usize = 8;

/// How long a worker with nothing to do waits for the next call before it ends.
const WORKER_LINGER: Duration = Duration::from_secs(1);

/// A connection: its socket, who is at the other end, and the bytes it sent that no call
/// has taken yet.
struct Conn {
    stream: UnixStream,
    peer: sys::Peer,
    buf: Vec<u8>,
    /// Bytes of `buf` already searched for a NUL.
    scanned: usize,
    /// Held from a long message's arrival until its call is answered.
    long: Option<LongTurn>,
    calls: u64,
    /// When the connection became idle (no byte of a message in `buf`), or when the message
    /// in `buf` began.
    since: Instant,
    /// The client closed its end.
    eof: bool,
    /// Not watched until a long message's turn is free.
    wants_long: bool,
}

impl Conn {
    fn new(stream: UnixStream, peer: sys::Peer) -> Conn {
        Conn {
            stream,
            peer,
            buf: Vec::new(),
            scanned: 0,
            long: None,
            calls: 0,
            since: Instant::now(),
            eof: false,
            wants_long: false,
        }
    }

    fn fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }

    /// Whether `buf` holds a whole message.
    fn complete(&mut self) -> bool {
        match self.buf[self.scanned..].iter().position(|&b| b == 0) {
            Some(_) => true,
            None => {
                self.scanned = self.buf.len();
                false
            }
        }
    }

    /// The first whole message of `buf`, taken out of it.
    fn take_message(&mut self) -> Option<Vec<u8>> {
        let end = self.scanned + self.buf[self.scanned..].iter().position(|&b| b == 0)?;
        let msg = self.buf[..end].to_vec();
        self.buf.drain(..=end);
        // A long message leaves no long buffer behind for the connection's life.
        self.buf.shrink_to(BUF_KEPT);
        self.scanned = 0;
        // The next message, if it began already, began now.
        self.since = Instant::now();
        Some(msg)
    }

    /// Reads root's connection, waiting until its deadline (of the idle bound, or of the
    /// message once it began), until a message is whole. The waits are in poll(2), the reads
    /// never wait (see [`sys::wait_readable`]: a read asleep in the socket would be woken
    /// for nothing each time the client takes a reply).
    fn fill_blocking(&mut self, cfg: &Config) -> Fill {
        // Small: this is the stack of a thread of root's.
        let mut chunk = [0u8; 1024];
        loop {
            let (bound, over) = if self.buf.is_empty() {
                (cfg.idle_timeout, ReadEnd::Idle)
            } else {
                (cfg.message_timeout, ReadEnd::Slow)
            };
            let Some(left) = bound
                .checked_sub(self.since.elapsed())
                .filter(|d| !d.is_zero())
            else {
                return Fill::End(over);
            };
            // Between messages, the usual wait: the read comes once there is something.
            if self.buf.is_empty() && !self.eof {
                if let Err(e) = sys::wait_readable(&self.stream, left) {
                    return Fill::End(ReadEnd::Io(e));
                }
            }
            match self.fill(cfg, &mut chunk, true, true) {
                // In the middle of a message: wait for the rest.
                Fill::Pending if !self.buf.is_empty() => {
                    if let Err(e) = sys::wait_readable(&self.stream, left) {
                        return Fill::End(ReadEnd::Io(e));
                    }
                }
                Fill::Pending => {}
                other => return other,
            }
        }
    }

    /// Reads what the client sent until a message is whole, without waiting (the poller's
    /// connections are non-blocking); with `once`, returns Pending after each read. A long
    /// message's turn is taken only if `may_take_long` (no connection waits for one).
    fn fill(&mut self, cfg: &Config, chunk: &mut [u8], once: bool, may_take_long: bool) -> Fill {
        loop {
            if self.complete() {
                return Fill::Ready;
            }
            if self.buf.len() > cfg.max_message {
                return Fill::End(ReadEnd::TooLong);
            }
            if self.eof {
                return Fill::End(if self.buf.is_empty() {
                    ReadEnd::Closed
                } else {
                    ReadEnd::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "closed in the middle of a message",
                    ))
                });
            }
            // Without a turn the buffer never grows past BUF_KEPT.
            let room = if self.long.is_some() || self.peer.is_root() {
                cfg.max_message + 1
            } else {
                BUF_KEPT
            };
            if self.buf.len() >= room {
                match LongTurn::try_take().filter(|_| may_take_long) {
                    Some(t) => self.long = Some(t),
                    None => return Fill::WaitLong,
                }
                continue;
            }
            let want = (room - self.buf.len()).min(chunk.len());
            match sys::recv_now(&self.stream, &mut chunk[..want]) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    if self.buf.is_empty() {
                        self.since = Instant::now();
                    }
                    self.buf.extend_from_slice(&chunk[..n]);
                    if once && !self.complete() {
                        return Fill::Pending;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Fill::Pending;
                }
                Err(e) => return Fill::End(ReadEnd::Io(e)),
            }
        }
    }
}

/// What reading a connection came to.
enum Fill {
    /// A whole message is in the buffer.
    Ready,
    /// Nothing more to read now.
    Pending,
    /// The message is longer than BUF_KEPT and no long message's turn is free.
    WaitLong,
    End(ReadEnd),
}

/// A connection with a call to answer: the next message in its buffer, or a read that
/// waited for its turn.
struct Job {
    conn: Conn,
    waited: Option<(protocol::Call, Turn)>,
}

/// What a worker gives back to the poller.
enum Back {
    /// Answered every whole message: wait for the next.
    Idle(Conn),
    /// A read whose turn is not free: it waits without a thread.
    Parked(Conn, protocol::Call),
}

/// A read waiting for its turn.
struct Waiting {
    conn: Conn,
    call: protocol::Call,
    until: Instant,
}

/// What the poller and the workers share.
struct Shared {
    service: Service,
    state: State,
    start: Instant,
    /// The calls of users other than root waiting for a worker, and the workers running.
    queue: Mutex<(VecDeque<Job>, usize)>,
    queued: Condvar,
    workers: usize,
    back: Mutex<Vec<Back>>,
    /// Written when a connection is handed to the poller (accepted, or given back by a
    /// worker) and when a worker is done with a call (a turn to read may be free).
    wake: UnixStream,
    /// Threads waiting in accept (see [`accept_loop`]).
    accepting: AtomicUsize,
}

impl Shared {
    /// Serves a connection of root in a thread of its own, from accept to its end, as
    /// before the poller: no call of another user can hold a login up, not even in the
    /// poller's queue. Only root can open such connections (up to its reserve).
    fn root(self: &Arc<Shared>, mut conn: Conn) {
        let cfg = &self.service.config;
        loop {
            match conn.fill_blocking(cfg) {
                Fill::Ready => match self.answer(&mut conn, &mut None) {
                    Some(Answered::Idle) => {}
                    Some(Answered::Parked(_)) | None => break,
                },
                Fill::End(end) => return finish(conn, end, self),
                Fill::Pending | Fill::WaitLong => {}
            }
        }
        let uid = conn.peer.uid;
        drop(conn);
        self.ended(uid);
    }

    /// Has `job` answered by the workers, in turn.
    fn submit(self: &Arc<Shared>, job: Job) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.0.push_back(job);
        if q.1 >= self.workers {
            drop(q);
            self.queued.notify_one();
            return;
        }
        q.1 += 1;
        drop(q);
        let sh = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("worker".into())
            .stack_size(THREAD_STACK)
            .spawn(move || sh.work());
        if let Err(e) = spawned {
            log!(LOG_ERR, "cannot start a worker thread: {e}");
            let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            q.1 -= 1;
            if q.1 == 0 {
                // Nobody would take them: they are dropped, as at accept.
                let jobs: Vec<Job> = q.0.drain(..).collect();
                drop(q);
                for j in jobs {
                    self.ended(j.conn.peer.uid);
                }
            }
        } else {
            self.queued.notify_one();
        }
    }

    /// A worker: answers the queued calls, and ends after [`WORKER_LINGER`] without any.
    fn work(self: Arc<Shared>) {
        loop {
            let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            let job = loop {
                if let Some(j) = q.0.pop_front() {
                    break Some(j);
                }
                let (g, t) = self
                    .queued
                    .wait_timeout(q, WORKER_LINGER)
                    .unwrap_or_else(|e| e.into_inner());
                q = g;
                if t.timed_out() && q.0.is_empty() {
                    break None;
                }
            };
            let Some(job) = job else {
                q.1 -= 1;
                return;
            };
            drop(q);
            // A bug in one call ends that connection, not the worker: a worker gone without
            // being counted out is never started again, and nine such calls would leave
            // every other user's calls unanswered for good.
            let (uid, pid) = (job.conn.peer.uid, job.conn.peer.pid);
            if self.panicked(uid, pid, || self.run(job)) {
                self.wake();
            }
        }
    }

    /// Answers the job's calls, one whole message after the other, and gives the connection
    /// back to the poller (or ends it).
    fn run(&self, job: Job) {
        let Job {
            mut conn,
            mut waited,
        } = job;
        let uid = conn.peer.uid;
        // The replies are written blocking, each bounded by the write timeout; the poller
        // reads without waiting.
        let answered = match conn.stream.set_nonblocking(false) {
            Ok(()) => self
                .answer(&mut conn, &mut waited)
                .filter(|_| conn.stream.set_nonblocking(true).is_ok()),
            Err(e) => {
                log!(LOG_ERR, "connection of pid {}: {e}", conn.peer.pid);
                None
            }
        };
        let back = match answered {
            Some(b) => b,
            None => {
                drop(conn);
                self.ended(uid);
                self.wake();
                return;
            }
        };
        let mut b = self.back.lock().unwrap_or_else(|e| e.into_inner());
        b.push(match back {
            Answered::Idle => Back::Idle(conn),
            Answered::Parked(call) => Back::Parked(conn, call),
        });
        drop(b);
        self.wake();
    }

    fn wake(&self) {
        let _ = (&self.wake).write(&[1]);
    }

    /// Serves a connection of user `uid`, process `pid`, through `serve`, and tells whether
    /// it panicked: a bug in one call ends that connection (it is logged and counted out),
    /// not the thread serving it.
    fn panicked(&self, uid: u32, pid: i32, serve: impl FnOnce()) -> bool {
        let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(serve));
        if served.is_err() {
            log!(
                LOG_ERR,
                "connection of pid {pid}: internal error; connection closed"
            );
            self.ended(uid);
        }
        served.is_err()
    }

    /// A connection ended: counted out, and the time noted for the idle exit.
    fn ended(&self, uid: u32) {
        self.state
            .last_activity_ms
            .store(self.start.elapsed().as_millis() as u64, Ordering::SeqCst);
        self.state.leave(uid);
    }

    /// Answers the waited call, then every whole message in the connection's buffer. None
    /// when the connection is to end.
    ///
    /// A worker (a connection of a user other than root) stops after the call under way
    /// once it has served the connection for the write timeout, and gives it back with its
    /// calls left, to be queued again behind the others: each reply is bounded by that
    /// timeout, but a client that sent thousands of calls at once and reads each reply just
    /// in time would otherwise hold the worker for all of them, and a few such connections
    /// every worker.
    fn answer(
        &self,
        conn: &mut Conn,
        waited: &mut Option<(protocol::Call, Turn)>,
    ) -> Option<Answered> {
        let service = &self.service;
        let cfg = &service.config;
        let peer = conn.peer.clone();
        let yield_at = (!peer.is_root()).then(|| Instant::now() + cfg.write_timeout);
        loop {
            let (call, turn) = match waited.take() {
                Some(w) => w,
                None => {
                    if yield_at.is_some_and(|t| Instant::now() >= t) {
                        break;
                    }
                    let Some(msg) = conn.take_message() else {
                        break;
                    };
                    conn.calls += 1;
                    if conn.calls > cfg.max_requests {
                        let r = Reply::error(
                            protocol::INTERNAL_ERROR,
                            params!("ErrorMsg" => format!("More than {} calls on one connection", cfg.max_requests)),
                        );
                        let _ = std::io::Write::write_all(&mut conn.stream, &r.encode());
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
                            conn.long = None;
                            refusal!(LOG_INFO, "pid {} sent a bad message: {bad}", peer.pid);
                            let r = Reply::invalid(bad.parameter(), bad.to_string());
                            if std::io::Write::write_all(&mut conn.stream, &r.encode()).is_err() {
                                return None;
                            }
                            continue;
                        }
                    };
                    if service.needs_turn(&call, &peer) {
                        match service.try_turn(&peer) {
                            Some(t) => (call, Turn::Held(t)),
                            None => {
                                conn.long = None;
                                return Some(Answered::Parked(call));
                            }
                        }
                    } else {
                        (call, Turn::Wait)
                    }
                }
            };
            let mut out = Timed {
                stream: &conn.stream,
                timeout: cfg.write_timeout,
            };
            let next = service.dispatch(&call, &peer, &mut out, turn);
            conn.long = None;
            // Answered (or failed to): the journal's events of what it wrote go now. Only
            // root writes; other users' calls run on the workers at nice 19, which would
            // send the events of root's writes late.
            if peer.is_root() {
                service.after_reply();
            }
            match next {
                Ok(Next::Continue) => {}
                Ok(Next::Quit(code)) => {
                    log!(LOG_NOTICE, "exiting on Quit({code})");
                    // Another thread may be sending the events of its writes, or about to
                    // (its caller answered): the exit would end it.
                    service.flush_events();
                    std::process::exit(code);
                }
                Err(e) => {
                    log!(LOG_DEBUG, "connection of pid {}: {e}", peer.pid);
                    return None;
                }
            }
        }
        if conn.buf.is_empty() {
            // An idle connection holds no buffer at all.
            conn.buf = Vec::new();
        }
        conn.since = Instant::now();
        Some(Answered::Idle)
    }
}

/// How a worker left a connection.
enum Answered {
    Idle,
    Parked(protocol::Call),
}

/// Serves until Quit, a fatal error of accept or of the poll, or the idle exit. Returns the
/// exit code.
pub fn serve(listener: UnixListener, cfg: Config, idle_exit: Option<Duration>) -> i32 {
    let database = cfg.database.clone();
    let workers = WORKERS + cfg.max_reads;
    let start = Instant::now();
    let setup = (|| -> io::Result<_> {
        let poll = sys::Poll::new()?;
        let (wake_rx, wake_tx) = UnixStream::pair()?;
        wake_rx.set_nonblocking(true)?;
        wake_tx.set_nonblocking(true)?;
        poll.add(wake_rx.as_raw_fd())?;
        Ok((poll, wake_rx, wake_tx))
    })();
    let (poll, wake_rx, wake_tx) = match setup {
        Ok(s) => s,
        Err(e) => {
            log!(LOG_ERR, "cannot set up the poll of the connections: {e}");
            return 1;
        }
    };
    let sh = Arc::new(Shared {
        service: Service::new(cfg),
        state: State::default(),
        start,
        queue: Mutex::new((VecDeque::new(), 0)),
        queued: Condvar::new(),
        workers,
        back: Mutex::new(Vec::new()),
        wake: wake_tx,
        accepting: AtomicUsize::new(1),
    });
    if let Some(idle) = idle_exit {
        let sh = Arc::clone(&sh);
        std::thread::Builder::new()
            .name("idle".into())
            .spawn(move || idle_watch(&sh.state, start, idle, &database))
            .expect("spawning the idle watcher");
    }
    {
        let sh = Arc::clone(&sh);
        std::thread::Builder::new()
            .name("poll".into())
            .spawn(move || {
                // The poller and the workers it starts yield the processors to root's
                // threads (logins, logouts) and the committer.
                sys::lower_priority();
                let code = poll_loop(&poll, wake_rx, &sh);
                std::process::exit(code);
            })
            .expect("spawning the poller");
    }
    accept_loop(&Arc::new(listener), &sh, false)
}

/// Accepts connections until a fatal error (its exit code): credentials, the connection
/// bounds; then a connection of root is served by the thread that accepted it, any other
/// is watched by the poller for its calls.
///
/// Several threads accept: one that takes a connection of root serves it to its end, as
/// root's thread, and makes sure another accepts meanwhile (starting one when none is
/// left); afterwards it accepts again, or ends when [`SPARE_ACCEPTORS`] already do. A login
/// then wakes one thread of the daemon, which reads the call, writes the row (see
/// `wtmpdb::session::group`) and answers, instead of handing the connection from thread to
/// thread. The main thread (`spare: false`) never ends here but on a fatal error.
fn accept_loop(listener: &Arc<UnixListener>, sh: &Arc<Shared>, spare: bool) -> i32 {
    let cfg = &sh.service.config;
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
        sh.state
            .last_activity_ms
            .store(sh.start.elapsed().as_millis() as u64, Ordering::SeqCst);
        if let Err(why) = sh.state.admit(&peer, cfg) {
            refusal!(
                LOG_WARNING,
                "refusing pid {} uid {}: {why}",
                peer.pid,
                peer.uid
            );
            refuse(stream, &why);
            continue;
        }
        let uid = peer.uid;
        let root = peer.is_root();
        // An accepted socket blocks (accept4 gives it none of the listener's flags): only
        // the poller's connections, other users', are made non-blocking.
        let ready = stream
            .set_write_timeout(Some(cfg.write_timeout))
            .and_then(|()| {
                if root {
                    Ok(())
                } else {
                    stream.set_nonblocking(true)
                }
            });
        if let Err(e) = ready {
            log!(LOG_ERR, "connection of pid {}: {e}", peer.pid);
            sh.ended(uid);
            continue;
        }
        let conn = Conn::new(stream, peer);
        if !root {
            sh.back
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Back::Idle(conn));
            sh.wake();
            continue;
        }
        if sh.accepting.fetch_sub(1, Ordering::SeqCst) == 1 {
            start_acceptor(listener, sh);
        }
        // A bug in one call ends that connection, not the thread that accepts (the main
        // thread among them, whose end would end the daemon).
        let pid = conn.peer.pid;
        sh.panicked(uid, pid, || sh.root(conn));
        if spare && sh.accepting.load(Ordering::SeqCst) >= SPARE_ACCEPTORS {
            return 0;
        }
        sh.accepting.fetch_add(1, Ordering::SeqCst);
    }
}

/// Threads kept accepting beside the main thread after they served a connection of root.
const SPARE_ACCEPTORS: usize = 4;

/// Starts one more thread accepting (counted as accepting from now on). When it cannot be
/// started, the connections wait in the listen queue until a thread is done with its own.
fn start_acceptor(listener: &Arc<UnixListener>, sh: &Arc<Shared>) {
    sh.accepting.fetch_add(1, Ordering::SeqCst);
    let (l, shared) = (Arc::clone(listener), Arc::clone(sh));
    let spawned = std::thread::Builder::new()
        .name("root".into())
        .stack_size(THREAD_STACK)
        .spawn(move || {
            // A spare returns 0 once it served a connection (no longer counted).
            let code = accept_loop(&l, &shared, true);
            if code != 0 {
                std::process::exit(code);
            }
        });
    if let Err(e) = spawned {
        sh.accepting.fetch_sub(1, Ordering::SeqCst);
        log!(LOG_ERR, "cannot start a thread to accept connections: {e}");
    }
}

/// The poller: watches the connections of users other than root that wait for a call,
/// reads them without waiting, and hands each whole message to the workers; keeps the reads
/// waiting for their turn, and the deadlines. Returns only on a fatal error.
fn poll_loop(poll: &sys::Poll, mut wake_rx: UnixStream, sh: &Arc<Shared>) -> i32 {
    let cfg = &sh.service.config;
    let wfd = wake_rx.as_raw_fd();
    // The connections waiting for a call (watched, or waiting for a long message's turn),
    // by descriptor; those with a call under way are a worker's.
    let mut conns: HashMap<RawFd, Conn> = HashMap::new();
    // Those waiting for a long message's turn, in the order they came.
    let mut long: VecDeque<RawFd> = VecDeque::new();
    let mut parked: VecDeque<Waiting> = VecDeque::new();
    let mut ready = Vec::new();
    let mut chunk = vec![0u8; READ_CHUNK];
    let mut last_tick = Instant::now();
    loop {
        if let Err(e) = poll.wait(&mut ready, TICK) {
            log!(LOG_ERR, "epoll_wait: {e}");
            return 1;
        }
        for &fd in &ready {
            if fd == wfd {
                let mut sink = [0u8; 256];
                while matches!(wake_rx.read(&mut sink), Ok(n) if n > 0) {}
                let back = std::mem::take(&mut *sh.back.lock().unwrap_or_else(|e| e.into_inner()));
                for b in back {
                    match b {
                        Back::Idle(mut c) => {
                            if c.complete() {
                                // Calls left when its worker let others go first: queued
                                // again, behind them.
                                sh.submit(Job {
                                    conn: c,
                                    waited: None,
                                });
                                continue;
                            }
                            if c.eof {
                                // Its end came with its last calls: nothing more will.
                                if let Fill::End(end) = c.fill(cfg, &mut chunk, false, false) {
                                    finish(c, end, sh);
                                    continue;
                                }
                            }
                            watch(c, poll, &mut conns, sh);
                        }
                        Back::Parked(conn, call) => parked.push_back(Waiting {
                            conn,
                            call,
                            until: Instant::now() + READ_QUEUE_WAIT,
                        }),
                    }
                }
            } else if let Some(c) = conns.get_mut(&fd) {
                match c.fill(cfg, &mut chunk, false, long.is_empty()) {
                    Fill::Pending => {}
                    Fill::Ready => {
                        let c = conns.remove(&fd).expect("the connection is there");
                        let _ = poll.remove(fd);
                        sh.submit(Job {
                            conn: c,
                            waited: None,
                        });
                    }
                    Fill::WaitLong => {
                        c.wants_long = true;
                        long.push_back(fd);
                        let _ = poll.remove(fd);
                    }
                    Fill::End(end) => {
                        let c = conns.remove(&fd).expect("the connection is there");
                        finish(c, end, sh);
                    }
                }
            }
        }
        // Long messages' turns given back go to the connections waiting, in order.
        while let Some(&fd) = long.front() {
            let Some(t) = LongTurn::try_take() else {
                break;
            };
            long.pop_front();
            if let Some(c) = conns.get_mut(&fd).filter(|c| c.wants_long) {
                c.long = Some(t);
                c.wants_long = false;
                if poll.add(fd).is_err() {
                    let c = conns.remove(&fd).expect("the connection is there");
                    let e = io::Error::other("cannot watch the connection");
                    finish(c, ReadEnd::Io(e), sh);
                }
            }
        }
        // Reads whose turn is free go to the workers, in the order they came (a user
        // refused once in a pass is not asked again in it: its waiting reads are many).
        let mut i = 0;
        let mut refused: Vec<u32> = Vec::new();
        while i < parked.len() && !sh.service.turns_full() {
            let peer = &parked[i].conn.peer;
            if refused.contains(&peer.uid) {
                i += 1;
                continue;
            }
            match sh.service.try_turn(peer) {
                Some(t) => {
                    let w = parked.remove(i).expect("in range");
                    sh.submit(Job {
                        conn: w.conn,
                        waited: Some((w.call, Turn::Held(t))),
                    });
                }
                None => {
                    refused.push(peer.uid);
                    i += 1;
                }
            }
        }
        if last_tick.elapsed() >= TICK {
            last_tick = Instant::now();
            tick(&mut conns, &mut long, &mut parked, poll, sh);
            sh.state.trim_when_quiet();
        }
    }
}

/// Watches a connection for its next call.
fn watch(c: Conn, poll: &sys::Poll, conns: &mut HashMap<RawFd, Conn>, sh: &Shared) {
    let fd = c.fd();
    if let Err(e) = poll.add(fd) {
        log!(LOG_ERR, "connection of pid {}: epoll_ctl: {e}", c.peer.pid);
        let uid = c.peer.uid;
        drop(c);
        sh.ended(uid);
        return;
    }
    conns.insert(fd, c);
}

/// The deadlines: a connection idle too long or a message too slow ends (one waiting for a
/// long message's turn too), a read that waited [`READ_QUEUE_WAIT`] for its turn is refused.
fn tick(
    conns: &mut HashMap<RawFd, Conn>,
    long: &mut VecDeque<RawFd>,
    parked: &mut VecDeque<Waiting>,
    poll: &sys::Poll,
    sh: &Arc<Shared>,
) {
    let cfg = &sh.service.config;
    let mut ended = Vec::new();
    for (&fd, c) in conns.iter_mut() {
        let over = if c.buf.is_empty() {
            (c.since.elapsed() >= cfg.idle_timeout).then_some(ReadEnd::Idle)
        } else {
            (c.since.elapsed() >= cfg.message_timeout).then_some(ReadEnd::Slow)
        };
        if let Some(end) = over {
            ended.push((fd, end));
        }
    }
    if !ended.is_empty() {
        long.retain(|fd| !ended.iter().any(|(e, _)| e == fd));
    }
    for (fd, end) in ended {
        let c = conns.remove(&fd).expect("the connection is there");
        if !c.wants_long {
            let _ = poll.remove(fd);
        }
        finish(c, end, sh);
    }
    let now = Instant::now();
    while parked.front().is_some_and(|w| w.until <= now) {
        let w = parked.pop_front().expect("there is one");
        sh.submit(Job {
            conn: w.conn,
            waited: Some((w.call, Turn::Expired)),
        });
    }
}

/// Ends a connection whose next message did not come, with a word to the client when it
/// sent something wrong.
fn finish(mut c: Conn, end: ReadEnd, sh: &Shared) {
    let cfg = &sh.service.config;
    let peer = &c.peer;
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
        // Without waiting (the poller waits for nobody): the socket's buffer takes it
        // unless the client left earlier replies unread.
        let r = Reply::invalid("", text);
        let _ = std::io::Write::write_all(&mut c.stream, &r.encode());
    }
    let uid = c.peer.uid;
    drop(c);
    sh.ended(uid);
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

/// A turn to receive and handle a long message; given back when dropped.
struct LongTurn;

impl LongTurn {
    /// A turn if one is free (else the poller stops reading the connection, and tries again
    /// at its next tick, within the message's deadline).
    fn try_take() -> Option<LongTurn> {
        let mut held = LONG.lock().unwrap_or_else(|e| e.into_inner());
        if *held >= LONG_MESSAGES {
            return None;
        }
        *held += 1;
        Some(LongTurn)
    }
}

impl Drop for LongTurn {
    fn drop(&mut self) {
        *LONG.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
    }
}

/// The connection's replies: each message must be taken whole within `timeout` of its
/// first byte, however slowly the client reads. The socket's own timeout (SO_SNDTIMEO)
/// cannot bound that: it bounds each wait for room inside a write(2), not the call, and a
/// client that takes a few kilobytes now and then keeps one write of a large reply going
/// for as long as it likes. So the writes never wait: what the buffer takes goes at once
/// (a reply that fits, nearly every one, in one send(2)), and the rest waits in poll(2)
/// for room, up to the deadline. A stream's next batch is read from the database only
/// once this one is sent, so a client that does not read holds one batch for at most this
/// long.
struct Timed<'a> {
    stream: &'a UnixStream,
    timeout: Duration,
}

impl Sink for Timed<'_> {
    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        let until = Instant::now() + self.timeout;
        let mut rest = bytes;
        while !rest.is_empty() {
            match sys::send_now(self.stream, rest) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    rest = &rest[n..];
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            let left = until
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    io::Error::new(io::ErrorKind::TimedOut, "the client did not take a reply")
                })?;
            sys::wait_writable(self.stream, left)?;
        }
        Ok(())
    }
}
