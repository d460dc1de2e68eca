# Shared by the PAM end-to-end scripts (sourced, not run). They need root, change /etc/pam.d
# only through files they create or back up, and undo everything in their EXIT trap.

set -euo pipefail

E2E_NAME=$(basename "$0" .sh)
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CLEANUP=()

log() { echo "$E2E_NAME: $*"; }
fail() { echo "$E2E_NAME: FAIL: $*" >&2; exit 1; }

require_root() {
    if [ "$(id -u)" != 0 ]; then
        [ "${CI:-}" = true ] && fail "needs root, and CI=true requires it to run"
        echo "SKIP: $E2E_NAME needs root"
        exit 0
    fi
}

# Runs the cleanup steps in reverse order of registration.
run_cleanup() {
    local i
    for ((i = ${#CLEANUP[@]} - 1; i >= 0; i--)); do
        eval "${CLEANUP[$i]}" || true
    done
}
on_exit() { CLEANUP+=("$1"); }
trap run_cleanup EXIT

# Installs the Debian packages that are missing (one apt-get update at most).
need_packages() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing ${missing[*]}"
    apt-get update -qq >/dev/null
    # Packages such as openssh-server would start their system service (reading the
    # /etc/pam.d files these tests replace for a moment): a policy-rc.d forbids that while
    # installing, unless the administrator already has one.
    local policy=/usr/sbin/policy-rc.d own_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 0755 "$policy"
        own_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null || {
        [ "$own_policy" = 1 ] && rm -f "$policy"
        fail "apt-get install ${missing[*]}"
    }
    [ "$own_policy" = 1 ] && rm -f "$policy"
    return 0
}

# Sets MODULE to the built pam_wtmpdb (release preferred), building it if missing.
find_module() {
    local t=${CARGO_TARGET_DIR:-$REPO/target} d
    for d in release debug; do
        if [ -f "$t/$d/libpam_wtmpdb.so" ]; then
            MODULE=$t/$d/libpam_wtmpdb.so
            return 0
        fi
    done
    log "building the module"
    (cd "$REPO" && cargo build --release -q -p pam_wtmpdb -p wtmpdb-cli)
    MODULE=$t/release/libpam_wtmpdb.so
    [ -f "$MODULE" ] || fail "no module at $MODULE"
}

make_tmp() {
    TMP=$(mktemp -d /tmp/wtmpdb-e2e.XXXXXX)
    chmod 0755 "$TMP"
    on_exit "rm -rf '$TMP'"
}

# Writes /etc/pam.d/$1 from stdin; removed on exit.
pam_service() {
    local f=/etc/pam.d/$1
    [ -e "$f" ] && fail "$f exists already"
    cat >"$f"
    on_exit "rm -f '$f'"
}

# Replaces an existing /etc/pam.d/$1 with stdin; the original is restored on exit.
pam_replace() {
    local f=/etc/pam.d/$1
    if [ -e "$f" ]; then
        cp -a "$f" "$TMP/pam.d-$1.orig"
        on_exit "cp -a '$TMP/pam.d-$1.orig' '$f'"
    else
        on_exit "rm -f '$f'"
    fi
    cat >"$f"
}

# Creates user $1 if missing; removed on exit if we created it.
ensure_user() {
    if ! id "$1" >/dev/null 2>&1; then
        useradd -m -s /bin/sh "$1"
        on_exit "userdel -r '$1' >/dev/null 2>&1"
    fi
    # Not locked, no password: key authentication and su from root only.
    usermod -p '*' "$1"
}

# Re-runs the script in a private mount namespace, so its mounts (syslog socket, tmpfs) are
# invisible to the rest of the system and vanish with it.
in_private_mounts() {
    if [ -z "${WTMPDB_E2E_NS:-}" ]; then
        exec env WTMPDB_E2E_NS=1 unshare -m --propagation private bash "$0" "$@"
    fi
}

# Captures syslog(3) datagrams into $SYSLOG. syslog(3) always sends to /dev/log: if it exists,
# our socket is bind-mounted over it (needs in_private_mounts); if not, we create it and remove
# it on exit.
capture_syslog() {
    SYSLOG=$TMP/syslog.txt
    : >"$SYSLOG"
    local sock
    if [ -e /dev/log ]; then
        [ -n "${WTMPDB_E2E_NS:-}" ] || fail "capture_syslog needs in_private_mounts"
        sock=$TMP/log
    else
        sock=/dev/log
        on_exit "rm -f /dev/log"
    fi
    python3 -c '
import os, socket, sys
path, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
os.chmod(path, 0o666)
with open(out, "ab", buffering=0) as f:
    f.write(b"")
    open(out + ".ready", "w").close()
    while True:
        f.write(s.recv(65536) + b"\n")
' "$sock" "$SYSLOG" &
    local pid=$!
    on_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
    local i
    for i in $(seq 50); do [ -e "$SYSLOG.ready" ] && break; sleep 0.1; done
    [ -e "$SYSLOG.ready" ] || fail "syslog listener did not start"
    if [ "$sock" != /dev/log ]; then
        mount --bind "$sock" /dev/log
    fi
}

expect_syslog() {
    local i
    for i in $(seq 20); do
        grep -q -- "$1" "$SYSLOG" && return 0
        sleep 0.1
    done
    echo "--- captured syslog:" >&2
    cat "$SYSLOG" >&2
    fail "syslog has no line with: $1"
}

# Milliseconds since the epoch.
now_ms() { date +%s%3N; }

sql() { sqlite3 -batch -cmd '.timeout 5000' "$@"; }
