//! The methods: each call is checked (who may call it, its parameters), then answered from
//! the core library. Writes go through the core's one write path (`wtmpdb::writer::Writer`
//! into the daemon's file, behind the group commit of `group.rs`), whose reply comes only
//! after the row is committed and synced, or after the record is synced into the spool.

use std::collections::HashMap;
use std::io;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::Map;
use wtmpdb::interface::{entry_value, method as m, write_entry};
use wtmpdb::process::Process;
use wtmpdb::session::group::Committer;
use wtmpdb::session::{CloseTarget, Identity, RowClosed, SessionId, SessionItems};
use wtmpdb::storage::{
    Database, Entry, FailedFiles, FailureStore, Filter, Kind, NewEntry, NewFailure, Retention,
    failures_path,
};
use wtmpdb::target::Target;
use wtmpdb::writer::Writer;
use wtmpdb::{ops, time};

use crate::config::{Config, LOG_DEBUG, LOG_ERR, LOG_INFO, LOG_NOTICE, Readers};
use crate::interface::{SERVICE, SERVICE_DESCRIPTION, WTMPDB, WTMPDB_DESCRIPTION};
use crate::protocol::{
    Call, INTERFACE_NOT_FOUND, INTERNAL_ERROR, METHOD_NOT_FOUND, NO_ENTRY_FOUND, PERMISSION_DENIED,
    Params, Reply,
};
use crate::sys::Peer;
use crate::{log, params, refusal};

/// A method that panics, for the tests that show a bug in one call ends only its own
/// connection: answered so only by a debug build started with `WTMPDB_TEST_PANIC` set (any
/// other daemon does not know it).
pub const TEST_PANIC_METHOD: &str = "org.openSUSE.wtmpdb.TestPanic";

/// What the connection does after a call.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    Continue,
    /// Quit was called: exit with this code once the reply is sent.
    Quit(i32),
}

/// Where replies go: the connection, which bounds each write by its timeout.
pub trait Sink {
    fn send(&mut self, bytes: &[u8]) -> io::Result<()>;
}

impl<W: io::Write> Sink for W {
    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_all(bytes)?;
        self.flush()
    }
}

pub struct Service {
    pub config: Config,
    writer: Writer,
    reads: Arc<ReadGate>,
    /// The failures' file, kept open between calls (see [`Service::with_failures`]).
    failures: Arc<Mutex<Option<KeptFailures>>>,
}

/// The failures' store the daemon keeps open, and the file it opened (device and inode), to
/// notice a file replaced under its name.
struct KeptFailures {
    store: FailureStore,
    file: (u64, u64),
    /// The last write not yet checkpointed into the file (see [`failures_at_rest`]).
    unsettled: Option<Instant>,
}

/// How long after the last write to the failures' file the daemon copies its log into it.
const FAILURES_AT_REST_AFTER: Duration = Duration::from_millis(200);

/// Keeps the failures' file self-contained at rest, as the committer keeps the database:
/// once writes to it pause for [`FAILURES_AT_REST_AFTER`], its log is copied in and
/// truncated (tried again every quarter second while a reader is in the way), so that `cp`
/// of the file alone, a backup or the loss of its `-wal` loses no attempt.
fn failures_at_rest(kept: std::sync::Weak<Mutex<Option<KeptFailures>>>) {
    while let Some(kept) = kept.upgrade() {
        {
            let mut k = kept.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(k) = k.as_mut() {
                if k.unsettled
                    .is_some_and(|t| t.elapsed() >= FAILURES_AT_REST_AFTER)
                    && k.store.checkpoint_now()
                {
                    k.unsettled = None;
                }
            }
        }
        drop(kept);
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A call's turn to read, as the connection's worker brings it to [`Service::dispatch`].
pub enum Turn {
    /// Wait for one if the call needs one (root's reads, and every read of a caller that
    /// waits in its own thread).
    Wait,
    /// Taken already, while the call waited without a thread.
    Held(ReadTurn),
    /// None came within [`READ_QUEUE_WAIT`]: the call is refused as busy.
    Expired,
}

/// How long a read waits for its turn before it is refused as busy.
pub const READ_QUEUE_WAIT: Duration = Duration::from_secs(10);

/// Reads of root served at once besides everyone else's: an admin's `last` never waits
/// behind other users' reads.
const ROOT_READS: usize = 2;

/// A stream's reply is sent once it holds this many bytes (or `batch_rows` rows), so that
/// rows with long strings do not make a large batch.
const STREAM_BATCH_BYTES: usize = 64 * 1024;

/// The database reads served at once (each opens its own SQLite connection, with its page
/// cache, and may hold a reply of up to `max_reply` bytes): `max_reads` for all users other
/// than root, at most half of them (one at least) for one user, and [`ROOT_READS`] more for
/// root. A read past the bound waits its turn, at most [`READ_QUEUE_WAIT`]. Writes never
/// pass here: no read delays a login.
struct ReadGate {
    max: usize,
    per_user: usize,
    held: Mutex<Held>,
    freed: Condvar,
}

#[derive(Default)]
struct Held {
    others: usize,
    root: usize,
    by_uid: HashMap<u32, usize>,
}

/// A turn to read; given back when dropped.
pub struct ReadTurn {
    gate: Arc<ReadGate>,
    uid: u32,
}

impl ReadGate {
    fn new(max: usize) -> ReadGate {
        ReadGate {
            max,
            per_user: (max / 2).max(1),
            held: Mutex::new(Held::default()),
            freed: Condvar::new(),
        }
    }

    /// A turn for `peer`, or None after [`READ_QUEUE_WAIT`] without one.
    fn enter(self: &Arc<Self>, peer: &Peer) -> Option<ReadTurn> {
        self.enter_until(peer, Instant::now() + READ_QUEUE_WAIT)
    }

    /// A turn for `peer` if one is free now.
    fn try_enter(self: &Arc<Self>, peer: &Peer) -> Option<ReadTurn> {
        self.enter_until(peer, Instant::now())
    }

    fn enter_until(self: &Arc<Self>, peer: &Peer, until: Instant) -> Option<ReadTurn> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if peer.is_root() {
                if held.root < ROOT_READS {
                    held.root += 1;
                    break;
                }
            } else {
                let mine = held.by_uid.get(&peer.uid).copied().unwrap_or(0);
                if held.others < self.max && mine < self.per_user {
                    held.others += 1;
                    *held.by_uid.entry(peer.uid).or_insert(0) += 1;
                    break;
                }
            }
            let left = until
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero())?;
            held = self
                .freed
                .wait_timeout(held, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        Some(ReadTurn {
            gate: Arc::clone(self),
            uid: peer.uid,
        })
    }

    /// Whether every turn of the users other than root is taken.
    fn others_full(&self) -> bool {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).others >= self.max
    }
}

impl Drop for ReadTurn {
    fn drop(&mut self) {
        let mut held = self.gate.held.lock().unwrap_or_else(|e| e.into_inner());
        if self.uid == 0 {
            held.root -= 1;
        } else {
            held.others -= 1;
            if let Some(n) = held.by_uid.get_mut(&self.uid) {
                *n -= 1;
                if *n == 0 {
                    held.by_uid.remove(&self.uid);
                }
            }
        }
        drop(held);
        self.gate.freed.notify_all();
    }
}

/// One reply of rows (`{"parameters":{"Data":[ROWS]SUFFIX}}`), built in one buffer and
/// checked row by row: the row that would take the message (NUL included) past `max` bytes
/// ends it, before anything else is read. Rows are written as their values serialize
/// (keys in order), the bytes these replies always had.
struct OneReply {
    buf: Vec<u8>,
    row: Vec<u8>,
    suffix: &'static [u8],
    max: usize,
    rows: usize,
}

/// Why a reply of rows was not built.
struct TooBig;

impl OneReply {
    fn new(suffix: &'static [u8], max: usize) -> OneReply {
        let mut buf = Vec::with_capacity(64 * 1024);
        buf.extend_from_slice(b"{\"parameters\":{\"Data\":[");
        OneReply {
            buf,
            row: Vec::new(),
            suffix,
            max,
            rows: 0,
        }
    }

    fn push(&mut self, e: &Entry, p: Option<&Process>) -> Result<(), TooBig> {
        self.row.clear();
        serde_json::to_writer(&mut self.row, &entry_value(e, p))
            .expect("writing to a Vec cannot fail");
        let comma = usize::from(self.rows > 0);
        let needed = self.buf.len() + comma + self.row.len() + self.suffix.len();
        if needed > self.max {
            return Err(TooBig);
        }
        // Grown by doubling, never past the bound.
        if needed > self.buf.capacity() {
            let to = (self.buf.capacity() * 2).clamp(needed, self.max);
            self.buf.reserve_exact(to - self.buf.len());
        }
        if comma == 1 {
            self.buf.push(b',');
        }
        self.buf.extend_from_slice(&self.row);
        self.rows += 1;
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<u8>, TooBig> {
        if self.buf.len() + self.suffix.len() > self.max {
            return Err(TooBig);
        }
        self.buf.extend_from_slice(self.suffix);
        Ok(self.buf)
    }
}

/// The core's lines (the group committer's) in the daemon's log.
fn core_log(level: i32, msg: std::fmt::Arguments<'_>) {
    crate::config::log(level, msg);
}

/// Logs a record the spool took into a slot of its reserve (a full disk).
fn log_reserve(u: &wtmpdb::session::Unwritable) {
    if let Some(line) = u.reserve_line() {
        log!(crate::config::LOG_WARNING, "{line}");
    }
}

/// Logs what a merge of the spool did, when it did something.
fn log_merge(merged: &Result<wtmpdb::session::spool::Merged, wtmpdb::session::spool::MergeError>) {
    wtmpdb::session::group::log_merge(core_log, merged);
}

/// Upstream's product name and the version of the interface it implements.
const PRODUCT: &str = "wtmpdb (wtmpdbd)";
const VENDOR: &str = "wtmpdb in Rust";
const URL: &str = "https://github.com/thkukuk/wtmpdb";

impl Service {
    pub fn new(config: Config) -> Service {
        let committer = Committer::start(config.database.clone(), core_log, config.events.clone())
            .expect("spawning the committer");
        let writer = Writer::new(Target::File(config.database.clone()))
            .group(committer)
            .events(config.events.clone());
        let reads = Arc::new(ReadGate::new(config.max_reads));
        let failures = Arc::new(Mutex::new(None));
        let weak = Arc::downgrade(&failures);
        std::thread::Builder::new()
            .name("failures-at-rest".into())
            .stack_size(64 * 1024)
            .spawn(move || failures_at_rest(weak))
            .expect("spawning the failures' checkpointer");
        Service {
            config,
            writer,
            reads,
            failures,
        }
    }

    fn database(&self) -> &Path {
        &self.config.database
    }

    /// Whether `call` of `peer` reads the database with a turn of the users other than root
    /// (root's reads wait in root's own threads): such a call may wait for its turn without
    /// a thread, see [`Service::try_turn`].
    pub fn needs_turn(&self, call: &Call, peer: &Peer) -> bool {
        !peer.is_root()
            && !call.upgrade
            && !call.oneway
            && call.interface() == WTMPDB
            && matches!(
                call.name(),
                m::READ_ALL | m::READ_ENTRIES | m::GET_ID | m::GET_BOOT_TIME
            )
            && self.may_read(peer)
    }

    /// A turn to read for `peer` if one is free now.
    pub fn try_turn(&self, peer: &Peer) -> Option<ReadTurn> {
        self.reads.try_enter(peer)
    }

    /// Whether every turn of the users other than root is taken (then no waiting call of
    /// theirs can have one).
    pub fn turns_full(&self) -> bool {
        self.reads.others_full()
    }

    /// Work left for after a reply went out: the journal events of the rows written (see
    /// `Committer::after_reply`).
    pub fn after_reply(&self) {
        self.writer.after_reply();
    }

    /// Before the process exits: the journal events of the rows written, all sent (see
    /// `Committer::flush_events`).
    pub fn flush_events(&self) {
        self.writer.flush_events(std::time::Duration::from_secs(1));
    }

    /// Answers one call; an I/O error is the connection's (the client went away or stopped
    /// reading), and ends it. `turn` is the call's turn to read, if it waited for one
    /// already.
    pub fn dispatch(
        &self,
        call: &Call,
        peer: &Peer,
        out: &mut dyn Sink,
        mut turn: Turn,
    ) -> io::Result<Next> {
        let turn = &mut turn;
        log!(
            LOG_DEBUG,
            "{} from pid {} uid {}",
            call.method,
            peer.pid,
            peer.uid
        );
        #[cfg(debug_assertions)]
        if call.method == TEST_PANIC_METHOD && std::env::var_os("WTMPDB_TEST_PANIC").is_some() {
            panic!("test panic requested");
        }
        let mut next = Next::Continue;
        if call.upgrade {
            return self
                .answer(
                    call,
                    out,
                    Reply::invalid("upgrade", "This service does not upgrade connections"),
                )
                .map(|()| next);
        }
        // A oneway call gets no reply (the varlink spec forbids one, an error included), so a
        // oneway read has nothing to do: nothing is read, nothing is queued.
        if call.oneway && read_only(call) {
            return Ok(next);
        }
        let reply = match (call.interface(), call.name()) {
            (WTMPDB, m::READ_ENTRIES) => {
                return self.read_entries(call, peer, out, turn).map(|()| next);
            }
            (WTMPDB, m::READ_ALL) => return self.read_all(call, peer, out, turn).map(|()| next),
            (WTMPDB, m::QUIT) => match self.quit(call, peer) {
                Ok(code) => {
                    next = Next::Quit(code);
                    Reply::ok(params!("Success" => true))
                }
                Err(r) => r,
            },
            (WTMPDB, method) => self.wtmpdb(method, call, peer, turn),
            (SERVICE, method) => self.service(method, call),
            (iface, _) => Reply::error(INTERFACE_NOT_FOUND, params!("interface" => iface)),
        };
        self.answer(call, out, reply).map(|()| next)
    }

    fn answer(&self, call: &Call, out: &mut dyn Sink, reply: Reply) -> io::Result<()> {
        if call.oneway {
            return Ok(());
        }
        out.send(&reply.encode())
    }

    fn service(&self, method: &str, call: &Call) -> Reply {
        let p = Params::new(&call.parameters, self.config.max_string);
        match method {
            "GetInfo" => Reply::ok(params!(
                "vendor" => VENDOR,
                "product" => PRODUCT,
                "version" => env!("CARGO_PKG_VERSION"),
                "url" => URL,
                "interfaces" => vec![SERVICE, WTMPDB],
            )),
            "GetInterfaceDescription" => match p.str("interface") {
                Ok(WTMPDB) => Reply::ok(params!("description" => WTMPDB_DESCRIPTION)),
                Ok(SERVICE) => Reply::ok(params!("description" => SERVICE_DESCRIPTION)),
                Ok(other) => Reply::error(INTERFACE_NOT_FOUND, params!("interface" => other)),
                Err(r) => r,
            },
            _ => Reply::error(METHOD_NOT_FOUND, params!("method" => call.method.as_str())),
        }
    }

    fn may_read(&self, peer: &Peer) -> bool {
        match &self.config.readers {
            Readers::Everyone => true,
            Readers::RootOnly => peer.is_root(),
            Readers::Group { gid, .. } => peer.is_root() || peer.in_group(*gid),
        }
    }

    /// Who reads failed logins: root, and the `--readers` group when one is named (never
    /// everyone: a typed user name is often a password).
    fn may_read_failures(&self, peer: &Peer) -> bool {
        match &self.config.readers {
            Readers::Group { gid, .. } => peer.is_root() || peer.in_group(*gid),
            Readers::Everyone | Readers::RootOnly => peer.is_root(),
        }
    }

    /// Runs `f` on the failures' file (beside the database, created with the readers' group
    /// when one is named), kept open between calls: one connection, its WAL index valid, and
    /// the calls of all connections one after the other in this process instead of racing
    /// for the file's lock (a brute force's attempts then wait their turn here, not the
    /// lock's bound, and are not dropped). Reopened when the name leads to another file, and
    /// after any failure.
    fn with_failures<T>(
        &self,
        what: &str,
        f: impl FnOnce(&FailureStore) -> Result<T, wtmpdb::storage::FailedError>,
    ) -> Result<T, Reply> {
        use std::os::unix::fs::MetadataExt;
        let path = failures_path(self.database());
        let now = std::fs::metadata(&path).ok().map(|m| (m.dev(), m.ino()));
        let mut kept = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if kept.as_ref().is_none_or(|k| Some(k.file) != now) {
            *kept = None;
            let files = FailedFiles {
                group: match &self.config.readers {
                    Readers::Group { gid, .. } => Some(*gid),
                    _ => None,
                },
            };
            let store =
                FailureStore::open_write_within(&path, &files, wtmpdb::writer::FAILURE_WAIT)
                    .map_err(|e| internal("failures", e.to_string()))?;
            let file = std::fs::metadata(&path)
                .map(|m| (m.dev(), m.ino()))
                .map_err(|e| internal("failures", e.to_string()))?;
            *kept = Some(KeptFailures {
                store,
                file,
                unsettled: None,
            });
        }
        let k = kept.as_mut().expect("opened above");
        match f(&k.store) {
            Ok(v) => {
                k.unsettled = Some(Instant::now());
                Ok(v)
            }
            Err(e) => {
                *kept = None;
                Err(internal(what, e.to_string()))
            }
        }
    }

    fn record_failure(&self, p: &Params<'_>) -> Result<Reply, Reply> {
        p.only(&["User", "Time", "TTY", "RemoteHost", "Service", "PID"])?;
        let f = NewFailure {
            user: p.str("User")?,
            time: p.int("Time")?,
            tty: p.opt_str("TTY")?,
            host: p.opt_str("RemoteHost")?,
            service: p.opt_str("Service")?,
            pid: p.opt_int("PID")?,
        };
        let id = self.with_failures("RecordFailure", |s| s.record(&f))?;
        self.config
            .events
            .failure(id, &f, &failures_path(self.database()));
        Ok(Reply::ok(params!("ID" => id)))
    }

    fn read_failures(&self, p: &Params<'_>) -> Result<Reply, Reply> {
        p.only(&["Limit"])?;
        let limit = p.opt_int("Limit")?.map(|l| l.max(0) as u64);
        let path = failures_path(self.database());
        let store = match FailureStore::open_read(&path) {
            Ok(s) => s,
            Err(e) => return Err(internal("ReadFailures", e.to_string())),
        };
        let mut data = Vec::new();
        let mut size = 0;
        let mut too_big_at = None;
        if let Some(s) = store {
            s.each_between(i64::MIN, i64::MAX, |f| {
                if limit.is_some_and(|l| data.len() as u64 >= l) {
                    return ControlFlow::Break(());
                }
                let v = wtmpdb::interface::failure_value(&f);
                size += v.to_string().len() + 1;
                if size > self.config.max_reply {
                    too_big_at = Some(data.len());
                    return ControlFlow::Break(());
                }
                data.push(v);
                ControlFlow::Continue(())
            })
            .map_err(|e| internal("ReadFailures", e.to_string()))?;
        }
        if let Some(n) = too_big_at {
            return Err(internal(
                "ReadFailures",
                format!("more than {n} failures do not fit in one reply: give a Limit"),
            ));
        }
        Ok(Reply::ok(params!("Data" => data)))
    }

    fn failed_notice(&self, p: &Params<'_>) -> Result<Reply, Reply> {
        p.only(&["User", "Time"])?;
        let (user, at) = (p.str("User")?, p.int("Time")?);
        let n = self.with_failures("FailedNotice", |s| s.notice(user, at))?;
        let mut r = params!("Count" => n.count);
        if let Some(f) = &n.last {
            r.insert("Last".into(), wtmpdb::interface::failure_value(f));
        }
        Ok(Reply::ok(r))
    }

    fn wtmpdb(&self, method: &str, call: &Call, peer: &Peer, turn: &mut Turn) -> Reply {
        // Ours: failed logins, root's (and the readers' group's, to read) whatever the
        // database's readers.
        let failed = match method {
            m::RECORD_FAILURE | m::FAILED_NOTICE => Some(peer.is_root()),
            m::READ_FAILURES => Some(self.may_read_failures(peer)),
            _ => None,
        };
        if let Some(allowed) = failed {
            if !allowed {
                return denied(call, peer);
            }
            let p = Params::new(&call.parameters, self.config.max_string);
            let r = match method {
                m::RECORD_FAILURE => self.record_failure(&p),
                m::FAILED_NOTICE => self.failed_notice(&p),
                _ => self
                    .turn(call, peer, turn)
                    .and_then(|_turn| self.read_failures(&p)),
            };
            return r.unwrap_or_else(|e| e);
        }
        let write = matches!(
            method,
            m::LOGIN
                | m::LOGOUT
                | m::CLOSE_SESSION
                | m::ROTATE
                | m::SET_LOG_LEVEL
                | m::GET_ENVIRONMENT
        );
        let read = matches!(method, m::GET_ID | m::GET_BOOT_TIME);
        if (write && !peer.is_root()) || (read && !self.may_read(peer)) {
            return denied(call, peer);
        }
        let p = Params::new(&call.parameters, self.config.max_string);
        let r = match method {
            m::LOGIN => self.login(&p, peer),
            m::LOGOUT => self.logout(&p, peer),
            m::CLOSE_SESSION => self.close_session(&p, peer),
            m::GET_ID => self
                .turn(call, peer, turn)
                .and_then(|_turn| self.get_id(&p)),
            m::GET_BOOT_TIME => self
                .turn(call, peer, turn)
                .and_then(|_turn| self.get_boot_time(&p)),
            m::ROTATE => self.rotate(&p),
            m::PING => p.only(&[]).map(|()| Reply::ok(params!("Alive" => true))),
            m::SET_LOG_LEVEL => self.set_log_level(&p),
            m::GET_ENVIRONMENT => p.only(&[]).map(|()| {
                let env: Vec<String> = std::env::vars_os()
                    .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
                    .collect();
                Reply::ok(params!("Environment" => env))
            }),
            _ => Ok(Reply::error(
                METHOD_NOT_FOUND,
                params!("method" => call.method.as_str()),
            )),
        };
        r.unwrap_or_else(|e| e)
    }

    fn login(&self, p: &Params<'_>, peer: &Peer) -> Result<Reply, Reply> {
        p.only(&["Type", "User", "LoginTime", "TTY", "RemoteHost", "Service"])?;
        let kind = p.int("Type")?;
        let user = p.str("User")?;
        let at = p.int("LoginTime")?;
        let (tty, host, service) = (
            p.opt_str("TTY")?,
            p.opt_str("RemoteHost")?,
            p.opt_str("Service")?,
        );
        let internal = |msg: String| {
            log!(LOG_ERR, "Login of {user:?}: {msg}");
            Reply::error(INTERNAL_ERROR, params!("ErrorMsg" => msg))
        };
        if kind == Kind::UserProcess.as_i64() {
            let items = SessionItems::from_bytes(
                user.as_bytes(),
                tty.map(str::as_bytes),
                host.map(str::as_bytes),
                service.map(str::as_bytes),
            );
            // The session's process is the caller (its pid at connect time).
            let logged = self
                .writer
                .open(&items, peer.pid, at)
                .map_err(|e| internal(e.to_string()))?;
            if let Some(path) = &logged.spooled {
                log!(
                    LOG_INFO,
                    "database busy: login of {user:?} spooled to {}",
                    path.display()
                );
            }
            log_reserve(&logged.unwritable);
            if let Some(m) = &logged.merged {
                log_merge(m);
            }
            let id = logged.session.id.to_int();
            log!(LOG_DEBUG, "Login {user:?} id {id}");
            return Ok(Reply::ok(params!("ID" => id)));
        }
        // Other types (boots, run levels) are rows of their own, without a session.
        if !(0..=i64::from(i32::MAX)).contains(&kind) {
            return Err(Reply::invalid(
                "Type",
                format!("'Type' {kind} is not a row type"),
            ));
        }
        // With the bound and the spool of a session write (not a plain open: no index build
        // on a large upstream file, no 5 s busy wait); a spooled row's ID is its token.
        let id = self
            .writer
            .write_row(&NewEntry {
                kind: Kind::from_i64(kind),
                user,
                login: at,
                logout: None,
                tty,
                host,
                service,
            })
            .map_err(|e| internal(e.to_string()))?
            .to_int();
        Ok(Reply::ok(params!("ID" => id)))
    }

    fn logout(&self, p: &Params<'_>, peer: &Peer) -> Result<Reply, Reply> {
        p.only(&["ID", "LogoutTime"])?;
        let id = p.int("ID")?;
        let at = p.int("LogoutTime")?;
        // By ID alone, as upstream's interface has it: joins a group commit.
        let items = SessionItems::from_bytes(b"", None, None, None);
        let target = CloseTarget::Id(SessionId::from_int(id), None);
        let closed = self.writer.close(target, None, &items, peer.pid, at);
        if let Some(m) = &closed.merged {
            log_merge(m);
        }
        log_reserve(&closed.unwritable);
        match closed.row {
            Ok(RowClosed::Spooled(path)) => {
                log!(
                    LOG_INFO,
                    "database busy: logout of {id} spooled to {}",
                    path.display()
                );
                Ok(Reply::ok(params!("Success" => true)))
            }
            Ok(_) => Ok(Reply::ok(params!("Success" => true))),
            Err(e) => {
                let msg = e.to_string();
                log!(LOG_ERR, "Logout: {msg}");
                Err(Reply::error(
                    INTERNAL_ERROR,
                    params!("Success" => false, "ErrorMsg" => msg),
                ))
            }
        }
    }

    /// Ours: the end of a session, by ID with the session's identity (closed only if the row
    /// is still that session), or by lookup of its user, tty and service (a close whose
    /// login's ID was lost): the session writer's rule, as for a file.
    fn close_session(&self, p: &Params<'_>, peer: &Peer) -> Result<Reply, Reply> {
        p.only(&["ID", "LoginTime", "User", "TTY", "Service", "LogoutTime"])?;
        let (id, login) = (p.opt_int("ID")?, p.opt_int("LoginTime")?);
        let (user, tty) = (p.str("User")?, p.str("TTY")?);
        let service = p.opt_str("Service")?;
        let at = p.int("LogoutTime")?;
        let items = SessionItems::from_bytes(
            user.as_bytes(),
            Some(tty.as_bytes()),
            None,
            service.map(str::as_bytes),
        );
        let target = match id {
            Some(id) => CloseTarget::Id(
                SessionId::from_int(id),
                login.map(|login| Identity {
                    user: items.user.clone(),
                    tty: items.tty.clone(),
                    login,
                }),
            ),
            None => CloseTarget::Lookup,
        };
        let closed = self.writer.close(target, None, &items, peer.pid, at);
        if let Some(m) = &closed.merged {
            log_merge(m);
        }
        log_reserve(&closed.unwritable);
        let mut reply = match closed.row {
            Ok(RowClosed::ById(id)) => params!("Closed" => "ById", "ID" => id),
            Ok(RowClosed::ByLookup(id)) => params!("Closed" => "ByLookup", "ID" => id),
            Ok(RowClosed::NoUser) => params!("Closed" => "NoUser"),
            Ok(RowClosed::NotFound) => params!("Closed" => "NotFound"),
            Ok(RowClosed::Ambiguous) => params!("Closed" => "Ambiguous"),
            Ok(RowClosed::Spooled(path)) => {
                log!(
                    LOG_INFO,
                    "database busy: logout of {user:?} spooled to {}",
                    path.display()
                );
                params!("Closed" => "Spooled", "Spool" => path.display().to_string())
            }
            Err(e) => {
                let msg = e.to_string();
                log!(LOG_ERR, "CloseSession: {msg}");
                return Err(Reply::error(
                    INTERNAL_ERROR,
                    params!("Success" => false, "ErrorMsg" => msg),
                ));
            }
        };
        if let Some(m) = closed.mismatch {
            log!(LOG_NOTICE, "CloseSession of {user:?}: {m}");
            reply.insert(
                "Mismatch".into(),
                serde_json::json!({"ID": m.id, "User": m.user, "TTY": m.tty, "Login": m.login}),
            );
        }
        Ok(Reply::ok(reply))
    }

    fn open_reader(&self) -> Result<Database, String> {
        Database::open_read_only(self.database()).map_err(|e| e.to_string())
    }

    fn get_id(&self, p: &Params<'_>) -> Result<Reply, Reply> {
        p.only(&["TTY"])?;
        let tty = p.str("TTY")?;
        let not_found = |msg: String| Reply::error(NO_ENTRY_FOUND, params!("ErrorMsg" => msg));
        let db = self.open_reader().map_err(not_found)?;
        // Also a login still in the spool (the database was locked): its token, which
        // Logout and CloseSession take, as the file writer's lookup sees it.
        match wtmpdb::session::newest_open_on_tty(&db, tty) {
            Ok(Some(id)) => Ok(Reply::ok(params!("ID" => id.to_int()))),
            Ok(None) => Err(not_found(format!(
                "Open entry for tty '{tty}' not found (search_id)"
            ))),
            Err(e) => Err(not_found(e.to_string())),
        }
    }

    fn get_boot_time(&self, p: &Params<'_>) -> Result<Reply, Reply> {
        p.only(&[])?;
        let not_found = |msg: String| {
            Reply::error(
                NO_ENTRY_FOUND,
                params!("Success" => false, "ErrorMsg" => msg),
            )
        };
        let db = self.open_reader().map_err(not_found)?;
        match ops::boot_time(&db) {
            Ok(t) => Ok(Reply::ok(params!("Success" => true, "BootTime" => t))),
            Err(e) => Err(not_found(e.to_string())),
        }
    }

    /// A turn to read the database (the one the call brought, or one waited for here), or
    /// the reply that says it is busy.
    fn turn(&self, call: &Call, peer: &Peer, turn: &mut Turn) -> Result<ReadTurn, Reply> {
        let got = match std::mem::replace(turn, Turn::Wait) {
            Turn::Held(t) => Some(t),
            Turn::Wait => self.reads.enter(peer),
            Turn::Expired => None,
        };
        got.ok_or_else(|| {
            refusal!(
                LOG_INFO,
                "{} of pid {} uid {} refused: too many reads at once",
                call.method,
                peer.pid,
                peer.uid
            );
            Reply::error(
                INTERNAL_ERROR,
                params!(
                    "Success" => false,
                    "ErrorMsg" => format!(
                        "Too many reads at once: none was free within {} s; try again",
                        READ_QUEUE_WAIT.as_secs()
                    ),
                ),
            )
        })
    }

    /// The whole table in one reply, as upstream's ReadAll, encoded row by row into one
    /// buffer and refused as soon as it would pass the reply bound (a message the client
    /// could not take), without reading on.
    fn read_all(
        &self,
        call: &Call,
        peer: &Peer,
        out: &mut dyn Sink,
        turn: &mut Turn,
    ) -> io::Result<()> {
        let reply = (|| -> Result<Vec<u8>, Reply> {
            if !self.may_read(peer) {
                return Err(denied(call, peer));
            }
            let p = Params::new(&call.parameters, self.config.max_string);
            p.only(&[])?;
            let internal = |msg: String| {
                Reply::error(
                    INTERNAL_ERROR,
                    params!("Success" => false, "ErrorMsg" => msg),
                )
            };
            let _turn = self.turn(call, peer, turn)?;
            let db = self.open_reader().map_err(internal)?;
            let max = self.config.max_reply;
            let too_big = |TooBig| self.too_big(call, peer);
            let mut reply = OneReply::new(b"],\"Success\":true}}\0", max);
            let mut rows = db.entries(&Filter::default());
            while let Some(batch) = rows.next_batch() {
                let batch = batch.map_err(|e| internal(e.to_string()))?;
                for e in &batch {
                    reply.push(e, None).map_err(too_big)?;
                }
                rows.recycle(batch);
            }
            reply.finish().map_err(too_big)
        })();
        match reply {
            Ok(bytes) => out.send(&bytes),
            Err(r) => self.answer(call, out, r),
        }
    }

    /// The refusal of a result too big for one reply, logged as one.
    fn too_big(&self, call: &Call, peer: &Peer) -> Reply {
        refusal!(
            LOG_INFO,
            "{} of pid {} uid {} refused: more than {} bytes",
            call.method,
            peer.pid,
            peer.uid,
            self.config.max_reply
        );
        too_big(self.config.max_reply)
    }

    /// Our streaming read: with `more`, one reply per batch of rows; without it, one reply
    /// bounded as ReadAll's.
    fn read_entries(
        &self,
        call: &Call,
        peer: &Peer,
        out: &mut dyn Sink,
        turn: &mut Turn,
    ) -> io::Result<()> {
        let p = Params::new(&call.parameters, self.config.max_string);
        let query = (|| -> Result<_, Reply> {
            if !self.may_read(peer) {
                return Err(denied(call, peer));
            }
            p.only(&["Since", "Until", "User", "TTY", "Limit"])?;
            let limit = match p.opt_int("Limit")? {
                Some(n) if n < 0 => return Err(Reply::invalid("Limit", "'Limit' is negative")),
                Some(n) => Some(n as u64),
                None => None,
            };
            Ok(Query {
                since: p.opt_int("Since")?,
                until: p.opt_int("Until")?,
                user: p.opt_str("User")?.map(str::to_owned),
                tty: p.opt_str("TTY")?.map(str::to_owned),
                limit,
            })
        })();
        let q = match query {
            Ok(q) => q,
            Err(reply) => return self.answer(call, out, reply),
        };
        let internal = |msg: String| Reply::error(INTERNAL_ERROR, params!("ErrorMsg" => msg));
        let _turn = match self.turn(call, peer, turn) {
            Ok(t) => t,
            Err(reply) => return self.answer(call, out, reply),
        };
        let db = match self.open_reader() {
            Ok(db) => db,
            Err(msg) => return self.answer(call, out, internal(msg)),
        };
        let filter = Filter {
            users_or_ttys: q.user.iter().chain(q.tty.iter()).take(1).cloned().collect(),
            login_at_most: q.until,
            ..Filter::default()
        };
        let mut rows = db.entries(&filter);
        let mut sent = 0u64;
        let mut pending: Vec<u8> = Vec::with_capacity(64 * 1024);
        let mut count = 0usize;
        let mut single = OneReply::new(b"]}}\0", self.config.max_reply);
        let flush = |pending: &mut Vec<u8>, count: &mut usize, last: bool, out: &mut dyn Sink| {
            // {"parameters":{"Data":[...]},"continues":true}
            let mut msg = Vec::with_capacity(pending.len() + 48);
            msg.extend_from_slice(b"{\"parameters\":{\"Data\":[");
            msg.extend_from_slice(pending);
            msg.extend_from_slice(b"]}");
            if !last {
                msg.extend_from_slice(b",\"continues\":true");
            }
            msg.extend_from_slice(b"}\0");
            pending.clear();
            *count = 0;
            out.send(&msg)
        };
        'rows: while let Some(batch) = rows.next_batch() {
            let batch = match batch {
                Ok(b) => b,
                Err(e) => return self.answer(call, out, internal(e.to_string())),
            };
            // The processes of the open sessions (what `wtmpdb who` checks), a lookup each.
            let open = batch
                .iter()
                .filter(|e| e.logout.is_none() && e.kind == Kind::UserProcess)
                .map(|e| e.id);
            let processes = match db.processes(open) {
                Ok(p) => p,
                Err(e) => return self.answer(call, out, internal(e.to_string())),
            };
            for e in &batch {
                if q.limit.is_some_and(|l| sent >= l) {
                    break 'rows;
                }
                if q.since.is_some_and(|s| e.login < s) {
                    break 'rows;
                }
                if q.user.as_ref().is_some_and(|u| *u != e.user)
                    || q.tty.as_ref().is_some_and(|t| Some(t) != e.tty.as_ref())
                {
                    continue;
                }
                sent += 1;
                if call.more {
                    if count > 0 {
                        pending.push(b',');
                    }
                    write_entry(&mut pending, e, processes.get(&e.id));
                    count += 1;
                    // Sent before the next row is read: a client that does not read stops
                    // the stream here, for at most the write timeout.
                    if count >= self.config.batch_rows || pending.len() >= STREAM_BATCH_BYTES {
                        flush(&mut pending, &mut count, false, out)?;
                    }
                } else if single.push(e, processes.get(&e.id)).is_err() {
                    let reply = self.too_big(call, peer);
                    return self.answer(call, out, reply);
                }
            }
            rows.recycle(batch);
        }
        if call.more {
            return flush(&mut pending, &mut count, true, out);
        }
        match single.finish() {
            Ok(bytes) => out.send(&bytes),
            Err(TooBig) => {
                let reply = self.too_big(call, peer);
                self.answer(call, out, reply)
            }
        }
    }

    fn rotate(&self, p: &Params<'_>) -> Result<Reply, Reply> {
        p.only(&["Days"])?;
        let days = p.int("Days")?;
        let days = u32::try_from(days).map_err(|_| {
            Reply::invalid("Days", format!("'Days' {days} is not a number of days"))
        })?;
        let internal = |msg: String| {
            log!(LOG_ERR, "Rotate: {msg}");
            Reply::error(
                INTERNAL_ERROR,
                params!("Success" => false, "ErrorMsg" => msg),
            )
        };
        let mut db =
            Database::open_read_write(self.database()).map_err(|e| internal(e.to_string()))?;
        let done = ops::rotate(&mut db, self.database(), days, time::now(), None)
            .map_err(|e| internal(e.to_string()))?;
        // The failed logins' retention, its defaults (`wtmpdb rotate` names others).
        match ops::prune_failures(self.database(), Retention::default(), time::now()) {
            Ok(0) => {}
            Ok(n) => log!(LOG_INFO, "Rotate: {n} failed login attempts forgotten"),
            Err(e) => log!(LOG_ERR, "Rotate: failed logins: {e}"),
        }
        let mut r = params!("Success" => true, "Entries" => done.moved);
        if let Some(a) = done.archive {
            r.insert("BackupName".into(), a.to_string_lossy().into_owned().into());
        }
        Ok(Reply::ok(r))
    }

    fn quit(&self, call: &Call, peer: &Peer) -> Result<i32, Reply> {
        if !peer.is_root() {
            return Err(denied(call, peer));
        }
        let p = Params::new(&call.parameters, self.config.max_string);
        p.only(&["ExitCode"])?;
        let code = p.opt_int("ExitCode")?.unwrap_or(0);
        let code = i32::try_from(code)
            .ok()
            .filter(|c| (0..=255).contains(c))
            .ok_or_else(|| {
                Reply::invalid("ExitCode", format!("'ExitCode' {code} is not 0 to 255"))
            })?;
        log!(LOG_INFO, "Quit({code}) from pid {}", peer.pid);
        Ok(code)
    }

    fn set_log_level(&self, p: &Params<'_>) -> Result<Reply, Reply> {
        p.only(&["Level"])?;
        let level = p.int("Level")?;
        if !(0..=7).contains(&level) {
            return Err(Reply::invalid(
                "Level",
                format!("'Level' {level} is not 0 to 7"),
            ));
        }
        crate::config::set_log_level(level as i32);
        Ok(Reply::ok(Map::new()))
    }
}

struct Query {
    since: Option<i64>,
    until: Option<i64>,
    user: Option<String>,
    tty: Option<String>,
    limit: Option<u64>,
}

/// The methods that change nothing: a oneway call of one has nothing to do.
fn read_only(call: &Call) -> bool {
    match call.interface() {
        WTMPDB => matches!(
            call.name(),
            m::GET_ID
                | m::GET_BOOT_TIME
                | m::READ_ALL
                | m::READ_ENTRIES
                | m::READ_FAILURES
                | m::PING
        ),
        SERVICE => true,
        _ => false,
    }
}

/// InternalError with `msg`, logged.
fn internal(what: &str, msg: String) -> Reply {
    log!(LOG_ERR, "{what}: {msg}");
    Reply::error(
        INTERNAL_ERROR,
        params!("Success" => false, "ErrorMsg" => msg),
    )
}

/// PermissionDenied, logged as a refusal.
fn denied(call: &Call, peer: &Peer) -> Reply {
    refusal!(
        LOG_INFO,
        "{} refused to pid {} uid {}",
        call.method,
        peer.pid,
        peer.uid
    );
    Reply::error(PERMISSION_DENIED, Map::new())
}

fn too_big(max: usize) -> Reply {
    Reply::error(
        INTERNAL_ERROR,
        params!(
            "Success" => false,
            "ErrorMsg" => format!(
                "The entries do not fit in one reply of at most {max} bytes: \
                 read them with {WTMPDB}.{} and \"more\"",
                m::READ_ENTRIES
            ),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<(Entry, Option<Process>)> {
        let e = |id, user: &str, tty: Option<&str>| Entry {
            id,
            kind: Kind::UserProcess,
            user: user.into(),
            login: 4_354_819_200_000_000 + id,
            logout: (id % 2 == 0).then_some(id),
            tty: tty.map(str::to_owned),
            host: Some("192.0.2.1".into()),
            service: None,
        };
        let p = Some(Process {
            pid: 42,
            start_time: None,
        });
        vec![
            (e(5_000_000_000, "a\"\u{202e}\0", Some("pts/1")), p),
            (e(2, "b", None), None),
        ]
    }

    /// The replies built row by row are the bytes the whole reply always encoded to; the
    /// bound counts every byte, the NUL included.
    #[test]
    fn a_reply_built_row_by_row_has_the_bytes_of_the_whole_reply() {
        let rows = rows();
        let data = |process: bool| -> Vec<serde_json::Value> {
            rows.iter()
                .map(|(e, p)| entry_value(e, if process { p.as_ref() } else { None }))
                .collect()
        };
        let all = Reply::ok(params!("Success" => true, "Data" => data(false))).encode();
        let entries = Reply::ok(params!("Data" => data(true))).encode();
        let build = |suffix: &'static [u8], process: bool, max: usize| {
            let mut r = OneReply::new(suffix, max);
            for (e, p) in &rows {
                r.push(e, if process { p.as_ref() } else { None })?;
            }
            r.finish()
        };
        let all_suffix: &[u8] = b"],\"Success\":true}}\0";
        let built = build(all_suffix, false, all.len()).ok().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&built),
            String::from_utf8_lossy(&all)
        );
        assert!(build(all_suffix, false, all.len() - 1).is_err());
        let built = build(b"]}}\0", true, entries.len()).ok().unwrap();
        assert_eq!(built, entries);
        assert!(build(b"]}}\0", true, entries.len() - 1).is_err());
        // No rows at all.
        let empty = Reply::ok(params!("Success" => true, "Data" => Vec::<u8>::new())).encode();
        assert_eq!(
            OneReply::new(all_suffix, 1000).finish().ok().unwrap(),
            empty
        );
    }

    /// Turns: one user holds at most half, root has its own, a turn given back is free again.
    #[test]
    fn reads_take_turns_and_root_has_its_own() {
        let peer = |uid| Peer {
            pid: 1,
            uid,
            gid: uid,
            groups: Vec::new(),
        };
        let gate = Arc::new(ReadGate::new(4));
        let a: Vec<_> = (0..2).map(|_| gate.enter(&peer(1000)).unwrap()).collect();
        let b: Vec<_> = (0..2).map(|_| gate.enter(&peer(1001)).unwrap()).collect();
        let roots: Vec<_> = (0..ROOT_READS)
            .map(|_| gate.enter(&peer(0)).unwrap())
            .collect();
        assert_eq!(gate.held.lock().unwrap().others, 4);
        assert!(gate.others_full());
        // Without waiting: none is free for another user, root has its own.
        assert!(gate.try_enter(&peer(1002)).is_none());
        drop(a);
        assert!(!gate.others_full());
        let c = gate.enter(&peer(1002)).unwrap();
        drop((b, c, roots));
        let held = gate.held.lock().unwrap();
        assert_eq!((held.others, held.root, held.by_uid.len()), (0, 0, 0));
    }
}
