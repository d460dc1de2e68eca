# Debian containers (sid, or another suite such as bookworm) for the checks against Debian's
# own packages and of our packages (sourced after common.sh and make_tmp; needs root). Everything is private to the run and removed by the
# cleanup stack: a Docker daemon of our own (its sockets and data under $TMP, no bridge, no
# iptables changes), an image built with debootstrap from the mirror apt already uses here,
# and containers that share the host's network (loopback only is needed).

# The Debian mirror of this machine's apt sources (deb822 .sources files or one-line
# sources.list entries), the security archive left out.
sid_mirror() {
    local f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -e "$f" ] || continue
        uri=$(awk 'tolower($1) == "uris:" { for (i = 2; i <= NF; i++) print $i }' "$f" |
            grep -v -e security -e '^cdrom:' | grep /debian | head -n 1)
        [ -n "$uri" ] && { echo "$uri"; return 0; }
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -e "$f" ] || continue
        uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/) { print $i; break } }' "$f" |
            grep -v security | grep /debian | head -n 1)
        [ -n "$uri" ] && { echo "$uri"; return 0; }
    done
    return 1
}

# Starts a Docker daemon of our own; `dk` talks to it. Stopped (and its mounts gone) on exit.
start_dockerd() {
    local root=$TMP/docker
    mkdir -p "$root"
    DOCKER_SOCK=$root/docker.sock
    dockerd --bridge=none --iptables=false --ip6tables=false --ip-masq=false \
        --data-root "$root/data" --exec-root "$root/exec" --pidfile "$root/dockerd.pid" \
        -H "unix://$DOCKER_SOCK" >"$root/dockerd.log" 2>&1 &
    local pid=$!
    on_exit "stop_dockerd $pid '$root'"
    local i
    for i in $(seq 100); do
        dk version >/dev/null 2>&1 && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    tail -n 20 "$root/dockerd.log" >&2
    fail "dockerd did not start"
}

stop_dockerd() {
    local pid=$1 root=$2 i
    kill "$pid" 2>/dev/null || return 0
    for i in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    kill -9 "$pid" 2>/dev/null || true
    # Mounts a killed daemon may have left, innermost first.
    awk -v r="$root" 'index($2, r) == 1 { print $2 }' /proc/mounts | sort -r |
        while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

dk() { docker -H "unix://$DOCKER_SOCK" "$@"; }

# Builds image $1 from a minimal root file system of suite $2 (default sid).
sid_image() {
    local suite=${2:-sid} mirror
    local dir=$TMP/$suite-root
    mirror=$(sid_mirror) || fail "no Debian mirror in the apt sources of this machine"
    log "debootstrap $suite from $mirror"
    debootstrap --variant=minbase "$suite" "$dir" "$mirror" >"$TMP/debootstrap-$suite.log" 2>&1 || {
        tail -n 20 "$TMP/debootstrap-$suite.log" >&2
        fail "debootstrap $suite"
    }
    # Nothing may start services while packages are installed (there is no init anyway).
    printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
    chmod 0755 "$dir/usr/sbin/policy-rc.d"
    tar -C "$dir" -c . | dk import - "$1" >/dev/null || fail "docker import"
    rm -rf "$dir"
}

# Starts container $1 from image $2, on the host's network; removed on exit.
sid_container() {
    dk run -d --name "$1" --network host "$2" sleep infinity >/dev/null || fail "docker run $2"
    on_exit "dk rm -f '$1' >/dev/null 2>&1"
}

# Runs a shell command in container $1.
in_sid() {
    local c=$1
    shift
    dk exec -i -e DEBIAN_FRONTEND=noninteractive "$c" sh -c "$*"
}

# Installs packages $2... in container $1. A mirror that serves a frozen snapshot of sid has
# an expired Release file; its signature is still checked.
sid_apt() {
    local c=$1
    shift
    in_sid "$c" "apt-get -o Acquire::Check-Valid-Until=false update -qq >/tmp/apt.log 2>&1 &&
        apt-get install -y -qq --no-install-recommends $* >>/tmp/apt.log 2>&1" || {
        in_sid "$c" "tail -n 20 /tmp/apt.log" >&2
        fail "apt-get install $* in the sid container"
    }
}

# A free TCP port on 127.0.0.1.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# An sshd in container $1 on 127.0.0.1:$2 (key authentication for user $3, who is created
# with no password, and, with $4 = password, password authentication through PAM too), its
# log in /tmp/sshd.log. Waits until it listens.
container_sshd() {
    local c=$1 port=$2 u=$3 pw=no i
    [ "${4:-}" = password ] && pw=yes
    in_sid "$c" "set -e
        ssh-keygen -A >/dev/null
        id $u >/dev/null 2>&1 || useradd -m -s /bin/sh $u
        usermod -p '*' $u
        mkdir -p /run/sshd /root/.ssh /home/$u/.ssh
        [ -e /root/.ssh/id_e2e ] || ssh-keygen -q -t ed25519 -N '' -f /root/.ssh/id_e2e
        cp /root/.ssh/id_e2e.pub /home/$u/.ssh/authorized_keys
        chown -R $u: /home/$u/.ssh
        chmod 0700 /home/$u/.ssh
        chmod 0600 /home/$u/.ssh/authorized_keys
        printf '%s\n' 'Port $port' 'ListenAddress 127.0.0.1' 'PubkeyAuthentication yes' \
            'PasswordAuthentication $pw' 'KbdInteractiveAuthentication no' 'UsePAM yes' \
            'PidFile /run/sshd-e2e.pid' >/etc/ssh/sshd_e2e_config
        /usr/sbin/sshd -f /etc/ssh/sshd_e2e_config -E /tmp/sshd.log"
    for i in $(seq 50); do
        in_sid "$c" "grep -q 'Server listening' /tmp/sshd.log" && return 0
        sleep 0.1
    done
    in_sid "$c" "tail -n 20 /tmp/sshd.log" >&2
    fail "sshd in $c does not listen"
}

# Stops the sshd of container_sshd in container $1.
container_sshd_stop() {
    in_sid "$1" 'kill "$(cat /run/sshd-e2e.pid)" 2>/dev/null; rm -f /run/sshd-e2e.pid; sleep 0.2' || true
}

# One ssh session of user $3 into container $1's sshd on port $2, with a terminal (sshd
# records only sessions that get one), lasting about a second; prints the container's clock
# (seconds) before and after it.
container_session() {
    local c=$1 port=$2 u=$3
    in_sid "$c" "date +%s
        ssh -tt -i /root/.ssh/id_e2e -p $port -o StrictHostKeyChecking=no \
            -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR $u@127.0.0.1 'sleep 1' </dev/null >/dev/null
        rc=\$?
        sleep 0.3
        date +%s
        exit \$rc" || {
        in_sid "$c" "tail -n 20 /tmp/sshd.log" >&2
        fail "ssh login of $u in $c"
    }
}

# One ssh login of user $3 with a wrong password (typed by ssh's askpass) into container
# $1's sshd on port $2 (started with password authentication); it must be refused.
container_failed_login() {
    local c=$1 port=$2 u=$3
    in_sid "$c" "printf '#!/bin/sh\necho wrong-password\n' >/tmp/askpass && chmod 0755 /tmp/askpass
        SSH_ASKPASS=/tmp/askpass SSH_ASKPASS_REQUIRE=force DISPLAY= setsid -w ssh -p $port \
            -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
            -o NumberOfPasswordPrompts=1 -o PreferredAuthentications=password \
            -o PubkeyAuthentication=no $u@127.0.0.1 true </dev/null >/dev/null 2>&1" &&
        fail "ssh with a wrong password logged in"
    return 0
}
