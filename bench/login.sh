#!/usr/bin/env bash
# The login benchmark (not a test; not run by CI; needs root): upstream's PAM module (Debian's
# libpam-wtmpdb 0.75), ours writing the file itself (database=FILE), ours through our daemon
# wtmpdbd (database=varlink), and pam_permit alone, all in one Debian sid container and one
# run. Prints markdown tables with ratios and ✓/✗ against the targets:
#  1. pamtester open+close, RUNS interleaved rounds over seven stacks (the four above,
#     upstream's and our module loaded but never called, and the floor of a login through a
#     daemon: a Rust module that only connects, sends and waits, and a server that only
#     syncs a 4 KiB write per message, the pam crate's floor_module and wtmpdbd's
#     floor_server examples; and our module against that server in SQLite, which commits
#     each message into wtmpdb's database on a kept connection: SQLite's floor);
#  2. CONCURRENT simultaneous sessions, three rounds per stack: failures, rows recorded,
#     p50/p99;
#  3. wtmpdbd throughput: sessions per second over 8, 64 and 512 persistent connections
#     (crates/daemon/examples/load.rs), BENCH_SECONDS each;
#  4. open+close on an empty database and on a 1M-row one;
#  5. `wtmpdb import` of a 1M-record wtmp, logins while an import writes their database, and
#     `wtmpdb last -n 10` / `last user042` on 1M rows against Debian's `wtmpdb last`;
#  6. open+close after a rest (REST_MS before each session, REST_RUNS interleaved rounds):
#     a login on a quiet machine.
# Usage: bench/login.sh [--only 1,2,3]   (or SECTIONS=1,2,3)
# Environment: RUNS (300), CONCURRENT (64), BENCH_SECONDS (5), CONNECTIONS (8,64,512),
# LAST_RUNS (21), REST_RUNS (40), REST_MS (300), UPSTREAM_IMPORT (0; SECONDS: also time
# Debian's `wtmpdb import` of the wtmp, stopped after that long: it took 17 minutes here),
# BENCH_DIR (keeps the generated 1M-row inputs, db1m.db and wtmp1m, and the sid image with
# its packages, sid-login-image.tar: delete that to take newer packages).
source "$(dirname "$0")/../tests/e2e/common.sh"
source "$(dirname "$0")/../tests/e2e/lib/sid.sh"
SECTIONS=${SECTIONS:-1,2,3,4,5,6}
while [ $# -gt 0 ]; do
    case $1 in
    --only) SECTIONS=${2:?--only needs a list such as 1,2,3}; shift 2 ;;
    --only=*) SECTIONS=${1#--only=}; shift ;;
    -h | --help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) fail "unknown argument $1 (usage: bench/login.sh [--only 1,2,3])" ;;
    esac
done
[[ $SECTIONS =~ ^[1-6](,[1-6])*$ ]] || fail "SECTIONS/--only: a list of 1 to 6, such as 1,2,3"
RUNS=${RUNS:-300}
CONCURRENT=${CONCURRENT:-64}
BENCH_SECONDS=${BENCH_SECONDS:-5}
CONNECTIONS=${CONNECTIONS:-8,64,512}
LAST_RUNS=${LAST_RUNS:-21}
REST_RUNS=${REST_RUNS:-40}
REST_MS=${REST_MS:-300}
UPSTREAM_IMPORT=${UPSTREAM_IMPORT:-0}
has() { [[ ,$SECTIONS, == *,$1,* ]]; }
require_root
need_packages docker.io debootstrap python3 sqlite3

log "building our release binaries and the load generator"
(cd "$REPO" && cargo build --release -q -p pam_wtmpdb -p wtmpdb-cli -p wtmpdbd &&
    cargo build --release -q -p wtmpdbd --example load --example floor_server &&
    cargo build --release -q -p pam_wtmpdb --example floor_module)
T=${CARGO_TARGET_DIR:-$REPO/target}/release

# Scratch space (bind-mounted into the container: every database of the run is on this one
# file system) and the cache of generated inputs.
if [ -n "${BENCH_DIR:-}" ]; then
    mkdir -p "$BENCH_DIR"
    CACHE=$(cd "$BENCH_DIR" && pwd)
    WORK=$(mktemp -d "$CACHE/login.XXXXXX")
else
    WORK=$(mktemp -d /var/tmp/wtmpdb-login.XXXXXX)
    CACHE=$WORK
fi
on_exit "rm -rf '$WORK'"
chmod 0755 "$WORK"
mkdir -p "$WORK/ours"
cp "$T/libpam_wtmpdb.so" "$T/wtmpdbd" "$T/wtmpdb" "$T/examples/load" "$T/examples/floor_server" \
    "$T/examples/libfloor_module.so" "$REPO/bench/login.py" "$WORK/ours/"

if has 4 || has 5; then
    if [ ! -f "$CACHE/db1m.db" ]; then
        log "generating the 1M-row database"
        python3 "$REPO/bench/gen_db.py" --out "$CACHE/db1m.db" >/dev/null
    fi
    cp "$CACHE/db1m.db" "$WORK/db1m-indexed.db"
    # The indexes our writers create on the first read-write open of a small file (the
    # module does not build them on a file this large), as bench/pam.sh does.
    (cat "$REPO"/migrations/*.sql; echo "PRAGMA user_version = $(find "$REPO/migrations" -name '*.sql' | wc -l);") |
        sqlite3 "$WORK/db1m-indexed.db"
fi
if has 5 && [ ! -f "$CACHE/wtmp1m" ]; then
    log "generating the 1M-record wtmp"
    python3 "$REPO/bench/gen_wtmp.py" --out "$CACHE/wtmp1m" >/dev/null
fi

make_tmp
start_dockerd
IMAGE=wtmpdb-bench-login-sid:$$
C=wtmpdb-bench-login-$$
SAVED=${BENCH_DIR:+$CACHE/sid-login-image.tar}
if [ -n "$SAVED" ] && [ -f "$SAVED" ]; then
    log "loading the sid image saved in $SAVED"
    IMAGE=$(dk load -q -i "$SAVED" | sed -n 's/^Loaded image: //p')
    [ -n "$IMAGE" ] || fail "docker load $SAVED"
    dk run -d --name "$C" --network host -v "$WORK:$WORK" -v "$CACHE:$CACHE:ro" "$IMAGE" sleep infinity >/dev/null ||
        fail "docker run $IMAGE"
    on_exit "dk rm -f '$C' >/dev/null 2>&1"
else
    sid_image "$IMAGE"
    dk run -d --name "$C" --network host -v "$WORK:$WORK" -v "$CACHE:$CACHE:ro" "$IMAGE" sleep infinity >/dev/null ||
        fail "docker run $IMAGE"
    on_exit "dk rm -f '$C' >/dev/null 2>&1"
    log "installing Debian's libpam-wtmpdb and wtmpdb, pamtester and python3 in sid"
    sid_apt "$C" libpam-wtmpdb wtmpdb pamtester python3
    if [ -n "$SAVED" ]; then
        log "saving the sid image with its packages as $SAVED"
        { dk commit "$C" "$IMAGE" >/dev/null && dk save -o "$SAVED" "$IMAGE"; } || fail "docker save"
    fi
fi
UPSTREAM=$(in_sid "$C" 'find /usr/lib /lib -name pam_wtmpdb.so | head -n 1')
[ -n "$UPSTREAM" ] || fail "no pam_wtmpdb.so in the container's libpam-wtmpdb"
VERSIONS=$(in_sid "$C" "dpkg-query -W -f='\${Package} \${Version}, ' libpam-wtmpdb wtmpdb pamtester libpam-runtime")

commit=$(git -C "$REPO" rev-parse --short HEAD)
git -C "$REPO" diff --quiet HEAD -- crates migrations Cargo.lock || commit="$commit + uncommitted changes"
echo "# Login benchmark: upstream pam_wtmpdb, ours (file and wtmpdbd), pam_permit"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1))"
echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "- in a Debian sid container: ${VERSIONS%, }"
echo "- ours: commit $commit, release build"
echo "- scratch file system (every database): $(findmnt -no FSTYPE,SOURCE -T "$WORK" | tr -s ' ')"
echo "- sections $SECTIONS; RUNS=$RUNS CONCURRENT=$CONCURRENT BENCH_SECONDS=$BENCH_SECONDS" \
    "CONNECTIONS=$CONNECTIONS LAST_RUNS=$LAST_RUNS REST_RUNS=$REST_RUNS REST_MS=$REST_MS" \
    "UPSTREAM_IMPORT=$UPSTREAM_IMPORT"

dk exec -i -e SECTIONS="$SECTIONS" -e RUNS="$RUNS" -e CONCURRENT="$CONCURRENT" \
    -e BENCH_SECONDS="$BENCH_SECONDS" -e CONNECTIONS="$CONNECTIONS" -e LAST_RUNS="$LAST_RUNS" \
    -e REST_RUNS="$REST_RUNS" -e REST_MS="$REST_MS" \
    -e UPSTREAM_IMPORT="$UPSTREAM_IMPORT" \
    -e UPSTREAM="$UPSTREAM" -e OURS="$WORK/ours" -e WORK="$WORK" \
    -e DB1M="$CACHE/db1m.db" -e DB1M_INDEXED="$WORK/db1m-indexed.db" -e WTMP1M="$CACHE/wtmp1m" \
    "$C" python3 "$WORK/ours/login.py" || fail "the benchmark failed"
echo "- load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
