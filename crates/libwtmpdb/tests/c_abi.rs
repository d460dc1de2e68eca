//! The C library as a C program sees it: installed with `make install-lib DESTDIR=...`,
//! compiled against the installed header with `cc $(pkg-config --cflags --libs libwtmpdb)`,
//! and its exported symbols compared with upstream's version script.

mod common;

use common::{built_library, compile, have, install, run, support};
use std::path::Path;
use std::process::Command;

// The direct rusqlite calls below need SQLite loaded (see wtmpdb::sqlite).
wtmpdb::load_sqlite_at_start!();

/// upstream's lib/libwtmpdb.map, each symbol in its node, and ours in a node of its own.
const EXPECTED: [&str; 10] = [
    "logwtmpdb@@LIBWTMPDB_0.1",
    "wtmpdb_failed_login@@WTMPDB_RS_0.1",
    "wtmpdb_get_boottime@@LIBWTMPDB_0.8",
    "wtmpdb_get_id@@LIBWTMPDB_0.1",
    "wtmpdb_login@@LIBWTMPDB_0.1",
    "wtmpdb_logout@@LIBWTMPDB_0.1",
    "wtmpdb_read_all@@LIBWTMPDB_0.1",
    "wtmpdb_read_all_v2@@LIBWTMPDB_0.50",
    "wtmpdb_rotate@@LIBWTMPDB_0.7",
    "wtmpdb_timespec2usec@@LIBWTMPDB_0.1",
];

const NODES: [&str; 5] = [
    "LIBWTMPDB_0.1",
    "LIBWTMPDB_0.7",
    "LIBWTMPDB_0.8",
    "LIBWTMPDB_0.50",
    "WTMPDB_RS_0.1",
];

/// The defined dynamic symbols of `lib` as `name@@VERSION`, sorted. Older linkers also
/// list each version node as an absolute symbol of its own name (Debian's build of
/// upstream's library has them); those are checked to be exactly the nodes and left out.
fn exported(lib: &Path) -> Vec<String> {
    let text = run(Command::new("readelf")
        .args(["--dyn-syms", "--wide"])
        .arg(lib));
    let mut names = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        // Num: Value Size Type Bind Vis Ndx Name
        let numbered = f
            .first()
            .and_then(|n| n.strip_suffix(':'))
            .is_some_and(|n| n.parse::<u32>().is_ok());
        if !numbered || f.len() < 8 || f[6] == "UND" {
            continue;
        }
        if f[6] == "ABS" {
            let (name, version) = f[7].split_once("@@").unwrap_or((f[7], ""));
            assert!(
                name == version && NODES.contains(&name),
                "unexpected absolute symbol {}",
                f[7]
            );
            continue;
        }
        names.push(format!("{} {} {}", f[3], f[4], f[7]));
    }
    names.sort();
    names
}

#[test]
fn exports_upstreams_symbols_in_their_version_nodes_and_ours_apart() {
    if !have("readelf") {
        return;
    }
    let lib = built_library();
    let want: Vec<String> = EXPECTED
        .iter()
        .map(|s| format!("FUNC GLOBAL {s}"))
        .collect();
    assert_eq!(exported(&lib), want);
    let dynamic = run(Command::new("readelf").arg("-d").arg(&lib));
    assert!(
        dynamic.contains("Library soname: [libwtmpdb.so.0]"),
        "{dynamic}"
    );
    // The unwinder is linked in (see src/lib.rs): no libgcc_s loaded with the library.
    let needed: Vec<&str> = dynamic.lines().filter(|l| l.contains("(NEEDED)")).collect();
    assert!(needed.iter().any(|l| l.contains("libc.so")), "{dynamic}");
    assert!(!needed.iter().any(|l| l.contains("libgcc_s")), "{needed:?}");
}

#[test]
fn a_c_program_built_against_the_installed_header_calls_every_function() {
    if !(have("make") && have("cc") && have("pkg-config") && have("readelf")) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("root");
    let libdir = install(&dest);
    for (link, target) in [
        ("libwtmpdb.so", "libwtmpdb.so.0"),
        ("libwtmpdb.so.0", "libwtmpdb.so.0.75.0"),
    ] {
        assert_eq!(
            std::fs::read_link(libdir.join(link)).unwrap(),
            Path::new(target)
        );
    }
    for installed in ["usr/include/wtmpdb.h", "usr/share/man/man3/libwtmpdb.3"] {
        assert!(dest.join(installed).is_file(), "{installed} not installed");
    }
    // The installed file, too, exports exactly upstream's list.
    let want: Vec<String> = EXPECTED
        .iter()
        .map(|s| format!("FUNC GLOBAL {s}"))
        .collect();
    assert_eq!(exported(&libdir.join("libwtmpdb.so.0.75.0")), want);

    let bin = dir.path().join("every-symbol");
    let cc = |extra: &[&str], out: &Path| compile(&dest, &libdir, "every-symbol.c", out, extra);
    let built = cc(&[], &bin);
    assert!(
        built.status.success(),
        "cc: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    // The same program under AddressSanitizer (every error string is freed exactly once,
    // with free, and nothing the caller owns leaks), UndefinedBehaviorSanitizer too.
    let asan = dir.path().join("every-symbol-asan");
    let sanitized = cc(&["-g", "-fsanitize=address,undefined"], &asan);
    if !sanitized.status.success() {
        support::missing("cc -fsanitize=address,undefined (libasan, libubsan)");
    }

    // A database with a row whose ID is beyond 2^31: the next login's ID is too.
    let db = dir.path().join("wtmp.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "CREATE TABLE wtmp(ID INTEGER PRIMARY KEY, Type INTEGER, User TEXT NOT NULL, \
         Login INTEGER, Logout INTEGER, TTY TEXT, RemoteHost TEXT, Service TEXT) STRICT;
         INSERT INTO wtmp VALUES(3000000000, 3, 'before', 1000, NULL, 'pts/1', NULL, NULL);",
    )
    .unwrap();
    drop(conn);

    // The sanitized run first, on a copy: the plain run's rows are checked below.
    if sanitized.status.success() {
        let copy = dir.path().join("asan.db");
        std::fs::copy(&db, &copy).unwrap();
        let output = Command::new(&asan)
            .arg(&copy)
            .env("LD_LIBRARY_PATH", &libdir)
            .env("ASAN_OPTIONS", "detect_leaks=1:halt_on_error=1")
            .env("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&output.stdout);
        let err = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{}\n{out}\n{err}", output.status);
        assert!(
            out.ends_with("0 failures\n") && err.is_empty(),
            "{out}\n{err}"
        );
    }

    let output = Command::new(&bin)
        .arg(&db)
        .env("LD_LIBRARY_PATH", &libdir)
        .env_remove("LD_PRELOAD")
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    let err = String::from_utf8_lossy(&output.stderr);
    eprintln!("{out}");
    assert!(output.status.success(), "{}\n{out}\n{err}", output.status);
    assert!(out.ends_with("0 failures\n"), "{out}");
    assert!(!out.contains("FAIL"), "{out}");
    // The library wrote nothing to stderr, not even for its (caught) panics.
    assert_eq!(err, "");
    if cfg!(debug_assertions) {
        let caught = out.matches("internal error (panic)").count();
        assert_eq!(caught, 9, "every function catches the panic:\n{out}");
    }

    // The failed attempt, in the failures' file beside the database, as given.
    let failures = rusqlite::Connection::open(format!("{}-failed", db.display())).unwrap();
    let (user, time, tty, service): (String, i64, String, String) = failures
        .query_row("SELECT User, Time, TTY, Service FROM failed", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .unwrap();
    assert_eq!(
        (user.as_str(), time, tty.as_str(), service.as_str()),
        ("p@ssw\u{1b}rd", 4_102_444_800_000_000, "pts/4", "sshd")
    );

    // What the calls stored, read back with SQLite itself.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let (user, login, logout, tty, host_len): (String, i64, i64, String, i64) = conn
        .query_row(
            "SELECT User, Login, Logout, TTY, length(RemoteHost) FROM wtmp WHERE ID = 3000000001",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    assert_eq!(user, "mäll\\xff\x1b[31m\"'; DROP TABLE wtmp;--");
    assert_eq!(login, 5_000_000_000 * 1_000_000);
    assert_eq!(logout, 5_000_003_600 * 1_000_000);
    assert_eq!(tty, "pts/7");
    assert_eq!(host_len, 1024);
    let nulls: (String, Option<String>, Option<String>) = conn
        .query_row(
            "SELECT TTY, RemoteHost, Service FROM wtmp WHERE User = 'nulls'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(nulls, (String::new(), None, None));
}

/// A C program's thread cancelled while inside the library (the cancellation pending before
/// a call, reached at the library's first `open`; made pending in `wtmpdb_read_all`'s
/// callback): the call completes, the thread ends at its next cancellation point, and the
/// process lives. A cancellation acted on inside the library unwinds through Rust frames,
/// and the panic guard cannot let it pass: the process aborted.
#[test]
fn a_thread_cancelled_inside_a_call_ends_after_it_and_the_process_lives() {
    if !(have("make") && have("cc") && have("pkg-config")) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("root");
    let libdir = install(&dest);
    let bin = dir.path().join("cancel");
    let built = compile(&dest, &libdir, "cancel.c", &bin, &["-pthread"]);
    assert!(
        built.status.success(),
        "cc: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let db = dir.path().join("wtmp.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(
            "CREATE TABLE wtmp(ID INTEGER PRIMARY KEY, Type INTEGER, User TEXT NOT NULL, \
             Login INTEGER, Logout INTEGER, TTY TEXT, RemoteHost TEXT, Service TEXT) STRICT;
             INSERT INTO wtmp VALUES(1, 3, 'before', 1000, NULL, 'pts/1', NULL, NULL);",
        )
        .unwrap();
    let output = Command::new(&bin)
        .arg(&db)
        .env("LD_LIBRARY_PATH", &libdir)
        .env_remove("LD_PRELOAD")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{}\n{out}\n{err}", output.status);
    assert!(out.ends_with("0 failures\n"), "{out}");
}
