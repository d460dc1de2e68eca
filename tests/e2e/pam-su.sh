#!/bin/bash
# `su - USER -c true` as root through su's real PAM stack with the module added: the session
# su opens and closes (in one process, around the command) becomes one row with logout.
source "$(dirname "$0")/common.sh"
require_root
need_packages util-linux login sqlite3
find_module
make_tmp

user=wtmpdbe2e
ensure_user "$user"
db=$TMP/wtmp.db

# util-linux su uses the service "su-l" for a login shell (`su -`), "su" otherwise; both get
# the module appended to their existing stack, restored on exit.
for svc in su su-l; do
    if [ -e "/etc/pam.d/$svc" ]; then
        orig=$(cat "/etc/pam.d/$svc")
    else
        orig="@include su"
    fi
    # Not a pipeline: pam_replace must run in this shell to register its restore step.
    printf '%s\nsession optional %s database=%s\n' "$orig" "$MODULE" "$db" >"$TMP/$svc.new"
    pam_replace "$svc" <"$TMP/$svc.new"
done

start=$(now_ms)
su - "$user" -c true </dev/null || fail "su - $user -c true"
su "$user" -c true </dev/null || fail "su $user -c true"
log "su took $(($(now_ms) - start)) ms for two sessions"

got=$(sql "$db" "SELECT User, Service, Logout >= Login FROM wtmp ORDER BY ID")
want="$user|su-l|1
$user|su|1"
[ "$got" = "$want" ] || fail "rows: $got"
log "rows ok: $(echo "$got" | tr '\n' ' ')"
log "PASS"
