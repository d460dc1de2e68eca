#!/usr/bin/env bash
# Builds wtmpdb, records a boot and a few sessions into a temporary database (nothing on
# the system is touched) and prints `wtmpdb last` for it.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin wtmpdb --example demo
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
target=${CARGO_TARGET_DIR:-target}
"$target/release/examples/demo" "$dir/wtmp.db"
"$target/release/wtmpdb" last -f "$dir/wtmp.db"
