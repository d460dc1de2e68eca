#!/usr/bin/env bash
# The real client of libwtmpdb.so.0: Debian's own sshd. In a Debian sid container with
# Debian's openssh-server (its sshd-session links libwtmpdb.so.0) and Debian's wtmpdb tools,
# an ssh login and logout (key authentication, sshd on 127.0.0.1) is recorded first by
# Debian's library, then, once ours is installed in /usr/local/lib (which the dynamic
# linker then prefers), by ours. Both rows
# must show the user, the tty, the remote host 127.0.0.1 and login and logout times within
# the session, look the same, and read the same in Debian's `wtmpdb last` and in ours.
#
# Needs root, docker.io and debootstrap (installed if missing), and the Debian archive
# through the mirror of this machine's apt sources. Takes a minute or two.
source "$(dirname "$0")/common.sh"
source "$(dirname "$0")/lib/sid.sh"
require_root
need_packages docker.io debootstrap
make_tmp

log "building the library and wtmpdb"
(cd "$REPO" && cargo build --release -q -p libwtmpdb -p wtmpdb-cli)
T=${CARGO_TARGET_DIR:-$REPO/target}/release
[ -f "$T/libwtmpdb_c.so" ] && [ -x "$T/wtmpdb" ] || fail "no release build in $T"

start_dockerd
IMAGE=wtmpdb-e2e-sid:$$
C=wtmpdb-e2e-sshd-$$
sid_image "$IMAGE"
sid_container "$C" "$IMAGE"
log "installing Debian's openssh-server and wtmpdb in sid"
sid_apt "$C" openssh-server openssh-client wtmpdb sqlite3 gcc libc6-dev

PORT=$(free_port)
U=sshtest
dk cp "$T/wtmpdb" "$C:/usr/local/bin/wtmpdb-ours"
dk cp "$T/libwtmpdb_c.so" "$C:/tmp/libwtmpdb-ours.so"

in_sid "$C" "ldd /usr/lib/openssh/sshd-session | grep -q 'libwtmpdb.so.0 '" ||
    fail "Debian's sshd-session does not link libwtmpdb.so.0"

# The same C program with Debian's library and with ours: the same return values and rows.
log "return values and rows: Debian's library and ours"
dk cp "$REPO/crates/libwtmpdb/tests/c/parity.c" "$C:/tmp/parity.c"
dk cp "$REPO/crates/libwtmpdb/include/wtmpdb.h" "$C:/tmp/wtmpdb.h"
in_sid "$C" 'set -e
    mkdir -p /opt/debian /opt/ours /tmp/parity-debian /tmp/parity-ours
    cp "$(readlink -f "$(find /usr/lib -name libwtmpdb.so.0 | head -n 1)")" /opt/debian/libwtmpdb.so.0
    cp /tmp/libwtmpdb-ours.so /opt/ours/libwtmpdb.so.0
    ln -s libwtmpdb.so.0 /opt/ours/libwtmpdb.so
    gcc -Wall -Werror -I/tmp -o /tmp/parity /tmp/parity.c -L/opt/ours -lwtmpdb'
parity_debian=$(in_sid "$C" "LD_LIBRARY_PATH=/opt/debian /tmp/parity /tmp/parity-debian")
parity_ours=$(in_sid "$C" "LD_LIBRARY_PATH=/opt/ours /tmp/parity /tmp/parity-ours")
[ "$parity_debian" = "$parity_ours" ] || {
    diff <(echo "$parity_debian") <(echo "$parity_ours") >&2
    fail "the same C program gets different results from Debian's library and ours"
}
log "$(echo "$parity_ours" | wc -l) results alike, e.g. $(echo "$parity_ours" | grep read_all_v2-stop)"

log "sshd on 127.0.0.1:$PORT with key authentication"
container_sshd "$C" "$PORT" "$U"
in_sid "$C" "rm -f /var/log/wtmp.db /var/log/wtmp.db-journal"

session() { container_session "$C" "$PORT" "$U"; }

log "ssh login and logout with Debian's libwtmpdb"
mapfile -t W1 < <(session)
[ "$(in_sid "$C" "sqlite3 /var/log/wtmp.db 'PRAGMA user_version'")" = 0 ] ||
    fail "Debian's library should leave the database as upstream makes it (user_version 0)"

# Installed as the README says: under /usr/local/lib, which the dynamic linker's cache puts
# before the multiarch directory; Debian's package files stay as they are.
log "installing ours in /usr/local/lib (Debian's libwtmpdb0 stays installed)"
in_sid "$C" 'set -e
    install -m 0644 /tmp/libwtmpdb-ours.so /usr/local/lib/libwtmpdb.so.0.75.0
    ln -sf libwtmpdb.so.0.75.0 /usr/local/lib/libwtmpdb.so.0
    ldconfig
    dpkg -V libwtmpdb0'
loaded=$(in_sid "$C" "ldd /usr/lib/openssh/sshd-session" | awk '/libwtmpdb.so.0 / { print $3 }')
[ "$loaded" = /usr/local/lib/libwtmpdb.so.0 ] ||
    fail "sshd-session would load $loaded, not ours"
in_sid "$C" "ldd -r /usr/lib/openssh/sshd-session 2>&1" | grep -q 'not found' &&
    fail "sshd-session does not resolve every symbol in our library"

log "ssh login and logout with our libwtmpdb"
mapfile -t W2 < <(session)
# Our writer brings the schema up to date (indexes, user_version): proof that the second
# row went through our library.
[ "$(in_sid "$C" "sqlite3 /var/log/wtmp.db 'PRAGMA user_version'")" -gt 0 ] ||
    fail "the second login did not go through our library"

LAST_ARGS="-S -w --time-format iso $U"
debian_rows=$(in_sid "$C" "TZ=UTC wtmpdb last $LAST_ARGS")
ours_rows=$(in_sid "$C" "TZ=UTC wtmpdb-ours last $LAST_ARGS")
echo "$debian_rows"
[ "$debian_rows" = "$ours_rows" ] || {
    diff <(echo "$debian_rows") <(echo "$ours_rows") >&2
    fail "Debian's wtmpdb last and ours differ"
}
for args in "" "-x" "--time-format full" "-j"; do
    a=$(in_sid "$C" "TZ=UTC wtmpdb last $args")
    b=$(in_sid "$C" "TZ=UTC wtmpdb-ours last $args")
    [ "$a" = "$b" ] || {
        diff <(echo "$a") <(echo "$b") >&2
        fail "wtmpdb last $args: Debian's and ours differ"
    }
done

# Newest first: the row of our library, then Debian's.
mapfile -t ROWS < <(echo "$debian_rows" | grep "^$U ")
[ "${#ROWS[@]}" = 2 ] || fail "expected 2 rows of $U, got ${#ROWS[@]}"

epoch() { date -u -d "$(echo "$1" | sed 's/\(T[0-9:]*\)\([+-]\)/\1 \2/')" +%s; }

# check_row ROW BEFORE AFTER WHO. sshd passes no service, so the -S column is blank and
# the login time is the fourth field.
check_row() {
    local user tty host login dash logout li lo
    read -r user tty host login dash logout _ <<<"$1"
    [ "$user" = "$U" ] || fail "$4: user '$user'"
    [[ "$tty" =~ ^pts/[0-9]+$ ]] || fail "$4: tty '$tty'"
    [ "$host" = 127.0.0.1 ] || fail "$4: remote host '$host'"
    [[ "$login" =~ ^[0-9]{4}- ]] && [ "$dash" = - ] && [[ "$logout" =~ ^[0-9]{4}- ]] ||
        fail "$4: no login and logout time in: $1"
    li=$(epoch "$login")
    lo=$(epoch "$logout")
    [ "$2" -le "$li" ] && [ "$li" -le "$lo" ] && [ "$lo" -le "$3" ] ||
        fail "$4: login $login / logout $logout not within the session ($2..$3)"
    log "$4: $user $tty $host $login - $logout"
}
check_row "${ROWS[1]}" "${W1[0]}" "${W1[1]}" "Debian's library"
check_row "${ROWS[0]}" "${W2[0]}" "${W2[1]}" "our library"

# Both rows look the same once their times are masked.
mask() { sed -E 's/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}[+-][0-9]{4}/TIME/g' <<<"$1"; }
[ "$(mask "${ROWS[0]}")" = "$(mask "${ROWS[1]}")" ] ||
    fail "the rows differ: '${ROWS[1]}' (Debian) vs '${ROWS[0]}' (ours)"
in_sid "$C" "sqlite3 -separator ' | ' /var/log/wtmp.db 'SELECT ID, Type, User, TTY, RemoteHost, quote(Service), Logout >= Login FROM wtmp ORDER BY ID'"

# Debian's library writes /var/log/wtmp.db itself; ours opens /var/lib/wtmpdb/wtmp.db, which
# Debian links to it. Without that link ours must still write Debian's file, not a new one.
log "without the /var/lib/wtmpdb/wtmp.db link"
in_sid "$C" "rm /var/lib/wtmpdb/wtmp.db"
session >/dev/null
in_sid "$C" "[ ! -e /var/lib/wtmpdb/wtmp.db ]" || fail "our library created a second database"
[ "$(in_sid "$C" "sqlite3 /var/log/wtmp.db 'SELECT count(*) FROM wtmp WHERE Logout IS NOT NULL'")" = 3 ] ||
    fail "the third session is not in /var/log/wtmp.db"
# Issue 16: a login that our library spools (another process holds the database's lock
# while sshd records it) must come back to sshd as an ID it can log out with. It used to be
# -EAGAIN: sshd took it for a failure, never logged the session out, and once merged the
# session stayed "still logged in" for good.
log "a login while another process holds the database locked"
in_sid "$C" "[ ! -e /var/log/wtmp.db-spool ]" || fail "a spool before the lock"
in_sid "$C" "rm -f /tmp/unlocked; ((printf 'BEGIN EXCLUSIVE;\n.shell sleep 2\nCOMMIT;\n' | sqlite3 /var/log/wtmp.db; touch /tmp/unlocked) >/dev/null 2>&1 &)"
session >/dev/null
in_sid "$C" "for i in \$(seq 100); do [ -e /tmp/unlocked ] && exit 0; sleep 0.1; done; exit 1" ||
    fail "the lock holder did not end"
in_sid "$C" "[ -d /var/log/wtmp.db-spool ]" ||
    fail "the lock did not make the login wait in the spool: nothing was tested"
# An unlocked session merges whatever is left in the spool.
session >/dev/null
in_sid "$C" "grep -i wtmpdb /tmp/sshd.log | tail -n 5" || true
open_rows=$(in_sid "$C" "sqlite3 /var/log/wtmp.db \"SELECT count(*) FROM wtmp WHERE User = '$U' AND Logout IS NULL\"")
all_rows=$(in_sid "$C" "sqlite3 /var/log/wtmp.db \"SELECT count(*) FROM wtmp WHERE User = '$U'\"")
[ "$all_rows" = 5 ] && [ "$open_rows" = 0 ] || {
    in_sid "$C" "sqlite3 /var/log/wtmp.db 'SELECT ID, User, TTY, Login, Logout FROM wtmp'; ls -la /var/log/wtmp.db-spool 2>&1" >&2
    fail "the session recorded under the lock: $all_rows rows of $U, $open_rows without logout (want 5 and 0)"
}
# Nothing left but the reserve for a full disk, which the merge made.
in_sid "$C" "[ -z \"\$(ls -A /var/log/wtmp.db-spool 2>/dev/null | grep -vx .reserve)\" ]" ||
    fail "records left in the spool"
log "OK: Debian's sshd-session recorded the ssh session through our libwtmpdb.so.0 as through Debian's, also under a lock"
