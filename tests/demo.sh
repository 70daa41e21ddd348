#!/bin/sh
# demo.sh: connect-numbersd against the fake Connect service, end to end,
# with readable logs. Run from the repository root (`make demo`).
#
#   make demo            two `--once` passes, then `--status`; exit 0 when the
#                        desired state holds except the quota-limited pool
#   make demo FOLLOW=1   the service in the foreground until Ctrl-C
#
# The fake (tests/fake-connect/fake_connect.py) runs with a little realism:
# claims take ~3 s, the first claim ends FAILED once, and one target's
# phone-number limit is 2 while its pool wants 3. Between the passes both
# clocks move 5 minutes forward (CONNECT_NUMBERS_CLOCK_OFFSET for the daemon,
# POST /admin/clock for the fake) so that the FAILED number is claimed again
# inside its one-day window. Everything started here is stopped on exit.
# Environment: CONNECT_NUMBERSD (binary), FOLLOW=1, KEEP_TMP=1 (keep the
# temp dir: logs, state, fake.json).
set -eu

ROOT=$(pwd)
[ -f "$ROOT/tests/fake-connect/fake_connect.py" ] || { echo "demo: run from the repository root" >&2; exit 1; }
DAEMON=${CONNECT_NUMBERSD:-}
if [ -z "$DAEMON" ]; then
        for d in "$ROOT/build/connect-numbersd" "$ROOT/daemon/connect-numbersd"; do
                if [ -x "$d" ]; then DAEMON=$d; break; fi
        done
fi
if [ -z "$DAEMON" ] || [ ! -x "$DAEMON" ]; then
        echo "demo: connect-numbersd not built (make)" >&2
        exit 1
fi

SMALL_OFFICE=arn:aws:connect:us-east-1:111122223333:instance/9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d
# What must hold at the end: TARGET/POOL=CLAIMED numbers (small-office/main
# wants 3 but its limit is 2).
EXPECT="support-us/main=2 support-us/tollfree=1 sales-global/uk=1 small-office/main=2"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/connect-numbers-demo.XXXXXX")
FAKE_PID=
cleanup() {
        status=$?
        trap - EXIT INT TERM
        if [ -n "$FAKE_PID" ]; then
                kill "$FAKE_PID" 2>/dev/null || true
                wait "$FAKE_PID" 2>/dev/null || true
        fi
        if [ "${KEEP_TMP:-0}" = 1 ] || [ "$status" != 0 ]; then
                echo "demo: files kept in $TMP (fake log: $TMP/fake/fake.log)" >&2
        else
                rm -rf "$TMP"
        fi
        exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\n==> %s\n' "$*"; }

# JSON helpers (python3 is required by the fake anyway).
json_get() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
admin() {   # admin METHOD PATH [JSON]
        python3 - "$ADMIN" "$1" "$2" "${3:-}" <<'PY'
import sys, urllib.request
base, method, path, body = sys.argv[1:5]
req = urllib.request.Request(base + path, data=body.encode() if body else None, method=method,
                             headers={"Content-Type": "application/json"})
with urllib.request.urlopen(req, timeout=30) as r:
    sys.stdout.write(r.read().decode())
PY
}

# ------------------------------------------------------------------ the fake
step "starting the fake Connect service in $TMP/fake"
mkdir -p "$TMP/fake" "$TMP/state"
python3 "$ROOT/tests/fake-connect/fake_connect.py" --dir "$TMP/fake" --claim-delay 3 --metadata-delay 1 \
        --rate 10 --burst 10 >"$TMP/fake/stdout" 2>"$TMP/fake/fake.log" &
FAKE_PID=$!
i=0
while [ ! -s "$TMP/fake/fake.json" ]; do
        kill -0 "$FAKE_PID" 2>/dev/null || { cat "$TMP/fake/fake.log" >&2; echo "demo: the fake did not start" >&2; exit 1; }
        i=$((i + 1)); [ "$i" -lt 300 ] || { echo "demo: the fake did not start in 30 s" >&2; exit 1; }
        sleep 0.1
done
ENDPOINT=$(json_get "$TMP/fake/fake.json" endpoint_url)
CA_FILE=$(json_get "$TMP/fake/fake.json" ca_file)
ADMIN=$(json_get "$TMP/fake/fake.json" admin_url)
echo "endpoint $ENDPOINT, CA $CA_FILE, admin $ADMIN"
admin POST /admin/config "{\"fail_next_claims\": 1, \"quotas\": {\"$SMALL_OFFICE\": 2}}" >/dev/null
echo "the next claim will end FAILED once; small-office may hold 2 numbers"

CONFIG="$TMP/numbers.yaml"
sed -e "s|@ENDPOINT@|$ENDPOINT|g" -e "s|@CA_FILE@|$CA_FILE|g" "$ROOT/config/numbers.demo.yaml" >"$CONFIG"

# ------------------------------------------------------------------ environment
# Only the fake's keys: no profile, session token, CA or endpoint override
# from the caller's environment, no instance metadata.
for v in AWS_SESSION_TOKEN AWS_SECURITY_TOKEN AWS_PROFILE AWS_DEFAULT_PROFILE AWS_CA_BUNDLE \
        AWS_ENDPOINT_URL AWS_ENDPOINT_URL_CONNECT AWS_SHARED_CREDENTIALS_FILE AWS_CONFIG_FILE \
        AWS_CONTAINER_CREDENTIALS_RELATIVE_URI AWS_CONTAINER_CREDENTIALS_FULL_URI \
        AWS_CONTAINER_AUTHORIZATION_TOKEN AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE \
        AWS_WEB_IDENTITY_TOKEN_FILE AWS_ROLE_ARN AWS_ROLE_SESSION_NAME AWS_EC2_METADATA_SERVICE_ENDPOINT \
        AWS_REGION AWS_DEFAULT_REGION AWS_MAX_ATTEMPTS AWS_RETRY_MODE CREDENTIALS_DIRECTORY STATE_DIRECTORY \
        CONNECT_NUMBERS_CLOCK_OFFSET SSL_CERT_FILE CURL_CA_BUNDLE JOURNAL_STREAM NOTIFY_SOCKET \
        WATCHDOG_USEC WATCHDOG_PID; do
        unset "$v"
done
AWS_ACCESS_KEY_ID=$(json_get "$TMP/fake/fake.json" access_key_id)
AWS_SECRET_ACCESS_KEY=$(json_get "$TMP/fake/fake.json" secret_access_key)
AWS_EC2_METADATA_DISABLED=true
export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_EC2_METADATA_DISABLED

show_numbers() {
        admin GET /admin/numbers | python3 -c '
import json, sys
rows = json.load(sys.stdin)["numbers"]
print("%-14s %-12s %-22s %-9s %s" % ("number", "status", "pool tag", "claims", "note"))
for n in rows:
    note = "released" if n["released"] else ("window over" if n.get("expired") else (n["status_message"] or ""))
    print("%-14s %-12s %-22s %-9s %s" % (n["phone_number"], n["status"],
          n["tags"].get("connect-numbers:pool", "-"), n["claims"], note[:70]))
'
}

# ------------------------------------------------------------------ follow mode
if [ "${FOLLOW:-0}" = 1 ]; then
        step "connect-numbersd in the foreground (Ctrl-C stops it; the fake stops with it)"
        # A handler (not an ignore) so that the daemon still receives Ctrl-C.
        trap 'echo "demo: interrupted"' INT
        rc=0
        "$DAEMON" -c "$CONFIG" --state-dir "$TMP/state" --log-target console || rc=$?
        trap - INT
        step "numbers at the fake"
        show_numbers
        case $rc in 0|130) exit 0 ;; *) echo "demo: connect-numbersd exited $rc" >&2; exit "$rc" ;; esac
fi

# ------------------------------------------------------------------ two passes
run_once() {
        rc=0
        "$DAEMON" --once -c "$CONFIG" --state-dir "$TMP/state" --log-target console --wait 2m || rc=$?
        case $rc in
        0) echo "demo: exit 0 (desired state holds)" ;;
        75) echo "demo: exit 75 (work remains: in progress, a failed claim to retry, or a quota limit)" ;;
        *) echo "demo: connect-numbersd --once exited $rc" >&2; exit 1 ;;
        esac
}

step "pass 1: connect-numbersd --once"
run_once
step "numbers at the fake after pass 1"
show_numbers

step "5 minutes later (both clocks move): pass 2"
admin POST /admin/clock '{"offset": 300}' >/dev/null
CONNECT_NUMBERS_CLOCK_OFFSET=+5m
export CONNECT_NUMBERS_CLOCK_OFFSET
run_once
step "numbers at the fake after pass 2"
show_numbers

step "connect-numbersd --status"
"$DAEMON" --status --state-dir "$TMP/state" || { echo "demo: --status failed" >&2; exit 1; }

# ------------------------------------------------------------------ verdict
step "checking the result"
admin GET /admin/numbers >"$TMP/numbers.json"
admin GET /admin/calls >"$TMP/calls.json"
python3 - "$TMP/numbers.json" "$TMP/calls.json" "$EXPECT" <<'PY'
import json, sys
numbers = json.load(open(sys.argv[1]))["numbers"]
calls = json.load(open(sys.argv[2]))
expect = dict(kv.split("=") for kv in sys.argv[3].split())
held = {}
for n in numbers:
    if n["released"] or n.get("expired") or n["status"] != "CLAIMED":
        continue
    tag = n["tags"].get("connect-numbers:pool")
    held[tag] = held.get(tag, 0) + 1
ok = True
for pool, want in sorted(expect.items()):
    got = held.get(pool, 0)
    mark = "ok" if got == int(want) else "WRONG"
    ok &= got == int(want)
    print("  %-22s CLAIMED %d, expected %s  %s" % (pool, got, want, mark))
extra = sorted(set(held) - set(expect))
if extra:
    ok = False
    print("  unexpected numbers for: %s" % ", ".join(str(x) for x in extra))
reclaimed = [n["phone_number"] for n in numbers if n["claims"] > 1 and n["status"] == "CLAIMED"]
print("  claimed again after a FAILED claim: %s" % (", ".join(reclaimed) or "none"))
print("  API calls: %s" % ", ".join("%s %d" % kv for kv in sorted(calls["calls"].items())))
if calls["throttled"]:
    print("  throttled: %s" % calls["throttled"])
if calls["validation_failures"]:
    ok = False
    print("  requests the fake refused as invalid: %d" % calls["validation_failures"])
    for m in calls["validation_messages"][:5]:
        print("    " + m[:200])
print("demo: %s" % ("the desired state holds (small-office is at its limit of 2)" if ok else "UNEXPECTED RESULT"))
sys.exit(0 if ok else 1)
PY
