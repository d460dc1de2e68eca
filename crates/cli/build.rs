//! With the `static-sqlite` feature: links the system's static SQLite (`libsqlite3.a`) into
//! the program, from the directory in `SQLITE3_LIB_DIR`, else pkg-config's `libdir` of
//! sqlite3, else the multiarch directory (/usr/lib/x86_64-linux-gnu) and /usr/lib. The
//! archive's own needs (libm, and what pkg-config lists) come after it.

use std::path::PathBuf;
use std::process::Command;

fn pkg_config(args: &[&str]) -> Option<String> {
    let out = Command::new("pkg-config").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    println!("cargo:rerun-if-env-changed=SQLITE3_LIB_DIR");
    if std::env::var_os("CARGO_FEATURE_STATIC_SQLITE").is_none() {
        return;
    }
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os("SQLITE3_LIB_DIR") {
        dirs.push(dir.into());
    }
    if let Some(dir) = pkg_config(&["--variable=libdir", "sqlite3"]) {
        dirs.push(dir.into());
    }
    if let (Ok(arch), Ok(os), Ok(env)) = (
        std::env::var("CARGO_CFG_TARGET_ARCH"),
        std::env::var("CARGO_CFG_TARGET_OS"),
        std::env::var("CARGO_CFG_TARGET_ENV"),
    ) {
        dirs.push(format!("/usr/lib/{arch}-{os}-{env}").into());
    }
    dirs.push("/usr/lib".into());
    let Some(dir) = dirs.iter().find(|d| d.join("libsqlite3.a").is_file()) else {
        panic!(
            "static-sqlite: no libsqlite3.a in {dirs:?} (install libsqlite3-dev, or set SQLITE3_LIB_DIR)"
        );
    };
    println!(
        "cargo:rerun-if-changed={}",
        dir.join("libsqlite3.a").display()
    );
    // Not bundled into the crate's library: linked where a program is, and only what it
    // calls is taken from the archive (the tests call nothing of it, and load SQLite as
    // before). Named here, it comes before the upstream crates' `-lsqlite3`, which would
    // otherwise give the program the shared object.
    println!("cargo:rustc-link-search=native={}", dir.display());
    println!("cargo:rustc-link-lib=static:-bundle=sqlite3");
    let private = pkg_config(&["--static", "--libs-only-l", "sqlite3"]).unwrap_or_default();
    let mut needs: Vec<&str> = private
        .split_whitespace()
        .filter_map(|l| l.strip_prefix("-l"))
        .filter(|l| *l != "sqlite3")
        .collect();
    if !needs.contains(&"m") {
        needs.push("m");
    }
    for lib in needs {
        println!("cargo:rustc-link-lib={lib}");
    }
}
