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

# util-linux su uses the service "su-l" for a login shell (`su -`), "su" otherwise; Debian's
# su-l just includes su. The module is appended to su (and to su-l only if that does not
# include su, else su-l sessions would be recorded twice); originals are restored on exit.
add_module() {
    # Not a pipeline: pam_replace must run in this shell to register its restore step.
    { cat "/etc/pam.d/$1"; printf 'session optional %s database=%s\n' "$MODULE" "$db"; } \
        >"$TMP/$1.new"
    pam_replace "$1" <"$TMP/$1.new"
}
[ -e /etc/pam.d/su ] || fail "no /etc/pam.d/su"
add_module su
if [ -e /etc/pam.d/su-l ] && ! grep -Eq '^[[:space:]]*(@include|session[[:space:]]+include)[[:space:]]+su[[:space:]]*$' /etc/pam.d/su-l; then
    add_module su-l
fi

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
