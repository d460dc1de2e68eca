//! Module arguments, parsed anew on every call into a value owned by that call: nothing is
//! kept between calls, so two PAM handles with different `database=` in one process (or in
//! concurrent threads) never see each other's settings (upstream keeps a static pointer).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use wtmpdb::storage::DEFAULT_PATH;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// `debug`: log user, tty, host source, service and row ID at LOG_DEBUG.
    pub debug: bool,
    /// `silent` or the PAM_SILENT flag: do not log "User unknown".
    pub silent: bool,
    /// `database=PATH`; None means the default path.
    pub database: Option<PathBuf>,
    /// `skip_if=svc1,svc2`: services (exact PAM_SERVICE) this module ignores.
    pub skip_if: Vec<Vec<u8>>,
    /// Arguments not understood, for the "Unknown option" log line; never fatal.
    pub unknown: Vec<String>,
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

    /// The single place that knows the option names: a new option (such as a later
    /// `utmp=utmpx|utmps|none`) is one more arm here plus its field.
    fn apply(&mut self, arg: &[u8]) {
        let (key, value) = match arg.iter().position(|&b| b == b'=') {
            Some(i) => (&arg[..i], Some(&arg[i + 1..])),
            None => (arg, None),
        };
        match (key, value) {
            (b"debug", None) => self.debug = true,
            (b"silent", None) => self.silent = true,
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
            _ => self
                .unknown
                .push(wtmpdb::escape::decode_lossless(arg).into_owned()),
        }
    }

    pub fn database(&self) -> &Path {
        self.database
            .as_deref()
            .unwrap_or_else(|| Path::new(DEFAULT_PATH))
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
        assert_eq!(o.database(), Path::new("/tmp/x y/w.db"));
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
        assert_eq!(o.database(), Path::new(DEFAULT_PATH));
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
        assert_eq!(o.database(), Path::new("/b"));
        assert_eq!(o.skip_if, vec![b"y".to_vec()]);
    }
}
