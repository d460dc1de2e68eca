//! What `who` reads besides the database: a `/proc/PID/stat` line (its command name is any
//! bytes the process chose) and a logind session file. Either may be refused, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = wtmpdb::process::parse_start_time(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = wtmpdb::report::logind::parse("1", text);
    }
});
