#!/bin/bash
# Benchmark (not a test; needs root): what a local user's attack on the database costs a
# login, in the direct file mode and with the daemon owning the database, side by side in one
# run. Each attack runs as `nobody` while root logs in and out through the real libpam
# (pamtester), interleaved with a pam_permit-only stack:
#   none   no attack;
#   pin    nobody opens the database and holds a read transaction (no checkpoint passes it);
#   lock   nobody holds a shared lock on the WAL write-lock byte of the -shm file (every
#          write waits its bound, then goes to the spool);
#   flood  2,048 connections of nobody to wtmpdbd asking for the whole table every way a
#          client may (crates/daemon/tests/attack.py).
# The direct database is 0644, as upstream and Debian leave theirs; the daemon's has been
# handed over with `wtmpdb secure` (0600), so there pin and lock fail to start (printed as
# "refused"). Both start as the same 300,000-row upstream database. Per phase: open+close
# p50/p99/max and failures, rows recorded (after the spool is merged), the -wal size, and the
# daemon's resident memory.
# Environment: RUNS (sessions per stack and phase, 200), ROWS (300000), BENCH_DIR.
# Runs in a private mount namespace with a tmpfs on /run/wtmpdb, so the machine's own
# daemon socket is neither used nor replaced.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-200}
ROWS=${ROWS:-300000}

if [ "$(id -u)" != 0 ]; then
    echo "SKIP: bench/attacks.sh needs root (it writes /etc/pam.d services and runs as nobody)"
    exit 0
fi
for tool in pamtester sqlite3 setpriv unshare; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install pamtester sqlite3 util-linux)"; exit 1; }
done
[ -x /usr/bin/python3 ] || { echo "missing /usr/bin/python3 (nobody runs the attacks with it)"; exit 1; }

if [ -z "${ATTACKS_IN_NAMESPACE:-}" ]; then
    T=${CARGO_TARGET_DIR:-$REPO/target}/release
    (cd "$REPO" && cargo build --release -q -p pam_wtmpdb -p wtmpdb-cli -p wtmpdbd)
    made=0
    [ -d /run/wtmpdb ] || { mkdir -p /run/wtmpdb; made=1; }
    rc=0
    ATTACKS_IN_NAMESPACE=$T unshare -m --propagation private "$0" "$@" || rc=$?
    [ "$made" = 1 ] && rmdir /run/wtmpdb 2>/dev/null
    exit "$rc"
fi
T=$ATTACKS_IN_NAMESPACE
mount -t tmpfs -o mode=0755 tmpfs /run/wtmpdb

BASE=${BENCH_DIR:-/var/tmp}
mkdir -p "$BASE"
WORK=$(mktemp -d "$BASE/wtmpdb-attacks.XXXXXX")
chmod 0755 "$WORK"
SVC=wtmpdb-attacks-$$
cleanup() {
    [ -n "${DPID:-}" ] && kill "$DPID" 2>/dev/null
    rm -f /etc/pam.d/$SVC-permit /etc/pam.d/$SVC-direct /etc/pam.d/$SVC-daemon
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "== attacks on the database: login cost, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "   commit $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?'), $ROWS rows, $RUNS sessions per stack and phase"
python3 "$REPO/bench/gen_db.py" --out "$WORK/seed.db" --rows "$ROWS" >/dev/null
for mode in direct daemon; do
    mkdir -p "$WORK/$mode"
    chmod 0755 "$WORK/$mode"
    cp "$WORK/seed.db" "$WORK/$mode/wtmp.db"
    chmod 0644 "$WORK/$mode/wtmp.db"
    # The first write builds the indexes of an upstream database (not a login's job).
    "$T/wtmpdb" boot -q -f "$WORK/$mode/wtmp.db"
done
"$T/wtmpdb" secure -f "$WORK/daemon/wtmp.db" >/dev/null 2>&1
"$T/wtmpdbd" --socket /run/wtmpdb/socket --database "$WORK/daemon/wtmp.db" 2>"$WORK/wtmpdbd.log" &
DPID=$!
for _ in $(seq 100); do [ -S /run/wtmpdb/socket ] && break; sleep 0.05; done

printf 'session required pam_permit.so\n' >/etc/pam.d/$SVC-permit
printf 'session required pam_permit.so\nsession required %s database=%s\n' \
    "$T/libpam_wtmpdb.so" "$WORK/direct/wtmp.db" >/etc/pam.d/$SVC-direct
printf 'session required pam_permit.so\nsession required %s database=varlink\n' \
    "$T/libpam_wtmpdb.so" >/etc/pam.d/$SVC-daemon

python3 - "$SVC" "$RUNS" "$WORK" "$DPID" "$T/wtmpdb" "$REPO/crates/daemon/tests/attack.py" <<'PY'
import os, statistics, subprocess, sys, time
svc, runs, work, dpid, wtmpdb, attack_py = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6]
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3"]
DB = {m: f"{work}/{m}/wtmp.db" for m in ("direct", "daemon")}

PIN = """import sqlite3, sys
try:
    c = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True)
    c.execute('BEGIN'); c.execute('SELECT count(*) FROM wtmp').fetchone()
    print('ready', flush=True)
except sqlite3.Error as e:
    print('refused', e, flush=True)
sys.stdin.read()
"""
LOCK = """import fcntl, os, sys
try:
    fd = os.open(sys.argv[1] + '-shm', os.O_RDONLY)
    fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB, 1, 120, 0)
    print('ready', flush=True)
except OSError as e:
    print('refused', e, flush=True)
sys.stdin.read()
"""

def start(script, args):
    p = subprocess.Popen(NOBODY + ["-c", script] + args, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return p, p.stdout.readline().strip()

def stop(p):
    if p:
        p.stdin.close()
        p.wait()

def attacks(name):
    """The attackers of one phase and what became of each: {mode: (process, state)}."""
    out = {}
    for mode in ("direct", "daemon"):
        if name == "pin":
            out[mode] = start(PIN, [DB[mode]])
        elif name == "lock":
            out[mode] = start(LOCK, [DB[mode]])
        elif name == "flood" and mode == "daemon":
            out[mode] = start(open(attack_py).read(), ["/run/wtmpdb/socket", "2048"])
        else:
            out[mode] = (None, "-")
    return out

def session(stack, tty):
    t = time.perf_counter()
    r = subprocess.run(["pamtester", "-I", f"tty={tty}", "-I", "rhost=192.0.2.7",
                        f"{svc}-{stack}", "root", "open_session", "close_session"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return (time.perf_counter() - t) * 1e3, r.returncode

def rows(mode, tty):
    # As root, through the command: the spool is merged before the read (direct), and the
    # daemon's rows are in its file within a second (read through the daemon anyway).
    f = DB[mode] if mode == "direct" else "varlink"
    env = dict(os.environ, WTMPDB_SOCKET="/run/wtmpdb/socket", LC_ALL="C")
    out = subprocess.run([wtmpdb, "last", "-f", f, tty], capture_output=True, text=True, env=env).stdout
    return sum(1 for l in out.splitlines() if l.startswith("root ") and "still logged in" not in l)

def status(pid, key):
    try:
        for l in open(f"/proc/{pid}/status"):
            if l.startswith(key):
                return int(l.split()[1]) // 1024
    except OSError:
        return None

def wal(mode):
    try:
        return os.path.getsize(DB[mode] + "-wal") / 1e6
    except OSError:
        return 0.0

for _ in range(10):
    for s in ("permit", "direct", "daemon"):
        session(s, "pts/99")
print()
print("| attack | stack | nobody's attack | sessions | failed | p50 ms | p99 ms | max ms | rows recorded | -wal after MB | daemon RSS MB (now/peak) |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for phase, name in enumerate(("none", "pin", "lock", "flood")):
    a = attacks(name)
    time.sleep(1)
    tty = {s: f"pts/{phase}{i}" for i, s in enumerate(("permit", "direct", "daemon"))}
    res = {s: [] for s in tty}
    for _ in range(runs):
        for s in tty:
            res[s].append(session(s, tty[s]))
    rss = (status(dpid, "VmRSS"), status(dpid, "VmHWM"))
    for p, _ in a.values():
        stop(p)
    time.sleep(1.5)
    for s in ("permit", "direct", "daemon"):
        ms = sorted(t for t, _ in res[s])
        fails = sum(1 for _, rc in res[s] if rc != 0)
        p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
        state = a[s][1].split(" ")[0] if s in a else ""
        recorded = f"{rows(s, tty[s])}/{runs}" if s != "permit" else ""
        w = f"{wal(s):.2f}" if s != "permit" else ""
        r = f"{rss[0]}/{rss[1]}" if s == "daemon" else ""
        print(f"| {name} | {s} | {state} | {runs} | {fails} | {statistics.median(ms):.2f} | {p99:.2f} | {ms[-1]:.2f} | {recorded} | {w} | {r} |", flush=True)
PY
