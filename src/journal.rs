//! Journal events: one structured entry in the systemd journal for each record the one write
//! path writes (a login, a logout, a boot, a shutdown, a failed attempt, and a spooled record
//! when it is merged), for the collectors a fleet already runs (journal-upload, Vector,
//! Fluent Bit, Alloy, rsyslog) to pick out by `MESSAGE_ID`.
//!
//! The native protocol is encoded here (no library, no logger set for the process): one
//! datagram to [`SOCKET`], each field `NAME=value\n`, or, for a value holding a newline or
//! other bytes a line cannot carry, `NAME\n` then the value's length as 64-bit little endian,
//! the value and `\n`. An entry too large for one datagram goes as a sealed memory file whose
//! descriptor is sent instead, as journald accepts.
//!
//! Sending never waits: the socket is non-blocking, so with journald absent, stopped or slow
//! (its socket buffer full) the event is dropped at once; the row in the database stays the
//! record. Who sends: whoever writes the row into the file (the daemon, when it owns the
//! database; the writer otherwise), so an event is sent once.

use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::storage::{Entry, Kind, NewFailure};

/// journald's socket for the native protocol.
pub const SOCKET: &str = "/run/systemd/journal/socket";

/// The `MESSAGE_ID` of each kind of event (fixed; listed in the catalog file
/// `systemd/wtmpdb.catalog`).
pub mod message_id {
    pub const LOGIN: &str = "24db771a4e1946c881904742738b7639";
    pub const LOGOUT: &str = "24628f0eede34341affd363596ca857f";
    pub const BOOT: &str = "76aa9198ee5a4bcd8349186e5632db82";
    pub const SHUTDOWN: &str = "5bda6c51897b4843a2f10d5e7291fa18";
    pub const FAILED: &str = "08986e95c1be4031b6c5c06cf34da2d3";
    /// Any other row (a run-level change, a kind from a foreign writer).
    pub const ROW: &str = "8fb74117b3eb4eec97edbd7d60e7b24d";
}

/// Where and what to send: part of each writer's settings (the PAM module's options, the
/// daemon's configuration), never a global of the process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Events {
    /// Send events at all (on unless the admin turns them off).
    pub enabled: bool,
    /// Send the user name typed in a failed attempt (off: it is often a password typed at
    /// the wrong prompt, which is why btmp was readable by root only).
    pub failed_user: bool,
    /// journald's socket ([`SOCKET`]).
    pub socket: PathBuf,
    /// The socket events leave by, made at the first event and kept for the next ones.
    sender: Sender,
}

/// An unbound non-blocking datagram socket, made once per [`Events`] (a daemon sends two
/// events per session; a socket each cost three system calls more) and shared by the
/// threads that send (each `sendto` names journald's socket, so one that restarted is
/// reached). Not part of the settings: a copy starts without one, and two settings that
/// differ only in it are equal.
#[derive(Default)]
struct Sender(OnceLock<UnixDatagram>);

impl Sender {
    /// The socket, made now if it was not (when that fails, the next event tries again).
    fn get(&self) -> io::Result<&UnixDatagram> {
        if let Some(sock) = self.0.get() {
            return Ok(sock);
        }
        let sock = unbound_nonblocking()?;
        // Another thread may have set one meanwhile: either serves.
        let _ = self.0.set(sock);
        self.0.get().ok_or_else(|| io::ErrorKind::Other.into())
    }
}

impl Clone for Sender {
    fn clone(&self) -> Sender {
        Sender::default()
    }
}

impl PartialEq for Sender {
    fn eq(&self, _: &Sender) -> bool {
        true
    }
}

impl Eq for Sender {}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "Sender(made)"
        } else {
            "Sender"
        })
    }
}

impl Default for Events {
    fn default() -> Events {
        Events {
            enabled: true,
            failed_user: false,
            socket: PathBuf::from(SOCKET),
            sender: Sender::default(),
        }
    }
}

/// What an event reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum What {
    Login,
    Logout,
    Boot,
    Shutdown,
    Failed,
    /// A row of another kind written or closed.
    Row,
}

impl What {
    pub fn message_id(self) -> &'static str {
        match self {
            What::Login => message_id::LOGIN,
            What::Logout => message_id::LOGOUT,
            What::Boot => message_id::BOOT,
            What::Shutdown => message_id::SHUTDOWN,
            What::Failed => message_id::FAILED,
            What::Row => message_id::ROW,
        }
    }

    /// The value of `WTMPDB_TYPE` (and of `kind` in `wtmpdb export`).
    pub fn name(self) -> &'static str {
        match self {
            What::Login => "login",
            What::Logout => "logout",
            What::Boot => "boot",
            What::Shutdown => "shutdown",
            What::Failed => "failed",
            What::Row => "row",
        }
    }

    /// The event for a row of `kind` written (`closed` false) or closed.
    pub fn of_row(kind: Kind, closed: bool) -> What {
        match (kind, closed) {
            (Kind::UserProcess, false) => What::Login,
            (Kind::UserProcess, true) => What::Logout,
            (Kind::BootTime, false) => What::Boot,
            (Kind::BootTime, true) => What::Shutdown,
            _ => What::Row,
        }
    }
}

/// One journal entry, its fields in order.
#[derive(Clone, Debug, Default)]
pub struct Event {
    fields: Vec<(&'static str, Vec<u8>)>,
}

impl Event {
    pub fn field(&mut self, name: &'static str, value: impl AsRef<[u8]>) -> &mut Event {
        debug_assert!(valid_name(name), "{name}");
        self.fields.push((name, value.as_ref().to_vec()));
        self
    }

    pub fn fields(&self) -> &[(&'static str, Vec<u8>)] {
        &self.fields
    }

    /// The entry in the native protocol.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            self.fields
                .iter()
                .map(|(n, v)| n.len() + v.len() + 10)
                .sum(),
        );
        for (name, value) in &self.fields {
            out.extend_from_slice(name.as_bytes());
            if needs_length(value) {
                out.push(b'\n');
                out.extend_from_slice(&(value.len() as u64).to_le_bytes());
            } else {
                out.push(b'=');
            }
            out.extend_from_slice(value);
            out.push(b'\n');
        }
        out
    }
}

/// Whether `value` goes in the binary-safe form: a newline, another control byte, or bytes
/// that are not UTF-8 (a plain line would be cut or mangled by a reader).
fn needs_length(value: &[u8]) -> bool {
    value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)
        || std::str::from_utf8(value).is_err()
}

/// A field name journald keeps: upper-case letters, digits and `_`, not starting with `_`
/// or a digit, at most 64 bytes.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// The priority of every event: `notice` for a failed attempt, `info` otherwise.
fn priority(what: What) -> &'static str {
    if what == What::Failed { "5" } else { "6" }
}

/// A value for the readable `MESSAGE`: what would change the terminal escaped (the exact
/// value is in its own field).
fn shown(s: &str) -> std::borrow::Cow<'_, str> {
    crate::escape::for_terminal(s)
}

impl Events {
    /// Events turned off.
    pub fn off() -> Events {
        Events {
            enabled: false,
            ..Events::default()
        }
    }

    /// Sends `event`, without waiting: an error (none sent) when journald is absent, gone,
    /// or too slow to have room for it now.
    pub fn send(&self, event: &Event) -> io::Result<()> {
        if !self.enabled {
            return Ok(());
        }
        send_to(self.sender.get()?, &self.socket, &event.encode())
    }

    /// The event of row `entry` of `database`, just written (`closed` false) or closed by
    /// its logout; `spooled` when it came from the spool. The session's process is `pid`
    /// when known.
    pub fn row_event(
        &self,
        entry: &Entry,
        closed: bool,
        database: &Path,
        spooled: bool,
        pid: Option<i64>,
    ) -> Event {
        let what = What::of_row(entry.kind, closed);
        let tty = entry.tty.as_deref().unwrap_or("");
        let host = entry.host.as_deref().unwrap_or("");
        let user = shown(&entry.user);
        let message = match what {
            What::Login | What::Logout => {
                let mut m = format!(
                    "{} of {} on {}",
                    if what == What::Login {
                        "Login"
                    } else {
                        "Logout"
                    },
                    user,
                    shown(tty)
                );
                if !host.is_empty() {
                    m += &format!(" from {}", shown(host));
                }
                if let Some(s) = entry.service.as_deref().filter(|s| !s.is_empty()) {
                    m += &format!(" ({})", shown(s));
                }
                m
            }
            What::Boot => format!("System boot ({user}, kernel {})", shown(host)),
            What::Shutdown => format!("System shutdown ({user}, kernel {})", shown(host)),
            _ => format!(
                "Row {} of type {} for {user}",
                entry.id,
                entry.kind.as_i64()
            ),
        };
        let mut e = Event::default();
        e.field("MESSAGE", message)
            .field("MESSAGE_ID", what.message_id())
            .field("PRIORITY", priority(what))
            .field("SYSLOG_IDENTIFIER", "wtmpdb")
            .field("WTMPDB_ID", entry.id.to_string())
            .field("WTMPDB_TYPE", what.name())
            .field("WTMPDB_ROW_TYPE", entry.kind.as_i64().to_string())
            .field("WTMPDB_USER", &entry.user)
            .field("WTMPDB_LOGIN_USEC", entry.login.to_string());
        if let Some(t) = &entry.tty {
            e.field("WTMPDB_TTY", t);
        }
        if let Some(h) = &entry.host {
            e.field("WTMPDB_RHOST", h);
        }
        if let Some(s) = &entry.service {
            e.field("WTMPDB_SERVICE", s);
        }
        if let Some(out) = entry.logout {
            e.field("WTMPDB_LOGOUT_USEC", out.to_string());
        }
        if let Some(pid) = pid {
            e.field("WTMPDB_PID", pid.to_string());
        }
        if spooled {
            e.field("WTMPDB_SPOOLED", "1");
        }
        e.field("WTMPDB_DATABASE", database.as_os_str().as_encoded_bytes());
        e
    }

    /// Sends the event of row `id` of `database`, just written as `entry`.
    pub fn new_row(
        &self,
        id: i64,
        entry: &crate::storage::NewEntry<'_>,
        database: &Path,
        pid: Option<i64>,
    ) {
        if self.enabled {
            let entry = Entry {
                id,
                kind: entry.kind,
                user: entry.user.to_string(),
                login: entry.login,
                logout: entry.logout,
                tty: entry.tty.map(str::to_string),
                host: entry.host.map(str::to_string),
                service: entry.service.map(str::to_string),
            };
            self.row(&entry, entry.logout.is_some(), database, false, pid);
        }
    }

    /// Sends the event of a row (see [`Events::row_event`]); what went wrong is dropped.
    pub fn row(
        &self,
        entry: &Entry,
        closed: bool,
        database: &Path,
        spooled: bool,
        pid: Option<i64>,
    ) {
        if self.enabled {
            let _ = self.send(&self.row_event(entry, closed, database, spooled, pid));
        }
    }

    /// The event of failed attempt `id` recorded in the failures' file `file`.
    pub fn failure_event(&self, id: i64, f: &NewFailure<'_>, file: &Path) -> Event {
        let what = What::Failed;
        let mut message = String::from("Failed login attempt");
        if self.failed_user {
            message += &format!(" as {}", shown(f.user));
        }
        if let Some(t) = f.tty.filter(|t| !t.is_empty()) {
            message += &format!(" on {}", shown(t));
        }
        if let Some(h) = f.host.filter(|h| !h.is_empty()) {
            message += &format!(" from {}", shown(h));
        }
        if let Some(s) = f.service.filter(|s| !s.is_empty()) {
            message += &format!(" ({})", shown(s));
        }
        let mut e = Event::default();
        e.field("MESSAGE", message)
            .field("MESSAGE_ID", what.message_id())
            .field("PRIORITY", priority(what))
            .field("SYSLOG_IDENTIFIER", "wtmpdb")
            .field("WTMPDB_ID", id.to_string())
            .field("WTMPDB_TYPE", what.name())
            .field("WTMPDB_LOGIN_USEC", f.time.to_string());
        if self.failed_user {
            e.field("WTMPDB_USER", f.user);
        }
        if let Some(t) = f.tty {
            e.field("WTMPDB_TTY", t);
        }
        if let Some(h) = f.host {
            e.field("WTMPDB_RHOST", h);
        }
        if let Some(s) = f.service {
            e.field("WTMPDB_SERVICE", s);
        }
        if let Some(pid) = f.pid {
            e.field("WTMPDB_PID", pid.to_string());
        }
        e.field("WTMPDB_DATABASE", file.as_os_str().as_encoded_bytes());
        e
    }

    /// Sends the event of a failed attempt; what went wrong is dropped.
    pub fn failure(&self, id: i64, f: &NewFailure<'_>, file: &Path) {
        if self.enabled {
            let _ = self.send(&self.failure_event(id, f, file));
        }
    }

    /// Sends the events of the rows a merge of the spool of `db` wrote or closed.
    pub fn merged(&self, db: &crate::Database, merged: &crate::session::spool::Merged) {
        if !self.enabled {
            return;
        }
        for &(id, closed) in &merged.rows {
            if let Ok(Some(entry)) = db.row(id) {
                self.row(&entry, closed, db.file(), true, None);
            }
        }
    }
}

/// One datagram of `bytes` to `socket`, or, too large for one, a sealed memory file.
fn send_to(sock: &UnixDatagram, socket: &Path, bytes: &[u8]) -> io::Result<()> {
    match send_by(sock, socket, bytes) {
        // The shared socket's send buffer is full: it is charged with every datagram of ours
        // that journald has not read yet (212,992 bytes by default, about 160 events of a
        // login), while journald's queue takes 512 datagrams of any sender (systemd's
        // net.unix.max_dgram_qlen). A socket of its own, as before the sharing, brings the
        // event there while the queue has room.
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            send_by(&unbound_nonblocking()?, socket, bytes)
        }
        other => other,
    }
}

/// A socket to send events by: unbound (each send names journald's socket) and never
/// waiting (a full buffer drops the event at once).
fn unbound_nonblocking() -> io::Result<UnixDatagram> {
    let sock = UnixDatagram::unbound()?;
    sock.set_nonblocking(true)?;
    Ok(sock)
}

/// As [`send_to`], through `sock` only.
fn send_by(sock: &UnixDatagram, socket: &Path, bytes: &[u8]) -> io::Result<()> {
    match sock.send_to(bytes, socket) {
        Ok(_) => Ok(()),
        Err(e)
            if e.raw_os_error() == Some(libc::EMSGSIZE)
                || e.raw_os_error() == Some(libc::ENOBUFS) =>
        {
            let addr = crate::sys::UnixAddr::new(socket)
                .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
            let mut file = crate::sys::memfd(c"wtmpdb-journal")?;
            file.write_all(bytes)?;
            crate::sys::seal_all(&file)?;
            crate::sys::send_fd_to(sock.as_fd(), &addr, file.as_fd())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_with_a_newline_is_length_prefixed() {
        let mut e = Event::default();
        e.field("A", "x").field("B", "1\n2");
        assert_eq!(e.encode(), b"A=x\nB\n\x03\0\0\0\0\0\0\x001\n2\n".to_vec());
    }

    #[test]
    fn no_journald_drops_the_event_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let events = Events {
            socket: dir.path().join("none"),
            ..Events::default()
        };
        let mut e = Event::default();
        e.field("MESSAGE", "x");
        let start = std::time::Instant::now();
        assert!(events.send(&e).is_err());
        assert!(start.elapsed() < std::time::Duration::from_millis(50));
    }

    /// A journald that never reads, bound in `dir`, and the events sent to it.
    fn never_reading(dir: &Path) -> (UnixDatagram, Events) {
        let path = dir.join("socket");
        let rx = UnixDatagram::bind(&path).unwrap();
        let events = Events {
            socket: path,
            ..Events::default()
        };
        (rx, events)
    }

    /// A receiver that never reads: once its buffer is full, a send fails at once instead
    /// of waiting.
    #[test]
    fn a_full_journald_drops_the_event_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (_rx, events) = never_reading(dir.path());
        let mut e = Event::default();
        e.field("MESSAGE", vec![b'x'; 4000]);
        let start = std::time::Instant::now();
        let mut dropped = false;
        for _ in 0..10_000 {
            if events.send(&e).is_err() {
                dropped = true;
                break;
            }
        }
        assert!(dropped);
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
    }

    /// journald's queue holds a number of datagrams (net.unix.max_dgram_qlen: 512 under
    /// systemd), of any sender; the socket the events share is charged with each of its
    /// datagrams queued there, up to its send buffer. Events that wait in the queue while
    /// journald is busy must not be dropped because they came through one socket: as many
    /// go as through a socket each (here large ones, which fill that buffer in a few).
    #[test]
    fn events_queued_at_a_busy_journald_are_not_bounded_by_the_shared_socket() {
        let qlen: usize = std::fs::read_to_string("/proc/sys/net/unix/max_dgram_qlen")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(10);
        let n = qlen.min(8);
        let dir = tempfile::tempdir().unwrap();
        let (_rx, events) = never_reading(dir.path());
        let mut e = Event::default();
        // 60 KB each: a socket's default send buffer (212,992 bytes) holds three.
        e.field("MESSAGE", vec![b'x'; 60_000]);
        for i in 0..n {
            assert!(
                events.send(&e).is_ok(),
                "event {i} of {n} dropped while the queue ({qlen}) has room"
            );
        }
    }

    #[test]
    fn ids_are_distinct_128_bit_hex() {
        let ids = [
            message_id::LOGIN,
            message_id::LOGOUT,
            message_id::BOOT,
            message_id::SHUTDOWN,
            message_id::FAILED,
            message_id::ROW,
        ];
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(id.len(), 32);
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            );
            assert!(!ids[..i].contains(id));
        }
    }

    #[test]
    fn a_failure_hides_the_typed_name_unless_asked() {
        let f = NewFailure {
            time: 5,
            user: "hunter2",
            tty: Some("ssh"),
            host: Some("10.0.0.1"),
            service: Some("sshd"),
            pid: Some(9),
        };
        let off = Events::default()
            .failure_event(1, &f, Path::new("/x"))
            .encode();
        assert!(!off.windows(7).any(|w| w == b"hunter2"));
        let on = Events {
            failed_user: true,
            ..Events::default()
        }
        .failure_event(1, &f, Path::new("/x"))
        .encode();
        assert!(on.windows(7).any(|w| w == b"hunter2"));
    }
}

#[cfg(test)]
mod catalog {
    use super::message_id;

    /// The catalog shipped in the tree lists every MESSAGE_ID, once, and nothing else.
    #[test]
    fn the_catalog_lists_every_message_id() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/systemd/wtmpdb.catalog"
        ))
        .unwrap();
        let mut listed: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("-- ")).collect();
        listed.sort_unstable();
        let mut ids = vec![
            message_id::LOGIN,
            message_id::LOGOUT,
            message_id::BOOT,
            message_id::SHUTDOWN,
            message_id::FAILED,
            message_id::ROW,
        ];
        ids.sort_unstable();
        assert_eq!(listed, ids);
    }
}
