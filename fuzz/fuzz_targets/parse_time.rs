//! `last -s/-t/-p TIME` parsing on arbitrary text: it may refuse, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|arg: &str| {
    let _ = wtmpdb::time::parse_time(arg);
});
