//! Writing: logins and logouts, boots, imports, and rotating old rows into an archive.

use std::path::Path;

use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::error::{Error, Result, sql};
use super::record::NewEntry;
use super::{Database, Migrate, OpenOptions, files, queries};
use crate::time::Usec;

/// How long one import transaction may hold the write lock (then it commits and pauses).
pub const IMPORT_BATCH_TIME: std::time::Duration = std::time::Duration::from_millis(20);

/// What one rotate batch (copy, delete and a commit over two files) should take. Longer
/// than an import batch: a commit spanning the archive costs more, and 20 ms batches made
/// a 500,000-row rotate take 11 s instead of 5.
pub const ROTATE_BATCH_TIME: std::time::Duration = std::time::Duration::from_millis(50);

/// The pause after each import or rotate transaction, in which waiting writers take the
/// lock (a login's busy handler retries at least every 2.4 ms); without it the maintenance
/// job would win the lock again at once.
pub const MAINTENANCE_PAUSE: std::time::Duration = std::time::Duration::from_millis(3);

impl Database {
    /// Records a login (or boot) and returns the new row's ID.
    pub fn login(&self, e: &NewEntry<'_>) -> Result<i64> {
        const FAILED: &str = "Adding an entry failed";
        let mut stmt = self
            .conn
            .prepare_cached(queries::INSERT)
            .map_err(sql(FAILED))?;
        stmt.execute(e.insert_values()).map_err(sql(FAILED))?;
        Ok(self.conn.last_insert_rowid())
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
            return Ok(());
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
        let mut rows = rows.into_iter().peekable();
        let mut next = 0u64;
        let mut inserted = 0u64;
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
                            params![e.login, e.kind, e.user, e.tty.unwrap_or(""), occurrence],
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
                    if next % 256 == 0 && started.elapsed() >= IMPORT_BATCH_TIME {
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
            tx.commit().map_err(sql(FAILED))?;
            *committed = inserted;
            progress(next);
            if rows.peek().is_some() {
                std::thread::sleep(MAINTENANCE_PAUSE);
            }
        }
        Ok(inserted)
    }

    /// Moves the rows with `Login <= threshold` into the archive database at `archive`
    /// (created if missing, appended to if present; never deleted), or deletes them when
    /// `archive` is None, except what is alive: the running boot row and every row open
    /// since it began stay, whatever the threshold (their logouts are still to come), and so
    /// does the row with the largest ID, so that SQLite never hands an archived row's ID to
    /// a new row. Each batch is copied and deleted in one transaction spanning both files, so
    /// a row is always in exactly one of them; batches are sized to take about
    /// [`ROTATE_BATCH_TIME`] each, with a pause between them, so logins wait at most
    /// one short batch.
    ///
    /// The archive is ours: a new one is created with the database file's mode (and owner,
    /// as root); an existing name that is a link, not a regular file, or another user's file
    /// is refused before any row moves (see `files::prepare_archive`).
    pub fn rotate(&mut self, threshold: Usec, archive: Option<&Path>) -> Result<u64> {
        // The batch size follows the time the last batch took (its commit included): each
        // commit rewrites pages of the User and TTY indexes all over, so its cost per row
        // depends on the machine and the table.
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
        if let Some(archive) = archive {
            // Each batch must leave the database and the archive in one commit; SQLite gives
            // that only when both files use a rollback journal. A file in WAL mode commits on
            // its own (the database's delete first): killed in between, the batch would be
            // lost (or, with the archive in WAL mode, kept twice).
            if self.journal_mode()? == "wal" {
                return Err(wal_refused(archive, "the database"));
            }
            self.attach_archive(archive)?;
            let mode = self
                .conn
                .query_row(queries::ARCHIVE_JOURNAL_MODE, [], |r| r.get::<_, String>(0))
                .map_err(sql("Cannot read journal mode"));
            match mode {
                Ok(m) if !m.eq_ignore_ascii_case("wal") => {}
                other => {
                    let _ = self.conn.execute(queries::DETACH_ARCHIVE, []);
                    return Err(other.err().unwrap_or_else(|| wal_refused(archive, "it")));
                }
            }
        }
        // Room for the indexes being rewritten, instead of reading them again per batch.
        let _ = self.conn.execute_batch(queries::ROTATE_CACHE_SIZE);
        let copy = archive.is_some();
        let result = (|| {
            const FAILED: &str = "Rotating entries failed";
            let mut moved = 0u64;
            loop {
                let started = std::time::Instant::now();
                let n = self.in_transaction(FAILED, |tx| {
                    tx.execute(queries::CREATE_ROTATE_BATCH, [])
                        .map_err(sql(FAILED))?;
                    tx.execute(queries::CLEAR_ROTATE_BATCH, [])
                        .map_err(sql(FAILED))?;
                    tx.execute(
                        queries::FILL_ROTATE_BATCH,
                        params![threshold, batch, kept_id, running_since],
                    )
                    .map_err(sql(FAILED))?;
                    if copy {
                        tx.execute(queries::COPY_ROTATE_BATCH, [])
                            .map_err(sql(FAILED))?;
                    }
                    let n = tx
                        .execute(queries::DELETE_ROTATE_BATCH, [])
                        .map_err(sql(FAILED))?;
                    // Their processes go with them (`who` reads only rows that stay).
                    let processes: i64 = tx
                        .query_row(queries::HAS_PROCESS_TABLE, [], |r| r.get(0))
                        .map_err(sql(FAILED))?;
                    if processes > 0 {
                        tx.execute(queries::DELETE_ROTATE_BATCH_PROCESSES, [])
                            .map_err(sql(FAILED))?;
                    }
                    Ok(n as u64)
                })?;
                moved += n;
                if n < batch as u64 {
                    break;
                }
                let took = started.elapsed().as_secs_f64().max(1e-6);
                let target = ROTATE_BATCH_TIME.as_secs_f64();
                batch = ((batch as f64 * target / took) as i64).clamp(256, 100_000);
                std::thread::sleep(MAINTENANCE_PAUSE);
            }
            Ok(moved)
        })();
        if copy {
            let _ = self.conn.execute(queries::DETACH_ARCHIVE, []);
        }
        let _ = self.conn.execute_batch(queries::DEFAULT_CACHE_SIZE);
        let moved = result?;
        if let Some(archive) = archive {
            drop(Database::open_read_write(archive)?);
        }
        Ok(moved)
    }

    /// Creates or checks the archive (see `files::prepare_archive`) and attaches it as
    /// `archive`, by its resolved name: the connection follows no link, so a link put in its
    /// place since the check is refused too.
    fn attach_archive(&self, archive: &Path) -> Result<()> {
        let db = std::fs::metadata(&self.file)
            .map_err(|e| files::file_error(&self.path, "cannot examine", &self.file, e))?;
        files::prepare_archive(&self.path, archive, &db)?;
        // A new archive gets the table only: appending to index-free pages is sequential;
        // its indexes are built once at the end (or by the next write, if this run is cut
        // off: user_version stays at the table-only step until then).
        let file = Database::open(archive, &OpenOptions::read_write().migrate(Migrate::Never))?
            .file
            .clone();
        // SQLite takes the file name of an attached database as text.
        let name = file.to_str().ok_or_else(|| Error::PathNotUtf8 {
            path: archive.to_path_buf(),
        })?;
        self.conn
            .execute(queries::ATTACH_ARCHIVE, [name])
            .map_err(sql("Cannot attach archive"))?;
        Ok(())
    }
}

/// Rotate's refusal of a database or an archive (`which`) in WAL mode, before any row moves.
fn wal_refused(archive: &Path, which: &str) -> Error {
    Error::ArchiveRefused {
        archive: archive.to_path_buf(),
        why: format!(
            "{which} is in WAL mode, where moving rows between two files cannot be atomic (an \
             interrupted rotate could lose or duplicate rows); switch it to a rollback journal \
             (sqlite3 FILE 'PRAGMA journal_mode=DELETE') or delete old rows with --keep 0"
        ),
    }
}
