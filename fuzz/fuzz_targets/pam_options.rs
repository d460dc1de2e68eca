//! The PAM module's arguments (pam_wtmpdb::options::Options::parse, what follows the module
//! on its /etc/pam.d line) on arbitrary bytes: never a panic, and what it returns is usable
//! and means what the arguments say. The input is the argument list, NUL-separated (as libpam
//! hands them over, C strings); its first byte sets the PAM_SILENT flag.
//!
//! Invariants: the last non-empty `database=` / `socket=` / `*_file=` / `*_socket=` wins and
//! is what target(), socket() and mirror_paths() answer (the default without one); skips()
//! is true exactly for the non-empty names of the last `skip_if=`; `silent` is the flag or
//! the argument; an unknown entry or an invalid line is reported per argument, never more.
#![no_main]

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use pam_wtmpdb::options::Options;
use wtmpdb::legacy::MirrorPaths;
use wtmpdb::target::Target;

/// The value of the last `key=VALUE` argument with a non-empty value.
fn last<'a>(args: &[&'a [u8]], key: &str) -> Option<&'a [u8]> {
    args.iter().rev().find_map(|a| {
        let v = a.strip_prefix(key.as_bytes())?.strip_prefix(b"=")?;
        (!v.is_empty()).then_some(v)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&flag, rest)) = data.split_first() else {
        return;
    };
    let args: Vec<&[u8]> = if rest.is_empty() {
        Vec::new()
    } else {
        rest.split(|&b| b == 0).collect()
    };
    let silent_flag = flag & 1 == 1;
    let o = Options::parse(&args, silent_flag);
    assert_eq!(o, Options::parse(&args, silent_flag));

    let path = |v: &[u8]| Path::new(OsStr::from_bytes(v)).to_path_buf();
    let socket = last(&args, "socket").map_or(Path::new(wtmpdb::varlink::SOCKET).into(), path);
    assert_eq!(o.socket(), socket);
    let target = o.target();
    match last(&args, "database") {
        None => assert!(matches!(target, Target::Auto { .. })),
        Some(b"varlink") => assert_eq!(target, Target::Daemon { socket }),
        Some(db) => assert_eq!(target, Target::File(path(db))),
    }

    let d = MirrorPaths::default();
    let p = o.mirror_paths();
    assert_eq!(p.utmp, last(&args, "utmp_file").map_or(d.utmp, path));
    assert_eq!(p.wtmp, last(&args, "wtmp_file").map_or(d.wtmp, path));
    assert_eq!(
        p.utmpd_socket,
        last(&args, "utmpd_socket").map_or(d.utmpd_socket, path)
    );
    assert_eq!(
        p.wtmpd_socket,
        last(&args, "wtmpd_socket").map_or(d.wtmpd_socket, path)
    );
    assert_eq!(p.timeout, d.timeout);

    let skip_if = args.iter().rev().find_map(|a| a.strip_prefix(b"skip_if="));
    for name in skip_if.into_iter().flat_map(|l| l.split(|&b| b == b',')) {
        assert_eq!(o.skips(name), !name.is_empty(), "{name:?}");
    }
    assert!(!o.skips(b""));
    for a in &args {
        assert!(!o.skips(&[a, b",".as_slice()].concat()));
    }

    assert_eq!(
        o.silent,
        silent_flag || args.contains(&b"silent".as_slice())
    );
    assert!(o.unknown.len() + o.invalid.len() <= args.len());
    for u in &o.unknown {
        assert!(
            args.iter()
                .any(|a| wtmpdb::escape::decode_lossless(a) == u.as_str())
        );
    }
});
