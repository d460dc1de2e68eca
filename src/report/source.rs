//! Where a report's rows come from: the database file, or the rows the daemon streamed.
//!
//! A report asks a [`RowSource`] the few questions it needs (the rows newest first, the
//! boots, the open sessions, each user's newest login), and lays the answers out the same
//! way whoever answers them, as a printer does not care where its lines come from.
//! [`Database`] answers with its SQL (its indexes, chunked reads, and for `last` a second
//! connection that reads ahead); [`Rows`] answers from rows held in memory: what the
//! daemon's `ReadEntries` sent for the query a report needs, newest first, each with the
//! process recorded for its session. Nothing is copied into a database in between.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use super::ReportError;
use crate::process::Process;
use crate::storage::{self, Database, Entry, Filter, Kind, OpenRow};
use crate::time::Usec;

/// The rows a report reads, and the questions it asks of them. The answers of the file
/// and of the same rows in memory are the same (see the tests).
pub trait RowSource {
    /// True when there is no row at all.
    fn is_empty(&self) -> Result<bool, ReportError>;

    /// The smallest Login: where the records begin.
    fn first_login(&self) -> Result<Option<Usec>, ReportError>;

    /// The Login of every boot row (Type 1), oldest first.
    fn boot_logins(&self) -> storage::Result<Vec<Usec>>;

    /// The Login of the newest `reboot` row (upstream's boot time).
    fn boot_time(&self) -> storage::Result<Option<Usec>>;

    /// The session rows without a logout logged in at or after `since`, oldest first (by
    /// Login, then ID), each with the process recorded at its login, if any.
    fn open_since(&self, since: Usec) -> Result<Vec<OpenRow>, ReportError>;

    /// Calls `each` with the rows that pass `filter`, newest first (Login descending; within
    /// equal Login, open rows first, then earlier logouts, then ID), until it breaks or
    /// fails.
    fn newest_first(
        &self,
        filter: &Filter,
        each: &mut dyn FnMut(&Entry) -> Result<ControlFlow<()>, ReportError>,
    ) -> Result<(), ReportError>;

    /// The newest session row (Type 3) of `user`, if it ever logged in.
    fn newest_session_of(&self, user: &str) -> Result<Option<Entry>, ReportError>;

    /// Whether [`RowSource::newest_session_of`] is one cheap lookup (the file's User
    /// index); when not, a report that asks for many users reads
    /// [`RowSource::newest_sessions`] once instead.
    fn has_user_index(&self) -> storage::Result<bool>;

    /// Calls `each` with every user's newest session row, in name order.
    fn newest_sessions(
        &self,
        each: &mut dyn FnMut(Entry) -> Result<(), ReportError>,
    ) -> Result<(), ReportError>;
}

/// Rows a listing reads on its own connection before it reads ahead on a second one
/// (see `newest_first`): the first two chunks of the reader (64 and 256 rows).
const READ_HERE_ROWS: usize = 320;

/// A filtered listing knows how many rows it has left after its first chunk, and `last -n N`
/// how many it wants: up to this many are read on the caller's connection too (one user's
/// sessions, say: `last user042` of the benchmark, 1,903 rows, takes about a quarter less
/// CPU without the second connection and the thread's memory).
const READ_HERE_LEFT: usize = 8192;

impl RowSource for Database {
    fn is_empty(&self) -> Result<bool, ReportError> {
        Ok(Database::is_empty(self)?)
    }

    fn first_login(&self) -> Result<Option<Usec>, ReportError> {
        Ok(Database::first_login(self)?)
    }

    fn boot_logins(&self) -> storage::Result<Vec<Usec>> {
        Database::boot_logins(self)
    }

    fn boot_time(&self) -> storage::Result<Option<Usec>> {
        Database::boot_time(self)
    }

    fn open_since(&self, since: Usec) -> Result<Vec<OpenRow>, ReportError> {
        Ok(Database::open_since(self, since)?)
    }

    fn newest_first(
        &self,
        filter: &Filter,
        each: &mut dyn FnMut(&Entry) -> Result<ControlFlow<()>, ReportError>,
    ) -> Result<(), ReportError> {
        // The first chunks on this connection: a short listing (`-n 10`, one user) is
        // done before a second connection and a thread would have paid for themselves.
        let mut rows = self.entries(filter);
        let mut read = 0usize;
        // A listing that wants few rows (`last -n 500`) reads them here; past them (rows it
        // skips, the whole table under `-s` with nothing in the window) the thread reads.
        let here = READ_HERE_ROWS.max(filter.rows_wanted.min(READ_HERE_LEFT));
        while read < here || rows.known_left().is_some_and(|n| n <= READ_HERE_LEFT) {
            let Some(batch) = rows.next_batch() else {
                return Ok(());
            };
            let batch = batch?;
            read += batch.len();
            for e in &batch {
                if each(e)?.is_break() {
                    return Ok(());
                }
            }
            rows.recycle(batch);
        }
        // Reading rows and formatting them each take about half the time of a long listing:
        // a second connection reads ahead on another thread while this one prints.
        let reader = self.reopen_read_only()?;
        let paused = rows.pause();
        std::thread::scope(|scope| -> Result<(), ReportError> {
            let (tx, rx) = std::sync::mpsc::sync_channel::<storage::Result<Vec<Entry>>>(4);
            // Rows used go back to the reader, which refills their buffers.
            let (back_tx, back_rx) = std::sync::mpsc::channel::<Vec<Entry>>();
            scope.spawn(move || {
                let mut rows = reader.resume(paused);
                loop {
                    while let Ok(used) = back_rx.try_recv() {
                        rows.recycle(used);
                    }
                    let Some(batch) = rows.next_batch() else {
                        return;
                    };
                    let failed = batch.is_err();
                    // A closed channel means the consumer stopped (it broke or failed).
                    if tx.send(batch).is_err() || failed {
                        return;
                    }
                }
            });
            for batch in rx {
                let batch = batch?;
                for e in &batch {
                    if each(e)?.is_break() {
                        return Ok(());
                    }
                }
                let _ = back_tx.send(batch);
            }
            Ok(())
        })
    }

    fn newest_session_of(&self, user: &str) -> Result<Option<Entry>, ReportError> {
        Ok(Database::newest_session_of(self, user)?)
    }

    fn has_user_index(&self) -> storage::Result<bool> {
        Database::has_user_index(self)
    }

    fn newest_sessions(
        &self,
        each: &mut dyn FnMut(Entry) -> Result<(), ReportError>,
    ) -> Result<(), ReportError> {
        if !self.has_user_index()? {
            // One pass over the table instead of one per user.
            for e in self.newest_sessions_by_scan()? {
                each(e)?;
            }
            return Ok(());
        }
        // A loose scan of the User index: one descent per user, never a pass over the rows.
        let mut after = String::new();
        while let Some(user) = self.next_user(&after)? {
            if let Some(e) = self.newest_session_of(&user)? {
                each(e)?;
            }
            after = user;
        }
        Ok(())
    }
}

/// Rows held in memory, newest first as the file lists them (the order the daemon's
/// `ReadEntries` sends them in), each with the process recorded for its session, if any.
/// They are the rows of a query (what the report needs), and every answer is about them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rows {
    entries: Vec<Entry>,
    processes: Vec<Option<Process>>,
}

impl Rows {
    pub fn new() -> Rows {
        Rows::default()
    }

    /// Adds a row older than those already held (or as old: see [`RowSource::newest_first`]
    /// for the order of equal Login).
    pub fn push(&mut self, e: Entry, p: Option<Process>) {
        self.entries.push(e);
        self.processes.push(p);
    }

    fn boots(&self) -> Boots {
        let mut boots = Boots::default();
        for e in &self.entries {
            boots.see(e);
        }
        boots.done()
    }

    fn rows(&self) -> impl Iterator<Item = (&Entry, Option<&Process>)> {
        self.entries
            .iter()
            .zip(self.processes.iter().map(Option::as_ref))
    }
}

impl FromIterator<(Entry, Option<Process>)> for Rows {
    fn from_iter<I: IntoIterator<Item = (Entry, Option<Process>)>>(iter: I) -> Rows {
        let mut rows = Rows::new();
        for (e, p) in iter {
            rows.push(e, p);
        }
        rows
    }
}

/// The daemon's rows as a report reads them, streamed query by query, each on a connection
/// of its own: a report keeps only what it needs (the boots, the open sessions, a row per
/// user), so its memory does not grow with the table. What every report asks first (the
/// boots and the newest `reboot`) is read when the stream is opened, from the rows on tty
/// `~` (where every writer puts boot rows).
pub struct Stream {
    connect: Box<dyn Fn() -> crate::varlink::Result<crate::varlink::Client>>,
    boots: Boots,
    /// The smallest Login, once a pass over every row has seen it.
    first: std::cell::Cell<Option<Option<Usec>>>,
}

impl Stream {
    /// Opens the stream; `connect` gives a new connection to the daemon for each query.
    pub fn open(
        connect: impl Fn() -> crate::varlink::Result<crate::varlink::Client> + 'static,
    ) -> Result<Stream, ReportError> {
        use crate::varlink::Query;
        let mut boots = Boots::default();
        let mut c = connect()?;
        c.read_sessions(
            &Query {
                tty: Some("~"),
                ..Query::default()
            },
            |e, _| boots.see(&e),
        )?;
        Ok(Stream {
            connect: Box::new(connect),
            boots: boots.done(),
            first: std::cell::Cell::new(None),
        })
    }

    /// Streams the rows `q` selects, newest first, to `each` until it breaks.
    fn rows(
        &self,
        q: &crate::varlink::Query<'_>,
        each: impl FnMut(Entry, Option<Process>) -> ControlFlow<()>,
    ) -> Result<(), ReportError> {
        (self.connect)()?.read_sessions_while(q, each)?;
        Ok(())
    }
}

impl RowSource for Stream {
    fn is_empty(&self) -> Result<bool, ReportError> {
        let mut empty = true;
        let one = crate::varlink::Query {
            limit: Some(1),
            ..crate::varlink::Query::default()
        };
        self.rows(&one, |_, _| {
            empty = false;
            ControlFlow::Break(())
        })?;
        Ok(empty)
    }

    fn first_login(&self) -> Result<Option<Usec>, ReportError> {
        if let Some(first) = self.first.get() {
            return Ok(first);
        }
        let mut first: Option<Usec> = None;
        self.rows(&crate::varlink::Query::default(), |e, _| {
            first = Some(first.map_or(e.login, |f| f.min(e.login)));
            ControlFlow::Continue(())
        })?;
        self.first.set(Some(first));
        Ok(first)
    }

    fn boot_logins(&self) -> storage::Result<Vec<Usec>> {
        Ok(self.boots.logins.clone())
    }

    fn boot_time(&self) -> storage::Result<Option<Usec>> {
        Ok(self.boots.reboot)
    }

    fn open_since(&self, since: Usec) -> Result<Vec<OpenRow>, ReportError> {
        let mut open = Vec::new();
        let q = crate::varlink::Query {
            since: Some(since),
            ..crate::varlink::Query::default()
        };
        self.rows(&q, |e, p| {
            if is_open_since(&e, since) {
                open.push(OpenRow {
                    entry: e,
                    process: p,
                });
            }
            ControlFlow::Continue(())
        })?;
        sort_open(&mut open);
        Ok(open)
    }

    fn newest_first(
        &self,
        filter: &Filter,
        each: &mut dyn FnMut(&Entry) -> Result<ControlFlow<()>, ReportError>,
    ) -> Result<(), ReportError> {
        let q = crate::varlink::Query {
            until: filter.login_at_most,
            ..crate::varlink::Query::default()
        };
        // Every row passes: a pass to its end has seen the first login too.
        let whole = filter.users_or_ttys.is_empty() && filter.login_at_most.is_none();
        let mut first: Option<Usec> = None;
        let mut failed = None;
        let mut ended = true;
        self.rows(&q, |e, _| {
            first = Some(first.map_or(e.login, |f| f.min(e.login)));
            if !passes(filter, &e) {
                return ControlFlow::Continue(());
            }
            match each(&e) {
                Ok(ControlFlow::Continue(())) => ControlFlow::Continue(()),
                Ok(ControlFlow::Break(())) => {
                    ended = false;
                    ControlFlow::Break(())
                }
                Err(err) => {
                    failed = Some(err);
                    ControlFlow::Break(())
                }
            }
        })?;
        if let Some(err) = failed {
            return Err(err);
        }
        if whole && ended {
            self.first.set(Some(first));
        }
        Ok(())
    }

    fn newest_session_of(&self, user: &str) -> Result<Option<Entry>, ReportError> {
        // Read on while the login stays that of the newest (of equal logins, see
        // `is_newer`).
        let q = crate::varlink::Query {
            user: Some(user),
            ..crate::varlink::Query::default()
        };
        let mut newest: Option<Entry> = None;
        self.rows(&q, |e, _| {
            if !is_session_of(&e, user) {
                return ControlFlow::Continue(());
            }
            match &newest {
                Some(n) if e.login < n.login => return ControlFlow::Break(()),
                Some(n) if !is_newer(&e, n) => {}
                _ => newest = Some(e),
            }
            ControlFlow::Continue(())
        })?;
        Ok(newest)
    }

    fn has_user_index(&self) -> storage::Result<bool> {
        Ok(false)
    }

    fn newest_sessions(
        &self,
        each: &mut dyn FnMut(Entry) -> Result<(), ReportError>,
    ) -> Result<(), ReportError> {
        let mut newest = NewestSessions::default();
        self.rows(&crate::varlink::Query::default(), |e, _| {
            newest.see(&e);
            ControlFlow::Continue(())
        })?;
        for e in newest.0.into_values() {
            each(e)?;
        }
        Ok(())
    }
}

// The rules by which rows taken one by one, held ([`Rows`]) or streamed ([`Stream`]),
// answer a report's questions as the file's SQL does: one home for both.

/// The boots among rows: every boot row's Login, oldest first, and the newest `reboot`.
#[derive(Default)]
struct Boots {
    logins: Vec<Usec>,
    reboot: Option<Usec>,
}

impl Boots {
    fn see(&mut self, e: &Entry) {
        if e.kind == Kind::BootTime {
            self.logins.push(e.login);
        }
        if e.user == "reboot" {
            self.reboot = Some(self.reboot.map_or(e.login, |r| r.max(e.login)));
        }
    }

    fn done(mut self) -> Boots {
        self.logins.sort_unstable();
        self
    }
}

/// Whether `e` is a session without logout that logged in at or after `since`.
fn is_open_since(e: &Entry, since: Usec) -> bool {
    e.logout.is_none() && e.kind == Kind::UserProcess && e.login >= since
}

/// Open sessions in the file's order: by Login, then ID.
fn sort_open(open: &mut [OpenRow]) {
    open.sort_by_key(|r| (r.entry.login, r.entry.id));
}

/// Whether `e` is a session row (Type 3) of `user`.
fn is_session_of(e: &Entry, user: &str) -> bool {
    e.kind == Kind::UserProcess && e.user == user
}

/// Whether `e` is a newer session than `kept`: a later Login, or of equal logins the one
/// written last, as the file's User index orders them.
fn is_newer(e: &Entry, kept: &Entry) -> bool {
    (e.login, e.id) > (kept.login, kept.id)
}

/// Every user's newest session row, by name.
#[derive(Default)]
struct NewestSessions(BTreeMap<String, Entry>);

impl NewestSessions {
    fn see(&mut self, e: &Entry) {
        if e.kind != Kind::UserProcess {
            return;
        }
        match self.0.get_mut(&e.user) {
            Some(kept) if is_newer(e, kept) => *kept = e.clone(),
            Some(_) => {}
            None => {
                self.0.insert(e.user.clone(), e.clone());
            }
        }
    }
}

/// Whether `e` passes `filter`, as the file's query checks it.
fn passes(filter: &Filter, e: &Entry) -> bool {
    filter.login_at_most.is_none_or(|max| e.login <= max)
        && (filter.users_or_ttys.is_empty()
            || filter
                .users_or_ttys
                .iter()
                .any(|v| *v == e.user || e.tty.as_ref() == Some(v)))
}

impl RowSource for Rows {
    fn is_empty(&self) -> Result<bool, ReportError> {
        Ok(self.entries.is_empty())
    }

    fn first_login(&self) -> Result<Option<Usec>, ReportError> {
        Ok(self.entries.iter().map(|e| e.login).min())
    }

    fn boot_logins(&self) -> storage::Result<Vec<Usec>> {
        Ok(self.boots().logins)
    }

    fn boot_time(&self) -> storage::Result<Option<Usec>> {
        Ok(self.boots().reboot)
    }

    fn open_since(&self, since: Usec) -> Result<Vec<OpenRow>, ReportError> {
        let mut open: Vec<OpenRow> = self
            .rows()
            .filter(|(e, _)| is_open_since(e, since))
            .map(|(e, p)| OpenRow {
                entry: e.clone(),
                process: p.copied(),
            })
            .collect();
        sort_open(&mut open);
        Ok(open)
    }

    fn newest_first(
        &self,
        filter: &Filter,
        each: &mut dyn FnMut(&Entry) -> Result<ControlFlow<()>, ReportError>,
    ) -> Result<(), ReportError> {
        for e in self.entries.iter().filter(|e| passes(filter, e)) {
            if each(e)?.is_break() {
                break;
            }
        }
        Ok(())
    }

    fn newest_session_of(&self, user: &str) -> Result<Option<Entry>, ReportError> {
        Ok(self
            .entries
            .iter()
            .filter(|e| is_session_of(e, user))
            .reduce(|kept, e| if is_newer(e, kept) { e } else { kept })
            .cloned())
    }

    fn has_user_index(&self) -> storage::Result<bool> {
        Ok(false)
    }

    fn newest_sessions(
        &self,
        each: &mut dyn FnMut(Entry) -> Result<(), ReportError>,
    ) -> Result<(), ReportError> {
        let mut newest = NewestSessions::default();
        for e in &self.entries {
            newest.see(e);
        }
        for e in newest.0.into_values() {
            each(e)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::interface::{WtmpdbEntry, write_entry};
    use crate::report::lastlog::{self, LastlogOptions, Records};
    use crate::report::who::{self, Clock, System, WhoOptions};
    use crate::report::{self, HostColumn, LastOptions, TimeFormat};
    use crate::storage::NewEntry;
    use crate::time::USEC_PER_SEC;

    const S: Usec = USEC_PER_SEC;
    const BASE: Usec = 1_700_000_000 * S;
    /// When the running boot began.
    const BOOT: Usec = BASE + 3000 * S;

    /// A file with rows of every kind a report distinguishes: a boot shut down, one that
    /// crashed with a session open, a soft reboot, the running boot with sessions whose
    /// process runs (this test's), has exited, or was never recorded; hostile strings,
    /// equal logins, a run level, a type nobody writes, times before 1970 and after 2106.
    fn seeded() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_read_write(&dir.path().join("w.db")).unwrap();
        let row = |kind, user, login, logout, tty, host| NewEntry {
            kind,
            user,
            login,
            logout,
            tty,
            host,
            service: (kind == Kind::UserProcess).then_some("sshd"),
        };
        let boot = |user, login, logout, host| {
            row(Kind::BootTime, user, login, logout, Some("~"), Some(host))
        };
        let session = |user, login, logout, tty| {
            row(
                Kind::UserProcess,
                user,
                login,
                logout,
                Some(tty),
                Some("192.0.2.1"),
            )
        };
        let me = Process::current(std::process::id() as i32);
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let gone = Process {
            pid: child.id() as i32,
            start_time: Some(1),
        };
        child.wait().unwrap();
        let hostile = "e\u{301}\"\\\u{202e}\0x\u{1b}[31m\n";
        for r in [
            row(Kind::UserProcess, "old", -5 * S, Some(-2 * S), None, None),
            boot("reboot", BASE, Some(BASE + 1000 * S), "6.1-old"),
            session("alice", BASE + 10 * S, Some(BASE + 500 * S), "pts/0"),
            session("bob", BASE + 20 * S, None, "pts/1"),
            boot("reboot", BASE + 2000 * S, None, "6.1-crashed"),
            session("carol", BASE + 2100 * S, None, "tty2"),
            boot("soft-reboot", BOOT + 35 * S, None, "6.1-soft"),
            boot("reboot", BOOT, None, "6.1-now"),
            session("carol", BOOT + 20 * S, None, "tty2"),
            row(
                Kind::UserProcess,
                hostile,
                BOOT + 40 * S,
                Some(BOOT + 50 * S),
                Some(hostile),
                Some(hostile),
            ),
            session("erin", BOOT + 40 * S, None, "pts/\u{202e}4"),
            session("erin", BOOT + 40 * S, Some(BOOT + 45 * S), "pts/4"),
            row(
                Kind::RunLevel,
                "runlevel",
                BOOT + 60 * S,
                None,
                Some("~"),
                None,
            ),
            row(Kind::Other(7), "odd", BOOT + 70 * S, None, None, None),
            session("frank", 4_354_819_200 * S, Some(4_354_819_260 * S), "pts/5"),
        ] {
            db.login(&r).unwrap();
        }
        db.login_with_process(&session("alice", BOOT + 10 * S, None, "pts/0"), &me)
            .unwrap();
        db.login_with_process(&session("dave", BOOT + 30 * S, None, "pts/3"), &gone)
            .unwrap();
        (dir, db)
    }

    /// A listing longer than what `newest_first` reads on the caller's connection goes on on
    /// a second one from where the first stopped: every row once, in the reader's order
    /// (ties of equal Login across the switch included), filtered or not.
    #[test]
    fn a_long_listing_goes_on_where_its_first_chunks_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Database::open_read_write(&dir.path().join("w.db")).unwrap();
        let n = 12_000i64;
        let rows = (0..n).map(|i| {
            let user = if i % 4 == 0 { "few" } else { "many" };
            // Groups of five rows with the same Login.
            let login = BASE + (i / 5) * S;
            let logout = (i % 7 != 0).then_some(login + S);
            let e = NewEntry {
                kind: Kind::UserProcess,
                user,
                login,
                logout,
                tty: Some("pts/1"),
                ..NewEntry::default()
            };
            (e, 0)
        });
        let mut committed = 0;
        db.import_rows(rows, BASE..=BASE + n * S, &mut committed, |_| {})
            .unwrap();
        // Unfiltered: the thread after the first chunks; "many" (9,000 rows): the thread,
        // the count being known; "few" (3,000): all on the caller's connection.
        for (users, thread) in [(vec![], true), (vec!["many"], true), (vec!["few"], false)] {
            let filter = Filter {
                users_or_ttys: users.iter().map(|u| u.to_string()).collect(),
                ..Filter::default()
            };
            let want: Vec<i64> = db.entries(&filter).map(|e| e.unwrap().id).collect();
            assert!(want.len() > READ_HERE_ROWS, "{}", want.len());
            assert_eq!(want.len() > READ_HERE_LEFT, thread, "{users:?}");
            let mut got = Vec::new();
            db.newest_first(&filter, &mut |e| {
                got.push(e.id);
                Ok(ControlFlow::Continue(()))
            })
            .unwrap();
            assert_eq!(got, want, "{users:?}");
        }
    }

    /// The rows the daemon's `ReadEntries` sends for `since` and `user` (as it selects
    /// them), written by the daemon's encoder and read by the client's decoder.
    fn streamed(db: &Database, since: Option<Usec>, user: Option<&str>) -> Rows {
        let filter = Filter {
            users_or_ttys: user.into_iter().map(str::to_owned).collect(),
            ..Filter::default()
        };
        let all: Vec<Entry> = db.entries(&filter).map(Result::unwrap).collect();
        let open = all
            .iter()
            .filter(|e| e.logout.is_none() && e.kind == Kind::UserProcess)
            .map(|e| e.id);
        let processes = db.processes(open).unwrap();
        let mut rows = Rows::new();
        for e in all
            .iter()
            .take_while(|e| since.is_none_or(|s| e.login >= s))
            .filter(|e| user.is_none_or(|u| e.user == u))
        {
            let mut wire = Vec::new();
            write_entry(&mut wire, e, processes.get(&e.id));
            let (e, p) = serde_json::from_slice::<WtmpdbEntry<'_>>(&wire)
                .unwrap()
                .into_entry();
            rows.push(e, p);
        }
        rows
    }

    fn printed(f: impl FnOnce(&mut Vec<u8>) -> Result<u64, ReportError>) -> String {
        let mut out = Vec::new();
        let n = f(&mut out).unwrap();
        format!("{n}\n{}", String::from_utf8_lossy(&out))
    }

    #[test]
    fn last_prints_the_same_bytes_from_the_file_and_from_the_daemons_rows() {
        let (_dir, db) = seeded();
        let rows = streamed(&db, None, None);
        assert!(!RowSource::is_empty(&rows).unwrap());
        let base = LastOptions::default();
        let secs = |t: Usec| Some(t / S);
        let cases = [
            base.clone(),
            LastOptions {
                json: true,
                ..base.clone()
            },
            LastOptions {
                system: true,
                ..base.clone()
            },
            LastOptions {
                system: true,
                json: true,
                limit: 4,
                ..base.clone()
            },
            LastOptions {
                limit: 1,
                ..base.clone()
            },
            LastOptions {
                limit: 5,
                matches: vec!["pts/3".into(), "carol".into(), "reboot".into()],
                ..base.clone()
            },
            LastOptions {
                present: secs(BASE + 30 * S),
                ..base.clone()
            },
            LastOptions {
                since: secs(BASE + 2050 * S),
                until: secs(BOOT + 40 * S),
                system: true,
                ..base.clone()
            },
            LastOptions {
                host: HostColumn::Last,
                full_names: true,
                service: true,
                login_format: TimeFormat::Full,
                logout_format: TimeFormat::Full,
                ..base.clone()
            },
            LastOptions {
                host: HostColumn::Hidden,
                login_format: TimeFormat::Iso,
                logout_format: TimeFormat::Iso,
                footer_format: None,
                ..base.clone()
            },
        ];
        for opts in &cases {
            let file = printed(|o| report::last(&db, opts, o));
            let daemon = printed(|o| report::last(&rows, opts, o));
            assert_eq!(daemon, file, "{opts:?}");
        }
        // Something was listed, in both orders of equal logins alike.
        let all = printed(|o| report::last(&db, &base, o));
        assert!(
            all.contains("crash") && all.contains("still logged in"),
            "{all}"
        );
        let empty = Rows::new();
        let dir = tempfile::tempdir().unwrap();
        let none = Database::open_read_write(&dir.path().join("e.db")).unwrap();
        for opts in &cases[..2] {
            assert_eq!(
                printed(|o| report::last(&empty, opts, o)),
                printed(|o| report::last(&none, opts, o))
            );
        }
    }

    #[test]
    fn who_and_users_print_the_same_bytes_from_the_file_and_from_the_daemons_rows() {
        let (_dir, db) = seeded();
        // The kernel's boot time lies a minute after the boot row (a clock step): the row
        // is taken.
        let sys = System {
            boot: BOOT + 60 * S,
            now: BOOT + 3600 * S,
            proc: PathBuf::from("/proc"),
            logind: None,
            dev: PathBuf::from("/nonexistent"),
        };
        // What the command asks the daemon for, and all rows.
        let since = streamed(&db, Some(who::oldest_row_needed(&sys)), None);
        let all = streamed(&db, None, None);
        let base = WhoOptions {
            heading: false,
            count: false,
            idle: false,
            json: false,
            clock: Clock::Iso,
        };
        let cases = [
            base.clone(),
            WhoOptions {
                heading: true,
                idle: true,
                clock: Clock::Traditional,
                ..base.clone()
            },
            WhoOptions {
                count: true,
                ..base.clone()
            },
            WhoOptions {
                json: true,
                idle: true,
                ..base.clone()
            },
        ];
        let n = |r: Result<usize, ReportError>| r.map(|n| n as u64);
        for opts in &cases {
            let file = printed(|o| n(who::who_on(&db, &sys, opts, o)));
            assert_eq!(printed(|o| n(who::who_on(&since, &sys, opts, o))), file);
            assert_eq!(printed(|o| n(who::who_on(&all, &sys, opts, o))), file);
        }
        let file = printed(|o| n(who::users(&db, &sys, o)));
        // alice (alive), carol (unverified), erin (unverified); not dave (gone), nor the
        // sessions of earlier boots.
        assert!(file.starts_with("3\n"), "{file}");
        assert_eq!(printed(|o| n(who::users(&since, &sys, o))), file);
        assert_eq!(printed(|o| n(who::users(&all, &sys, o))), file);
        assert_eq!(
            who::present(&db, &sys).unwrap().0,
            who::present(&since, &sys).unwrap().0
        );
    }

    #[test]
    fn lastlog_prints_the_same_bytes_from_the_file_and_from_the_daemons_rows() {
        let (_dir, db) = seeded();
        let all = streamed(&db, None, None);
        let now = BOOT + 3600 * S;
        let accounts = || vec!["root".to_string(), "carol".into(), "alice".into()];
        let base = LastlogOptions::default();
        let cases = [
            base.clone(),
            LastlogOptions {
                json: true,
                ..base.clone()
            },
            LastlogOptions {
                all_accounts: true,
                ..base.clone()
            },
            LastlogOptions {
                time_days: Some(1),
                json: true,
                ..base.clone()
            },
            LastlogOptions {
                before_days: Some(1),
                ..base.clone()
            },
        ];
        for opts in &cases {
            let run = |src: &dyn RowSource, o: &mut Vec<u8>| {
                let rec = Records::of_rows(src)?;
                lastlog::lastlog_with(&rec, opts, &accounts, now, o)
            };
            let file = printed(|o| run(&db, o));
            assert_eq!(printed(|o| run(&all, o)), file, "{opts:?}");
        }
        for user in ["alice", "erin", "reboot", "nosuchuser"] {
            let one = streamed(&db, None, Some(user));
            for json in [false, true] {
                let opts = LastlogOptions {
                    user: Some(user.into()),
                    json,
                    ..base.clone()
                };
                let run = |src: &dyn RowSource, o: &mut Vec<u8>| {
                    lastlog::lastlog_with(&Records::Wtmpdb(src), &opts, &accounts, now, o)
                };
                let file = printed(|o| run(&db, o));
                assert_eq!(printed(|o| run(&one, o)), file, "{user}");
                assert_eq!(printed(|o| run(&all, o)), file, "{user}");
            }
        }
    }
}
