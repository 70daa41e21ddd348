#!/bin/sh
# The fake Connect's own tests (Python standard library only).
set -eu
[ -d tests/fake-connect ] || exit 0
found=0
for t in tests/fake-connect/test_*.py; do
        [ -e "$t" ] || continue
        found=1
done
[ "$found" = 1 ] || { echo "fake-connect: no tests yet"; exit 0; }
cd tests/fake-connect && exec python3 -m unittest discover -p "test_*.py"
