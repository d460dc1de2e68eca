//! What `who` reads besides the database: a `/proc/PID/stat` line (its command name is any
//! bytes the process chose) and a logind session file. Either may be refused, never panic.
//! And a stat line as the kernel writes it, with the input as the command name (anything a
//! process may set: all bytes but NUL, parentheses, spaces and newlines included), always
//! gives its start time back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wtmpdb::process::parse_start_time;

fuzz_target!(|data: &[u8]| {
    let _ = parse_start_time(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = wtmpdb::report::logind::parse("1", text);
    }

    let name: Vec<u8> = data.iter().copied().filter(|&b| b != 0).take(64).collect();
    let start = data
        .iter()
        .fold(0i64, |n, &b| n.wrapping_mul(31).wrapping_add(b.into()))
        & i64::MAX;
    let mut line = b"4242 (".to_vec();
    line.extend_from_slice(&name);
    line.extend_from_slice(b") S 1 4242 4242 34816 4242 4194560 1 0 0 0 0 0 0 0 20 0 1 0 ");
    line.extend_from_slice(format!("{start} 9000 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n").as_bytes());
    assert_eq!(
        parse_start_time(&line),
        Some(start),
        "{:?}",
        String::from_utf8_lossy(&line)
    );
});
