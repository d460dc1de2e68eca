//! The reader of `/proc/locks` (wtmpdb::storage::proc_locks), which decides whether another
//! process's lock on a `-shm` index keeps writers out or pins the log. Any user who can read
//! the database places such locks (their ranges, their number; the kernel writes the lines).
//!
//! On arbitrary text: no panic. And on lines built as the kernel writes them from the input
//! (POSIX, OFDLCK, FLOCK and waiting locks, read or write, this process's, others', on this
//! file or another, any range): each POSIX or OFDLCK line reads back as the lock it describes,
//! any other as nothing, and the verdicts are what their documentation says:
//! - attached: a lock on this file covers the "attached" byte (128);
//! - suspect: the first other process's lock on this file covering 120-122, at its first
//!   such byte;
//! - shared writer byte: the same, of read locks only;
//! - unattached reader: the first other process's lock on this file on a read mark (123-127)
//!   whose process has no lock on 128, or a read lock on the checkpoint byte (121).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wtmpdb::storage::{ForeignLock, ParsedLock, parse_proc_locks_line, proc_locks_verdicts};

const ME: i64 = 7;
const DEV: (u32, u32) = (0xfe, 1);
const INO: u64 = 77;

/// One lock of the input, six bytes: its line, and what it means when it is a POSIX or
/// OFDLCK lock.
fn lock(b: &[u8]) -> (String, Option<ParsedLock>) {
    let write = b[0] & 1 == 1;
    let (class, ofd) = match b[0] >> 1 & 7 {
        0..=2 => ("POSIX ", false),
        3 | 4 => ("OFDLCK", true),
        5 => ("FLOCK  ADVISORY ", false),
        6 => ("-> POSIX ", false),
        _ => ("POSIX  ADVISORY  UNLCK", false),
    };
    let pid = if ofd {
        -1
    } else {
        [ME, 10, 11, 12, 0, i64::from(i32::MAX)][usize::from(b[1] % 6)]
    };
    let (dev, ino) = match b[1] >> 4 {
        0..=11 => (DEV, INO),
        12 | 13 => (DEV, INO + 1),
        14 => ((0xfe, 2), INO),
        _ => ((0x103, 0xfffff), u64::MAX),
    };
    let start = match b[2] {
        0..=199 => 110 + i64::from(b[2] % 25),
        200..=249 => i64::from(b[2] - 200),
        _ => i64::MAX - 1,
    };
    let end = match b[3] {
        0..=199 => start.checked_add(i64::from(b[3] % 12)),
        200..=249 => start.checked_add(i64::from(b[3]) << 20),
        _ => None,
    };
    let kind = if write { "WRITE" } else { "READ " };
    let id = u16::from_le_bytes([b[4], b[5]]);
    let end_text = end.map_or("EOF".to_string(), |e| e.to_string());
    let line = if class.contains("UNLCK") {
        format!(
            "{id}: {class} {pid} {:02x}:{:02x}:{ino} {start} {end_text}\n",
            dev.0, dev.1
        )
    } else if class.starts_with("FLOCK") {
        format!(
            "{id}: {class} {kind} {pid} {:02x}:{:02x}:{ino} 0 EOF\n",
            dev.0, dev.1
        )
    } else {
        format!(
            "{id}: {class} ADVISORY  {kind} {pid} {:02x}:{:02x}:{ino} {start} {end_text}\n",
            dev.0, dev.1
        )
    };
    let parsed =
        (class == "POSIX " || class == "OFDLCK").then_some((pid, write, dev, ino, start, end));
    (line, parsed)
}

fn covers(l: &ParsedLock, byte: i64) -> bool {
    l.4 <= byte && l.5.is_none_or(|e| byte <= e)
}

fn here(l: &ParsedLock) -> bool {
    l.2 == DEV && l.3 == INO
}

fn foreign(l: &ParsedLock, byte: i64) -> ForeignLock {
    ForeignLock {
        byte,
        pid: i32::try_from(l.0).unwrap_or(-1),
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = proc_locks_verdicts(text, ME, DEV, INO);
        for line in text.lines() {
            let _ = parse_proc_locks_line(line);
        }
    }

    let mut text = String::new();
    let mut locks = Vec::new();
    for b in data.chunks_exact(6) {
        let (line, parsed) = lock(b);
        assert_eq!(parse_proc_locks_line(&line), parsed, "{line:?}");
        text.push_str(&line);
        locks.extend(parsed);
    }
    let (unattached, shared, attached, suspect) = proc_locks_verdicts(&text, ME, DEV, INO);

    let mine: Vec<&ParsedLock> = locks.iter().filter(|l| here(l)).collect();
    let first_on_writer_bytes = |l: &&&ParsedLock| (120..=122).find(|&b| covers(l, b));
    assert_eq!(attached, mine.iter().any(|l| covers(l, 128)));
    let others = || mine.iter().filter(|l| l.0 != ME);
    let expect = others().find_map(|l| first_on_writer_bytes(&l).map(|b| foreign(l, b)));
    assert_eq!(suspect, expect);
    let expect = others()
        .filter(|l| !l.1)
        .find_map(|l| first_on_writer_bytes(&l).map(|b| foreign(l, b)));
    assert_eq!(shared, expect);
    let attached_pid = |pid: i64| others().any(|l| l.0 == pid && covers(l, 128));
    let expect = others()
        .find(|l| {
            ((123..=127).any(|b| covers(l, b)) && !attached_pid(l.0)) || (!l.1 && covers(l, 121))
        })
        .map(|l| i32::try_from(l.0).unwrap_or(-1));
    assert_eq!(unattached, expect, "{text}");
});
