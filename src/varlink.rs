//! A varlink client of `wtmpdbd` (interface `org.openSUSE.wtmpdb`). When a caller uses the
//! daemon is [`crate::target`]'s rule, not this module's.
//!
//! One connection per [`Client`]; every exchange is bounded by the client's timeout, so a
//! daemon that hangs costs a caller at most that long, and is reported as
//! [`Error::Timeout`] (-ETIMEDOUT), never as the EAGAIN the socket's timeout gives.
//!
//! ```no_run
//! use wtmpdb::varlink::{Client, SOCKET};
//! let mut c = Client::connect(SOCKET.as_ref(), std::time::Duration::from_secs(2))?;
//! let id = c.login(3, "alice", wtmpdb::time::now(), Some("pts/1"), None, Some("sshd"))?;
//! c.logout(id, wtmpdb::time::now())?;
//! # Ok::<(), wtmpdb::varlink::Error>(())
//! ```

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::interface::{self, RowsReply, WtmpdbEntry, method};
use crate::process::Process;
use crate::session::{CloseTarget, Mismatch, RowClosed, SessionItems};
use crate::storage::Entry;

/// Upstream's socket.
pub const SOCKET: &str = "/run/wtmpdb/socket";

/// The largest reply accepted (upstream's client library takes 16 MiB).
pub const MAX_REPLY: usize = 16 * 1024 * 1024;

/// The daemon's error for "no such row" (GetID, GetBootTime).
pub use crate::interface::NO_ENTRY_FOUND;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The connect failed: see [`Error::no_daemon`].
    #[error("Cannot connect to wtmpdbd at {path}: {source}")]
    Connect { path: String, source: io::Error },
    /// The exchange failed after the connect (the daemon went away).
    #[error("wtmpdbd: {0}")]
    Io(#[from] io::Error),
    /// The daemon did not take the call or did not answer within the client's timeout:
    /// nothing is known to be recorded.
    #[error("wtmpdbd did not answer within {:.1} s", .waited.as_secs_f64())]
    Timeout { waited: Duration },
    /// The daemon's reply is not what the interface says.
    #[error("wtmpdbd sent a reply that is not valid: {0}")]
    Protocol(String),
    /// The daemon answered with a varlink error.
    #[error("{}", match message {
        Some(m) => m.clone(),
        None if error == interface::service::PERMISSION_DENIED => format!("wtmpdbd refused the call ({error})"),
        None => format!("wtmpdbd answered {error}"),
    })]
    Remote {
        error: String,
        message: Option<String>,
    },
}

impl Error {
    /// True when the connect failed because no daemon is there: the caller then uses the
    /// file (ECONNREFUSED, ENOENT, ECONNRESET, EACCES, as upstream).
    pub fn no_daemon(&self) -> bool {
        match self {
            Error::Connect { source, .. } => matches!(
                source.raw_os_error(),
                Some(libc::ECONNREFUSED | libc::ENOENT | libc::ECONNRESET | libc::EACCES)
            ),
            _ => false,
        }
    }

    /// The varlink error name, for a [`Error::Remote`].
    pub fn remote(&self) -> Option<&str> {
        match self {
            Error::Remote { error, .. } => Some(error),
            _ => None,
        }
    }

    /// Upstream's negative errno for this failure, for the C library: a refused connect or
    /// a failed exchange its errno (the daemon closing the connection is -ECONNRESET), the
    /// daemon's `NoEntryFound` -ENOENT and any other varlink error -EIO (as upstream's
    /// client maps them), a reply that is not valid -EPROTO.
    pub fn errno(&self) -> i32 {
        match self {
            Error::Connect { source, .. } => -source.raw_os_error().unwrap_or(libc::EIO),
            Error::Timeout { .. } => -libc::ETIMEDOUT,
            Error::Io(e) => match (e.raw_os_error(), e.kind()) {
                (Some(n), _) => -n,
                (None, io::ErrorKind::UnexpectedEof) => -libc::ECONNRESET,
                (None, io::ErrorKind::TimedOut) => -libc::ETIMEDOUT,
                _ => -libc::EIO,
            },
            Error::Protocol(_) => -libc::EPROTO,
            Error::Remote { error, .. } if error == NO_ENTRY_FOUND => -libc::ENOENT,
            Error::Remote { .. } => -libc::EIO,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// A connection to the daemon.
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
    buf: Vec<u8>,
    timeout: Duration,
}

/// What [`Client::read_entries`] asks for (all optional).
#[derive(Clone, Debug, Default)]
pub struct Query<'a> {
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub user: Option<&'a str>,
    pub tty: Option<&'a str>,
    pub limit: Option<u64>,
}

impl Client {
    /// Connects; each later reply must come within `timeout`.
    pub fn connect(socket: &Path, timeout: Duration) -> Result<Client> {
        // Bounded: a full listen queue is EAGAIN at the deadline (see the function).
        let stream = crate::sys::connect_unix_within(socket, timeout).map_err(|source| {
            if source.raw_os_error() == Some(libc::EAGAIN) {
                // The listen queue stayed full: the daemon does not accept.
                Error::Timeout { waited: timeout }
            } else {
                Error::Connect {
                    path: socket.display().to_string(),
                    source,
                }
            }
        })?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Client {
            stream,
            buf: Vec::new(),
            timeout,
        })
    }

    fn send(&mut self, method: &str, params: Value, more: bool) -> Result<()> {
        let mut call =
            json!({"method": format!("{}.{method}", interface::INTERFACE), "parameters": params});
        if more {
            call["more"] = Value::Bool(true);
        }
        let mut bytes = serde_json::to_vec(&call).map_err(|e| Error::Protocol(e.to_string()))?;
        bytes.push(0);
        self.stream
            .write_all(&bytes)
            .map_err(|e| self.timed_out(e))?;
        Ok(())
    }

    /// A socket error as this client reports it: the socket's timeouts end a read or write
    /// with EAGAIN, which is a [`Error::Timeout`] here.
    fn timed_out(&self, e: io::Error) -> Error {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::Timeout {
                waited: self.timeout,
            },
            _ => Error::Io(e),
        }
    }

    /// The next message, without its NUL (bounded by the client's timeout and
    /// [`MAX_REPLY`]).
    fn message(&mut self) -> Result<Vec<u8>> {
        let deadline = Instant::now() + self.timeout;
        let mut scanned = 0;
        loop {
            if let Some(i) = find_nul(&self.buf[scanned..]) {
                let end = scanned + i;
                let rest = self.buf.split_off(end + 1);
                let mut msg = std::mem::replace(&mut self.buf, rest);
                msg.truncate(end);
                return Ok(msg);
            }
            scanned = self.buf.len();
            if self.buf.len() > MAX_REPLY {
                return Err(Error::Protocol(format!("a reply over {MAX_REPLY} bytes")));
            }
            let left = deadline
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero())
                .ok_or(Error::Timeout {
                    waited: self.timeout,
                })?;
            self.stream.set_read_timeout(Some(left))?;
            let mut chunk = [0u8; 64 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(Error::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the daemon closed the connection",
                    )));
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.timed_out(e)),
            }
        }
    }

    /// The next reply's parameters and its `continues`; a varlink error is an Err.
    fn reply(&mut self) -> Result<(Map<String, Value>, bool)> {
        let msg = self.message()?;
        let v: Value = serde_json::from_slice(&msg).map_err(|e| Error::Protocol(e.to_string()))?;
        let Value::Object(mut obj) = v else {
            return Err(Error::Protocol("not an object".into()));
        };
        let params = match obj.remove("parameters") {
            Some(Value::Object(p)) => p,
            None | Some(Value::Null) => Map::new(),
            Some(_) => return Err(Error::Protocol("parameters is not an object".into())),
        };
        if let Some(Value::String(error)) = obj.remove("error") {
            let message = params
                .get("ErrorMsg")
                .and_then(Value::as_str)
                .map(str::to_owned);
            return Err(Error::Remote { error, message });
        }
        let continues = obj.get("continues").and_then(Value::as_bool) == Some(true);
        Ok((params, continues))
    }

    /// One call, one reply.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Map<String, Value>> {
        self.send(method, params, false)?;
        let (p, continues) = self.reply()?;
        if continues {
            return Err(Error::Protocol("more replies to a single call".into()));
        }
        Ok(p)
    }

    fn int(p: &Map<String, Value>, name: &str) -> Result<i64> {
        p.get(name)
            .and_then(Value::as_i64)
            .ok_or_else(|| Error::Protocol(format!("no integer {name}")))
    }

    /// Records a login; returns its ID (negative: spooled by the daemon, still valid for
    /// [`Client::logout`]).
    pub fn login(
        &mut self,
        kind: i64,
        user: &str,
        at: i64,
        tty: Option<&str>,
        host: Option<&str>,
        service: Option<&str>,
    ) -> Result<i64> {
        let p = self.call(
            method::LOGIN,
            json!({"Type": kind, "User": user, "LoginTime": at, "TTY": tty,
                   "RemoteHost": host, "Service": service}),
        )?;
        Self::int(&p, "ID")
    }

    pub fn logout(&mut self, id: i64, at: i64) -> Result<()> {
        self.call(method::LOGOUT, json!({"ID": id, "LogoutTime": at}))
            .map(|_| ())
    }

    /// Records the end of a session (ours, not upstream's: `CloseSession`): by `id` when the
    /// login's ID is known, with the session's identity when the caller kept it (the daemon
    /// then closes that row only if it is still the session: see
    /// [`crate::session::CloseTarget::Id`]); without an ID, the newest open session of the
    /// items' user, tty and service, if exactly one matches. What the daemon did comes back
    /// as the session writer reports it. A daemon without the method (upstream's) answers
    /// `MethodNotFound`: see [`Error::remote`].
    pub fn close_session(
        &mut self,
        target: &CloseTarget,
        items: &SessionItems,
        at: i64,
    ) -> Result<(RowClosed, Option<Mismatch>)> {
        // With the session's identity, its user and tty are the login's, which the row must
        // still have (those of the close may differ: a tty from XDG_VTNR set in between);
        // the daemon also looks for the session by them when the row is another's.
        let (id, login, user, tty) = match target {
            CloseTarget::Id(id, Some(me)) => (Some(id.to_int()), Some(me.login), &me.user, &me.tty),
            CloseTarget::Id(id, None) => (Some(id.to_int()), None, &items.user, &items.tty),
            CloseTarget::Lookup => (None, None, &items.user, &items.tty),
        };
        let p = self.call(
            method::CLOSE_SESSION,
            json!({"ID": id, "LoginTime": login, "User": user, "TTY": tty,
                   "Service": items.service, "LogoutTime": at}),
        )?;
        let row = p.get("ID").and_then(Value::as_i64);
        let closed = match (p.get("Closed").and_then(Value::as_str), row) {
            (Some("ById"), Some(id)) => RowClosed::ById(id),
            (Some("ByLookup"), Some(id)) => RowClosed::ByLookup(id),
            (Some("NoUser"), _) => RowClosed::NoUser,
            (Some("NotFound"), _) => RowClosed::NotFound,
            (Some("Ambiguous"), _) => RowClosed::Ambiguous,
            (Some("Spooled"), _) => RowClosed::Spooled(PathBuf::from(
                p.get("Spool").and_then(Value::as_str).unwrap_or_default(),
            )),
            (other, _) => {
                return Err(Error::Protocol(format!(
                    "CloseSession answered Closed {other:?}"
                )));
            }
        };
        let mismatch = p.get("Mismatch").and_then(|m| {
            Some(Mismatch {
                id: m.get("ID")?.as_i64()?,
                user: m.get("User")?.as_str()?.to_owned(),
                tty: m.get("TTY")?.as_str()?.to_owned(),
                login: m.get("Login")?.as_i64()?,
            })
        });
        Ok((closed, mismatch))
    }

    /// The newest open session on `tty`; None when there is none.
    pub fn get_id(&mut self, tty: &str) -> Result<Option<i64>> {
        match self.call(method::GET_ID, json!({"TTY": tty})) {
            Ok(p) => Self::int(&p, "ID").map(Some),
            Err(e) if e.remote() == Some(NO_ENTRY_FOUND) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The newest boot's time; None when there is none.
    pub fn boot_time(&mut self) -> Result<Option<i64>> {
        match self.call(method::GET_BOOT_TIME, json!({})) {
            Ok(p) => Self::int(&p, "BootTime").map(Some),
            Err(e) if e.remote() == Some(NO_ENTRY_FOUND) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Moves rows older than `days` into an archive: (rows moved, archive name).
    pub fn rotate(&mut self, days: u32) -> Result<(u64, Option<String>)> {
        let p = self.call(method::ROTATE, json!({"Days": days}))?;
        let n = Self::int(&p, "Entries").unwrap_or(0).max(0) as u64;
        let name = p
            .get("BackupName")
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok((n, name))
    }

    /// Every row, newest first, in one reply: upstream's `ReadAll`, which upstream's daemon
    /// answers too (ours refuses a table that does not fit in one message; then
    /// [`Client::read_entries`] streams it).
    pub fn read_all(&mut self) -> Result<Vec<Entry>> {
        let p = self.call(method::READ_ALL, json!({}))?;
        let Some(rows @ Value::Array(_)) = p.get("Data") else {
            return Err(Error::Protocol("ReadAll without Data".into()));
        };
        let rows = Vec::<WtmpdbEntry<'_>>::deserialize(rows)
            .map_err(|e| Error::Protocol(format!("WtmpdbEntry: {e}")))?;
        Ok(rows.into_iter().map(|r| r.into_entry().0).collect())
    }

    /// Records a failed login attempt (ours, root only); returns its ID.
    pub fn record_failure(&mut self, f: &crate::storage::NewFailure<'_>) -> Result<i64> {
        let p = self.call(
            method::RECORD_FAILURE,
            json!({"User": f.user, "Time": f.time, "TTY": f.tty, "RemoteHost": f.host,
                   "Service": f.service, "PID": f.pid}),
        )?;
        Self::int(&p, "ID")
    }

    /// The failed login attempts, newest first, as rows of the `lastb` report (ours, root
    /// only).
    pub fn read_failures(&mut self) -> Result<crate::report::Rows> {
        let p = self.call(method::READ_FAILURES, json!({}))?;
        let Some(Value::Array(data)) = p.get("Data") else {
            return Err(Error::Protocol("ReadFailures without Data".into()));
        };
        let mut rows = crate::report::Rows::new();
        for v in data {
            let f = interface::read_failure(v)
                .ok_or_else(|| Error::Protocol("a failure without ID, Time or User".into()))?;
            rows.push(crate::report::lastb::as_entry(f), None);
        }
        Ok(rows)
    }

    /// What a successful login of `user` at `at` is told of the attempts before it (ours,
    /// root only); the daemon records the login as the last successful one.
    pub fn failed_notice(&mut self, user: &str, at: i64) -> Result<crate::storage::Notice> {
        let p = self.call(method::FAILED_NOTICE, json!({"User": user, "Time": at}))?;
        Ok(crate::storage::Notice {
            count: Self::int(&p, "Count")?.max(0) as u64,
            last: p.get("Last").and_then(interface::read_failure),
        })
    }

    pub fn ping(&mut self) -> Result<bool> {
        let p = self.call(method::PING, json!({}))?;
        Ok(p.get("Alive").and_then(Value::as_bool) == Some(true))
    }

    /// Streams the rows newest first through `each` (the daemon's `ReadEntries` with
    /// `more`): one batch in memory at a time, whatever the size of the table. Returns how
    /// many rows were read.
    pub fn read_entries(&mut self, q: &Query<'_>, mut each: impl FnMut(Entry)) -> Result<u64> {
        self.read_sessions(q, |e, _| each(e))
    }

    /// [`Client::read_entries`], with the process the daemon recorded for each open session
    /// (its `PID` and `PIDStart`, what `wtmpdb who` checks a session's liveness by).
    pub fn read_sessions(
        &mut self,
        q: &Query<'_>,
        mut each: impl FnMut(Entry, Option<Process>),
    ) -> Result<u64> {
        self.read_sessions_while(q, |e, p| {
            each(e, p);
            std::ops::ControlFlow::Continue(())
        })
    }

    /// [`Client::read_sessions`] until `each` breaks: the rest of the stream is not read,
    /// and the connection is then of no further use (drop it). Returns how many rows were
    /// read.
    pub fn read_sessions_while(
        &mut self,
        q: &Query<'_>,
        mut each: impl FnMut(Entry, Option<Process>) -> std::ops::ControlFlow<()>,
    ) -> Result<u64> {
        let mut params = Map::new();
        let mut put = |k: &str, v: Value| {
            if !v.is_null() {
                params.insert(k.into(), v);
            }
        };
        put("Since", q.since.into());
        put("Until", q.until.into());
        put("User", q.user.into());
        put("TTY", q.tty.into());
        put("Limit", q.limit.into());
        self.send(method::READ_ENTRIES, Value::Object(params), true)?;
        let mut n = 0;
        loop {
            // Each reply straight into typed rows that borrow from the message (a million
            // rows through a tree of values cost three times the daemon's own read).
            let msg = self.message()?;
            let reply: RowsReply<'_> =
                serde_json::from_slice(&msg).map_err(|e| Error::Protocol(e.to_string()))?;
            if let Some(error) = reply.error {
                let message = reply
                    .parameters
                    .and_then(|p| p.error_msg)
                    .map(|m| m.into_owned());
                return Err(Error::Remote {
                    error: error.into_owned(),
                    message,
                });
            }
            let Some(rows) = reply.parameters.and_then(|p| p.data) else {
                return Err(Error::Protocol("ReadEntries without Data".into()));
            };
            for r in rows {
                let (e, p) = r.into_entry();
                n += 1;
                if each(e, p).is_break() {
                    return Ok(n);
                }
            }
            if !reply.continues {
                return Ok(n);
            }
        }
    }
}

/// Where the first NUL of `buf` is. A short reply (a login's, a logout's) is scanned byte by
/// byte: `memchr` picks its vector code at its first call by asking the processor what it
/// has (CPUID, which traps to the hypervisor in a virtual machine: some 30 µs in every login
/// process here), which pays off only for the long replies of a stream.
fn find_nul(buf: &[u8]) -> Option<usize> {
    if buf.len() <= 512 {
        buf.iter().position(|&b| b == 0)
    } else {
        memchr::memchr(0, buf)
    }
}
