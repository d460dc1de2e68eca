//! A load generator for wtmpdbd: CONNECTIONS persistent connections, one thread each, every
//! one doing Login + Logout in a loop for SECONDS, with one call outstanding per connection
//! (as a login process has). Each session counts once its Logout is answered, which the
//! daemon does only after the row is committed and synced. Prints one line:
//! `sessions=N seconds=S per_second=R p50_us=A p99_us=B max_us=C errors=E`, the first error
//! on stderr; exits 1 if no session completed.
//! bench/login.sh section 3 runs it: `load SOCKET CONNECTIONS SECONDS [USER]`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn usage() -> ! {
    eprintln!("usage: load SOCKET CONNECTIONS SECONDS [USER]");
    std::process::exit(2)
}

fn now_usec() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Why a call failed: the connection is gone (the worker stops), or the daemon answered
/// with an error (the worker goes on).
enum Failed {
    Connection(String),
    Reply(String),
}

/// One varlink call: the request, then the reply up to its NUL. Returns the reply's
/// parameters.
fn call(
    w: &mut UnixStream,
    r: &mut BufReader<UnixStream>,
    buf: &mut Vec<u8>,
    request: &serde_json::Value,
) -> Result<serde_json::Value, Failed> {
    let mut msg = serde_json::to_vec(request).map_err(|e| Failed::Reply(e.to_string()))?;
    msg.push(0);
    w.write_all(&msg)
        .map_err(|e| Failed::Connection(format!("write: {e}")))?;
    buf.clear();
    let n = r
        .read_until(0, buf)
        .map_err(|e| Failed::Connection(format!("read: {e}")))?;
    if n == 0 || buf.last() != Some(&0) {
        return Err(Failed::Connection("closed by the daemon".into()));
    }
    buf.pop();
    let mut reply: serde_json::Value =
        serde_json::from_slice(buf).map_err(|e| Failed::Connection(format!("reply: {e}")))?;
    if let Some(e) = reply.get("error") {
        return Err(Failed::Reply(format!("{e}: {}", reply["parameters"])));
    }
    Ok(reply["parameters"].take())
}

struct Result1 {
    latencies: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
}

fn worker(socket: &str, n: usize, user: &str, start: &Barrier, secs: Duration) -> Result1 {
    let mut out = Result1 {
        latencies: Vec::with_capacity(1 << 16),
        errors: 0,
        first_error: None,
    };
    let conn = UnixStream::connect(socket);
    start.wait();
    let mut w = match conn {
        Ok(s) => s,
        Err(e) => {
            out.errors += 1;
            out.first_error = Some(format!("connect: {e}"));
            return out;
        }
    };
    let mut r = BufReader::new(w.try_clone().expect("clone the socket"));
    let mut buf = Vec::with_capacity(256);
    let tty = format!("pts/{n}");
    let end = Instant::now() + secs;
    while Instant::now() < end {
        let t = Instant::now();
        let login = serde_json::json!({
            "method": "org.openSUSE.wtmpdb.Login",
            "parameters": {"Type": 3, "User": user, "LoginTime": now_usec(), "TTY": tty,
                           "RemoteHost": "192.0.2.9", "Service": "load"}
        });
        let done = call(&mut w, &mut r, &mut buf, &login).and_then(|p| {
            let id = p["ID"]
                .as_i64()
                .ok_or_else(|| Failed::Reply(format!("no ID in {p}")))?;
            let logout = serde_json::json!({
                "method": "org.openSUSE.wtmpdb.Logout",
                "parameters": {"ID": id, "LogoutTime": now_usec()}
            });
            call(&mut w, &mut r, &mut buf, &logout)
        });
        match done {
            Ok(_) => out
                .latencies
                .push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX)),
            Err(Failed::Reply(e)) => {
                out.errors += 1;
                out.first_error.get_or_insert(e);
            }
            Err(Failed::Connection(e)) => {
                out.errors += 1;
                out.first_error.get_or_insert(e);
                break;
            }
        }
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 || args.len() > 4 {
        usage();
    }
    let socket = args[0].clone();
    let conns: usize = args[1].parse().unwrap_or_else(|_| usage());
    let secs: f64 = args[2].parse().unwrap_or_else(|_| usage());
    let user = args.get(3).cloned().unwrap_or_else(|| "load".to_string());
    if conns == 0 || !(secs > 0.0 && secs < 1e6) {
        usage();
    }
    let secs = Duration::from_secs_f64(secs);
    // Every thread connects first; the clock starts when all have.
    let start = Arc::new(Barrier::new(conns + 1));
    let threads: Vec<_> = (0..conns)
        .map(|n| {
            let (socket, user, start) = (socket.clone(), user.clone(), Arc::clone(&start));
            std::thread::Builder::new()
                .stack_size(256 << 10)
                .spawn(move || worker(&socket, n, &user, &start, secs))
                .expect("spawn a thread")
        })
        .collect();
    start.wait();
    let t0 = Instant::now();
    let mut lat = Vec::new();
    let (mut errors, mut first) = (0, None);
    for t in threads {
        let r = t.join().expect("a worker panicked");
        lat.extend(r.latencies);
        errors += r.errors;
        first = first.or(r.first_error);
    }
    let wall = t0.elapsed().as_secs_f64();
    lat.sort_unstable();
    let pct = |p: usize| lat.get((lat.len() * p / 100).min(lat.len().saturating_sub(1)));
    let n = lat.len();
    println!(
        "sessions={n} seconds={wall:.3} per_second={:.0} p50_us={} p99_us={} max_us={} errors={errors}",
        n as f64 / wall,
        pct(50).copied().unwrap_or(0),
        pct(99).copied().unwrap_or(0),
        lat.last().copied().unwrap_or(0),
    );
    if let Some(e) = first {
        eprintln!("load: first error: {e}");
    }
    if n == 0 {
        std::process::exit(1);
    }
}
