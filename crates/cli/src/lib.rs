//! The `wtmpdb` command line: argument parsing and printing only. What each command does,
//! and its rules, is the core library's (`wtmpdb::ops`, `wtmpdb::report`,
//! `wtmpdb::import`). One clap definition serves parsing, `--help`, the man pages and the
//! shell completions (see `examples/gen-docs.rs`).

use std::ffi::{OsStr, OsString};
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, ArgMatches, Command};

use wtmpdb::ops::{self, BootKind};
use wtmpdb::report::{self, HostColumn, LastOptions, Resolve, TimeFormat};
use wtmpdb::session::spool;
use wtmpdb::storage::{self, Database};
use wtmpdb::target::{Store, Target};
use wtmpdb::time;
use wtmpdb::varlink;

/// `print!` that does not panic when standard output is closed (`wtmpdb ... | true`).
macro_rules! out {
    ($($arg:tt)*) => {{
        let _ = write!(io::stdout(), $($arg)*);
    }};
}

macro_rules! outln {
    ($($arg:tt)*) => {{
        let _ = writeln!(io::stdout(), $($arg)*);
    }};
}

/// The version upstream-compatible tools and scripts see.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What `--version` says this implementation is compatible with.
pub const COMPATIBLE: &str = "Rust implementation; its database, `last` output, PAM module \
options and libwtmpdb.so.0 are those of wtmpdb 0.75";

const TIME_HELP: &str = "TIME is \"YYYY-MM-DD HH:MM:SS\", \"YYYY-MM-DD HH:MM\", \"YYYY-MM-DD\", \
\"YYYYMMDDHHMMSS\", \"HH:MM:SS\" or \"HH:MM\" (today), or one of now, today, yesterday, tomorrow \
(local time).";

/// `ops::ROTATE_DEFAULT_DAYS` as clap's static default (a test keeps the two equal).
const ROTATE_DEFAULT_DAYS: &str = "60";

/// `storage::Retention::default()` as clap's static defaults (a test keeps them equal).
const FAILED_DEFAULT_DAYS: &str = "90";
const FAILED_DEFAULT_MAX: &str = "100000";

fn file_arg() -> Arg {
    Arg::new("file")
        .short('f')
        .long("file")
        .value_name("FILE")
        .value_parser(clap::value_parser!(PathBuf))
        .help(format!(
            "Use FILE as wtmpdb database [default: {}, or wtmpdbd when it answers: see wtmpdb(1)]; `varlink`: through wtmpdbd (every command but import and secure)",
            storage::DEFAULT_PATH
        ))
}

fn flag(id: &'static str, short: char, long: &'static str, help: &'static str) -> Arg {
    Arg::new(id)
        .short(short)
        .long(long)
        .action(ArgAction::SetTrue)
        .help(help)
}

fn last_command() -> Command {
    Command::new("last")
        .about("Show a listing of last logged in users")
        .after_help(TIME_HELP)
        .arg(flag(
            "hostlast",
            'a',
            "hostlast",
            "Display hostnames as last entry",
        ))
        .arg(flag(
            "dns",
            'd',
            "dns",
            "Translate IP addresses into a hostname",
        ))
        .arg(file_arg())
        .arg(flag(
            "fulltimes",
            'F',
            "fulltimes",
            "Display full times and dates",
        ))
        .arg(flag("ip", 'i', "ip", "Translate hostnames to IP addresses"))
        .arg(flag("json", 'j', "json", "Generate JSON output"))
        .arg(
            Arg::new("limit")
                .short('n')
                .long("limit")
                .value_name("N")
                .overrides_with("limit")
                .help("Display only the first N entries (also -N, e.g. -5; 0 = all)"),
        )
        .arg(
            Arg::new("present")
                .short('p')
                .long("present")
                .value_name("TIME")
                .help("Display who was present at TIME"),
        )
        .arg(flag(
            "nohostname",
            'R',
            "nohostname",
            "Don't display hostname",
        ))
        .arg(flag(
            "service",
            'S',
            "service",
            "Display PAM service used to login",
        ))
        .arg(
            Arg::new("since")
                .short('s')
                .long("since")
                .value_name("TIME")
                .help("Display who was logged in after TIME"),
        )
        .arg(
            Arg::new("until")
                .short('t')
                .long("until")
                .value_name("TIME")
                .help("Display who was logged in until TIME"),
        )
        .arg(flag(
            "fullnames",
            'w',
            "fullnames",
            "Display full IP addresses and user and domain names",
        ))
        .arg(flag(
            "system",
            'x',
            "system",
            "Display system shutdown entries",
        ))
        .arg(
            Arg::new("time-format")
                .long("time-format")
                .value_name("FORMAT")
                .help("Display timestamps in FORMAT: notime, short, full or iso"),
        )
        .arg(
            Arg::new("match")
                .value_name("USER|TTY")
                .num_args(0..)
                .help("Display only entries of these users or terminals"),
        )
}

const LASTB_AFTER_HELP: &str = "\
Failed logins are recorded by pam_wtmpdb.so's `authfail` (see pam_wtmpdb(8)) in FILE-failed, \
beside the session database FILE (/var/lib/wtmpdb/wtmp.db-failed by default), a file only \
root (and a group the admin names) may read: a typed user name is often a password. Each \
attempt is listed as util-linux lastb lists a btmp record.";

fn lastb_command() -> Command {
    Command::new("lastb")
        .about("Show a listing of failed login attempts (root only)")
        .after_help(format!("{LASTB_AFTER_HELP}\n\n{TIME_HELP}"))
        .arg(file_arg())
        .arg(flag(
            "fulltimes",
            'F',
            "fulltimes",
            "Display full times and dates",
        ))
        .arg(flag("json", 'j', "json", "Generate JSON output"))
        .arg(
            Arg::new("limit")
                .short('n')
                .long("limit")
                .value_name("N")
                .overrides_with("limit")
                .help("Display only the first N entries (also -N, e.g. -5; 0 = all)"),
        )
        .arg(flag(
            "service",
            'S',
            "service",
            "Display PAM service used to login",
        ))
        .arg(
            Arg::new("since")
                .short('s')
                .long("since")
                .value_name("TIME")
                .help("Display the attempts after TIME"),
        )
        .arg(
            Arg::new("until")
                .short('t')
                .long("until")
                .value_name("TIME")
                .help("Display the attempts until TIME"),
        )
        .arg(flag(
            "fullnames",
            'w',
            "fullnames",
            "Display full IP addresses and user and domain names",
        ))
        .arg(
            Arg::new("time-format")
                .long("time-format")
                .value_name("FORMAT")
                .help("Display timestamps in FORMAT: notime, short, full or iso"),
        )
        .arg(
            Arg::new("match")
                .value_name("USER|TTY")
                .num_args(0..)
                .help("Display only attempts on these users or terminals"),
        )
}

fn logind_args(cmd: Command) -> Command {
    cmd.arg(
        Arg::new("logind")
            .long("logind")
            .value_name("DIR")
            .value_parser(clap::value_parser!(PathBuf))
            .help(format!(
                "Read logind's sessions from DIR [default: {}, where systemd runs]",
                report::logind::SESSIONS_DIR
            )),
    )
    .arg(
        Arg::new("no-logind")
            .long("no-logind")
            .action(ArgAction::SetTrue)
            .conflicts_with("logind")
            .help("Show only the sessions of the database, without logind's"),
    )
}

const WHO_AFTER_HELP: &str = "\
A session is logged in now when its row belongs to the running boot, has no logout, and the \
process recorded at login (PID and start time) is still running. Rows without a recorded \
process (written by upstream wtmpdb or another tool) are shown as \"wtmpdb, unverified\". \
Where logind keeps its sessions, they are merged in. Each line ends with where it came from: \
[wtmpdb], [wtmpdb, unverified], [wtmpdb+logind] or [logind].";

fn who_command() -> Command {
    logind_args(
        Command::new("who")
            .about("Show who is logged in now")
            .after_help(WHO_AFTER_HELP)
            .arg(file_arg())
            .arg(flag(
                "heading",
                'H',
                "heading",
                "Print a line of column headings",
            ))
            .arg(flag(
                "count",
                'q',
                "count",
                "All login names and number of users logged on",
            ))
            .arg(flag(
                "users",
                'u',
                "users",
                "List users logged in, with idle time and PID",
            ))
            .arg(flag("json", 'j', "json", "Generate JSON output")),
    )
}

fn users_command() -> Command {
    logind_args(
        Command::new("users")
            .about("Print the names of the users logged in now")
            .arg(file_arg()),
    )
}

fn lastlog_command() -> Command {
    let days = |id: &'static str, short: char, long: &'static str, help: &'static str| {
        Arg::new(id)
            .short(short)
            .long(long)
            .value_name("DAYS")
            .value_parser(clap::value_parser!(u32).range(..=100_000))
            .help(help)
    };
    Command::new("lastlog")
        .about("Show the most recent login of every user")
        .arg(file_arg())
        .arg(
            Arg::new("user")
                .short('u')
                .long("user")
                .value_name("USER")
                .help("Print the most recent login of USER only"),
        )
        .arg(days(
            "before",
            'b',
            "before",
            "Print only logins older than DAYS days",
        ))
        .arg(days(
            "time",
            't',
            "time",
            "Print only logins more recent than DAYS days",
        ))
        .arg(flag(
            "all",
            'a',
            "all",
            "Print every account of the passwd database, \"**Never logged in**\" for those without a login",
        ))
        .arg(flag("json", 'j', "json", "Generate JSON output"))
        .arg(
            Arg::new("lastlog2")
                .long("lastlog2")
                .value_name("FILE")
                .value_parser(clap::value_parser!(PathBuf))
                .conflicts_with("file")
                .help("Read util-linux's lastlog2 database FILE instead of the wtmpdb database"),
        )
}

const ROOT_AFTER_HELP: &str = "\
Installed or linked as `last`, the program behaves as `wtmpdb last`.

Files: /var/lib/wtmpdb/wtmp.db is the database (SQLite, table wtmp, times in microseconds \
since the epoch), written by pam_wtmpdb.so at every login and logout, and by `wtmpdb boot` \
and `wtmpdb shutdown` at system start and stop.

wtmpdbd: where the daemon owns the database (a root-only file; its socket is \
/run/wtmpdb/socket, WTMPDB_SOCKET names another), `boot` and `shutdown` without -f write \
through it when its socket answers, as upstream's wtmpdb does, and the file otherwise (no \
daemon: the connect fails with ECONNREFUSED, ENOENT, ECONNRESET or EACCES). `last`, `who`, \
`users`, `lastlog` and `boottime` without -f read the file when this user may read it, and \
through the daemon when not (or there is none) and it answers. `-f varlink` sends every command but `import` \
to the daemon and fails when it does not answer; `rotate` goes there only with \
`-f varlink` (the daemon's Rotate has no --keep). A named file is always used directly. \
Nothing is remembered between runs: each decides anew.

Exit status: 0 on success, 1 on any error (one message on standard error).";

const SECURE_AFTER_HELP: &str = "\
A database that every user may open (upstream's and Debian's are 0644) lets any of them hold \
a read transaction that stops its log from being checkpointed, or a lock on its side files \
that sends logins to the spool. Once it is root's alone, nobody else opens it: reads go \
through wtmpdbd, which bounds them. The owner and mode change in place (no row moves, \
writers keep writing) for the database, its -wal, -shm and -journal files, its spool and the failed logins' \
file beside it; \
logrotate's `create` keeps them for the new file. Processes that opened a file before keep \
that access until they close it: they are listed. Run as root; a file that is not a wtmpdb \
database is refused before anything changes.";

const BOOT_AFTER_HELP: &str = "\
Written into the file itself, it also fills the spool's reserve (NAME-spool/.reserve: 32 \
slots of 12 KiB, as far as the disk has room), which keeps a login or logout when the disk \
is full.";

fn boot_command() -> Command {
    Command::new("boot")
        .about("Write a boot entry (at the kernel's boot time)")
        .after_help(BOOT_AFTER_HELP)
        .arg(file_arg())
        .arg(flag(
            "quiet",
            'q',
            "quiet",
            "Print no informational messages",
        ))
}

fn boottime_command() -> Command {
    Command::new("boottime")
        .about("Print the time of the last system boot")
        .arg(file_arg())
}

fn shutdown_command() -> Command {
    Command::new("shutdown")
        .about("Write the shutdown time into the current boot entry")
        .arg(file_arg())
}

fn rotate_command() -> Command {
    Command::new("rotate")
        .about(
            "Move entries older than DAYS days into DIR/NAME_YYYYMMDD.db; the running boot and its open sessions stay",
        )
        .arg(file_arg())
        .arg(
            Arg::new("days")
                .short('d')
                .long("days")
                .value_name("DAYS")
                .value_parser(
                    clap::value_parser!(u32).range(..=i64::from(ops::ROTATE_MAX_DAYS)),
                )
                .default_value(ROTATE_DEFAULT_DAYS)
                .help("Export all entries which are older than DAYS days"),
        )
        .arg(
            Arg::new("keep")
                .long("keep")
                .value_name("COUNT")
                .value_parser(clap::value_parser!(u32))
                .help(
                    "Keep the COUNT newest archives of FILE and delete older ones, as \
                     logrotate's `rotate COUNT` does; 0 keeps none: old entries are \
                     deleted instead of archived [default: keep every archive]",
                ),
        )
        .arg(
            Arg::new("failed-days")
                .long("failed-days")
                .value_name("DAYS")
                .value_parser(clap::value_parser!(u32))
                .default_value(FAILED_DEFAULT_DAYS)
                .help("Forget failed login attempts older than DAYS days (0: any age)"),
        )
        .arg(
            Arg::new("failed-max")
                .long("failed-max")
                .value_name("COUNT")
                .value_parser(clap::value_parser!(u64))
                .default_value(FAILED_DEFAULT_MAX)
                .help("Keep only the COUNT newest failed login attempts (0: any number)"),
        )
}

fn export_command() -> Command {
    Command::new("export")
        .about("Print every record as one JSON line, or only what happened since the last run")
        .after_help(EXPORT_AFTER_HELP)
        .arg(file_arg())
        .arg(
            Arg::new("format")
                .long("format")
                .value_name("FORMAT")
                .value_parser(["json", "ecs"])
                .default_value("json")
                .help("json: our fields, exact values; ecs: Elastic Common Schema"),
        )
        .arg(
            Arg::new("cursor")
                .long("cursor")
                .value_name("FILE")
                .value_parser(clap::value_parser!(PathBuf))
                .help(
                    "Remember in FILE where the export stopped, and start there: each \
                     record once, across runs and a rotate",
                ),
        )
        .arg(flag(
            "follow",
            'F',
            "follow",
            "Keep running, printing the records as they are committed",
        ))
}

fn secure_command() -> Command {
    Command::new("secure")
        .about("Hand the database to wtmpdbd: make it and its side files root's alone (0600)")
        .after_help(SECURE_AFTER_HELP)
        .arg(file_arg())
        .arg(Arg::new("group").long("group").value_name("GROUP").help(
            "Let GROUP read the files (0640), as wtmpdbd --readers GROUP does \
                     [default: root alone]",
        ))
}

fn import_command() -> Command {
    Command::new("import")
        .about("Import legacy wtmp files (importing a file again adds only what is missing)")
        .arg(file_arg())
        .arg(
            Arg::new("btmp")
                .long("btmp")
                .action(ArgAction::SetTrue)
                .help("The files are legacy btmp files: import their failed logins into FILE-failed (see lastb)"),
        )
        .arg(
            Arg::new("logs")
                .value_name("FILE")
                .num_args(0..)
                .value_parser(clap::value_parser!(PathBuf))
                .help("Legacy wtmp files to import"),
        )
}

/// The program itself, without its subcommands.
fn root_command() -> Command {
    Command::new("wtmpdb")
        .about("Y2038-safe login accounting: read and maintain the wtmpdb database")
        .after_long_help(ROOT_AFTER_HELP)
        .version(VERSION)
        .disable_version_flag(true)
        .disable_help_subcommand(true)
        .subcommand_value_name("COMMAND")
        .arg(
            Arg::new("version")
                .short('v')
                .long("version")
                .action(ArgAction::SetTrue)
                .help("Print version number and exit"),
        )
}

/// What defines a subcommand.
type Define = fn() -> Command;

/// Every subcommand, in the order `wtmpdb --help` lists them, with the function that
/// defines it.
const SUBCOMMANDS: [(&str, Define); 12] = [
    ("last", last_command),
    ("lastb", lastb_command),
    ("who", who_command),
    ("users", users_command),
    ("lastlog", lastlog_command),
    ("boot", boot_command),
    ("boottime", boottime_command),
    ("shutdown", shutdown_command),
    ("rotate", rotate_command),
    ("export", export_command),
    ("secure", secure_command),
    ("import", import_command),
];

/// The whole command-line interface.
pub fn command() -> Command {
    SUBCOMMANDS
        .iter()
        .fold(root_command(), |root, (_, sub)| root.subcommand(sub()))
}

/// What parses `args`: when the first argument names a subcommand, the root with that
/// subcommand alone, for clap parses and reports the rest of the line within it; else the
/// whole interface. Defining the other eleven (about 200 arguments' worth of building and
/// freeing) took 0.05 ms of every run of the program.
fn parser(args: &[OsString]) -> Command {
    match args
        .get(1)
        .and_then(|a| SUBCOMMANDS.iter().find(|(name, _)| a == name))
    {
        Some((_, sub)) => root_command().subcommand(sub()),
        None => command(),
    }
}

/// Writes the man pages (`wtmpdb.1`, `wtmpdb-last.1`, ...) into `man_dir` and the bash,
/// zsh and fish completions into `completion_dir`, all from [`command`].
pub fn generate_docs(man_dir: &Path, completion_dir: &Path) -> io::Result<()> {
    use clap_complete::Shell;
    std::fs::create_dir_all(man_dir)?;
    std::fs::create_dir_all(completion_dir)?;
    let mut root = command();
    root.build();
    for sub in root.get_subcommands() {
        let name = format!("wtmpdb-{}", sub.get_name());
        let page = sub.clone().display_name(name.clone());
        let mut out = Vec::new();
        clap_mangen::Man::new(page).render(&mut out)?;
        std::fs::write(man_dir.join(format!("{name}.1")), out)?;
    }
    let mut out = Vec::new();
    clap_mangen::Man::new(root.clone()).render(&mut out)?;
    std::fs::write(man_dir.join("wtmpdb.1"), out)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut root, "wtmpdb", completion_dir)?;
    }
    Ok(())
}

/// A failure to report: one line on stderr, exit status 1.
#[derive(Debug)]
struct Failure(String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(e.to_string())
    }
}

type CmdResult = Result<(), Failure>;

fn fail<T>(msg: impl Into<String>) -> Result<T, Failure> {
    Err(Failure(msg.into()))
}

/// Options of `last` that take a value (the next argument when not attached).
const LAST_VALUE_SHORTS: &[u8] = b"fnpst";
const LAST_VALUE_LONGS: &[&str] = &[
    "--file",
    "--limit",
    "--present",
    "--since",
    "--until",
    "--time-format",
];

/// Rewrites util-linux style `-N` (`-5`, `-12`, also inside clusters like `-x5`) into
/// `--limit=N`, as getopt does for upstream: each digit appends to the number.
fn rewrite_digit_options(args: &[OsString]) -> Vec<OsString> {
    let mut out = Vec::with_capacity(args.len() + 1);
    let mut digits: Option<u64> = None;
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        let Some(s) = arg.to_str() else {
            out.push(arg.clone());
            continue;
        };
        if s == "--" {
            out.extend(args[i - 1..].iter().cloned());
            break;
        }
        if s.starts_with("--") {
            out.push(arg.clone());
            if LAST_VALUE_LONGS.contains(&s) {
                if let Some(v) = args.get(i) {
                    out.push(v.clone());
                    i += 1;
                }
            }
            continue;
        }
        if !s.starts_with('-') || s.len() == 1 {
            out.push(arg.clone());
            continue;
        }
        let mut kept = String::from("-");
        let mut takes_next = false;
        for (pos, c) in s.char_indices().skip(1) {
            if let Some(d) = c.to_digit(10) {
                digits = Some(
                    digits
                        .unwrap_or(0)
                        .saturating_mul(10)
                        .saturating_add(u64::from(d)),
                );
                continue;
            }
            kept.push(c);
            if c.is_ascii() && LAST_VALUE_SHORTS.contains(&(c as u8)) {
                let rest = &s[pos + c.len_utf8()..];
                kept.push_str(rest);
                takes_next = rest.is_empty();
                break;
            }
        }
        if kept.len() > 1 {
            out.push(OsString::from(kept));
        }
        if takes_next {
            if let Some(v) = args.get(i) {
                out.push(v.clone());
                i += 1;
            }
        }
    }
    if let Some(n) = digits {
        out.push(OsString::from(format!("--limit={n}")));
    }
    out
}

/// Entry point of the binary; returns the exit status.
pub fn main(args: Vec<OsString>) -> i32 {
    // Output errors (a closed pipe under `| head`) end the program quietly.
    match run(args) {
        Ok(()) => 0,
        Err(Failure(msg)) => {
            // Messages may quote file names and values: never let them drive the terminal.
            for line in msg.lines() {
                let _ = writeln!(io::stderr(), "{}", wtmpdb::escape::for_terminal(line));
            }
            1
        }
    }
}

fn invoked_as_last(argv0: Option<&OsString>) -> bool {
    argv0
        .map(Path::new)
        .and_then(Path::file_name)
        .is_some_and(|n| n == OsStr::new("last"))
}

fn run(args: Vec<OsString>) -> CmdResult {
    let mut args = args;
    if invoked_as_last(args.first()) {
        args[0] = OsString::from("wtmpdb");
        args.insert(1, OsString::from("last"));
    }
    if args.len() >= 2 && (args[1] == "last" || args[1] == "lastb") {
        let mut rewritten = args[..2].to_vec();
        rewritten.extend(rewrite_digit_options(&args[2..]));
        args = rewritten;
    }
    let matches = match parser(&args).try_get_matches_from(&args) {
        Ok(m) => m,
        Err(e) => {
            use clap::error::ErrorKind;
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    out!("{e}");
                    Ok(())
                }
                _ => {
                    let _ = write!(io::stderr(), "{e}");
                    fail("")
                }
            };
        }
    };
    if matches.get_flag("version") {
        // The first word pair is what scripts parse; the rest says what this is a drop-in for.
        outln!("wtmpdb {VERSION} ({COMPATIBLE})");
        return Ok(());
    }
    match matches.subcommand() {
        Some(("last", m)) => cmd_last(m),
        Some(("lastb", m)) => cmd_lastb(m),
        Some(("boot", m)) => cmd_boot(m),
        Some(("boottime", m)) => cmd_boottime(m),
        Some(("shutdown", m)) => cmd_shutdown(m),
        Some(("rotate", m)) => cmd_rotate(m),
        Some(("import", m)) => cmd_import(m),
        Some(("secure", m)) => cmd_secure(m),
        Some(("export", m)) => cmd_export(m),
        Some(("who", m)) => cmd_who(m),
        Some(("users", m)) => cmd_users(m),
        Some(("lastlog", m)) => cmd_lastlog(m),
        _ => {
            out!("{}", command().render_help());
            Ok(())
        }
    }
}

fn db_path(m: &ArgMatches) -> PathBuf {
    m.get_one::<PathBuf>("file")
        .cloned()
        .unwrap_or_else(|| PathBuf::from(storage::DEFAULT_PATH))
}

fn parse_time_arg(m: &ArgMatches, id: &str) -> Result<Option<i64>, Failure> {
    match m.get_one::<String>(id) {
        None => Ok(None),
        Some(s) => match time::parse_time(s) {
            Some(t) => Ok(Some(t)),
            None => fail(format!("Invalid time value '{s}'")),
        },
    }
}

/// Last-given wins between `-F` and `--time-format`, as with getopt's in-order processing.
fn time_formats(m: &ArgMatches) -> Result<(TimeFormat, TimeFormat, Option<TimeFormat>), Failure> {
    let mut login = TimeFormat::Short;
    let mut logout = TimeFormat::Short;
    let mut footer = Some(TimeFormat::Full);
    let named = match m.get_one::<String>("time-format") {
        Some(s) => match TimeFormat::parse(s) {
            Some(f) => Some(f),
            None => return fail(format!("Invalid time format '{s}'")),
        },
        None => None,
    };
    let full_at = m
        .get_flag("fulltimes")
        .then(|| m.index_of("fulltimes"))
        .flatten();
    let named_at = named.and(m.index_of("time-format"));
    let apply_named = |login: &mut TimeFormat, logout: &mut TimeFormat, footer: &mut Option<_>| {
        if let Some(f) = named {
            *login = f;
            *logout = f;
            *footer = (f != TimeFormat::NoTime).then_some(f);
        }
    };
    match (full_at, named_at) {
        (Some(fa), Some(na)) if fa > na => {
            apply_named(&mut login, &mut logout, &mut footer);
            login = TimeFormat::Full;
            logout = TimeFormat::Full;
        }
        (Some(_), None) => {
            login = TimeFormat::Full;
            logout = TimeFormat::Full;
        }
        _ => apply_named(&mut login, &mut logout, &mut footer),
    }
    Ok((login, logout, footer))
}

fn cmd_last(m: &ArgMatches) -> CmdResult {
    let (a, r, d, i) = (
        m.get_flag("hostlast"),
        m.get_flag("nohostname"),
        m.get_flag("dns"),
        m.get_flag("ip"),
    );
    for (x, y, nx, ny) in [
        (a, r, 'a', 'R'),
        (d, r, 'd', 'R'),
        (i, r, 'i', 'R'),
        (d, i, 'd', 'i'),
    ] {
        if x && y {
            return fail(format!(
                "The options -{nx} and -{ny} cannot be used together."
            ));
        }
    }
    let (login_format, logout_format, footer_format) = time_formats(m)?;
    let limit = match m.get_one::<String>("limit") {
        None => 0,
        Some(s) => match s.trim().parse::<u64>() {
            Ok(n) => n,
            Err(_) => return fail(format!("Invalid limit '{s}'")),
        },
    };
    let opts = LastOptions {
        host: if a {
            HostColumn::Last
        } else if r {
            HostColumn::Hidden
        } else {
            HostColumn::Normal
        },
        resolve: if d {
            Resolve::Dns
        } else if i {
            Resolve::Ip
        } else {
            Resolve::No
        },
        full_names: m.get_flag("fullnames"),
        json: m.get_flag("json"),
        limit,
        present: parse_time_arg(m, "present")?,
        since: parse_time_arg(m, "since")?,
        until: parse_time_arg(m, "until")?,
        service: m.get_flag("service"),
        system: m.get_flag("system"),
        login_format,
        logout_format,
        footer_format,
        matches: m
            .get_many::<String>("match")
            .map(|v| v.cloned().collect())
            .unwrap_or_default(),
        label: m
            .get_one::<PathBuf>("file")
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "wtmpdb".to_string()),
    };
    let path = db_path(m);
    if let Some(client) = through_daemon(m, &path)? {
        let rows = daemon_stream(client)?;
        return listed(report::last(
            &rows,
            &opts,
            &mut io::BufWriter::new(io::stdout().lock()),
        ));
    }
    spool_before_read(&path);
    let db = Database::open_read_only(&path).map_err(|e| {
        // Only a regular file is looked into (a FIFO would block the look).
        if !matches!(e, storage::Error::NotAFile { .. }) && wtmpdb::utmp_file::looks_like_wtmp(&path) {
            Failure(format!(
                "{e} (it is a legacy wtmp file: read it with util-linux `last -f`, or import it with `wtmpdb import`)"
            ))
        } else {
            not_opened(m, &path, e)
        }
    })?;
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    match report::last(&db, &opts, &mut out) {
        Ok(_) => Ok(()),
        Err(report::ReportError::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn cmd_lastb(m: &ArgMatches) -> CmdResult {
    let (login_format, logout_format, footer_format) = time_formats(m)?;
    let limit = match m.get_one::<String>("limit") {
        None => 0,
        Some(s) => match s.trim().parse::<u64>() {
            Ok(n) => n,
            Err(_) => return fail(format!("Invalid limit '{s}'")),
        },
    };
    let failures = storage::failures_path(&db_path(m));
    let opts = LastOptions {
        full_names: m.get_flag("fullnames"),
        json: m.get_flag("json"),
        limit,
        since: parse_time_arg(m, "since")?,
        until: parse_time_arg(m, "until")?,
        service: m.get_flag("service"),
        login_format,
        logout_format,
        footer_format,
        matches: m
            .get_many::<String>("match")
            .map(|v| v.cloned().collect())
            .unwrap_or_default(),
        // util-linux names its file in the footer: "btmp begins ...".
        label: match m.get_one::<PathBuf>("file") {
            Some(_) => failures.display().to_string(),
            None => "btmp".to_string(),
        },
        ..LastOptions::default()
    };
    let rows = match target(m) {
        Target::Daemon { .. } => {
            let mut client = varlink::Client::connect(&daemon_socket(), DAEMON_TIMEOUT)?;
            client.read_failures()?
        }
        // Without -f, a caller who may not read the file (wtmpdbd's readers' group, when
        // the file is not 0640) reads through the daemon when it answers; anyone else gets
        // the file's one clear line, not the daemon's refusal.
        Target::Auto { .. } => match storage::FailureStore::open_read(&failures) {
            Ok(Some(store)) => report::lastb::rows(Some(&store))?,
            // No file here: the daemon's database may lie elsewhere (as for `last`); its
            // refusal is said, and without a daemon there is nothing to list.
            Ok(None) => match varlink::Client::connect(&daemon_socket(), DAEMON_TIMEOUT) {
                Ok(mut c) => c.read_failures()?,
                Err(_) => report::lastb::rows(None)?,
            },
            Err(e @ storage::FailedError::NotPermitted { .. }) => {
                match varlink::Client::connect(&daemon_socket(), DAEMON_TIMEOUT)
                    .and_then(|mut c| c.read_failures())
                {
                    Ok(rows) => rows,
                    Err(_) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        },
        Target::File(_) => {
            let store = storage::FailureStore::open_read(&failures)?;
            report::lastb::rows(store.as_ref())?
        }
    };
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    listed(report::lastb::lastb(&rows, &opts, &mut out))
}

/// How long the command waits for wtmpdbd's reply.
const DAEMON_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// wtmpdbd's socket: WTMPDB_SOCKET names another one (this command has no privilege to
/// lend: it only changes what the caller reads or, as root, where root's call goes).
fn daemon_socket() -> PathBuf {
    std::env::var_os("WTMPDB_SOCKET")
        .filter(|s| !s.is_empty())
        .map_or_else(|| PathBuf::from(varlink::SOCKET), PathBuf::from)
}

/// Where `-f` points, by the core's one rule ([`Target::parse`]): nothing, the daemon when it
/// answers, else the default file; `varlink`, the daemon only; any other name, that file.
fn target(m: &ArgMatches) -> Target {
    Target::parse(
        m.get_one::<PathBuf>("file").map(|f| f.as_os_str()),
        daemon_socket(),
        storage::DEFAULT_PATH,
    )
}

/// `-f varlink` for a command that has no wtmpdbd method: one clear error, not a database
/// file named `varlink` in the current directory.
fn not_through_daemon(m: &ArgMatches, command: &str) -> CmdResult {
    match target(m) {
        Target::Daemon { .. } => fail(format!(
            "{command} -f varlink: wtmpdbd has no method for {command}; name the database file"
        )),
        _ => Ok(()),
    }
}

/// Whether a read goes through wtmpdbd: always with `-f varlink`; without `-f`, when this
/// user may not read the database file itself (a root-only database, as wtmpdbd keeps it)
/// or there is none, and the daemon answers. A readable file is read directly: the same rows, without a copy
/// through the socket. Other `-f` files are never read through the daemon.
fn through_daemon(m: &ArgMatches, path: &Path) -> Result<Option<varlink::Client>, Failure> {
    let target = target(m);
    if let Target::Auto { .. } = target {
        // A file this user may not open, or none at all (the daemon's may lie elsewhere).
        let closed = matches!(std::fs::File::open(path),
            Err(e) if matches!(e.kind(), io::ErrorKind::PermissionDenied | io::ErrorKind::NotFound));
        if !closed {
            return Ok(None);
        }
    }
    match target.connect(DAEMON_TIMEOUT)? {
        Store::Daemon(c) => Ok(Some(c)),
        Store::File(_) => Ok(None),
    }
}

/// A failed read-only open of `path`, upstream's message first, then a line that says in
/// the user's terms why (no such file or directory, permission) and what to do.
fn not_opened(m: &ArgMatches, path: &Path, e: storage::Error) -> Failure {
    if !matches!(e, storage::Error::Open { .. }) {
        return e.into();
    }
    // Only a regular file (or none) is opened: a FIFO would hold the open.
    let opened = match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() => return e.into(),
        _ => std::fs::File::open(path),
    };
    let why = match opened {
        Err(io) => match io.kind() {
            io::ErrorKind::NotFound if m.get_one::<PathBuf>("file").is_none() => format!(
                "{}: no such file: nothing was recorded here yet, or the database lies \
                 elsewhere (Debian's: /var/log/wtmp.db); -f FILE names it",
                path.display()
            ),
            io::ErrorKind::NotFound => match path.parent().filter(|p| !p.as_os_str().is_empty()) {
                Some(dir) if !dir.is_dir() => format!("{}: no such directory", dir.display()),
                _ => format!("{}: no such file", path.display()),
            },
            io::ErrorKind::PermissionDenied => format!(
                "{}: permission denied: the database is root's; read it as root, or through \
                 wtmpdbd ({}; systemctl enable --now wtmpdbd.socket starts it)",
                path.display(),
                if m.get_one::<PathBuf>("file").is_some() {
                    "-f varlink, or no -f"
                } else {
                    "which does not answer now"
                }
            ),
            _ => format!("{}: {io}", path.display()),
        },
        Ok(_) => return e.into(),
    };
    Failure(format!("{e}\n{why}"))
}

/// The daemon's rows as a report reads them: streamed, a query per question on a connection
/// of its own to the socket `first` is connected to (`first` decided that the daemon is
/// read), so that what the command holds does not grow with the table.
fn daemon_stream(first: varlink::Client) -> Result<report::Stream, Failure> {
    drop(first);
    let socket = daemon_socket();
    Ok(report::Stream::open(move || {
        varlink::Client::connect(&socket, DAEMON_TIMEOUT)
    })?)
}

/// The rows a report reads, by the rule of [`through_daemon`]: the file, or the daemon's
/// stream.
fn report_rows(m: &ArgMatches) -> Result<Box<dyn report::RowSource>, Failure> {
    let path = db_path(m);
    Ok(match through_daemon(m, &path)? {
        Some(client) => Box::new(daemon_stream(client)?),
        None => {
            spool_before_read(&path);
            Box::new(Database::open_read_only(&path).map_err(|e| not_opened(m, &path, e))?)
        }
    })
}

/// Before a report reads the database file `path` itself (not through wtmpdbd, which merges
/// its spool on its own): the records waiting in its spool are merged first when this user
/// may (see [`spool::merge_before_read`]); those still waiting are named on stderr, when
/// this user may list the spool. Stdout is the report alone, as without a spool.
fn spool_before_read(path: &Path) {
    if let spool::BeforeRead::Waiting { count, dir } = spool::merge_before_read(path, &events()) {
        let line = format!(
            "wtmpdb: {count} {} in the spool ({}) and {} not shown",
            if count == 1 {
                "record waits"
            } else {
                "records wait"
            },
            dir.display(),
            if count == 1 { "is" } else { "are" },
        );
        let _ = writeln!(io::stderr(), "{}", wtmpdb::escape::for_terminal(&line));
    }
}

/// Output errors that end a listing quietly: a closed pipe (`| head`).
fn listed<T>(r: Result<T, report::ReportError>) -> CmdResult {
    match r {
        Ok(_) => Ok(()),
        Err(report::ReportError::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn system(m: &ArgMatches) -> report::who::System {
    // logind's own directory only where systemd runs (sd_booted); --logind DIR always.
    let logind = if m.get_flag("no-logind") {
        None
    } else {
        match m.get_one::<PathBuf>("logind") {
            Some(dir) => Some(dir.clone()),
            None => report::logind::systemd_booted()
                .then(|| PathBuf::from(report::logind::SESSIONS_DIR)),
        }
    };
    report::who::System {
        logind,
        ..report::who::System::default()
    }
}

fn cmd_who(m: &ArgMatches) -> CmdResult {
    let sys = system(m);
    let rows = report_rows(m)?;
    let opts = report::who::WhoOptions {
        heading: m.get_flag("heading"),
        count: m.get_flag("count"),
        idle: m.get_flag("users"),
        json: m.get_flag("json"),
        clock: report::who::Clock::from_env(),
    };
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    listed(report::who::who_on(&*rows, &sys, &opts, &mut out))
}

fn cmd_users(m: &ArgMatches) -> CmdResult {
    let sys = system(m);
    let rows = report_rows(m)?;
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    listed(report::who::users(&*rows, &sys, &mut out))
}

fn cmd_lastlog(m: &ArgMatches) -> CmdResult {
    use report::lastlog::{LastlogOptions, Records};
    let opts = LastlogOptions {
        user: m.get_one::<String>("user").cloned(),
        before_days: m.get_one::<u32>("before").copied(),
        time_days: m.get_one::<u32>("time").copied(),
        all_accounts: m.get_flag("all"),
        json: m.get_flag("json"),
    };
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    if let Some(file) = m.get_one::<PathBuf>("lastlog2") {
        let l = storage::Lastlog2::open(file)?;
        return listed(report::lastlog::lastlog(
            &Records::Lastlog2(&l),
            &opts,
            &mut out,
        ));
    }
    let rows = report_rows(m)?;
    // One user is one lookup (or one pass without the index); all users, one pass there.
    let records = if opts.user.is_some() {
        Records::Wtmpdb(&*rows)
    } else {
        Records::of_rows(&*rows)?
    };
    listed(report::lastlog::lastlog(&records, &opts, &mut out))
}

fn cmd_boot(m: &ArgMatches) -> CmdResult {
    let recorded = ops::record_boot_at(
        &target(m),
        DAEMON_TIMEOUT,
        BootKind::detect(),
        time::now(),
        &events(),
    )?;
    if recorded.is_none() && !m.get_flag("quiet") {
        outln!("Boot entry already recorded.");
    }
    Ok(())
}

const EXPORT_AFTER_HELP: &str = "\
Each record gives an event when it is written (login, boot, failed) and one when it is \
closed (logout, shutdown). Times are microseconds since the epoch (json) or RFC 3339 UTC \
(ecs, with the exact values under `wtmpdb`); each event names the boot it belongs to. The \
failed attempts are exported when their file can be read (root). With --cursor, an event is \
printed once: a run reads one snapshot, flushes its output, then moves the cursor; what is \
committed meanwhile is in the next run. Each event has a stable event_id (event.id) to drop \
a repeat by, should the export be killed between its output and the cursor's move.";

fn cmd_export(m: &ArgMatches) -> CmdResult {
    use wtmpdb::export::{self, Cursor, Format, Options};
    let path = db_path(m);
    if path.as_os_str() == wtmpdb::target::DAEMON_NAME {
        return fail("export: -f varlink is not supported: give the database file");
    }
    let opts = Options {
        database: path.clone(),
        format: match m.get_one::<String>("format").map(String::as_str) {
            Some("ecs") => Format::Ecs,
            _ => Format::Json,
        },
        failures: std::fs::File::open(storage::failures_path(&path)).is_ok(),
    };
    let cursor_file = m.get_one::<PathBuf>("cursor");
    let mut cursor = match cursor_file {
        Some(f) => Cursor::load(f)?,
        None => Cursor::default(),
    };
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(1 << 16, stdout.lock());
    export::run_and_save(
        &opts,
        cursor_file.map(PathBuf::as_path),
        &mut cursor,
        &mut out,
    )?;
    if !m.get_flag("follow") {
        return Ok(());
    }
    let mut seen = export::watch_state(&path);
    loop {
        std::thread::sleep(export::FOLLOW_POLL);
        let now = export::watch_state(&path);
        if now == seen {
            continue;
        }
        seen = now;
        export::run_and_save(
            &opts,
            cursor_file.map(PathBuf::as_path),
            &mut cursor,
            &mut out,
        )?;
    }
}

fn cmd_boottime(m: &ArgMatches) -> CmdResult {
    let path = db_path(m);
    if let Some(mut client) = through_daemon(m, &path)? {
        return match client.boot_time()? {
            Some(t) => {
                outln!("system boot {}", time::format_full(t));
                Ok(())
            }
            None => Err(ops::OpError::NoBootTime.into()),
        };
    }
    let db = Database::open_read_only(&path).map_err(|e| not_opened(m, &path, e))?;
    outln!("system boot {}", time::format_full(ops::boot_time(&db)?));
    Ok(())
}

fn cmd_shutdown(m: &ArgMatches) -> CmdResult {
    Ok(ops::record_shutdown_at(
        &target(m),
        DAEMON_TIMEOUT,
        time::now(),
        &events(),
    )?)
}

/// The journal events of the rows this command writes into the file itself: on, unless
/// `WTMPDB_JOURNAL_EVENTS=no`; `WTMPDB_JOURNAL_SOCKET` names another socket than journald's.
fn events() -> wtmpdb::journal::Events {
    let mut e = wtmpdb::journal::Events::default();
    if std::env::var_os("WTMPDB_JOURNAL_EVENTS").is_some_and(|v| v == "no") {
        e.enabled = false;
    }
    if let Some(s) = std::env::var_os("WTMPDB_JOURNAL_SOCKET") {
        e.socket = s.into();
    }
    e
}

fn cmd_rotate(m: &ArgMatches) -> CmdResult {
    let days = m
        .get_one::<u32>("days")
        .copied()
        .unwrap_or(ops::ROTATE_DEFAULT_DAYS);
    let keep = m.get_one::<u32>("keep").copied();
    let path = db_path(m);
    if let Target::Daemon { .. } = target(m) {
        if keep.is_some() {
            return fail("rotate -f varlink: --keep is not part of wtmpdbd's Rotate");
        }
        for id in ["failed-days", "failed-max"] {
            if m.value_source(id) == Some(clap::parser::ValueSource::CommandLine) {
                return fail(format!(
                    "rotate -f varlink: --{id} is not part of wtmpdbd's Rotate (it applies the defaults)"
                ));
            }
        }
        let mut client = varlink::Client::connect(&daemon_socket(), DAEMON_TIMEOUT)?;
        match client.rotate(days)? {
            (0, _) => outln!("No old entries found"),
            (n, Some(archive)) => outln!("{n} entries moved to {archive}"),
            (n, None) => outln!("{n} entries moved"),
        }
        return Ok(());
    }
    // Rotating nothing creates nothing: a missing (or misspelt) name is an error, not a new
    // empty database. Failed logins alone (no session recorded yet) are pruned all the same.
    let sessions = std::fs::symlink_metadata(&path).is_ok();
    if !sessions && std::fs::symlink_metadata(storage::failures_path(&path)).is_err() {
        return fail(format!(
            "{}: no such file; nothing to rotate (rotate creates no database)",
            path.display()
        ));
    }
    if sessions {
        let mut db = Database::open_read_write(&path)?;
        let done = ops::rotate(&mut db, &path, days, time::now(), keep)?;
        match &done.archive {
            _ if done.moved == 0 => outln!("No old entries found"),
            Some(archive) => outln!("{} entries moved to {}", done.moved, archive.display()),
            None => outln!("{} entries deleted", done.moved),
        }
        if let Some(keep) = keep {
            for file in ops::remove_old_archives(&path, keep, done.archive.as_deref())? {
                outln!("Deleted old archive {}", file.display());
            }
        }
    }
    let retention = storage::Retention {
        max_age_days: m.get_one::<u32>("failed-days").copied().unwrap_or(90),
        max_count: m.get_one::<u64>("failed-max").copied().unwrap_or(100_000),
    };
    let forgotten = ops::prune_failures(&path, retention, time::now())?;
    if forgotten > 0 {
        outln!("{forgotten} failed login attempts forgotten");
    }
    Ok(())
}

fn cmd_secure(m: &ArgMatches) -> CmdResult {
    use wtmpdb::storage::private::{self, Private};
    not_through_daemon(m, "secure")?;
    let group = match m.get_one::<String>("group") {
        Some(g) => {
            Some(wtmpdb::accounts::group_id(g).ok_or_else(|| Failure(format!("no group '{g}'")))?)
        }
        None => None,
    };
    let rule = Private { group };
    let path = db_path(m);
    let done = private::hand_over(&path, rule).map_err(|e| Failure(e.to_string()))?;
    if done.changed.is_empty() {
        outln!(
            "{} is already root's alone ({:04o}); nothing changed",
            done.file.display(),
            rule.mode()
        );
    }
    for c in &done.changed {
        outln!(
            "{}: owner root, group {}, mode {:04o} (was {:04o})",
            c.path.display(),
            c.gid,
            c.mode,
            c.before
        );
    }
    for f in &done.set_aside {
        let _ = writeln!(
            io::stderr(),
            "warning: {}: a record of a user who could not write the database, set aside \
             (never merged)",
            f.display()
        );
    }
    for h in &done.holders {
        let _ = writeln!(
            io::stderr(),
            "warning: process {} ({}, user {}) opened {} before and keeps that access until it \
             closes it",
            h.pid,
            wtmpdb::escape::for_terminal(&h.command),
            h.uid,
            h.file.display()
        );
    }
    if varlink::Client::connect(&daemon_socket(), std::time::Duration::from_secs(1)).is_err() {
        let _ = writeln!(
            io::stderr(),
            "note: wtmpdbd does not answer on {}: until it does, users other than root cannot \
             read the database (systemctl enable --now wtmpdbd.socket)",
            daemon_socket().display()
        );
    }
    Ok(())
}

fn cmd_import(m: &ArgMatches) -> CmdResult {
    not_through_daemon(m, "import")?;
    let logs: Vec<&PathBuf> = m
        .get_many::<PathBuf>("logs")
        .map(|v| v.collect())
        .unwrap_or_default();
    if logs.is_empty() {
        return fail("No files specified to import.\nUsage: wtmpdb import [-f FILE] LOGS...");
    }
    if m.get_flag("btmp") {
        let path = storage::failures_path(&db_path(m));
        let store = storage::FailureStore::open_write(&path, &storage::FailedFiles::default())?;
        for log in logs {
            let done = wtmpdb::import::import_btmp(&store, log)?;
            outln!(
                "{}: {} records, {} failed logins added",
                log.display(),
                done.records,
                done.added
            );
        }
        return Ok(());
    }
    let path = db_path(m);
    let progress = io::stderr().is_terminal();
    // Into a database that does not exist yet, the first file is built whole beside it and
    // moved into place; the others (or all, when it exists) go into the live database.
    let mut rest = &logs[..];
    if wtmpdb::import::import_new(&path, logs[0], progress)?.is_some() {
        rest = &logs[1..];
        if rest.is_empty() {
            return Ok(());
        }
    }
    let mut db = Database::open_read_write(&path)?;
    wtmpdb::import::import_files(&mut db, rest, progress)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn digit_options_become_a_limit() {
        assert_eq!(rewrite_digit_options(&os(&["-3"])), os(&["--limit=3"]));
        assert_eq!(
            rewrite_digit_options(&os(&["-1", "-2"])),
            os(&["--limit=12"])
        );
        assert_eq!(
            rewrite_digit_options(&os(&["-x5", "-f", "-9.db"])),
            os(&["-x", "-f", "-9.db", "--limit=5"])
        );
        assert_eq!(
            rewrite_digit_options(&os(&["-n", "4", "--", "-5"])),
            os(&["-n", "4", "--", "-5"])
        );
        assert_eq!(
            rewrite_digit_options(&os(&["--since", "-1", "-Rf7.db"])),
            os(&["--since", "-1", "-Rf7.db"])
        );
    }

    /// The root with one subcommand parses and reports a line that names it as the whole
    /// interface does: the same matches, the same help, the same errors.
    #[test]
    fn a_subcommand_parses_alone_as_within_the_whole() {
        let rests: [&[&str]; 9] = [
            &[],
            &["--help"],
            &["-h"],
            &["--bogus"],
            &["-f"],
            &["--fil", "x"],
            &["-f", "x.db", "extra", "--", "-v"],
            &["-v"],
            &["-n", "3", "-x", "-F"],
        ];
        for (name, sub) in SUBCOMMANDS {
            assert_eq!(sub().get_name(), name);
            for rest in rests {
                let args = os(&[&["wtmpdb", name][..], rest].concat());
                let show = |r: Result<ArgMatches, clap::Error>| match r {
                    // The root's matches also list the subcommands it knew of (a debug aid):
                    // its own flag and the subcommand's matches are what the program reads.
                    Ok(m) => format!("{} {:?}", m.get_flag("version"), m.subcommand()),
                    Err(e) => format!("{:?} {}", e.kind(), e.render()),
                };
                assert_eq!(
                    show(parser(&args).try_get_matches_from(&args)),
                    show(command().try_get_matches_from(&args)),
                    "{args:?}"
                );
            }
        }
        assert_eq!(
            format!("{:?}", parser(&os(&["wtmpdb", "-v"]))),
            format!("{:?}", command())
        );
    }

    #[test]
    fn the_definition_is_consistent() {
        command().debug_assert();
        assert_eq!(ROTATE_DEFAULT_DAYS, ops::ROTATE_DEFAULT_DAYS.to_string());
        let r = storage::Retention::default();
        assert_eq!(FAILED_DEFAULT_DAYS, r.max_age_days.to_string());
        assert_eq!(FAILED_DEFAULT_MAX, r.max_count.to_string());
    }
}
