//! The floor of a daemon that records logins, for `bench/login.sh` (with the pam crate's
//! `floor_module` example): `floor_server SOCKET FILE` accepts connections on SOCKET and,
//! for each message (up to a NUL), overwrites the first 4 KiB of FILE and syncs it
//! (`pwrite` + `fdatasync`: the least a durable record costs) before it replies. One thread
//! accepts and serves, as wtmpdbd's accepting thread serves root's connection; no parsing,
//! no database. Our daemon's cost above it is ours; its own cost above pam_permit is this
//! machine's.

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

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [socket, path] = args.as_slice() else {
        eprintln!("usage: floor_server SOCKET FILE");
        std::process::exit(2);
    };
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
