#!/bin/sh
# bench/run.sh: the load benchmark behind `make bench` (which builds first).
# Installs gnuplot-nox for the plot if it is missing (Debian, as root), then
# runs bench/bench.py: converge, steady state and idle against the fake
# Connect, results in bench/results/. Arguments go to bench.py (--help).
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export BUILD
if [ ! -x "$BUILD/connect-numbersd" ]; then
        echo "bench: $BUILD/connect-numbersd is missing: run make first" >&2
        exit 1
fi
if ! command -v gnuplot >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
                echo "bench: installing gnuplot-nox for the plot" >&2
                DEBIAN_FRONTEND=noninteractive apt-get install -y -q gnuplot-nox >/dev/null 2>&1 ||
                        { apt-get update -q >/dev/null 2>&1 &&
                          DEBIAN_FRONTEND=noninteractive apt-get install -y -q gnuplot-nox >/dev/null 2>&1; } ||
                        echo "bench: could not install gnuplot-nox; no converge.png" >&2
        else
                echo "bench: gnuplot not found (apt-get install gnuplot-nox); no converge.png" >&2
        fi
fi
exec python3 bench/bench.py "$@"
