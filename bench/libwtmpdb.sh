#!/usr/bin/env bash
# Benchmark of libwtmpdb.so.0 (not a test; needs root): wtmpdb_login + wtmpdb_logout per call
# pair, ours against Debian's libwtmpdb0, in the same Debian sid container and the same run.
# One C program (bench/libwtmpdb-pairs.c, built once against our wtmpdb.h) runs with either
# library in turn, ROUNDS times each, alternating, PAIRS pairs per round, each library on its
# own database file in the container (the same file system for both). Prints the median and
# the 99th percentile of all pairs of each library, and the ratios.
# Environment: PAIRS (500), ROUNDS (4).
source "$(dirname "$0")/../tests/e2e/common.sh"
source "$(dirname "$0")/../tests/e2e/lib/sid.sh"
PAIRS=${PAIRS:-500}
ROUNDS=${ROUNDS:-4}
require_root
need_packages docker.io debootstrap python3
make_tmp

(cd "$REPO" && cargo build --release -q -p libwtmpdb)
T=${CARGO_TARGET_DIR:-$REPO/target}/release

start_dockerd
IMAGE=wtmpdb-bench-sid:$$
C=wtmpdb-bench-$$
sid_image "$IMAGE"
sid_container "$C" "$IMAGE"
log "installing Debian's libwtmpdb0 and a compiler in sid"
sid_apt "$C" libwtmpdb0 gcc libc6-dev

dk cp "$T/libwtmpdb_c.so" "$C:/tmp/ours.so"
dk cp "$REPO/crates/libwtmpdb/include/wtmpdb.h" "$C:/tmp/wtmpdb.h"
dk cp "$REPO/bench/libwtmpdb-pairs.c" "$C:/tmp/pairs.c"
in_sid "$C" 'set -e
    mkdir -p /opt/debian /opt/ours /var/tmp/bench
    cp "$(readlink -f "$(find /usr/lib -name libwtmpdb.so.0 | head -n 1)")" /opt/debian/libwtmpdb.so.0
    cp /tmp/ours.so /opt/ours/libwtmpdb.so.0
    ln -s libwtmpdb.so.0 /opt/ours/libwtmpdb.so
    gcc -O2 -I/tmp -o /tmp/pairs /tmp/pairs.c -L/opt/ours -lwtmpdb'

for r in $(seq "$ROUNDS"); do
    for lib in debian ours; do
        in_sid "$C" "LD_LIBRARY_PATH=/opt/$lib /tmp/pairs /var/tmp/bench/$lib.db $PAIRS" >>"$TMP/$lib.txt" ||
            fail "round $r with $lib"
    done
    log "round $r of $ROUNDS done"
done

python3 - "$TMP/debian.txt" "$TMP/ours.txt" <<'PY'
import sys
def stats(path):
    v = sorted(int(x) for x in open(path))
    return len(v), v[len(v) // 2], v[min(len(v) - 1, int(len(v) * 0.99))]
d, o = stats(sys.argv[1]), stats(sys.argv[2])
print()
print("| library (sid container) | pairs | median | p99 |")
print("|---|---|---|---|")
print(f"| Debian libwtmpdb0 0.75.0 | {d[0]} | {d[1] / 1000:.2f} ms | {d[2] / 1000:.2f} ms |")
print(f"| ours | {o[0]} | {o[1] / 1000:.2f} ms ({o[1] / d[1]:.2f}x) | {o[2] / 1000:.2f} ms ({o[2] / d[2]:.2f}x) |")
PY
