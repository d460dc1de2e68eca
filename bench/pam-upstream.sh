#!/usr/bin/env bash
# Benchmark of pam_wtmpdb against upstream's module (not a test; needs root): in one Debian sid
# container and one run, pamtester open+close through three session stacks, interleaved:
# pam_permit only, Debian's pam_wtmpdb.so (libpam-wtmpdb 0.75) and ours, each module on its
# own database file (database=, so neither asks a daemon). Prints the medians, the overheads
# over pam_permit and their ratio, then CONCURRENT simultaneous sessions per stack: failures
# and p50/p99.
# Environment: RUNS (300), CONCURRENT (64).
source "$(dirname "$0")/../tests/e2e/common.sh"
source "$(dirname "$0")/../tests/e2e/lib/sid.sh"
RUNS=${RUNS:-300}
CONCURRENT=${CONCURRENT:-64}
require_root
need_packages docker.io debootstrap
make_tmp

(cd "$REPO" && cargo build --release -q -p pam_wtmpdb)
T=${CARGO_TARGET_DIR:-$REPO/target}/release

start_dockerd
IMAGE=wtmpdb-bench-pam-sid:$$
C=wtmpdb-bench-pam-$$
sid_image "$IMAGE"
sid_container "$C" "$IMAGE"
log "installing Debian's libpam-wtmpdb, pamtester and python3 in sid"
sid_apt "$C" libpam-wtmpdb pamtester python3

dk cp "$T/libpam_wtmpdb.so" "$C:/tmp/pam_wtmpdb_ours.so"
in_sid "$C" 'set -e
    upstream=$(find /usr/lib /lib -name pam_wtmpdb.so | head -n 1)
    [ -n "$upstream" ] || { echo "no pam_wtmpdb.so in libpam-wtmpdb" >&2; exit 1; }
    mkdir -p /var/tmp/bench
    printf "session required pam_permit.so\n" >/etc/pam.d/b-permit
    printf "session required pam_permit.so\nsession required %s database=/var/tmp/bench/upstream.db\n" \
        "$upstream" >/etc/pam.d/b-upstream
    printf "session required pam_permit.so\nsession required /tmp/pam_wtmpdb_ours.so database=/var/tmp/bench/ours.db\n" \
        >/etc/pam.d/b-ours
    dpkg-query -W -f="upstream: libpam-wtmpdb \${Version}\n" libpam-wtmpdb'

cat >"$TMP/run.py" <<'PY'
import statistics, subprocess, sys, time
runs, conc = int(sys.argv[1]), int(sys.argv[2])
stacks = ["b-permit", "b-upstream", "b-ours"]
def argv(svc, tty):
    return ["pamtester", "-I", "tty=" + tty, "-I", "rhost=192.0.2.7", svc, "root",
            "open_session", "close_session"]
def one(svc):
    t = time.perf_counter()
    rc = subprocess.run(argv(svc, "pts/1"), stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL).returncode
    return time.perf_counter() - t, rc
for _ in range(10):
    for s in stacks:
        one(s)
times = {s: [] for s in stacks}
fails = {s: 0 for s in stacks}
for _ in range(runs):
    for s in stacks:
        t, rc = one(s)
        times[s].append(t)
        fails[s] += rc != 0
med = {s: statistics.median(v) * 1e3 for s, v in times.items()}
over = {s: med[s] - med["b-permit"] for s in stacks}
print(f"\n1. open+close, median of {runs} interleaved runs (failures):")
print("| stack | median | overhead over pam_permit |")
print("|---|---|---|")
print(f"| pam_permit only | {med['b-permit']:.2f} ms ({fails['b-permit']}) | |")
print(f"| upstream pam_wtmpdb | {med['b-upstream']:.2f} ms ({fails['b-upstream']}) | {over['b-upstream']:.2f} ms |")
print(f"| ours | {med['b-ours']:.2f} ms ({fails['b-ours']}) | {over['b-ours']:.2f} ms "
      f"({over['b-ours'] / over['b-upstream']:.2f}x upstream's) |")
def concurrent(svc):
    procs, start = [], time.perf_counter()
    for i in range(conc):
        procs.append((subprocess.Popen(argv(svc, f"pts/{100 + i}"), stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL), time.perf_counter()))
    lat, failed = [], 0
    for p, t in procs:
        failed += p.wait() != 0
        lat.append(time.perf_counter() - t)
    lat.sort()
    return failed, lat[len(lat) // 2] * 1e3, lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3
print(f"\n2. {conc} concurrent sessions (each stack three times, the worst p99 shown):")
print("| stack | failures | p50 | p99 |")
print("|---|---|---|---|")
for s, name in [("b-permit", "pam_permit only"), ("b-upstream", "upstream pam_wtmpdb"), ("b-ours", "ours")]:
    r = [concurrent(s) for _ in range(3)]
    print(f"| {name} | {sum(x[0] for x in r)} | {max(x[1] for x in r):.1f} ms | {max(x[2] for x in r):.1f} ms |")
PY
dk cp "$TMP/run.py" "$C:/tmp/run.py"
log "$(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
in_sid "$C" "python3 /tmp/run.py $RUNS $CONCURRENT" || fail "the benchmark failed"
in_sid "$C" 'for f in upstream ours; do printf "%s rows: " $f; python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(\"select count(*) from wtmp\").fetchone()[0])" /var/tmp/bench/$f.db; done'
