//! The daemon's options and bounds, and its log.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// Where the daemon listens when it binds the socket itself.
pub const SOCKET_PATH: &str = "/run/wtmpdb/socket";

/// Who may read (GetID, GetBootTime, ReadAll, ReadEntries).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readers {
    /// Every local user, as upstream's daemon allows.
    Everyone,
    /// Root and the members of this group (primary or supplementary at connect time); the
    /// database is created 0640 with this group.
    Group { name: String, gid: u32 },
    /// Root alone; the database is created 0600.
    RootOnly,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub database: PathBuf,
    pub socket: PathBuf,
    /// Exit after this long without any connection (socket activation only; None: never).
    pub idle_exit: Option<Duration>,
    pub readers: Readers,
    /// The largest message accepted; a longer one is answered with an error and the
    /// connection closed (its end cannot be found without reading on).
    pub max_message: usize,
    /// The longest string parameter accepted.
    pub max_string: usize,
    /// Connections of other users than root served at once; more are closed at accept.
    /// Root has [`ROOT_RESERVE`] more, so that no user can lock logins out.
    pub max_connections: usize,
    /// Connections of one user (other than root) at once.
    pub max_per_user: usize,
    /// Calls served on one connection.
    pub max_requests: u64,
    /// A connection with no message under way is closed after this long.
    pub idle_timeout: Duration,
    /// A message must arrive whole within this long of its first byte.
    pub message_timeout: Duration,
    /// A reply (or one batch of a stream) must be taken by the client within this long.
    pub write_timeout: Duration,
    /// The largest single reply of ReadAll (a larger result is refused with an error).
    pub max_reply: usize,
    /// Rows per reply of a streaming ReadEntries.
    pub batch_rows: usize,
    /// Database reads (ReadAll, ReadEntries, GetID, GetBootTime) of users other than root
    /// served at once; more wait their turn. Each may hold a reply of `max_reply` bytes.
    pub max_reads: usize,
    pub log_level: i32,
    /// The journal events of the records it writes (see `wtmpdb::journal`).
    pub events: wtmpdb::journal::Events,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            database: PathBuf::from(wtmpdb::storage::DEFAULT_PATH),
            socket: PathBuf::from(SOCKET_PATH),
            idle_exit: None,
            readers: Readers::Everyone,
            max_message: 64 * 1024,
            max_string: wtmpdb::session::MAX_ITEM_BYTES,
            max_connections: 2048,
            max_per_user: 128,
            max_requests: 100_000,
            idle_timeout: Duration::from_secs(60),
            message_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
            max_reply: 16 * 1024 * 1024 - 4096,
            batch_rows: 512,
            max_reads: 1,
            log_level: LOG_WARNING,
            events: wtmpdb::journal::Events::default(),
        }
    }
}

/// Connections of root accepted beyond `max_connections` (logins, logouts, rotation).
pub const ROOT_RESERVE: usize = 256;

pub const LOG_ERR: i32 = 3;
pub const LOG_WARNING: i32 = 4;
pub const LOG_NOTICE: i32 = 5;
pub const LOG_INFO: i32 = 6;
pub const LOG_DEBUG: i32 = 7;

static LEVEL: AtomicI32 = AtomicI32::new(LOG_WARNING);

pub fn set_log_level(level: i32) {
    LEVEL.store(level.clamp(LOG_ERR, LOG_DEBUG), Ordering::Relaxed);
}

pub fn log_level() -> i32 {
    LEVEL.load(Ordering::Relaxed)
}

/// Writes one line to stderr, with the `<N>` priority prefix the journal reads when stderr
/// is a journal stream (JOURNAL_STREAM set), plain otherwise.
pub fn log(level: i32, msg: std::fmt::Arguments<'_>) {
    if level > log_level() {
        return;
    }
    use std::io::Write;
    let line = if std::env::var_os("JOURNAL_STREAM").is_some() {
        format!("<{level}>{msg}\n")
    } else {
        format!("wtmpdbd: {msg}\n")
    };
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

#[macro_export]
macro_rules! log {
    ($level:expr, $($arg:tt)*) => {
        $crate::config::log($level, format_args!($($arg)*))
    };
}

/// Refusal lines logged per second at most; the others are counted, and the count is
/// logged once the second is over.
pub const REFUSALS_PER_SECOND: u64 = 10;

/// The refusals of the current second: when it began, lines logged, lines left out.
static REFUSALS: Mutex<Option<(Instant, u64, u64)>> = Mutex::new(None);

/// Logs a refusal (a call or a client turned away): at most [`REFUSALS_PER_SECOND`] lines a
/// second, so that a client refused in a loop cannot fill the journal; the lines left out
/// are counted and logged as one ("N more refusals"), when the next refusal comes after the
/// second or at the latest a second later (a thread started with the first left out).
pub fn log_refusal(level: i32, msg: std::fmt::Arguments<'_>) {
    if level > log_level() {
        return;
    }
    let now = Instant::now();
    let mut r = REFUSALS.lock().unwrap_or_else(|e| e.into_inner());
    let (since, logged, left_out) = r.get_or_insert((now, 0, 0));
    if now.duration_since(*since) >= Duration::from_secs(1) {
        if *left_out > 0 {
            log(level, format_args!("{left_out} more refusals not logged"));
        }
        (*since, *logged, *left_out) = (now, 0, 0);
    }
    if *logged < REFUSALS_PER_SECOND {
        *logged += 1;
        log(level, msg);
        return;
    }
    *left_out += 1;
    if *left_out == 1 {
        // Whatever comes next, the count is logged once the second is over.
        let _ = std::thread::Builder::new()
            .name("refusals".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                std::thread::sleep(Duration::from_millis(1100));
                flush_refusals(level);
            });
    }
}

/// Logs the count of refusals left out in a second that is over.
fn flush_refusals(level: i32) {
    let mut r = REFUSALS.lock().unwrap_or_else(|e| e.into_inner());
    let Some((since, logged, left_out)) = r.as_mut() else {
        return;
    };
    if *left_out > 0 && since.elapsed() >= Duration::from_secs(1) {
        log(level, format_args!("{left_out} more refusals not logged"));
        (*since, *logged, *left_out) = (Instant::now(), 0, 0);
    }
}

/// [`log!`] for a refusal: rate-bounded by [`log_refusal`].
#[macro_export]
macro_rules! refusal {
    ($level:expr, $($arg:tt)*) => {
        $crate::config::log_refusal($level, format_args!($($arg)*))
    };
}
