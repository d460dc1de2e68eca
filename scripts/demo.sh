#!/usr/bin/env bash
# Builds wtmpdb and pam_wtmpdb.so, then, with a temporary database and a temporary PAM
# service directory (nothing on the system is touched, no root needed):
#   - records a boot and two sessions dated after 2038 and 2106 through the library,
#   - logs in and out once, and logs in once more, through the real libpam and the module,
# and prints `wtmpdb last -F` (full dates, so the years after 2038 and 2106 show) for that
# database, which is kept for a look afterwards (each run starts it afresh).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p wtmpdb -p wtmpdb-cli -p pam_wtmpdb --lib --bins --examples
target=${CARGO_TARGET_DIR:-target}
release=$(cd "$target/release" && pwd)
dir=${TMPDIR:-/tmp}/wtmpdb-demo
rm -rf "$dir"
mkdir -p "$dir"
db=$dir/wtmp.db
"$release/examples/demo" "$db"
"$release/examples/pam-session" "$release/libpam_wtmpdb.so" "$db" pts/7 192.0.2.10
"$release/examples/pam-session" "$release/libpam_wtmpdb.so" "$db" /dev/pts/8 2001:db8::8 --stay
"$release/wtmpdb" last -F -f "$db"
echo
echo "The database stays for a look: $release/wtmpdb last -f $db"
