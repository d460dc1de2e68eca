#!/usr/bin/env bash
# The sshd demo (docker/demo.sh sshd) builds and runs, and shows the ssh login in
# `wtmpdb who` while it lasts, in `wtmpdb last` after it, and the wrong password in
# `wtmpdb lastb`.
source "$(dirname "$0")/common.sh"
require_root
make_tmp
bash "$REPO/docker/demo.sh" sshd >"$TMP/demo.txt" 2>&1 || { cat "$TMP/demo.txt" >&2; fail "docker/demo.sh sshd"; }
cat "$TMP/demo.txt"
section() { awk -v c="\$ $1" '$0 == c { on = 1; next } /^\$ / { on = 0 } on' "$TMP/demo.txt"; }
section "wtmpdb who" | grep -q '^demo .*127\.0\.0\.1' || fail "the demo's wtmpdb who does not show the ssh login"
section "wtmpdb last -x" | grep -q '^demo .*127\.0\.0\.1' || fail "the demo's wtmpdb last does not show the ssh login"
section "wtmpdb lastb" | grep -q '^demo .*127\.0\.0\.1' || fail "the demo's wtmpdb lastb does not show the wrong password"
log "PASS"
