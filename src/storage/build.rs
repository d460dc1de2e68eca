//! A new database built whole under a temporary name and moved into place: what `wtmpdb
//! import` does when its database does not exist yet.
//!
//! Nobody else can open a file that has no name they know, so nothing has to be kept short
//! for waiting logins: the rows go in in one transaction without a journal, the indexes are
//! built once from them at the end (instead of being rewritten by every batch), and the
//! file is synced once. It then gets the database's name with `link(2)`, which never
//! replaces a file: when a login (or another import) created the database meanwhile, the
//! build is thrown away and the caller imports into that database as into any live one,
//! adding only the missing rows. A build cut off leaves its temporary file, which the next
//! import into the same database removes (whether that builds it or imports into it live).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rusqlite::OpenFlags;

use super::error::{Result, sql};
use super::record::NewEntry;
use super::{files, queries, schema};

/// What [`build_new`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Built {
    /// The database was created with this many rows.
    Created(u64),
    /// The database exists (it did, or it was created meanwhile): nothing was written.
    Exists,
}

/// `NAME-import.PID` beside the database `path`.
fn temporary_name(path: &Path, pid: u32) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    Some(path.with_file_name(format!("{name}-import.{pid}")))
}

/// Removes the temporary files of builds into `path` whose process is gone. Also called
/// when the database exists: a build cut off before a login created the database is
/// otherwise never removed.
pub fn remove_abandoned(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!("{name}-import.");
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let file = e.file_name();
        let Some(pid) = file
            .to_str()
            .and_then(|f| f.strip_prefix(&prefix))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// Creates the database `path`, which must not exist, with `rows` (and the whole schema),
/// unless it exists by the time the rows are in: then nothing is written ([`Built::Exists`]).
/// `progress` gets the number of rows inserted so far now and then.
pub fn build_new<'a>(
    path: &Path,
    rows: impl IntoIterator<Item = NewEntry<'a>>,
    mut progress: impl FnMut(u64),
) -> Result<Built> {
    const FAILED: &str = "Import failed";
    if fs::symlink_metadata(path).is_ok() {
        remove_abandoned(path);
        return Ok(Built::Exists);
    }
    files::create_parent(path)?;
    remove_abandoned(path);
    let Some(temp) = temporary_name(path, std::process::id()) else {
        return Ok(Built::Exists);
    };
    // A file by this name is one this process left, or one planted there: either way it
    // goes, and the build uses only a file it created itself (`O_EXCL`, no link followed).
    let _ = fs::remove_file(&temp);
    if !files::create_file_new(path, &temp)? {
        let e = io::Error::from(io::ErrorKind::AlreadyExists);
        return Err(files::file_error(path, "cannot create", &temp, e));
    }
    let cleanup = Cleanup(&temp);
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_NOFOLLOW;
    let mut conn = crate::sqlite::open_with_flags(&temp, flags).map_err(sql(FAILED))?;
    conn.execute_batch(queries::BUILD_SETTINGS)
        .map_err(sql(FAILED))?;
    conn.execute_batch(queries::TEMP_STORE_MEMORY)
        .map_err(sql(FAILED))?;
    schema::create_table(&conn).map_err(sql(FAILED))?;
    let mut inserted = 0u64;
    {
        let tx = conn.transaction().map_err(sql(FAILED))?;
        {
            let mut insert = tx.prepare(queries::INSERT).map_err(sql(FAILED))?;
            for e in rows {
                insert.execute(e.insert_values()).map_err(sql(FAILED))?;
                inserted += 1;
                if inserted % 65536 == 0 {
                    progress(inserted);
                }
            }
        }
        schema::complete_new(&tx).map_err(sql(FAILED))?;
        tx.commit().map_err(sql(FAILED))?;
    }
    // Left in a rollback journal, as upstream creates a database (our first writer puts it
    // in WAL mode).
    let delete = queries::set_journal_mode("delete").unwrap_or_default();
    conn.query_row(delete, [], |_| Ok(()))
        .map_err(sql(FAILED))?;
    conn.close().map_err(|(_, e)| sql(FAILED)(e))?;
    let synced = fs::File::open(&temp).and_then(|f| f.sync_all());
    synced.map_err(|e| files::file_error(path, "cannot sync", &temp, e))?;
    // Never over a file that appeared meanwhile.
    match fs::hard_link(&temp, path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(Built::Exists),
        Err(e) => return Err(files::file_error(path, "cannot create", path, e)),
    }
    drop(cleanup);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let synced = fs::File::open(dir).and_then(|d| d.sync_all());
        synced.map_err(|e| files::file_error(path, "cannot sync", dir, e))?;
    }
    progress(inserted);
    Ok(Built::Created(inserted))
}

/// Removes the temporary file (and a journal SQLite may have left) when dropped.
struct Cleanup<'a>(&'a Path);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = fs::remove_file(self.0);
        let _ = fs::remove_file(super::side_files::side_file(self.0, "-journal"));
    }
}
