#!/usr/bin/env bash
# Our PAM module against upstream's in one Debian sid container: now sections 1 and 2 of
# bench/login.sh (open+close interleaved with pam_permit, upstream's module and ours, in file
# mode and through wtmpdbd; then simultaneous sessions). Same environment (RUNS, CONCURRENT).
exec "$(dirname "$0")/login.sh" --only 1,2 "$@"
