//! Every SQL statement storage runs, by name, and the few that must be built (a filter with
//! one placeholder per value).
//!
//! The schema itself is in `migrations/*.sql` (see `schema.rs`).

/// The columns every row read selects, in the order `record.rs` decodes them.
macro_rules! columns {
    () => {
        "ID, Type, User, Login, Logout, TTY, RemoteHost, Service"
    };
}

// Schema and connection settings.

/// 1 when the file has the upstream table, else 0.
pub(crate) const HAS_WTMP_TABLE: &str =
    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'wtmp'";

/// Whether the Login index exists: a database upstream wrote and only we read has none.
pub(crate) const HAS_LOGIN_INDEX: &str =
    "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'wtmp_login')";

/// How many schema steps are done (upstream never sets it: 0).
pub(crate) const USER_VERSION: &str = "PRAGMA user_version";

/// Records that `steps` schema steps are done.
pub(crate) fn set_user_version(steps: i64) -> String {
    format!("PRAGMA user_version = {steps}")
}

/// The largest ID, which bounds the number of rows without counting them.
pub(crate) const MAX_ID: &str = "SELECT coalesce(max(ID), 0) FROM wtmp";

/// Sorts and temporary tables in memory: a reader never writes temporary files.
pub(crate) const TEMP_STORE_MEMORY: &str = "PRAGMA temp_store = MEMORY";

pub(crate) const JOURNAL_MODE: &str = "PRAGMA journal_mode";

/// The statement that sets `mode`, for the rollback journal modes upstream can read; None for
/// any other mode.
pub(crate) fn set_journal_mode(mode: &str) -> Option<&'static str> {
    match mode {
        "delete" => Some("PRAGMA journal_mode = delete"),
        "truncate" => Some("PRAGMA journal_mode = truncate"),
        "persist" => Some("PRAGMA journal_mode = persist"),
        _ => None,
    }
}

/// A page cache large enough (128 MiB) for the indexes a rotate batch rewrites.
pub(crate) const ROTATE_CACHE_SIZE: &str = "PRAGMA cache_size = -131072";

/// SQLite's default page cache (2 MiB), restored after a rotate.
pub(crate) const DEFAULT_CACHE_SIZE: &str = "PRAGMA cache_size = -2000";

// Writing rows.

/// Every row insert: a login, a boot, an imported session. Values as
/// `NewEntry::insert_values` gives them.
pub(crate) const INSERT: &str = "INSERT INTO wtmp (Type, User, Login, Logout, TTY, RemoteHost, Service) \
                                 VALUES (?, ?, ?, ?, ?, ?, ?)";

/// Sets the logout of row ?2 to ?1 unless it already has one.
pub(crate) const LOGOUT: &str = "UPDATE wtmp SET Logout = ?1 WHERE ID = ?2 AND Logout IS NULL";

/// 1 when row ? exists, else 0.
pub(crate) const ROW_EXISTS: &str = "SELECT count(*) FROM wtmp WHERE ID = ?";

// Lookups.

/// The newest open row on tty ? (upstream's `wtmpdb_get_id`).
pub(crate) const NEWEST_OPEN_ON_TTY: &str =
    "SELECT ID FROM wtmp WHERE TTY = ? AND Logout IS NULL ORDER BY Login DESC LIMIT 1";

/// The newest ?4 open sessions of tty ?1, user ?2 and service ?3 (NULL service as '').
pub(crate) const OPEN_SESSIONS: &str = "SELECT ID FROM wtmp WHERE TTY = ?1 AND Logout IS NULL AND User = ?2 \
                                        AND Type = 3 AND coalesce(Service, '') = ?3 ORDER BY Login DESC LIMIT ?4";

/// Login of the newest `reboot` row (upstream's boot time; `soft-reboot` does not count).
pub(crate) const NEWEST_REBOOT_LOGIN: &str =
    "SELECT Login FROM wtmp WHERE User = 'reboot' ORDER BY Login DESC LIMIT 1";

/// ID and Logout of the newest boot row.
pub(crate) const NEWEST_BOOT: &str =
    "SELECT ID, Logout FROM wtmp WHERE Type = 1 ORDER BY Login DESC LIMIT 1";

/// Login of every boot row, oldest first.
pub(crate) const BOOT_LOGINS: &str =
    "SELECT Login FROM wtmp WHERE Type = 1 AND Login IS NOT NULL ORDER BY Login";

/// The smallest Login (NULL for an empty table).
pub(crate) const FIRST_LOGIN: &str = "SELECT min(Login) FROM wtmp";

/// Whether the table has any row.
pub(crate) const ANY_ROW: &str = "SELECT EXISTS (SELECT 1 FROM wtmp)";

// The chunked reader (see `read.rs`). Keys are (Login, ID) pairs.

/// The next chunk of keys of an unfiltered listing: at most ?2 with Login <= ?1, newest first.
pub(crate) const LOGIN_KEYS_CHUNK: &str =
    "SELECT Login, ID FROM wtmp WHERE Login <= ?1 ORDER BY Login DESC LIMIT ?2";

/// All keys with Login = ?1, to complete a chunk that ended inside a group of equal Login.
pub(crate) const LOGIN_KEYS_EQUAL: &str = "SELECT Login, ID FROM wtmp WHERE Login = ?1";

/// The rows with ID in ?1..=?2.
pub(crate) const ROWS_IN_ID_RANGE: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM wtmp WHERE ID BETWEEN ?1 AND ?2"
);

/// The rows whose ID is in the JSON array ?1.
pub(crate) const ROWS_IN_ID_LIST: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM wtmp WHERE ID IN (SELECT value FROM json_each(?1))"
);

/// What a `Filter` adds to a reader's conditions, with its placeholders in the order
/// `read.rs` binds them: the Login bound if `login_at_most`, then the `values` twice (as
/// users, then as ttys).
fn filter_conditions(values: usize, login_at_most: bool) -> String {
    let mut sql = String::new();
    if login_at_most {
        sql.push_str(" AND Login <= ?");
    }
    if values > 0 {
        let marks = vec!["?"; values].join(", ");
        sql.push_str(&format!(" AND (User IN ({marks}) OR TTY IN ({marks}))"));
    }
    sql
}

/// All keys with Login <= ? that pass a filter of `values` users or ttys; ordered by the
/// reader in memory.
pub(crate) fn filtered_keys(values: usize, login_at_most: bool) -> String {
    format!(
        "SELECT Login, ID FROM wtmp WHERE Login <= ?{}",
        filter_conditions(values, login_at_most)
    )
}

/// The rows without a Login that pass a filter (listed after all others).
pub(crate) fn rows_without_login(values: usize, login_at_most: bool) -> String {
    format!(
        concat!("SELECT ", columns!(), " FROM wtmp WHERE Login IS NULL{}"),
        filter_conditions(values, login_at_most)
    )
}

// Rotate: rows move to the database attached as `archive`, one batch at a time.

/// Whether any row has Login <= ?.
pub(crate) const ANY_AT_OR_BEFORE: &str = "SELECT EXISTS (SELECT 1 FROM wtmp WHERE Login <= ?)";

pub(crate) const ATTACH_ARCHIVE: &str = "ATTACH DATABASE ? AS archive";

pub(crate) const DETACH_ARCHIVE: &str = "DETACH DATABASE archive";

/// The IDs of the batch being moved.
pub(crate) const CREATE_ROTATE_BATCH: &str =
    "CREATE TEMP TABLE IF NOT EXISTS rotate_batch(ID INTEGER PRIMARY KEY)";

pub(crate) const CLEAR_ROTATE_BATCH: &str = "DELETE FROM temp.rotate_batch";

/// The batch: the oldest ?2 rows with Login <= ?1.
pub(crate) const FILL_ROTATE_BATCH: &str = "INSERT INTO temp.rotate_batch SELECT ID FROM main.wtmp \
                                            WHERE Login <= ?1 ORDER BY Login LIMIT ?2";

/// Appends the batch to the archive, oldest first (the archive assigns new IDs).
pub(crate) const COPY_ROTATE_BATCH: &str = "INSERT INTO archive.wtmp (Type, User, Login, Logout, TTY, RemoteHost, Service) \
                                            SELECT Type, User, Login, Logout, TTY, RemoteHost, Service FROM main.wtmp \
                                            WHERE ID IN (SELECT ID FROM temp.rotate_batch) ORDER BY Login, ID";

pub(crate) const DELETE_ROTATE_BATCH: &str =
    "DELETE FROM main.wtmp WHERE ID IN (SELECT ID FROM temp.rotate_batch)";
