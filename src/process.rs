//! The process that serves a session: its ID and start time, as recorded at login, and
//! whether it is still the same live process (read from `/proc`, never guessed).

use std::path::Path;

/// A process as recorded with a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Process {
    pub pid: i32,
    /// Field 22 of `/proc/PID/stat`: clock ticks after boot at which it started. None when
    /// it could not be read.
    pub start_time: Option<i64>,
}

impl Process {
    /// The process `pid` as it runs now (its start time read from `/proc`).
    pub fn current(pid: i32) -> Process {
        Process {
            pid,
            start_time: start_time(Path::new("/proc"), pid),
        }
    }
}

/// What `/proc` says of a recorded process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// Running, and (when a start time was recorded) the same process.
    Alive,
    /// Gone, or its PID now belongs to another process.
    Gone,
    /// `/proc` could not tell (not mounted, or hidden from this user).
    Unknown,
}

/// Field 22 (`starttime`) of `PROC/PID/stat`. The command name (field 2) is in parentheses
/// and may hold spaces and parentheses itself: fields are counted after its last `)`.
pub fn start_time(proc: &Path, pid: i32) -> Option<i64> {
    if pid <= 0 {
        return None;
    }
    use std::io::Read;
    let mut file = std::fs::File::open(proc.join(pid.to_string()).join("stat")).ok()?;
    // One read(2) for the whole line, a few hundred bytes (the daemon asks at every login;
    // reading a file whole costs a stat and doubling reads). A longer one is read to its end.
    let mut buf = [0u8; 1024];
    let mut len = 0;
    loop {
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
        if buf[..len].ends_with(b"\n") {
            break;
        }
        if len == buf.len() {
            let mut all = buf.to_vec();
            file.read_to_end(&mut all).ok()?;
            return parse_start_time(&all);
        }
    }
    parse_start_time(&buf[..len])
}

/// Field 22 of the contents of a `/proc/PID/stat` file (see [`start_time`]). The command
/// name in it is chosen by the process itself: any bytes.
pub fn parse_start_time(stat: &[u8]) -> Option<i64> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&stat[close + 1..]).ok()?;
    // After the name come field 3 (state) onwards: field 22 is the 20th.
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

/// Whether the recorded process is still running, as `/proc` at `proc` shows it.
pub fn liveness(proc: &Path, p: &Process) -> Liveness {
    if p.pid <= 0 {
        return Liveness::Gone;
    }
    if !proc.join("self").exists() {
        return Liveness::Unknown;
    }
    match (start_time(proc, p.pid), p.start_time) {
        (None, _) => {
            if proc.join(p.pid.to_string()).exists() {
                Liveness::Unknown
            } else {
                Liveness::Gone
            }
        }
        (Some(now), Some(then)) if now != then => Liveness::Gone,
        (Some(_), _) => Liveness::Alive,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_time_is_field_22_after_the_name() {
        let line =
            b"123 (a b) c)) S 1 123 123 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 200";
        assert_eq!(parse_start_time(line), Some(98765));
        assert_eq!(parse_start_time(b"123 (x) S 1"), None);
        assert_eq!(parse_start_time(b"garbage"), None);
    }

    #[test]
    fn this_process_is_alive_a_reused_pid_is_not() {
        let proc = Path::new("/proc");
        let me = Process::current(std::process::id() as i32);
        assert!(me.start_time.is_some());
        assert_eq!(liveness(proc, &me), Liveness::Alive);
        let reused = Process {
            start_time: me.start_time.map(|t| t + 1),
            ..me
        };
        assert_eq!(liveness(proc, &reused), Liveness::Gone);
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        child.wait().unwrap();
        let dead = Process {
            pid,
            start_time: Some(1),
        };
        assert_eq!(liveness(proc, &dead), Liveness::Gone);
    }

    /// The line is read whole however long it is (a read ends at its newline, or at the
    /// end of a line longer than the first read's buffer), and without its newline too.
    #[test]
    fn a_stat_line_of_any_length_is_read_whole() {
        let proc = tempfile::tempdir().unwrap();
        std::fs::create_dir(proc.path().join("7")).unwrap();
        let stat = proc.path().join("7").join("stat");
        let fields = " S 1 7 7 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 4242 1000 200";
        for name in [1, 1000, 1012, 1020, 5000] {
            let line = format!("7 ({}){fields}\n", "x".repeat(name));
            std::fs::write(&stat, &line).unwrap();
            assert_eq!(
                start_time(proc.path(), 7),
                Some(4242),
                "name of {name} bytes"
            );
            std::fs::write(&stat, line.trim_end()).unwrap();
            assert_eq!(
                start_time(proc.path(), 7),
                Some(4242),
                "{name} bytes, no newline"
            );
        }
    }
}
