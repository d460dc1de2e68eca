//! What the spool's reserve adds to a session with nothing spooled: `cargo run --release
//! --example reserve_cost -- [N] [DIR]` writes N sessions (login and logout) into a database
//! without a spool and N into one whose spool holds only its full reserve (as `wtmpdb boot`
//! leaves it), interleaved, in a new directory under DIR (default: the system's temporary
//! directory), and prints the median login and logout each way; then the median of the
//! merge call alone, which is all a write does with such a spool.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use wtmpdb::session::{CloseTarget, FileWriter, SessionItems, spool};
use wtmpdb::storage::Database;

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort_unstable();
    v[v.len() / 2].as_secs_f64() * 1e6
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(1000, |a| a.parse().unwrap());
    let dir = match args.next() {
        Some(d) => tempfile::tempdir_in(PathBuf::from(d)).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    let bare = dir.path().join("bare.db");
    let reserved = dir.path().join("reserved.db");
    drop(Database::open_read_write(&bare).unwrap());
    drop(Database::open_read_write(&reserved).unwrap());
    let slots = spool::fill_reserve(&reserved).unwrap();
    let mut times = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
    for i in 0..2 * n {
        let which = i % 2;
        let path = if which == 0 { &bare } else { &reserved };
        let w = FileWriter::new(path);
        let items = SessionItems {
            user: format!("user{:03}", i % 100),
            tty: format!("pts/{}", i % 200),
            host: Some("192.0.2.44".into()),
            service: Some("sshd".into()),
        };
        let at = 1_800_000_000_000_000 + i as i64 * 1_000_000;
        let t = Instant::now();
        let logged = w.open(&items, 1000, at).unwrap();
        times[which].push(t.elapsed());
        assert!(logged.spooled.is_none());
        let t = Instant::now();
        let closed = w.close(
            CloseTarget::Id(logged.session.id, None),
            &items,
            1000,
            at + 1,
        );
        times[2 + which].push(t.elapsed());
        assert!(closed.row.is_ok());
    }
    assert!(!spool::spool_dir(&bare).exists());
    let [login_bare, login_res, logout_bare, logout_res] = times;
    println!("{n} sessions each way; the reserve holds {slots} slots");
    println!(
        "login  median: {:8.1} us without a spool, {:8.1} us with the reserve",
        median(login_bare),
        median(login_res)
    );
    println!(
        "logout median: {:8.1} us without a spool, {:8.1} us with the reserve",
        median(logout_bare),
        median(logout_res)
    );
    let mut merges = [Vec::new(), Vec::new()];
    let mut dbs = [
        Database::open_read_write(&bare).unwrap(),
        Database::open_read_write(&reserved).unwrap(),
    ];
    for i in 0..20 * n {
        let db = &mut dbs[i % 2];
        let t = Instant::now();
        let m = spool::merge(db).unwrap();
        merges[i % 2].push(t.elapsed());
        assert_eq!(m, spool::Merged::default());
    }
    let [bare_merge, res_merge] = merges;
    println!(
        "merge call alone, median: {:6.2} us without a spool, {:6.2} us with the reserve",
        median(bare_merge),
        median(res_merge)
    );
}
