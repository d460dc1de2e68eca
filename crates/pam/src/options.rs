//! Module arguments, parsed anew on every call into a value owned by that call: nothing is
//! kept between calls, so two PAM handles with different `database=` in one process (or in
//! concurrent threads) never see each other's settings (upstream keeps a static pointer).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use wtmpdb::legacy::{MirrorKind, MirrorPaths};
use wtmpdb::storage::DEFAULT_PATH;
use wtmpdb::target::Target;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// `debug`: log user, tty, host source, service and row ID at LOG_DEBUG.
    pub debug: bool,
    /// `silent` or the PAM_SILENT flag: do not log "User unknown".
    pub silent: bool,
    /// `socket=PATH`: wtmpdbd's socket (default /run/wtmpdb/socket), used when `database=`
    /// is unset or is `varlink`.
    pub socket: Option<PathBuf>,
    /// `database=PATH`; None means the default path.
    pub database: Option<PathBuf>,
    /// `skip_if=svc1,svc2`: services (exact PAM_SERVICE) this module ignores.
    pub skip_if: Vec<Vec<u8>>,
    /// `utmp=utmpx|utmps|none`: the legacy mirror. `none` (the default) because sshd and
    /// login write utmp themselves.
    pub utmp: MirrorKind,
    /// `utmp_file=PATH`, `wtmp_file=PATH` (utmpx), `utmpd_socket=PATH`, `wtmpd_socket=PATH`
    /// (utmps); None means the system default.
    pub utmp_file: Option<PathBuf>,
    pub wtmp_file: Option<PathBuf>,
    pub utmpd_socket: Option<PathBuf>,
    pub wtmpd_socket: Option<PathBuf>,
    /// `authfail`: pam_sm_authenticate records a failed attempt (the line is placed where
    /// only a failed authentication reaches it, as pam_faillock's `authfail`).
    pub authfail: bool,
    /// `showfailed`: open_session tells the user of the failed attempts since the last
    /// successful login, through the conversation.
    pub showfailed: bool,
    /// `test_panic`, understood by debug builds only (the test harness builds them): the
    /// call panics inside the module, so a test proves that a panic never crosses into
    /// libpam. A release build logs it as an unknown option.
    pub test_panic: bool,
    /// `test_cancel`, debug builds only as `test_panic`: the call makes its own thread's
    /// cancellation pending inside the module, so a test proves that a cancellation acted on
    /// in the module's frames never ends the process.
    pub test_cancel: bool,
    /// `nojournal`: no journal event for the records it writes; `journal_failed_user`: a
    /// failed attempt's event names the user typed; `journal_socket=PATH`: journald's
    /// native socket. Part of each call's options, never of the process.
    pub events: wtmpdb::journal::Events,
    /// Arguments not understood, for the "Unknown option" log line; never fatal.
    pub unknown: Vec<String>,
    /// Known options with a value not understood, as complete log lines; never fatal.
    pub invalid: Vec<String>,
}

fn path(value: &[u8]) -> Option<PathBuf> {
    Some(PathBuf::from(OsStr::from_bytes(value)))
}

impl Options {
    pub fn parse<A: AsRef<[u8]>>(args: &[A], silent_flag: bool) -> Options {
        let mut o = Options {
            silent: silent_flag,
            ..Options::default()
        };
        for a in args {
            o.apply(a.as_ref());
        }
        o
    }

    /// The single place that knows the option names: a new option is one more arm here plus
    /// its field.
    fn apply(&mut self, arg: &[u8]) {
        let (key, value) = match arg.iter().position(|&b| b == b'=') {
            Some(i) => (&arg[..i], Some(&arg[i + 1..])),
            None => (arg, None),
        };
        match (key, value) {
            (b"debug", None) => self.debug = true,
            (b"silent", None) => self.silent = true,
            (b"authfail", None) => self.authfail = true,
            (b"showfailed", None) => self.showfailed = true,
            (b"database", Some(path)) if !path.is_empty() => {
                self.database = Some(PathBuf::from(OsStr::from_bytes(path)));
            }
            (b"skip_if", Some(list)) => {
                self.skip_if = list
                    .split(|&b| b == b',')
                    .filter(|s| !s.is_empty())
                    .map(<[u8]>::to_vec)
                    .collect();
            }
            (b"utmp", Some(name)) => {
                let name = wtmpdb::escape::decode_lossless(name);
                self.utmp = name.parse().unwrap_or_else(|e| {
                    // A typo must not turn a mirror on or fail the login: write nothing.
                    self.invalid
                        .push(format!("{e}; no utmp/wtmp records are written"));
                    MirrorKind::None
                });
            }
            (b"socket", Some(p)) if !p.is_empty() => self.socket = path(p),
            (b"utmp_file", Some(p)) if !p.is_empty() => self.utmp_file = path(p),
            (b"wtmp_file", Some(p)) if !p.is_empty() => self.wtmp_file = path(p),
            (b"utmpd_socket", Some(p)) if !p.is_empty() => self.utmpd_socket = path(p),
            (b"wtmpd_socket", Some(p)) if !p.is_empty() => self.wtmpd_socket = path(p),
            #[cfg(debug_assertions)]
            (b"test_panic", None) => self.test_panic = true,
            #[cfg(debug_assertions)]
            (b"test_cancel", None) => self.test_cancel = true,
            (b"nojournal", None) => self.events.enabled = false,
            (b"journal_failed_user", None) => self.events.failed_user = true,
            (b"journal_socket", Some(p)) if !p.is_empty() => {
                if let Some(p) = path(p) {
                    self.events.socket = p;
                }
            }
            _ => self
                .unknown
                .push(wtmpdb::escape::decode_lossless(arg).into_owned()),
        }
    }

    /// The daemon's socket.
    pub fn socket(&self) -> &Path {
        self.socket
            .as_deref()
            .unwrap_or_else(|| Path::new(wtmpdb::varlink::SOCKET))
    }

    /// Where this line's records go (`database=` and `socket=`, by the core's one rule):
    /// unset, the daemon when it answers, else the default file; `varlink`, the daemon only;
    /// any other value, that file.
    pub fn target(&self) -> Target {
        Target::parse(
            self.database.as_deref().map(Path::as_os_str),
            self.socket(),
            DEFAULT_PATH,
        )
    }

    /// Where the mirror writes. The timeout of each utmps exchange is not an option: the
    /// session writer sets it from what is left of the call's bound.
    pub fn mirror_paths(&self) -> MirrorPaths {
        let d = MirrorPaths::default();
        let or = |p: &Option<PathBuf>, default: PathBuf| p.clone().unwrap_or(default);
        MirrorPaths {
            utmp: or(&self.utmp_file, d.utmp),
            wtmp: or(&self.wtmp_file, d.wtmp),
            utmpd_socket: or(&self.utmpd_socket, d.utmpd_socket),
            wtmpd_socket: or(&self.wtmpd_socket, d.wtmpd_socket),
            timeout: d.timeout,
        }
    }

    /// Exact match of PAM_SERVICE against the `skip_if` list.
    pub fn skips(&self, service: &[u8]) -> bool {
        self.skip_if.iter().any(|s| s == service)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_options() {
        let o = Options::parse(
            &[
                "debug",
                "database=/tmp/x y/w.db",
                "skip_if=sshd,,login",
                "bogus",
                "debug=1",
                "database=",
            ],
            false,
        );
        assert!(o.debug);
        assert!(!o.silent);
        assert_eq!(o.target(), Target::File("/tmp/x y/w.db".into()));
        assert_eq!(o.skip_if, vec![b"sshd".to_vec(), b"login".to_vec()]);
        assert_eq!(o.unknown, vec!["bogus", "debug=1", "database="]);
        assert!(o.skips(b"login"));
        assert!(!o.skips(b"logi"));
        assert!(!o.skips(b"sshd2"));
        assert!(!o.skips(b""));
    }

    #[test]
    fn defaults_and_silent_flag() {
        let o = Options::parse::<&str>(&[], true);
        assert!(o.silent);
        assert_eq!(
            o.target(),
            Target::Auto {
                socket: wtmpdb::varlink::SOCKET.into(),
                file: DEFAULT_PATH.into()
            }
        );
        // `varlink` is the daemon only, never a file of that name.
        let o = Options::parse(&["database=varlink", "socket=/s"], false);
        assert_eq!(
            o.target(),
            Target::Daemon {
                socket: "/s".into()
            }
        );
        let o = Options::parse(&[b"silent".as_slice(), b"\xffopt"], false);
        assert!(o.silent);
        assert_eq!(o.unknown, vec!["\\xffopt"]);
    }

    #[test]
    fn later_option_wins() {
        let o = Options::parse(
            &["database=/a", "database=/b", "skip_if=x", "skip_if=y"],
            false,
        );
        assert_eq!(o.target(), Target::File("/b".into()));
        assert_eq!(o.skip_if, vec![b"y".to_vec()]);
    }

    #[test]
    fn mirror_options() {
        let o = Options::parse::<&str>(&[], false);
        assert_eq!(o.utmp, MirrorKind::None);
        assert_eq!(o.mirror_paths().utmp, MirrorPaths::default().utmp);
        assert_eq!(o.mirror_paths().timeout, MirrorPaths::default().timeout);
        let o = Options::parse(
            &[
                "utmp=utmps",
                "utmp_file=/t/u",
                "wtmp_file=/t/w",
                "utmpd_socket=/t/us",
                "wtmpd_socket=/t/ws",
                "utmp_file=",
                "utmp",
            ],
            false,
        );
        assert_eq!(o.utmp, MirrorKind::Utmps);
        let p = o.mirror_paths();
        assert_eq!(p.utmp, Path::new("/t/u"));
        assert_eq!(p.wtmp, Path::new("/t/w"));
        assert_eq!(p.utmpd_socket, Path::new("/t/us"));
        assert_eq!(p.wtmpd_socket, Path::new("/t/ws"));
        assert_eq!(o.unknown, vec!["utmp_file=", "utmp"]);
        assert!(o.invalid.is_empty());
    }

    #[test]
    fn unknown_mirror_means_none_and_is_reported() {
        let o = Options::parse(&[b"utmp=utmpx".as_slice(), b"utmp=UTMPX\xff"], false);
        assert_eq!(o.utmp, MirrorKind::None);
        assert_eq!(
            o.invalid,
            vec![
                "unknown legacy mirror 'UTMPX\\xff' (expected utmpx, utmps or none); \
                 no utmp/wtmp records are written"
            ]
        );
        let o = Options::parse(&["utmp=", "utmp=utmpx"], false);
        assert_eq!(o.utmp, MirrorKind::Utmpx);
        assert_eq!(o.invalid.len(), 1);
    }
}
