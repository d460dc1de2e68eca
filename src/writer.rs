//! The one write path. Every record a front end writes (the PAM module's sessions, the C
//! library's logins, logouts and boots, the command's boot and shutdown) goes through
//! [`Writer`], to the store its [`Target`] names, by one set of rules:
//!
//! * **where**: [`Target::connect`] at each call (nothing kept in the process); a logout goes
//!   where its login went ([`Via`]), and to the file when the daemon has gone away since and
//!   the target allows the file;
//! * **how long**: a file write is the session writer's ([`FileWriter`]: at most
//!   [`crate::session::LOCK_WAIT`], then the spool); an exchange with the daemon at most the
//!   writer's daemon timeout, reported as a timeout when it runs out (nothing was kept);
//! * **what is mirrored**: the legacy records follow the database row, through the daemon
//!   as through the file, with the same bound; the logout is mirrored whatever the row did;
//! * **which row a logout closes**: [`CloseTarget`], checked against the session's identity
//!   where the caller kept it, by the file writer and by the daemon alike.
//!
//! The daemon itself writes its file through a [`Writer`] of [`Target::File`], with a group
//! committer ([`Writer::group`]) that joins concurrent sessions into one transaction.

use std::path::Path;
use std::time::Duration;

use crate::journal::Events;
use crate::legacy::{MirrorKind, MirrorPaths};
use crate::process::Process;
use crate::session::group::{Committer, GROUP_WAIT, Op, Outcome};
use crate::session::{
    CloseRowError, CloseTarget, Closed, Error, FileWriter, Logged, Mirrored, RowClosed, Session,
    SessionId, SessionItems, Via,
};
use crate::storage::{
    FailedError, FailedFiles, FailureStore, Kind, NewEntry, NewFailure, Notice, failures_path,
};
use crate::target::{Store, Target};
use crate::time::Usec;
use crate::varlink::{self, Client};

/// How long one exchange with the daemon may take unless the caller says otherwise: the
/// daemon's own write waits at most [`crate::session::LOCK_WAIT`] before it spools, so an
/// answer later than this means the daemon is stuck.
pub const DAEMON_TIMEOUT: Duration = Duration::from_secs(3);

/// The writer of every record into one target.
#[derive(Clone, Debug)]
pub struct Writer {
    target: Target,
    mirror: MirrorKind,
    mirror_paths: MirrorPaths,
    daemon_timeout: Duration,
    group: Option<Committer>,
    events: Events,
}

impl Writer {
    /// A writer into `target`, without legacy mirror.
    pub fn new(target: Target) -> Writer {
        Writer {
            target,
            mirror: MirrorKind::None,
            mirror_paths: MirrorPaths::default(),
            daemon_timeout: DAEMON_TIMEOUT,
            group: None,
            events: Events::default(),
        }
    }

    /// Sends the journal events of the records it writes into a file as `events` says
    /// (those it writes through the daemon are the daemon's to send; those the group
    /// committer writes, the committer's).
    pub fn events(mut self, events: Events) -> Writer {
        self.events = events;
        self
    }

    /// Submits the session writes into the committer's file to `committer` first (one
    /// transaction and one sync for the writes that arrive together); a group it cannot
    /// write is written by the session writer, as without it.
    pub fn group(mut self, committer: Committer) -> Writer {
        self.group = Some(committer);
        self
    }

    /// For a caller that has answered its own caller: the group committer's journal
    /// events, sent after the answers (see [`Committer::after_reply`]).
    pub fn after_reply(&self) {
        if let Some(c) = &self.group {
            c.after_reply();
        }
    }

    /// For a process about to exit: the group committer's journal events not sent yet,
    /// sent, waiting (at most `within`) for a send under way in another thread (see
    /// [`Committer::flush_events`]).
    pub fn flush_events(&self, within: std::time::Duration) {
        if let Some(c) = &self.group {
            c.flush_events(within);
        }
    }

    /// The group committer, when this call writes the file it commits into.
    fn committer_of(&self, path: &Path) -> Option<&Committer> {
        self.group.as_ref().filter(|c| c.path() == path)
    }

    /// Mirrors sessions to `kind` at `paths` (whose timeout is replaced per call by what is
    /// left of the bound).
    pub fn mirror(mut self, kind: MirrorKind, paths: MirrorPaths) -> Writer {
        self.mirror = kind;
        self.mirror_paths = paths;
        self
    }

    /// Bounds each exchange with the daemon by `timeout` instead of [`DAEMON_TIMEOUT`].
    pub fn daemon_timeout(mut self, timeout: Duration) -> Writer {
        self.daemon_timeout = timeout;
        self
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    fn file(&self, path: &Path) -> FileWriter {
        FileWriter::new(path)
            .mirror(self.mirror, self.mirror_paths.clone())
            .events(self.events.clone())
    }

    /// Where a call goes: where its login went when that is known (`via`), else by the
    /// target's rule.
    fn store(&self, via: Option<Via>) -> Result<Store, varlink::Error> {
        match (via, self.target.file()) {
            (Some(Via::File), Some(file)) => Ok(Store::File(file.to_path_buf())),
            _ => self.target.connect(self.daemon_timeout),
        }
    }

    /// Records the start of a session at `at`, served by process `pid`.
    pub fn open(&self, items: &SessionItems, pid: i32, at: Usec) -> Result<Logged, Error> {
        let (id, via) = match self.store(None)? {
            Store::File(path) => match self.open_in_group(&path, items, pid, at) {
                Some(written) => (SessionId::Row(written?), Via::File),
                None => return self.file(&path).open(items, pid, at),
            },
            Store::Daemon(mut c) => {
                let id = c.login(
                    Kind::UserProcess.as_i64(),
                    &items.user,
                    at,
                    Some(&items.tty),
                    items.host.as_deref(),
                    items.service.as_deref(),
                )?;
                (SessionId::from_int(id), Via::Daemon)
            }
        };
        // Written by another (the daemon, the group committer): mirrored here, as the
        // session writer mirrors its own.
        let session = Session {
            id,
            login: at,
            legacy: items.legacy(pid),
        };
        let mirrored = self.mirror_logged(|m| m.login(&session.legacy, at));
        Ok(Logged {
            session,
            via,
            mirrored,
            spooled: None,
            shut_out: None,
            merged: None,
            unwritable: Default::default(),
        })
    }

    /// A login through the group committer of `path`, when there is one and it took the
    /// write: the new row's ID (None: the session writer writes it).
    fn open_in_group(
        &self,
        path: &Path,
        items: &SessionItems,
        pid: i32,
        at: Usec,
    ) -> Option<Result<i64, Error>> {
        // The committer first: without one (every process but the daemon) the process's
        // start time is read by the session writer, once.
        let committer = self.committer_of(path)?;
        let op = Op::Login {
            items: items.clone(),
            process: Process::current(pid),
            at,
        };
        match committer.submit(op, GROUP_WAIT) {
            Outcome::Done(id) => Some(Ok(id)),
            Outcome::Failed(msg) => Some(Err(Error::Group(msg))),
            Outcome::Fallback => None,
        }
    }

    fn mirror_logged(
        &self,
        write: impl FnOnce(&dyn crate::legacy::LegacySink) -> Result<(), crate::legacy::LegacyError>,
    ) -> Mirrored {
        crate::session::mirror_now(self.mirror, &self.mirror_paths, write)
    }

    /// Records the end of a session at `at`: closes its row (see [`CloseTarget`]) where its
    /// login went (`via`, when known), then mirrors the logout as process `pid`, whatever
    /// the row did.
    pub fn close(
        &self,
        target: CloseTarget,
        via: Option<Via>,
        items: &SessionItems,
        pid: i32,
        at: Usec,
    ) -> Closed {
        let daemon_failed = |id, e| CloseRowError {
            id,
            error: Error::Daemon(e),
        };
        let (row, mismatch) = match self.store(via) {
            Ok(Store::File(path)) => match self.close_in_group(&path, &target, at) {
                Some(row) => (row, None),
                None => return self.file(&path).close(target, items, pid, at),
            },
            Ok(Store::Daemon(mut c)) => match close_through(&mut c, &target, items, at) {
                Ok((row, mismatch)) => (Ok(row), mismatch),
                Err((id, e)) => (Err(daemon_failed(id, e)), None),
            },
            Err(e) => (Err(daemon_failed(None, e)), None),
        };
        // Written by another (the daemon, the group committer): mirrored here, whatever
        // the row did, as the session writer mirrors its own.
        let legacy = items.legacy(pid);
        let mirrored = self.mirror_logged(|m| m.logout(&legacy, at));
        Closed {
            row,
            mirrored,
            legacy,
            merged: None,
            mismatch,
            unwritable: Default::default(),
        }
    }

    /// A logout through the group committer of `path`: one by row ID (the daemon's
    /// `Logout`), or by row ID with the session's identity (`CloseSession` of the module and
    /// the C library: the group checks the row is still that session). One that looks its
    /// session up, whose row is another's or gone, or whose group could not be written
    /// (None) is the session writer's.
    fn close_in_group(
        &self,
        path: &Path,
        target: &CloseTarget,
        at: Usec,
    ) -> Option<Result<RowClosed, CloseRowError>> {
        let CloseTarget::Id(SessionId::Row(id @ 1..), identity) = target else {
            return None;
        };
        let (id, identity) = (*id, identity.clone());
        match self
            .committer_of(path)?
            .submit(Op::Logout { id, at, identity }, GROUP_WAIT)
        {
            Outcome::Done(_) => Some(Ok(RowClosed::ById(id))),
            Outcome::Failed(msg) => Some(Err(CloseRowError {
                id: Some(id),
                error: Error::Group(msg),
            })),
            Outcome::Fallback => None,
        }
    }

    /// Writes one row that is not a session's (a boot, a run level): through the daemon's
    /// `Login`, or into the file with the bound and the spool of a session write. Returns
    /// its ID (a spool token when it waits in the spool).
    pub fn write_row(&self, entry: &NewEntry<'_>) -> Result<SessionId, Error> {
        match self.store(None)? {
            Store::File(path) => self.file(&path).write_row(entry),
            Store::Daemon(mut c) => Ok(SessionId::from_int(c.login(
                entry.kind.as_i64(),
                entry.user,
                entry.login,
                entry.tty,
                entry.host,
                entry.service,
            )?)),
        }
    }
}

/// Why a failed attempt (or the notice of the attempts) could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum FailureError {
    #[error(transparent)]
    Store(#[from] FailedError),
    #[error(transparent)]
    Daemon(#[from] varlink::Error),
}

/// How long a failure's write waits for another writer of the failures' file: a login's
/// bound is one second, and a failure is worth less than a
/// login's time, so it gives up well within it (and is logged) rather than delay anyone.
pub const FAILURE_WAIT: Duration = Duration::from_millis(250);

impl Writer {
    /// Records a failed login attempt where this writer's sessions go: the daemon's
    /// `RecordFailure`, or the failures' file of the session database
    /// ([`crate::storage::failures_path`]), created with `files`.
    pub fn record_failure(
        &self,
        f: &NewFailure<'_>,
        files: &FailedFiles,
    ) -> Result<i64, FailureError> {
        let in_file = |path: &Path| -> Result<i64, FailureError> {
            let file = failures_path(path);
            let store = FailureStore::open_write_within(&file, files, FAILURE_WAIT)?;
            let id = store.record(f)?;
            self.events.failure(id, f, &file);
            Ok(id)
        };
        match self.store(None)? {
            Store::File(path) => in_file(&path),
            Store::Daemon(mut c) => match (c.record_failure(f), self.target.file()) {
                // Upstream's daemon has no such method: the file beside its database, which
                // the caller (root, as sshd and su are) writes itself.
                (Err(e), Some(path)) if lacks_method(&e) => in_file(path),
                (r, _) => Ok(r?),
            },
        }
    }

    /// The attempts on `user` since its last successful login reported, which the login
    /// at `at` now is (see [`FailureStore::notice`]). Without any failures' file, none.
    pub fn failed_notice(
        &self,
        user: &str,
        at: Usec,
        files: &FailedFiles,
    ) -> Result<Notice, FailureError> {
        let in_file = |path: &Path| -> Result<Notice, FailureError> {
            let path = failures_path(path);
            if !path.exists() {
                return Ok(Notice::default());
            }
            let store = FailureStore::open_write_within(&path, files, FAILURE_WAIT)?;
            Ok(store.notice(user, at)?)
        };
        match self.store(None)? {
            Store::File(path) => in_file(&path),
            Store::Daemon(mut c) => match (c.failed_notice(user, at), self.target.file()) {
                (Err(e), Some(path)) if lacks_method(&e) => in_file(path),
                (r, _) => Ok(r?),
            },
        }
    }
}

/// A daemon without our failed logins' methods (upstream's).
fn lacks_method(e: &varlink::Error) -> bool {
    e.remote() == Some(crate::interface::service::METHOD_NOT_FOUND)
}

type ThroughResult =
    Result<(RowClosed, Option<crate::session::Mismatch>), (Option<i64>, varlink::Error)>;

/// A logout through the daemon: our `CloseSession`, or, with a daemon that lacks it
/// (upstream's), upstream's calls: `Logout` of the ID, or the newest open session on the tty
/// (`GetID`) for a lookup.
fn close_through(
    c: &mut Client,
    target: &CloseTarget,
    items: &SessionItems,
    at: Usec,
) -> ThroughResult {
    match c.close_session(target, items, at) {
        Err(e) if e.remote() == Some(crate::interface::service::METHOD_NOT_FOUND) => {}
        Ok(done) => return Ok(done),
        Err(e) => {
            let id = match target {
                CloseTarget::Id(id, _) => Some(id.to_int()),
                CloseTarget::Lookup => None,
            };
            return Err((id, e));
        }
    }
    match target {
        CloseTarget::Id(id, _) => {
            let id = id.to_int();
            c.logout(id, at).map_err(|e| (Some(id), e))?;
            Ok((RowClosed::ById(id), None))
        }
        CloseTarget::Lookup if items.user.is_empty() => Ok((RowClosed::NoUser, None)),
        CloseTarget::Lookup => match c.get_id(&items.tty).map_err(|e| (None, e))? {
            Some(id) => {
                c.logout(id, at).map_err(|e| (Some(id), e))?;
                Ok((RowClosed::ByLookup(id), None))
            }
            None => Ok((RowClosed::NotFound, None)),
        },
    }
}
