#!/bin/bash
# Failed logins through real PAM stacks: pamtester with a failing stack, and `su` run by a user
# other than root with a wrong password, each leave a failure that `wtmpdb lastb` shows as
# root and that `nobody` cannot read; the next successful session with `showfailed` is told
# through the conversation (pamtester prints PAM_TEXT_INFO). Debian's common-auth shape: the
# real module jumps over the module on success.
source "$(dirname "$0")/common.sh"
require_root
need_packages pamtester util-linux login sqlite3
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
failed=$db-failed
auth_lines="auth [success=2 default=ignore] pam_unix.so nullok
auth [default=die] $MODULE authfail database=$db
auth requisite pam_deny.so
auth required pam_permit.so"

# 1. pamtester, a stack whose authentication fails.
svc=wtmpdb-e2e-failed-$$
pam_service "$svc" <<EOT
auth [success=2 default=ignore] pam_deny.so
auth [default=die] $MODULE authfail database=$db
auth requisite pam_deny.so
auth required pam_permit.so
account required pam_permit.so
session required $MODULE database=$db showfailed
EOT
if pamtester -I tty=pts/9 -I rhost=192.0.2.7 "$svc" "not-a-user pass" authenticate \
    </dev/null 2>"$TMP/err"; then
    fail "the failing stack authenticated"
fi
grep -q "Authentication failure" "$TMP/err" || fail "pamtester: $(cat "$TMP/err")"

# 2. su as a user other than root, wrong password for root.
cp -a /etc/pam.d/su "$TMP/su.orig"
{ echo "auth sufficient pam_rootok.so"; echo "$auth_lines"; grep -v -e '^@include common-auth' \
    -e 'pam_rootok' "$TMP/su.orig"; } >"$TMP/su.new"
pam_replace su <"$TMP/su.new"
if echo "wrong-password" | setpriv --reuid="$user" --regid="$user" --init-groups su root -c true \
    >"$TMP/su.out" 2>&1; then
    fail "su with a wrong password succeeded"
fi
log "su said: $(tr '\n' ' ' <"$TMP/su.out")"

out=$("$BIN" lastb -f "$db")
log "lastb:"
echo "$out"
echo "$out" | grep -q "^not-a-us pts/9        192.0.2.7 " || fail "pamtester's failure missing"
echo "$out" | grep -q "^root " || fail "su's failure missing"
mode=$(stat -c %a "$failed")
[ "$mode" = 600 ] || fail "mode $mode"
[ "$(sql "$db" "SELECT count(*) FROM wtmp" 2>/dev/null || echo 0)" = 0 ] \
    || fail "failures in the session database"

# nobody: one error line, no data, and no file of it readable.
cp "$BIN" "$TMP/wtmpdb-bin"
chmod 0755 "$TMP/wtmpdb-bin"
if setpriv --reuid=65534 --regid=65534 --clear-groups "$TMP/wtmpdb-bin" lastb -f "$db" \
    >"$TMP/nobody.out" 2>"$TMP/nobody.err"; then
    fail "nobody read the failures"
fi
[ ! -s "$TMP/nobody.out" ] || fail "nobody got data: $(cat "$TMP/nobody.out")"
grep -q "readable only by root" "$TMP/nobody.err" || fail "nobody: $(cat "$TMP/nobody.err")"
for f in "$failed"*; do
    if setpriv --reuid=65534 --regid=65534 --clear-groups cat "$f" >/dev/null 2>&1; then
        fail "nobody reads $f"
    fi
done

# 3. The next successful session of root is told, once (su's attempt and two more).
for i in 1 2; do
    pamtester -I tty=pts/9 -I rhost=192.0.2.8 "$svc" root authenticate \
        </dev/null 2>/dev/null && fail "authenticated"
done
pamtester -v "$svc" root open_session close_session >"$TMP/told" 2>&1 \
    || fail "open_session: $(cat "$TMP/told")"
grep -q "There were 3 failed login attempts since the last successful login." "$TMP/told" \
    || fail "no notice: $(cat "$TMP/told")"
grep -q "Last failed login: .* from 192.0.2.8 on pts/9" "$TMP/told" \
    || fail "no origin: $(cat "$TMP/told")"
pamtester "$svc" root open_session close_session >"$TMP/told2" 2>&1 || true
grep -q "failed login" "$TMP/told2" && fail "told twice: $(cat "$TMP/told2")"
log "told: $(grep -h "failed" "$TMP/told" | tr '\n' ' ')"
log "PASS"
