//! The floor of a daemon that records logins, for `bench/login.sh` (with the pam crate's
//! `floor_module` example): `floor_server SOCKET FILE` accepts connections on SOCKET and,
//! for each message (up to a NUL), overwrites the first 4 KiB of FILE and syncs it
//! (`pwrite` + `fdatasync`: the least a durable record costs) before it replies. One thread
//! accepts and serves, as wtmpdbd's accepting thread serves root's connection; no parsing,
//! no database. Our daemon's cost above it is ours; its own cost above pam_permit is this
//! machine's.
//!
//! `floor_server SOCKET FILE --sqlite`: the floor of a daemon that keeps the records in
//! wtmpdb's database, as ours must. FILE is a database with our schema (upstream's table,
//! the indexes our readers use, the sessions' processes); each message is one SQLite
//! transaction on one connection kept open, with its statements prepared once, in WAL
//! mode with `synchronous=FULL` (SQLite syncs the log at each commit): a login's row and
//! its process's row, or a logout's `Logout` set. Nothing else: no checks of the caller,
//! of the files or of the fields, no fallback, no events, no checkpoint but SQLite's own.
//! What wtmpdbd costs above it is what wtmpdbd adds; what it costs above the plain floor is
//! SQLite's commit of the format.

use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::os::unix::net::{UnixListener, UnixStream};

/// Enough for the pam crate's `floor_module` (any reply) and for our own module, whose
/// login reads the row's ID and whose logout reads how the row was closed: the benchmark
/// also runs our module against this server, to tell the module's share from the daemon's.
const REPLY: &[u8] = b"{\"parameters\":{\"ID\":1,\"Closed\":\"ById\"}}\0";

fn serve(mut conn: UnixStream, file: &std::fs::File, page: &mut [u8; 4096]) -> std::io::Result<()> {
    let mut buf = [0u8; 1024];
    loop {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        if !buf[..n].contains(&0) {
            continue;
        }
        // A different page each time, as a record is.
        page[0] = page[0].wrapping_add(1);
        file.write_all_at(page, 0)?;
        file.sync_data()?;
        conn.write_all(REPLY)?;
    }
}

/// Serves one connection of `--sqlite`: each message committed before its reply.
fn serve_sqlite(mut conn: UnixStream, db: &rusqlite::Connection) -> Result<(), String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = conn.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.iter().position(|&b| b == 0) else {
            continue;
        };
        let message: serde_json::Value =
            serde_json::from_slice(&buf[..end]).map_err(|e| e.to_string())?;
        buf.drain(..=end);
        let id = commit(db, &message).map_err(|e| e.to_string())?;
        let reply = format!("{{\"parameters\":{{\"ID\":{id},\"Closed\":\"ById\"}}}}\0");
        conn.write_all(reply.as_bytes())
            .map_err(|e| e.to_string())?;
    }
}

/// One message's transaction: a login's two rows, or any other message's logout of the row
/// it names (the newest row when it names none). Returns the row's ID.
fn commit(db: &rusqlite::Connection, message: &serde_json::Value) -> rusqlite::Result<i64> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    let login = message["method"]
        .as_str()
        .is_some_and(|m| m.ends_with(".Login"));
    let named = message["parameters"]["ID"].as_i64();
    db.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    let id = if login {
        db.prepare_cached(
            "INSERT INTO wtmp (Type, User, Login, TTY, RemoteHost, Service) \
             VALUES (3, ?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(rusqlite::params![
            message["parameters"]["User"].as_str().unwrap_or("root"),
            now,
            message["parameters"]["TTY"].as_str(),
            message["parameters"]["RemoteHost"].as_str(),
            message["parameters"]["Service"].as_str(),
        ])?;
        let id = db.last_insert_rowid();
        db.prepare_cached("INSERT INTO wtmp_process (ID, PID, StartTime) VALUES (?1, ?2, NULL)")?
            .execute([id, i64::from(std::process::id())])?;
        id
    } else {
        let id = match named {
            Some(id) => id,
            None => db
                .prepare_cached("SELECT max(ID) FROM wtmp")?
                .query_row([], |r| r.get::<_, Option<i64>>(0))?
                .unwrap_or(0),
        };
        db.prepare_cached("UPDATE wtmp SET Logout = ?1 WHERE ID = ?2 AND Logout IS NULL")?
            .execute([now, id])?;
        id
    };
    db.prepare_cached("COMMIT")?.execute([])?;
    Ok(id)
}

/// `--sqlite`'s connection: the schema made by wtmpdb's own open (which also loads SQLite),
/// then a plain connection as any program would keep.
fn open_sqlite(path: &str) -> rusqlite::Connection {
    drop(
        wtmpdb::storage::Database::open_read_write(std::path::Path::new(path))
            .unwrap_or_else(|e| panic!("{path}: {e}")),
    );
    let db = rusqlite::Connection::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    db.pragma_update(None, "journal_mode", "wal")
        .and_then(|()| db.pragma_update(None, "synchronous", "full"))
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    db
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (socket, path, sqlite) = match args.as_slice() {
        [socket, path] => (socket, path, false),
        [socket, path, flag] if flag == "--sqlite" => (socket, path, true),
        _ => {
            eprintln!("usage: floor_server SOCKET FILE [--sqlite]");
            std::process::exit(2);
        }
    };
    if sqlite {
        let db = open_sqlite(path);
        let _ = std::fs::remove_file(socket);
        let listener = UnixListener::bind(socket).unwrap_or_else(|e| panic!("{socket}: {e}"));
        for conn in listener.incoming() {
            match conn {
                Ok(c) => {
                    if let Err(e) = serve_sqlite(c, &db) {
                        eprintln!("floor_server: {e}");
                        let _ = db
                            .prepare_cached("ROLLBACK")
                            .and_then(|mut s| s.execute([]));
                    }
                }
                Err(e) => eprintln!("floor_server: accept: {e}"),
            }
        }
        return;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut page = [0u8; 4096];
    // Allocated and synced once: every later sync overwrites, as wtmpdbd's kept log does.
    file.write_all_at(&page, 0).expect("writing the file");
    file.sync_all().expect("syncing the file");
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket).unwrap_or_else(|e| panic!("{socket}: {e}"));
    for conn in listener.incoming() {
        match conn {
            Ok(c) => {
                if let Err(e) = serve(c, &file, &mut page) {
                    eprintln!("floor_server: {e}");
                }
            }
            Err(e) => eprintln!("floor_server: accept: {e}"),
        }
    }
}
