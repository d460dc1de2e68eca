#!/bin/sh
# Records the container's "boot", then runs sshd in the foreground; `docker stop` records
# the shutdown.
set -e
ssh-keygen -A >/dev/null
wtmpdb boot -q || true
trap 'wtmpdb shutdown || true; kill "$pid" 2>/dev/null' TERM INT
/usr/sbin/sshd -D -e &
pid=$!
wait "$pid"
