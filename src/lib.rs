//! wtmpdb: login accounting in SQLite with 64-bit microsecond timestamps, compatible with
//! upstream wtmpdb's database and `wtmpdb last` output.
//!
//! The library holds all logic; the `wtmpdb` binary and the PAM module are thin layers.

pub mod cli;
pub mod escape;
pub mod import;
pub mod legacy;
pub mod report;
pub mod resolve;
pub mod session;
pub mod storage;
pub mod time;
pub mod utmp_file;

pub use storage::{Database, Entry, NewEntry};
pub use time::Usec;
