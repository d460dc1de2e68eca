//! Reading: the lookups of single values, and [`Entries`], the chunked newest-first reader
//! behind `last`.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use super::error::{Error, Result, sql};
use super::record::{Entry, Packed, row_id};
use super::{Database, queries};
use crate::time::Usec;

/// Runs `f`, whose statements read through `conn`, as one read transaction: SQLite takes
/// its locks and checks the file's change counter and side files once for all of them (and
/// for reading the schema, when a statement needs it first) instead of once per statement,
/// about 9 us each time. The transaction ends before this returns, whatever `f` did; inside
/// one already (a caller's), `f` just runs in it. Nothing that may wait on anything but the
/// file (output, another thread) belongs in `f`: the read lock is held meanwhile. The
/// start (the statement that takes the read lock) waits out an index in the making for up
/// to `index_wait` (see [`through_index_in_the_making`] and [`Database::index_wait`]); `f`
/// meets the index as that start found it.
pub(super) fn in_one_read<T, E>(
    conn: &Connection,
    index_wait: Duration,
    failed: impl Fn(rusqlite::Error) -> E,
    f: impl FnOnce() -> std::result::Result<T, E>,
) -> std::result::Result<T, E> {
    if !conn.is_autocommit() {
        return f();
    }
    let start = || {
        conn.execute_batch(queries::BEGIN_READ)?;
        let started = conn.query_row(queries::START_READ, [], |_| Ok(()));
        if started.is_err() {
            let _ = conn.execute_batch(queries::ABANDON_READ);
        }
        started
    };
    let started = through_index_in_the_making(conn, index_wait, start);
    let result = started.map_err(&failed).and_then(|()| f());
    // A read ends without fail; should COMMIT fail all the same, ROLLBACK ends it.
    if !conn.is_autocommit() && conn.execute_batch(queries::END_READ).is_err() {
        let _ = conn.execute_batch(queries::ABANDON_READ);
    }
    result
}

/// [`in_one_read`] for an open's first read, whose start does not wait out an index in the
/// making: the open tries again with a new connection instead. This one may have joined
/// an index that a writer emptied and then never rebuilt (killed in its first moments):
/// holding the index's DMS byte, it keeps the next writer from starting afresh and can
/// only wait for one that rebuilds the index in place, where a new connection that finds
/// nobody else on the index reads the log without it at once.
pub(super) fn in_an_opens_first_read<T, E>(
    conn: &Connection,
    failed: impl Fn(rusqlite::Error) -> E,
    f: impl FnOnce() -> std::result::Result<T, E>,
) -> std::result::Result<T, E> {
    in_one_read(conn, Duration::ZERO, failed, f)
}

/// Runs `read` (statements that only read, so that running them again changes nothing) and
/// runs it again while it fails on a read-only connection as a read does while another
/// process rebuilds the `-shm` index this user may not write (see
/// [`error::index_in_the_making`](super::error::index_in_the_making)), for at most `wait`
/// (zero: it runs once). A user's connection that found no other on the index reads the
/// log without it and, at its next read, joins a writer that has opened the index
/// meanwhile: in that writer's first moments (the index emptied, not yet locked for its
/// rebuild) SQLite answers `SQLITE_READONLY_RECOVERY`, which failed about one `last` in
/// 700 while logins went on.
/// Should that writer die before the rebuild, the read fails after the bound unless
/// another writer rebuilds the index meanwhile (any write does, the next login's).
fn through_index_in_the_making<T>(
    conn: &Connection,
    wait: Duration,
    mut read: impl FnMut() -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    let mut until = None;
    loop {
        match read() {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if super::error::index_in_the_making(e.extended_code)
                    && conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(false)
                    && Instant::now() < *until.get_or_insert_with(|| Instant::now() + wait) =>
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            other => return other,
        }
    }
}

impl Database {
    /// How long a read's start on this connection waits out an index in the making: as
    /// long as its open did, [`INDEX_IN_THE_MAKING`](super::INDEX_IN_THE_MAKING) unless the
    /// busy timeout is shorter (a caller that asked not to wait for locks does not wait for
    /// this either).
    pub(super) fn index_wait(&self) -> Duration {
        self.busy_timeout.min(super::INDEX_IN_THE_MAKING)
    }

    /// Runs a lookup on the table, naming `context` if it fails. A file without the table
    /// answers "no rows" (`T::default()`) without running it.
    fn lookup<T: Default>(
        &self,
        context: &'static str,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        match self.table() {
            Some(conn) => {
                // A user's lookup starts as one read, which waits out an index in the
                // making; a writer's needs no start of its own (it may write the index).
                let v = if conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(false) {
                    let failed = |e| sql(context)(e);
                    in_one_read(conn, self.index_wait(), failed, || f(conn).map_err(failed))?
                } else {
                    f(conn).map_err(sql(context))?
                };
                self.still_unchanged()?;
                Ok(v)
            }
            None => Ok(T::default()),
        }
    }

    /// Every row in ID order, handed to `each`, all from one snapshot of the file (one
    /// statement: a writer's commit during the walk is not seen).
    pub fn each_row_by_id(&self, mut each: impl FnMut(Entry)) -> Result<()> {
        self.lookup("Cannot read entries", |c| {
            let mut stmt = c.prepare(queries::ALL_ROWS_BY_ID)?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                each(Entry::from_row(r)?);
            }
            Ok(())
        })
    }

    /// The rows `listed` (those of them with ID at most `after`), then every row with ID
    /// above `after`, in ID order, handed to `each`, all from one snapshot of the file (one
    /// read transaction). What an export run reads: the rows it holds open and the new ones,
    /// without a pass over the rest of the table.
    pub fn each_row_since(
        &self,
        after: i64,
        listed: &[i64],
        mut each: impl FnMut(Entry),
    ) -> Result<()> {
        let ids = serde_json::Value::from(listed).to_string();
        self.lookup("Cannot read entries", |c| {
            in_one_read(
                c,
                self.index_wait(),
                |e| e,
                || {
                    let mut stmt = c.prepare(queries::ROWS_LISTED_UP_TO)?;
                    let mut rows = stmt.query(rusqlite::params![after, ids])?;
                    while let Some(r) = rows.next()? {
                        each(Entry::from_row(r)?);
                    }
                    let mut stmt = c.prepare(queries::ROWS_AFTER_ID)?;
                    let mut rows = stmt.query([after])?;
                    while let Some(r) = rows.next()? {
                        each(Entry::from_row(r)?);
                    }
                    Ok(())
                },
            )
        })
    }

    /// The rows whose Login is `login`, by ID.
    pub fn rows_with_login(&self, login: Usec) -> Result<Vec<Entry>> {
        self.lookup("Cannot read entries", |c| {
            c.prepare_cached(queries::ROWS_WITH_LOGIN)?
                .query_map([login], Entry::from_row)?
                .collect()
        })
    }

    /// Login time and ID of every boot row, by Login.
    pub fn boot_rows(&self) -> Result<Vec<(Usec, i64)>> {
        self.lookup("Cannot read boot entries", |c| {
            c.prepare_cached(queries::BOOT_ROWS)?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })
    }

    /// The newest row on `tty` that has no logout (upstream's `wtmpdb_get_id`).
    pub fn newest_open_on_tty(&self, tty: &str) -> Result<Option<i64>> {
        self.lookup("Cannot search open entry", |c| {
            c.prepare_cached(queries::NEWEST_OPEN_ON_TTY)?
                .query_row([tty], |r| r.get(0))
                .optional()
        })
    }

    /// The row with this ID, if there is one: what a logout by ID checks before it closes
    /// it (that it is still the session its login wrote).
    pub fn row(&self, id: i64) -> Result<Option<Entry>> {
        self.lookup("Cannot read entry", |c| {
            c.prepare_cached(queries::ROW_BY_ID)?
                .query_row([id], Entry::from_row)
                .optional()
        })
    }

    /// IDs of the newest open rows (at most `limit`) for this user, tty and service,
    /// newest first. Used to close a session whose ID was lost.
    pub fn open_sessions(
        &self,
        user: &str,
        tty: &str,
        service: &str,
        limit: usize,
    ) -> Result<Vec<i64>> {
        self.lookup("Cannot search open entry", |c| {
            c.prepare_cached(queries::OPEN_SESSIONS)?
                .query_map(params![tty, user, service, limit as i64], |r| r.get(0))?
                .collect()
        })
    }

    /// Login time of the newest `reboot` row (upstream ignores `soft-reboot`).
    pub fn boot_time(&self) -> Result<Option<Usec>> {
        self.lookup("Cannot read boot time", |c| {
            c.prepare_cached(queries::NEWEST_REBOOT_LOGIN)?
                .query_row([], |r| r.get(0))
                .optional()
        })
    }

    /// ID and Logout of the newest boot row (the current boot, if it was recorded).
    pub fn newest_boot(&self) -> Result<Option<(i64, Option<Usec>)>> {
        self.lookup("Cannot read boot entries", |c| {
            c.prepare_cached(queries::NEWEST_BOOT)?
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
    }

    /// Login times of every boot row, oldest first: one pass (over the boot index when
    /// present), so a report can answer "the next boot after t" from memory for any
    /// number of rows, also on an upstream file without indexes.
    pub fn boot_logins(&self) -> Result<Vec<Usec>> {
        self.lookup("Cannot read boot entries", |c| {
            c.prepare_cached(queries::BOOT_LOGINS)?
                .query_map([], |r| r.get(0))?
                .collect()
        })
    }

    /// The smallest Login in the table (where the records begin).
    pub fn first_login(&self) -> Result<Option<Usec>> {
        self.lookup("Cannot read entries", |c| {
            c.prepare_cached(queries::FIRST_LOGIN)?
                .query_row([], |r| r.get::<_, Option<Usec>>(0))
        })
    }

    /// True if the table holds no row at all.
    pub fn is_empty(&self) -> Result<bool> {
        let any = self.lookup("Cannot read entries", |c| {
            c.prepare_cached(queries::ANY_ROW)?
                .query_row([], |r| r.get::<_, bool>(0))
        })?;
        Ok(!any)
    }

    /// Streams the rows newest first (Login descending, then Logout ascending with open
    /// rows first, then ID), in chunks, without holding a lock between chunks.
    pub fn entries(&self, filter: &Filter) -> Entries<'_> {
        let table = self.table().is_some();
        Entries {
            db: self,
            st: Position {
                filter: filter.clone(),
                order: None,
                pool: Vec::new(),
                cursor: table.then_some(i64::MAX),
                chunk: match filter.rows_wanted {
                    0 => FIRST_CHUNK,
                    n => i64::try_from(n).map_or(FIRST_CHUNK, |n| n.clamp(1, FIRST_CHUNK)),
                },
                read: 0,
                buf: VecDeque::new(),
                held: Packed::default(),
                nulls_done: !table,
            },
        }
    }
}

/// What `last` asks for; the remaining conditions are checked by the report.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Keep rows whose User or TTY equals one of these (no condition when empty).
    pub users_or_ttys: Vec<String>,
    /// Keep rows with Login at or before this time.
    pub login_at_most: Option<Usec>,
    /// How many rows the reader expects to use (0: unknown, or all): no chunk reads more
    /// than what is left of that (`last -n 10` read 64 rows to print 10). Once it is all
    /// read, should the reader want more (rows it skips), the chunks start again at
    /// [`FIRST_CHUNK`] rows and grow.
    pub rows_wanted: usize,
}

/// The rows of the first chunk, unless the reader wants fewer.
const FIRST_CHUNK: i64 = 64;

/// At most this many rows of a filtered listing are read at once, without their keys
/// first (see `Entries::hold_rows_of_users`): as many as a listing reads on its caller's
/// connection when it knows how many are left (`report::source`), about 1 MiB packed.
const ONE_READ_ROWS: usize = 8192;

/// The rows read at once are handed out in batches of this many, refilling the same
/// [`Entry`] values each time.
const HELD_BATCH: usize = 256;

/// Rows newest first, fetched in growing chunks.
pub struct Entries<'a> {
    db: &'a Database,
    st: Position,
}

/// Where a reader is, whatever connection it reads through.
struct Position {
    filter: Filter,
    /// Where the order of an unfiltered listing comes from; None until the first chunk.
    order: Option<Order>,
    /// Rows given back by the consumer, refilled instead of allocated.
    pool: Vec<Entry>,
    /// Next chunk takes rows with Login <= cursor; None when the non-NULL logins are done.
    cursor: Option<Usec>,
    chunk: i64,
    /// Keys read so far (see [`Filter::rows_wanted`]).
    read: usize,
    buf: VecDeque<Entry>,
    /// The rows a filtered listing read at once (see `Entries::hold_rows_of_users`), in
    /// order, handed out a batch at a time.
    held: Packed,
    nulls_done: bool,
}

/// A reader without its connection (see [`Entries::pause`]).
pub struct Paused(Position);

impl Database {
    /// A paused reader (see [`Entries::pause`]) going on through this connection.
    pub fn resume(&self, p: Paused) -> Entries<'_> {
        Entries { db: self, st: p.0 }
    }
}

/// Where the newest-first order of an unfiltered listing comes from.
enum Order {
    /// Walk `wtmp_login` backwards, one chunk of (Login, ID) keys at a time (the index
    /// alone answers: no table access for the order).
    Index,
    /// No index (an upstream database opened read-only, which a reader must not change),
    /// or a user or tty filter: all keys, 16 bytes a row, read in one pass and sorted in
    /// memory once, instead of a sort of the whole table per chunk.
    Memory {
        keys: Vec<(Usec, i64)>,
        next: usize,
        /// The filter's rows are read first from the User index (see `rows_for`).
        by_user: bool,
    },
}

/// Every failure of the reader reads the same to the user.
fn read_failed(e: rusqlite::Error) -> Error {
    sql("SQL error")(e)
}

impl<'a> Entries<'a> {
    /// Where this reader stands, without its connection: to go on through another
    /// connection to the same file ([`Database::resume`]), on another thread. Each chunk
    /// is its own read anyway, so nothing is lost or read twice.
    pub fn pause(self) -> Paused {
        Paused(self.st)
    }

    /// How many rows are left to read, when that is known: a filtered listing reads all its
    /// keys first. None for a walk of the Login index, which learns where it ends only there.
    pub fn known_left(&self) -> Option<usize> {
        match &self.st.order {
            Some(Order::Memory { keys, next, .. }) => {
                Some(keys.len() - next + self.st.buf.len() + self.st.held.left())
            }
            _ => None,
        }
    }

    /// Gives rows back after use: the next chunks are read into their buffers instead of
    /// fresh allocations (a long listing then allocates almost nothing per row).
    pub fn recycle(&mut self, mut used: Vec<Entry>) {
        if self.st.pool.len() < 16_384 {
            self.st.pool.append(&mut used);
        }
    }

    /// `leading` followed by the values of the filter's conditions, in the order
    /// `queries::filtered_keys` and `queries::rows_without_login` place them.
    fn with_filter_values(&self, mut leading: Vec<Value>) -> Vec<Value> {
        if let Some(max) = self.st.filter.login_at_most {
            leading.push(Value::Integer(max));
        }
        // Once as users, once as ttys.
        for _ in 0..2 {
            for v in &self.st.filter.users_or_ttys {
                leading.push(Value::Text(v.clone()));
            }
        }
        leading
    }

    /// `max` and then the filter's users or ttys, `times` over: the arguments of
    /// [`queries::user_keys`] and its kin (once), and of [`queries::tty_keys`] (twice).
    fn max_and_values(&self, max: Usec, times: usize) -> Vec<Value> {
        let values = &self.st.filter.users_or_ttys;
        let mut args = Vec::with_capacity(1 + values.len() * times);
        args.push(Value::Integer(max));
        for _ in 0..times {
            args.extend(values.iter().cloned().map(Value::Text));
        }
        args
    }

    /// The rows without a Login that pass the filter.
    fn rows_without_login(&self) -> Result<Vec<Entry>> {
        let sql = queries::rows_without_login(
            self.st.filter.users_or_ttys.len(),
            self.st.filter.login_at_most.is_some(),
        );
        let args = self.with_filter_values(Vec::new());
        let conn = &self.db.conn;
        // One read: its start waits out an index in the making, as a chunk's does.
        in_one_read(conn, self.db.index_wait(), read_failed, || {
            let mut stmt = conn.prepare_cached(&sql).map_err(read_failed)?;
            let rows = stmt
                .query_map(params_from_iter(args.iter()), Entry::from_row)
                .map_err(read_failed)?;
            rows.collect::<rusqlite::Result<Vec<Entry>>>()
                .map_err(read_failed)
        })
    }

    fn keys<V: rusqlite::ToSql>(&self, sql: &str, args: &[V]) -> Result<Vec<(Usec, i64)>> {
        let mut stmt = self.db.conn.prepare_cached(sql).map_err(read_failed)?;
        let rows = stmt
            .query_map(params_from_iter(args.iter()), |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(read_failed)?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(read_failed)
    }

    /// The rows of `keys`, in the order of `keys` (newest first); a row deleted or replaced
    /// since its key was read is left out. A filtered listing on a file with a User index
    /// reads the rows of its users through that index, over the chunk's Login range; the
    /// others (a tty's, or all of them on a file without that index) are read by ID.
    fn rows_for(&mut self, keys: &[(Usec, i64)]) -> Result<Vec<Entry>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut out: Vec<Entry> = Vec::with_capacity(keys.len());
        for _ in 0..keys.len() {
            out.push(self.st.pool.pop().unwrap_or_default());
        }
        let mut filled = vec![false; keys.len()];
        if matches!(self.st.order, Some(Order::Memory { by_user: true, .. })) {
            self.fill_from_user_index(keys, &mut out, &mut filled)?;
        }
        let missing: Vec<usize> = (0..keys.len()).filter(|&i| !filled[i]).collect();
        if !missing.is_empty() {
            self.fill_by_id(keys, &missing, &mut out, &mut filled)?;
        }
        if filled.iter().all(|&f| f) {
            return Ok(out);
        }
        let mut kept = Vec::with_capacity(out.len());
        for (e, f) in out.into_iter().zip(filled) {
            if f {
                kept.push(e);
            } else {
                self.st.pool.push(e);
            }
        }
        Ok(kept)
    }

    /// Fills the rows of `keys` that belong to one of the filter's values taken as a user,
    /// from the User index over the Login range of `keys` (one statement; see
    /// [`queries::user_rows_between`]). A row of that range whose key is not in `keys` (one
    /// written since the keys were read) is not listed.
    fn fill_from_user_index(
        &self,
        keys: &[(Usec, i64)],
        out: &mut [Entry],
        filled: &mut [bool],
    ) -> Result<()> {
        let (Some(lo), Some(hi)) = (
            keys.iter().map(|k| k.0).min(),
            keys.iter().map(|k| k.0).max(),
        ) else {
            return Ok(());
        };
        // (ID, place) by ID, searched: a chunk's IDs are distinct (a key each).
        let mut by_id: Vec<(i64, u32)> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.1, i as u32))
            .collect();
        by_id.sort_unstable();
        let users = &self.st.filter.users_or_ttys;
        let sql = queries::user_rows_between(users.len());
        let mut stmt = self.db.conn.prepare_cached(&sql).map_err(read_failed)?;
        let mut args: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(users.len() + 2);
        args.push(&lo);
        args.push(&hi);
        for u in users {
            args.push(u);
        }
        let mut rows = stmt.query(args.as_slice()).map_err(read_failed)?;
        while let Some(r) = rows.next().map_err(read_failed)? {
            let id = row_id(r).map_err(read_failed)?;
            let Ok(at) = by_id.binary_search_by_key(&id, |&(id, _)| id) else {
                continue;
            };
            let i = by_id[at].1 as usize;
            out[i].fill_from_row(r).map_err(read_failed)?;
            filled[i] = out[i].login == keys[i].0;
        }
        Ok(())
    }

    /// Fills the rows of the keys at `which` (places in `keys`) by their IDs: as one range
    /// of IDs when the keys are dense in it (the usual case: IDs grow with time), so the
    /// table is read sequentially instead of one B-tree descent per row, else as a list.
    fn fill_by_id(
        &self,
        keys: &[(Usec, i64)],
        which: &[usize],
        out: &mut [Entry],
        filled: &mut [bool],
    ) -> Result<()> {
        let (Some(lo), Some(hi)) = (
            which.iter().map(|&i| keys[i].1).min(),
            which.iter().map(|&i| keys[i].1).max(),
        ) else {
            return Ok(());
        };
        let dense = u128::from(hi.abs_diff(lo)) <= 2 * which.len() as u128 + 64;
        // Where each ID goes in the output: an array over the ID range when dense.
        let mut by_offset: Vec<u32> = Vec::new();
        // Else (ID, place) by ID, searched: a chunk's IDs are distinct (a key each).
        let mut by_id: Vec<(i64, u32)> = Vec::new();
        if dense {
            by_offset = vec![u32::MAX; (hi - lo + 1) as usize];
            for &i in which {
                by_offset[(keys[i].1 - lo) as usize] = i as u32;
            }
        } else {
            by_id = which.iter().map(|&i| (keys[i].1, i as u32)).collect();
            by_id.sort_unstable();
        }
        let sql = if dense {
            queries::ROWS_IN_ID_RANGE
        } else {
            queries::ROWS_IN_ID_LIST
        };
        let mut stmt = self.db.conn.prepare_cached(sql).map_err(read_failed)?;
        let mut rows = if dense {
            stmt.query(params![lo, hi])
        } else {
            let mut ids = String::with_capacity(which.len() * 8 + 2);
            ids.push('[');
            for (n, &(id, _)) in by_id.iter().enumerate() {
                if n > 0 {
                    ids.push(',');
                }
                let _ = write!(ids, "{id}");
            }
            ids.push(']');
            stmt.query(params![ids])
        }
        .map_err(read_failed)?;
        while let Some(r) = rows.next().map_err(read_failed)? {
            let id = row_id(r).map_err(read_failed)?;
            let slot = if dense {
                by_offset
                    .get((id - lo) as usize)
                    .copied()
                    .filter(|&i| i != u32::MAX)
            } else {
                by_id
                    .binary_search_by_key(&id, |&(id, _)| id)
                    .ok()
                    .map(|at| by_id[at].1)
            };
            if let Some(i) = slot {
                let i = i as usize;
                out[i].fill_from_row(r).map_err(read_failed)?;
                // A row deleted or replaced since its key was read is skipped.
                filled[i] = out[i].login == keys[i].0;
            }
        }
        Ok(())
    }

    /// Whether the file has a User index (as its reader learned at its open, or asked now).
    fn has_user_index(&self) -> Result<bool> {
        match self.db.user_index {
            Some(known) => Ok(known),
            None => self
                .db
                .conn
                .query_row(queries::HAS_USER_INDEX, [], |r| r.get(0))
                .map_err(read_failed),
        }
    }

    /// Reads every row of a filtered listing with Login at most `cursor` at once into
    /// [`Position::held`], when the file has a User index and they are few
    /// ([`ONE_READ_ROWS`], and no more than the rows wanted): the users' rows in one
    /// statement through that index, without reading their keys first, and the ttys' by
    /// ID. False otherwise, having read no row: the listing then goes by keys and chunks.
    fn hold_rows_of_users(&mut self, cursor: Usec) -> Result<bool> {
        let values = self.st.filter.users_or_ttys.len();
        if values == 0 || !self.has_user_index()? {
            return Ok(false);
        }
        let max = self.st.filter.login_at_most.unwrap_or(i64::MAX).min(cursor);
        let args = self.max_and_values(max, 1);
        let users: i64 = self
            .db
            .conn
            .prepare_cached(&queries::user_count(values))
            .and_then(|mut stmt| stmt.query_row(params_from_iter(args.iter()), |r| r.get(0)))
            .map_err(read_failed)?;
        let tty_args = self.max_and_values(max, 2);
        let tty_keys = self.keys(&queries::tty_keys(values), &tty_args)?;
        let all = usize::try_from(users)
            .unwrap_or(usize::MAX)
            .saturating_add(tty_keys.len());
        let wanted = self.st.filter.rows_wanted;
        if all > ONE_READ_ROWS || (wanted > 0 && all > wanted) {
            return Ok(false);
        }
        let mut held = Packed::default();
        let tty_rows = self.rows_for(&tty_keys)?;
        for e in &tty_rows {
            held.push_entry(e);
        }
        self.st.pool.extend(tty_rows);
        let mut stmt = self
            .db
            .conn
            .prepare_cached(&queries::user_rows_between(values))
            .map_err(read_failed)?;
        let mut between: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(values + 2);
        between.push(&i64::MIN);
        between.push(&max);
        for u in &self.st.filter.users_or_ttys {
            between.push(u);
        }
        let mut found = stmt.query(between.as_slice()).map_err(read_failed)?;
        while let Some(r) = found.next().map_err(read_failed)? {
            held.push_row(r).map_err(read_failed)?;
        }
        self.st.read += held.left();
        self.st.held = held;
        self.st.order = Some(Order::Memory {
            keys: Vec::new(),
            next: 0,
            by_user: true,
        });
        Ok(true)
    }

    /// The next batch of [`Position::held`] (empty when none is left).
    fn held_batch(&mut self) -> Vec<Entry> {
        let n = self.st.held.left().min(HELD_BATCH);
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let mut e = self.st.pool.pop().unwrap_or_default();
            self.st.held.take_into(&mut e);
            out.push(e);
        }
        out
    }

    /// The next chunk of keys of an unfiltered listing, always ending with a whole group
    /// of equal Login (so ties can be ordered); empty when done.
    fn next_keys(&mut self, cursor: Usec) -> Result<Vec<(Usec, i64)>> {
        let max = self.st.filter.login_at_most.unwrap_or(i64::MAX).min(cursor);
        if self.st.order.is_none() {
            let indexed: bool = match self.db.login_index {
                Some(known) => known,
                None => self
                    .db
                    .conn
                    .query_row(queries::HAS_LOGIN_INDEX, [], |r| r.get(0))
                    .map_err(read_failed)?,
            };
            // A user or tty filter selects few rows: their keys come from the User index
            // and wtmp_tty and are ordered here, once.
            self.st.order = Some(if indexed && self.st.filter.users_or_ttys.is_empty() {
                Order::Index
            } else {
                let values = self.st.filter.users_or_ttys.len();
                let by_user = values > 0 && self.has_user_index()?;
                let mut keys = if by_user {
                    let args = self.max_and_values(max, 1);
                    let mut keys = self.keys(&queries::user_keys(values), &args)?;
                    keys.extend(
                        self.keys(&queries::tty_keys(values), &self.max_and_values(max, 2))?,
                    );
                    keys
                } else {
                    let sql =
                        queries::filtered_keys(values, self.st.filter.login_at_most.is_some());
                    let args = self.with_filter_values(vec![Value::Integer(max)]);
                    self.keys(&sql, &args)?
                };
                keys.sort_unstable_by(|a, b| b.cmp(a));
                Order::Memory {
                    keys,
                    next: 0,
                    by_user,
                }
            });
        }
        let mut chunk = self.st.chunk as usize;
        self.st.chunk = (self.st.chunk * 4).min(4096);
        if self.st.filter.rows_wanted > 0 {
            // What is left of the rows wanted: a listing that stops there (`last -n 500`)
            // read a chunk of 1,024 and, on the thread that reads ahead, four of 4,096.
            let left = self.st.filter.rows_wanted.saturating_sub(self.st.read);
            if left > 0 && chunk >= left {
                chunk = left;
                // Past them (rows the listing skips, as many as the table holds under
                // `-s`), chunks start again at the first's size and grow as always.
                self.st.chunk = FIRST_CHUNK;
            }
        }
        match self.st.order.as_mut() {
            Some(Order::Memory { keys, next, .. }) => {
                let start = *next;
                let mut end = (start + chunk).min(keys.len());
                while end < keys.len() && end > start && keys[end].0 == keys[end - 1].0 {
                    end += 1;
                }
                *next = end;
                self.st.read += end - start;
                Ok(keys[start..end].to_vec())
            }
            _ => {
                // One key more than the chunk: when it has another Login, the chunk ends with
                // a whole group and needs no second statement (that key comes again next).
                let mut keys = self.keys(queries::LOGIN_KEYS_CHUNK, &[max, chunk as i64 + 1])?;
                if keys.len() > chunk {
                    let last = keys[chunk - 1].0;
                    if keys[chunk].0 != last {
                        keys.truncate(chunk);
                    } else {
                        keys.retain(|k| k.0 != last);
                        keys.extend(self.keys(queries::LOGIN_KEYS_EQUAL, &[last])?);
                    }
                }
                self.st.read += keys.len();
                Ok(keys)
            }
        }
    }

    /// The next chunk, newest first (possibly empty while not done).
    fn chunk(&mut self) -> Result<Vec<Entry>> {
        if self.st.held.left() > 0 {
            return Ok(self.held_batch());
        }
        if let Some(cursor) = self.st.cursor {
            // The keys and their rows in one read: one set of locks, and no row deleted or
            // replaced between the two statements.
            let conn = &self.db.conn;
            let mut rows = in_one_read(conn, self.db.index_wait(), read_failed, || {
                if self.st.order.is_none() && self.hold_rows_of_users(cursor)? {
                    self.st.cursor = None;
                    return Ok(Vec::new());
                }
                let keys = self.next_keys(cursor)?;
                match keys.last() {
                    Some(&(login, _)) => self.st.cursor = login.checked_sub(1),
                    None => self.st.cursor = None,
                }
                self.rows_for(&keys)
            })?;
            self.db.still_unchanged()?;
            if self.st.held.left() > 0 {
                self.st.held.sort_newest_first();
                return Ok(self.held_batch());
            }
            order_ties(&mut rows);
            Ok(rows)
        } else if !self.st.nulls_done {
            self.st.nulls_done = true;
            let mut rows = self.rows_without_login()?;
            self.db.still_unchanged()?;
            order_ties(&mut rows);
            Ok(rows)
        } else {
            Ok(Vec::new())
        }
    }

    /// The next chunk of rows at once (newest first), for a reader that hands rows on in
    /// batches; None when done.
    pub fn next_batch(&mut self) -> Option<Result<Vec<Entry>>> {
        if !self.st.buf.is_empty() {
            return Some(Ok(Vec::from(std::mem::take(&mut self.st.buf))));
        }
        loop {
            if self.st.cursor.is_none() && self.st.nulls_done && self.st.held.left() == 0 {
                return None;
            }
            match self.chunk() {
                Ok(rows) if rows.is_empty() => continue,
                Ok(rows) => return Some(Ok(rows)),
                Err(e) => {
                    self.st.cursor = None;
                    self.st.nulls_done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Within equal Login, upstream's order: no logout first, then earlier logout, then ID.
fn order_ties(rows: &mut [Entry]) {
    rows.sort_by(|a, b| listing_order((a.login, a.logout, a.id), (b.login, b.logout, b.id)));
}

/// The order of a listing, of two rows given as (Login, Logout, ID): Login descending;
/// within equal Login no logout first, then earlier logout, then ID.
pub(super) fn listing_order(
    (a_login, a_logout, a_id): (Usec, Option<Usec>, i64),
    (b_login, b_logout, b_id): (Usec, Option<Usec>, i64),
) -> std::cmp::Ordering {
    b_login
        .cmp(&a_login)
        .then_with(|| match (a_logout, b_logout) {
            (None, None) => std::cmp::Ordering::Equal,
            (None, Some(_)) => std::cmp::Ordering::Less,
            (Some(_), None) => std::cmp::Ordering::Greater,
            (Some(x), Some(y)) => x.cmp(&y),
        })
        .then_with(|| a_id.cmp(&b_id))
}

impl Iterator for Entries<'_> {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.st.buf.is_empty() {
            match self.next_batch()? {
                Ok(rows) => self.st.buf = VecDeque::from(rows),
                Err(e) => return Some(Err(e)),
            }
        }
        self.st.buf.pop_front().map(Ok)
    }
}

/// A session row without a logout and the process recorded with it, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenRow {
    pub entry: Entry,
    pub process: Option<crate::process::Process>,
}

impl Database {
    /// The session rows without a logout whose Login is at or after `since`, oldest first,
    /// with the process recorded for each (none for rows upstream or an older version
    /// wrote). Reads the open rows only (the partial index `wtmp_open`), never the table,
    /// where the file has our indexes.
    pub fn open_since(&self, since: Usec) -> Result<Vec<OpenRow>> {
        self.lookup("Cannot read open sessions", |c| {
            let with_process: bool = c
                .query_row(queries::HAS_PROCESS_TABLE, [], |r| r.get::<_, i64>(0))
                .map(|n| n > 0)?;
            let indexed: bool = c.query_row(queries::HAS_OPEN_INDEX, [], |r| r.get(0))?;
            let sql = match (with_process, indexed) {
                (true, true) => queries::OPEN_SINCE_WITH_PROCESS,
                (true, false) => queries::OPEN_SINCE_WITH_PROCESS_NO_INDEX,
                (false, true) => queries::OPEN_SINCE,
                (false, false) => queries::OPEN_SINCE_NO_INDEX,
            };
            let mut stmt = c.prepare_cached(sql)?;
            let rows = stmt.query_map([since], |r| {
                let entry = Entry::from_row(r)?;
                let pid: Option<i64> = r.get(8)?;
                let start_time: Option<i64> = r.get(9)?;
                let process = pid.map(|pid| crate::process::Process {
                    pid: i32::try_from(pid).unwrap_or(-1),
                    start_time,
                });
                Ok(OpenRow { entry, process })
            })?;
            rows.collect()
        })
    }

    /// The processes recorded for the sessions in rows `ids` (those that have one): what
    /// [`Database::open_since`] joins to its rows, for a reader that got the rows another
    /// way (the daemon's stream).
    pub fn processes(
        &self,
        ids: impl IntoIterator<Item = i64>,
    ) -> Result<HashMap<i64, crate::process::Process>> {
        self.lookup("Cannot read session processes", |c| {
            let mut found = HashMap::new();
            let with_process: bool = c
                .query_row(queries::HAS_PROCESS_TABLE, [], |r| r.get::<_, i64>(0))
                .map(|n| n > 0)?;
            if !with_process {
                return Ok(found);
            }
            let mut stmt = c.prepare_cached(queries::PROCESS_OF)?;
            for id in ids {
                let p = stmt
                    .query_row([id], |r| {
                        Ok(crate::process::Process {
                            pid: i32::try_from(r.get::<_, i64>(0)?).unwrap_or(-1),
                            start_time: r.get(1)?,
                        })
                    })
                    .optional()?;
                if let Some(p) = p {
                    found.insert(id, p);
                }
            }
            Ok(found)
        })
    }

    /// The user names of the table in order, starting after `after` ("" for the first):
    /// one step of a loose index scan of the User index. None when no name follows.
    pub fn next_user(&self, after: &str) -> Result<Option<String>> {
        self.lookup("Cannot read users", |c| {
            c.prepare_cached(queries::NEXT_USER)?
                .query_row([after], |r| r.get::<_, Option<String>>(0))
        })
    }

    /// The newest session row (Type 3) of `user`, if it ever logged in.
    pub fn newest_session_of(&self, user: &str) -> Result<Option<Entry>> {
        self.lookup("Cannot read the newest login", |c| {
            c.prepare_cached(queries::NEWEST_SESSION_OF_USER)?
                .query_row([user], Entry::from_row)
                .optional()
        })
    }

    /// Whether the file has the User index (which `lastlog` walks); one written by
    /// upstream and opened read-only has none.
    pub fn has_user_index(&self) -> Result<bool> {
        self.lookup("Cannot read the schema", |c| {
            c.query_row(queries::HAS_USER_INDEX, [], |r| r.get(0))
        })
    }

    /// The newest session row of every user, by name, in one pass over the table: for a
    /// file without the User index only.
    pub fn newest_sessions_by_scan(&self) -> Result<Vec<Entry>> {
        self.lookup("Cannot read the newest logins", |c| {
            c.prepare(queries::NEWEST_SESSION_PER_USER_SCAN)?
                .query_map([], Entry::from_row)?
                .collect()
        })
    }
}
