#!/bin/sh
# Installs the Debian packages connect-numbers needs, when any is missing.
#
#   sh packaging/install-deps.sh          what `make` and `make install` need:
#                                         the compiler, pkg-config and the
#                                         -dev packages of the libraries.
#   sh packaging/install-deps.sh --test   that, plus what the test targets
#                                         need (make check, check-*, demo,
#                                         fuzz, bench).
#
# The Makefile runs it (build stamp $(BUILD)/.deps-ok, test stamp
# $(BUILD)/.test-deps-ok). As root it runs apt-get, with apt-get update first
# when the package lists are empty (a fresh debootstrap) or an install
# fails; otherwise it prints the exact command and stops. Nothing is
# installed when everything is there.
set -eu

# Build: compiler and headers, nothing else.
BUILD_PKGS="build-essential pkg-config libcurl4-openssl-dev libssl-dev libyaml-dev libsystemd-dev libjansson-dev"

# Tests, and what needs each:
#  libcmocka-dev          the unit tests (tests/unit)
#  valgrind               check-valgrind, and VALGRIND=1 integration runs
#  clang libclang-rt-14-dev  the libFuzzer targets (fuzz, check-fuzz)
#  python3                the fake Connect, the integration tests, demo,
#                         bench, the system test (standard library only)
#  openssl                the fake Connect makes its TLS certificates with it
#  ca-certificates        a sane trust store for libcurl
#  systemd                journald, journalctl and systemd-analyze
#                         (check-unit-file, the journald integration tests)
#  man-db                 systemd-analyze verify resolves the unit's
#                         Documentation=man: pages with man
#  procps                 /bin/kill, which the unit's ExecReload= names and
#                         systemd-analyze verify looks for
#  prometheus             promtool, which checks the metrics file (test-metrics)
#  python3-jsonschema python3-yaml
#                         tests/check-schema.py: config/numbers.schema.json
#                         against the test YAML files
#  bash-completion        tests/check-completion.sh loads the completion
#                         with the helpers it relies on (_init_completion)
TEST_PKGS="libcmocka-dev valgrind clang libclang-rt-14-dev python3 openssl ca-certificates systemd man-db procps prometheus python3-jsonschema python3-yaml bash-completion"

case "${1:-}" in
"") PKGS=$BUILD_PKGS ;;
--test) PKGS="$BUILD_PKGS $TEST_PKGS" ;;
*)
        echo "usage: install-deps.sh [--test]" >&2
        exit 2
        ;;
esac

missing=""
for p in $PKGS; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

cmd="apt-get install -y -q --no-install-recommends$missing"
if [ "$(id -u)" != 0 ]; then
        echo "connect-numbers needs these Debian packages:$missing" >&2
        echo "run as root: apt-get update && $cmd" >&2
        exit 1
fi
echo "install-deps: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# A fresh debootstrap has no package lists: update before the first try.
if ! ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1; then
        apt-get update -q
fi
# shellcheck disable=SC2086
$cmd || { apt-get update -q && $cmd; }
