//! open_session and close_session: PAM's part of recording a session. The rule itself (what
//! is stored, the order of row and mirror, the bounded waiting) is the core's
//! `wtmpdb::session::Writer`; this module reads the PAM items, keeps the row ID and the
//! legacy PID in the PAM handle, logs through pam_syslog and picks the return codes.
//!
//! Each call opens its own connection, writes one row or one logout and closes it again: no
//! state outlives a call except the row ID (and the legacy mirror's PID) that travel in the
//! PAM handle.

use std::ffi::c_int;

use libc::{LOG_DEBUG, LOG_ERR, LOG_NOTICE, LOG_WARNING};
use wtmpdb::escape::for_terminal;
use wtmpdb::legacy::LegacySession;
use wtmpdb::session::{
    CloseTarget, Identity, Mirrored, RowClosed, SessionId, SessionItems, Via, stored, this_process,
};
use wtmpdb::target::Target;
use wtmpdb::writer::Writer;

use crate::ffi::{
    PAM_IGNORE, PAM_RHOST, PAM_SERVICE, PAM_SILENT, PAM_SUCCESS, PAM_SYSTEM_ERR, PAM_TTY, PAM_USER,
    PAM_USER_UNKNOWN, PAM_XDISPLAY, Pam,
};
use crate::items;
use crate::options::Options;

/// Returned when the database cannot be written. Upstream returns PAM_SYSTEM_ERR (its man page
/// says PAM_SERVICE_ERR); we keep the code upstream really returns, so stacks written for it
/// (e.g. `[system_err=ignore]`) behave the same.
pub const DB_ERROR: c_int = PAM_SYSTEM_ERR;

fn shown(s: &str) -> std::borrow::Cow<'_, str> {
    for_terminal(s)
}

fn log_unknown(pam: &Pam, opts: &Options) {
    for o in &opts.unknown {
        pam.syslog(LOG_ERR, &format!("Unknown option: {}", shown(o)));
    }
    for msg in &opts.invalid {
        pam.syslog(LOG_ERR, &shown(msg));
    }
}

/// The session's items from the PAM handle, in their stored form.
fn items(pam: &Pam, opts: &Options, raw_user: &[u8]) -> SessionItems {
    let pam_tty = pam.item(PAM_TTY);
    let tty = items::tty(pam_tty.as_deref(), pam.getenv(c"XDG_VTNR").as_deref());
    let (host, source) = items::host(pam.item(PAM_RHOST), pam.item(PAM_XDISPLAY));
    let service = pam.item(PAM_SERVICE).unwrap_or_default();
    let it = SessionItems::from_bytes(raw_user, Some(&tty), Some(&host), Some(&service));
    if opts.debug {
        let host = it.host.as_deref().unwrap_or_default();
        let service = it.service.as_deref().unwrap_or_default();
        pam.syslog(LOG_DEBUG, &format!("user={}", shown(&it.user)));
        pam.syslog(LOG_DEBUG, &format!("tty={}", shown(&it.tty)));
        pam.syslog(LOG_DEBUG, &format!("rhost({source})={}", shown(host)));
        pam.syslog(LOG_DEBUG, &format!("service={}", shown(service)));
    }
    it
}

/// Returns the option set and whether the service is skipped (logged in debug mode).
pub(crate) fn prepare(pam: &Pam, flags: c_int, args: &[Vec<u8>]) -> (Options, bool) {
    let opts = Options::parse(args, flags & PAM_SILENT != 0);
    log_unknown(pam, &opts);
    // Debug builds only (see Options::test_panic, Options::test_cancel).
    assert!(!opts.test_panic, "test_panic given");
    if opts.test_cancel {
        crate::ffi::cancel_this_thread();
    }
    let service = pam.item(PAM_SERVICE).unwrap_or_default();
    let skip = opts.skips(&service);
    if skip && opts.debug {
        pam.syslog(
            LOG_DEBUG,
            &format!("skip_if contains '{}'", shown(&stored(&service))),
        );
    }
    (opts, skip)
}

pub(crate) fn writer(opts: &Options) -> Writer {
    Writer::new(opts.target())
        .mirror(opts.utmp, opts.mirror_paths())
        .daemon_timeout(DAEMON_TIMEOUT)
        .events(opts.events.clone())
}

/// The bound of one exchange with the daemon (its own writes wait at most
/// `wtmpdb::session::LOCK_WAIT`, then spool).
const DAEMON_TIMEOUT: std::time::Duration = wtmpdb::writer::DAEMON_TIMEOUT;

/// The name of a line's target in the PAM handle's data: one per target, so that two lines
/// with different `database=` each close their own session.
fn target_key(target: &Target) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    let mut key = Vec::new();
    match target {
        Target::File(p) => key.extend_from_slice(p.as_os_str().as_bytes()),
        Target::Daemon { socket } => {
            key.extend_from_slice(b"varlink:");
            key.extend_from_slice(socket.as_os_str().as_bytes());
        }
        Target::Auto { socket, file } => {
            key.extend_from_slice(b"auto:");
            key.extend_from_slice(socket.as_os_str().as_bytes());
            key.push(b':');
            key.extend_from_slice(file.as_os_str().as_bytes());
        }
    }
    key
}

/// What open_session keeps in the PAM handle for close_session: the session's ID (the only
/// place besides the C library where it is one integer), where it was recorded, and its
/// identity, so that the close names the same session in the same store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kept {
    pub id: SessionId,
    pub via: Via,
    pub identity: Identity,
}

impl Kept {
    /// `v1 ID VIA LOGIN USER_LEN\n` then the user's and the tty's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let via = match self.via {
            Via::Daemon => 'd',
            Via::File => 'f',
        };
        let mut b = format!(
            "v1 {} {via} {} {}\n",
            self.id.to_int(),
            self.identity.login,
            self.identity.user.len()
        )
        .into_bytes();
        b.extend_from_slice(self.identity.user.as_bytes());
        b.extend_from_slice(self.identity.tty.as_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Option<Kept> {
        let nl = b.iter().position(|&c| c == b'\n')?;
        let head = std::str::from_utf8(&b[..nl]).ok()?;
        let rest = std::str::from_utf8(&b[nl + 1..]).ok()?;
        let mut f = head.split(' ');
        if f.next()? != "v1" {
            return None;
        }
        let id = SessionId::from_int(f.next()?.parse().ok()?);
        let via = match f.next()? {
            "d" => Via::Daemon,
            "f" => Via::File,
            _ => return None,
        };
        let login = f.next()?.parse().ok()?;
        let user_len: usize = f.next()?.parse().ok()?;
        if f.next().is_some() || !rest.is_char_boundary(user_len.min(rest.len() + 1)) {
            return None;
        }
        let (user, tty) = (rest.get(..user_len)?, rest.get(user_len..)?);
        Some(Kept {
            id,
            via,
            identity: Identity {
                user: user.to_owned(),
                tty: tty.to_owned(),
                login,
            },
        })
    }
}

/// Logs what became of the legacy records; never changes the return code.
fn log_mirror(pam: &Pam, opts: &Options, what: &str, legacy: &LegacySession, m: &Mirrored) {
    let line = shown(&legacy.line);
    let pid = legacy.pid;
    match m {
        Mirrored::Off => {}
        Mirrored::Done { mirror } => {
            if opts.debug {
                pam.syslog(
                    LOG_DEBUG,
                    &format!("utmp={mirror} {what} line={line} pid={pid}"),
                );
            }
        }
        Mirrored::Failed { mirror, error } => pam.syslog(
            LOG_WARNING,
            &format!(
                "utmp={mirror}: {what} on line '{line}' not mirrored: {}",
                shown(&error.to_string())
            ),
        ),
        Mirrored::Unavailable(e) => {
            pam.syslog(LOG_ERR, &format!("{e}; no utmp/wtmp records are written"))
        }
    }
}

pub fn open_session(pam: &Pam, flags: c_int, args: &[Vec<u8>]) -> c_int {
    let (opts, skip) = prepare(pam, flags, args);
    if skip {
        return PAM_IGNORE;
    }
    let raw_user = pam.item(PAM_USER).unwrap_or_default();
    if raw_user.is_empty() {
        if !opts.silent {
            pam.syslog(LOG_NOTICE, "User unknown");
        }
        return PAM_USER_UNKNOWN;
    }
    if !pam.user_exists(&raw_user) {
        if opts.debug {
            pam.syslog(
                LOG_DEBUG,
                &format!("User '{}' not found in passwd", shown(&stored(&raw_user))),
            );
        }
        return PAM_USER_UNKNOWN;
    }
    let it = items(pam, &opts, &raw_user);
    // `ut_pid` is the process that calls pam_open_session; it is kept in the PAM handle, so
    // a close in a forked child of that process names the same utmp entry.
    let pid = this_process();
    let target = opts.target();
    let logged = match writer(&opts).open(&it, pid, wtmpdb::time::now()) {
        Ok(l) => l,
        Err(e) => {
            pam.syslog(LOG_ERR, &shown(&e.to_string()));
            return DB_ERROR;
        }
    };
    let id = logged.session.id;
    let via = match logged.via {
        Via::Daemon => " (wtmpdbd)",
        Via::File => "",
    };
    log_unwritable(pam, &opts, &logged.unwritable);
    if let (Some(path), Some(damaged)) = (&logged.spooled, &logged.unwritable.damaged) {
        pam.syslog(LOG_ERR, &damaged_line(damaged, "login", path));
    } else if let Some(path) = &logged.spooled {
        let why = match logged.shut_out {
            Some(lock) => format!(
                "; process {} holds a lock on byte {} of its -shm file that keeps every writer \
                 out (wtmpdb secure hands the database to wtmpdbd)",
                lock.pid, lock.byte
            ),
            None => String::new(),
        };
        pam.syslog(
            LOG_WARNING,
            &format!(
                "Database busy: login kept in the spool ({}), to be merged by the next write{why}",
                shown(&path.display().to_string())
            ),
        );
    } else if opts.debug {
        pam.syslog(LOG_DEBUG, &format!("id={id}{via}"));
    }
    log_merge(pam, &logged.merged);
    let kept = Kept {
        id,
        via: logged.via,
        identity: Identity {
            user: it.user.clone(),
            tty: it.tty.clone(),
            login: logged.session.login,
        },
    };
    if let Err(rc) = pam.set_session(&target_key(&target), kept.encode()) {
        // The row is written; close_session will find it by user, tty and service.
        pam.syslog(
            LOG_ERR,
            &format!("Cannot keep ID {id} in the PAM handle (error {rc})"),
        );
    }
    log_mirror(
        pam,
        &opts,
        "login",
        &logged.session.legacy,
        &logged.mirrored,
    );
    if opts.showfailed {
        show_failed(pam, &opts, &raw_user, logged.session.login);
    }
    if matches!(
        logged.mirrored,
        Mirrored::Done { .. } | Mirrored::Failed { .. }
    ) {
        // Even after a failure: part of the records (wtmp, say) may have been written.
        if let Err(rc) = pam.set_utmp_pid(pid) {
            pam.syslog(
                LOG_WARNING,
                &format!("Cannot keep the utmp PID in the PAM handle (error {rc})"),
            );
        }
    }
    PAM_SUCCESS
}

/// `showfailed`: tells the user, through the conversation, of the failed attempts on the
/// name since its last successful login reported, with the newest's time and origin, as
/// pam_lastlog did; never changes the return code. With `silent`, nothing is said (the
/// login still becomes the last successful one).
fn show_failed(pam: &Pam, opts: &Options, raw_user: &[u8], at: wtmpdb::time::Usec) {
    let user = stored(raw_user);
    let notice = match writer(opts).failed_notice(&user, at, &Default::default()) {
        Ok(n) => n,
        Err(e) => {
            pam.syslog(
                LOG_ERR,
                &format!("Failed attempts not read: {}", shown(&e.to_string())),
            );
            return;
        }
    };
    if opts.silent {
        return;
    }
    if let Some(text) = notice.text(wtmpdb::time::format_full) {
        // Names and hosts are stored as typed: each line made safe for a terminal.
        let text: Vec<String> = text.lines().map(|l| for_terminal(l).into_owned()).collect();
        let rc = pam.info(&text.join("\n"));
        if rc != PAM_SUCCESS && opts.debug {
            pam.syslog(
                LOG_DEBUG,
                &format!("conversation refused the notice ({rc})"),
            );
        }
    }
}

pub fn close_session(pam: &Pam, flags: c_int, args: &[Vec<u8>]) -> c_int {
    let (opts, skip) = prepare(pam, flags, args);
    if skip {
        return PAM_IGNORE;
    }
    let now = wtmpdb::time::now();
    let raw_user = pam.item(PAM_USER).unwrap_or_default();
    let it = items(pam, &opts, &raw_user);
    let kept = pam
        .session(&target_key(&opts.target()))
        .and_then(|k| Kept::decode(&k));
    let (target, via) = match &kept {
        Some(k) => (CloseTarget::Id(k.id, Some(k.identity.clone())), Some(k.via)),
        // No session in this handle: it was opened by another process or handle (a daemon
        // that forks, or a PAM stack that ends the handle between open and close).
        None => (CloseTarget::Lookup, None),
    };
    // The login's PID when this handle (or its fork) opened the session; otherwise ours: the
    // utmp entry is then not ours and stays (the mirrors only replace an entry with the same
    // line and PID), while wtmp still gets the logout record.
    let pid = pam.utmp_pid().unwrap_or_else(this_process);
    let closed = writer(&opts).close(target.clone(), via, &it, pid, now);
    log_unwritable(pam, &opts, &closed.unwritable);
    if let Some(id) = id_to_log(opts.debug, &target, &closed.row) {
        pam.syslog(LOG_DEBUG, &format!("id={id}"));
    }
    if let Some(m) = &closed.mismatch {
        pam.syslog(LOG_WARNING, &format!("Closing session: {m}"));
    }
    log_merge(pam, &closed.merged);
    let rc = row_code(
        pam,
        &it,
        kept.as_ref().map(|k| k.id),
        closed.row,
        closed.unwritable.damaged.as_deref(),
    );
    log_mirror(pam, &opts, "logout", &closed.legacy, &closed.mirrored);
    rc
}

/// Logs a log beside the database that was another database's and was set aside (see
/// `wtmpdb::session::Unwritable`).
fn log_unwritable(pam: &Pam, opts: &Options, u: &wtmpdb::session::Unwritable) {
    if let Some(line) = u.reserve_line() {
        pam.syslog(LOG_WARNING, &line);
    }
    if let Some(kept) = &u.log_set_aside {
        let db = opts.target();
        let db = db
            .file()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        pam.syslog(
            LOG_ERR,
            &format!(
                "{}: its -wal log was another database's (the file was replaced while a reader \
                 held the old one's log?), and every write failed on it: set aside as {} \
                 (the replaced file's last commits: copied next to that file as its -wal, \
                 they give them back); written again",
                shown(&db),
                shown(&kept.display().to_string())
            ),
        );
    }
}

/// The line of a record spooled because the database could not take it (see
/// `wtmpdb::session::Unwritable::damaged`): what failed, where the record is, what to do.
fn damaged_line(damaged: &str, what: &str, path: &std::path::Path) -> String {
    format!(
        "{}; {what} kept in the spool ({}), as every record is until the database can be \
         written: check the file (sqlite3 FILE 'PRAGMA integrity_check'); if it passes with its \
         -wal moved away, that log is another database's: keep it moved away, never delete it; \
         otherwise move the file aside or put a sound copy in its place; the next write then \
         merges the spool",
        shown(damaged),
        shown(&path.display().to_string())
    )
}

/// Logs what merging the spool did, when it did something worth a line.
fn log_merge(
    pam: &Pam,
    merged: &Option<Result<wtmpdb::session::spool::Merged, wtmpdb::session::spool::MergeError>>,
) {
    match merged {
        None => {}
        Some(Ok(m)) => {
            if let Some(line) = m.summary() {
                pam.syslog(LOG_NOTICE, &line);
            }
            if m.bad > 0 {
                pam.syslog(
                    LOG_ERR,
                    &format!("{} spool files are not records; set aside as .bad-*", m.bad),
                );
            }
        }
        Some(Err(e)) => pam.syslog(
            LOG_WARNING,
            &format!("Spool not merged: {}", shown(&e.to_string())),
        ),
    }
}

/// The row ID a logout logs in debug mode: that of the handle, once the database is open
/// (a logout whose turn or open failed logs only the failure, as it always has).
fn id_to_log(
    debug: bool,
    target: &CloseTarget,
    row: &Result<RowClosed, wtmpdb::session::CloseRowError>,
) -> Option<i64> {
    let CloseTarget::Id(id, _) = target else {
        return None;
    };
    let opened = match row {
        Ok(_) => true,
        // The failure names the row only when the logout itself failed.
        Err(e) => e.id.is_some(),
    };
    (debug && opened).then_some(id.to_int())
}

/// The PAM code and log line of a logout's row; `kept` is the session the handle kept, if
/// any (a lookup then means its row was not that session any more).
fn row_code(
    pam: &Pam,
    it: &SessionItems,
    kept: Option<SessionId>,
    row: Result<RowClosed, wtmpdb::session::CloseRowError>,
    damaged: Option<&str>,
) -> c_int {
    let why = match kept {
        None => "No session ID in the PAM handle".to_string(),
        Some(id) => format!("Session {id} is not in the database as it was logged in"),
    };
    let what = || {
        format!(
            "user '{}', tty '{}', service '{}'",
            shown(&it.user),
            shown(&it.tty),
            shown(it.service.as_deref().unwrap_or_default())
        )
    };
    match row {
        Ok(RowClosed::ById(_)) => PAM_SUCCESS,
        Ok(RowClosed::Spooled(path)) if damaged.is_some() => {
            let what = format!("logout of {}", what());
            let damaged = damaged.unwrap_or_default();
            pam.syslog(LOG_ERR, &damaged_line(damaged, &what, &path));
            PAM_SUCCESS
        }
        Ok(RowClosed::Spooled(path)) => {
            pam.syslog(
                LOG_WARNING,
                &format!(
                    "Database busy: logout of {} kept in the spool ({}), to be merged by the next write",
                    what(),
                    shown(&path.display().to_string())
                ),
            );
            PAM_SUCCESS
        }
        Ok(RowClosed::ByLookup(id)) => {
            pam.syslog(
                LOG_NOTICE,
                &format!("{why}; closed open session {id} of {}", what()),
            );
            PAM_SUCCESS
        }
        Ok(RowClosed::NoUser) => {
            pam.syslog(LOG_NOTICE, &format!("{why} and no user: nothing closed"));
            PAM_IGNORE
        }
        Ok(RowClosed::NotFound) => {
            pam.syslog(
                LOG_NOTICE,
                &format!("{why} and no open session of {}", what()),
            );
            PAM_IGNORE
        }
        Ok(RowClosed::Ambiguous) => {
            pam.syslog(
                LOG_NOTICE,
                &format!("{why} and several open sessions of {}: none closed", what()),
            );
            PAM_IGNORE
        }
        Err(e) => {
            pam.syslog(LOG_ERR, &e.to_string());
            DB_ERROR
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wtmpdb::session::{CloseRowError, Error};

    #[test]
    fn what_a_login_keeps_in_the_handle_reads_back() {
        for (id, via, user, tty) in [
            (SessionId::Row(7), Via::File, "alice", "pts/1"),
            (SessionId::from_int(1 << 62), Via::Daemon, "x\ny é", ""),
            (SessionId::Row(1), Via::File, "", "tty\n1"),
        ] {
            let k = Kept {
                id,
                via,
                identity: Identity {
                    user: user.into(),
                    tty: tty.into(),
                    login: -5,
                },
            };
            assert_eq!(Kept::decode(&k.encode()), Some(k));
        }
        for bad in [
            &b""[..],
            b"v2 1 f 1 0\n",
            b"v1 1 x 1 0\n",
            b"v1 1 f 1 9\nab",
        ] {
            assert_eq!(Kept::decode(bad), None);
        }
    }

    #[test]
    fn a_logout_logs_its_id_only_once_the_database_is_open() {
        let before_open = || CloseRowError {
            id: None,
            error: Error::QueueTimeout { waited_ms: 1000 },
        };
        let logout_failed = || CloseRowError {
            id: Some(7),
            error: Error::QueueTimeout { waited_ms: 1000 },
        };
        let by_id = &CloseTarget::Id(SessionId::Row(7), None);
        assert_eq!(id_to_log(true, by_id, &Ok(RowClosed::ById(7))), Some(7));
        assert_eq!(id_to_log(true, by_id, &Err(logout_failed())), Some(7));
        // Regression: the turn or the open failed, so the old module never reached the line.
        assert_eq!(id_to_log(true, by_id, &Err(before_open())), None);
        assert_eq!(id_to_log(false, by_id, &Ok(RowClosed::ById(7))), None);
        let lookup = &CloseTarget::Lookup;
        assert_eq!(id_to_log(true, lookup, &Ok(RowClosed::ByLookup(7))), None);
        assert_eq!(id_to_log(true, lookup, &Err(logout_failed())), None);
    }
}
