#!/bin/sh
# Runs every cmocka unit test binary given (optionally under valgrind) and
# prints one closing "N passed, N failed" line.
set -u
pass=0; fail=0
for t in "$@"; do
        if [ "${VALGRIND:-0}" = 1 ]; then
                valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect,possible \
                        --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=99 "$t"
        else
                "$t"
        fi
        if [ $? = 0 ]; then pass=$((pass + 1)); else echo "FAILED: $t" >&2; fail=$((fail + 1)); fi
done
echo "unit: $pass passed, $fail failed"
[ "$fail" = 0 ]
