//! Writes a boot and two sessions (one after 2038, one after 2106) into the database given
//! as the only argument, through the library.
//! Used by `scripts/demo.sh`; `wtmpdb last -f DB` then shows them.

use std::path::PathBuf;

use wtmpdb::storage::{Database, Kind, NewEntry};
use wtmpdb::time::{self, USEC_PER_SEC};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .ok_or("usage: demo DATABASE")?;
    let db = Database::open_read_write(&path)?;
    let now = time::now();
    let hour = 3600 * USEC_PER_SEC;
    db.login(&NewEntry {
        kind: Kind::BootTime,
        user: "reboot",
        login: now - 5 * hour,
        tty: Some("~"),
        host: Some("6.1.0-demo"),
        ..NewEntry::default()
    })?;
    let session = |user, tty, host, service, login, logout| NewEntry {
        kind: Kind::UserProcess,
        user,
        login,
        logout,
        tty: Some(tty),
        host: Some(host),
        service: Some(service),
    };
    // 2038-01-19 03:14:08 UTC and 2106-02-07 06:28:16 UTC: past 32-bit time_t and u32.
    let y2038 = 2_147_483_648 * USEC_PER_SEC;
    let y2106 = 4_294_967_296 * USEC_PER_SEC;
    db.login(&session(
        "carol",
        "pts/1",
        "2001:db8::7",
        "sshd",
        y2038,
        Some(y2038 + hour),
    ))?;
    db.login(&session(
        "dave",
        "pts/2",
        "198.51.100.4",
        "sshd",
        y2106,
        Some(y2106 + 26 * hour),
    ))?;
    Ok(())
}
