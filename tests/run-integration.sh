#!/bin/sh
# Runs every integration test (tests/integration/test_*.py), each against its
# own fake Connect and the real binary, and prints "N passed, N failed".
set -u
pass=0; fail=0
for t in tests/integration/test_*.py; do
        [ -e "$t" ] || continue
        if python3 "$t"; then pass=$((pass + 1)); else echo "FAILED: $t" >&2; fail=$((fail + 1)); fi
done
echo "integration: $pass passed, $fail failed"
[ "$fail" = 0 ]
