#!/bin/bash
# A real sshd on 127.0.0.1 with password and keyboard-interactive authentication through PAM,
# the module's `authfail` line after pam_unix in /etc/pam.d/sshd (restored on exit): a wrong
# password by each method leaves a failure (user as typed, 127.0.0.1, service sshd) that
# `wtmpdb lastb` lists as root; the next successful login (by key, with a terminal) is told
# "There were N failed login attempts since the last successful login." by sshd, which
# passes the module's PAM_TEXT_INFO on.
source "$(dirname "$0")/common.sh"
require_root
need_packages openssh-server openssh-client sqlite3 python3
find_module
make_tmp
BIN=$(dirname "$MODULE")/wtmpdb
if [ ! -x "$BIN" ]; then
    log "building wtmpdb"
    release=$([ "$(basename "$(dirname "$MODULE")")" = release ] && echo --release || true)
    (cd "$REPO" && cargo build -q $release -p wtmpdb-cli)
fi
[ -x "$BIN" ] || fail "no wtmpdb next to $MODULE"

user=wtmpdbe2e
ensure_user "$user"
db=$TMP/wtmp.db

ssh-keygen -q -t ed25519 -N '' -f "$TMP/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$TMP/user_key"
install -m 0644 -o "$user" "$TMP/user_key.pub" "$TMP/authorized_keys"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p /run/sshd
chmod 0755 /run/sshd

cat >"$TMP/sshd_config" <<EOT
Port $port
ListenAddress 127.0.0.1
HostKey $TMP/host_key
PidFile $TMP/sshd.pid
UsePAM yes
PubkeyAuthentication yes
AuthorizedKeysFile $TMP/authorized_keys
PasswordAuthentication yes
KbdInteractiveAuthentication yes
StrictModes no
UseDNS no
PrintMotd no
PrintLastLog no
AllowUsers $user
EOT

pam_replace sshd <<EOT
auth [success=2 default=ignore] pam_unix.so nullok
auth [default=die] $MODULE authfail database=$db
auth requisite pam_deny.so
auth required pam_permit.so
account required pam_unix.so
session required pam_permit.so
session optional $MODULE database=$db showfailed
EOT

/usr/sbin/sshd -D -e -f "$TMP/sshd_config" 2>"$TMP/sshd.log" &
sshd_pid=$!
on_exit "kill $sshd_pid 2>/dev/null; wait $sshd_pid 2>/dev/null"
for i in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    kill -0 "$sshd_pid" 2>/dev/null || { cat "$TMP/sshd.log" >&2; fail "sshd died"; }
    sleep 0.1
done

# The wrong password, typed by ssh's askpass.
printf '#!/bin/sh\necho wrong-password\n' >"$TMP/askpass"
chmod 0755 "$TMP/askpass"
ssh_opts=(-p "$port" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
    -o LogLevel=ERROR -o NumberOfPasswordPrompts=1)
for method in password keyboard-interactive; do
    if SSH_ASKPASS=$TMP/askpass SSH_ASKPASS_REQUIRE=force DISPLAY= setsid -w ssh "${ssh_opts[@]}" \
        -o PreferredAuthentications=$method -o PubkeyAuthentication=no "$user@127.0.0.1" true \
        </dev/null >/dev/null 2>&1; then
        fail "ssh with a wrong password ($method) logged in"
    fi
done
for i in $(seq 50); do
    [ "$(sql "$db-failed" "SELECT count(*) FROM failed" 2>/dev/null)" = 2 ] && break
    sleep 0.1
done
out=$("$BIN" lastb -f "$db" -S)
log "lastb:"
echo "$out"
n=$(echo "$out" | grep -c "^${user:0:8} *ssh *127.0.0.1 *sshd " || true)
[ "$n" = 2 ] || { cat "$TMP/sshd.log" >&2; fail "wanted 2 sshd failures, got $n"; }
[ "$(stat -c %a "$db-failed")" = 600 ] || fail "mode $(stat -c %a "$db-failed")"

# The next successful login, by key, a login shell on a terminal (sshd shows what PAM said
# at session open, the "login messages", only there, not before a command):
echo exit | ssh "${ssh_opts[@]}" -i "$TMP/user_key" -o BatchMode=yes -tt "$user@127.0.0.1" \
    >"$TMP/told" 2>&1 || { cat "$TMP/sshd.log" >&2; fail "ssh by key: $(cat "$TMP/told")"; }
grep -q "There were 2 failed login attempts since the last successful login." "$TMP/told" \
    || fail "no notice: $(cat "$TMP/told")"
log "told: $(tr -d '\r' <"$TMP/told" | tr '\n' ' ')"
log "PASS"
