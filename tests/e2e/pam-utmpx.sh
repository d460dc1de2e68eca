#!/bin/bash
# utmp=utmpx through pamtester and an /etc/pam.d service: the session shows in who, utmpdump
# and util-linux last, in temporary utmp/wtmp files; a mirror that cannot write never fails
# the session; an unknown mirror name is logged and writes nothing.
source "$(dirname "$0")/common.sh"
require_root
in_private_mounts "$@"
need_packages pamtester sqlite3 python3 util-linux coreutils
for c in who utmpdump last; do
    command -v "$c" >/dev/null || fail "$c not installed"
done
find_module
make_tmp
capture_syslog

svc=wtmpdb-e2e-utmpx-$$
db=$TMP/wtmp.db
utmp=$TMP/utmp
wtmp=$TMP/wtmp
# glibc does not create the files.
: >"$utmp"
: >"$wtmp"
pam_service "$svc" <<EOT
session required $MODULE database=$db utmp=utmpx utmp_file=$utmp wtmp_file=$wtmp debug
EOT

# Open and close in one process: both records reach wtmp, utmp ends DEAD_PROCESS.
pamtester -I tty=pts/43 -I rhost=192.0.2.10 "$svc" root open_session close_session \
    || fail "pamtester open_session close_session"
utmpdump "$wtmp" 2>/dev/null >"$TMP/wtmp.txt"
grep -q '^\[7\] .*\[s/43\] \[root *\] \[pts/43 *\] \[192\.0\.2\.10 *\]' "$TMP/wtmp.txt" \
    || fail "wtmp login: $(cat "$TMP/wtmp.txt")"
grep -q '^\[8\] .*\[s/43\] \[ *\] \[pts/43 *\]' "$TMP/wtmp.txt" \
    || fail "wtmp logout: $(cat "$TMP/wtmp.txt")"
[ "$(wc -l <"$TMP/wtmp.txt")" = 2 ] || fail "wtmp: $(cat "$TMP/wtmp.txt")"
utmpdump "$utmp" 2>/dev/null | grep -q '^\[8\] .*\[pts/43 *\]' || fail "utmp not DEAD_PROCESS"
# last shows a logout within the current second as "still running".
sleep 1.1
last -f "$wtmp" >"$TMP/last.txt"
grep -E '^root +pts/43 +192\.0\.2\.10 .* - [0-9]{2}:[0-9]{2} ' "$TMP/last.txt" \
    || fail "last: $(cat "$TMP/last.txt")"
got=$(sql "$db" "SELECT User, TTY, RemoteHost, Logout >= Login FROM wtmp")
[ "$got" = "root|pts/43|192.0.2.10|1" ] || fail "row: $got"
expect_syslog "utmp=utmpx login line=pts/43 pid="
expect_syslog "utmp=utmpx logout line=pts/43 pid="
log "open+close ok"

# Open only: who shows the user (who does not check PIDs when given a file).
pamtester -I tty=pts/43 -I rhost=192.0.2.10 "$svc" root open_session || fail "open only"
who "$utmp" >"$TMP/who.txt"
grep -E '^root +pts/43 .*\(192\.0\.2\.10\)' "$TMP/who.txt" || fail "who: $(cat "$TMP/who.txt")"
# Close from another process: the database row is closed by the fallback and wtmp gets the
# logout, but the utmp entry carries the first pamtester's PID and is left alone.
pamtester -I tty=pts/43 -I rhost=192.0.2.10 "$svc" root close_session || fail "close only"
[ "$(sql "$db" "SELECT count(*) FROM wtmp WHERE Logout IS NULL")" = 0 ] || fail "row open"
utmpdump "$wtmp" 2>/dev/null | tail -n 1 | grep -q '^\[8\] .*\[pts/43 *\]' || fail "no logout"
who "$utmp" | grep -q '^root ' || fail "utmp entry of another PID was replaced"
log "separate processes ok"

# A mirror that cannot write (no utmps daemon here) and an unknown mirror name: the session
# is recorded and succeeds; the reasons are logged.
svc2=wtmpdb-e2e-utmps-$$
pam_service "$svc2" <<EOT
session required $MODULE database=$db utmp=utmps utmpd_socket=$TMP/none-u wtmpd_socket=$TMP/none-w
EOT
pamtester -I tty=pts/45 "$svc2" root open_session close_session || fail "utmps absent"
expect_syslog "utmp=utmps: login on line 'pts/45' not mirrored: .*not running"
svc3=wtmpdb-e2e-bogus-$$
pam_service "$svc3" <<EOT
session required $MODULE database=$db utmp=bogus utmp_file=$utmp wtmp_file=$wtmp
EOT
size=$(stat -c %s "$wtmp")
pamtester -I tty=pts/46 "$svc3" root open_session close_session || fail "utmp=bogus"
expect_syslog "unknown legacy mirror 'bogus'"
[ "$(stat -c %s "$wtmp")" = "$size" ] || fail "utmp=bogus wrote wtmp"
[ "$(sql "$db" "SELECT count(*) FROM wtmp WHERE TTY IN ('pts/45', 'pts/46')
                AND Logout IS NOT NULL")" = 2 ] || fail "rows of pts/45, pts/46"

log "PASS"
