//! Every SQL statement storage runs, by name, and the few that must be built (a filter with
//! one placeholder per value). Keeping them here lets the tests below check the query plan of
//! the very text the code executes, and check that no statement is written anywhere else.
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

/// The three statements of one read transaction (see `read::in_one_read`): a deferred
/// BEGIN takes no lock; the PRAGMA, which needs no schema, starts the read (the locks, the
/// check of the file's change counter and of its side files) before any other statement is
/// prepared, so that the schema, should a statement need it, is read in it too; COMMIT (or,
/// should it fail, ROLLBACK) ends it.
pub(crate) const BEGIN_READ: &str = "BEGIN DEFERRED";
pub(crate) const START_READ: &str = "PRAGMA schema_version";
pub(crate) const END_READ: &str = END;
pub(crate) const ABANDON_READ: &str = ABANDON;

/// The write transaction of a connection kept open (see `write::KeptWrite`), its statements
/// prepared once.
pub(crate) const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";
pub(crate) const END_WRITE: &str = END;
pub(crate) const ABANDON_WRITE: &str = ABANDON;

const END: &str = "COMMIT";
const ABANDON: &str = "ROLLBACK";

/// What a reader learns of the schema as it opens: every object's type, name and text, in
/// the order SQLite keeps them. The reader takes from it the text `wtmp` was created with
/// (the first table of that name; none: no table), whether the Login index exists, and
/// whether nothing at all is in the schema (then [`READER_NOTHING_SET`] says more). One
/// plain scan of a few rows: three scalar subqueries cost three times its preparing.
pub(crate) const READER_SCHEMA: &str = "SELECT type, name, sql FROM sqlite_master";

/// For a file with nothing in its schema, in the same read as [`READER_SCHEMA`]: whether it
/// is a database whose first writer has not made its table yet (0/1): an SQLite file (a
/// page at least: a short file that is not SQLite's reads as one without pages) with no
/// schema version (set only after the table) and no application id (none of ours sets one).
/// A statement of its own, run only then: preparing its three table-valued pragmas took
/// more than half of the schema statement's work, at every reader's open.
pub(crate) const READER_NOTHING_SET: &str = "SELECT \
    (SELECT user_version FROM pragma_user_version) = 0 \
    AND (SELECT application_id FROM pragma_application_id) = 0 \
    AND (SELECT page_count FROM pragma_page_count) > 0";

/// The text SQLite keeps in `sqlite_master` for the table upstream creates (and
/// migrations/0001 repeats): STRICT, ID an INTEGER PRIMARY KEY. Never run: a table created
/// with exactly this text has upstream's shape, which a reader then need not ask
/// [`WTMP_TABLE_SHAPE`] about.
pub(crate) const UPSTREAM_WTMP_TABLE: &str = "CREATE TABLE wtmp(ID INTEGER PRIMARY KEY, Type INTEGER, \
    User TEXT NOT NULL, Login INTEGER, Logout INTEGER, TTY TEXT, RemoteHost TEXT, Service TEXT) STRICT";

/// Whether `wtmp` is upstream's shape: STRICT (so Login holds only integers) and ID an
/// INTEGER PRIMARY KEY (so IDs are unique). Two 0/1 values.
pub(crate) const WTMP_TABLE_SHAPE: &str = "SELECT \
    coalesce((SELECT strict FROM pragma_table_list WHERE schema = 'main' AND name = 'wtmp'), 0), \
    coalesce((SELECT pk = 1 AND upper(type) = 'INTEGER' FROM pragma_table_info('wtmp') WHERE name = 'ID'), 0) \
    AND (SELECT count(*) FROM pragma_table_info('wtmp') WHERE pk > 0) = 1";

/// For a `wtmp` table whose ID is not an INTEGER PRIMARY KEY: how many rows share an ID
/// with another (or have none).
pub(crate) const WTMP_SHARED_IDS: &str = "SELECT count(*) - count(DISTINCT ID) FROM wtmp";

/// For a `wtmp` table that is not STRICT: how many rows hold a Login that is not a number.
pub(crate) const WTMP_TEXT_LOGINS: &str =
    "SELECT coalesce(sum(typeof(Login) IN ('text', 'blob')), 0) FROM wtmp";

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

/// A page cache large enough (128 MiB) for the indexes a rotate or import batch rewrites.
pub(crate) const ROTATE_CACHE_SIZE: &str = "PRAGMA cache_size = -131072";

/// Settings of a new database an import builds under a temporary name (see
/// `Database::build_new`): nobody else can see the file yet and an interrupted build is
/// thrown away, so no journal and no sync until the end. Index builds sort in runs of
/// the page cache's size (8 MiB) merged by a second thread: faster than one sort in a
/// large cache (measured), and the peak memory stays small.
pub(crate) const BUILD_SETTINGS: &str = "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -8000; PRAGMA threads = 2";

/// SQLite's default page cache (2 MiB), restored after a rotate.
pub(crate) const DEFAULT_CACHE_SIZE: &str = "PRAGMA cache_size = -2000";

/// A reader's page cache: 256 KiB (64 pages), room for the interior pages a lookup walks
/// through. A reader is a process of its own for one listing, and every page its cache
/// grows by is new memory, a page fault and a page zeroed by the kernel: SQLite's 2 MiB
/// default cost `last user042` on 1M rows (1,905 rows on 1,883 table pages, each read once)
/// some 500 faults, 10.3 ms against 8.4 with this cache, and `last pts/3` 41.7 ms against
/// 24.0. Listings that read the table in order read each page once anyway (a full `last`:
/// 695 and 653 ms).
pub(crate) const READER_CACHE_SIZE: &str = "PRAGMA cache_size = -256";

/// The page cache's size in force (the tests read it).
#[cfg(test)]
pub(crate) const CACHE_SIZE: &str = "PRAGMA cache_size";

// Writing rows.

/// Every row insert: a login, a boot, an imported session. Values as
/// `NewEntry::insert_values` gives them.
pub(crate) const INSERT: &str = "INSERT INTO wtmp (Type, User, Login, Logout, TTY, RemoteHost, Service) \
                                 VALUES (?, ?, ?, ?, ?, ?, ?)";

/// Creates the table of session processes (migrations/0003_process.sql) if missing: a login
/// into a database whose schema steps were skipped (a large upstream file) still records
/// its process.
pub(crate) const CREATE_PROCESS_TABLE: &str = include_str!("../../migrations/0003_process.sql");

/// Records the process ?2 (started at ?3) of the session in row ?1.
pub(crate) const INSERT_PROCESS: &str =
    "INSERT OR REPLACE INTO wtmp_process (ID, PID, StartTime) VALUES (?1, ?2, ?3)";

/// The process recorded for the session in row ?1.
pub(crate) const PROCESS_OF: &str = "SELECT PID, StartTime FROM wtmp_process WHERE ID = ?1";

/// 1 when the table of session processes exists, else 0.
pub(crate) const HAS_PROCESS_TABLE: &str =
    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'wtmp_process'";

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

/// As [`OPEN_SESSIONS`], of the sessions logged in by ?5 (a spooled logout by lookup).
pub(crate) const OPEN_SESSIONS_UNTIL: &str = "SELECT ID FROM wtmp WHERE TTY = ?1 AND Logout IS NULL AND User = ?2 \
                                              AND Type = 3 AND coalesce(Service, '') = ?3 AND Login <= ?5 ORDER BY Login DESC LIMIT ?4";

/// Login of the newest `reboot` row (upstream's boot time; `soft-reboot` does not count).
pub(crate) const NEWEST_REBOOT_LOGIN: &str =
    "SELECT Login FROM wtmp WHERE User = 'reboot' ORDER BY Login DESC LIMIT 1";

/// ID and Logout of the newest boot row.
pub(crate) const NEWEST_BOOT: &str =
    "SELECT ID, Logout FROM wtmp WHERE Type = 1 ORDER BY Login DESC LIMIT 1";

/// Login of every boot row, oldest first.
/// Login and ID of every boot row (`wtmpdb export`: which boot a record belongs to).
pub(crate) const BOOT_ROWS: &str =
    "SELECT Login, ID FROM wtmp WHERE Type = 1 AND Login IS NOT NULL ORDER BY Login";

pub(crate) const BOOT_LOGINS: &str =
    "SELECT Login FROM wtmp WHERE Type = 1 AND Login IS NOT NULL ORDER BY Login";

/// The smallest Login (NULL for an empty table).
pub(crate) const FIRST_LOGIN: &str = "SELECT min(Login) FROM wtmp";

/// Whether the table has any row.
pub(crate) const ANY_ROW: &str = "SELECT EXISTS (SELECT 1 FROM wtmp)";

// `who` (see `read.rs`, `Database::open_since`).

/// The open rows: a scan of the partial index wtmp_open, which holds only rows without a
/// logout (those of the running boot, and sessions an earlier crash left open), not of the
/// rows since the boot through wtmp_login, which the planner would pick and which grow with
/// every login of a long uptime.
macro_rules! open_since {
    ($from:literal) => {
        concat!(
            "SELECT wtmp.ID, Type, User, Login, Logout, TTY, RemoteHost, Service, ",
            "wtmp_process.PID, wtmp_process.StartTime FROM wtmp ",
            $from,
            " LEFT JOIN wtmp_process ON wtmp_process.ID = wtmp.ID ",
            "WHERE Logout IS NULL AND Type = 3 AND Login >= ?1 ORDER BY Login, wtmp.ID"
        )
    };
}

/// 1 when the index of open rows exists, else 0.
pub(crate) const HAS_OPEN_INDEX: &str =
    "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'wtmp_open')";

/// The sessions without a logout that began at or after ?1, oldest first, with their
/// recorded process (`columns!` of wtmp, then PID and StartTime), read through wtmp_open.
pub(crate) const OPEN_SINCE_WITH_PROCESS: &str = open_since!("INDEXED BY wtmp_open");

/// As [`OPEN_SINCE_WITH_PROCESS`] for a file without wtmp_open (the schema steps skipped).
pub(crate) const OPEN_SINCE_WITH_PROCESS_NO_INDEX: &str = open_since!("");

/// As [`OPEN_SINCE_WITH_PROCESS`] for a file without the process table (written by
/// upstream, or read-only before any login of ours): no process is known.
pub(crate) const OPEN_SINCE: &str = concat!(
    "SELECT ",
    columns!(),
    ", NULL, NULL FROM wtmp INDEXED BY wtmp_open WHERE Logout IS NULL AND Type = 3 AND Login >= ?1 ORDER BY Login, ID"
);

/// As [`OPEN_SINCE`] for a file without wtmp_open either (upstream's, read-only): the
/// planner reads what it can.
pub(crate) const OPEN_SINCE_NO_INDEX: &str = concat!(
    "SELECT ",
    columns!(),
    ", NULL, NULL FROM wtmp WHERE Logout IS NULL AND Type = 3 AND Login >= ?1 ORDER BY Login, ID"
);

// `lastlog` (see `read.rs`, `Database::newest_logins`): a loose index scan of wtmp_user,
// one descent per user, never a scan of the rows.

/// The smallest User above ?1 (NULL when there is none).
pub(crate) const NEXT_USER: &str = "SELECT min(User) FROM wtmp WHERE User > ?1";

/// The newest session row of user ?1.
pub(crate) const NEWEST_SESSION_OF_USER: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM wtmp WHERE User = ?1 AND Type = 3 ORDER BY Login DESC LIMIT 1"
);

/// Whether the User index exists: a database upstream wrote and only we read has none.
pub(crate) const HAS_USER_INDEX: &str =
    "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'wtmp_user')";

/// The newest session row of every user in one pass, by name, for a file without wtmp_user
/// (where each per-user lookup would be a pass of its own). SQLite takes the bare columns
/// from the row holding the max().
pub(crate) const NEWEST_SESSION_PER_USER_SCAN: &str = "SELECT ID, Type, User, max(Login), Logout, TTY, RemoteHost, Service \
    FROM wtmp WHERE Type = 3 GROUP BY User ORDER BY User";

// util-linux's lastlog2 database (see `lastlog2.rs`), read for `lastlog --lastlog2`.

/// 1 when the file has lastlog2's table, else 0.
pub(crate) const HAS_LASTLOG2_TABLE: &str =
    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'Lastlog2'";

/// Every entry of a lastlog2 database, by name (Time in seconds).
pub(crate) const LASTLOG2_ALL: &str =
    "SELECT Name, Time, TTY, RemoteHost, Service FROM Lastlog2 ORDER BY Name";

/// The entry of user ?1.
pub(crate) const LASTLOG2_USER: &str =
    "SELECT Name, Time, TTY, RemoteHost, Service FROM Lastlog2 WHERE Name = ?1";

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

/// The rows of `values` users with Login in ?1..=?2, through wtmp_user (then the table for
/// each row): a filtered listing's rows without a list of their IDs. Run only on a file
/// with wtmp_user (without it, this walks wtmp_login over the whole range).
pub(crate) fn user_rows_between(values: usize) -> String {
    let marks = vec!["?"; values].join(", ");
    format!(
        concat!(
            "SELECT ",
            columns!(),
            " FROM wtmp WHERE Login BETWEEN ?1 AND ?2 AND User IN ({})"
        ),
        marks
    )
}

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

/// On a file with a User index, [`filtered_keys`] in two statements, bound to the Login
/// bound ?1 then the `values` (once; twice for the ttys'): the keys of the rows whose User
/// is one of them, read from the User index alone, and those of the other rows whose TTY is
/// one of them. One statement with the OR costs SQLite about 1,600 instructions a key
/// (both indexes, and a set of the IDs seen to drop a row found twice); the users' keys
/// alone some 600.
pub(crate) fn user_keys(values: usize) -> String {
    let marks = vec!["?"; values].join(", ");
    format!("SELECT Login, ID FROM wtmp WHERE Login <= ?1 AND User IN ({marks})")
}

/// How many rows [`user_keys`] would read: the User index alone, no row decoded.
pub(crate) fn user_count(values: usize) -> String {
    let marks = vec!["?"; values].join(", ");
    format!("SELECT count(*) FROM wtmp WHERE Login <= ?1 AND User IN ({marks})")
}

/// See [`user_keys`]: the rows of the ttys, but not of the users (a row whose User is NULL,
/// in a table another tool made, is one of these).
pub(crate) fn tty_keys(values: usize) -> String {
    let marks = vec!["?"; values].join(", ");
    format!(
        "SELECT Login, ID FROM wtmp WHERE Login <= ?1 AND TTY IN ({marks}) \
         AND (User IS NULL OR User NOT IN ({marks}))"
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

// Imports (see `Database::import_rows`).

/// Whether any row has a Login in [?1, ?2]: an import that finds none has no row of its file
/// in the table (yet) and skips the per-row check.
pub(crate) const ANY_LOGIN_BETWEEN: &str =
    "SELECT EXISTS (SELECT 1 FROM wtmp WHERE Login BETWEEN ?1 AND ?2)";

/// Whether a row with ID above ?3 has a Login in [?1, ?2]: asked by each later batch of an
/// import that found none, with ?3 the largest ID when its previous batch committed. `+Login` makes it walk the IDs above
/// ?3 (the rows written since), not the import's own rows in the Login range.
pub(crate) const ANY_LOGIN_BETWEEN_AFTER_ID: &str =
    "SELECT EXISTS (SELECT 1 FROM wtmp WHERE ID > ?3 AND +Login BETWEEN ?1 AND ?2)";

/// The (?5 + 1)-th oldest row that records the same event: Login ?1, Type ?2, User ?3 and
/// TTY ?4 (NULL as ''), with its Logout.
pub(crate) const NTH_SAME_EVENT: &str = "SELECT ID, Logout FROM wtmp WHERE Login = ?1 AND Type = ?2 \
                                        AND User = ?3 AND coalesce(TTY, '') = ?4 \
                                        ORDER BY ID LIMIT 1 OFFSET ?5";

/// Login of the newest boot row: where the running boot began.
pub(crate) const NEWEST_BOOT_LOGIN: &str =
    "SELECT Login FROM wtmp WHERE Type = 1 ORDER BY Login DESC LIMIT 1";

/// Whether any row may move: Login <= ?1, not the row with the largest ID (?2, kept so that
/// IDs are never handed out again), and not alive: open since the running boot began (?3),
/// which keeps the running boot row and its open sessions.
pub(crate) const ANY_TO_ROTATE: &str = "SELECT EXISTS (SELECT 1 FROM wtmp WHERE Login <= ?1 AND ID <> ?2 \
                                        AND NOT (Logout IS NULL AND Login >= ?3))";

/// Switches a writer's file to WAL (see `WalSettings`).
pub(crate) const JOURNAL_MODE_WAL: &str = "PRAGMA journal_mode = wal";

/// A commit is on disk when it returns: SQLite syncs at every commit (a rollback journal).
pub(crate) const SYNCHRONOUS_FULL: &str = "PRAGMA synchronous = FULL";

/// In WAL mode: SQLite does not sync a commit, the writer does (see `WalSettings`).
pub(crate) const SYNCHRONOUS_NORMAL: &str = "PRAGMA synchronous = NORMAL";

/// Checkpoints once the `-wal` file holds `pages` pages.
pub(crate) fn set_wal_autocheckpoint(pages: u32) -> String {
    format!("PRAGMA wal_autocheckpoint = {pages}")
}

/// The database's page size, for the header of an emptied log (`Database::refill_emptied_log`).
pub(crate) const PAGE_SIZE: &str = "PRAGMA page_size";

/// Eight random bytes: the salts of an emptied log's header (`Database::refill_emptied_log`).
pub(crate) const RANDOM_SALTS: &str = "SELECT randomblob(8)";

/// Copies the whole log into the database and empties it (see `WalSettings`).
pub(crate) const CHECKPOINT_TRUNCATE: &str = "PRAGMA wal_checkpoint(TRUNCATE)";

/// Copies what it can of the log into the database, without the write lock.
pub(crate) const CHECKPOINT_PASSIVE: &str = "PRAGMA wal_checkpoint(PASSIVE)";

/// A number that changes when another connection commits to the database.
pub(crate) const DATA_VERSION: &str = "PRAGMA data_version";

/// Whether the b-trees of a database file are sound ("ok" alone: they are), without the
/// slower checks of indexes against their tables: run on a database file alone (no log)
/// after a write through its log found it malformed (see `Database::set_aside_foreign_log`),
/// bounded in time.
pub(crate) const QUICK_CHECK: &str = "PRAGMA quick_check(1)";

/// Removes the table, for tests of a write that finds it gone (a file emptied or replaced
/// under its connection).
#[cfg(test)]
pub(crate) const DROP_WTMP: &str = "DROP TABLE wtmp";

/// What SQLite finds wrong in the file ("ok": nothing), for tests that damage it on purpose
/// or fear a write did.
#[cfg(test)]
pub(crate) const INTEGRITY_CHECK: &str = "PRAGMA integrity_check";

/// The batch of a rotate: the oldest ?2 rows that may move (the conditions of
/// [`ANY_TO_ROTATE`], with the kept ID as ?3 and the running boot's start as ?4), whole.
pub(crate) const ROTATE_BATCH: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM wtmp WHERE Login <= ?1 AND ID <> ?3 AND NOT (Logout IS NULL AND Login >= ?4) \
     ORDER BY Login LIMIT ?2"
);

/// Removes one moved row from the database.
pub(crate) const DELETE_ROW: &str = "DELETE FROM wtmp WHERE ID = ?";

/// In an archive: which archive row holds a row of the database (by its ID there) that a
/// rotate copied and may not have deleted yet. Upstream never reads it. It holds the rows of
/// one batch at a time (and of a batch interrupted by a crash, until a later rotate moves
/// them), so a rotate run again after a crash updates the copies instead of adding them
/// twice.
pub(crate) const CREATE_ROTATED: &str =
    "CREATE TABLE IF NOT EXISTS wtmp_rotated(SourceID INTEGER PRIMARY KEY, ID INTEGER NOT NULL)";

/// In an archive: the copy of database row ?1, if the row there still describes the same
/// event (Login ?2, Type ?3, User ?4, TTY ?5): a database replaced since (its IDs start again)
/// has other rows under the same IDs.
pub(crate) const ROTATED_COPY: &str = "SELECT a.ID FROM wtmp_rotated AS m JOIN wtmp AS a ON a.ID = m.ID \
                                       WHERE m.SourceID = ?1 AND a.Login IS ?2 AND a.Type IS ?3 \
                                       AND a.User = ?4 AND a.TTY IS ?5";

/// In an archive: brings an earlier copy up to date (its logout may have come since).
pub(crate) const UPDATE_ROTATED_COPY: &str =
    "UPDATE wtmp SET Logout = ?2, RemoteHost = ?3, Service = ?4 WHERE ID = ?1";

/// In an archive: a new copy (the archive assigns its own ID).
pub(crate) const INSERT_ROTATED_COPY: &str = "INSERT INTO wtmp (Type, User, Login, Logout, TTY, RemoteHost, Service) \
                                              VALUES (?, ?, ?, ?, ?, ?, ?)";

pub(crate) const REMEMBER_ROTATED: &str =
    "INSERT OR REPLACE INTO wtmp_rotated (SourceID, ID) VALUES (?, ?)";

/// In an archive: forgets a copied row once the database's delete of it committed.
pub(crate) const FORGET_ROTATED: &str = "DELETE FROM wtmp_rotated WHERE SourceID = ?";

/// The spool's record of merged logins (see `session::spool`): token to row ID. Upstream
/// never reads it.
pub(crate) const CREATE_SPOOLED: &str = "CREATE TABLE IF NOT EXISTS wtmp_spooled(Token INTEGER PRIMARY KEY, ID INTEGER NOT NULL, Merged INTEGER NOT NULL)";

pub(crate) const HAS_SPOOLED_TABLE: &str =
    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'wtmp_spooled'";

pub(crate) const SPOOLED_ID: &str = "SELECT ID FROM wtmp_spooled WHERE Token = ?";

pub(crate) const REMEMBER_SPOOLED: &str =
    "INSERT INTO wtmp_spooled (Token, ID, Merged) VALUES (?, ?, ?)";

/// Forgets the tokens merged before ?1 whose rows are closed or gone: no logout names them
/// again, and no record file of theirs can still wait (a merge removes its files right after
/// its commit; one left by a crash is merged again by the next write, long before ?1).
pub(crate) const PRUNE_SPOOLED: &str = "DELETE FROM wtmp_spooled WHERE Merged < ?1 AND ID NOT IN \
                                        (SELECT ID FROM wtmp WHERE Logout IS NULL)";

/// Every row in ID order, in one statement (one snapshot): tests that read a whole file.
/// `wtmpdb export` reads only what it needs (`ROWS_LISTED_UP_TO`, `ROWS_AFTER_ID`).
pub(crate) const ALL_ROWS_BY_ID: &str = concat!("SELECT ", columns!(), " FROM wtmp ORDER BY ID");

/// The rows whose ID is in the JSON array ?2 and at most ?1, by ID (an export's rows still
/// open; see `ROWS_AFTER_ID`). The casts give the numbers INTEGER affinity, so that an ID
/// column of a table another tool made with TEXT affinity or none (accepted, read as
/// numbers) is compared as a number too, as the Rust side compares it.
pub(crate) const ROWS_LISTED_UP_TO: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM wtmp WHERE ID IN (SELECT CAST(value AS INTEGER) FROM json_each(?2))",
    " AND ID <= CAST(?1 AS INTEGER) ORDER BY ID"
);

/// The rows with ID above ?1, by ID (an export's new rows; the cast as in
/// `ROWS_LISTED_UP_TO`).
pub(crate) const ROWS_AFTER_ID: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM wtmp WHERE ID > CAST(?1 AS INTEGER) ORDER BY ID"
);

/// The rows that logged in at ?1 (`wtmpdb export`: a session a rotate moved into an
/// archive, found there by its login time).
pub(crate) const ROWS_WITH_LOGIN: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM wtmp WHERE Login = ?1 ORDER BY ID"
);

/// One whole row by ID (rotate: a row an interrupted rotate copied; a logout by ID: the
/// session it closes).
pub(crate) const ROW_BY_ID: &str = concat!("SELECT ", columns!(), " FROM wtmp WHERE ID = ?");

/// In an archive: whether a rotate ever marked rows there.
pub(crate) const HAS_ROTATED_TABLE: &str =
    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'wtmp_rotated'";

/// In an archive: the database rows an interrupted rotate copied there.
pub(crate) const MARKED_ROTATED: &str = "SELECT SourceID FROM wtmp_rotated ORDER BY SourceID";

/// Tests only: the marks in an archive, every row.
#[cfg(test)]
pub(crate) const COUNT_ROTATED: &str = "SELECT count(*) FROM wtmp_rotated";
#[cfg(test)]
pub(crate) const COUNT_ROWS: &str = "SELECT count(*) FROM wtmp";

/// The recorded processes of the batch's rows.
/// The recorded process of one moved row (`who` reads only rows that stay).
pub(crate) const DELETE_ROW_PROCESS: &str = "DELETE FROM wtmp_process WHERE ID = ?";

// Failed logins (`failed.rs`): a file of their own beside the session database.

/// The columns every failure read selects, in the order `failed.rs` decodes them.
macro_rules! failed_columns {
    () => {
        "ID, Time, User, TTY, RemoteHost, Service, PID"
    };
}

/// The failures' schema, step 1 (`user_version` 0 to 1): the attempts and, per user, the
/// last successful login a `showfailed` session reported from.
pub(crate) const CREATE_FAILED: &str = "CREATE TABLE IF NOT EXISTS failed(\
    ID INTEGER PRIMARY KEY, Time INTEGER NOT NULL, User TEXT NOT NULL, TTY TEXT, \
    RemoteHost TEXT, Service TEXT, PID INTEGER) STRICT; \
    CREATE INDEX IF NOT EXISTS failed_time ON failed(Time); \
    CREATE INDEX IF NOT EXISTS failed_user ON failed(User, Time); \
    CREATE TABLE IF NOT EXISTS failed_seen(User TEXT PRIMARY KEY, Time INTEGER NOT NULL) STRICT; \
    PRAGMA user_version = 1";

/// The failures' writers: a commit is on disk when it returns (one sync of the log); no
/// automatic checkpoint (the writer checkpoints when the log passes its mark).
pub(crate) const FAILED_SETTINGS: &str = "PRAGMA synchronous = FULL; PRAGMA journal_size_limit = 0";

/// Whether an attempt on user ?1 at ?2 on tty ?3 is recorded (a btmp file imported again).
pub(crate) const FAILED_SAME: &str =
    "SELECT EXISTS (SELECT 1 FROM failed WHERE User = ?1 AND Time = ?2 AND TTY IS ?3)";

/// Tests only: every attempt.
#[cfg(test)]
pub(crate) const COUNT_FAILED: &str = "SELECT count(*) FROM failed";

/// For tests: another program's table, and what another program may set in a file whose
/// schema holds nothing.
#[cfg(test)]
pub(crate) const FOREIGN_TABLE: &str = "CREATE TABLE t (x); INSERT INTO t VALUES (1)";
/// For tests: a view named like the table, and the Login index alone (as migrations/0002
/// makes it).
#[cfg(test)]
pub(crate) const WTMP_VIEW: &str = "CREATE VIEW wtmp AS SELECT 1";
#[cfg(test)]
pub(crate) const LOGIN_INDEX_ONLY: &str = "CREATE INDEX wtmp_login ON wtmp(Login)";
/// For tests: the User index alone (as migrations/0002 makes it).
#[cfg(test)]
pub(crate) const USER_INDEX_ONLY: &str = "CREATE INDEX wtmp_user ON wtmp(User, Login)";
/// For tests: a `wtmp` table another tool made whose ID column is TEXT (?1: `TEXT`) or
/// has no type (?1 empty), and a row of it with its ID written as text.
#[cfg(test)]
pub(crate) fn foreign_table_with_id(id_type: &str) -> String {
    format!(
        "CREATE TABLE wtmp(ID {id_type}, Type INTEGER, User TEXT NOT NULL, Login INTEGER, \
         Logout INTEGER, TTY TEXT, RemoteHost TEXT, Service TEXT)"
    )
}
#[cfg(test)]
pub(crate) const INSERT_TEXT_ID: &str =
    "INSERT INTO wtmp VALUES (CAST(?1 AS TEXT), 3, 'u', ?2, NULL, 'pts/1', NULL, NULL)";
#[cfg(test)]
pub(crate) const FOREIGN_MARKS: [&str; 2] =
    ["PRAGMA user_version = 7", "PRAGMA application_id = 1234"];

/// One failed attempt.
pub(crate) const INSERT_FAILED: &str =
    "INSERT INTO failed (Time, User, TTY, RemoteHost, Service, PID) VALUES (?, ?, ?, ?, ?, ?)";

/// Keeps the newest ?1 attempts by time (the count rule of the retention): by time, not
/// ID, since an imported btmp file adds old attempts with new IDs. Walks the time index
/// (some 10 ms at 100,000).
pub(crate) const TRIM_FAILED: &str = "DELETE FROM failed WHERE ID IN \
    (SELECT ID FROM failed ORDER BY Time DESC, ID DESC LIMIT -1 OFFSET ?1)";

/// Forgets the attempts before ?1 (the age rule of the retention).
pub(crate) const PRUNE_FAILED: &str = "DELETE FROM failed WHERE Time < ?1";

/// The attempts between ?1 and ?2, newest first.
pub(crate) const FAILED_BETWEEN: &str = concat!(
    "SELECT ",
    failed_columns!(),
    " FROM failed WHERE Time >= ?1 AND Time <= ?2 ORDER BY Time DESC, ID DESC"
);

/// The attempts after ID ?1, in ID order (`wtmpdb export`).
pub(crate) const FAILED_AFTER_ID: &str = concat!(
    "SELECT ",
    failed_columns!(),
    " FROM failed WHERE ID > ?1 ORDER BY ID"
);

/// The oldest attempt's time (the `lastb` footer), NULL without any.
pub(crate) const FAILED_OLDEST: &str = "SELECT min(Time) FROM failed";

/// The number of attempts on user ?1 after ?2.
pub(crate) const FAILED_COUNT_SINCE: &str =
    "SELECT count(*) FROM failed WHERE User = ?1 AND Time > ?2";

/// The newest attempt on user ?1 after ?2.
pub(crate) const FAILED_NEWEST_SINCE: &str = concat!(
    "SELECT ",
    failed_columns!(),
    " FROM failed WHERE User = ?1 AND Time > ?2 ORDER BY Time DESC, ID DESC LIMIT 1"
);

/// The last successful login `showfailed` reported for user ?1.
pub(crate) const FAILED_SEEN: &str = "SELECT Time FROM failed_seen WHERE User = ?";

/// Records a successful login of user ?1 at ?2 (never moving it back).
pub(crate) const SET_FAILED_SEEN: &str = "INSERT INTO failed_seen (User, Time) VALUES (?1, ?2) \
    ON CONFLICT(User) DO UPDATE SET Time = max(Time, excluded.Time)";

/// What the query-plan test expects of a statement.
#[cfg(test)]
#[derive(Clone, Copy, Debug)]
pub(crate) enum Plan {
    /// A read or lookup: no full scan of `wtmp`, no temporary B-tree, and the plan names
    /// each of these (an index, or `INTEGER PRIMARY KEY` for a lookup by ID).
    Uses(&'static [&'static str]),
    /// As `Uses`, but the statement sorts what it selected (a bounded set), so a temporary
    /// B-tree for its ORDER BY is expected.
    UsesThenSorts(&'static [&'static str]),
    /// Not checked, and why.
    Unchecked(&'static str),
    /// As `Uses`, for a statement on the failures' file (table `failed`).
    Failed(&'static [&'static str]),
}

/// Every constant above with what its plan must be; a test checks that none is missing.
#[cfg(test)]
pub(crate) const STATEMENTS: &[(&str, &str, Plan)] = {
    use Plan::{Failed, Unchecked, Uses, UsesThenSorts};
    const SCHEMA: Plan = Unchecked("reads the schema, a few rows");
    const SETTING: Plan = Unchecked("a connection setting");
    macro_rules! list {
        ($($name:ident: $plan:expr),* $(,)?) => { &[$((stringify!($name), $name, $plan)),*] };
    }
    list![
        HAS_WTMP_TABLE: SCHEMA,
        HAS_LOGIN_INDEX: SCHEMA,
        WTMP_TABLE_SHAPE: SCHEMA,
        READER_SCHEMA: SCHEMA,
        READER_NOTHING_SET: SCHEMA,
        BEGIN_READ: SETTING,
        START_READ: SETTING,
        END_READ: SETTING,
        ABANDON_READ: SETTING,
        BEGIN_WRITE: SETTING,
        END_WRITE: SETTING,
        ABANDON_WRITE: SETTING,
        UPSTREAM_WTMP_TABLE: Unchecked("compared with sqlite_master, never run"),
        WTMP_SHARED_IDS: Unchecked("reads every row, only of a table another tool made"),
        WTMP_TEXT_LOGINS: Unchecked("reads every row, only of a table another tool made"),
        USER_VERSION: SETTING,
        MAX_ID: Uses(&[]),
        TEMP_STORE_MEMORY: SETTING,
        JOURNAL_MODE: SETTING,
        ROTATE_CACHE_SIZE: SETTING,
        DEFAULT_CACHE_SIZE: SETTING,
        READER_CACHE_SIZE: SETTING,
        CACHE_SIZE: SETTING,
        BUILD_SETTINGS: SETTING,
        INSERT: Unchecked("reads nothing"),
        CREATE_PROCESS_TABLE: Unchecked("creates a table"),
        INSERT_PROCESS: Unchecked("reads nothing"),
        HAS_PROCESS_TABLE: SCHEMA,
        PROCESS_OF: Unchecked("a lookup by the primary key of wtmp_process"),
        LOGOUT: Uses(&["INTEGER PRIMARY KEY"]),
        ROW_EXISTS: Uses(&["INTEGER PRIMARY KEY"]),
        NEWEST_OPEN_ON_TTY: Uses(&["wtmp_open"]),
        OPEN_SESSIONS: Uses(&["wtmp_open"]),
        OPEN_SESSIONS_UNTIL: Uses(&["wtmp_open"]),
        NEWEST_REBOOT_LOGIN: Uses(&["wtmp_user"]),
        NEWEST_BOOT: Uses(&["wtmp_boot"]),
        BOOT_LOGINS: Uses(&["wtmp_boot"]),
        BOOT_ROWS: Uses(&["wtmp_boot"]),
        FIRST_LOGIN: Uses(&["wtmp_login"]),
        ANY_ROW: Unchecked("stops at the first row, whichever way it reads"),
        // The open rows since the boot: few, put in time order.
        HAS_OPEN_INDEX: SCHEMA,
        OPEN_SINCE_WITH_PROCESS: UsesThenSorts(&["INDEX wtmp_open", "wtmp_process"]),
        OPEN_SINCE_WITH_PROCESS_NO_INDEX: UsesThenSorts(&["wtmp_", "wtmp_process"]),
        OPEN_SINCE: UsesThenSorts(&["INDEX wtmp_open"]),
        OPEN_SINCE_NO_INDEX: UsesThenSorts(&["wtmp_"]),
        // A seek into the index, never a walk of it: "SCAN ... USING COVERING INDEX" would
        // read every row's key.
        NEXT_USER: Uses(&["SEARCH wtmp USING COVERING INDEX wtmp_user (User>?)"]),
        NEWEST_SESSION_OF_USER: Uses(&["SEARCH wtmp USING INDEX wtmp_user (User=?)"]),
        HAS_USER_INDEX: SCHEMA,
        NEWEST_SESSION_PER_USER_SCAN: Unchecked(
            "run only on a file without wtmp_user: one pass instead of one per user"
        ),
        HAS_LASTLOG2_TABLE: SCHEMA,
        LASTLOG2_ALL: Unchecked("lists every entry of another tool's table, in its key order"),
        LASTLOG2_USER: Unchecked("a lookup by key in another tool's table"),
        LOGIN_KEYS_CHUNK: Uses(&["COVERING INDEX wtmp_login"]),
        LOGIN_KEYS_EQUAL: Uses(&["COVERING INDEX wtmp_login"]),
        ROWS_IN_ID_RANGE: Uses(&["INTEGER PRIMARY KEY"]),
        ROWS_IN_ID_LIST: Uses(&["INTEGER PRIMARY KEY"]),
        ANY_LOGIN_BETWEEN: Uses(&["wtmp_login"]),
        ANY_LOGIN_BETWEEN_AFTER_ID: Uses(&["INTEGER PRIMARY KEY"]),
        // Sorts the few rows of one Login (almost always none or one).
        NTH_SAME_EVENT: UsesThenSorts(&["wtmp_"]),
        NEWEST_BOOT_LOGIN: Uses(&["wtmp_boot"]),
        ANY_TO_ROTATE: Uses(&["wtmp_login"]),
        JOURNAL_MODE_WAL: SETTING,
        SYNCHRONOUS_FULL: SETTING,
        SYNCHRONOUS_NORMAL: SETTING,
        PAGE_SIZE: SETTING,
        RANDOM_SALTS: Unchecked("reads no table"),
        CHECKPOINT_TRUNCATE: SETTING,
        CHECKPOINT_PASSIVE: SETTING,
        DATA_VERSION: SETTING,
        INTEGRITY_CHECK: Unchecked("reads the whole file, in tests only"),
        DROP_WTMP: Unchecked("drops the table, in tests only"),
        QUICK_CHECK: Unchecked("reads the whole file, only after a write found it malformed, within a time bound"),
        ROTATE_BATCH: Uses(&["wtmp_login"]),
        DELETE_ROW: Uses(&["INTEGER PRIMARY KEY"]),
        CREATE_ROTATED: Unchecked("creates a table"),
        ROTATED_COPY: Unchecked("runs on an archive, whose indexes may not exist yet; by primary keys"),
        UPDATE_ROTATED_COPY: Uses(&["INTEGER PRIMARY KEY"]),
        INSERT_ROTATED_COPY: Unchecked("reads nothing"),
        REMEMBER_ROTATED: Unchecked("writes one row of a small table"),
        FORGET_ROTATED: Unchecked("by the primary key of a small table"),
        ROW_BY_ID: Uses(&["INTEGER PRIMARY KEY"]),
        ROWS_WITH_LOGIN: Unchecked("runs on an archive, whose indexes may not exist"),
        ALL_ROWS_BY_ID: Unchecked("the whole table in its rowid order: a plain scan"),
        ROWS_LISTED_UP_TO: Uses(&["INTEGER PRIMARY KEY (rowid=?)"]),
        ROWS_AFTER_ID: Uses(&["INTEGER PRIMARY KEY (rowid>?)"]),
        HAS_ROTATED_TABLE: SCHEMA,
        MARKED_ROTATED: Unchecked("runs on an archive: a small table, by its primary key"),
        CREATE_SPOOLED: Unchecked("creates a table"),
        HAS_SPOOLED_TABLE: SCHEMA,
        SPOOLED_ID: Unchecked("by the primary key of a small table"),
        REMEMBER_SPOOLED: Unchecked("writes one row of a small table"),
        PRUNE_SPOOLED: Unchecked("a small table, against the open rows (the wtmp_open index)"),
        COUNT_ROTATED: Unchecked("tests only"),
        COUNT_ROWS: Unchecked("tests only"),
        DELETE_ROW_PROCESS: Uses(&["INTEGER PRIMARY KEY"]),
        CREATE_FAILED: Unchecked("creates the tables"),
        INSERT_FAILED: Unchecked("reads nothing"),
        FAILED_SETTINGS: SETTING,
        FAILED_SAME: Failed(&["failed_user"]),
        COUNT_FAILED: Unchecked("tests only"),
        FOREIGN_TABLE: Unchecked("tests only"),
        WTMP_VIEW: Unchecked("tests only"),
        LOGIN_INDEX_ONLY: Unchecked("tests only"),
        USER_INDEX_ONLY: Unchecked("tests only"),
        INSERT_TEXT_ID: Unchecked("tests only"),
        TRIM_FAILED: Failed(&["failed_time"]),
        PRUNE_FAILED: Failed(&["failed_time"]),
        FAILED_BETWEEN: Failed(&["failed_time"]),
        FAILED_AFTER_ID: Failed(&["INTEGER PRIMARY KEY"]),
        FAILED_OLDEST: Failed(&["failed_time"]),
        FAILED_COUNT_SINCE: Failed(&["failed_user"]),
        FAILED_NEWEST_SINCE: Failed(&["failed_user"]),
        FAILED_SEEN: Unchecked("by the primary key of a small table"),
        SET_FAILED_SEEN: Unchecked("by the primary key of a small table"),
    ]
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Database;

    /// The detail column of `EXPLAIN QUERY PLAN` for `sql`, one line per step, with every
    /// parameter bound to a dummy value (plans do not depend on it).
    fn plan(conn: &rusqlite::Connection, sql: &str) -> String {
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        for i in 1..=stmt.parameter_count() {
            stmt.raw_bind_parameter(i, 1).unwrap();
        }
        let mut rows = stmt.raw_query();
        let mut lines = Vec::new();
        while let Some(r) = rows.next().unwrap() {
            lines.push(r.get::<_, String>(3).unwrap());
        }
        lines.join("\n")
    }

    /// Why `plan` is not what a read served by `uses` must be, if it is not.
    fn plan_fault(plan: &str, uses: &[&str], sorts: bool) -> Option<String> {
        // A full scan reads "SCAN wtmp" (SQLite before 3.36: "SCAN TABLE wtmp"), with no
        // "USING ... INDEX" after it.
        let full_scan = plan.lines().any(|l| {
            let l = l.trim_start_matches(|c: char| " |`-".contains(c));
            ["wtmp", "failed"].iter().any(|t| {
                [
                    format!("SCAN {t}"),
                    format!("SCAN TABLE {t}"),
                    format!("SCAN main.{t}"),
                ]
                .contains(&l.to_string())
            })
        });
        if full_scan {
            return Some("full scan".into());
        }
        if plan.contains("TEMP B-TREE") && !sorts {
            return Some("temporary B-tree".into());
        }
        uses.iter()
            .find(|u| !plan.contains(**u))
            .map(|u| format!("does not use {u}"))
    }

    #[test]
    fn queries_use_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_read_write(&dir.path().join("wtmp.db")).unwrap();
        let conn = &db.conn;
        // What the archive statements of rotate name (they run on the archive's connection,
        // whose wtmp has the same schema).
        conn.execute(CREATE_ROTATED, []).unwrap();

        let mut checked: Vec<(String, String, &[&str], bool)> = STATEMENTS
            .iter()
            .filter_map(|&(name, sql, p)| {
                let (uses, sorts) = match p {
                    Plan::Uses(uses) => (uses, false),
                    Plan::UsesThenSorts(uses) => (uses, true),
                    Plan::Unchecked(_) | Plan::Failed(_) => return None,
                };
                Some((name.to_string(), sql.to_string(), uses, sorts))
            })
            .collect();
        // The built statements, for one value and for several. Without values the filtered
        // keys are read only from a file without indexes (see `read.rs`), which must scan.
        for values in [1, 2] {
            for at_most in [false, true] {
                checked.push((
                    format!("filtered_keys({values}, {at_most})"),
                    filtered_keys(values, at_most),
                    &["wtmp_user", "wtmp_tty"],
                    false,
                ));
            }
        }
        // A filtered listing's keys on a file with a User index: the users' from that index
        // alone; the ttys' from wtmp_tty.
        for values in [1, 2] {
            checked.push((
                format!("user_keys({values})"),
                user_keys(values),
                &["SEARCH wtmp USING COVERING INDEX wtmp_user (User=? AND Login<?)"],
                false,
            ));
            checked.push((
                format!("user_count({values})"),
                user_count(values),
                &["SEARCH wtmp USING COVERING INDEX wtmp_user (User=? AND Login<?)"],
                false,
            ));
            checked.push((
                format!("tty_keys({values})"),
                tty_keys(values),
                &["SEARCH wtmp USING INDEX wtmp_tty (TTY=?)"],
                false,
            ));
        }
        // A filtered listing's rows: the User index alone, never the table.
        for values in [1, 2] {
            checked.push((
                format!("user_rows_between({values})"),
                user_rows_between(values),
                &["SEARCH wtmp USING INDEX wtmp_user (User=? AND Login>? AND Login<?)"],
                false,
            ));
        }
        for values in [0, 1, 2] {
            for at_most in [false, true] {
                checked.push((
                    format!("rows_without_login({values}, {at_most})"),
                    rows_without_login(values, at_most),
                    &[],
                    false,
                ));
            }
        }

        let faults: Vec<String> = checked
            .iter()
            .filter_map(|(name, sql, uses, sorts)| {
                let p = plan(conn, sql);
                plan_fault(&p, uses, *sorts).map(|f| format!("{name}: {f}\n  {sql}\n  {p}"))
            })
            .collect();
        assert!(faults.is_empty(), "{}", faults.join("\n"));
    }

    #[test]
    fn failed_queries_use_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wtmp.db-failed");
        let store = crate::storage::FailureStore::open_write(
            &path,
            &crate::storage::FailedFiles::default(),
        )
        .unwrap();
        let mut checked = 0;
        let mut faults = Vec::new();
        for &(name, sql, p) in STATEMENTS {
            let Plan::Failed(uses) = p else { continue };
            checked += 1;
            let p = plan(store.conn(), sql);
            if let Some(f) = plan_fault(&p, uses, false) {
                faults.push(format!("{name}: {f}\n  {sql}\n  {p}"));
            }
            // Teeth: the same statement forced off its indexes fails the check (a rowid
            // range needs no index, so NOT INDEXED cannot force it off).
            if uses.contains(&"INTEGER PRIMARY KEY") {
                continue;
            }
            // The last FROM: the subquery's, where one picks the rows.
            let at = sql.rfind("FROM failed").unwrap() + "FROM failed".len();
            let forced = format!("{} NOT INDEXED{}", &sql[..at], &sql[at..]);
            let p = plan(store.conn(), &forced);
            assert!(plan_fault(&p, uses, false).is_some(), "{name} forced: {p}");
        }
        assert!(checked >= 6);
        assert!(faults.is_empty(), "{}", faults.join("\n"));
    }

    #[test]
    fn the_plan_check_sees_a_forced_scan() {
        // The test above is only as good as `plan_fault`: the same statements forced off
        // their indexes must fail it.
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_read_write(&dir.path().join("wtmp.db")).unwrap();
        for (name, sql, uses) in [
            ("NEWEST_OPEN_ON_TTY", NEWEST_OPEN_ON_TTY, &["wtmp_open"][..]),
            ("NEWEST_BOOT", NEWEST_BOOT, &["wtmp_boot"]),
            ("BOOT_LOGINS", BOOT_LOGINS, &["wtmp_boot"]),
            ("FIRST_LOGIN", FIRST_LOGIN, &["wtmp_login"]),
            ("LOGIN_KEYS_CHUNK", LOGIN_KEYS_CHUNK, &["wtmp_login"]),
        ] {
            let forced = sql.replacen("FROM wtmp", "FROM wtmp NOT INDEXED", 1);
            let p = plan(&db.conn, &forced);
            assert!(plan_fault(&p, uses, false).is_some(), "{name}: {p}");
        }
    }

    #[test]
    fn every_statement_is_in_the_plan_list() {
        let source = include_str!("queries.rs");
        for line in source.lines() {
            let Some(rest) = line.strip_prefix("pub(crate) const ") else {
                continue;
            };
            let Some((name, _)) = rest.split_once(": &str") else {
                continue;
            };
            assert!(
                STATEMENTS.iter().any(|s| s.0 == name),
                "{name} is missing from STATEMENTS"
            );
        }
        for (name, _, plan) in STATEMENTS {
            if let Plan::Unchecked(why) = plan {
                assert!(!why.is_empty(), "{name}: say why its plan is not checked");
            }
        }
    }

    /// The storage sources, by name; a test checks the list is complete.
    const SOURCES: &[(&str, &str)] = &[
        ("build.rs", include_str!("build.rs")),
        ("error.rs", include_str!("error.rs")),
        ("failed.rs", include_str!("failed.rs")),
        ("files.rs", include_str!("files.rs")),
        ("foreign.rs", include_str!("foreign.rs")),
        ("lastlog2.rs", include_str!("lastlog2.rs")),
        ("mod.rs", include_str!("mod.rs")),
        ("private.rs", include_str!("private.rs")),
        ("proc_locks.rs", include_str!("proc_locks.rs")),
        ("read.rs", include_str!("read.rs")),
        ("record.rs", include_str!("record.rs")),
        ("schema.rs", include_str!("schema.rs")),
        ("side_files.rs", include_str!("side_files.rs")),
        ("tests.rs", include_str!("tests.rs")),
        ("vfs.rs", include_str!("vfs.rs")),
        ("write.rs", include_str!("write.rs")),
    ];

    #[test]
    fn sql_is_written_only_in_queries_rs() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/storage");
        for f in std::fs::read_dir(&dir).unwrap() {
            let name = f.unwrap().file_name().into_string().unwrap();
            assert!(
                name == "queries.rs" || SOURCES.iter().any(|s| s.0 == name),
                "src/storage/{name} is not checked: add it to SOURCES"
            );
        }
        const VERBS: &[&str] = &[
            "SELECT", "INSERT", "UPDATE", "DELETE", "REPLACE", "PRAGMA", "CREATE", "DROP", "ALTER",
            "ATTACH", "DETACH", "BEGIN", "COMMIT", "WITH", "EXPLAIN", "VACUUM",
        ];
        for (name, text) in SOURCES {
            // Any string literal (plain or raw) that begins with a statement keyword, written
            // in capitals as every statement here is (messages such as "Update of logout time
            // failed" are not SQL).
            for (at, _) in text.match_indices('"') {
                let rest = text[at + 1..].trim_start();
                let word: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    !VERBS.contains(&word.as_str()),
                    "src/storage/{name} writes SQL ({word} ...) outside queries.rs: {}",
                    rest.chars().take(60).collect::<String>()
                );
            }
        }
    }
}
