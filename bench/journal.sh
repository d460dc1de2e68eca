#!/bin/sh
# What a journal event adds to a login, against Debian's real systemd-journald started (as
# root) in a mount namespace of its own (never the machine's /dev/log), and the export's
# throughput on a database of N rows.
#
#   bench/journal.sh [ROWS]       (as root; ROWS default 1000000)
set -eu
ROWS=${1:-1000000}
TOP=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$TOP/target}
WORK=$(mktemp -d)
trap 'kill "$JPID" 2>/dev/null || true; rm -rf "$WORK"' EXIT
mkdir -p "$WORK/journal"
printf '[Journal]\nStorage=volatile\nReadKMsg=no\nForwardToSyslog=no\nRateLimitBurst=0\nAudit=no\n' \
    > "$WORK/journald.conf"
unshare -m --propagation private sh -c "mount -t tmpfs tmpfs /run; \
    mkdir -p /run/systemd/journal /run/log/journal; \
    mount --bind '$WORK/journal' /run/log/journal; \
    mount --bind '$WORK/journald.conf' /etc/systemd/journald.conf; \
    exec /lib/systemd/systemd-journald" >/dev/null 2>&1 &
JPID=$!
SOCK=/proc/$JPID/root/run/systemd/journal/socket
while [ ! -S "$SOCK" ]; do sleep 0.05; done
cd "$TOP"
cargo build --release -q -p wtmpdb-cli -p wtmpdb --example journal_cost
"$TARGET/release/examples/journal_cost" "$SOCK" 2000
# What journal-upload sends per entry: the export format of the stored logins.
LOGIN=24db771a4e1946c881904742738b7639
DIR=$(ls -d "$WORK"/journal/*/)
entries=$(journalctl --directory="$DIR" MESSAGE_ID=$LOGIN -o export | grep -c '^__CURSOR=')
bytes=$(journalctl --directory="$DIR" MESSAGE_ID=$LOGIN -o export | wc -c)
gz=$(journalctl --directory="$DIR" MESSAGE_ID=$LOGIN -o export | gzip -6 | wc -c)
echo "journal export format: $entries login entries, $(( bytes / entries )) bytes each" \
    "($(( gz / entries )) gzipped)"
python3 bench/gen_db.py --out "$WORK/w.db" --rows "$ROWS" >/dev/null
"$TARGET/release/wtmpdb" export -f "$WORK/w.db" >/dev/null  # warm the cache
for format in json ecs; do
    lines=$("$TARGET/release/wtmpdb" export --format $format -f "$WORK/w.db" | wc -l)
    start=$(date +%s%N)
    "$TARGET/release/wtmpdb" export --format $format -f "$WORK/w.db" >/dev/null
    end=$(date +%s%N)
    ms=$(( (end - start) / 1000000 ))
    echo "export --format $format: $lines events from $ROWS rows in $ms ms" \
        "($(( lines * 1000 / (ms > 0 ? ms : 1) )) events/s)"
done
