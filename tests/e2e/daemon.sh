#!/bin/bash
# wtmpdbd end to end, with the third-party varlink client from PyPI: every method as root
# and as an unprivileged user (setpriv), private reads, socket activation with
# systemd-socket-activate and the idle exit, Type=notify readiness, 1,000 idle connections,
# and a SIGKILL right after a Login reply.
source "$(dirname "$0")/common.sh"
require_root
need_packages python3 sqlite3 util-linux pamtester
make_tmp

# systemd-socket-activate comes with Debian's systemd package.
if ! command -v systemd-socket-activate >/dev/null; then
    need_packages systemd
fi
command -v systemd-socket-activate >/dev/null || fail "systemd-socket-activate is missing"

# The varlink package, into a directory every user can read (an unprivileged client runs it
# too); pure Python, so any python3 runs it.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
if ! "$PY" -c 'import varlink' 2>/dev/null; then
    pip_ok=0
    for pip in "$PY -m pip" "python3 -m pip" pip3; do
        if $pip install -q --disable-pip-version-check --target "$TMP/pylib" varlink >/dev/null 2>&1; then
            pip_ok=1
            break
        fi
    done
    if [ "$pip_ok" != 1 ]; then
        [ "${CI:-}" = true ] && fail "cannot install the varlink package from PyPI, and CI=true requires it"
        echo "SKIP: $E2E_NAME: the varlink package cannot be installed"
        exit 0
    fi
    chmod -R a+rX "$TMP/pylib"
    export PYTHONPATH=$TMP/pylib
fi
CLIENT=$TMP/daemon_client.py
cp "$REPO/tests/e2e/daemon_client.py" "$CLIENT"
chmod 0755 "$CLIENT"
client() { "$PY" "$CLIENT" "$@"; }
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups env PYTHONPATH="${PYTHONPATH:-}" "$PY" "$CLIENT" "$@"; }

t=${CARGO_TARGET_DIR:-$REPO/target}
DAEMON=$t/release/wtmpdbd
if [ ! -x "$DAEMON" ]; then
    log "building wtmpdbd"
    (cd "$REPO" && cargo build --release -q -p wtmpdbd)
fi
[ -x "$DAEMON" ] || fail "no daemon at $DAEMON"

# Starts the daemon on $1 (socket) with database $2 and more options; sets DPID.
start_daemon() {
    local sock=$1 db=$2
    shift 2
    "$DAEMON" --socket "$sock" --database "$db" "$@" 2>>"$TMP/daemon.log" &
    DPID=$!
    on_exit "kill -9 $DPID 2>/dev/null || true"
    # Twice in CI (2026-12-07) a daemon of the SIGKILL rounds bound its socket only after
    # about 5 s, then served; not seen anywhere else. A start past a second is reported with
    # what the daemon was doing then, and fails past 30 s.
    local t0 slow=
    t0=$(now_ms)
    until [ -S "$sock" ]; do
        if [ -z "$slow" ] && [ $(($(now_ms) - t0)) -ge 1000 ]; then
            slow=1
            log "the daemon has not bound $sock after 1 s: $(daemon_state "$DPID" "$sock")"
        fi
        [ $(($(now_ms) - t0)) -lt 30000 ] ||
            fail "the daemon did not bind $sock in 30 s: $(daemon_state "$DPID" "$sock")"
        sleep 0.05
    done
    [ -z "$slow" ] || log "the daemon bound $sock after $(($(now_ms) - t0)) ms"
}

# What a daemon that has not bound its socket is doing: its state, where it waits in the
# kernel, its threads, what lies in the socket's directory, and the log.
daemon_state() {
    local pid=$1 sock=$2
    echo
    grep -E '^(State|Threads):' "/proc/$pid/status" 2>&1 || echo "pid $pid gone"
    echo "wchan: $(cat "/proc/$pid/wchan" 2>&1)"
    cat "/proc/$pid/stack" 2>&1 | head -20
    for t in /proc/"$pid"/task/*; do
        echo "thread ${t##*/}: $(cat "$t/comm" 2>&1) $(cat "$t/wchan" 2>&1)"
    done
    ls -la --time-style=full-iso "$(dirname "$sock")" 2>&1
    date --iso-8601=ns
    echo "log:"
    tail -20 "$TMP/daemon.log"
}

# --- every method as root, then as nobody ---------------------------------------------
sock=$TMP/run/wtmpdb/socket
db=$TMP/lib/wtmp.db
start_daemon "$sock" "$db"
[ "$(stat -c %a "$sock")" = 666 ] || fail "socket mode $(stat -c %a "$sock")"
[ "$(stat -c %a "$(dirname "$sock")")" = 755 ] || fail "socket directory mode"
client root "$sock" "$db" || fail "root client"
[ "$(stat -c %a "$db")" = 600 ] || fail "database mode $(stat -c %a "$db"), expected 600"
as_nobody user "$sock" || fail "unprivileged client"
# The unprivileged user cannot read the file itself: only through the daemon.
if setpriv --reuid=65534 --regid=65534 --clear-groups cat "$db" >/dev/null 2>&1; then
    fail "nobody reads the database file directly"
fi
log "every method as root and as nobody: ok"

# --- the PAM module and the wtmpdb command through the daemon ---------------------------
find_module
CLI=$(dirname "$MODULE")/wtmpdb
[ -x "$CLI" ] || (cd "$REPO" && cargo build --release -q -p wtmpdb-cli)
svc=wtmpdb-e2e-daemon-$$
pam_service "$svc" <<EOT
session required $MODULE database=varlink socket=$sock debug
EOT
pamtester -I tty=pts/21 -I rhost=192.0.2.21 "$svc" root open_session close_session \
    || fail "pamtester through the daemon"
got=$(sql "$db" "SELECT User, TTY, RemoteHost, Service, Logout >= Login FROM wtmp WHERE TTY = 'pts/21'")
[ "$got" = "root|pts/21|192.0.2.21|$svc|1" ] || fail "PAM row through the daemon: '$got'"
# The same with database= unset: the daemon answers, so it takes the session.
svc_default=wtmpdb-e2e-daemon-default-$$
pam_service "$svc_default" <<EOT
session required $MODULE socket=$sock
EOT
pamtester -I tty=pts/22 "$svc_default" root open_session close_session || fail "pamtester, database unset"
[ "$(sql "$db" "SELECT count(*) FROM wtmp WHERE TTY = 'pts/22' AND Logout IS NOT NULL")" = 1 ] \
    || fail "database unset: the session did not go to the daemon: $(sql "$db" "SELECT * FROM wtmp") $(tail -5 "$TMP/daemon.log")"
# database=varlink with no daemon there: the login fails, nothing is written elsewhere.
svc_forced=wtmpdb-e2e-daemon-forced-$$
pam_service "$svc_forced" <<EOT
session required $MODULE database=varlink socket=$TMP/no-daemon/socket
EOT
if pamtester "$svc_forced" root open_session 2>/dev/null; then
    fail "database=varlink without a daemon succeeded"
fi
# An unprivileged `wtmpdb last` reads the root-only database through the daemon.
out=$(setpriv --reuid=65534 --regid=65534 --clear-groups env WTMPDB_SOCKET="$sock" "$CLI" last -f varlink) \
    || fail "unprivileged last through the daemon: $out"
echo "$out" | grep -q '^root *pts/21 *192.0.2.21' || fail "last through the daemon: $out"
out=$(setpriv --reuid=65534 --regid=65534 --clear-groups env WTMPDB_SOCKET="$sock" "$CLI" last -f varlink -j) \
    || fail "unprivileged last -j through the daemon"
echo "$out" | "$PY" -c 'import json,sys; d=json.load(sys.stdin); assert any(e["tty"]=="pts/21" for e in d["entries"])' \
    || fail "last -j through the daemon: $out"
# import has no daemon method: it refuses -f varlink (no file named varlink appears); boot,
# shutdown, who, users, lastlog and rotate go through the daemon.
(cd "$TMP" && "$CLI" import -f varlink /dev/null 2>"$TMP/err") && fail "import -f varlink succeeded"
grep -q "wtmpdbd has no method for import" "$TMP/err" || fail "import -f varlink: $(cat "$TMP/err")"
[ ! -e "$TMP/varlink" ] || fail "import -f varlink created a file"
open_boots() { sql "$db" "SELECT count(*) FROM wtmp WHERE Type = 1 AND TTY = '~' AND Logout IS NULL"; }
before=$(open_boots)
(cd "$TMP" && WTMPDB_SOCKET="$sock" "$CLI" boot -f varlink -q) || fail "boot -f varlink"
[ "$(open_boots)" = $((before + 1)) ] \
    || fail "boot -f varlink: no new boot row in the daemon's database: $(sql "$db" "SELECT * FROM wtmp WHERE Type = 1")"
[ ! -e "$TMP/varlink" ] || fail "boot -f varlink created a file"
out=$(setpriv --reuid=65534 --regid=65534 --clear-groups env WTMPDB_SOCKET="$sock" "$CLI" who -f varlink --no-logind) \
    || fail "unprivileged who through the daemon: $out"
out=$(setpriv --reuid=65534 --regid=65534 --clear-groups env WTMPDB_SOCKET="$sock" "$CLI" lastlog -f varlink) \
    || fail "unprivileged lastlog through the daemon: $out"
echo "$out" | grep -q '^root *pts/2[12]' || fail "lastlog through the daemon: $out"
WTMPDB_SOCKET="$sock" "$CLI" shutdown -f varlink || fail "shutdown -f varlink"
[ "$(sql "$db" "SELECT Logout IS NOT NULL FROM wtmp WHERE Type = 1 ORDER BY Login DESC LIMIT 1")" = 1 ] \
    || fail "shutdown -f varlink did not close the newest boot row"
[ "$(open_boots)" = "$before" ] || fail "shutdown -f varlink closed more than the newest boot row"
out=$(WTMPDB_SOCKET="$sock" "$CLI" rotate -f varlink) || fail "rotate -f varlink: $out"
log "PAM module (database=varlink and unset), boot and shutdown, unprivileged wtmpdb last, who and lastlog through the daemon: ok"
kill "$DPID"
wait "$DPID" 2>/dev/null || true

# --- private reads: --readers root, then a group --------------------------------------
sock2=$TMP/private/socket
db2=$TMP/private-db/wtmp.db
start_daemon "$sock2" "$db2" --readers root
as_nobody denied "$sock2" || fail "nobody reads with --readers root"
[ "$(stat -c %a "$db2")" = 600 ] || fail "private database mode $(stat -c %a "$db2")"
kill "$DPID"
wait "$DPID" 2>/dev/null || true

sock3=$TMP/group/socket
db3=$TMP/group-db/wtmp.db
start_daemon "$sock3" "$db3" --readers 65534
[ "$(stat -c '%a %g' "$db3")" = "640 65534" ] || fail "group database: $(stat -c '%a %g' "$db3")"
setpriv --reuid=65534 --regid=65534 --clear-groups env PYTHONPATH="${PYTHONPATH:-}" "$PY" -c '
import sys, varlink
w = varlink.Client(address="unix:" + sys.argv[1]).open("org.openSUSE.wtmpdb")
assert w.ReadAll()["Success"]
' "$sock3" || fail "the readers group cannot read"
setpriv --reuid=65533 --regid=65533 --clear-groups env PYTHONPATH="${PYTHONPATH:-}" "$PY" "$CLIENT" denied "$sock3" \
    || fail "a user outside the readers group reads"
kill "$DPID"
wait "$DPID" 2>/dev/null || true
log "private reads (root, group): ok"

# --- SIGKILL right after a Login reply: the row is there ------------------------------
sock4=$TMP/kill/socket
db4=$TMP/kill-db/wtmp.db
for round in $(seq 10); do
    start_daemon "$sock4" "$db4"
    id=$(client login "$sock4" "kill$round" | { read -r id && kill -9 "$DPID" && echo "$id"; })
    wait "$DPID" 2>/dev/null || true
    [ -n "$id" ] || fail "round $round: no ID"
    got=$(sql "$db4" "SELECT User FROM wtmp WHERE ID = $id")
    [ "$got" = "kill$round" ] || fail "round $round: row $id lost after SIGKILL (got '$got')"
done
log "SIGKILL right after the Login reply, 10 rounds: nothing lost"

# --- socket activation, readiness, idle exit ------------------------------------------
asock=$TMP/act/socket
mkdir -p "$(dirname "$asock")"
systemd-socket-activate -l "$asock" "$DAEMON" -s --database "$TMP/act-db/wtmp.db" --idle-exit 1 \
    2>>"$TMP/daemon.log" &
APID=$!
on_exit "kill -9 $APID 2>/dev/null || true"
for i in $(seq 100); do [ -S "$asock" ] && break; sleep 0.05; done
[ -S "$asock" ] || fail "systemd-socket-activate did not listen"
# A connection held open past the idle time keeps the daemon.
"$PY" - "$asock" <<'EOF' || fail "call through socket activation"
import sys, time, varlink
c = varlink.Client(address="unix:" + sys.argv[1])
w = c.open("org.openSUSE.wtmpdb")
assert w.Ping() == {"Alive": True}
time.sleep(2.0)
assert w.Ping() == {"Alive": True}, "closed while a connection was open"
EOF
t0=$(now_ms)
while kill -0 "$APID" 2>/dev/null; do
    [ $(($(now_ms) - t0)) -lt 5000 ] || fail "no idle exit within 5 s"
    sleep 0.1
done
wait "$APID" 2>/dev/null && rc=0 || rc=$?
[ "$rc" = 0 ] || fail "idle exit status $rc"
log "socket activation and the idle exit after $(($(now_ms) - t0)) ms: ok"

# -s without a socket passed is an error, not a daemon listening elsewhere.
if "$DAEMON" -s --socket "$TMP/none/socket" --database "$TMP/none.db" 2>/dev/null; then
    fail "-s without LISTEN_FDS started"
fi

# Type=notify: READY=1 on NOTIFY_SOCKET once listening.
nsock=$TMP/notify.sock
"$PY" - "$nsock" "$TMP/notified" <<'EOF' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
open(sys.argv[2] + ".ready", "w").close()
s.settimeout(10)
open(sys.argv[2], "wb").write(s.recv(4096))
EOF
NPID=$!
for i in $(seq 50); do [ -e "$TMP/notified.ready" ] && break; sleep 0.1; done
NOTIFY_SOCKET=$nsock start_daemon "$TMP/n/socket" "$TMP/n-db/wtmp.db"
wait "$NPID" || fail "no notification"
grep -qx 'READY=1' "$TMP/notified" || fail "notification: $(cat "$TMP/notified")"
kill "$DPID"
wait "$DPID" 2>/dev/null || true
log "READY=1 on NOTIFY_SOCKET: ok"

# --- one user cannot lock root out: per-user and total bounds -------------------------
start_daemon "$TMP/cap/socket" "$TMP/cap-db/wtmp.db" --max-per-user 5 --max-connections 8
mkdir -m 0777 "$TMP/flags"
setpriv --reuid=65534 --regid=65534 --clear-groups "$PY" - "$TMP/cap/socket" "$TMP/flags/cap" <<'PY' &
import os, socket, sys, time
sock, flag = sys.argv[1], sys.argv[2]
conns = []
for i in range(5):
    s = socket.socket(socket.AF_UNIX); s.connect(sock); conns.append(s)
    s.sendall(b'{"method":"org.openSUSE.wtmpdb.Ping"}\0')
    assert b'"Alive":true' in s.recv(4096), i
s = socket.socket(socket.AF_UNIX); s.connect(sock)
s.settimeout(5)
reply = s.recv(4096)
assert b"Too many connections of uid 65534" in reply, reply
assert s.recv(4096) == b"", "not closed"
open(flag + ".held", "w").close()
for _ in range(100):
    if os.path.exists(flag + ".done"):
        break
    time.sleep(0.05)
PY
HPID=$!
for i in $(seq 100); do [ -e "$TMP/flags/cap.held" ] && break; sleep 0.05; done
[ -e "$TMP/flags/cap.held" ] || { wait "$HPID"; fail "per-user bound"; }
"$PY" - "$TMP/cap/socket" <<'PY' || fail "root refused beside another user's connections"
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(b'{"method":"org.openSUSE.wtmpdb.Ping"}\0')
assert b'"Alive":true' in s.recv(4096)
PY
touch "$TMP/flags/cap.done"
wait "$HPID" || fail "the per-user client failed"
kill "$DPID"
wait "$DPID" 2>/dev/null || true
log "per-user connection bound, root served beside it: ok"

# --- 1,000 idle connections -----------------------------------------------------------
start_daemon "$TMP/idle/socket" "$TMP/idle-db/wtmp.db" --idle-timeout 120 --max-per-user 2000
client idle "$TMP/idle/socket" "$DPID" 1000 "${DAEMON_MAX_RSS_KIB:-20480}" \
    || fail "1000 idle connections"
kill "$DPID"
wait "$DPID" 2>/dev/null || true

# --- the installation enables the daemon: it owns the database by default --------------
root=$TMP/installed
(cd "$REPO" && make -s install-systemd DESTDIR="$root" UNITDIR=/lib/systemd/system \
    TMPFILESDIR=/usr/lib/tmpfiles.d) || fail "make install-systemd"
[ "$(readlink "$root/etc/systemd/system/sockets.target.wants/wtmpdbd.socket")" = /lib/systemd/system/wtmpdbd.socket ] \
    || fail "make install-systemd did not enable wtmpdbd.socket"
state=$(systemctl --root="$root" is-enabled wtmpdbd.socket 2>&1) || true
[ "$state" = enabled ] || fail "systemctl --root is-enabled wtmpdbd.socket: $state"
grep -q '^ReadWritePaths=/var/lib/wtmpdb -/var/log$' "$root/lib/systemd/system/wtmpdbd.service" \
    || fail "the unit cannot write Debian's /var/log/wtmp.db"
log "make install-systemd enables wtmpdbd.socket: ok"

log "all daemon checks passed"
