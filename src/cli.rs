//! The `wtmpdb` command line (placeholder).
use std::ffi::OsString;

pub fn main(_args: Vec<OsString>) -> i32 {
    0
}
