//! Shared by the test crates of the workspace, each of which includes this file as a module
//! (the root crate's tests with `mod support;`, the other crates' with `#[path]`).

/// Something a test needs is not here: a system tool, or a facility such as mounting a tmpfs.
/// Under `CI=true` that fails the test, because CI must run every check; elsewhere it prints a
/// SKIP line on stderr and the caller leaves out the checks that need it.
#[track_caller]
pub fn missing(what: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{what}: under CI=true every check must run");
    }
    eprintln!("SKIP: {what}: the checks that need it are not run");
}
