#!/bin/bash
# pamtester through an /etc/pam.d service naming the freshly built module: open+close writes
# one row with login and logout; options and items as documented; syslog messages captured.
source "$(dirname "$0")/common.sh"
require_root
in_private_mounts "$@"
need_packages pamtester sqlite3 python3
find_module
make_tmp
capture_syslog

svc=wtmpdb-e2e-$$
db=$TMP/sub/dir/wtmp.db
pam_service "$svc" <<EOT
session required $MODULE database=$db debug bogus_opt
EOT

pamtester -I tty=pts/9 -I rhost=192.0.2.7 "$svc" root open_session close_session \
    || fail "pamtester open_session close_session"
got=$(sql "$db" "SELECT Type, User, TTY, RemoteHost, Service, Login > 1700000000000000,
                 Logout >= Login FROM wtmp")
[ "$got" = "3|root|pts/9|192.0.2.7|$svc|1|1" ] || fail "row: $got"
log "row ok: $got"

expect_syslog "pam_wtmpdb($svc:session): Unknown option: bogus_opt"
expect_syslog "tty=pts/9"
expect_syslog "rhost(PAM_RHOST)=192.0.2.7"
expect_syslog "id=1"

# Unknown user: refused by the module, nothing written.
if pamtester "$svc" no-such-user-wtmpdb open_session 2>"$TMP/err"; then
    fail "unknown user accepted"
fi
grep -q "User not known" "$TMP/err" || fail "unknown user: $(cat "$TMP/err")"

# Close in a new process: the logout fallback closes the row opened by another process.
pamtester -I tty=/dev/pts/10 "$svc" root open_session || fail "open pts/10"
sql "$db" "SELECT count(*) FROM wtmp WHERE TTY = 'pts/10' AND Logout IS NULL" | grep -qx 1 \
    || fail "pts/10 not open"
pamtester -I tty=/dev/pts/10 "$svc" root close_session || fail "close pts/10"
sql "$db" "SELECT count(*) FROM wtmp WHERE TTY = 'pts/10' AND Logout IS NOT NULL" | grep -qx 1 \
    || fail "fallback did not close pts/10"
expect_syslog "closed open session 2 of user 'root', tty 'pts/10'"

# skip_if: PAM_IGNORE, so pam_permit decides; no row.
svc2=wtmpdb-e2e-skip-$$
pam_service "$svc2" <<EOT
session [ignore=ignore default=bad] $MODULE database=$db skip_if=sshd,$svc2
session required pam_permit.so
EOT
pamtester "$svc2" root open_session close_session || fail "skip_if"
[ "$(sql "$db" "SELECT count(*) FROM wtmp WHERE Service = '$svc2'")" = 0 ] || fail "skip wrote"

# A logout whose database cannot be opened any more logs the failure, and in debug mode no
# row ID: the module logs the ID only once the database is open, so the login's is the only
# one. (pam_exec replaces the database by a directory between open and close.)
svc3=wtmpdb-e2e-closefail-$$
db3=$TMP/closefail.db
printf '#!/bin/sh\nrm -f "$1"\nmkdir "$1"\n' >"$TMP/break-db"
chmod 0755 "$TMP/break-db"
pam_service "$svc3" <<EOT
session optional pam_exec.so type=close_session $TMP/break-db $db3
session required $MODULE database=$db3 debug
EOT
: >"$SYSLOG"
if pamtester -I tty=pts/11 "$svc3" root open_session close_session 2>"$TMP/err"; then
    fail "close with an unopenable database succeeded"
fi
expect_syslog "pam_wtmpdb($svc3:session): Cannot create/open database"
n=$(grep -c "pam_wtmpdb($svc3:session): id=" "$SYSLOG" || true)
[ "$n" = 1 ] || fail "close with an unopenable database: $n lines with id= (only the login's expected)"

log "PASS"
