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

use crate::process::Process;
use crate::session::{CloseTarget, Mismatch, RowClosed, SessionItems};
use crate::storage::Entry;

/// Upstream's socket.
pub const SOCKET: &str = "/run/wtmpdb/socket";

/// The largest reply accepted (upstream's client library takes 16 MiB).
pub const MAX_REPLY: usize = 16 * 1024 * 1024;

const IFACE: &str = "org.openSUSE.wtmpdb";

/// Our method that closes a session by ID with its identity, or by lookup
/// ([`Client::close_session`]).
pub const CLOSE_SESSION: &str = "CloseSession";

/// varlink's error for a method the service does not have (upstream's daemon for ours).
pub const METHOD_NOT_FOUND: &str = "org.varlink.service.MethodNotFound";

/// The daemon's error for "no such row" (GetID, GetBootTime).
pub const NO_ENTRY_FOUND: &str = "org.openSUSE.wtmpdb.NoEntryFound";

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
        None if error == "org.varlink.service.PermissionDenied" => "wtmpdbd refused the call (org.varlink.service.PermissionDenied)".to_string(),
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
        let stream = UnixStream::connect(socket).map_err(|source| Error::Connect {
            path: socket.display().to_string(),
            source,
        })?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Client {
            stream,
            buf: Vec::new(),
            timeout,
        })
    }

    fn send(&mut self, method: &str, params: Value, more: bool) -> Result<()> {
        let mut call = json!({"method": format!("{IFACE}.{method}"), "parameters": params});
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
            if let Some(i) = memchr::memchr(0, &self.buf[scanned..]) {
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
            "Login",
            json!({"Type": kind, "User": user, "LoginTime": at, "TTY": tty,
                   "RemoteHost": host, "Service": service}),
        )?;
        Self::int(&p, "ID")
    }

    pub fn logout(&mut self, id: i64, at: i64) -> Result<()> {
        self.call("Logout", json!({"ID": id, "LogoutTime": at}))
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
        let (id, login) = match target {
            CloseTarget::Id(id, identity) => {
                (Some(id.to_int()), identity.as_ref().map(|i| i.login))
            }
            CloseTarget::Lookup => (None, None),
        };
        let p = self.call(
            CLOSE_SESSION,
            json!({"ID": id, "LoginTime": login, "User": items.user, "TTY": items.tty,
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
        match self.call("GetID", json!({"TTY": tty})) {
            Ok(p) => Self::int(&p, "ID").map(Some),
            Err(e) if e.remote() == Some(NO_ENTRY_FOUND) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The newest boot's time; None when there is none.
    pub fn boot_time(&mut self) -> Result<Option<i64>> {
        match self.call("GetBootTime", json!({})) {
            Ok(p) => Self::int(&p, "BootTime").map(Some),
            Err(e) if e.remote() == Some(NO_ENTRY_FOUND) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Moves rows older than `days` into an archive: (rows moved, archive name).
    pub fn rotate(&mut self, days: u32) -> Result<(u64, Option<String>)> {
        let p = self.call("Rotate", json!({"Days": days}))?;
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
        let p = self.call("ReadAll", json!({}))?;
        let Some(rows @ Value::Array(_)) = p.get("Data") else {
            return Err(Error::Protocol("ReadAll without Data".into()));
        };
        let rows = Vec::<wire::Row<'_>>::deserialize(rows)
            .map_err(|e| Error::Protocol(format!("WtmpdbEntry: {e}")))?;
        Ok(rows.into_iter().map(|r| r.into_entry().0).collect())
    }

    pub fn ping(&mut self) -> Result<bool> {
        let p = self.call("Ping", json!({}))?;
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
        self.send("ReadEntries", Value::Object(params), true)?;
        let mut n = 0;
        loop {
            // Each reply straight into typed rows that borrow from the message (a million
            // rows through a tree of values cost three times the daemon's own read).
            let msg = self.message()?;
            let reply: wire::Reply<'_> =
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
                each(e, p);
                n += 1;
            }
            if !reply.continues {
                return Ok(n);
            }
        }
    }
}

/// The stream's messages as typed structs (see [`Client::read_sessions`]), read with the
/// same rules as [`entry`] and [`process`].
mod wire {
    use std::borrow::Cow;

    use serde::Deserialize;

    use crate::process::Process;
    use crate::storage::{Entry, Kind};

    #[derive(Deserialize)]
    pub(super) struct Reply<'a> {
        #[serde(borrow, default)]
        pub parameters: Option<Params<'a>>,
        #[serde(default)]
        pub continues: bool,
        #[serde(borrow, default)]
        pub error: Option<Cow<'a, str>>,
    }

    #[derive(Deserialize)]
    pub(super) struct Params<'a> {
        #[serde(borrow, rename = "Data", default)]
        pub data: Option<Vec<Row<'a>>>,
        #[serde(borrow, rename = "ErrorMsg", default)]
        pub error_msg: Option<Cow<'a, str>>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub(super) struct Row<'a> {
        #[serde(rename = "ID")]
        id: i64,
        #[serde(rename = "Type")]
        kind: i64,
        #[serde(borrow)]
        user: Cow<'a, str>,
        #[serde(default)]
        login: Option<i64>,
        #[serde(default)]
        logout: Option<i64>,
        #[serde(borrow, rename = "TTY", default)]
        tty: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        remote_host: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        service: Option<Cow<'a, str>>,
        #[serde(rename = "PID", default)]
        pid: Option<i64>,
        #[serde(rename = "PIDStart", default)]
        pid_start: Option<i64>,
    }

    impl Row<'_> {
        pub(super) fn into_entry(self) -> (Entry, Option<Process>) {
            // As `entry`: upstream's 0 for no logout and "" for no host or service.
            let text = |s: Option<Cow<'_, str>>| s.filter(|s| !s.is_empty()).map(Cow::into_owned);
            let process = self.pid.and_then(|pid| {
                Some(Process {
                    pid: i32::try_from(pid).ok()?,
                    start_time: self.pid_start,
                })
            });
            let e = Entry {
                id: self.id,
                kind: Kind::from_i64(self.kind),
                user: self.user.into_owned(),
                login: self.login.unwrap_or(0),
                logout: self.logout.filter(|&t| t != 0),
                tty: self.tty.map(Cow::into_owned),
                host: text(self.remote_host),
                service: text(self.service),
            };
            (e, process)
        }
    }
}

/// The session's process a `WtmpdbEntry` of `ReadEntries` carries (ours: `PID`, and
/// `PIDStart`, field 22 of `/proc/PID/stat` when it started), if any (read as [`entry`]
/// reads the row).
pub fn process(v: &Value) -> Option<Process> {
    wire::Row::deserialize(v).ok()?.into_entry().1
}

/// A `WtmpdbEntry` as an [`Entry`]; upstream's daemon sends 0 for a missing Logout and ""
/// for a missing host or service, which read back as absent, as its client reads them. The
/// rules are those of the stream's rows (`wire::Row`): one reading for every reply.
pub fn entry(v: &Value) -> Result<Entry> {
    wire::Row::deserialize(v)
        .map(|r| r.into_entry().0)
        .map_err(|e| Error::Protocol(format!("WtmpdbEntry: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Kind;

    /// The stream's typed rows, the one reading of a `WtmpdbEntry`: escapes, nulls,
    /// upstream's 0 and "", a PID out of range, fields of later versions; and the single
    /// reply's rows (`entry`, `process`) read the same.
    #[test]
    fn stream_rows_read_as_the_interface_says() {
        let rows = json!([
            {"ID": 2147483648i64, "Type": 3, "User": "a", "Login": 5, "Logout": 0,
             "TTY": "?", "RemoteHost": "", "Service": ""},
            {"ID": 1, "Type": 1, "User": "reboot", "Login": 4354819200000000i64,
             "Logout": null, "TTY": null},
            {"ID": 7, "Type": 3, "User": "e\u{301}\"\\\u{202e}\0x", "Login": -1,
             "Logout": 9, "TTY": "", "RemoteHost": "h\n", "Service": "sshd", "PID": 42,
             "PIDStart": 1234, "Later": {"x": [1]}},
            {"ID": 8, "Type": 3, "User": "b", "PID": 4294967296i64},
            {"ID": 9, "Type": 3, "User": "c", "PID": 5}
        ]);
        let row = |id, kind, user: &str, login| Entry {
            id,
            kind: Kind::from_i64(kind),
            user: user.into(),
            login,
            ..Entry::default()
        };
        let expected = vec![
            (
                Entry {
                    tty: Some("?".into()),
                    ..row(2_147_483_648, 3, "a", 5)
                },
                None,
            ),
            (row(1, 1, "reboot", 4_354_819_200_000_000), None),
            (
                Entry {
                    logout: Some(9),
                    tty: Some(String::new()),
                    host: Some("h\n".into()),
                    service: Some("sshd".into()),
                    ..row(7, 3, "e\u{301}\"\\\u{202e}\0x", -1)
                },
                Some(Process {
                    pid: 42,
                    start_time: Some(1234),
                }),
            ),
            (row(8, 3, "b", 0), None),
            (
                row(9, 3, "c", 0),
                Some(Process {
                    pid: 5,
                    start_time: None,
                }),
            ),
        ];
        let msg =
            serde_json::to_vec(&json!({"parameters": {"Data": rows}, "continues": true})).unwrap();
        let reply: wire::Reply<'_> = serde_json::from_slice(&msg).unwrap();
        assert!(reply.continues);
        let typed: Vec<_> = reply
            .parameters
            .unwrap()
            .data
            .unwrap()
            .into_iter()
            .map(wire::Row::into_entry)
            .collect();
        assert_eq!(typed, expected);
        let by_value: Vec<_> = rows
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (entry(r).unwrap(), process(r)))
            .collect();
        assert_eq!(by_value, expected);
        let bad = br#"{"parameters": {"Data": [{"ID": "1", "Type": 3, "User": "a"}]}}"#;
        assert!(serde_json::from_slice::<wire::Reply<'_>>(bad).is_err());
        assert!(entry(&json!({"ID": "1", "Type": 3, "User": "a"})).is_err());
    }

    #[test]
    fn upstream_entries_read_back_with_absent_values() {
        let v = json!({"ID": 2147483648i64, "Type": 3, "User": "a", "Login": 5, "Logout": 0,
                       "TTY": "?", "RemoteHost": "", "Service": ""});
        let e = entry(&v).unwrap();
        assert_eq!(e.id, 2_147_483_648);
        assert_eq!((e.logout, e.host, e.service), (None, None, None));
        let v = json!({"ID": 1, "Type": 1, "User": "reboot", "Login": 4354819200000000i64,
                       "Logout": null, "TTY": null});
        assert_eq!(entry(&v).unwrap().tty, None);
    }
}
