//! open_session and close_session.
//!
//! Each call opens its own connection, writes one row or one logout and closes it again: no
//! state outlives a call except the row ID (and the legacy mirror's PID) that travel in the
//! PAM handle.
//!
//! With a legacy mirror (`utmp=`), the login is mirrored only after the row is written: when
//! the database fails, a `required` module fails the session, the application never calls
//! close_session, and a mirrored login would stay in `who` for good. The logout is mirrored
//! whatever the database did, since the session has ended either way and the mirror only
//! replaces its own utmp entry. This is the rule of `wtmpdb::session` too.

use std::cell::Cell;
use std::ffi::c_int;
use std::time::{Duration, Instant};

use libc::{LOG_DEBUG, LOG_ERR, LOG_NOTICE};
use wtmpdb::escape::for_terminal;
use wtmpdb::storage::{Database, Kind, Migrate, NewEntry, OpenOptions};
use wtmpdb::time::Usec;

use crate::ffi::{
    PAM_IGNORE, PAM_RHOST, PAM_SERVICE, PAM_SILENT, PAM_SUCCESS, PAM_SYSTEM_ERR, PAM_TTY, PAM_USER,
    PAM_USER_UNKNOWN, PAM_XDISPLAY, Pam,
};
use crate::items;
use crate::mirror::{self, Event};
use crate::options::Options;

/// How long a login may wait for another process's lock on the database. Upstream waits 5 s;
/// a login stuck behind a long report or a locked file should not hang that long, and a row
/// commit takes milliseconds, so 1 s only fails when the lock is really held.
pub const LOCK_WAIT: Duration = Duration::from_secs(1);

/// Rows up to which a login may create our indexes on an upstream database (a few tens of
/// milliseconds); above it, a login leaves that to the `wtmpdb` command.
pub const MIGRATE_MAX_ROWS: i64 = 20_000;

/// Returned when the database cannot be written. Upstream returns PAM_SYSTEM_ERR (its man page
/// says PAM_SERVICE_ERR); we keep the code upstream really returns, so stacks written for it
/// (e.g. `[system_err=ignore]`) behave the same.
pub const DB_ERROR: c_int = PAM_SYSTEM_ERR;

/// The items of one call, in their stored form.
struct Items {
    user: String,
    tty: String,
    host: String,
    service: String,
}

impl Items {
    fn mirror(&self) -> mirror::Items<'_> {
        mirror::Items {
            user: &self.user,
            tty: &self.tty,
            host: &self.host,
            service: &self.service,
        }
    }
}

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

fn items(pam: &Pam, opts: &Options, raw_user: &[u8]) -> Items {
    let pam_tty = pam.item(PAM_TTY);
    let tty = items::tty(pam_tty.as_deref(), pam.getenv(c"XDG_VTNR").as_deref());
    let (host, source) = match pam.item(PAM_RHOST) {
        Some(h) => (h, "PAM_RHOST"),
        None => match pam.item(PAM_XDISPLAY) {
            Some(d) => (d, "PAM_XDISPLAY"),
            None => (Vec::new(), "none"),
        },
    };
    let it = Items {
        user: items::stored(raw_user),
        tty: items::stored(&tty),
        host: items::stored(&host),
        service: items::stored(&pam.item(PAM_SERVICE).unwrap_or_default()),
    };
    if opts.debug {
        pam.syslog(LOG_DEBUG, &format!("user={}", shown(&it.user)));
        pam.syslog(LOG_DEBUG, &format!("tty={}", shown(&it.tty)));
        pam.syslog(LOG_DEBUG, &format!("rhost({source})={}", shown(&it.host)));
        pam.syslog(LOG_DEBUG, &format!("service={}", shown(&it.service)));
    }
    it
}

/// Returns the option set and whether the service is skipped (logged in debug mode).
fn prepare(pam: &Pam, flags: c_int, args: &[Vec<u8>]) -> (Options, bool) {
    let opts = Options::parse(args, flags & PAM_SILENT != 0);
    log_unknown(pam, &opts);
    let service = pam.item(PAM_SERVICE).unwrap_or_default();
    let skip = opts.skips(&service);
    if skip && opts.debug {
        pam.syslog(
            LOG_DEBUG,
            &format!("skip_if contains '{}'", shown(&items::stored(&service))),
        );
    }
    (opts, skip)
}

/// The rollback journal mode of the module's connection. Upstream (and SQLite's default) is
/// `delete`: the journal is created, fsynced with its directory and unlinked on every commit,
/// 4 fdatasyncs per row write. `persist` keeps the journal file and invalidates it by zeroing
/// its header, which saves the directory sync and the unlink and so most of the cost of a
/// write. Durability is unchanged (synchronous stays FULL: a commit is on disk when the call
/// returns, and a crash mid-commit is rolled back from the journal); the file stays a rollback
/// journal database that upstream and readers without write access use as before. The cost is
/// a `wtmp.db-journal` file (a few KiB) that stays next to the database. A database already in
/// WAL mode is left alone.
pub const JOURNAL_MODE: &str = "persist";

thread_local! {
    /// When the running module call must stop waiting for locks. Per thread, and set only for
    /// the duration of one call, so no state crosses calls or handles.
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Sets the deadline of this call; cleared when dropped.
struct Deadline(Instant);

impl Deadline {
    fn start() -> Deadline {
        let at = Instant::now() + LOCK_WAIT;
        DEADLINE.with(|d| d.set(Some(at)));
        Deadline(at)
    }

    /// Waits for this call's turn among the module calls of this process (see `queue`).
    fn turn(&self, opts: &Options) -> Result<crate::queue::Turn, wtmpdb::storage::Error> {
        crate::queue::wait(opts.database(), self.0)
            .ok_or_else(|| wtmpdb::storage::Error::QueueTimeout { waited: LOCK_WAIT })
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        DEADLINE.with(|d| d.set(None));
    }
}

/// SQLite busy handler: retry until the call's deadline with short jittered sleeps. SQLite's
/// own handler backs off to 100 ms sleeps, so with dozens of logins at once the ones that
/// happened to back off longest kept losing to newcomers and ran into the timeout; polling
/// every 0.1-2.4 ms lets a waiter take the lock soon after it is released.
fn busy(retries: i32) -> bool {
    let Some(deadline) = DEADLINE.with(Cell::get) else {
        return false;
    };
    let now = Instant::now();
    if now >= deadline {
        return false;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    // 0.1 ms doubling to 1.6 ms, plus up to half of that again as jitter so waiters do not
    // wake in step. Shorter sleeps made dozens of waiting processes burn the CPU that the lock
    // holder needed to finish.
    let base = 100u64 << retries.clamp(0, 4);
    let pause = Duration::from_micros(base + u64::from(nanos) % (base / 2 + 1));
    std::thread::sleep(pause.min(deadline - now));
    true
}

fn open_db(opts: &Options) -> Result<Database, wtmpdb::storage::Error> {
    let options = OpenOptions::read_write()
        .busy_timeout(Duration::ZERO)
        .migrate(Migrate::UpToRows(MIGRATE_MAX_ROWS));
    // The open's own statements fail at once on a lock and are retried here with the same
    // short polling as `busy`: SQLite's default handler would sleep up to 100 ms between tries
    // and lose the lock to the writers that keep polling.
    let mut tries = 0;
    let db = loop {
        match Database::open(opts.database(), &options) {
            Err(e) if e.is_locked() && busy(tries) => tries += 1,
            other => break other?,
        }
    };
    db.set_busy_handler(busy)?;
    if db.journal_mode()? == "delete" {
        // Best effort: the default mode works too, only slower.
        let _ = db.set_journal_mode(JOURNAL_MODE);
    }
    Ok(db)
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
                &format!(
                    "User '{}' not found in passwd",
                    shown(&items::stored(&raw_user))
                ),
            );
        }
        return PAM_USER_UNKNOWN;
    }
    let it = items(pam, &opts, &raw_user);
    let login = wtmpdb::time::now();
    let entry = NewEntry {
        kind: Kind::UserProcess,
        user: &it.user,
        login,
        logout: None,
        tty: Some(&it.tty),
        host: Some(&it.host),
        service: Some(&it.service),
    };
    let deadline = Deadline::start();
    let id = match deadline
        .turn(&opts)
        .and_then(|_turn| open_db(&opts).and_then(|db| db.login(&entry)))
    {
        Ok(id) => id,
        Err(e) => {
            pam.syslog(LOG_ERR, &e.to_string());
            return DB_ERROR;
        }
    };
    if opts.debug {
        pam.syslog(LOG_DEBUG, &format!("id={id}"));
    }
    if let Err(rc) = pam.set_id(opts.database(), id) {
        // The row is written; close_session will find it by user, tty and service.
        pam.syslog(
            LOG_ERR,
            &format!("Cannot keep ID {id} in the PAM handle (error {rc})"),
        );
    }
    mirror::write(pam, &opts, &it.mirror(), Event::Login, login, deadline.0);
    PAM_SUCCESS
}

pub fn close_session(pam: &Pam, flags: c_int, args: &[Vec<u8>]) -> c_int {
    let (opts, skip) = prepare(pam, flags, args);
    if skip {
        return PAM_IGNORE;
    }
    let deadline = Deadline::start();
    let now = wtmpdb::time::now();
    let raw_user = pam.item(PAM_USER).unwrap_or_default();
    let it = items(pam, &opts, &raw_user);
    let rc = close_row(pam, &opts, &deadline, &it, now);
    mirror::write(pam, &opts, &it.mirror(), Event::Logout, now, deadline.0);
    rc
}

/// Sets the logout time of the session's row; returns the PAM code of the call.
fn close_row(pam: &Pam, opts: &Options, deadline: &Deadline, it: &Items, now: Usec) -> c_int {
    let _turn = match deadline.turn(opts) {
        Ok(t) => t,
        Err(e) => {
            pam.syslog(LOG_ERR, &e.to_string());
            return DB_ERROR;
        }
    };
    let db = match open_db(opts) {
        Ok(d) => d,
        Err(e) => {
            pam.syslog(LOG_ERR, &e.to_string());
            return DB_ERROR;
        }
    };
    if let Some(id) = pam.id(opts.database()) {
        if opts.debug {
            pam.syslog(LOG_DEBUG, &format!("id={id}"));
        }
        return match db.logout(id, now) {
            Ok(()) => PAM_SUCCESS,
            Err(e) => {
                pam.syslog(LOG_ERR, &format!("Closing session {id}: {e}"));
                DB_ERROR
            }
        };
    }
    // No ID in this handle: the session was opened by another process or handle (a daemon
    // that forks, or a PAM stack that ends the handle between open and close).
    if it.user.is_empty() {
        pam.syslog(
            LOG_NOTICE,
            "No session ID in the PAM handle and no user: nothing closed",
        );
        return PAM_IGNORE;
    }
    let what = format!(
        "user '{}', tty '{}', service '{}'",
        shown(&it.user),
        shown(&it.tty),
        shown(&it.service)
    );
    let found = match db.open_sessions(&it.user, &it.tty, &it.service, 2) {
        Ok(f) => f,
        Err(e) => {
            pam.syslog(LOG_ERR, &e.to_string());
            return DB_ERROR;
        }
    };
    match found.as_slice() {
        [id] => match db.logout(*id, now) {
            Ok(()) => {
                pam.syslog(
                    LOG_NOTICE,
                    &format!("No session ID in the PAM handle; closed open session {id} of {what}"),
                );
                PAM_SUCCESS
            }
            Err(e) => {
                pam.syslog(LOG_ERR, &format!("Closing session {id}: {e}"));
                DB_ERROR
            }
        },
        [] => {
            pam.syslog(
                LOG_NOTICE,
                &format!("No session ID in the PAM handle and no open session of {what}"),
            );
            PAM_IGNORE
        }
        _ => {
            pam.syslog(
                LOG_NOTICE,
                &format!(
                    "No session ID in the PAM handle and several open sessions of {what}: none closed"
                ),
            );
            PAM_IGNORE
        }
    }
}
