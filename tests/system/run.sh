#!/bin/sh
# tests/system/run.sh (make check-system): the .deb in a booted Debian 12
# container under a real systemd, against the fake Connect on the host.
# See tests/system/system_test.py for what is checked and how.
#
# Needs root (debootstrap, chroot, systemd-nspawn, nsenter). Installs
# debootstrap and systemd-container when missing. Builds the .deb with
# packaging/build-deb.sh (without its unit tests and lintian, which
# "make check-unit" and "make deb" cover) when build/packages has none or
# a source file is newer than it; CONNECT_NUMBERS_DEB=path uses a given one.
# The Debian root is cached in /var/cache/connect-numbers-system-test
# (CONNECT_NUMBERS_SYSTEM_CACHE); the first run takes a minute or more to
# debootstrap it, later runs copy it. KEEP=1 keeps the run directory.
# Prints "system: N passed, M failed".
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"

if [ "$(id -u)" != 0 ]; then
        echo "system: needs root (debootstrap, chroot, systemd-nspawn, nsenter)" >&2
        echo "system: 0 passed, 1 failed"
        exit 1
fi

missing=""
command -v debootstrap >/dev/null 2>&1 || missing="$missing debootstrap"
command -v systemd-nspawn >/dev/null 2>&1 || missing="$missing systemd-container"
command -v nsenter >/dev/null 2>&1 || missing="$missing util-linux"
if [ -n "$missing" ]; then
        echo "system: installing:$missing" >&2
        # shellcheck disable=SC2086
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing >/dev/null ||
                { apt-get update -q >/dev/null &&
                  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing >/dev/null; }
fi

deb=${CONNECT_NUMBERS_DEB:-}
if [ -z "$deb" ]; then
        version=$(sed -n 's/^VERSION[[:space:]]*:=[[:space:]]*//p' Makefile)
        deb=$(ls build/packages/connect-numbers_"$version"_*.deb 2>/dev/null | head -n 1 || true)
        stale=""
        if [ -n "$deb" ]; then
                stale=$(find Makefile daemon systemd packaging man config README.md -newer "$deb" -type f 2>/dev/null | head -n 1)
        fi
        if [ -z "$deb" ] || [ -n "$stale" ]; then
                echo "system: building the .deb (packaging/build-deb.sh)" >&2
                mkdir -p build
                if ! DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:-} nocheck" LINTIAN=no \
                        sh packaging/build-deb.sh >build/system-build-deb.log 2>&1; then
                        tail -n 30 build/system-build-deb.log >&2
                        echo "system: 0 passed, 1 failed"
                        exit 1
                fi
                deb=$(ls build/packages/connect-numbers_"$version"_*.deb | head -n 1)
        fi
fi

exec python3 tests/system/system_test.py --deb "$deb"
