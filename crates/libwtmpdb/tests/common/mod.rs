//! Shared by the C library's test files: the built shared object, installing it as
//! `make install-lib` does, and the tools they need.
#![allow(dead_code)]

#[path = "../../../../tests/support/mod.rs"]
pub mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
/// The shared object cargo built with this test (target/<profile>/deps/libwtmpdb_c.so; a
/// test build does not refresh the copy in target/<profile>).
pub fn built_library() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let so = exe.parent().unwrap().join("libwtmpdb_c.so");
    assert!(so.exists(), "{} not built", so.display());
    so
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        support::missing(tool);
    }
    found
}

/// Installs the library into `dest` as `make install-lib` does; returns the library
/// directory inside it.
pub fn install(dest: &Path) -> PathBuf {
    let out = Command::new("make")
        .arg("-C")
        .arg(repo())
        .arg("install-lib")
        .arg(format!("DESTDIR={}", dest.display()))
        .arg("PREFIX=/usr")
        .arg(format!("LIBWTMPDB_SO={}", built_library().display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "make install-lib: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dest.join("usr/lib")
}

pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `cc $(pkg-config --cflags --libs libwtmpdb)` against the library installed in `dest`
/// (with its library directory `libdir`): builds the program `src` (in tests/c) into `out`,
/// with `extra` flags. Returns the compiler's output.
pub fn compile(
    dest: &Path,
    libdir: &Path,
    src: &str,
    out: &Path,
    extra: &[&str],
) -> std::process::Output {
    let flags = run(Command::new("pkg-config")
        .args(["--cflags", "--libs", "libwtmpdb"])
        .env("PKG_CONFIG_PATH", libdir.join("pkgconfig"))
        .env("PKG_CONFIG_SYSROOT_DIR", dest));
    assert!(flags.contains("-lwtmpdb"), "{flags}");
    Command::new("cc")
        .args([
            "-std=c11",
            "-D_POSIX_C_SOURCE=200809L",
            "-Wall",
            "-Wextra",
            "-Werror",
        ])
        .args(extra)
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/c")
                .join(src),
        )
        .args(flags.split_whitespace())
        .arg("-o")
        .arg(out)
        .output()
        .unwrap()
}
