#!/bin/bash
# Benchmark of pam_wtmpdb (not a test; needs root for /etc/pam.d). Prints:
#  1. pamtester open+close, median of RUNS runs, module stack vs a pam_permit-only stack
#     measured interleaved in the same run, and the difference (the module's overhead);
#  2. fsync/fdatasync calls per session (strace) and the journal mode in use;
#  3. a per-write journal mode comparison (DELETE/TRUNCATE/PERSIST) on the same file system;
#  4. 64 concurrent pamtester sessions: failures and p50/p99 latency (and the same for
#     pam_permit alone);
#  5. logins while a full listing of a 1M-row database runs: failures and p99.
# Environment: RUNS (200), CONCURRENT (64), BENCH_DIR (a temporary directory; the 1M-row
# database is cached there as db1m.db if BENCH_DIR is given).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
GEN=$REPO/../shared/bench/gen_db.py
RUNS=${RUNS:-200}
CONCURRENT=${CONCURRENT:-64}

if [ "$(id -u)" != 0 ]; then
    echo "SKIP: bench/pam.sh needs root (it writes /etc/pam.d services)"
    exit 0
fi
for tool in pamtester sqlite3 python3; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install pamtester sqlite3 python3)"; exit 1; }
done
T=${CARGO_TARGET_DIR:-$REPO/target}/release
if [ ! -f "$T/libpam_wtmpdb.so" ] || [ ! -x "$T/wtmpdb" ]; then
    (cd "$REPO" && cargo build --release -q -p pam_wtmpdb -p wtmpdb-cli)
fi
MODULE=$T/libpam_wtmpdb.so
WTMPDB=$T/wtmpdb

if [ -n "${BENCH_DIR:-}" ]; then
    mkdir -p "$BENCH_DIR"
    WORK=$(mktemp -d "$BENCH_DIR/run.XXXXXX")
else
    BENCH_DIR=$(mktemp -d /var/tmp/wtmpdb-bench.XXXXXX)
    WORK=$BENCH_DIR
fi
P=wtmpdb-bench-permit-$$
M=wtmpdb-bench-module-$$
L=wtmpdb-bench-1m-$$
cleanup() {
    rm -f "/etc/pam.d/$P" "/etc/pam.d/$M" "/etc/pam.d/$L"
    rm -rf "$WORK"
}
trap cleanup EXIT
printf 'session required pam_permit.so\n' >"/etc/pam.d/$P"
printf 'session required pam_permit.so\nsession required %s database=%s\n' "$MODULE" "$WORK/w.db" \
    >"/etc/pam.d/$M"
printf 'session required pam_permit.so\nsession required %s database=%s\n' "$MODULE" "$WORK/db1m.db" \
    >"/etc/pam.d/$L"

echo "== pam_wtmpdb benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "module: $MODULE"

python3 - "$P" "$M" "$RUNS" "$CONCURRENT" "$WORK/w.db" <<'PY'
import statistics, subprocess, sys, time, sqlite3
permit, module, runs, conc, db = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
def session(svc, tty="pts/1"):
    t = time.perf_counter()
    r = subprocess.run(["pamtester", "-I", "tty=" + tty, "-I", "rhost=192.0.2.7", svc, "root",
                        "open_session", "close_session"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    return time.perf_counter() - t, r.returncode
for _ in range(10):
    session(permit); session(module)
p, m = [], []
for _ in range(runs):
    p.append(session(permit)[0]); m.append(session(module)[0])
mp, mm = statistics.median(p) * 1e3, statistics.median(m) * 1e3
print(f"\n1. open+close median of {runs}: pam_permit only {mp:.2f} ms, with pam_wtmpdb {mm:.2f} ms,"
      f" overhead {mm - mp:.2f} ms (ratio {mm / mp:.2f})")
def concurrent(svc):
    procs = []
    start = time.perf_counter()
    for i in range(conc):
        procs.append((time.perf_counter(), subprocess.Popen(
            ["pamtester", "-I", f"tty=pts/{i}", "-I", f"rhost=10.0.{i}.1", svc, "root",
             "open_session", "close_session"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
    lat, fails = [], 0
    pending = list(procs)
    while pending:
        for t0, pr in list(pending):
            if pr.poll() is not None:
                lat.append(time.perf_counter() - t0)
                fails += pr.returncode != 0
                pending.remove((t0, pr))
        time.sleep(0.0005)
    lat.sort()
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    return fails, statistics.median(lat) * 1e3, p99 * 1e3, (time.perf_counter() - start) * 1e3
c = sqlite3.connect(db)
before = c.execute("SELECT count(*) FROM wtmp WHERE Logout IS NOT NULL").fetchone()[0]
c.close()
pf, pm, pp, pw = concurrent(permit)
f, md, p99, wall = concurrent(module)
c = sqlite3.connect(db)
after = c.execute("SELECT count(*) FROM wtmp WHERE Logout IS NOT NULL").fetchone()[0]
print(f"\n4. {conc} concurrent open+close: pam_wtmpdb failures {f}, rows closed {after - before}/{conc},"
      f" p50 {md:.1f} ms, p99 {p99:.1f} ms, all done in {wall:.0f} ms;"
      f" pam_permit only: failures {pf}, p50 {pm:.1f} ms, p99 {pp:.1f} ms")
PY

echo
echo "2. fsyncs per open+close session and journal mode:"
if command -v strace >/dev/null; then
    strace -f -c -e trace=fsync,fdatasync pamtester "$M" root open_session close_session 2>&1 \
        | grep -E "fsync|fdatasync|total" | sed 's/^/   /'
else
    echo "   (strace not installed)"
fi
echo "   journal file after the run: $(ls "$WORK" | grep -c 'w.db-journal') (persist keeps it);" \
    "a new connection reports journal_mode=$(sqlite3 "$WORK/w.db" 'PRAGMA journal_mode')" \
    "(the mode is per connection; the module sets persist on its own)"

echo
echo "3. one INSERT per connection (open, write, close), 300 times, by journal mode:"
python3 - "$WORK" <<'PY'
import os, sqlite3, statistics, sys, time
work = sys.argv[1]
for mode in ["delete", "truncate", "persist"]:
    p = os.path.join(work, f"jm-{mode}.db")
    c = sqlite3.connect(p, isolation_level=None)
    c.execute("CREATE TABLE wtmp(ID INTEGER PRIMARY KEY, Type INTEGER, User TEXT NOT NULL, Login INTEGER,"
              " Logout INTEGER, TTY TEXT, RemoteHost TEXT, Service TEXT) STRICT")
    c.close()
    ts = []
    for _ in range(300):
        t = time.perf_counter()
        c = sqlite3.connect(p, isolation_level=None)
        c.execute(f"PRAGMA journal_mode={mode}")
        c.execute("INSERT INTO wtmp(Type, User, Login, TTY) VALUES (3, 'root', 1, 'pts/1')")
        c.close()
        ts.append(time.perf_counter() - t)
    ts.sort()
    print(f"   {mode:8} median {statistics.median(ts) * 1e3:.2f} ms, p90 {ts[270] * 1e3:.2f} ms")
PY

echo
echo "5. logins while a full listing of a 1M-row database runs:"
if [ ! -f "$BENCH_DIR/db1m.db" ]; then
    python3 "$GEN" --out "$BENCH_DIR/db1m.db" >/dev/null
fi
[ "$BENCH_DIR/db1m.db" -ef "$WORK/db1m.db" ] || cp "$BENCH_DIR/db1m.db" "$WORK/db1m.db"
# Give it the indexes `wtmpdb` creates on its first read-write open (the module itself does not
# build them on a database this large).
if "$WTMPDB" --help 2>&1 | grep -qw last; then
    HAVE_LAST=1
else
    HAVE_LAST=0
fi
(cat "$REPO"/migrations/*.sql; echo "PRAGMA user_version = $(ls "$REPO"/migrations/*.sql | wc -l);") \
    | sqlite3 "$WORK/db1m.db"
if [ "$HAVE_LAST" = 1 ]; then
    label="wtmpdb last -f db1m.db (full listing to /dev/null)"
    reader() { "$WTMPDB" last -f "$WORK/db1m.db" >/dev/null; }
else
    label="STAND-IN: wtmpdb has no 'last' yet; sqlite3 reads all rows newest first in chunks of 20000 (Login cursor, one read transaction per chunk, as our 'last' does)"
    reader() {
        local cur=9223372036854775807 out=$WORK/chunk.txt n
        while :; do
            sqlite3 -batch -cmd '.timeout 5000' "$WORK/db1m.db" \
                "SELECT ID, Type, User, Login, Logout, TTY, RemoteHost, Service FROM wtmp
                 WHERE Login < $cur ORDER BY Login DESC LIMIT 20000" >"$out"
            n=$(wc -l <"$out")
            [ "$n" -lt 20000 ] && break
            cur=$(tail -n 1 "$out" | cut -d'|' -f4)
        done
    }
fi
echo "   reader: $label"
t0=$(date +%s%N)
reader
echo "   reader alone: $((($(date +%s%N) - t0) / 1000000)) ms"
( for i in 1 2 3; do reader; done ) &
rpid=$!
python3 - "$L" "$rpid" <<'PY'
import os, subprocess, sys, time
svc, rpid = sys.argv[1], int(sys.argv[2])
lat, fails = [], 0
def alive():
    try:
        os.kill(rpid, 0)
        return True
    except ProcessLookupError:
        return False
while alive() or len(lat) < 20:
    t = time.perf_counter()
    r = subprocess.run(["pamtester", "-I", "tty=pts/7", svc, "root", "open_session", "close_session"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lat.append(time.perf_counter() - t)
    fails += r.returncode != 0
    time.sleep(0.02)
lat.sort()
p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
print(f"   {len(lat)} open+close sessions during the reads: failures {fails},"
      f" p50 {lat[len(lat) // 2] * 1e3:.1f} ms, p99 {p99 * 1e3:.1f} ms, max {lat[-1] * 1e3:.1f} ms")
PY
wait "$rpid" 2>/dev/null || true
