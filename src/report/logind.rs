//! The sessions systemd-logind knows, read where sd-login reads them: one file per session
//! in `/run/systemd/sessions/`, of `KEY=VALUE` lines that logind writes atomically (a
//! temporary file renamed into place). This is what `sd_get_sessions` and
//! `sd_session_get_*` return, without linking libsystemd; the D-Bus API is not used.

use std::path::Path;

use crate::time::Usec;

/// Where logind keeps its session files.
pub const SESSIONS_DIR: &str = "/run/systemd/sessions";

/// One session of logind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogindSession {
    /// The session ID (the file's name).
    pub id: String,
    pub user: String,
    pub uid: Option<u32>,
    pub tty: String,
    pub remote_host: Option<String>,
    pub service: Option<String>,
    /// The session's leader process.
    pub leader: Option<i32>,
    /// When it began (`REALTIME`, microseconds since the epoch).
    pub realtime: Option<Usec>,
    pub class: String,
    pub state: String,
}

/// What logind said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Logind {
    /// No session directory: logind does not run here (or not at this path).
    Unavailable,
    /// Its sessions of class `user` that are not closing.
    Sessions(Vec<LogindSession>),
}

/// One session file's contents (`KEY=VALUE` lines) as a session named `id`.
pub fn parse(id: &str, text: &str) -> LogindSession {
    let mut s = LogindSession {
        id: id.to_string(),
        ..LogindSession::default()
    };
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        match k {
            "USER" => s.user = v.to_string(),
            "UID" => s.uid = v.parse().ok(),
            "TTY" => s.tty = v.strip_prefix("/dev/").unwrap_or(v).to_string(),
            "REMOTE_HOST" => s.remote_host = Some(v.to_string()),
            "SERVICE" => s.service = Some(v.to_string()),
            "LEADER" => s.leader = v.parse().ok(),
            "REALTIME" => s.realtime = v.parse().ok(),
            "CLASS" => s.class = v.to_string(),
            "STATE" => s.state = v.to_string(),
            _ => {}
        }
    }
    s
}

/// Whether systemd runs this system, as `sd_booted()` decides it: logind's files in
/// [`SESSIONS_DIR`] mean nothing otherwise (a container image may ship the directory empty).
pub fn systemd_booted() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// The sessions in `dir` (normally [`SESSIONS_DIR`]) of class `user` that are not closing,
/// oldest first. Files that cannot be read (removed meanwhile) are skipped; so are
/// logind's temporary files (names starting with `.`).
pub fn sessions(dir: &Path) -> Logind {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Logind::Unavailable;
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(id) = name.to_str() else { continue };
        if id.starts_with('.') || !e.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        let s = parse(id, &text);
        if s.class == "user" && s.state != "closing" && !s.user.is_empty() {
            out.push(s);
        }
    }
    out.sort_by(|a, b| (a.realtime, &a.id).cmp(&(b.realtime, &b.id)));
    Logind::Sessions(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_files_are_read_as_sd_login_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("3"),
            "# This is private data. Do not parse.\nUID=1000\nUSER=alice\nACTIVE=1\nSTATE=active\n\
             REMOTE=1\nTYPE=tty\nCLASS=user\nTTY=/dev/pts/0\nREMOTE_HOST=192.0.2.7\nSERVICE=sshd\n\
             LEADER=4242\nREALTIME=1700000000123456\nMONOTONIC=1\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("c1"),
            "USER=gdm\nCLASS=greeter\nSTATE=online\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("4"),
            "USER=bob\nCLASS=user\nSTATE=closing\n",
        )
        .unwrap();
        std::fs::write(dir.path().join(".#5abc"), "USER=eve\nCLASS=user\n").unwrap();
        let Logind::Sessions(s) = sessions(dir.path()) else {
            panic!("unavailable")
        };
        assert_eq!(s.len(), 1, "{s:?}");
        let a = &s[0];
        assert_eq!(
            (a.id.as_str(), a.user.as_str(), a.tty.as_str()),
            ("3", "alice", "pts/0")
        );
        assert_eq!(
            (a.leader, a.realtime, a.uid),
            (Some(4242), Some(1_700_000_000_123_456), Some(1000))
        );
        assert_eq!(a.remote_host.as_deref(), Some("192.0.2.7"));
        assert_eq!(sessions(&dir.path().join("none")), Logind::Unavailable);
    }
}
