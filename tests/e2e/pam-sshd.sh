#!/bin/bash
# A real sshd on 127.0.0.1 (own config, host key and port; key authentication; UsePAM yes) with
# the module in /etc/pam.d/sshd (sshd always uses that service name; the original is restored
# on exit): `ssh ... true` leaves one row with RemoteHost 127.0.0.1, service sshd, logout set.
source "$(dirname "$0")/common.sh"
require_root
need_packages openssh-server openssh-client sqlite3 python3
find_module
make_tmp

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
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
UseDNS no
PrintMotd no
AllowUsers $user
EOT

# A small stack of our own rather than the distribution's (pam_loginuid and pam_systemd fail
# in containers): account check, then the module.
pam_replace sshd <<EOT
auth required pam_deny.so
account required pam_unix.so
session required pam_permit.so
session optional $MODULE database=$db
EOT

/usr/sbin/sshd -D -e -f "$TMP/sshd_config" 2>"$TMP/sshd.log" &
sshd_pid=$!
on_exit "kill $sshd_pid 2>/dev/null; wait $sshd_pid 2>/dev/null"
for i in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    kill -0 "$sshd_pid" 2>/dev/null || { cat "$TMP/sshd.log" >&2; fail "sshd died"; }
    sleep 0.1
done

ssh -p "$port" -i "$TMP/user_key" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
    -o BatchMode=yes -o LogLevel=ERROR "$user@127.0.0.1" true </dev/null \
    || { cat "$TMP/sshd.log" >&2; fail "ssh $user@127.0.0.1 true"; }

# sshd closes the PAM session after the client has gone: wait for the logout.
for i in $(seq 50); do
    [ "$(sql "$db" "SELECT count(*) FROM wtmp WHERE Logout IS NOT NULL" 2>/dev/null)" = 1 ] && break
    sleep 0.1
done
got=$(sql "$db" "SELECT Type, User, RemoteHost, Service, Logout >= Login FROM wtmp")
[ "$got" = "3|$user|127.0.0.1|sshd|1" ] || { cat "$TMP/sshd.log" >&2; fail "row: $got"; }
log "row ok: $got (tty $(sql "$db" "SELECT TTY FROM wtmp"))"
log "PASS"
