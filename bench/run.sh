#!/usr/bin/env bash
# Benchmark of the `wtmpdb` command against its targets and against util-linux `last`
# on the equivalent legacy wtmp file. Prints one markdown table on stdout (progress and
# tool output go to stderr and to log files in the work directory).
#
# Usage: bench/run.sh [--rows N] [--quick] [--cache DIR] [--keep]
#   --rows N     user sessions in the generated database (default 1000000); the legacy
#                file gets N records. Boot rows scale along (2000 per million).
#   --quick      fewer repetitions (medians of 3/5 runs instead of 7/20) and a shorter timeout
#                for the un-migrated read; same rows.
#   --cache DIR  where the generated data is kept and reused
#                (default: $WTMPDB_BENCH_CACHE or ${TMPDIR:-/tmp}/wtmpdb-bench).
#   --keep       keep the scratch databases of this run (default: removed at the end).
# Environment:
#   WTMPDB=PATH       benchmark this binary instead of building the repository's.
#   GEN_DIR=DIR       where gen_db.py and gen_wtmp.py live (default: bench/ of this
#                     repository).
#   HYPERFINE=0       time with the built-in python loop even if hyperfine is installed.
set -euo pipefail

die() { printf 'bench/run.sh: error: %s\n' "$*" >&2; exit 1; }
warn() { printf 'bench/run.sh: warning: %s\n' "$*" >&2; }
step() { printf '==> %s\n' "$*" >&2; }

ROWS=1000000
QUICK=0
KEEP=0
CACHE=${WTMPDB_BENCH_CACHE:-${TMPDIR:-/tmp}/wtmpdb-bench}
ORIG_ARGS=("$@")
while (($#)); do
    case $1 in
        --rows) [[ $# -ge 2 ]] || die "--rows needs a number"; ROWS=$2; shift 2 ;;
        --rows=*) ROWS=${1#--rows=}; shift ;;
        --quick) QUICK=1; shift ;;
        --cache) [[ $# -ge 2 ]] || die "--cache needs a directory"; CACHE=$2; shift 2 ;;
        --cache=*) CACHE=${1#--cache=}; shift ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done
[[ $ROWS =~ ^[0-9]+$ ]] && ((ROWS >= 1000)) || die "--rows must be an integer >= 1000"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HELPER="$ROOT/bench/helper.py"
GEN_DIR=${GEN_DIR:-$ROOT/bench}

# ---------------------------------------------------------------- requirements
command -v python3 >/dev/null 2>&1 ||
    die "python3 is required (data generators, timing and statistics); install python3"
command -v sqlite3 >/dev/null 2>&1 ||
    die "the sqlite3 command-line shell is required (DAYS for rotate, concurrent writes, row counts); install sqlite3"
[[ -r /proc/self/io ]] || die "/proc/self/io is not readable: Linux with task I/O accounting is required"
[[ -f $GEN_DIR/gen_db.py && -f $GEN_DIR/gen_wtmp.py ]] ||
    die "generators not found in $GEN_DIR (set GEN_DIR to the directory holding gen_db.py and gen_wtmp.py)"
PEER=""
if command -v last >/dev/null 2>&1 && last --version 2>/dev/null | grep -q util-linux; then
    PEER=$(command -v last)
else
    warn "util-linux 'last' not found: the peer column will read 'n/a (no util-linux last)'; install util-linux (it provides last) to compare with the legacy file"
fi
HF=""
if [[ ${HYPERFINE:-1} != 0 ]] && command -v hyperfine >/dev/null 2>&1 &&
    hyperfine --help 2>/dev/null | grep -q -- '--shell'; then
    HF=$(command -v hyperfine)
else
    warn "hyperfine not used: timing with the python loop in bench/helper.py (interleaved runs)"
fi
STRACE=""
if command -v strace >/dev/null 2>&1; then
    STRACE=$(command -v strace)
else
    warn "strace not found: temp-file writes are judged by /proc write_bytes only"
fi

if ((QUICK)); then
    LONG=3 SHORT=5 SHORTW=1 ONCE=1 NCONC=50 UNMIG_TIMEOUT=20
else
    LONG=7 SHORT=20 SHORTW=3 ONCE=3 NCONC=50 UNMIG_TIMEOUT=60
fi

# ---------------------------------------------------------------- build
if [[ -n ${WTMPDB:-} ]]; then
    BIN=$WTMPDB
    [[ -x $BIN ]] || die "WTMPDB=$BIN is not an executable"
    step "using WTMPDB=$BIN (not building)"
else
    command -v cargo >/dev/null 2>&1 || die "cargo is required to build the release binary (or set WTMPDB=PATH)"
    step "cargo build --release"
    cargo build --release --manifest-path "$ROOT/Cargo.toml" >&2 || die "cargo build --release failed"
    TARGET_DIR=$(cargo metadata --format-version 1 --no-deps --manifest-path "$ROOT/Cargo.toml" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
    BIN=$TARGET_DIR/release/wtmpdb
    [[ -x $BIN ]] || die "built binary not found at $BIN"
fi
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$ROOT" status --porcelain -- src migrations Cargo.toml Cargo.lock 2>/dev/null) ]]; then
    COMMIT="$COMMIT+dirty"
fi

# ---------------------------------------------------------------- data (cached)
BOOTS=$(( ROWS * 2000 / 1000000 )); ((BOOTS >= 10)) || BOOTS=10
# The cache is per generator version: data from an older generator is not reused.
GEN_SUM=$(for f in gen_db.py gen_wtmp.py synth.py; do [[ ! -f $GEN_DIR/$f ]] || cat "$GEN_DIR/$f"; done |
    sha256sum | cut -c1-8)
DATA="$CACHE/rows-$ROWS-$GEN_SUM"
mkdir -p "$DATA"
UPSTREAM_DB="$DATA/upstream.db"
WTMP="$DATA/wtmp"
if [[ ! -s $UPSTREAM_DB ]]; then
    step "generating $UPSTREAM_DB ($ROWS sessions, $BOOTS boots; once, then reused)"
    rm -f "$UPSTREAM_DB.tmp"
    python3 "$GEN_DIR/gen_db.py" --out "$UPSTREAM_DB.tmp" --rows "$ROWS" --boots "$BOOTS" >&2
    mv "$UPSTREAM_DB.tmp" "$UPSTREAM_DB"
fi
if [[ ! -s $WTMP ]]; then
    step "generating $WTMP ($ROWS records; once, then reused)"
    rm -f "$WTMP.tmp"
    python3 "$GEN_DIR/gen_wtmp.py" --out "$WTMP.tmp" --records "$ROWS" --boots "$BOOTS" >&2
    mv "$WTMP.tmp" "$WTMP"
fi

LOAD_START=$(uptime | sed 's/^ *//')
WORK="$CACHE/run-$ROWS.$$"
rm -rf "$WORK"
mkdir -p "$WORK"
cleanup() { ((KEEP)) || rm -rf "$WORK"; }
trap cleanup EXIT

# Every measurement runs with the same locale and without TZ unless a row says otherwise.
export LC_ALL=C
unset TZ

q() { printf '%q' "$1"; }
QBIN=$(q "$BIN")
QPEER=$(q "${PEER:-last}")
QWTMP=$(q "$WTMP")

# timeit NAME RUNS WARMUP PREPARE CMD... : medians etc. in $WORK/NAME.json. Commands are
# strings split like a shell would split them, run without a shell, output to /dev/null.
timeit() {
    local name=$1 runs=$2 warmup=$3 prepare=$4
    shift 4
    local out="$WORK/$name.json" log="$WORK/$name.log"
    step "timing $name: $* (runs=$runs)"
    if [[ -n $HF && $# -eq 1 ]]; then
        local args=(-N --runs "$runs" --warmup "$warmup" --export-json "$out" --style basic)
        [[ -n $prepare ]] && args+=(--prepare "$prepare")
        "$HF" "${args[@]}" "$@" >"$log" 2>&1 || { cat "$log" >&2; die "timing '$name' failed (log above)"; }
    elif [[ -n $HF ]]; then
        # Ours and the peer: hyperfine runs all runs of one command before the next, so
        # on a shared machine a change of load lands on one side only. Interleave
        # instead: one run of each per round, the order reversed every other round.
        local r parts=() args cmds
        : >"$log"
        for ((r = 0; r < runs; r++)); do
            args=(-N --runs 1 --export-json "$out.$r" --style basic)
            ((r == 0 && warmup > 0)) && args+=(--warmup "$warmup")
            [[ -n $prepare ]] && args+=(--prepare "$prepare")
            if ((r % 2)); then cmds=("$2" "$1"); else cmds=("$1" "$2"); fi
            "$HF" "${args[@]}" "${cmds[@]}" >>"$log" 2>&1 || { cat "$log" >&2; die "timing '$name' failed (log above)"; }
            parts+=("$out.$r")
        done
        python3 "$HELPER" merge "$out" "${parts[@]}"
        rm -f "${parts[@]}"
    else
        python3 "$HELPER" time "$out" "$runs" "$warmup" "$prepare" "$@" 2>"$log" ||
            { cat "$log" >&2; die "timing '$name' failed (log above)"; }
    fi
}
# med NAME INDEX -> median seconds; cpu NAME INDEX -> mean user+system seconds
med() { python3 "$HELPER" stats "$WORK/$1.json" "$2" | cut -d' ' -f1; }
cpu() { python3 "$HELPER" stats "$WORK/$1.json" "$2" | cut -d' ' -f6; }

# fmt_s SECONDS -> "1.23 s" / "4.5 ms"
fmt_s() {
    python3 -c 'import sys
t=float(sys.argv[1])
print("%.2f s" % t if t >= 1 else ("%.0f ms" % (t*1e3) if t >= 0.1 else ("%.1f ms" % (t*1e3) if t >= 0.001 else "%.0f µs" % (t*1e6))))' "$1"
}
# ratio A B -> "0.52×"
ratio() { python3 -c 'import sys; a,b=map(float,sys.argv[1:]); print("%.2f×" % (a/b) if b > 0 else "–")' "$1" "$2"; }
# le A B -> true if A <= B (floats)
le() { python3 -c 'import sys; a,b=map(float,sys.argv[1:]); sys.exit(0 if a <= b else 1)' "$1" "$2"; }
mark() { if "$@"; then printf '✓'; else printf '✗'; fi; }
mb() { python3 -c 'import sys; print("%.1f MB" % (int(sys.argv[1])/1e6))' "$1"; }
sq() { sqlite3 -batch -cmd '.timeout 5000' "$@"; }

ROWS_LABEL=$ROWS
((ROWS % 1000000 == 0)) && ROWS_LABEL="$((ROWS / 1000000))M"
((ROWS % 1000000 != 0 && ROWS % 1000 == 0)) && ROWS_LABEL="$((ROWS / 1000))k"
TABLE=()
row() { TABLE+=("| $1 | $2 | $3 | $4 | $5 |"); }
NOTES=()

# ---------------------------------------------------------------- cold first write
# The first read-write open of an upstream database creates our indexes. Timed on a
# fresh copy each run; the copy of the last run is the indexed database read below.
IDX="$WORK/idx.db"
QIDX=$(q "$IDX")
timeit cold "$ONCE" 0 "cp $(q "$UPSTREAM_DB") $QIDX" "$QBIN boot -f $QIDX -q"
T_COLD=$(med cold 0)
[[ $(sq "$IDX" 'PRAGMA user_version') -ge 1 ]] || die "wtmpdb boot did not migrate $IDX"
NROWS=$(sq "$IDX" 'SELECT count(*) FROM wtmp')
SIZE=$(stat -c %s "$IDX")
BPS=$(python3 -c 'import sys; print("%.0f" % (int(sys.argv[1])/int(sys.argv[2])))' "$SIZE" "$NROWS")
UP_SIZE=$(stat -c %s "$UPSTREAM_DB")

# ---------------------------------------------------------------- reads
FULL_OURS="$QBIN last -f $QIDX"
FULL_PEER="$QPEER -f $QWTMP"
peer_cmds() { [[ -n $PEER ]] && printf '%s\n' "$@"; return 0; }

for tz in local utc; do
    mapfile -t P < <(peer_cmds "$FULL_PEER")
    if [[ $tz == utc ]]; then
        TZ=UTC timeit "full-$tz" "$LONG" 1 "" "$FULL_OURS" "${P[@]}"
    else
        timeit "full-$tz" "$LONG" 1 "" "$FULL_OURS" "${P[@]}"
    fi
done
mapfile -t P < <(peer_cmds "$QPEER -n 10 -f $QWTMP")
timeit n10 "$SHORT" "$SHORTW" "" "$QBIN last -n 10 -f $QIDX" "${P[@]}"
mapfile -t P < <(peer_cmds "$QPEER -f $QWTMP user042")
timeit user "$LONG" 1 "" "$QBIN last -f $QIDX user042" "${P[@]}"
timeit json "$LONG" 1 "" "$QBIN last -j -f $QIDX"
timeit boottime "$SHORT" "$SHORTW" "" "$QBIN boottime -f $QIDX"
# who reads the running boot's open rows only; lastlog one descent of the User index per
# user (the generated data has 500 users).
timeit who "$SHORT" "$SHORTW" "" "$QBIN who --no-logind -f $QIDX"
timeit lastlog "$SHORT" "$SHORTW" "" "$QBIN lastlog -f $QIDX"

# cell_pair NAME TARGET_SECONDS [peer_must_be_slower] -> sets OURS PEERC RATIO
cell_pair() {
    local name=$1 target=$2 vs_peer=${3:-0} o p ok=1
    o=$(med "$name" 0)
    le "$o" "$target" || ok=0
    if [[ -n $PEER ]] && python3 "$HELPER" stats "$WORK/$name.json" 1 >/dev/null 2>&1; then
        p=$(med "$name" 1)
        PEERC="$(fmt_s "$p") (CPU $(fmt_s "$(cpu "$name" 1)"))"
        RATIO=$(ratio "$o" "$p")
        ((vs_peer)) && ! le "$o" "$p" && ok=0
    else
        PEERC=${PEER:+–}
        PEERC=${PEERC:-n/a (no util-linux last)}
        RATIO="–"
    fi
    OURS="$(fmt_s "$o") $(((ok)) && echo ✓ || echo ✗) (CPU $(fmt_s "$(cpu "$name" 0)"))"
}

cell_pair full-local 1.0 1
LOCALTIME=$(readlink /etc/localtime 2>/dev/null | sed 's|.*zoneinfo/||')
row "full \`last\` > /dev/null (TZ unset: /etc/localtime${LOCALTIME:+ = $LOCALTIME})" "≤ 1.0 s and ≤ peer" "$OURS" "$PEERC" "$RATIO"
cell_pair full-utc 1.0 1
row "full \`last\` > /dev/null (TZ=UTC)" "≤ 1.0 s and ≤ peer" "$OURS" "$PEERC" "$RATIO"
cell_pair n10 0.010
row "\`last -n 10\`" "≤ 10 ms" "$OURS" "$PEERC" "$RATIO"
cell_pair user 0.020
row "\`last user042\`" "≤ 20 ms" "$OURS" "$PEERC" "$RATIO"
PEER_SAVE=$PEER; PEER=""
cell_pair json 1.0
row "\`last -j\` > /dev/null" "≤ 1.0 s" "$OURS" "– (no JSON output)" "–"
cell_pair who 0.010
row "\`who\` (open rows of the running boot)" "≤ 10 ms" "$OURS" "–" "–"
cell_pair lastlog 0.050
USERS=$(sq "$IDX" 'SELECT count(DISTINCT User) FROM wtmp WHERE Type = 3')
row "\`lastlog\` ($USERS users)" "≤ 50 ms" "$OURS" "–" "–"
PEER=$PEER_SAVE

# ---------------------------------------------------------------- temp-file writes
# Bytes written to files the process created itself (strace), cross-checked with the
# storage writes the kernel accounts to the process (/proc/self/io write_bytes of the
# reaped child; 0 on tmpfs, hence strace first).
tempwrites() { # tempwrites LABEL CMD... -> "bytes files write_bytes"
    local label=$1; shift
    local st="$WORK/strace-$label.log" b=0 f=0 wb
    if [[ -n $STRACE ]]; then
        "$STRACE" -f -qq -o "$st" -e trace=openat,open,creat,write,pwrite64,writev,pwritev,close \
            "$@" >/dev/null 2>"$WORK/strace-$label.err" || die "strace $* failed (see $WORK/strace-$label.err)"
        read -r b f < <(python3 "$HELPER" tempfiles "$st")
        rm -f "$st"
    fi
    read -r _ _ wb _ < <(python3 "$HELPER" measure "$WORK/io-$label.log" -- "$@")
    echo "$b $f $wb"
}
temp_cell() { # temp_cell "bytes files wb"... -> none / X MB in K files
    local tot_b=0 tot_f=0 tot_wb=0 b f wb
    for t in "$@"; do
        read -r b f wb <<<"$t"
        tot_b=$((tot_b + b)); tot_f=$((tot_f + f)); tot_wb=$((tot_wb + wb))
    done
    if ((tot_b == 0 && tot_wb == 0)); then
        echo "none"
    else
        echo "$(mb "$tot_b") to $tot_f temp files, $(mb "$tot_wb") to disk"
    fi
}
step "temp-file writes during last (strace: ${STRACE:-no})"
TW_OURS=$(temp_cell \
    "$(tempwrites full "$BIN" last -f "$IDX")" \
    "$(tempwrites n10 "$BIN" last -n 10 -f "$IDX")" \
    "$(tempwrites user "$BIN" last -f "$IDX" user042)" \
    "$(tempwrites json "$BIN" last -j -f "$IDX")")
if [[ -n $PEER ]]; then
    TW_PEER=$(temp_cell "$(tempwrites peer "$PEER" -f "$WTMP")")
else
    TW_PEER="n/a (no util-linux last)"
fi
if [[ $TW_OURS == none ]]; then TW_MARK=✓; else TW_MARK=✗; fi
row "temp-file writes during \`last\` (full, -n 10, user042, -j)" "none" "$TW_OURS $TW_MARK" "$TW_PEER" "–"

# ---------------------------------------------------------------- boottime / shutdown
cell_pair boottime 0.005
row "\`boottime\`" "≤ 5 ms" "$OURS" "–" "–"
# shutdown closes the newest boot row (the one `wtmpdb boot` added above); reopened
# before every run, outside the timing.
REOPEN="sqlite3 -batch -cmd \".timeout 5000\" $QIDX \"UPDATE wtmp SET Logout = NULL WHERE ID = (SELECT ID FROM wtmp WHERE Type = 1 ORDER BY Login DESC LIMIT 1)\""
timeit shutdown "$SHORT" "$SHORTW" "$REOPEN" "$QBIN shutdown -f $QIDX"
cell_pair shutdown 0.005
row "\`shutdown\` (boot row reopened before each run)" "≤ 5 ms" "$OURS" "–" "–"

# ---------------------------------------------------------------- import
IMPDB="$WORK/import.db"
IMP_T=() IMP_RSS="" IMP_WB="" IMP_CELL=""
for ((i = 0; i < ONCE; i++)); do
    rm -f "$IMPDB" "$IMPDB-journal"
    step "import $WTMP into a fresh db ($((i + 1))/$ONCE)"
    read -r t rss wb rc < <(python3 "$HELPER" measure "$WORK/import.log" -- "$BIN" import -f "$IMPDB" "$WTMP")
    if ((rc != 0)); then
        if grep -qi 'not implemented' "$WORK/import.log"; then
            IMP_CELL="n/a ($(head -n 1 "$WORK/import.log" | sed 's/^Error importing .*: //' | head -c 100))"
        else
            IMP_CELL="FAILED, exit $rc: $(head -c 160 "$WORK/import.log" | tr '\n' ' ' | sed 's/|/\\|/g')"
        fi
        break
    fi
    IMP_T+=("$t"); IMP_RSS=$rss; IMP_WB=$wb
done
if [[ -z $IMP_CELL ]]; then
    T_IMP=$(printf '%s\n' "${IMP_T[@]}" | python3 -c 'import sys,statistics; print(statistics.median(float(l) for l in sys.stdin))')
    IMP_ROWS=$(sq "$IMPDB" 'SELECT count(*) FROM wtmp')
    IMP_CELL="$(fmt_s "$T_IMP") $(mark le "$T_IMP" 10), peak RSS $((IMP_RSS / 1024)) MB, $(mb "$IMP_WB") written, $IMP_ROWS rows"
fi
rm -f "$IMPDB" "$IMPDB-journal"
row "\`import\` of wtmp${ROWS_LABEL,,} ($ROWS records) into a fresh db" "≤ 10 s" "$IMP_CELL" "–" "–"

# ---------------------------------------------------------------- rotate
# DAYS such that about half the rows are older: from the median Login.
MEDIAN_LOGIN=$(sq "$IDX" 'SELECT Login FROM wtmp ORDER BY Login LIMIT 1 OFFSET (SELECT count(*) / 2 FROM wtmp)')
DAYS=$(python3 -c 'import sys,time; print(round((time.time() * 1e6 - int(sys.argv[1])) / 86400e6))' "$MEDIAN_LOGIN")
ROT_DIR="$WORK/rotate"
mkdir -p "$ROT_DIR"
ROT="$ROT_DIR/wtmp.db"
timeit rotate "$ONCE" 0 "sh -c $(q "cp $(q "$IDX") $(q "$ROT") && rm -f $(q "$ROT")-journal $(q "$ROT_DIR")/wtmp_*.db")" \
    "$QBIN rotate -f $(q "$ROT") -d $DAYS"
T_ROT=$(med rotate 0)
MOVED=0
for a in "$ROT_DIR"/wtmp_*.db; do
    [[ -f $a ]] && MOVED=$((MOVED + $(sq "$a" 'SELECT count(*) FROM wtmp')))
done
LEFT=$(sq "$ROT" 'SELECT count(*) FROM wtmp')
((MOVED > 0)) || die "rotate -d $DAYS moved no rows"
PER_ROW=$(python3 -c 'import sys; print("%.1f µs" % (float(sys.argv[1]) / int(sys.argv[2]) * 1e6))' "$T_ROT" "$MOVED")
row "\`rotate -d $DAYS\` moving $MOVED of $NROWS rows (copy of the indexed db)" "≤ 10 s" "$(fmt_s "$T_ROT") $(mark le "$T_ROT" 10) ($PER_ROW per row)" "–" "–"
rm -rf "$ROT_DIR"

# ---------------------------------------------------------------- size
PEER_SESS=$(python3 "$HELPER" utmp-sessions "$WTMP")
PEER_BPS=$(python3 -c 'import sys; print("%.0f" % (int(sys.argv[1])/int(sys.argv[2])))' "$(stat -c %s "$WTMP")" "$PEER_SESS")
row "bytes per session with indexes (file size ÷ rows)" "≤ 130" \
    "$BPS $(mark le "$BPS" 130) ($(mb "$SIZE") ÷ $NROWS rows; upstream file without indexes: $(python3 -c 'import sys; print("%.0f" % (int(sys.argv[1])/int(sys.argv[2])))' "$UP_SIZE" "$((NROWS - 1))"))" \
    "$PEER_BPS (wtmp file ÷ $PEER_SESS sessions)" "$(ratio "$BPS" "$PEER_BPS")"

# ---------------------------------------------------------------- concurrent writer
# NCONC single-row INSERTs, one sqlite3 process each with .timeout 5000, while a full
# `last` prints (restarted whenever it ends); the peer column is the same writes with no
# reader running.
CONC="$WORK/concurrent.db"
cp "$IDX" "$CONC"
step "concurrent writes: $NCONC INSERTs without a reader, then during full \`last\`"
IDLE_JSON=$(python3 "$HELPER" concurrent "$CONC" "$NCONC" sqlite3 --)
BUSY_JSON=$(python3 "$HELPER" concurrent "$CONC" "$NCONC" sqlite3 -- "$BIN" last -f "$CONC")
rm -f "$CONC" "$CONC-journal"
conc_cell() {
    python3 -c 'import json,sys
d=json.loads(sys.argv[1])
s="max %.0f ms, p99 %.0f ms, median %.0f ms, %d/%d failed" % (d["max_ms"], d["p99_ms"], d["median_ms"], d["failures"], d["n"])
if sys.argv[2] == "busy":
    s += " (%d/%d during a running last, %d last runs)" % (d["overlapped"], d["n"], d["reader_runs"])
    if d["errors"]: s += "; " + "; ".join(d["errors"]).replace("|", "\\|")
print(s)' "$1" "$2"
}
CONC_OK=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print("✓" if d["failures"] == 0 and d["max_ms"] <= 1000 else "✗")' "$BUSY_JSON")
CONC_RATIO=$(python3 -c 'import json,sys; a=json.loads(sys.argv[1]); b=json.loads(sys.argv[2]); print("%.2f× (max)" % (a["max_ms"]/b["max_ms"]))' "$BUSY_JSON" "$IDLE_JSON")
row "concurrent writer: $NCONC INSERTs (sqlite3, .timeout 5000) while a full \`last\` prints" "0 failures, max ≤ 1 s" \
    "$(conc_cell "$BUSY_JSON" busy) $CONC_OK" "same writes, no reader: $(conc_cell "$IDLE_JSON" idle)" "$CONC_RATIO"

# ---------------------------------------------------------------- notes
row "note: cold first write — first \`wtmpdb boot\` on a fresh copy of the upstream-schema db (creates the indexes)" \
    "–" "$(fmt_s "$T_COLD")" "–" "–"

# `last` before the first write: a read-only open never migrates, so an upstream database
# is read without our indexes. Bounded by a timeout.
step "last on the un-migrated upstream db (timeout ${UNMIG_TIMEOUT}s)"
read -r t _ _ rc < <(python3 "$HELPER" measure "$WORK/unmig-n10.log" -- timeout "$UNMIG_TIMEOUT" "$BIN" last -n 10 -f "$UPSTREAM_DB")
if ((rc == 124)); then UM_N10="> ${UNMIG_TIMEOUT} s (timed out)"; elif ((rc != 0)); then UM_N10="failed (exit $rc)"; else UM_N10=$(fmt_s "$t"); fi
read -r t _ wb rc < <(python3 "$HELPER" measure "$WORK/unmig-full.log" -- timeout "$UNMIG_TIMEOUT" "$BIN" last -f "$UPSTREAM_DB")
if ((rc == 124)); then UM_FULL="> ${UNMIG_TIMEOUT} s (timed out)"; elif ((rc != 0)); then UM_FULL="failed (exit $rc)"; else UM_FULL=$(fmt_s "$t"); fi
row "note: \`last\` on the upstream-schema db before any write (read-only open, no index)" "–" \
    "\`-n 10\`: $UM_N10; full: $UM_FULL" "–" "–"

# ---------------------------------------------------------------- output
TOOL=${HF:+hyperfine $("$HF" --version | cut -d' ' -f2)}
TOOL=${TOOL:-python loop (bench/helper.py)}
CMDLINE="bench/run.sh"
if [[ -n ${WTMPDB:-} ]]; then
    CMDLINE="WTMPDB=$(q "$WTMPDB") $CMDLINE"
    COMMIT="binary $(q "$WTMPDB"), $("$BIN" --version 2>/dev/null | head -n 1 || echo 'version unknown'); script at $COMMIT"
fi
((${#ORIG_ARGS[@]})) && CMDLINE+=" $(printf '%q ' "${ORIG_ARGS[@]}" | sed 's/ $//')"
printf '\nReproduce: `%s` (commit %s, %s)\n' "$CMDLINE" "$COMMIT" "$(date -u '+%Y-%m-%d %H:%M UTC')"
printf 'Load at start: %s; at end: %s; %s CPUs\n\n' "$LOAD_START" "$(uptime | sed 's/^ *//')" "$(nproc)"
printf '| operation on %s rows | target | ours | peer (util-linux `last` on the equivalent wtmp%s, where meaningful) | ratio |\n' "$ROWS_LABEL" "${ROWS_LABEL,,}"
printf '|---|---|---|---|---|\n'
printf '%s\n' "${TABLE[@]}"
printf '\nMedians (%s): %d runs for full-listing rows, %d for the short ones, %d for cold write/rotate/import; ours and peer interleaved run by run. ratio = ours ÷ peer wall medians (< 1: ours faster); CPU = mean user+system time per run, less sensitive to a shared machine than wall time. Data: %s sessions + %s boots (gen_db.py), %s legacy records (gen_wtmp.py), cached in %s. LC_ALL=C; TZ unset unless stated.\n' \
    "$TOOL" "$LONG" "$SHORT" "$ONCE" "$ROWS" "$BOOTS" "$ROWS" "$DATA"
