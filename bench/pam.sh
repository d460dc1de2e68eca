#!/bin/bash
# Benchmark of pam_wtmpdb (not a test; needs root for /etc/pam.d). Prints:
#  1. pamtester open+close, median of RUNS runs, module stack vs a pam_permit-only stack
#     measured interleaved in the same run, and the difference (the module's overhead);
#  2. fsync/fdatasync calls per session (strace) and the journal mode in use;
#  3. what one fdatasync costs on this file system (the floor of a durable write);
#  4. 64 concurrent pamtester sessions: failures and p50/p99 latency (and the same for
#     pam_permit alone);
#  5. logins while a full listing of a 1M-row database runs: failures and p99;
#  6. the cost of a session on an empty database and on the 1M-row one;
#  7. logins during a 1M-record import, a 500,000-row rotate into an archive, the first write
#     (index build) on a 2M-row upstream database, and while nobody holds a read transaction:
#     failures, how many were recorded (spooled ones merged by one more login), p50/p99.
# Environment: RUNS (200), CONCURRENT (64), BENCH_DIR (a temporary directory; the generated
# inputs are cached there as db1m.db, db2m.db and wtmp1m if BENCH_DIR is given).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
GEN=$REPO/bench/gen_db.py
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
c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)  # read-only: keeps the side files
before = c.execute("SELECT count(*) FROM wtmp WHERE Logout IS NOT NULL").fetchone()[0]
c.close()
pf, pm, pp, pw = concurrent(permit)
f, md, p99, wall = concurrent(module)
c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
after = c.execute("SELECT count(*) FROM wtmp WHERE Logout IS NOT NULL").fetchone()[0]
c.close()
# Writes that found the lock taken past 40 ms are in the spool: one more session merges them.
session(module)
c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
merged = c.execute("SELECT count(*) FROM wtmp WHERE Logout IS NOT NULL").fetchone()[0] - 1
print(f"\n4. {conc} concurrent open+close: pam_wtmpdb failures {f}, rows closed {after - before}/{conc}"
      f" at once and {merged - before}/{conc} after the next session merged the spool,"
      f" p50 {md:.1f} ms, p99 {p99:.1f} ms, all done in {wall:.0f} ms;"
      f" pam_permit only: failures {pf}, p50 {pm:.1f} ms, p99 {pp:.1f} ms")
PY

echo
echo "2. fsyncs per open+close session:"
if command -v strace >/dev/null; then
    strace -f -c -e trace=fsync,fdatasync pamtester "$M" root open_session close_session 2>&1 \
        | grep -E "fsync|fdatasync|total" | sed 's/^/   /'
else
    echo "   (strace not installed)"
fi
# Bytes 18-19 of the header are 2 in WAL mode (read directly: opening it with sqlite3 would
# delete the side files the module keeps).
echo "   database header: $(od -An -tu1 -j18 -N2 "$WORK/w.db" | tr -s ' ') (2 2 = WAL);" \
    "side files: $(cd "$WORK" && ls w.db-* 2>/dev/null | tr '\n' ' ')"

echo
echo "3. one fdatasync on this file system (the floor of a durable write):"
python3 - "$WORK" <<'PY'
import os, statistics, sys, time
f = os.open(os.path.join(sys.argv[1], "sync-probe"), os.O_RDWR | os.O_CREAT, 0o600)
os.pwrite(f, b"x" * 4096, 0)
ts = []
for i in range(300):
    os.pwrite(f, b"y" * 4096, (i % 8) * 4096)
    t = time.perf_counter()
    os.fdatasync(f)
    ts.append(time.perf_counter() - t)
print(f"   median {statistics.median(ts) * 1e3:.3f} ms")
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

echo
echo "6. per-session cost, empty database vs 1M rows (interleaved, median of $RUNS):"
python3 - "$M" "$L" "$RUNS" <<'PY'
import statistics, subprocess, sys, time
empty, big, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
def session(svc):
    t = time.perf_counter()
    subprocess.run(["pamtester", "-I", "tty=pts/3", svc, "root", "open_session", "close_session"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t
e, b = [], []
for _ in range(runs):
    e.append(session(empty)); b.append(session(big))
me, mb = statistics.median(e) * 1e3, statistics.median(b) * 1e3
print(f"   empty {me:.2f} ms, 1M rows {mb:.2f} ms (ratio {mb / me:.2f})")
PY

echo
echo "7. logins during maintenance and while a reader holds a transaction (pamtester every 20 ms):"
MAINT=$WORK/maint
mkdir -p "$MAINT"
chmod 755 "$WORK" "$MAINT"
[ -f "$BENCH_DIR/wtmp1m" ] || python3 "$REPO/bench/gen_wtmp.py" --out "$BENCH_DIR/wtmp1m" >/dev/null
[ -f "$BENCH_DIR/db2m.db" ] || python3 "$GEN" --rows 2000000 --out "$BENCH_DIR/db2m.db" >/dev/null
service() { # service NAME DB
    printf 'session required pam_permit.so\nsession required %s database=%s\n' "$MODULE" "$2" >"/etc/pam.d/$1"
    CLEANUP_SERVICES="${CLEANUP_SERVICES:-} /etc/pam.d/$1"
}
trap 'rm -f $CLEANUP_SERVICES; cleanup' EXIT
"$WTMPDB" boot -q -f "$MAINT/import.db"
service "$M-import" "$MAINT/import.db"
cp "$WORK/db1m.db" "$MAINT/rotate.db"
service "$M-rotate" "$MAINT/rotate.db"
cp "$BENCH_DIR/db2m.db" "$MAINT/upstream2m.db"
service "$M-index" "$MAINT/upstream2m.db"
"$WTMPDB" boot -q -f "$MAINT/reader.db"
chmod 644 "$MAINT"/*.db
service "$M-reader" "$MAINT/reader.db"
python3 - "$M" "$WTMPDB" "$MAINT" "$BENCH_DIR/wtmp1m" <<'PY'
import sqlite3, subprocess, sys, time
svc, wtmpdb, d, wtmp = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
def count(db, tty):
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    n = c.execute("SELECT count(*) FROM wtmp WHERE TTY = ? AND Logout IS NOT NULL", (tty,)).fetchone()[0]
    c.close()
    return n
def during(name, db, job, tty):
    lat, fails = [], 0
    proc = subprocess.Popen(job, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.PIPE)
    started = time.perf_counter()
    while proc.poll() is None or len(lat) < 20:
        t = time.perf_counter()
        r = subprocess.run(["pamtester", "-I", f"tty={tty}", f"{svc}-{name}", "root", "open_session",
                            "close_session"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        lat.append(time.perf_counter() - t)
        fails += r.returncode != 0
        if name == "reader" and len(lat) >= 100:
            proc.stdin.close()
        time.sleep(0.02)
    job_ms = (time.perf_counter() - started) * 1e3
    proc.wait()
    # One more login merges whatever went to the spool.
    subprocess.run(["pamtester", "-I", "tty=merge", f"{svc}-{name}", "root", "open_session",
                    "close_session"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kept = count(db, tty)
    lat.sort()
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3
    print(f"   {name:8} job {job_ms:7.0f} ms: {len(lat)} sessions, failures {fails}, recorded {kept}/{len(lat)},"
          f" p50 {lat[len(lat) // 2] * 1e3:.1f} ms, p99 {p99:.1f} ms, max {lat[-1] * 1e3:.1f} ms")
during("import", f"{d}/import.db", [wtmpdb, "import", "-f", f"{d}/import.db", wtmp], "pts/901")
# Rows over five years: 913 days keeps about half of them.
during("rotate", f"{d}/rotate.db", [wtmpdb, "rotate", "-f", f"{d}/rotate.db", "-d", "913"], "pts/902")
during("index", f"{d}/upstream2m.db", [wtmpdb, "boot", "-q", "-f", f"{d}/upstream2m.db"], "pts/903")
during("reader", f"{d}/reader.db", ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c",
       f"(echo 'BEGIN; SELECT count(*) FROM wtmp;'; cat) | sqlite3 -readonly -batch {d}/reader.db"], "pts/904")
PY
