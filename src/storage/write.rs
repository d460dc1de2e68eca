//! Writing: logins and logouts, boots, imports, and rotating old rows into an archive.

use std::path::Path;

use rusqlite::types::Value;
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::error::{Error, Result, sql};
use super::record::NewEntry;
use super::{Database, Migrate, OpenOptions, files, queries};
use crate::time::Usec;

/// How long one import transaction may hold the write lock, its commit included (then it
/// commits, copies its pages into the database file and pauses). A login or logout waits for
/// at most one such transaction; a session (two writes) for two.
pub const IMPORT_BATCH_TIME: std::time::Duration = std::time::Duration::from_millis(20);

/// What one rotate batch (the archive's commit and the database's delete) should take:
/// the time a login may wait for it.
pub const ROTATE_BATCH_TIME: std::time::Duration = std::time::Duration::from_millis(25);

/// The pause after each import or rotate transaction, in which waiting writers take the
/// lock (a login's busy handler retries at least every 2.4 ms); without it the maintenance
/// job would win the lock again at once. Paused again while others commit (see
/// [`Database::maintenance_pause`]), up to [`MAINTENANCE_PAUSE_MAX`].
pub const MAINTENANCE_PAUSE: std::time::Duration = std::time::Duration::from_millis(3);

/// The longest pause after one maintenance transaction while other connections keep
/// committing: a session's second write (the logout right after a login, a login's mirror
/// rows) comes a millisecond or two after its first, and without a longer pause it found the
/// next batch under way and waited for all of it.
pub const MAINTENANCE_PAUSE_MAX: std::time::Duration = std::time::Duration::from_millis(15);

/// A row as the table holds it (the columns of `queries::columns!`, ID first), untyped: what
/// rotate moves between a database and its archive.
pub(super) type WholeRow = [Value; 8];

/// Reads a [`WholeRow`] from a statement that selects every column.
pub(super) fn whole_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<WholeRow> {
    Ok([
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
    ])
}

impl Database {
    /// Records a login (or boot) and returns the new row's ID.
    pub fn login(&self, e: &NewEntry<'_>) -> Result<i64> {
        const FAILED: &str = "Adding an entry failed";
        let mut stmt = self
            .conn
            .prepare_cached(queries::INSERT)
            .map_err(sql(FAILED))?;
        stmt.execute(e.insert_values()).map_err(sql(FAILED))?;
        let id = self.conn.last_insert_rowid();
        self.synced()?;
        Ok(id)
    }

    /// Records a session's login and the process that serves it (see
    /// [`crate::process`]) in one transaction, and returns the new row's ID. The process goes
    /// into the table `wtmp_process`, which upstream never reads; it is created here if the
    /// schema steps were skipped.
    pub fn login_with_process(&self, e: &NewEntry<'_>, p: &crate::process::Process) -> Result<i64> {
        const FAILED: &str = "Adding an entry failed";
        // Prepared before the write lock is taken: a new connection reads the schema on its
        // first prepare, which then happens while other logins may still write.
        let mut insert = self
            .conn
            .prepare_cached(queries::INSERT)
            .map_err(sql(FAILED))?;
        // Fails when the table is missing (schema steps skipped): created below.
        let process = self.conn.prepare_cached(queries::INSERT_PROCESS);
        let tx = rusqlite::Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)
            .map_err(sql(FAILED))?;
        insert.execute(e.insert_values()).map_err(sql(FAILED))?;
        let id = tx.last_insert_rowid();
        let values = params![id, p.pid, p.start_time];
        match process {
            Ok(mut stmt) => stmt.execute(values),
            Err(_) => tx
                .execute_batch(queries::CREATE_PROCESS_TABLE)
                .and_then(|()| tx.execute(queries::INSERT_PROCESS, values)),
        }
        .map_err(sql(FAILED))?;
        drop(insert);
        tx.commit().map_err(sql(FAILED))?;
        self.synced()?;
        Ok(id)
    }

    /// Sets the logout time of row `id`. A row already logged out keeps its first logout
    /// time (closing twice is harmless); a missing row is an error.
    pub fn logout(&self, id: i64, at: Usec) -> Result<()> {
        const FAILED: &str = "Update of logout time failed";
        let mut stmt = self
            .conn
            .prepare_cached(queries::LOGOUT)
            .map_err(sql(FAILED))?;
        let n = stmt.execute(params![at, id]).map_err(sql(FAILED))?;
        if n == 1 {
            return self.synced();
        }
        let exists = self
            .conn
            .query_row(queries::ROW_EXISTS, [id], |r| r.get::<_, i64>(0))
            .map(|c| c > 0)
            .map_err(sql(FAILED))?;
        if exists {
            Ok(())
        } else {
            Err(Error::LogoutRows(0))
        }
    }

    /// Runs `f` inside one IMMEDIATE transaction (all or nothing).
    fn in_transaction<T>(
        &mut self,
        context: &'static str,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql(context))?;
        let v = f(&tx)?;
        tx.commit().map_err(sql(context))?;
        self.synced()?;
        Ok(v)
    }

    /// Inserts a boot row unless the newest `reboot` row lies within `same_boot` of it (the
    /// same boot, recorded before); check and insert are one transaction, so two concurrent
    /// runs record it once. Returns the new row's ID, or None when it was already there.
    pub fn record_boot(&mut self, e: &NewEntry<'_>, same_boot: Usec) -> Result<Option<i64>> {
        self.in_transaction("Adding a boot entry failed", |tx| {
            if same_boot > 0 {
                let prev: Option<Usec> = tx
                    .query_row(queries::NEWEST_REBOOT_LOGIN, [], |r| r.get(0))
                    .optional()
                    .map_err(sql("Cannot read boot time"))?;
                if prev.is_some_and(|p| p.abs_diff(e.login) < same_boot.unsigned_abs()) {
                    return Ok(None);
                }
            }
            tx.execute(queries::INSERT, e.insert_values())
                .map_err(sql("Adding an entry failed"))?;
            Ok(Some(tx.last_insert_rowid()))
        })
    }

    /// Inserts many rows in one transaction: either all of them are committed or none.
    pub fn insert_all<'a>(
        &mut self,
        rows: impl IntoIterator<Item = NewEntry<'a>>,
        mut progress: impl FnMut(u64),
    ) -> Result<u64> {
        const FAILED: &str = "Import failed";
        self.in_transaction(FAILED, |tx| {
            let mut stmt = tx.prepare_cached(queries::INSERT).map_err(sql(FAILED))?;
            let mut n = 0u64;
            for e in rows {
                stmt.execute(e.insert_values()).map_err(sql(FAILED))?;
                n += 1;
                if n % 65536 == 0 {
                    progress(n);
                }
            }
            Ok(n)
        })
    }

    /// Inserts the rows of an import in file order, in short transactions, so that logins
    /// never wait for more than one of them, and without duplicates. Each row comes with its
    /// occurrence: how many earlier rows of the same import record the same event (Login,
    /// Type, User, TTY). The n-th row of an event is the n-th row the table holds for it (by
    /// ID), if there is one: then nothing is added, and that row only gets the logout time
    /// when it had none (a file imported again after it grew). The rows this call adds for an
    /// event are its occurrences from the first one the table lacked on, so they take exactly
    /// those places; rows another import of the same file commits meanwhile take them too
    /// and are not added again. Importing a file again, again after an interrupted run, or
    /// twice at the same time therefore adds only what is missing. `logins` spans the rows'
    /// Login times. Returns how many rows were inserted; on an error, `committed` holds how
    /// many were inserted before it (by transactions that committed).
    pub fn import_rows<'a>(
        &mut self,
        rows: impl IntoIterator<Item = (NewEntry<'a>, u32)>,
        logins: std::ops::RangeInclusive<Usec>,
        committed: &mut u64,
        mut progress: impl FnMut(u64),
    ) -> Result<u64> {
        const FAILED: &str = "Import failed";
        *committed = 0;
        let (lo, hi) = (*logins.start(), *logins.end());
        // While no row in the file's time span is in the table (a first import), no row
        // needs the check; each batch first looks at the rows written since the last one
        // (by another import of the same file, say), as the first looks at every row.
        let mut check = false;
        let mut seen_up_to: Option<i64> = None;
        // Room for the index pages every batch adds to (one per user, one per tty, ...),
        // instead of reading them again for each batch.
        let _ = self.conn.execute_batch(queries::ROTATE_CACHE_SIZE);
        let result = (|| {
            let mut rows = rows.into_iter().peekable();
            let mut next = 0u64;
            let mut inserted = 0u64;
            // Until a commit was timed, half the time is left for it.
            let mut commit_took = IMPORT_BATCH_TIME / 2;
            while rows.peek().is_some() {
                let started = std::time::Instant::now();
                let tx = self
                    .conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(sql(FAILED))?;
                if !check {
                    check = match seen_up_to {
                        None => tx.query_row(queries::ANY_LOGIN_BETWEEN, params![lo, hi], |r| {
                            r.get::<_, bool>(0)
                        }),
                        Some(id) => tx.query_row(
                            queries::ANY_LOGIN_BETWEEN_AFTER_ID,
                            params![lo, hi, id],
                            |r| r.get::<_, bool>(0),
                        ),
                    }
                    .map_err(sql(FAILED))?;
                }
                {
                    let mut insert = tx.prepare_cached(queries::INSERT).map_err(sql(FAILED))?;
                    let mut nth = tx
                        .prepare_cached(queries::NTH_SAME_EVENT)
                        .map_err(sql(FAILED))?;
                    let mut complete = tx.prepare_cached(queries::LOGOUT).map_err(sql(FAILED))?;
                    for (e, occurrence) in rows.by_ref() {
                        next += 1;
                        let found: Option<(i64, Option<Usec>)> = if check {
                            nth.query_row(
                                params![
                                    e.login,
                                    e.kind.as_i64(),
                                    e.user,
                                    e.tty.unwrap_or(""),
                                    occurrence
                                ],
                                |r| Ok((r.get(0)?, r.get(1)?)),
                            )
                            .optional()
                            .map_err(sql(FAILED))?
                        } else {
                            None
                        };
                        match (found, e.logout) {
                            (None, _) => {
                                insert.execute(e.insert_values()).map_err(sql(FAILED))?;
                                inserted += 1;
                            }
                            (Some((id, None)), Some(out)) => {
                                complete.execute(params![out, id]).map_err(sql(FAILED))?;
                            }
                            (Some(_), _) => {}
                        }
                        // The commit still to come writes every page the batch changed
                        // (some thousand index pages, whatever the batch's length): as
                        // long as the last one took.
                        if next % 64 == 0 && started.elapsed() + commit_took >= IMPORT_BATCH_TIME {
                            break;
                        }
                    }
                }
                if !check {
                    // Every row up to here is this call's own or was looked at.
                    seen_up_to = Some(
                        tx.query_row(queries::MAX_ID, [], |r| r.get(0))
                            .map_err(sql(FAILED))?,
                    );
                }
                let commit = std::time::Instant::now();
                tx.commit().map_err(sql(FAILED))?;
                commit_took = commit.elapsed();
                self.maintenance_synced()?;
                *committed = inserted;
                progress(next);
                if rows.peek().is_some() {
                    self.maintenance_pause();
                }
            }
            Ok(inserted)
        })();
        let _ = self.conn.execute_batch(queries::DEFAULT_CACHE_SIZE);
        result
    }

    /// Merges spooled writes (see `session::spool`) in one transaction, in their order:
    /// each as it would have been written live at its time. A login whose token was merged
    /// before is skipped; a logout keeps an earlier one; a logout by lookup is remembered by
    /// its token, so merging it again closes nothing more. A logout of a token not known at
    /// its place (a clock set back between a login and its logout) is tried again after
    /// the others. What each write did comes back in order. Tokens of rows no longer open
    /// are forgotten after 30 days.
    pub fn merge_spooled(&mut self, writes: &[SpooledWrite<'_>]) -> Result<Vec<SpooledDone>> {
        const FAILED: &str = "Merging the spool failed";
        /// How long a merged login's token is kept after its row closed.
        const KEEP: Usec = 30 * 86_400 * 1_000_000;
        let now = crate::time::now();
        self.in_transaction(FAILED, |tx| {
            tx.execute_batch(queries::CREATE_SPOOLED)
                .map_err(sql(FAILED))?;
            let mut known = tx
                .prepare_cached(queries::SPOOLED_ID)
                .map_err(sql(FAILED))?;
            let mut insert = tx.prepare_cached(queries::INSERT).map_err(sql(FAILED))?;
            let mut remember = tx
                .prepare_cached(queries::REMEMBER_SPOOLED)
                .map_err(sql(FAILED))?;
            let mut logout = tx.prepare_cached(queries::LOGOUT).map_err(sql(FAILED))?;
            let mut open = tx
                .prepare_cached(queries::OPEN_SESSIONS_UNTIL)
                .map_err(sql(FAILED))?;
            let mut known_id = |token: i64| -> Result<Option<i64>> {
                known
                    .query_row([token], |r| r.get(0))
                    .optional()
                    .map_err(sql(FAILED))
            };
            let mut done = Vec::with_capacity(writes.len());
            let mut later = Vec::new();
            for (i, w) in writes.iter().enumerate() {
                done.push(match w {
                    SpooledWrite::Login { token, entry } => {
                        if known_id(*token)?.is_some() {
                            SpooledDone::Again
                        } else {
                            insert.execute(entry.insert_values()).map_err(sql(FAILED))?;
                            let row = tx.last_insert_rowid();
                            remember
                                .execute(params![token, row, now])
                                .map_err(sql(FAILED))?;
                            SpooledDone::Written(row)
                        }
                    }
                    SpooledWrite::Logout { of, at } => {
                        let id = match of {
                            Ok(id) => Some(*id),
                            Err(token) => known_id(*token)?,
                        };
                        match id {
                            Some(id) => {
                                logout.execute(params![at, id]).map_err(sql(FAILED))?;
                                SpooledDone::Written(id)
                            }
                            None => {
                                later.push(i);
                                SpooledDone::NoRow
                            }
                        }
                    }
                    SpooledWrite::LookupLogout {
                        token,
                        user,
                        tty,
                        service,
                        at,
                    } => {
                        if known_id(*token)?.is_some() {
                            SpooledDone::Again
                        } else {
                            // As the live lookup: the newest open row of the same user, tty
                            // and service, if exactly one matches; of those logged in by the
                            // logout's time (not a session that began after it, written
                            // live before this merge).
                            let found: Vec<i64> = open
                                .query_map(params![tty, user, service, 2, at], |r| r.get(0))
                                .and_then(Iterator::collect)
                                .map_err(sql(FAILED))?;
                            let (row, result) = match found.as_slice() {
                                [id] => {
                                    logout.execute(params![at, id]).map_err(sql(FAILED))?;
                                    (*id, SpooledDone::Written(*id))
                                }
                                // No row has ID 0: the token is pruned as any closed row's.
                                _ => (0, SpooledDone::NoRow),
                            };
                            remember
                                .execute(params![token, row, now])
                                .map_err(sql(FAILED))?;
                            result
                        }
                    }
                });
            }
            for i in later {
                let SpooledWrite::Logout { of: Err(token), at } = &writes[i] else {
                    continue;
                };
                if let Some(id) = known_id(*token)? {
                    logout.execute(params![at, id]).map_err(sql(FAILED))?;
                    done[i] = SpooledDone::Written(id);
                }
            }
            tx.execute(queries::PRUNE_SPOOLED, [now.saturating_sub(KEEP)])
                .map_err(sql(FAILED))?;
            Ok(done)
        })
    }

    /// The row a spooled login became, once merged.
    pub fn spooled_row(&self, token: i64) -> Result<Option<i64>> {
        const FAILED: &str = "Cannot read the spool's rows";
        let has: i64 = self
            .conn
            .query_row(queries::HAS_SPOOLED_TABLE, [], |r| r.get(0))
            .map_err(sql(FAILED))?;
        if has == 0 {
            return Ok(None);
        }
        self.conn
            .query_row(queries::SPOOLED_ID, [token], |r| r.get(0))
            .optional()
            .map_err(sql(FAILED))
    }

    /// Moves the rows with `Login <= threshold` into the archive database at `archive`
    /// (created if missing, appended to if present; never deleted), or deletes them when
    /// `archive` is None, except what is alive: the running boot row and every row open
    /// since it began stay, whatever the threshold (their logouts are still to come), and so
    /// does the row with the largest ID, so that SQLite never hands an archived row's ID to
    /// a new row.
    ///
    /// Batch by batch, under this database's write lock (so no logout changes the batch
    /// meanwhile): the rows are copied into the archive and committed there first, then
    /// deleted here. Two files cannot commit together in WAL mode, so the order is what
    /// keeps every row: killed in between, the batch is in both files, and the next rotate
    /// finds its copies (the archive's `wtmp_rotated` table) and updates them instead of
    /// adding them again. Batches take about `ROTATE_BATCH_TIME` each, with a pause
    /// between them, so logins wait at most one short batch.
    ///
    /// The archive is ours: a new one is created with the database file's mode (and owner,
    /// as root); an existing name that is a link, not a regular file, or another user's file
    /// is refused before any row moves (see `files::prepare_archive`).
    pub fn rotate(&mut self, threshold: Usec, archive: Option<&Path>) -> Result<u64> {
        // The batch size follows the time the last batch took (its commits included).
        let mut batch: i64 = 2_000;
        let kept_id: i64 = self
            .conn
            .query_row(queries::MAX_ID, [], |r| r.get(0))
            .map_err(sql("Cannot read entries"))?;
        // Without any boot row there is no evidence that an open session ended: all stay.
        let running_since: Usec = self
            .conn
            .query_row(queries::NEWEST_BOOT_LOGIN, [], |r| {
                r.get::<_, Option<Usec>>(0)
            })
            .optional()
            .map_err(sql("Cannot read boot entries"))?
            .flatten()
            .unwrap_or(Usec::MIN);
        let any: bool = self
            .conn
            .query_row(
                queries::ANY_TO_ROTATE,
                params![threshold, kept_id, running_since],
                |r| r.get(0),
            )
            .map_err(sql("Cannot read entries"))?;
        if !any {
            return Ok(0);
        }
        let mut archive_db = match archive {
            Some(a) => Some(self.open_archive(a)?),
            None => None,
        };
        // Room for the indexes being rewritten, instead of reading them again per batch.
        let _ = self.conn.execute_batch(queries::ROTATE_CACHE_SIZE);
        const FAILED: &str = "Rotating entries failed";
        let result = (|| {
            let mut moved = 0u64;
            // IDs whose delete committed here but whose archive marks remain.
            let mut forget: Vec<i64> = Vec::new();
            loop {
                let started = std::time::Instant::now();
                let tx = self
                    .conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(sql(FAILED))?;
                let rows: Vec<WholeRow> = tx
                    .prepare_cached(queries::ROTATE_BATCH)
                    .and_then(|mut st| {
                        st.query_map(params![threshold, batch, kept_id, running_since], whole_row)?
                            .collect()
                    })
                    .map_err(sql(FAILED))?;
                if let Some(a) = archive_db.as_mut() {
                    a.archive_copies(&rows, &forget)?;
                }
                {
                    let mut delete = tx
                        .prepare_cached(queries::DELETE_ROW)
                        .map_err(sql(FAILED))?;
                    // Their processes go with them (`who` reads only rows that stay).
                    let processes: i64 = tx
                        .query_row(queries::HAS_PROCESS_TABLE, [], |r| r.get(0))
                        .map_err(sql(FAILED))?;
                    let mut process = if processes > 0 {
                        Some(
                            tx.prepare_cached(queries::DELETE_ROW_PROCESS)
                                .map_err(sql(FAILED))?,
                        )
                    } else {
                        None
                    };
                    for row in &rows {
                        delete.execute([&row[0]]).map_err(sql(FAILED))?;
                        if let Some(p) = process.as_mut() {
                            p.execute([&row[0]]).map_err(sql(FAILED))?;
                        }
                    }
                }
                tx.commit().map_err(sql(FAILED))?;
                self.synced()?;
                forget = rows
                    .iter()
                    .filter_map(|r| match r[0] {
                        Value::Integer(id) => Some(id),
                        _ => None,
                    })
                    .collect();
                let n = rows.len() as u64;
                moved += n;
                if n < batch as u64 {
                    break;
                }
                let took = started.elapsed().as_secs_f64().max(1e-6);
                let target = ROTATE_BATCH_TIME.as_secs_f64();
                batch = ((batch as f64 * target / took) as i64).clamp(256, 100_000);
                self.maintenance_pause();
            }
            if let Some(a) = archive_db.as_mut() {
                a.archive_copies(&[], &forget)?;
            }
            Ok(moved)
        })();
        let _ = self.conn.execute_batch(queries::DEFAULT_CACHE_SIZE);
        let moved = result?;
        if let Some(archive) = archive {
            drop(archive_db);
            // The archive's indexes, built once at the end (appending to index-free pages
            // is sequential), or by the next write if this run is cut off.
            drop(Database::open(
                archive,
                &OpenOptions::read_write().journal(super::Journal::Keep),
            )?);
        }
        Ok(moved)
    }

    /// Finishes what a rotate into `archive` left when it was killed between the archive's
    /// commit and this database's delete (see [`Database::rotate`]): the rows its marks name
    /// that are still here as the same event are brought up to date there and deleted here,
    /// and the marks are dropped. A later rotate writes into an archive of another name (the
    /// date of its threshold), where they would otherwise be copied a second time. An archive
    /// without marks is only read. Returns how many rows moved.
    pub fn finish_rotate(&mut self, archive: &Path) -> Result<u64> {
        const FAILED: &str = "Finishing an interrupted rotate failed";
        // A file of an archive's name that is no database of ours (or cannot be read) holds
        // no marks: it is left alone, as before.
        let marked: Vec<i64> = match Database::open_read_only(archive) {
            Ok(a) => {
                let has: i64 = a
                    .conn
                    .query_row(queries::HAS_ROTATED_TABLE, [], |r| r.get(0))
                    .unwrap_or(0);
                if has == 0 {
                    return Ok(0);
                }
                a.conn
                    .prepare(queries::MARKED_ROTATED)
                    .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
                    .unwrap_or_default()
            }
            Err(_) => return Ok(0),
        };
        if marked.is_empty() {
            return Ok(0);
        }
        let mut a = self.open_archive(archive)?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql(FAILED))?;
        let mut rows: Vec<WholeRow> = Vec::new();
        {
            let mut row = tx.prepare_cached(queries::ROW_BY_ID).map_err(sql(FAILED))?;
            let mut copy = a
                .conn
                .prepare_cached(queries::ROTATED_COPY)
                .map_err(sql(FAILED))?;
            for id in &marked {
                let found: Option<WholeRow> = row
                    .query_row([id], whole_row)
                    .optional()
                    .map_err(sql(FAILED))?;
                // Only the same event: a database replaced since reuses the IDs.
                let Some(found) = found else { continue };
                let [id, kind, user, login, _, tty, _, _] = &found;
                let same: Option<i64> = copy
                    .query_row(params![id, login, kind, user, tty], |r| r.get(0))
                    .optional()
                    .map_err(sql(FAILED))?;
                if same.is_some() {
                    rows.push(found);
                }
            }
        }
        a.archive_copies(&rows, &[])?;
        {
            let mut delete = tx
                .prepare_cached(queries::DELETE_ROW)
                .map_err(sql(FAILED))?;
            let processes: i64 = tx
                .query_row(queries::HAS_PROCESS_TABLE, [], |r| r.get(0))
                .map_err(sql(FAILED))?;
            for row in &rows {
                delete.execute([&row[0]]).map_err(sql(FAILED))?;
                if processes > 0 {
                    tx.execute(queries::DELETE_ROW_PROCESS, [&row[0]])
                        .map_err(sql(FAILED))?;
                }
            }
        }
        tx.commit().map_err(sql(FAILED))?;
        self.synced()?;
        a.archive_copies(&[], &marked)?;
        Ok(rows.len() as u64)
    }

    /// Creates or checks the archive (see `files::prepare_archive`) and opens it, by its
    /// resolved name (the connection follows no link, so a link put in its place since the
    /// check is refused too), in its own journal mode: a new archive gets a rollback journal,
    /// which leaves no side files behind.
    pub(super) fn open_archive(&self, archive: &Path) -> Result<Database> {
        let db = std::fs::metadata(&self.file)
            .map_err(|e| files::file_error(&self.path, "cannot examine", &self.file, e))?;
        files::prepare_archive(&self.path, archive, &db)?;
        let a = Database::open(
            archive,
            &OpenOptions::read_write()
                .migrate(Migrate::Never)
                .journal(super::Journal::Keep),
        )?;
        a.conn
            .execute_batch(queries::CREATE_ROTATED)
            .map_err(sql("Cannot prepare archive"))?;
        Ok(a)
    }

    /// In an archive, one committed transaction: forgets the marks of `forget` (rows whose
    /// delete from the database committed), then copies `rows` (whole rows of the database,
    /// ID first), updating the copies a rotate made before it was interrupted.
    pub(super) fn archive_copies(&mut self, rows: &[WholeRow], forget: &[i64]) -> Result<()> {
        const FAILED: &str = "Writing the archive failed";
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql(FAILED))?;
        {
            let mut unmark = tx
                .prepare_cached(queries::FORGET_ROTATED)
                .map_err(sql(FAILED))?;
            for id in forget {
                unmark.execute([id]).map_err(sql(FAILED))?;
            }
            let mut find = tx
                .prepare_cached(queries::ROTATED_COPY)
                .map_err(sql(FAILED))?;
            let mut update = tx
                .prepare_cached(queries::UPDATE_ROTATED_COPY)
                .map_err(sql(FAILED))?;
            let mut insert = tx
                .prepare_cached(queries::INSERT_ROTATED_COPY)
                .map_err(sql(FAILED))?;
            let mut mark = tx
                .prepare_cached(queries::REMEMBER_ROTATED)
                .map_err(sql(FAILED))?;
            for [id, kind, user, login, logout, tty, host, service] in rows {
                let copy: Option<i64> = find
                    .query_row(params![id, login, kind, user, tty], |r| r.get(0))
                    .optional()
                    .map_err(sql(FAILED))?;
                match copy {
                    Some(a) => {
                        update
                            .execute(params![a, logout, host, service])
                            .map_err(sql(FAILED))?;
                    }
                    None => {
                        insert
                            .execute(params![kind, user, login, logout, tty, host, service])
                            .map_err(sql(FAILED))?;
                        mark.execute(params![id, tx.last_insert_rowid()])
                            .map_err(sql(FAILED))?;
                    }
                }
            }
        }
        tx.commit().map_err(sql(FAILED))
    }
}

/// One spooled write, as [`Database::merge_spooled`] applies it.
#[derive(Clone, Debug)]
pub enum SpooledWrite<'a> {
    /// A login, with the token that stands for its row until merged.
    Login { token: i64, entry: NewEntry<'a> },
    /// The logout of a row ID (`Ok`) or of a spooled login's token (`Err`).
    Logout {
        of: std::result::Result<i64, i64>,
        at: Usec,
    },
    /// A logout whose login's ID was lost: of the newest open session of `user` on `tty`
    /// with `service` (`""` for none), if exactly one matches; `token` marks it merged.
    LookupLogout {
        token: i64,
        user: &'a str,
        tty: &'a str,
        service: &'a str,
        at: Usec,
    },
}

/// What [`Database::merge_spooled`] did with one write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpooledDone {
    /// Written (a login's row added, a logout applied to its row): the row's ID.
    Written(i64),
    /// Merged before (its token is known): nothing done again.
    Again,
    /// A logout that closed no row: its token's login is not in the database, or its lookup
    /// found no open session or several.
    NoRow,
}

/// One write of a group (see [`Database::write_group`]).
#[derive(Clone, Debug)]
pub enum GroupWrite<'a> {
    /// A session's login and the process that serves it.
    Login(NewEntry<'a>, crate::process::Process),
    /// The logout of row `id` at `at`; with `of`, only if the row is still that session.
    Logout {
        id: i64,
        at: Usec,
        of: Option<LoginOf<'a>>,
    },
}

/// What one write of a group did (see [`Database::write_group`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupDone {
    /// The row written or closed.
    pub id: i64,
    /// For a logout, the row as it is after it (a row closed before keeps its first
    /// logout): what the journal's event of the logout reports, without a read after the
    /// commit.
    pub closed: Option<super::Entry>,
}

/// The session a logout by row ID means to close: its user and tty in their stored form, and
/// its login time. A row that is not (any longer) that session is left alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoginOf<'a> {
    pub user: &'a str,
    pub tty: &'a str,
    pub login: Usec,
}

impl LoginOf<'_> {
    /// Whether `row` is this session.
    pub fn is(&self, row: &super::Entry) -> bool {
        row.user == self.user
            && row.tty.as_deref().unwrap_or("") == self.tty
            && row.login == self.login
    }
}

impl Database {
    /// Writes many logins and logouts (those of concurrent callers, gathered by a daemon) in
    /// one IMMEDIATE transaction and one sync: what each did ([`GroupDone`]: a login's ID, a
    /// logout's row), or each logout's own failure (a row that does not exist), comes back
    /// in order. Logouts follow the rule of
    /// [`Database::logout`]; one that names its session ([`LoginOf`]) and finds another row,
    /// or none, writes nothing and comes back as `Ok(None)`: its caller decides (the session
    /// writer's lookup). An SQL failure fails the whole group, which then wrote nothing: the
    /// caller retries its writes one by one.
    pub fn write_group(&self, writes: &[GroupWrite<'_>]) -> Result<Vec<Result<Option<GroupDone>>>> {
        const FAILED: &str = "Adding entries failed";
        let prepare = |q| self.conn.prepare_cached(q).map_err(sql(FAILED));
        let mut insert = prepare(queries::INSERT)?;
        let mut process = prepare(queries::INSERT_PROCESS)?;
        let mut logout = prepare(queries::LOGOUT)?;
        let mut row = prepare(queries::ROW_BY_ID)?;
        let tx = KeptWrite::begin(&self.conn).map_err(sql(FAILED))?;
        let mut out = Vec::with_capacity(writes.len());
        for w in writes {
            match w {
                GroupWrite::Login(e, p) => {
                    insert.execute(e.insert_values()).map_err(sql(FAILED))?;
                    let id = self.conn.last_insert_rowid();
                    process
                        .execute(params![id, p.pid, p.start_time])
                        .map_err(sql(FAILED))?;
                    out.push(Ok(Some(GroupDone { id, closed: None })));
                }
                GroupWrite::Logout { id, at, of } => {
                    // The row as it is: whether it is the session named, whether it exists,
                    // and, closed below, what the journal reports.
                    let found = row
                        .query_row([id], super::Entry::from_row)
                        .optional()
                        .map_err(sql(FAILED))?;
                    if let Some(of) = of
                        && !found.as_ref().is_some_and(|r| of.is(r))
                    {
                        out.push(Ok(None));
                        continue;
                    }
                    let Some(mut closed) = found else {
                        out.push(Err(Error::LogoutRows(0)));
                        continue;
                    };
                    if logout.execute(params![at, id]).map_err(sql(FAILED))? == 1 {
                        closed.logout = Some(*at);
                    }
                    out.push(Ok(Some(GroupDone {
                        id: *id,
                        closed: Some(closed),
                    })));
                }
            }
        }
        drop((insert, process, logout, row));
        tx.commit().map_err(sql(FAILED))?;
        self.synced()?;
        Ok(out)
    }
}

/// The write transaction of a group (a connection kept open, the committer's): BEGIN
/// IMMEDIATE and COMMIT are statements of the connection's cache, prepared once, where
/// rusqlite's `Transaction` parses them again at every group. Dropped uncommitted (an error
/// on the way, a COMMIT that failed), it rolls back.
struct KeptWrite<'c> {
    conn: &'c rusqlite::Connection,
    open: bool,
}

impl<'c> KeptWrite<'c> {
    fn begin(conn: &'c rusqlite::Connection) -> rusqlite::Result<KeptWrite<'c>> {
        conn.prepare_cached(queries::BEGIN_WRITE)?.execute([])?;
        Ok(KeptWrite { conn, open: true })
    }

    fn commit(mut self) -> rusqlite::Result<()> {
        self.conn.prepare_cached(queries::END_WRITE)?.execute([])?;
        self.open = false;
        Ok(())
    }
}

impl Drop for KeptWrite<'_> {
    fn drop(&mut self) {
        if self.open && !self.conn.is_autocommit() {
            let _ = self
                .conn
                .prepare_cached(queries::ABANDON_WRITE)
                .and_then(|mut s| s.execute([]));
        }
    }
}
