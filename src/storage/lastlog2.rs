//! util-linux's lastlog2 database (`/var/lib/lastlog/lastlog2.db`), read only: one row per
//! user, `Lastlog2(Name TEXT PRIMARY KEY, Time INTEGER, TTY TEXT, RemoteHost TEXT, Service
//! TEXT)`, Time in seconds since the epoch.

use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::error::{Access, Error, Result, SqliteError, sql};
use super::queries;
use crate::time::{USEC_PER_SEC, Usec};

/// One user's newest login, from wtmpdb or from lastlog2.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Latest {
    pub user: String,
    pub tty: Option<String>,
    pub host: Option<String>,
    pub service: Option<String>,
    /// None: never logged in.
    pub login: Option<Usec>,
}

/// An open lastlog2 database.
pub struct Lastlog2 {
    conn: Connection,
}

fn text(v: rusqlite::types::ValueRef<'_>) -> Option<String> {
    match v {
        rusqlite::types::ValueRef::Text(b) | rusqlite::types::ValueRef::Blob(b) => {
            Some(crate::escape::decode_lossless(b).into_owned())
        }
        rusqlite::types::ValueRef::Integer(i) => Some(i.to_string()),
        _ => None,
    }
}

fn latest(r: &rusqlite::Row<'_>) -> rusqlite::Result<Latest> {
    let secs: Option<i64> = match r.get_ref(1)? {
        rusqlite::types::ValueRef::Integer(i) => Some(i),
        rusqlite::types::ValueRef::Real(f) => Some(f as i64),
        _ => None,
    };
    Ok(Latest {
        user: text(r.get_ref(0)?).unwrap_or_default(),
        login: secs.map(|s| s.saturating_mul(USEC_PER_SEC)),
        tty: text(r.get_ref(2)?),
        host: text(r.get_ref(3)?),
        service: text(r.get_ref(4)?),
    })
}

impl Lastlog2 {
    /// Opens `path` read-only; it must be a regular file with the Lastlog2 table.
    pub fn open(path: &Path) -> Result<Lastlog2> {
        let failed = |source| Error::Open {
            path: path.to_path_buf(),
            access: Access::ReadOnly,
            source: SqliteError::new(source),
        };
        if let Some(why) = crate::input::not_a_regular_file(path) {
            return Err(Error::NotAFile {
                path: path.to_path_buf(),
                access: Access::ReadOnly,
                why,
            });
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = match super::foreign::immutable_uri(path) {
            Some(uri) => crate::sqlite::open_with_flags(uri, flags | OpenFlags::SQLITE_OPEN_URI),
            None => crate::sqlite::open_with_flags(path, flags),
        }
        .map_err(failed)?;
        let has: i64 = conn
            .query_row(queries::HAS_LASTLOG2_TABLE, [], |r| r.get(0))
            .map_err(|source| Error::OpenSetup {
                path: path.to_path_buf(),
                access: Access::ReadOnly,
                source: SqliteError::new(source),
            })?;
        if has == 0 {
            return Err(Error::NotLastlog2 {
                path: path.to_path_buf(),
            });
        }
        Ok(Lastlog2 { conn })
    }

    /// Every entry, by name.
    pub fn all(&self) -> Result<Vec<Latest>> {
        let mut stmt = self
            .conn
            .prepare(queries::LASTLOG2_ALL)
            .map_err(sql("Cannot read lastlog2 entries"))?;
        let rows = stmt
            .query_map([], latest)
            .map_err(sql("Cannot read lastlog2 entries"))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(sql("Cannot read lastlog2 entries"))
    }

    /// The entry of `user`, if any.
    pub fn user(&self, user: &str) -> Result<Option<Latest>> {
        self.conn
            .query_row(queries::LASTLOG2_USER, [user], latest)
            .optional()
            .map_err(sql("Cannot read lastlog2 entries"))
    }
}
