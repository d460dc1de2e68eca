//! wtmpdb: login accounting in SQLite with 64-bit microsecond timestamps, compatible with
//! upstream wtmpdb's database and `wtmpdb last` output.
//!
//! This crate is the core: storage, the session rule, the maintenance operations, the
//! history model and its printers, time, escaping, legacy files and mirrors. The front ends
//! (the `wtmpdb` command, the PAM module) are thin crates under `crates/` on top of it.
//!
//! `unsafe` lives in four modules only, each allowed it where it is declared: `sys.rs` (the
//! plain libc calls, behind safe functions), `sqlite.rs` (loading SQLite), `storage/vfs.rs`
//! (SQLite's C API) and `legacy/utmpx.rs` (glibc's utmpx functions). Everywhere else it does
//! not compile.

#![deny(unsafe_code)]

pub mod accounts;
pub mod escape;
pub mod export;
pub mod history;
pub mod import;
pub mod input;
pub mod interface;
pub mod journal;
pub mod legacy;
pub mod ops;
pub mod process;
pub mod report;
pub mod resolve;
pub mod session;
// Loads SQLite when a database is first opened (see the module).
#[allow(unsafe_code)]
pub mod sqlite;
pub mod storage;
// The one home of the core's plain libc calls: each `unsafe` call behind a safe function.
#[allow(unsafe_code)]
mod sys;
pub use sys::CancelDeferred;
pub mod target;
pub mod time;
pub mod utmp_file;
pub mod varlink;
pub mod writer;

pub use storage::{Database, Entry, Kind, NewEntry};
pub use time::Usec;
