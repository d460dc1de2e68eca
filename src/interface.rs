//! The varlink interface `org.openSUSE.wtmpdb` as both ends speak it: its names (the
//! interface, its methods, its errors, and the errors of `org.varlink.service` that a client
//! tells apart), and its row, `WtmpdbEntry`, which the daemon writes ([`write_entry`],
//! [`entry_value`]) and the client reads ([`WtmpdbEntry`], [`read_entry`]). The daemon
//! (`wtmpdbd`) and the client ([`crate::varlink`]) take every name and the row's both
//! directions from here, so the two ends cannot drift apart.
//!
//! A row is written with null for an absent value; upstream's daemon writes 0 for a missing
//! Logout and "" for a missing host or service, and the reader takes those as absent too,
//! as upstream's client does.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::process::Process;
use crate::storage::{Entry, Kind};

/// The interface's name.
pub const INTERFACE: &str = "org.openSUSE.wtmpdb";

/// The methods of [`INTERFACE`], as a call names them after the interface and a dot.
pub mod method {
    pub const LOGIN: &str = "Login";
    pub const LOGOUT: &str = "Logout";
    /// Ours: a logout that checks the session's identity, or looks the session up.
    pub const CLOSE_SESSION: &str = "CloseSession";
    pub const GET_ID: &str = "GetID";
    pub const GET_BOOT_TIME: &str = "GetBootTime";
    pub const READ_ALL: &str = "ReadAll";
    /// Ours: the streaming read (with `more`, one reply per batch of rows).
    pub const READ_ENTRIES: &str = "ReadEntries";
    pub const ROTATE: &str = "Rotate";
    pub const QUIT: &str = "Quit";
    pub const PING: &str = "Ping";
    pub const SET_LOG_LEVEL: &str = "SetLogLevel";
    pub const GET_ENVIRONMENT: &str = "GetEnvironment";
    /// Ours, root only: records a failed login attempt.
    pub const RECORD_FAILURE: &str = "RecordFailure";
    /// Ours, root only: the failed login attempts, newest first.
    pub const READ_FAILURES: &str = "ReadFailures";
    /// Ours, root only: the attempts on a user since its last successful login reported,
    /// which this call records.
    pub const FAILED_NOTICE: &str = "FailedNotice";

    /// Every method, in the order the interface description declares them.
    pub const ALL: [&str; 15] = [
        LOGIN,
        LOGOUT,
        CLOSE_SESSION,
        GET_ID,
        GET_BOOT_TIME,
        READ_ALL,
        READ_ENTRIES,
        ROTATE,
        QUIT,
        PING,
        SET_LOG_LEVEL,
        GET_ENVIRONMENT,
        RECORD_FAILURE,
        READ_FAILURES,
        FAILED_NOTICE,
    ];
}

/// "No such row" (GetID, GetBootTime).
pub const NO_ENTRY_FOUND: &str = "org.openSUSE.wtmpdb.NoEntryFound";
/// Any other failure of the daemon.
pub const INTERNAL_ERROR: &str = "org.openSUSE.wtmpdb.InternalError";

/// The standard interface every varlink service provides, and its errors.
pub mod service {
    pub const INTERFACE: &str = "org.varlink.service";
    pub const INVALID_PARAMETER: &str = "org.varlink.service.InvalidParameter";
    pub const METHOD_NOT_FOUND: &str = "org.varlink.service.MethodNotFound";
    pub const INTERFACE_NOT_FOUND: &str = "org.varlink.service.InterfaceNotFound";
    pub const PERMISSION_DENIED: &str = "org.varlink.service.PermissionDenied";
    pub const METHOD_NOT_IMPLEMENTED: &str = "org.varlink.service.MethodNotImplemented";
}

/// A `WtmpdbEntry` as written: the row's columns, absent values as null, and for an open
/// session of `ReadEntries` the process recorded at its login (`PID`, and `PIDStart`, null
/// when its start time is unknown); rows without a process carry neither key.
#[derive(Serialize)]
struct Written<'a> {
    #[serde(rename = "ID")]
    id: i64,
    #[serde(rename = "Type")]
    kind: i64,
    #[serde(rename = "User")]
    user: &'a str,
    #[serde(rename = "Login")]
    login: i64,
    #[serde(rename = "Logout")]
    logout: Option<i64>,
    #[serde(rename = "TTY")]
    tty: Option<&'a str>,
    #[serde(rename = "RemoteHost")]
    host: Option<&'a str>,
    #[serde(rename = "Service")]
    service: Option<&'a str>,
    #[serde(rename = "PID", skip_serializing_if = "Option::is_none")]
    pid: Option<i32>,
    /// `Some(None)` is written as null (a process whose start time is unknown).
    #[serde(rename = "PIDStart", skip_serializing_if = "Option::is_none")]
    pid_start: Option<Option<i64>>,
}

impl<'a> Written<'a> {
    fn new(e: &'a Entry, p: Option<&Process>) -> Written<'a> {
        Written {
            id: e.id,
            kind: e.kind.as_i64(),
            user: &e.user,
            login: e.login,
            logout: e.logout,
            tty: e.tty.as_deref(),
            host: e.host.as_deref(),
            service: e.service.as_deref(),
            pid: p.map(|p| p.pid),
            pid_start: p.map(|p| p.start_time),
        }
    }
}

/// Appends `e` (with the process `p` of its session, if any) to a reply being built, as one
/// compact JSON object: `{"ID":..,"Type":..,"User":..,"Login":..,"Logout":..,"TTY":..,
/// "RemoteHost":..,"Service":..}`, with `"PID":..,"PIDStart":..` before the brace when `p`
/// is given.
pub fn write_entry(out: &mut Vec<u8>, e: &Entry, p: Option<&Process>) {
    serde_json::to_writer(out, &Written::new(e, p)).expect("writing to a Vec cannot fail");
}

/// The same row as [`write_entry`] writes, as a value (for a reply built as a map).
pub fn entry_value(e: &Entry, p: Option<&Process>) -> Value {
    serde_json::to_value(Written::new(e, p)).expect("a row is always a JSON object")
}

/// A `WtmpdbEntry` as read, borrowing its strings from the message where it can (a million
/// rows through a tree of values cost three times the daemon's own read). Keys it does not
/// know (a later version's) are ignored.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WtmpdbEntry<'a> {
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

impl WtmpdbEntry<'_> {
    /// The row, and the process recorded for its session if the daemon sent one (a PID out
    /// of range is none). Upstream's 0 for no Logout and "" for no host or service read as
    /// absent; a missing Login reads as 0, as a NULL Login does from the file.
    pub fn into_entry(self) -> (Entry, Option<Process>) {
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

/// A `WtmpdbEntry` given as a value (a row of a reply read as a map), read as
/// [`WtmpdbEntry`] reads a row of the stream.
pub fn read_entry(v: &Value) -> Result<(Entry, Option<Process>), serde_json::Error> {
    WtmpdbEntry::deserialize(v).map(WtmpdbEntry::into_entry)
}

/// A reply whose parameters carry rows (`ReadEntries`, `ReadAll`), read in one pass from
/// the message: an error name, or the rows and whether more replies follow.
#[derive(Deserialize)]
pub struct RowsReply<'a> {
    #[serde(borrow, default)]
    pub parameters: Option<RowsParameters<'a>>,
    #[serde(default)]
    pub continues: bool,
    #[serde(borrow, default)]
    pub error: Option<Cow<'a, str>>,
}

/// The parameters of a [`RowsReply`].
#[derive(Deserialize)]
pub struct RowsParameters<'a> {
    #[serde(borrow, rename = "Data", default)]
    pub data: Option<Vec<WtmpdbEntry<'a>>>,
    #[serde(borrow, rename = "ErrorMsg", default)]
    pub error_msg: Option<Cow<'a, str>>,
}

/// A failed login attempt as `ReadFailures` and `FailedNotice` send it.
pub fn failure_value(f: &crate::storage::Failure) -> Value {
    serde_json::json!({"ID": f.id, "Time": f.time, "User": f.user, "TTY": f.tty,
                       "RemoteHost": f.host, "Service": f.service, "PID": f.pid})
}

/// The attempt `failure_value` sent.
pub fn read_failure(v: &Value) -> Option<crate::storage::Failure> {
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    Some(crate::storage::Failure {
        id: v.get("ID")?.as_i64()?,
        time: v.get("Time")?.as_i64()?,
        user: s("User")?,
        tty: s("TTY"),
        host: s("RemoteHost"),
        service: s("Service"),
        pid: v.get("PID").and_then(Value::as_i64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn written(e: &Entry, p: Option<&Process>) -> String {
        let mut out = Vec::new();
        write_entry(&mut out, e, p);
        String::from_utf8(out).unwrap()
    }

    /// The bytes the daemon sends, pinned: key order, compact layout, null for absent
    /// values, JSON escapes, and the process keys only with a process.
    #[test]
    fn a_row_is_written_as_the_daemon_always_wrote_it() {
        let e = Entry {
            id: 7,
            kind: Kind::UserProcess,
            user: "a\"b\\c\u{1}\u{202e}\0".into(),
            login: 4_102_444_800_000_000,
            logout: None,
            tty: Some("pts/1".into()),
            host: None,
            service: Some("sshd".into()),
        };
        let row = concat!(
            r#"{"ID":7,"Type":3,"User":"a\"b\\c\u0001"#,
            "\u{202e}",
            r#"\u0000","Login":4102444800000000,"Logout":null,"TTY":"pts/1","#,
            r#""RemoteHost":null,"Service":"sshd""#
        );
        assert_eq!(written(&e, None), format!("{row}}}"));
        let p = |start_time| Process {
            pid: 42,
            start_time,
        };
        assert_eq!(
            written(&e, Some(&p(Some(9)))),
            format!("{row},\"PID\":42,\"PIDStart\":9}}")
        );
        assert_eq!(
            written(&e, Some(&p(None))),
            format!("{row},\"PID\":42,\"PIDStart\":null}}")
        );
        let boot = Entry {
            id: -1,
            kind: Kind::Other(-9),
            user: "reboot".into(),
            login: i64::MIN,
            logout: Some(i64::MAX),
            ..Entry::default()
        };
        assert_eq!(
            written(&boot, None),
            r#"{"ID":-1,"Type":-9,"User":"reboot","Login":-9223372036854775808,"Logout":9223372036854775807,"TTY":null,"RemoteHost":null,"Service":null}"#
        );
        for p in [None, Some(p(Some(1))), Some(p(None))] {
            let v: Value = serde_json::from_str(&written(&e, p.as_ref())).unwrap();
            assert_eq!(v, entry_value(&e, p.as_ref()));
        }
    }

    /// What one end writes, the other reads back as the same row and process, whatever
    /// the strings hold and however late the times are; only upstream's placeholders (a
    /// Logout of 0, an empty host or service) read back as absent.
    #[test]
    fn a_written_row_reads_back_as_the_same_row() {
        let hostile = [
            "",
            "plain",
            "\0",
            "nul\0inside",
            "\u{1}\u{7}\u{8}\t\n\r\u{1b}[31m\u{7f}\u{9b}",
            "\u{202e}bidi\u{202d}\u{2066}\u{2069}\u{200f}",
            "\"quoted\" 'single' `back`",
            "back\\slash\\\\ \\u0000 \\n",
            "e\u{301} 日本 \u{10ffff} \u{feff}",
            "</script>{}[],:",
        ];
        // 2038-01-19 03:14:08, 2106-02-07 06:28:16, and the ends of the range.
        let times = [
            2_147_483_648_000_000,
            4_294_967_296_000_000,
            4_354_819_200_123_456,
            i64::MAX,
            i64::MIN,
            -1,
            1,
        ];
        let mut n = 0;
        for (i, s) in hostile.iter().enumerate() {
            for (j, &t) in times.iter().enumerate() {
                let some = |s: &str| Some(s.to_string());
                let e = Entry {
                    id: (i * times.len() + j) as i64 - 3,
                    kind: Kind::from_i64([0, 1, 2, 3, 4, -5][j % 6]),
                    user: s.to_string(),
                    login: t,
                    logout: [None, Some(t), Some(times[(j + 1) % times.len()])][i % 3],
                    tty: [None, some(s), some("pts/0")][j % 3].clone(),
                    host: (!s.is_empty()).then(|| s.to_string()),
                    service: [None, some(s)][(i + j) % 2]
                        .clone()
                        .filter(|s| !s.is_empty()),
                };
                let processes = [
                    None,
                    Some(Process {
                        pid: i32::MAX,
                        start_time: Some(t),
                    }),
                    Some(Process {
                        pid: 1,
                        start_time: None,
                    }),
                ];
                for p in processes {
                    let mut out = Vec::new();
                    write_entry(&mut out, &e, p.as_ref());
                    let row: WtmpdbEntry<'_> = serde_json::from_slice(&out).unwrap();
                    assert_eq!(row.into_entry(), (e.clone(), p), "{}", written(&e, None));
                    let by_value = read_entry(&entry_value(&e, p.as_ref())).unwrap();
                    assert_eq!(by_value, (e.clone(), p));
                    n += 1;
                }
            }
        }
        assert_eq!(n, hostile.len() * times.len() * 3);
        // The placeholders: upstream's way to say "absent", read as absent.
        let e = Entry {
            id: 1,
            kind: Kind::UserProcess,
            user: "u".into(),
            login: 5,
            logout: Some(0),
            tty: Some(String::new()),
            host: Some(String::new()),
            service: Some(String::new()),
        };
        let mut out = Vec::new();
        write_entry(&mut out, &e, None);
        let (back, _) = serde_json::from_slice::<WtmpdbEntry<'_>>(&out)
            .unwrap()
            .into_entry();
        assert_eq!(
            (back.logout, back.tty, back.host, back.service),
            (None, Some(String::new()), None, None)
        );
    }

    /// The stream's typed rows, the one reading of a `WtmpdbEntry`: escapes, nulls,
    /// upstream's 0 and "", a PID out of range, fields of later versions; and a row given as
    /// a value reads the same.
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
        let reply: RowsReply<'_> = serde_json::from_slice(&msg).unwrap();
        assert!(reply.continues);
        let typed: Vec<_> = reply
            .parameters
            .unwrap()
            .data
            .unwrap()
            .into_iter()
            .map(WtmpdbEntry::into_entry)
            .collect();
        assert_eq!(typed, expected);
        let by_value: Vec<_> = rows
            .as_array()
            .unwrap()
            .iter()
            .map(|r| read_entry(r).unwrap())
            .collect();
        assert_eq!(by_value, expected);
        let bad = br#"{"parameters": {"Data": [{"ID": "1", "Type": 3, "User": "a"}]}}"#;
        assert!(serde_json::from_slice::<RowsReply<'_>>(bad).is_err());
        assert!(read_entry(&json!({"ID": "1", "Type": 3, "User": "a"})).is_err());
    }

    #[test]
    fn names_are_qualified_by_their_interface() {
        for e in [NO_ENTRY_FOUND, INTERNAL_ERROR] {
            assert_eq!(e.rsplit_once('.').unwrap().0, INTERFACE);
        }
        for e in [
            service::INVALID_PARAMETER,
            service::METHOD_NOT_FOUND,
            service::INTERFACE_NOT_FOUND,
            service::PERMISSION_DENIED,
            service::METHOD_NOT_IMPLEMENTED,
        ] {
            assert_eq!(e.rsplit_once('.').unwrap().0, service::INTERFACE);
        }
        for m in method::ALL {
            assert!(!m.contains('.') && m.starts_with(|c: char| c.is_ascii_uppercase()));
        }
    }
}
