//! `wtmpdbd`: see wtmpdbd(8).

use std::path::PathBuf;
use std::time::Duration;

use wtmpdb::storage::private::Private;
use wtmpdbd::config::{self, Config, LOG_ERR, LOG_INFO, Readers};
use wtmpdbd::server::{self, Listening};
use wtmpdbd::{log, sys};

const USAGE: &str = "Usage: wtmpdbd [OPTION]...
The wtmpdb daemon: owns the database and answers org.openSUSE.wtmpdb on a varlink socket.

  -s, --socket-activation   expect the socket from the service manager (it is used
                            whenever LISTEN_FDS passes one; this only requires it)
      --socket PATH         socket to bind when not socket-activated (/run/wtmpdb/socket)
  -f, --database PATH       database file (/var/lib/wtmpdb/wtmp.db)
      --idle-exit SECONDS   exit after this long without connections when
                            socket-activated (30; 0 never)
      --readers WHO         who may read: all (default), root, or a group name/ID
                            (root and that group; the database is then created 0640,
                            with root 0600)
      --max-connections N   connections of users other than root at once (2048;
                            root has 256 more)
      --max-per-user N      connections of one user other than root (128)
      --max-message BYTES   longest message accepted (65536)
      --max-requests N      calls per connection (100000)
      --idle-timeout SECONDS     a connection with no call under way is closed (60)
      --message-timeout SECONDS  a message must arrive whole within this (5)
      --write-timeout SECONDS    a client must take each reply within this (10)
      --max-reply BYTES     largest single reply of ReadAll (16 MiB - 4 KiB)
      --max-reads N         database reads of users other than root at once, each
                            up to one reply (1; one user at most half; root has 2 more)
      --no-journal-events   send no journal event for the records written
      --journal-failed-user a failed attempt's event names the user typed (off:
                            it is often a password typed at the wrong prompt)
      --journal-socket PATH journald's native socket (/run/systemd/journal/socket)
  -d, --debug               log debug messages
  -v, --verbose             log informational messages
      --version             print the version
  -h, --help                print this help
";

fn main() {
    std::process::exit(run());
}

fn fail(msg: impl std::fmt::Display) -> i32 {
    eprintln!("wtmpdbd: {msg}");
    eprintln!("Try 'wtmpdbd --help'.");
    2
}

fn seconds(v: &str) -> Result<Duration, String> {
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e9)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("not a number of seconds: '{v}'"))
}

fn number<T: std::str::FromStr>(v: &str) -> Result<T, String> {
    v.parse().map_err(|_| format!("not a number: '{v}'"))
}

fn run() -> i32 {
    let mut cfg = Config::default();
    let mut require_activation = false;
    let mut idle_exit = Duration::from_secs(30);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let takes_value = matches!(
            name.as_str(),
            "--socket"
                | "-f"
                | "--database"
                | "--idle-exit"
                | "--readers"
                | "--max-connections"
                | "--max-per-user"
                | "--max-message"
                | "--max-requests"
                | "--idle-timeout"
                | "--message-timeout"
                | "--write-timeout"
                | "--max-reply"
                | "--max-reads"
                | "--journal-socket"
        );
        let value = if takes_value {
            match inline.or_else(|| args.next()) {
                Some(v) => v,
                None => return fail(format!("option '{name}' needs a value")),
            }
        } else {
            if inline.is_some() {
                return fail(format!("option '{name}' takes no value"));
            }
            String::new()
        };
        let set = (|| -> Result<(), String> {
            match name.as_str() {
                "-s" | "--socket-activation" => require_activation = true,
                "--socket" => cfg.socket = PathBuf::from(&value),
                "-f" | "--database" => cfg.database = PathBuf::from(&value),
                "--idle-exit" => idle_exit = seconds(&value)?,
                "--readers" => {
                    cfg.readers = match value.as_str() {
                        "all" => Readers::Everyone,
                        "root" => Readers::RootOnly,
                        g => Readers::Group {
                            name: g.to_string(),
                            gid: wtmpdb::accounts::group_id(g)
                                .ok_or_else(|| format!("no group '{g}'"))?,
                        },
                    }
                }
                "--max-connections" => cfg.max_connections = number(&value)?,
                "--max-per-user" => cfg.max_per_user = number(&value)?,
                "--max-message" => cfg.max_message = number(&value)?,
                "--max-requests" => cfg.max_requests = number(&value)?,
                "--idle-timeout" => cfg.idle_timeout = seconds(&value)?,
                "--message-timeout" => cfg.message_timeout = seconds(&value)?,
                "--write-timeout" => cfg.write_timeout = seconds(&value)?,
                "--max-reply" => cfg.max_reply = number(&value)?,
                "--max-reads" => cfg.max_reads = number(&value)?,
                "--no-journal-events" => cfg.events.enabled = false,
                "--journal-failed-user" => cfg.events.failed_user = true,
                "--journal-socket" => cfg.events.socket = PathBuf::from(&value),
                "-d" | "--debug" => cfg.log_level = config::LOG_DEBUG,
                "-v" | "--verbose" => cfg.log_level = cfg.log_level.max(config::LOG_INFO),
                "--version" => {
                    println!("wtmpdbd {}", env!("CARGO_PKG_VERSION"));
                    std::process::exit(0);
                }
                "-h" | "--help" => {
                    print!("{USAGE}");
                    std::process::exit(0);
                }
                other => return Err(format!("unknown option '{other}'")),
            }
            Ok(())
        })();
        if let Err(e) = set {
            return fail(e);
        }
    }
    config::set_log_level(cfg.log_level);
    if cfg.max_message < 64
        || cfg.max_connections == 0
        || cfg.max_requests == 0
        || cfg.max_reads == 0
    {
        return fail(
            "--max-message must be at least 64, --max-connections, --max-requests and \
             --max-reads at least 1",
        );
    }
    // Before any thread: freed replies go back to the system (see sys::bound_malloc).
    sys::bound_malloc();
    // The database, its side files and its spool are ours alone: nothing we create is
    // readable by others unless --readers says so (then prepare_database sets the mode).
    sys::umask(0o077);
    if let Err(e) = prepare_database(&cfg) {
        log!(LOG_ERR, "{e}");
        return 1;
    }
    // Room for records on a full disk (see wtmpdb::session::spool::reserve); a full disk
    // now leaves it partial, for a later merge to fill.
    match wtmpdb::session::spool::fill_reserve(&cfg.database) {
        Ok(slots) => log!(config::LOG_DEBUG, "the spool's reserve holds {slots} slots"),
        Err(e) => log!(config::LOG_WARNING, "{e}"),
    }
    let limit = sys::raise_file_limit();
    if (limit as usize) < cfg.max_connections + config::ROOT_RESERVE + 64 {
        log!(
            config::LOG_WARNING,
            "the open-file limit {limit} is below --max-connections {} (+{} for root, +64)",
            cfg.max_connections,
            config::ROOT_RESERVE
        );
    }
    let listening = match server::listen(&cfg) {
        Ok(l) => l,
        Err(e) => {
            log!(LOG_ERR, "cannot listen: {e}");
            return 1;
        }
    };
    let (listener, idle) = match listening {
        Listening::Activated(l) => (l, Some(idle_exit).filter(|d| !d.is_zero())),
        Listening::Bound(_) if require_activation => {
            log!(
                LOG_ERR,
                "--socket-activation given, but no socket was passed (LISTEN_FDS)"
            );
            return 1;
        }
        Listening::Bound(l) => (l, None),
    };
    log!(
        LOG_INFO,
        "serving {} (readers: {:?})",
        cfg.database.display(),
        cfg.readers
    );
    if let Err(e) = server::notify("READY=1") {
        log!(
            config::LOG_WARNING,
            "cannot notify the service manager: {e}"
        );
    }
    server::serve(listener, cfg, idle)
}

/// The rule for the daemon's files (see `wtmpdb::storage::private`): root's alone, or
/// readable by the readers' group.
fn private(cfg: &Config) -> Private {
    match &cfg.readers {
        // Upstream's daemon creates 0600 too; reads go through the daemon.
        Readers::Everyone | Readers::RootOnly => Private::ROOT,
        Readers::Group { gid, .. } => Private { group: Some(*gid) },
    }
}

/// Creates a missing database file with the mode the readers allow before the core opens
/// it (the core creates 0644 for every user's `last`; the daemon's file is private): 0600,
/// or 0640 with the readers' group. An existing file is left as it is, but one that others
/// may open is named in a warning with the command that hands it over: while they can open
/// it, a user can pin its log or lock its side files past the daemon.
fn prepare_database(cfg: &Config) -> Result<(), String> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let private = private(cfg);
    let (mode, group) = (private.mode(), private.group);
    let path = &cfg.database;
    if std::fs::symlink_metadata(path).is_ok() {
        if let Some(why) = wtmpdb::storage::private::exposure(path, private) {
            log!(
                config::LOG_WARNING,
                "{why}: users can hold its log and locks past this daemon; \
                 `wtmpdb secure -f {}` hands it over (see wtmpdb-secure(1))",
                path.display()
            );
        }
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        server::create_dirs(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path);
    match f {
        Ok(f) => {
            f.set_permissions(std::fs::Permissions::from_mode(mode))
                .map_err(|e| format!("{}: {e}", path.display()))?;
            if let Some(gid) = group {
                std::os::unix::fs::fchown(&f, None, Some(gid))
                    .map_err(|e| format!("{}: cannot give it group {gid}: {e}", path.display()))?;
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!("cannot create {}: {e}", path.display())),
    }
}
