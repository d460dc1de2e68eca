#!/bin/bash
# Benchmark of failed logins under a brute force (not a test; not run by CI). Through the real
# libpam (Python's ctypes, no PAM mock), with service files in a temporary directory
# (pam_start_confdir): WORKERS processes each run failed authentications (pam_deny.so, then
# `auth [default=die] pam_wtmpdb.so authfail`, a new PAM handle per attempt, as one sshd
# process per connection) at RATE attempts a second in all for BENCH_SECONDS s, while one
# process opens and closes a successful session with `showfailed` every 20 ms and times it.
# The same successful sessions are timed before the attack. Prints the attempts made and
# recorded, the sessions' p50 / p99 / max, and the failures' file's size and rows.
# Environment: RATE (1000), WORKERS (4), BENCH_SECONDS (10), MODULE (the built module),
# BASELINE=1 (the failing stack without the module's line: what the driver reaches alone).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
RATE=${RATE:-1000}
WORKERS=${WORKERS:-4}
SECS=${BENCH_SECONDS:-10}
T=${CARGO_TARGET_DIR:-$REPO/target}
MODULE=${MODULE:-$T/release/libpam_wtmpdb.so}
[ -f "$MODULE" ] || (cd "$REPO" && cargo build --release -q -p pam_wtmpdb)
DIR=$(mktemp -d /tmp/wtmpdb-bench-failed.XXXXXX)
trap 'rm -rf "$DIR"' EXIT
DB=$DIR/wtmp.db
line="auth [default=die] $MODULE authfail database=$DB"
jump=2
if [ "${BASELINE:-0}" = 1 ]; then line="# (baseline: no module)"; jump=1; fi
cat >"$DIR/fail" <<EOT
auth [success=$jump default=ignore] pam_deny.so
$line
auth requisite pam_deny.so
auth required pam_permit.so
EOT
cat >"$DIR/ok" <<EOT
session required $MODULE database=$DB showfailed
EOT
python3 - "$DIR" "$DB" "$RATE" "$WORKERS" "$SECS" <<'PY'
import ctypes, multiprocessing as mp, os, sys, time
confdir, db, rate, workers, secs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
CONV = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
class PamConv(ctypes.Structure):
    _fields_ = [("conv", CONV), ("appdata", ctypes.c_void_p)]
# Answers nothing but accepts information: the notice is received, not printed.
@CONV
def conv(n, msg, resp, data):
    libc = ctypes.CDLL("libc.so.6")
    libc.calloc.restype = ctypes.c_void_p
    r = libc.calloc(n, 16)
    ctypes.cast(resp, ctypes.POINTER(ctypes.c_void_p))[0] = r
    return 0
def pam():
    lib = ctypes.CDLL("libpam.so.0")
    lib.pam_start_confdir.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(PamConv), ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
    for f in ("pam_authenticate", "pam_open_session", "pam_close_session", "pam_end"):
        getattr(lib, f).argtypes = [ctypes.c_void_p, ctypes.c_int]
    return lib
def handle(lib, svc, user, c):
    h = ctypes.c_void_p()
    assert lib.pam_start_confdir(svc.encode(), user.encode(), ctypes.byref(c), confdir.encode(), ctypes.byref(h)) == 0
    return h
def attacker(i, until, out):
    lib, c = pam(), PamConv(conv, None)
    per = workers / rate
    n, t = 0, time.monotonic()
    while time.monotonic() < until:
        h = handle(lib, "fail", "root" if n % 2 else f"guess{n}", c)
        assert lib.pam_authenticate(h, 0) == 7
        lib.pam_end(h, 7)
        n += 1
        t += per
        d = t - time.monotonic()
        if d > 0:
            time.sleep(d)
    out.put(n)
def logins(until):
    lib, c = pam(), PamConv(conv, None)
    took = []
    while time.monotonic() < until:
        h = handle(lib, "ok", "root", c)
        t = time.monotonic()
        assert lib.pam_open_session(h, 0) == 0
        assert lib.pam_close_session(h, 0) == 0
        took.append((time.monotonic() - t) * 1000)
        lib.pam_end(h, 0)
        time.sleep(0.02)
    took.sort()
    return took
def show(name, took):
    p = lambda q: took[min(len(took) - 1, int(q * len(took)))]
    print(f"{name}: {len(took)} sessions, p50 {p(0.5):.1f} ms, p99 {p(0.99):.1f} ms, max {took[-1]:.1f} ms")
show("quiet", logins(time.monotonic() + 3))
until = time.monotonic() + secs
q = mp.Queue()
ps = [mp.Process(target=attacker, args=(i, until, q)) for i in range(workers)]
for p in ps: p.start()
under = logins(until)
made = sum(q.get() for _ in ps)
for p in ps: p.join()
show("under attack", under)
import sqlite3
d = os.path.dirname(db)
rows = 0
if os.path.exists(db + "-failed"):
    rows = sqlite3.connect(db + "-failed").execute("SELECT count(*) FROM failed").fetchone()[0]
size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d) if f.startswith("wtmp.db-failed"))
if rows == 0 and not os.path.exists(db + "-failed"):
    print(f"attempts: {made} in {secs:.0f} s ({made / secs:.0f}/s), none recorded (no module in the stack)")
else:
    print(f"attempts: {made} in {secs:.0f} s ({made / secs:.0f}/s), recorded {rows} ({made - rows} dropped after the 250 ms wait)")
print(f"failures' file: {size / 1e6:.2f} MB for {rows} rows ({size / max(rows, 1):.0f} bytes a row)")
PY
