#!/usr/bin/env bash
# Builds and runs a demo of our Debian packages in a container, and prints what there is to
# see. No image is pulled: the image is a debootstrap root of the suite (from the mirror of
# this machine's apt sources) with our packages (`make deb`) installed by apt, run by a
# Docker daemon of the script's own, with the host's network. Everything is removed at the
# end.
#
#   sudo docker/demo.sh sshd [bookworm|sid]   an sshd with our packages on 127.0.0.1: an ssh
#                                             login, then `wtmpdb who` while it lasts, `wtmpdb
#                                             last` after it, a wrong password in `wtmpdb lastb`
#   sudo docker/demo.sh upgrade               Debian sid's own wtmpdb 0.75.0-6 records
#                                             sessions, apt replaces it with ours: the same
#                                             rows, the next login through our libwtmpdb
#
# Needs root, docker.io and debootstrap (installed if missing), network; a minute or two.
source "$(dirname "$0")/../tests/e2e/common.sh"
source "$(dirname "$0")/../tests/e2e/lib/sid.sh"
E2E_NAME=demo
MODE=${1:-sshd}
SUITE=${2:-bookworm}
case "$MODE" in
sshd) ;;
upgrade) SUITE=sid ;;
*) echo "usage: $0 sshd [bookworm|sid] | upgrade" >&2; exit 2 ;;
esac
require_root
need_packages docker.io debootstrap dpkg-dev debhelper fakeroot libsqlite3-dev libpam0g-dev pkg-config
make_tmp

log "building the packages (make deb)"
(cd "$REPO" && make -s deb >"$TMP/deb.log" 2>&1) || { tail -n 30 "$TMP/deb.log" >&2; fail "make deb"; }
start_dockerd
sid_image "wtmpdb-demo-base:$SUITE" "$SUITE"
C=wtmpdb-demo-$$
sid_container "$C" "wtmpdb-demo-base:$SUITE"
in_sid "$C" "mkdir -p /tmp/debs"
for p in wtmpdb libpam-wtmpdb libwtmpdb0 libwtmpdb-dev wtmpdbd; do
    dk cp "$(ls "$REPO"/target/debian/${p}_*.deb | head -n 1)" "$C:/tmp/debs/"
done
U=demo
PORT=$(free_port)
show() {
    printf '\n$ %s\n' "$1"
    in_sid "$C" "$1"
}

if [ "$MODE" = upgrade ]; then
    log "Debian sid with Debian's own wtmpdb packages"
    sid_apt "$C" openssh-server openssh-client wtmpdb libpam-wtmpdb libwtmpdb0
    container_sshd "$C" "$PORT" "$U"
    container_session "$C" "$PORT" "$U" >/dev/null
    show "dpkg-query -W wtmpdb libpam-wtmpdb libwtmpdb0 openssh-server"
    show "wtmpdb last"
    log "apt installs ours over Debian's"
    in_sid "$C" "apt-get install -y -q --no-install-recommends /tmp/debs/*.deb >/tmp/apt.log 2>&1" ||
        { in_sid "$C" "tail -n 30 /tmp/apt.log" >&2; fail "apt-get install"; }
    container_sshd_stop "$C"
    container_sshd "$C" "$PORT" "$U"
    container_session "$C" "$PORT" "$U" >/dev/null
    show "dpkg-query -W wtmpdb libpam-wtmpdb libwtmpdb0 wtmpdbd openssh-server"
    show "ls -l /var/lib/wtmpdb/wtmp.db /var/log/wtmp.db"
    show "grep wtmpdb /etc/pam.d/common-session /etc/pam.d/common-auth"
    show "wtmpdb last"
    exit 0
fi

log "Debian $SUITE, openssh-server and our packages"
sid_apt "$C" openssh-server openssh-client
in_sid "$C" "apt-get install -y -q --no-install-recommends /tmp/debs/*.deb >/tmp/apt.log 2>&1" ||
    { in_sid "$C" "tail -n 30 /tmp/apt.log" >&2; fail "apt-get install"; }
dk commit "$C" "wtmpdb-demo-sshd:$SUITE" >/dev/null
in_sid "$C" "wtmpdb boot -q"
container_sshd "$C" "$PORT" "$U" password
show "dpkg-query -W wtmpdb libpam-wtmpdb libwtmpdb0 wtmpdbd openssh-server"
show "grep wtmpdb /etc/pam.d/common-session /etc/pam.d/common-auth"
log "an ssh login from 127.0.0.1 (key), open for 4 seconds"
in_sid "$C" "ssh -tt -i /root/.ssh/id_e2e -p $PORT -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
    -o LogLevel=ERROR $U@127.0.0.1 'sleep 4' </dev/null >/dev/null 2>&1 &"
# Until the session is open, and after the look, until it is closed.
in_sid "$C" "for i in \$(seq 100); do wtmpdb who | grep -q '^$U ' && exit 0; sleep 0.1; done; exit 1" ||
    fail "the ssh login did not open a session"
show "wtmpdb who"
in_sid "$C" "for i in \$(seq 200); do wtmpdb who | grep -q '^$U ' || exit 0; sleep 0.1; done; exit 1" ||
    fail "the ssh session did not end"
show "wtmpdb last -x"
log "an ssh login with a wrong password"
container_failed_login "$C" "$PORT" "$U"
show "wtmpdb lastb"
