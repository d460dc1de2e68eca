#!/bin/bash
# Faults, through pamtester with the module `optional` before pam_permit: the session still
# opens within the time bound (about 1 s plus slack), the module's reason is in the captured
# syslog, and with the module `required` the stack reports PAM_SYSTEM_ERR ("System error").
# Cases: read-only file system (tmpfs remounted ro), full file system (64 KiB tmpfs), a full
# file system whose spool has its reserve (2 MB tmpfs, filled after `wtmpdb boot`). And a
# lock held by another process (sqlite3 in BEGIN EXCLUSIVE), which is not a failure: the
# sessions go to the spool at once, and the first session after the lock merges them.
source "$(dirname "$0")/common.sh"
require_root
in_private_mounts "$@"
need_packages pamtester sqlite3 python3
find_module
make_tmp
capture_syslog

BOUND_MS=2500
svc=wtmpdb-e2e-fault-$$
svc_req=wtmpdb-e2e-freq-$$

# Points both services at database $1.
stacks() {
    rm -f "/etc/pam.d/$svc" "/etc/pam.d/$svc_req"
    printf 'session optional %s database=%s\nsession required pam_permit.so\n' "$MODULE" "$1" \
        >"/etc/pam.d/$svc"
    printf 'session required %s database=%s\n' "$MODULE" "$1" >"/etc/pam.d/$svc_req"
}
on_exit "rm -f '/etc/pam.d/$svc' '/etc/pam.d/$svc_req'"

# The login succeeds within the bound, the required stack fails with System error, and the
# syslog has $2.
check_fault() {
    local name=$1 msg=$2 t
    : >"$SYSLOG"
    t=$(now_ms)
    pamtester -I tty=pts/3 "$svc" root open_session >/dev/null || fail "$name: optional login failed"
    t=$(($(now_ms) - t))
    [ "$t" -le "$BOUND_MS" ] || fail "$name: login took $t ms"
    if pamtester "$svc_req" root open_session 2>"$TMP/err"; then
        fail "$name: required stack succeeded"
    fi
    grep -q "System error" "$TMP/err" || fail "$name: required stack: $(cat "$TMP/err")"
    expect_syslog "pam_wtmpdb($svc:session): .*$msg"
    log "$name: ok (login $t ms): $(grep -m1 "$svc:session" "$SYSLOG" | sed 's/^<[0-9]*>//')"
}

# Read-only file system: a database that was writable before.
mkdir "$TMP/ro"
mount -t tmpfs -o size=1m tmpfs "$TMP/ro"
on_exit "umount -l '$TMP/ro'"
stacks "$TMP/ro/wtmp.db"
pamtester "$svc" root open_session close_session >/dev/null || fail "ro: setup"
mount -o remount,ro "$TMP/ro"
check_fault read-only "readonly database"

# Full file system. (A database that already has room in its pages and its persistent journal
# keeps accepting rows on a full file system; a new one cannot be created.)
mkdir "$TMP/full"
mount -t tmpfs -o size=64k tmpfs "$TMP/full"
on_exit "umount -l '$TMP/full'"
dd if=/dev/zero of="$TMP/full/filler" bs=4k 2>/dev/null || true
stacks "$TMP/full/wtmp.db"
check_fault full "database or disk is full"

# Full file system, with the spool's reserve that `wtmpdb boot` fills: sessions go on until the
# database has no room, then the login and logout go into slots of the reserve (acknowledged,
# one syslog line each); with room again, the next session merges them, once.
mkdir "$TMP/reserve"
mount -t tmpfs -o size=2m tmpfs "$TMP/reserve"
on_exit "umount -l '$TMP/reserve'"
db=$TMP/reserve/wtmp.db
"$(dirname "$MODULE")/wtmpdb" boot -q -f "$db" || fail "reserve: boot"
[ "$(ls "$db-spool/.reserve" | wc -l)" = 32 ] || fail "reserve: not filled by boot"
stacks "$db"
pamtester "$svc_req" root open_session close_session >/dev/null || fail "reserve: setup"
{ dd if=/dev/zero of="$TMP/reserve/filler" bs=4k; dd if=/dev/zero bs=1 >>"$TMP/reserve/filler"; } \
    2>/dev/null || true
: >"$SYSLOG"
spooled=
for i in $(seq 1 300); do
    pamtester -I tty=pts/$((100 + i)) "$svc_req" root open_session close_session >/dev/null \
        || fail "reserve: session $i failed on the full disk: $(cat "$SYSLOG")"
    if grep -q "disk full: record spooled into the reserve" "$SYSLOG"; then
        spooled=$i
        break
    fi
done
[ -n "$spooled" ] || fail "reserve: the disk never filled"
tty=pts/$((100 + spooled))
expect_syslog "pam_wtmpdb($svc_req:session): disk full: record spooled into the reserve, 30 slots left"
[ "$(ls "$db-spool" | wc -l)" = 2 ] || fail "reserve: spool: $(ls -la "$db-spool")"
log "reserve: ok (session $spooled spooled into the reserve)"
rm -f "$TMP/reserve/filler"
: >"$SYSLOG"
pamtester -I tty=pts/99 "$svc_req" root open_session close_session >/dev/null || fail "reserve: after"
expect_syslog "pam_wtmpdb($svc_req:session): Merged the spool: 1 logins, 1 logouts"
[ "$(sql "$db" "SELECT count(*) FROM wtmp WHERE TTY = '$tty' AND Logout IS NOT NULL")" = 1 ] \
    || fail "reserve: the spooled session is not in the table once"
[ "$(ls "$db-spool/.reserve" | wc -l)" = 32 ] || fail "reserve: not filled again"
log "reserve: merged, once; the reserve filled again"

# Locked: another process holds an exclusive transaction for longer than the bound.
stacks "$TMP/locked.db"
pamtester "$svc" root open_session close_session >/dev/null || fail "locked: setup"
mkfifo "$TMP/hold"
(sqlite3 "$TMP/locked.db" <"$TMP/hold" >/dev/null 2>&1) &
holder=$!
exec 4>"$TMP/hold"
echo "BEGIN EXCLUSIVE; INSERT INTO wtmp (Type, User) VALUES (0, 'lock');" >&4
sleep 0.3
: >"$SYSLOG"
t=$(now_ms)
pamtester -I tty=pts/5 "$svc_req" root open_session close_session >/dev/null \
    || fail "locked: the required stack failed"
t=$(($(now_ms) - t))
[ "$t" -le 500 ] || fail "locked: open+close took $t ms"
expect_syslog "pam_wtmpdb($svc_req:session): Database busy: login kept in the spool"
expect_syslog "pam_wtmpdb($svc_req:session): Database busy: logout of .* kept in the spool"
[ "$(ls "$TMP/locked.db-spool" | wc -l)" = 2 ] || fail "locked: spool: $(ls -la "$TMP/locked.db-spool")"
[ "$(stat -c %a "$TMP/locked.db-spool")" = 700 ] || fail "locked: spool mode"
log "locked: ok (open+close $t ms, both spooled)"
exec 4>&-
wait "$holder" || true

# Released: the next session merges the spool, then records itself.
: >"$SYSLOG"
pamtester "$svc" root open_session close_session >/dev/null || fail "after lock"
expect_syslog "pam_wtmpdb($svc:session): Merged the spool: 1 logins, 1 logouts"
[ "$(ls "$TMP/locked.db-spool" | wc -l)" = 0 ] || fail "after lock: spool not emptied"
[ "$(sql "$TMP/locked.db" "SELECT count(*) FROM wtmp WHERE Logout IS NOT NULL AND User = 'root'")" = 3 ] \
    || fail "after lock: rows"
[ "$(sql "$TMP/locked.db" "SELECT count(*) FROM wtmp WHERE TTY = 'pts/5' AND Logout IS NOT NULL")" = 1 ] \
    || fail "after lock: the spooled session"
log "PASS"
