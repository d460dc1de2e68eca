//! A row of the `wtmp` table as the rest of the crate sees it, and the one place that turns
//! a result row into an [`Entry`] or an [`NewEntry`] into statement values.

use rusqlite::types::ValueRef;

use crate::escape::decode_lossless;
use crate::time::Usec;

/// What a row records: the `Type` column, numbered as upstream numbers it (not as glibc's
/// utmp does: see [`Kind::from_utmp`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Kind {
    /// 0: never written by either implementation.
    #[default]
    Empty,
    /// 1: a boot (`reboot` / `soft-reboot`); its Logout is the shutdown.
    BootTime,
    /// 2: a run-level change (upstream defines it, nothing writes it).
    RunLevel,
    /// 3: a user session.
    UserProcess,
    /// Any other value found in a foreign or future file, kept as read.
    Other(i64),
}

impl Kind {
    pub const fn from_i64(v: i64) -> Kind {
        match v {
            0 => Kind::Empty,
            1 => Kind::BootTime,
            2 => Kind::RunLevel,
            3 => Kind::UserProcess,
            other => Kind::Other(other),
        }
    }

    /// The stored `Type` value.
    pub const fn as_i64(self) -> i64 {
        match self {
            Kind::Empty => 0,
            Kind::BootTime => 1,
            Kind::RunLevel => 2,
            Kind::UserProcess => 3,
            Kind::Other(v) => v,
        }
    }

    /// The row kind of a glibc utmp `ut_type` that becomes a row, if any
    /// (`BOOT_TIME` 2, `RUN_LVL` 1, `USER_PROCESS` 7).
    pub const fn from_utmp(ut_type: i16) -> Option<Kind> {
        match ut_type {
            crate::utmp_file::BOOT_TIME => Some(Kind::BootTime),
            crate::utmp_file::RUN_LVL => Some(Kind::RunLevel),
            crate::utmp_file::USER_PROCESS => Some(Kind::UserProcess),
            _ => None,
        }
    }
}

/// One row of the `wtmp` table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    pub id: i64,
    pub kind: Kind,
    pub user: String,
    /// NULL in the database (never written by either implementation) reads as 0.
    pub login: Usec,
    pub logout: Option<Usec>,
    pub tty: Option<String>,
    pub host: Option<String>,
    pub service: Option<String>,
}

/// A row to insert; the database assigns the ID.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewEntry<'a> {
    pub kind: Kind,
    pub user: &'a str,
    pub login: Usec,
    pub logout: Option<Usec>,
    pub tty: Option<&'a str>,
    pub host: Option<&'a str>,
    pub service: Option<&'a str>,
}

/// The values bound to [`super::queries::INSERT`], in its column order (the kind as its
/// number, see [`Kind::as_i64`]).
pub(super) type InsertValues<'a> = (
    i64,
    &'a str,
    Usec,
    Option<Usec>,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
);

impl<'a> NewEntry<'a> {
    /// This row as the values of [`super::queries::INSERT`].
    pub(super) fn insert_values(&self) -> InsertValues<'a> {
        (
            self.kind.as_i64(),
            self.user,
            self.login,
            self.logout,
            self.tty,
            self.host,
            self.service,
        )
    }
}

// Decoding follows the column order of `columns!` in queries.rs: ID, Type, User, Login, Logout,
// TTY, RemoteHost, Service. Values are read leniently: a `wtmp` table written by another
// tool need not be STRICT, and a number stored there as text or real still reads as the
// number.

impl Entry {
    /// A result row selecting `columns!` (queries.rs) as a new entry.
    pub(super) fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Entry> {
        let mut e = Entry::default();
        e.fill_from_row(r)?;
        Ok(e)
    }

    /// [`Entry::from_row`] into an existing value, keeping its string buffers (no
    /// allocation once warm).
    pub(super) fn fill_from_row(&mut self, r: &rusqlite::Row<'_>) -> rusqlite::Result<()> {
        self.id = row_id(r)?;
        self.kind = Kind::from_i64(integer(r.get_ref(1)?).unwrap_or(0));
        set_text(&mut self.user, r.get_ref(2)?);
        self.login = integer(r.get_ref(3)?).unwrap_or(0);
        self.logout = integer(r.get_ref(4)?);
        set_opt_text(&mut self.tty, r.get_ref(5)?);
        set_opt_text(&mut self.host, r.get_ref(6)?);
        set_opt_text(&mut self.service, r.get_ref(7)?);
        Ok(())
    }
}

/// The ID of a result row selecting `columns!`, without decoding the rest.
pub(super) fn row_id(r: &rusqlite::Row<'_>) -> rusqlite::Result<i64> {
    Ok(integer(r.get_ref(0)?).unwrap_or(0))
}

fn integer(v: ValueRef<'_>) -> Option<i64> {
    match v {
        ValueRef::Integer(i) => Some(i),
        ValueRef::Real(f) => Some(f as i64),
        ValueRef::Text(b) => std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()),
        _ => None,
    }
}

/// Sets `dst` to a TEXT value, reusing its buffer.
fn set_text(dst: &mut String, v: ValueRef<'_>) {
    dst.clear();
    match v {
        ValueRef::Null => {}
        ValueRef::Text(b) | ValueRef::Blob(b) => dst.push_str(&decode_lossless(b)),
        ValueRef::Integer(i) => dst.push_str(&i.to_string()),
        ValueRef::Real(f) => dst.push_str(&f.to_string()),
    }
}

fn set_opt_text(dst: &mut Option<String>, v: ValueRef<'_>) {
    if matches!(v, ValueRef::Null) {
        *dst = None;
    } else {
        set_text(dst.get_or_insert_with(String::new), v);
    }
}

/// Rows held at once by a listing that read them in one statement (see `read.rs`), packed:
/// their strings in one buffer, so that holding a few thousand rows costs a few
/// allocations instead of four a row (and as few frees). They are handed out as
/// [`Entry`] values refilled in place, a batch at a time.
#[derive(Clone, Debug, Default)]
pub(super) struct Packed {
    rows: Vec<PackedRow>,
    text: String,
    /// The first row not handed out yet.
    next: usize,
}

/// A row of [`Packed`]: its strings as ranges of the buffer (None: NULL).
#[derive(Clone, Copy, Debug)]
struct PackedRow {
    id: i64,
    kind: Kind,
    login: Usec,
    logout: Option<Usec>,
    user: (usize, usize),
    tty: Option<(usize, usize)>,
    host: Option<(usize, usize)>,
    service: Option<(usize, usize)>,
}

impl Packed {
    /// Adds a result row selecting `columns!` (queries.rs), decoded as
    /// [`Entry::fill_from_row`] decodes it.
    pub(super) fn push_row(&mut self, r: &rusqlite::Row<'_>) -> rusqlite::Result<()> {
        let row = PackedRow {
            id: row_id(r)?,
            kind: Kind::from_i64(integer(r.get_ref(1)?).unwrap_or(0)),
            user: self.push_text(r.get_ref(2)?),
            login: integer(r.get_ref(3)?).unwrap_or(0),
            logout: integer(r.get_ref(4)?),
            tty: self.push_opt_text(r.get_ref(5)?),
            host: self.push_opt_text(r.get_ref(6)?),
            service: self.push_opt_text(r.get_ref(7)?),
        };
        self.rows.push(row);
        Ok(())
    }

    /// Adds a row read otherwise.
    pub(super) fn push_entry(&mut self, e: &Entry) {
        let row = PackedRow {
            id: e.id,
            kind: e.kind,
            user: self.push_str(&e.user),
            login: e.login,
            logout: e.logout,
            tty: e.tty.as_deref().map(|s| self.push_str(s)),
            host: e.host.as_deref().map(|s| self.push_str(s)),
            service: e.service.as_deref().map(|s| self.push_str(s)),
        };
        self.rows.push(row);
    }

    fn push_str(&mut self, s: &str) -> (usize, usize) {
        let start = self.text.len();
        self.text.push_str(s);
        (start, self.text.len())
    }

    fn push_text(&mut self, v: ValueRef<'_>) -> (usize, usize) {
        let start = self.text.len();
        match v {
            ValueRef::Null => {}
            ValueRef::Text(b) | ValueRef::Blob(b) => self.text.push_str(&decode_lossless(b)),
            ValueRef::Integer(i) => self.text.push_str(&i.to_string()),
            ValueRef::Real(f) => self.text.push_str(&f.to_string()),
        }
        (start, self.text.len())
    }

    fn push_opt_text(&mut self, v: ValueRef<'_>) -> Option<(usize, usize)> {
        (!matches!(v, ValueRef::Null)).then(|| self.push_text(v))
    }

    /// Rows not handed out yet.
    pub(super) fn left(&self) -> usize {
        self.rows.len() - self.next
    }

    /// Puts the rows in the order of a listing (see `read::listing_order`).
    pub(super) fn sort_newest_first(&mut self) {
        self.rows.sort_by(|a, b| {
            super::read::listing_order((a.login, a.logout, a.id), (b.login, b.logout, b.id))
        });
    }

    /// Hands out the next row into `e` (its buffers kept), if any is left.
    pub(super) fn take_into(&mut self, e: &mut Entry) -> bool {
        let Some(row) = self.rows.get(self.next).copied() else {
            return false;
        };
        self.next += 1;
        let text = |(a, b): (usize, usize)| &self.text[a..b];
        let set = |dst: &mut Option<String>, range: Option<(usize, usize)>| match range {
            None => *dst = None,
            Some(r) => {
                let s = dst.get_or_insert_with(String::new);
                s.clear();
                s.push_str(text(r));
            }
        };
        e.id = row.id;
        e.kind = row.kind;
        e.user.clear();
        e.user.push_str(text(row.user));
        e.login = row.login;
        e.logout = row.logout;
        set(&mut e.tty, row.tty);
        set(&mut e.host, row.host);
        set(&mut e.service, row.service);
        if self.left() == 0 {
            // Handed out: the memory goes now, not when the listing ends.
            *self = Packed::default();
        }
        true
    }
}
