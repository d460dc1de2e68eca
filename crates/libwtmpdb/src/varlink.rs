//! A small client of upstream's daemon interface `org.openSUSE.wtmpdb` (varlink: one JSON
//! object per message, each ended by a NUL byte, over the daemon's unix socket).
//!
//! One connection per call, as upstream's library makes them. Failures are negative errno
//! values: the connect's own, or -ENOENT for the daemon's `NoEntryFound` error and -EIO for
//! any other error reply (with the daemon's `ErrorMsg` as the message), as upstream maps
//! them. The daemon of this project does not exist yet; the client follows upstream's
//! interface description and is exercised against a scripted peer in the tests only.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::{Failure, Next, Result};
use wtmpdb::{Entry, Kind};

const INTERFACE: &str = "org.openSUSE.wtmpdb";

/// How long a reply may take. A login waits for the daemon's write; a read of the whole
/// table takes longer.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
const READ_ALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest reply accepted (upstream's daemon library caps a message at 16 MiB).
const MAX_REPLY: usize = 64 << 20;

fn io_failure(e: &std::io::Error, what: &str) -> Failure {
    let errno = e.raw_os_error().unwrap_or(libc::EIO);
    Failure::new(-i64::from(errno), format!("{what}: {e}"))
}

fn protocol(what: impl std::fmt::Display) -> Failure {
    Failure::new(-i64::from(libc::EPROTO), format!("wtmpdbd: {what}"))
}

/// A connection to the daemon.
pub struct Connection {
    stream: UnixStream,
}

impl Connection {
    /// Connects to the daemon's socket.
    pub fn open(socket: &Path) -> Result<Connection> {
        let stream = UnixStream::connect(socket)
            .map_err(|e| io_failure(&e, &format!("Cannot connect to {}", socket.display())))?;
        Ok(Connection { stream })
    }

    /// One method call: the reply's parameters, or the failure its error maps to.
    fn call(mut self, method: &str, parameters: Value, timeout: Duration) -> Result<Value> {
        let request =
            json!({ "method": format!("{INTERFACE}.{method}"), "parameters": parameters });
        let mut bytes = serde_json::to_vec(&request).map_err(protocol)?;
        bytes.push(0);
        let talk = |s: &mut UnixStream| -> std::io::Result<Vec<u8>> {
            s.set_read_timeout(Some(timeout))?;
            s.set_write_timeout(Some(timeout))?;
            s.write_all(&bytes)?;
            let mut reply = Vec::new();
            let mut buf = [0u8; 8192];
            loop {
                let n = s.read(&mut buf)?;
                if n == 0 {
                    return Err(std::io::Error::from_raw_os_error(libc::ECONNRESET));
                }
                if let Some(end) = buf[..n].iter().position(|&b| b == 0) {
                    reply.extend_from_slice(&buf[..end]);
                    return Ok(reply);
                }
                reply.extend_from_slice(&buf[..n]);
                if reply.len() > MAX_REPLY {
                    return Err(std::io::Error::from_raw_os_error(libc::EMSGSIZE));
                }
            }
        };
        let reply = talk(&mut self.stream).map_err(|e| io_failure(&e, "wtmpdbd"))?;
        let reply: Value = serde_json::from_slice(&reply).map_err(protocol)?;
        let params = reply.get("parameters").cloned().unwrap_or(Value::Null);
        if let Some(error) = reply.get("error") {
            let id = error.as_str().unwrap_or("unknown error");
            let msg = params
                .get("ErrorMsg")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| id.to_string());
            let errno = if id == format!("{INTERFACE}.NoEntryFound") {
                libc::ENOENT
            } else {
                libc::EIO
            };
            return Err(Failure::new(-i64::from(errno), msg));
        }
        Ok(params)
    }

    pub fn login(
        self,
        kind: i32,
        user: &[u8],
        at: i64,
        tty: Option<&[u8]>,
        host: Option<&[u8]>,
        service: Option<&[u8]>,
    ) -> Result<i64> {
        let text = |b: &[u8]| Value::String(wtmpdb::session::stored(b));
        let mut p = json!({ "Type": kind, "User": text(user), "LoginTime": at });
        for (name, v) in [("TTY", tty), ("RemoteHost", host), ("Service", service)] {
            if let Some(v) = v {
                p[name] = text(v);
            }
        }
        let r = self.call("Login", p, WRITE_TIMEOUT)?;
        id_of(&r)
    }

    pub fn logout(self, id: i64, at: i64) -> Result<()> {
        self.call(
            "Logout",
            json!({ "ID": id, "LogoutTime": at }),
            WRITE_TIMEOUT,
        )
        .map(|_| ())
    }

    pub fn get_id(self, tty: &[u8]) -> Result<i64> {
        let tty = wtmpdb::session::stored(tty);
        let r = self.call("GetID", json!({ "TTY": tty }), WRITE_TIMEOUT)?;
        id_of(&r)
    }

    pub fn get_boottime(self) -> Result<u64> {
        let r = self.call("GetBootTime", json!({}), WRITE_TIMEOUT)?;
        r.get("BootTime")
            .and_then(Value::as_u64)
            .ok_or_else(|| protocol("GetBootTime reply without BootTime"))
    }

    pub fn rotate(self, days: u32) -> Result<crate::Rotated> {
        let r = self.call("Rotate", json!({ "Days": days }), READ_ALL_TIMEOUT)?;
        Ok(crate::Rotated {
            archive: r
                .get("BackupName")
                .and_then(Value::as_str)
                .map(|s| s.as_bytes().to_vec()),
            entries: r.get("Entries").and_then(Value::as_u64).unwrap_or(0),
        })
    }

    /// The whole table in one reply (upstream's interface has no other way), newest first
    /// as the daemon sends it; `each` may stop early.
    pub fn read_all(self, each: &mut dyn FnMut(&Entry) -> Next) -> Result<()> {
        let r = self.call("ReadAll", json!({}), READ_ALL_TIMEOUT)?;
        let Some(rows) = r.get("Data").and_then(Value::as_array) else {
            return Err(protocol("ReadAll reply without Data"));
        };
        for row in rows {
            let e = entry_of(row)?;
            if each(&e) == Next::Stop {
                return Err(crate::aborted());
            }
        }
        Ok(())
    }
}

fn id_of(r: &Value) -> Result<i64> {
    r.get("ID")
        .and_then(Value::as_i64)
        .ok_or_else(|| protocol("reply without ID"))
}

/// A `WtmpdbEntry` of a ReadAll reply. The daemon sends every field, with 0 for a NULL
/// Logout and "" for a NULL RemoteHost or Service; those read back as NULL, as upstream's
/// client reads them.
fn entry_of(v: &Value) -> Result<Entry> {
    let int = |k: &str| v.get(k).and_then(Value::as_i64);
    let text = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    Ok(Entry {
        id: int("ID").ok_or_else(|| protocol("entry without ID"))?,
        kind: Kind::from_i64(int("Type").unwrap_or(0)),
        user: text("User").unwrap_or_default(),
        login: int("Login").unwrap_or(0),
        logout: int("Logout").filter(|&t| t != 0),
        tty: v.get("TTY").and_then(Value::as_str).map(str::to_string),
        host: text("RemoteHost"),
        service: text("Service"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// A scripted peer: answers one connection's request with `reply` and returns the
    /// request it got.
    fn peer(dir: &Path, reply: &'static str) -> std::thread::JoinHandle<String> {
        let sock = dir.join("socket");
        let l = UnixListener::bind(&sock).unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut req = Vec::new();
            let mut b = [0u8; 1];
            while s.read(&mut b).unwrap() == 1 && b[0] != 0 {
                req.push(b[0]);
            }
            s.write_all(reply.as_bytes()).unwrap();
            s.write_all(&[0]).unwrap();
            String::from_utf8(req).unwrap()
        })
    }

    #[test]
    fn login_sends_upstreams_parameters() {
        let dir = tempfile::tempdir().unwrap();
        let t = peer(dir.path(), r#"{"parameters":{"ID":4294967299}}"#);
        let c = Connection::open(&dir.path().join("socket")).unwrap();
        let id = c
            .login(3, b"alice", 7, Some(b"pts/1"), None, Some(b"sshd"))
            .unwrap();
        assert_eq!(id, 4_294_967_299);
        let req: Value = serde_json::from_str(&t.join().unwrap()).unwrap();
        assert_eq!(req["method"], "org.openSUSE.wtmpdb.Login");
        assert_eq!(req["parameters"]["User"], "alice");
        assert_eq!(req["parameters"]["LoginTime"], 7);
        assert!(req["parameters"].get("RemoteHost").is_none());
    }

    #[test]
    fn errors_map_to_errno() {
        let dir = tempfile::tempdir().unwrap();
        let t = peer(
            dir.path(),
            r#"{"error":"org.openSUSE.wtmpdb.NoEntryFound","parameters":{"ErrorMsg":"none"}}"#,
        );
        let c = Connection::open(&dir.path().join("socket")).unwrap();
        let f = c.get_id(b"pts/9").unwrap_err();
        assert_eq!(
            (f.code, f.message.as_str()),
            (-i64::from(libc::ENOENT), "none")
        );
        t.join().unwrap();
        let f = Connection::open(&dir.path().join("nothing")).err().unwrap();
        assert_eq!(f.code, -i64::from(libc::ENOENT));
    }

    #[test]
    fn a_null_path_uses_a_daemon_that_answers_and_varlink_needs_one() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("socket");
        let t = peer(dir.path(), r#"{"parameters":{"ID":12}}"#);
        let a = crate::Login {
            kind: crate::USER_PROCESS,
            user: Some(b"alice"),
            usec: 5,
            ..crate::Login::default()
        };
        assert_eq!(crate::login_at(&crate::Route::System, &sock, &a), Ok(12));
        t.join().unwrap();
        // "varlink" without a daemon: the connect's errno, never the file.
        let f = crate::login_at(&crate::Route::Daemon, &dir.path().join("none"), &a).unwrap_err();
        assert_eq!(f.code, -i64::from(libc::ENOENT));
        // A socket nobody listens on any more: ECONNREFUSED, one of the "no daemon" errors.
        let refused = dir.path().join("refused");
        drop(UnixListener::bind(&refused).unwrap());
        let f = crate::get_id_at(&crate::Route::Daemon, &refused, Some(b"pts/1")).unwrap_err();
        assert_eq!(f.code, -i64::from(libc::ECONNREFUSED));
        assert!(crate::daemon_absent(libc::ECONNREFUSED) && !crate::daemon_absent(libc::EIO));
    }

    #[test]
    fn daemon_errors_other_than_no_entry_are_eio() {
        let dir = tempfile::tempdir().unwrap();
        let t = peer(
            dir.path(),
            r#"{"error":"org.varlink.service.PermissionDenied","parameters":{}}"#,
        );
        let f =
            crate::logout_at(&crate::Route::Daemon, &dir.path().join("socket"), 3, 9).unwrap_err();
        assert_eq!(f.code, -i64::from(libc::EIO));
        assert_eq!(f.message, "org.varlink.service.PermissionDenied");
        let req: Value = serde_json::from_str(&t.join().unwrap()).unwrap();
        assert_eq!(req["method"], "org.openSUSE.wtmpdb.Logout");
        assert_eq!(
            (
                req["parameters"]["ID"].as_i64(),
                req["parameters"]["LogoutTime"].as_i64()
            ),
            (Some(3), Some(9))
        );
    }

    #[test]
    fn read_all_maps_the_daemons_placeholders_back_to_null() {
        let dir = tempfile::tempdir().unwrap();
        let t = peer(
            dir.path(),
            r#"{"parameters":{"Success":true,"Data":[
                {"ID":2,"Type":3,"User":"bob","Login":20,"Logout":0,"TTY":"pts/2","RemoteHost":"","Service":""},
                {"ID":1,"Type":1,"User":"reboot","Login":10,"Logout":15,"TTY":"~","RemoteHost":"6.1","Service":""}]}}"#,
        );
        let c = Connection::open(&dir.path().join("socket")).unwrap();
        let mut seen = Vec::new();
        let r = c.read_all(&mut |e| {
            seen.push(e.clone());
            Next::Stop
        });
        assert_eq!(r.unwrap_err(), crate::aborted());
        assert_eq!(seen.len(), 1);
        assert_eq!((seen[0].logout, seen[0].host.as_deref()), (None, None));
        t.join().unwrap();
    }
}
