//! What a journal event adds to a login: `cargo run --release --example journal_cost --
//! SOCKET [N]` writes N sessions (login and logout) into a new database with events sent
//! to SOCKET (journald's native socket, e.g. one started by bench/journal.sh) and N without,
//! interleaved, and prints the mean and median time of a login and a logout each way, and
//! of one event's encode and send alone.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use wtmpdb::journal::{Events, What};
use wtmpdb::session::{CloseTarget, FileWriter, SessionId, SessionItems};

fn stats(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort_unstable();
    let mean = v.iter().sum::<Duration>().as_secs_f64() / v.len() as f64;
    (mean * 1e6, v[v.len() / 2].as_secs_f64() * 1e6)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let socket = PathBuf::from(args.next().expect("usage: journal_cost SOCKET [N]"));
    let n: usize = args.next().map_or(2000, |a| a.parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let mut on = Events::default();
    on.socket = socket.clone();
    let mut times = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
    for i in 0..2 * n {
        let events = if i % 2 == 0 {
            on.clone()
        } else {
            Events::off()
        };
        let w = FileWriter::new(dir.path().join("w.db")).events(events);
        let items = SessionItems {
            user: format!("user{:03}", i % 100),
            tty: format!("pts/{}", i % 200),
            host: Some("192.0.2.44".into()),
            service: Some("sshd".into()),
        };
        let at = 1_800_000_000_000_000 + i as i64 * 1_000_000;
        let t = Instant::now();
        let logged = w.open(&items, 4242, at).unwrap();
        times[i % 2].push(t.elapsed());
        let SessionId::Row(id) = logged.session.id else {
            panic!("spooled")
        };
        let t = Instant::now();
        let closed = w.close(
            CloseTarget::Id(SessionId::Row(id), None),
            &items,
            4242,
            at + 5,
        );
        times[2 + i % 2].push(t.elapsed());
        assert!(closed.row.is_ok());
    }
    let entry = wtmpdb::Entry {
        id: 1,
        kind: wtmpdb::Kind::UserProcess,
        user: "user001".into(),
        login: 1_800_000_000_000_000,
        logout: None,
        tty: Some("pts/1".into()),
        host: Some("192.0.2.44".into()),
        service: Some("sshd".into()),
    };
    let mut send = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        let e = on.row_event(&entry, false, &dir.path().join("w.db"), false, Some(4242));
        let _ = on.send(&e);
        send.push(t.elapsed());
    }
    let _ = What::Login;
    let size = on
        .row_event(&entry, false, &dir.path().join("w.db"), false, Some(4242))
        .encode()
        .len();
    let [login_on, login_off, logout_on, logout_off] = times.map(stats);
    let send = stats(send);
    println!("{n} sessions each way, events to {}", socket.display());
    println!("| | mean µs | median µs |\n|---|---|---|");
    println!(
        "| login, events on | {:.1} | {:.1} |",
        login_on.0, login_on.1
    );
    println!(
        "| login, events off | {:.1} | {:.1} |",
        login_off.0, login_off.1
    );
    println!(
        "| logout, events on | {:.1} | {:.1} |",
        logout_on.0, logout_on.1
    );
    println!(
        "| logout, events off | {:.1} | {:.1} |",
        logout_off.0, logout_off.1
    );
    println!(
        "| one event: build, encode, send | {:.1} | {:.1} |",
        send.0, send.1
    );
    println!("a login event is {size} bytes as sent (our fields)");
}
