#!/bin/sh
# check-unit-file.sh: static checks of the systemd unit and the journal
# message catalog, without a running systemd.
#  - systemd-analyze verify: the unit as shipped (only a missing
#    /usr/sbin/connect-numbersd on this host is tolerated) and a copy
#    whose ExecStart= names an existing binary (must be clean), with the
#    man pages of the tree on MANPATH so that Documentation= is checked;
#  - systemd-analyze security --offline: exposure 2.0 or lower;
#  - the settings that connect-numbersd(8) documents are present;
#  - the catalog compiles (journalctl --update-catalog into a temporary
#    root) and has an entry, with the expected headers, for every
#    MESSAGE_ID in daemon/log.h and for nothing else.
# Prints "unit-file: N passed, M failed"; exits non-zero on a failure.
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
unit="$top/systemd/connect-numbersd.service"
catalog="$top/systemd/connect-numbers.catalog"
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok - $*"; }
not_ok() { fail=$((fail + 1)); echo "not ok - $*"; }
check() { # check DESCRIPTION COMMAND...
        d=$1
        shift
        if "$@"; then ok "$d"; else not_ok "$d"; fi
}

tmp=$(mktemp -d /tmp/connect-numbers-unit.XXXXXX)
trap 'rm -rf "$tmp"' EXIT INT TERM

# Man pages of this tree, so that "man connect-numbersd(8)" resolves.
for m in "$top"/man/*.[0-9]; do
        [ -e "$m" ] || continue
        s=${m##*.}
        mkdir -p "$tmp/man/man$s"
        cp "$m" "$tmp/man/man$s/"
done
export MANPATH="$tmp/man:"

# 1. The unit as shipped.
SYSTEMD_LOG_COLOR=0 systemd-analyze verify "$unit" >"$tmp/verify.out" 2>&1
rc=$?
if [ -x /usr/sbin/connect-numbersd ]; then
        check "systemd-analyze verify (shipped unit) is clean" test "$rc" = 0 -a ! -s "$tmp/verify.out"
else
        grep -v -x "connect-numbersd.service: Command /usr/sbin/connect-numbersd is not executable: No such file or directory" \
                "$tmp/verify.out" >"$tmp/verify.rest"
        check "systemd-analyze verify (shipped unit): only the missing binary on this host" test ! -s "$tmp/verify.rest"
        [ -s "$tmp/verify.rest" ] && sed 's/^/    /' "$tmp/verify.rest"
fi

# 2. A copy whose binary exists (in ExecStart= and the check of
# ExecReload=) must verify without any message.
bin="$top/build/connect-numbersd"
[ -x "$bin" ] || bin=/bin/true
mkdir -p "$tmp/unit"
sed "s|^\(Exec[A-Za-z]*=\)/usr/sbin/connect-numbersd|\1$bin|" "$unit" >"$tmp/unit/connect-numbersd.service"
SYSTEMD_LOG_COLOR=0 systemd-analyze verify "$tmp/unit/connect-numbersd.service" >"$tmp/verify2.out" 2>&1
rc=$?
check "systemd-analyze verify (ExecStart=$bin) exits 0 with no message" test "$rc" = 0 -a ! -s "$tmp/verify2.out"
[ -s "$tmp/verify2.out" ] && sed 's/^/    /' "$tmp/verify2.out"

# 3. Exposure: --threshold is on the 0..100 scale of the 0.0..10.0 rating.
SYSTEMD_LOG_COLOR=0 systemd-analyze security --offline=true --threshold=20 --no-pager "$unit" >"$tmp/security.out" 2>&1
rc=$?
level=$(sed -n 's/.*Overall exposure level for connect-numbersd.service: \([0-9.]*\).*/\1/p' "$tmp/security.out")
check "systemd-analyze security: exposure ${level:-?} <= 2.0" test "$rc" = 0 -a -n "$level"

# 4. What connect-numbersd(8) "SYSTEMD INTEGRATION" and the packaging rely on.
for line in Type=notify ExecStart=/usr/sbin/connect-numbersd \
        "ExecReload=/usr/sbin/connect-numbersd --check-config -c /etc/connect-numbers/numbers.yaml" \
        "ExecReload=/bin/kill -HUP \$MAINPID" \
        WatchdogSec=60s Restart=on-failure RestartPreventExitStatus=78 DynamicUser=yes \
        StateDirectory=connect-numbers ConditionPathExists=/etc/connect-numbers/numbers.yaml \
        NoNewPrivileges=yes PrivateUsers=yes "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX" \
        CapabilityBoundingSet= WantedBy=multi-user.target; do
        check "unit has $line" grep -q -x -F "$line" "$unit"
done
check "unit has no IPAddressDeny= (the AWS endpoints have no fixed addresses)" \
        sh -c "! grep -q '^IPAddressDeny=' '$unit'"

# 5. The catalog.
ids=$(sed -n 's/^#define MESSAGE_ID_[A-Z_]* "\([0-9a-f]\{32\}\)"$/\1/p' "$top/daemon/log.h" | sort)
n_ids=$(echo "$ids" | grep -c .)
check "daemon/log.h defines 12 MESSAGE_IDs (found $n_ids)" test "$n_ids" = 12

mkdir -p "$tmp/root/usr/lib/systemd/catalog"
cp "$catalog" "$tmp/root/usr/lib/systemd/catalog/"
journalctl --root="$tmp/root" --update-catalog >"$tmp/update.out" 2>&1
rc=$?
check "journalctl --update-catalog compiles the catalog silently" \
        test "$rc" = 0 -a ! -s "$tmp/update.out" -a -s "$tmp/root/var/lib/systemd/catalog/database"
[ -s "$tmp/update.out" ] && sed 's/^/    /' "$tmp/update.out"

journalctl --root="$tmp/root" --list-catalog >"$tmp/list.out" 2>&1
listed=$(awk '{ print $1 }' "$tmp/list.out" | sort)
check "the catalog has exactly the MESSAGE_IDs of daemon/log.h" test "$listed" = "$ids"

for id in $ids; do
        journalctl --root="$tmp/root" --dump-catalog "$id" >"$tmp/entry" 2>&1
        check "catalog $id: Subject, Defined-By, Support, Documentation and a body" \
                sh -c "grep -q '^Subject: .' '$tmp/entry' && grep -q -x 'Defined-By: connect-numbers' '$tmp/entry' &&
                        grep -q '^Support: [a-z]*:.' '$tmp/entry' && grep -q '^Documentation: man:' '$tmp/entry' &&
                        [ \$(grep -c . '$tmp/entry') -ge 8 ]"
done

q=3397924d2cd44439856474d51b94ceda
journalctl --root="$tmp/root" --dump-catalog "$q" >"$tmp/quota" 2>&1
for text in "You've reached the limit of Phone Numbers. To increase the limit, contact support." \
        "Phone numbers per instance" "200 %" "rolling 180 days" "quota_backoff" "service quotas increase form"; do
        check "quota entry mentions \"$text\"" grep -q -F "$text" "$tmp/quota"
done
journalctl --root="$tmp/root" --dump-catalog 726fdf2a6b18422a90734a9771ee61ae >"$tmp/failed" 2>&1
check "claim-failed entry explains the one-day window and billing" \
        sh -c "grep -q 'one' '$tmp/failed' && grep -q 'day' '$tmp/failed' && grep -q 'not' '$tmp/failed' && grep -q 'billed' '$tmp/failed'"
journalctl --root="$tmp/root" --dump-catalog b56b327dab6448f7b61dd61fe1dd0e4d >"$tmp/released" 2>&1
check "released entry says a release cannot be undone" grep -q "cannot be undone" "$tmp/released"
journalctl --root="$tmp/root" --dump-catalog 74a9b527b5114d6c936bc5e72a541aa2 >"$tmp/config" 2>&1
check "configuration entry names --check-config" grep -q -- "--check-config" "$tmp/config"

echo "unit-file: $pass passed, $fail failed"
[ "$fail" = 0 ]
