//! A session's identity: what a login returns and what its logout names.
//!
//! A login is either a row of the database or, when the database could not take it in time,
//! a record in the spool that becomes a row when it is merged (see [`super::spool`]). The two
//! are kept apart as a type, [`SessionId`], and turned into one integer only where an
//! interface has nothing else to carry: the C library's `int64_t`, the PAM handle's data and
//! the daemon's `ID`. There a spool token is a positive number of at least [`SPOOLED_MIN`]
//! (2^62), a range no row ID reaches, so that a C caller, which takes any negative value for a
//! failure, can log a spooled session out like any other (Debian's sshd does).
//!
//! [`Identity`] is the rest of what a login knows of its session (user, tty, login time): a
//! logout by ID closes the row only when the row is still that session. After the file was
//! renamed and created anew (logrotate), or its log was lost, the same ID may name another
//! user's live session.

use super::spool::Token;
use crate::storage::Entry;
use crate::time::Usec;

/// The smallest integer that stands for a spool token (2^62): tokens are drawn in
/// `[2^62, 2^63)`; row IDs count up from 1 and never get there.
pub const SPOOLED_MIN: i64 = 1 << 62;

/// Which login a logout closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SessionId {
    /// The row with this ID.
    Row(i64),
    /// The login kept in the spool under this token; its row exists once merged.
    Spooled(Token),
}

impl SessionId {
    /// The integer an interface carries: the row ID, or the token (at least
    /// [`SPOOLED_MIN`]; a token of an earlier version, drawn below it, in that version's
    /// form `-token`, so that it reads back as the same token).
    pub fn to_int(self) -> i64 {
        match self {
            SessionId::Row(id) => id,
            SessionId::Spooled(t) if t.0 >= SPOOLED_MIN => t.0,
            SessionId::Spooled(t) => -t.0,
        }
    }

    /// Reads an integer an interface carried: at least [`SPOOLED_MIN`] is a token, a
    /// negative number a token in the form of earlier versions (`-token`: a PAM handle opened
    /// before an upgrade, an older daemon's reply), anything else a row ID.
    pub fn from_int(n: i64) -> SessionId {
        if n >= SPOOLED_MIN {
            SessionId::Spooled(Token(n))
        } else if n < 0 {
            SessionId::Spooled(Token(n.checked_neg().unwrap_or(i64::MAX)))
        } else {
            SessionId::Row(n)
        }
    }

    /// The spool token, for a spooled login.
    pub fn spooled(self) -> Option<Token> {
        match self {
            SessionId::Spooled(t) => Some(t),
            SessionId::Row(_) => None,
        }
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionId::Row(id) => write!(f, "{id}"),
            SessionId::Spooled(t) => write!(f, "spool token {}", t.0),
        }
    }
}

/// What a login knows of its session besides the ID: the row it wrote must still say this
/// for a logout by ID to close it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// In their stored form (see [`super::SessionItems`]).
    pub user: String,
    pub tty: String,
    pub login: Usec,
}

impl Identity {
    /// Whether `row` is the session this identity describes.
    pub fn is(&self, row: &Entry) -> bool {
        self.login_of().is(row)
    }

    /// The same, as the storage's group write checks it.
    pub fn login_of(&self) -> crate::storage::LoginOf<'_> {
        crate::storage::LoginOf {
            user: &self.user,
            tty: &self.tty,
            login: self.login,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_tokens_round_trip_through_one_integer() {
        for id in [SessionId::Row(1), SessionId::Row(SPOOLED_MIN - 1)] {
            assert_eq!(SessionId::from_int(id.to_int()), id);
        }
        for t in [SPOOLED_MIN, i64::MAX] {
            let id = SessionId::Spooled(Token(t));
            assert_eq!(SessionId::from_int(id.to_int()), id);
            assert!(id.to_int() > 0);
        }
        // The negative form of earlier versions, both ways.
        assert_eq!(SessionId::from_int(-77), SessionId::Spooled(Token(77)));
        assert_eq!(SessionId::Spooled(Token(77)).to_int(), -77);
        assert_eq!(
            SessionId::from_int(i64::MIN),
            SessionId::Spooled(Token(i64::MAX))
        );
    }

    #[test]
    fn an_identity_is_user_tty_and_login_time() {
        let me = Identity {
            user: "alice".into(),
            tty: "pts/1".into(),
            login: 10,
        };
        let row = Entry {
            id: 1,
            user: "alice".into(),
            tty: Some("pts/1".into()),
            login: 10,
            ..Entry::default()
        };
        assert!(me.is(&row));
        assert!(!me.is(&Entry {
            user: "bob".into(),
            ..row.clone()
        }));
        assert!(!me.is(&Entry {
            login: 11,
            ..row.clone()
        }));
        assert!(!me.is(&Entry { tty: None, ..row }));
    }
}
