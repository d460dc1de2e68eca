#!/usr/bin/env bash
# Our Debian packages (`make deb`), installed the way admins install them, into fresh
# containers built with debootstrap:
#
# - Debian 12 (bookworm), which has no wtmpdb of its own: the first install imports a legacy
#   /var/log/wtmp, starts nothing (no init there, and no policy-rc.d either), puts the module
#   into the PAM stack without skip_if (bookworm's sshd does not link libwtmpdb), so an ssh
#   login is recorded by the module and a wrong password by its authfail line; removing
#   leaves a PAM stack that logs in, purging keeps the database.
# - Debian sid with Debian's wtmpdb, libpam-wtmpdb and libwtmpdb0 0.75.0-6: sessions recorded
#   by Debian's, read alike by Debian's `wtmpdb last` and ours; then ours installed over them
#   by apt: openssh-server stays, every row is still there, the database keeps Debian's path
#   /var/log/wtmp.db and its link, Debian's logrotate stanza becomes ours, the file is handed
#   to the daemon (0600); an ssh login goes through our libwtmpdb.so.0 in Debian's sshd once
#   (skip_if=sshd), a wrong password is in `wtmpdb lastb`; a downgrade to Debian's reads every
#   row; ours again, then removed and purged.
#
# Also: lintian finds no error or warning, and a second build from scratch in another
# directory gives the same bytes.
#
# Needs root, docker.io, debootstrap, dpkg-dev, debhelper and lintian (installed if missing),
# and the Debian archive through the mirror of this machine's apt sources. Takes about three
# minutes (four on two cores: the second build).
source "$(dirname "$0")/common.sh"
source "$(dirname "$0")/lib/sid.sh"
require_root
need_packages docker.io debootstrap dpkg-dev debhelper fakeroot lintian libsqlite3-dev libpam0g-dev pkg-config
make_tmp

log "make deb"
(cd "$REPO" && make -s deb >"$TMP/deb.log" 2>&1) || { tail -n 30 "$TMP/deb.log" >&2; fail "make deb"; }
DEBS=()
for p in wtmpdb libpam-wtmpdb libwtmpdb0 libwtmpdb-dev wtmpdbd; do
    f=$(ls "$REPO"/target/debian/${p}_*.deb 2>/dev/null | head -n 1)
    [ -f "$f" ] || fail "make deb left no $p package in target/debian"
    DEBS+=("$f")
done
VERSION=$(dpkg-deb -f "${DEBS[0]}" Version)
log "built ${#DEBS[@]} packages, version $VERSION"
dpkg --compare-versions "$VERSION" gt 0.75.0-6 || fail "$VERSION does not replace Debian's 0.75.0-6"

# Lintian: no error or warning (the one override is explained in the README).
log "lintian"
lintian --fail-on error,warning "$REPO"/target/debian/wtmpdb_*.changes >"$TMP/lintian.log" 2>&1 || {
    cat "$TMP/lintian.log" >&2
    fail "lintian"
}
grep -E '^[EW]: ' "$TMP/lintian.log" && fail "lintian reports the tags above"

# Reproducible: a second build from scratch, in another directory (so the build path must
# not show), while the root file systems are made; compared byte for byte further down.
setsid bash -c 'cd "$1" && exec make -s deb DEB_DIR="$2"' - "$REPO" "$TMP/repro" >"$TMP/repro.log" 2>&1 &
repro_pid=$!
on_exit "kill -- -$repro_pid 2>/dev/null"

start_dockerd
# Both root file systems at once (mostly waiting for the mirror).
sid_image "wtmpdb-e2e-bookworm:$$" bookworm &
b_pid=$!
sid_image "wtmpdb-e2e-sid:$$" sid
wait "$b_pid" || fail "the bookworm image"
log "the second build"
wait "$repro_pid" || { tail -n 30 "$TMP/repro.log" >&2; fail "the second make deb"; }
for f in "${DEBS[@]}"; do
    cmp "$f" "$TMP/repro/$(basename "$f")" || fail "$(basename "$f") differs between two builds"
done
log "reproducible: a second build, from scratch in another directory, gives the same ${#DEBS[@]} packages"

B=wtmpdb-e2e-deb-bookworm-$$
S=wtmpdb-e2e-deb-sid-$$
sid_container "$B" "wtmpdb-e2e-bookworm:$$"
sid_container "$S" "wtmpdb-e2e-sid:$$"
for c in "$B" "$S"; do
    in_sid "$c" "mkdir -p /tmp/debs"
    for f in "${DEBS[@]}"; do dk cp "$f" "$c:/tmp/debs/"; done
done
U=sshtest
ours="/tmp/debs/*.deb"
# apt as an admin runs it, keeping a conffile the admin changed (none is changed here).
APT="apt-get -o Acquire::Check-Valid-Until=false -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold -y -q"
apt_in() {
    local c=$1
    shift
    in_sid "$c" "$APT $* >/tmp/apt.log 2>&1" || {
        in_sid "$c" "tail -n 30 /tmp/apt.log" >&2
        fail "apt-get $* in $c"
    }
}
# Purged with dpkg: apt knows no removed package that is in no archive (ours in bookworm).
dpkg_purge() {
    local c=$1
    shift
    in_sid "$c" "dpkg --purge $* >/tmp/dpkg.log 2>&1" || {
        in_sid "$c" "tail -n 30 /tmp/dpkg.log" >&2
        fail "dpkg --purge $* in $c"
    }
}
installed() { in_sid "$1" "dpkg-query -W -f='\${Status}' $2 2>/dev/null | grep -q 'ok installed'"; }
rows() { in_sid "$1" "sqlite3 $2 'SELECT count(*) FROM wtmp'"; }
LAST="TZ=UTC wtmpdb last -S -w --time-format iso"

# A legacy wtmp: a boot and alice's session from 192.0.2.7 on pts/5 (glibc's 384-byte
# records).
python3 - "$TMP/wtmp" <<'EOF'
import struct, sys
def rec(t, pid, line, ident, user, host, sec):
    return struct.pack("hi32s4s32s256shhiii4i20s", t, pid, line.encode(), ident.encode(),
                       user.encode(), host.encode(), 0, 0, 0, sec, 0, 0, 0, 0, 0, b"")
with open(sys.argv[1], "wb") as f:
    f.write(rec(2, 0, "~", "~~", "reboot", "6.1.0-legacy", 1700000000))
    f.write(rec(7, 4242, "pts/5", "ts/5", "alice", "192.0.2.7", 1700000100))
    f.write(rec(8, 4242, "pts/5", "ts/5", "", "", 1700000700))
EOF
[ "$(stat -c %s "$TMP/wtmp")" = 1152 ] || fail "the legacy records are not 384 bytes each"

##### Debian 12 #####
log "bookworm: openssh-server, then our packages"
apt_in "$B" update
apt_in "$B" install --no-install-recommends openssh-server openssh-client sqlite3 procps
dk cp "$TMP/wtmp" "$B:/var/log/wtmp"
# No policy-rc.d from here on: the packages themselves must start nothing where no init runs.
in_sid "$B" "rm -f /usr/sbin/policy-rc.d"
apt_in "$B" install --no-install-recommends $ours
in_sid "$B" "dpkg -l | awk '/^ii/ && /wtmpdb/ { print \$2, \$3 }'"
in_sid "$B" "! pgrep -x wtmpdbd" || fail "bookworm: the installation started wtmpdbd"
imported=$(in_sid "$B" "$LAST -x")
echo "$imported"
echo "$imported" | grep -q '^alice .*pts/5 .*192\.0\.2\.7 .*2023-11-14T22:15:00+0000 *- *2023-11-14T22:25:00+0000' ||
    fail "bookworm: the legacy session of alice was not imported"
echo "$imported" | grep -q '^reboot ' || fail "bookworm: the legacy boot was not imported"
[ "$(echo "$imported" | grep -c '^reboot ')" = 1 ] ||
    fail "bookworm: a boot was recorded by the installation (the boot unit must not start)"
in_sid "$B" "[ ! -L /usr/bin/last ] && dpkg -S /usr/bin/last | grep -q util-linux" ||
    fail "bookworm: util-linux's last was replaced"
in_sid "$B" "! grep -q skip_if /usr/share/pam-configs/wtmpdb && grep -q 'pam_wtmpdb.so *\$' /etc/pam.d/common-session" ||
    fail "bookworm: common-session must carry pam_wtmpdb.so without skip_if: $(in_sid "$B" "grep wtmpdb /etc/pam.d/common-session")"
in_sid "$B" "grep -q 'pam_wtmpdb.so authfail' /etc/pam.d/common-auth" || fail "bookworm: no authfail line in common-auth"
# Enabled as `systemctl enable` would (the links deb-systemd-helper makes without systemd).
in_sid "$B" "cd /etc/systemd/system && [ -L sockets.target.wants/wtmpdbd.socket ] &&
    [ -L default.target.wants/wtmpdb-update-boot.service ] && [ -L timers.target.wants/wtmpdb-rotate.timer ] &&
    ls /etc/rc2.d | grep -q wtmpdb-update-boot" || fail "bookworm: units or the init script not enabled"
[ -z "$(in_sid "$B" "find -L /var/lib/wtmpdb/wtmp.db -perm /o=rw")" ] || fail "bookworm: the database is not the daemon's"

PORT=$(free_port)
container_sshd "$B" "$PORT" "$U" password
log "bookworm: an ssh login (recorded by the module) and a wrong password"
mapfile -t W < <(container_session "$B" "$PORT" "$U")
container_failed_login "$B" "$PORT" "$U"
out=$(in_sid "$B" "$LAST $U")
echo "$out"
[ "$(echo "$out" | grep -c "^$U .*127\.0\.0\.1 .*sshd ")" = 1 ] ||
    fail "bookworm: want one ssh session of $U from 127.0.0.1 (service sshd)"
lastb=$(in_sid "$B" "wtmpdb lastb")
echo "$lastb"
echo "$lastb" | grep -q "^$U .*127\.0\.0\.1" || fail "bookworm: the wrong password is not in wtmpdb lastb"
# The right password still logs in, and is no failure: pam_unix's success jumps over the
# authfail line that pam-auth-update placed after it.
in_sid "$B" "grep -E 'pam_unix|pam_wtmpdb' /etc/pam.d/common-auth"
in_sid "$B" "echo '$U:right-Pass-1' | chpasswd && printf '#!/bin/sh\necho right-Pass-1\n' >/tmp/askpass-right &&
    chmod 0755 /tmp/askpass-right && SSH_ASKPASS=/tmp/askpass-right SSH_ASKPASS_REQUIRE=force DISPLAY= \
    setsid -w ssh -p $PORT -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
    -o NumberOfPasswordPrompts=1 -o PreferredAuthentications=password -o PubkeyAuthentication=no \
    $U@127.0.0.1 true </dev/null" || fail "bookworm: the right password does not log in"
[ "$(in_sid "$B" "wtmpdb lastb" | grep -c "^$U ")" = 1 ] || fail "bookworm: the right password was recorded as a failure"
in_sid "$B" "usermod -p '*' $U"

log "bookworm: remove, then purge"
apt_in "$B" remove libpam-wtmpdb wtmpdbd wtmpdb libwtmpdb-dev libwtmpdb0
in_sid "$B" "! grep -rq pam_wtmpdb /etc/pam.d" || fail "bookworm: pam_wtmpdb left in the PAM stack after remove"
container_session "$B" "$PORT" "$U" >/dev/null
in_sid "$B" "grep -i 'pam.*error\|unable to' /tmp/sshd.log" && fail "bookworm: PAM errors after remove"
dpkg_purge "$B" libpam-wtmpdb wtmpdbd wtmpdb libwtmpdb-dev libwtmpdb0
in_sid "$B" "! grep -rq pam_wtmpdb /etc/pam.d /usr/share/pam-configs" || fail "bookworm: pam_wtmpdb left after purge"
in_sid "$B" "[ ! -e /etc/logrotate.d/wtmpdb ] && [ ! -e /etc/init.d/wtmpdb-update-boot ] && [ ! -e /usr/lib/x86_64-linux-gnu/libwtmpdb.so.0 ]" ||
    fail "bookworm: files left after purge"
# The import (2 rows), the login by key and the one by password.
[ "$(rows "$B" /var/lib/wtmpdb/wtmp.db)" = 4 ] || fail "bookworm: purge did not leave the database (4 rows)"
container_session "$B" "$PORT" "$U" >/dev/null
log "bookworm: OK"

##### Debian sid: Debian's packages, then ours over them #####
log "sid: Debian's wtmpdb, libpam-wtmpdb, libwtmpdb0 and openssh-server"
apt_in "$S" update
apt_in "$S" install --no-install-recommends openssh-server openssh-client wtmpdb libpam-wtmpdb libwtmpdb0 sqlite3 procps logrotate
debian_version=$(in_sid "$S" "dpkg-query -W -f='\${Version}' libwtmpdb0")
log "Debian's libwtmpdb0 $debian_version"
dk cp "$REPO/target/debian/wtmpdb/target/release/wtmpdb" "$S:/usr/local/bin/wtmpdb-ours"
PORT=$(free_port)
container_sshd "$S" "$PORT" "$U" password
in_sid "$S" "wtmpdb boot -q"
container_session "$S" "$PORT" "$U" >/dev/null
container_session "$S" "$PORT" "$U" >/dev/null
in_sid "$S" "[ -L /var/lib/wtmpdb/wtmp.db ] && [ -f /var/log/wtmp.db ]" ||
    fail "sid: Debian's layout (/var/log/wtmp.db and the link) is not there"
before=$(in_sid "$S" "$LAST")
in_sid "$S" "TZ=UTC wtmpdb-ours last -S -w --time-format iso" >"$TMP/ours-before"
[ "$before" = "$(cat "$TMP/ours-before")" ] || {
    diff <(echo "$before") "$TMP/ours-before" >&2
    fail "sid: Debian's wtmpdb last and ours differ before the switch"
}
n_before=$(rows "$S" /var/log/wtmp.db)
echo "$before"
[ "$n_before" -ge 3 ] || fail "sid: Debian's packages recorded $n_before rows, want 3 (a boot, two ssh sessions)"
in_sid "$S" "cp /etc/logrotate.d/wtmpdb /tmp/logrotate-debian"

log "sid: installing ours over Debian's with apt"
apt_in "$S" install --no-install-recommends $ours
in_sid "$S" "dpkg -l | awk '/^ii/ && /wtmpdb|openssh-server/ { print \$2, \$3 }'"
installed "$S" openssh-server || fail "sid: openssh-server was removed"
for p in wtmpdb libpam-wtmpdb libwtmpdb0 libwtmpdb-dev wtmpdbd; do
    [ "$(in_sid "$S" "dpkg-query -W -f='\${Version}' $p")" = "$VERSION" ] || fail "sid: $p is not ours"
done
in_sid "$S" "[ \"\$(readlink /var/lib/wtmpdb/wtmp.db)\" = ../../log/wtmp.db ] && [ -f /var/log/wtmp.db ] && [ ! -L /var/log/wtmp.db ]" ||
    fail "sid: the database left Debian's path or lost its link"
[ "$(in_sid "$S" "stat -c %a /var/log/wtmp.db")" = 600 ] || fail "sid: the database was not handed to the daemon"
in_sid "$S" "cmp -s /etc/logrotate.d/wtmpdb /tmp/logrotate-debian" && fail "sid: Debian's logrotate stanza is still there"
dk cp "$S:/etc/logrotate.d/wtmpdb" "$TMP/logrotate-now"
cmp -s "$TMP/logrotate-now" "$REPO/logrotate/wtmpdb" || fail "sid: /etc/logrotate.d/wtmpdb is not ours"
in_sid "$S" "logrotate -f /etc/logrotate.d/wtmpdb && [ -f /var/log/wtmp.db ] && ! ls /var/log/wtmp.db.1 2>/dev/null" ||
    fail "sid: logrotate renamed the database"
in_sid "$S" "[ -L /usr/bin/last ] && last -n 1 >/dev/null" || fail "sid: no last link to wtmpdb"
in_sid "$S" "grep -q 'pam_wtmpdb.so skip_if=sshd' /etc/pam.d/common-session" ||
    fail "sid: sshd records itself, so common-session must skip it: $(in_sid "$S" "grep wtmpdb /etc/pam.d/common-session")"
after=$(in_sid "$S" "$LAST")
[ "$after" = "$before" ] || {
    diff <(echo "$before") <(echo "$after") >&2
    fail "sid: our wtmpdb last differs from Debian's before the switch"
}
[ "$(rows "$S" /var/log/wtmp.db)" = "$n_before" ] || fail "sid: rows lost in the switch"

log "sid: an ssh login through our libwtmpdb.so.0 in Debian's sshd, and a wrong password"
container_sshd_stop "$S"
container_sshd "$S" "$PORT" "$U" password
in_sid "$S" "ldd /usr/lib/openssh/sshd-session | grep -q 'libwtmpdb.so.0 => /usr/lib/x86_64-linux-gnu/libwtmpdb.so.0 '" ||
    fail "sid: sshd-session does not load the packaged library"
mapfile -t W < <(container_session "$S" "$PORT" "$U")
container_failed_login "$S" "$PORT" "$U"
[ "$(rows "$S" /var/log/wtmp.db)" = $((n_before + 1)) ] ||
    fail "sid: want exactly one new row for the ssh session (sshd records it; skip_if=sshd), got $(($(rows "$S" /var/log/wtmp.db) - n_before))"
[ "$(in_sid "$S" "sqlite3 /var/log/wtmp.db 'PRAGMA user_version'")" -gt 0 ] ||
    fail "sid: the new row did not go through our library"
out=$(in_sid "$S" "$LAST")
echo "$out"
[ "$(echo "$out" | grep -c "^$U .*127\.0\.0\.1")" = 3 ] || fail "sid: want 3 ssh sessions of $U"
lastb=$(in_sid "$S" "wtmpdb lastb")
echo "$lastb"
echo "$lastb" | grep -q "^$U .*127\.0\.0\.1" || fail "sid: the wrong password is not in wtmpdb lastb"

log "sid: downgrade to Debian's: every row readable"
apt_in "$S" install --allow-downgrades --no-install-recommends "wtmpdb=$debian_version" "libpam-wtmpdb=$debian_version" "libwtmpdb0=$debian_version"
installed "$S" openssh-server || fail "sid: the downgrade removed openssh-server"
down=$(in_sid "$S" "$LAST")
[ "$down" = "$out" ] || { diff <(echo "$out") <(echo "$down") >&2; fail "sid: Debian's last after the downgrade differs"; }

log "sid: ours again, then remove and purge (libwtmpdb0 stays: openssh-server needs it)"
apt_in "$S" install --no-install-recommends $ours
[ "$(in_sid "$S" "$LAST")" = "$out" ] || fail "sid: rows differ after the upgrade back"
apt_in "$S" remove libpam-wtmpdb wtmpdbd wtmpdb libwtmpdb-dev
installed "$S" openssh-server || fail "sid: remove took openssh-server"
in_sid "$S" "! grep -rq pam_wtmpdb /etc/pam.d" || fail "sid: pam_wtmpdb left in the PAM stack after remove"
container_session "$S" "$PORT" "$U" >/dev/null
dpkg_purge "$S" libpam-wtmpdb wtmpdbd wtmpdb libwtmpdb-dev
in_sid "$S" "! grep -rq pam_wtmpdb /etc/pam.d /usr/share/pam-configs" || fail "sid: pam_wtmpdb left after purge"
[ "$(rows "$S" /var/log/wtmp.db)" -ge $((n_before + 2)) ] || fail "sid: purge did not leave the database"
log "OK: our packages install on Debian 12 and replace Debian's in sid without losing a row"
