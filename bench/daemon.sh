#!/bin/bash
# Benchmark of wtmpdbd (not a test; not run by CI; needs root for /etc/pam.d). In one run:
#  1. pamtester open+close, median of RUNS runs, interleaved: a pam_permit-only stack, the
#     module writing the file itself (database=FILE), the module through the daemon
#     (database=varlink); the overheads over pam_permit;
#  2. CONCURRENT simultaneous pamtester sessions through the daemon: failures, p50, p99
#     (and pam_permit alone, for the cost of starting CONCURRENT processes);
#  3. sustained sessions per second: CLIENTS connections each doing Login+Logout in a loop
#     for BENCH_SECONDS s (a varlink client in Python on raw sockets);
#  4. streaming the 1M-row database to a client (ReadEntries with "more", every reply read
#     and parsed) against a direct `wtmpdb last -j` of the same file, and the daemon's RSS
#     before, at most during, and after the stream;
#  5. the daemon's RSS with 1,000 idle connections.
# Environment: RUNS (200), CONCURRENT (64), CLIENTS (8), BENCH_SECONDS (5), BENCH_DIR (the 1M-row
# database is cached there as db1m.db if given).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
GEN=$REPO/bench/gen_db.py
RUNS=${RUNS:-200}
CONCURRENT=${CONCURRENT:-64}
CLIENTS=${CLIENTS:-8}
SECONDS_RUN=${BENCH_SECONDS:-5}

if [ "$(id -u)" != 0 ]; then
    echo "SKIP: bench/daemon.sh needs root (it writes /etc/pam.d services)"
    exit 0
fi
for tool in pamtester sqlite3 python3; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install pamtester sqlite3 python3)"; exit 1; }
done
T=${CARGO_TARGET_DIR:-$REPO/target}/release
(cd "$REPO" && cargo build --release -q -p pam_wtmpdb -p wtmpdb-cli -p wtmpdbd)
MODULE=$T/libpam_wtmpdb.so
WTMPDB=$T/wtmpdb
DAEMON=$T/wtmpdbd

if [ -n "${BENCH_DIR:-}" ]; then
    mkdir -p "$BENCH_DIR"
    WORK=$(mktemp -d "$BENCH_DIR/run.XXXXXX")
else
    BENCH_DIR=$(mktemp -d /var/tmp/wtmpdbd-bench.XXXXXX)
    WORK=$BENCH_DIR
fi
P=wtmpdbd-bench-permit-$$
F=wtmpdbd-bench-file-$$
D=wtmpdbd-bench-daemon-$$
SOCK=$WORK/run/socket
DPID=
cleanup() {
    [ -n "$DPID" ] && kill "$DPID" 2>/dev/null
    rm -f "/etc/pam.d/$P" "/etc/pam.d/$F" "/etc/pam.d/$D"
    rm -rf "$WORK"
}
trap cleanup EXIT
printf 'session required pam_permit.so\n' >"/etc/pam.d/$P"
printf 'session required pam_permit.so\nsession required %s database=%s\n' "$MODULE" "$WORK/file.db" \
    >"/etc/pam.d/$F"
printf 'session required pam_permit.so\nsession required %s database=varlink socket=%s\n' \
    "$MODULE" "$SOCK" >"/etc/pam.d/$D"

start_daemon() {
    [ -n "$DPID" ] && { kill "$DPID"; wait "$DPID" 2>/dev/null || true; }
    "$DAEMON" --socket "$SOCK" --database "$1" --idle-timeout 300 --max-connections 4096 &
    DPID=$!
    for _ in $(seq 200); do [ -S "$SOCK" ] && break; sleep 0.05; done
}
rm -f "$SOCK"
start_daemon "$WORK/daemon.db"

echo "== wtmpdbd benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "daemon: $DAEMON; module: $MODULE"

python3 - "$P" "$F" "$D" "$RUNS" "$CONCURRENT" <<'PY'
import statistics, subprocess, sys, time
permit, direct, daemon, runs, conc = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
def session(svc, tty="pts/1"):
    t = time.perf_counter()
    r = subprocess.run(["pamtester", "-I", "tty=" + tty, "-I", "rhost=192.0.2.7", svc, "root",
                        "open_session", "close_session"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    if r.returncode:
        raise SystemExit(f"pamtester {svc} failed")
    return time.perf_counter() - t
for _ in range(10):
    session(permit); session(direct); session(daemon)
p, f, d = [], [], []
for _ in range(runs):
    p.append(session(permit)); f.append(session(direct)); d.append(session(daemon))
mp, mf, md = (statistics.median(x) * 1e3 for x in (p, f, d))
print(f"\n1. open+close, median of {runs}: pam_permit only {mp:.2f} ms; module, file {mf:.2f} ms "
      f"(overhead {mf - mp:.2f} ms); module through wtmpdbd {md:.2f} ms (overhead {md - mp:.2f} ms)")
def concurrent(svc):
    procs, start = [], time.perf_counter()
    for i in range(conc):
        procs.append((time.perf_counter(), subprocess.Popen(
            ["pamtester", "-I", f"tty=pts/{i}", "-I", f"rhost=10.0.{i}.1", svc, "root",
             "open_session", "close_session"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
    lat, fails, pending = [], 0, list(procs)
    while pending:
        for t0, pr in list(pending):
            if pr.poll() is not None:
                lat.append(time.perf_counter() - t0)
                fails += pr.returncode != 0
                pending.remove((t0, pr))
        time.sleep(0.0005)
    lat.sort()
    return fails, statistics.median(lat) * 1e3, lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3
pf, pm, pp = concurrent(permit)
df, dm, dp = concurrent(daemon)
print(f"\n2. {conc} concurrent open+close through wtmpdbd: failures {df}, p50 {dm:.1f} ms, "
      f"p99 {dp:.1f} ms; pam_permit only: failures {pf}, p50 {pm:.1f} ms, p99 {pp:.1f} ms")
PY

python3 - "$SOCK" "$CLIENTS" "$SECONDS_RUN" <<'PY'
import json, socket, sys, threading, time
sock, clients, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
done, lat, lock = [0], [], threading.Lock()
def call(s, buf, method, params):
    s.sendall(json.dumps({"method": "org.openSUSE.wtmpdb." + method, "parameters": params}).encode() + b"\0")
    while b"\0" not in buf[0]:
        buf[0] += s.recv(65536)
    msg, _, buf[0] = buf[0].partition(b"\0")
    r = json.loads(msg)
    if "error" in r:
        raise SystemExit(f"{method}: {r}")
    return r["parameters"]
def worker(n):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock)
    buf, end, mine = [b""], time.perf_counter() + secs, []
    while time.perf_counter() < end:
        t = time.perf_counter()
        i = call(s, buf, "Login", {"Type": 3, "User": f"bench{n}", "LoginTime": int(time.time() * 1e6),
                                   "TTY": f"pts/{n}", "RemoteHost": "192.0.2.1", "Service": "bench"})["ID"]
        call(s, buf, "Logout", {"ID": i, "LogoutTime": int(time.time() * 1e6)})
        mine.append(time.perf_counter() - t)
    with lock:
        done[0] += len(mine)
        lat.extend(mine)
ts = [threading.Thread(target=worker, args=(n,)) for n in range(clients)]
t0 = time.perf_counter()
for t in ts: t.start()
for t in ts: t.join()
wall = time.perf_counter() - t0
lat.sort()
print(f"\n3. sustained: {done[0]} sessions (Login+Logout, each committed and synced) in {wall:.1f} s "
      f"over {clients} connections = {done[0] / wall:.0f} sessions/s; per session p50 "
      f"{lat[len(lat) // 2] * 1e3:.2f} ms, p99 {lat[int(len(lat) * 0.99)] * 1e3:.2f} ms")
PY

echo
echo "4. streaming the 1M-row database:"
if [ ! -f "$BENCH_DIR/db1m.db" ]; then
    python3 "$GEN" --out "$BENCH_DIR/db1m.db" >/dev/null
fi
cp "$BENCH_DIR/db1m.db" "$WORK/db1m.db"
# The indexes our writers create on the first read-write open.
(cat "$REPO"/migrations/*.sql; echo "PRAGMA user_version = $(ls "$REPO"/migrations/*.sql | wc -l);") \
    | sqlite3 "$WORK/db1m.db"
start_daemon "$WORK/db1m.db"
t0=$(date +%s%N)
"$WTMPDB" last -j -f "$WORK/db1m.db" >/dev/null
direct_ms=$((($(date +%s%N) - t0) / 1000000))
echo "   direct wtmpdb last -j -f db1m.db > /dev/null: $direct_ms ms"
python3 - "$SOCK" "$DPID" "$direct_ms" <<'PY'
import json, socket, sys, threading, time
sock, pid, direct_ms = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
before, peak, running = rss(), [0], [True]
def sample():
    while running[0]:
        peak[0] = max(peak[0], rss())
        time.sleep(0.01)
th = threading.Thread(target=sample)
th.start()
s = socket.socket(socket.AF_UNIX)
s.connect(sock)
t0 = time.perf_counter()
s.sendall(b'{"method":"org.openSUSE.wtmpdb.ReadEntries","more":true}\0')
buf, rows, replies, more = b"", 0, 0, True
while more:
    chunk = s.recv(1 << 20)
    if not chunk:
        raise SystemExit("closed")
    buf += chunk
    while b"\0" in buf:
        msg, _, buf = buf.partition(b"\0")
        r = json.loads(msg)
        rows += len(r["parameters"]["Data"])
        replies += 1
        more = r.get("continues", False)
        if not more:
            break
ms = (time.perf_counter() - t0) * 1e3
running[0] = False
th.join()
print(f"   ReadEntries stream to a Python client (every reply parsed): {rows} rows in {replies} "
      f"replies, {ms:.0f} ms ({ms / direct_ms:.2f}x the direct last -j)")
print(f"   daemon RSS: {before} KiB before, {peak[0]} KiB at most during, {rss()} KiB after")
# The same stream read without parsing (the daemon's side of the cost).
s = socket.socket(socket.AF_UNIX)
s.connect(sock)
t0 = time.perf_counter()
s.sendall(b'{"method":"org.openSUSE.wtmpdb.ReadEntries","more":true}\0')
total, tail = 0, b""
while True:
    chunk = s.recv(1 << 20)
    if not chunk:
        raise SystemExit("closed")
    total += len(chunk)
    tail = (tail + chunk)[-64:]
    if tail.endswith(b"]}}\0"):
        break
ms = (time.perf_counter() - t0) * 1e3
print(f"   the same stream read without parsing: {total / 1e6:.0f} MB in {ms:.0f} ms "
      f"({ms / direct_ms:.2f}x the direct last -j)")
PY

(cd "$REPO" && cargo build --release -q -p wtmpdbd --example stream)
t0=$(date +%s%N)
out=$("$T/examples/stream" "$SOCK")
ms=$((($(date +%s%N) - t0) / 1000000))
echo "   the core library's client (wtmpdb::varlink, every row an Entry): $out; $ms ms in all" \
    "($(python3 -c "print(f'{$ms / $direct_ms:.2f}')")x the direct last -j)"

echo
echo "5. 1,000 idle connections:"
start_daemon "$WORK/daemon.db"
python3 "$REPO/tests/e2e/daemon_client.py" idle "$SOCK" "$DPID" 1000 1000000 | sed 's/^daemon_client: /   /'
