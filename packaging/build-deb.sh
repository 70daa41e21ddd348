#!/bin/sh
# build-deb.sh (make deb): builds the connect-numbers .deb from the working
# tree. Copies the tree (without build output) to a temporary directory
# with packaging/debian as debian/, builds the source package and the
# binary package, puts the .deb in build/packages/, runs lintian (errors
# and warnings fail the build) and lists the package's files.
# Missing build tools or Build-Depends are installed with apt-get when run
# as root; otherwise the command to run is printed.
# DEB_BUILD_OPTIONS=nocheck skips the unit tests of the package build;
# LINTIAN=no skips lintian (tests/system/run.sh uses both: it tests the
# installed package, "make check-unit" and "make deb" gate the rest).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
out="$top/build/packages"
version=$(sed -n 's/^VERSION[[:space:]]*:=[[:space:]]*//p' "$top/Makefile")
deb_version=$(sed -n '1s/^connect-numbers (\([^)]*\)).*/\1/p' "$top/packaging/debian/changelog")
if [ "$version" != "$deb_version" ]; then
        echo "build-deb: Makefile VERSION is '$version' but packaging/debian/changelog says '$deb_version'" >&2
        echo "build-deb: add a changelog entry (dch -v $version) first" >&2
        exit 1
fi

apt_install() {
        if [ "$(id -u)" != 0 ]; then
                echo "build-deb: missing:$*" >&2
                echo "build-deb: run as root: apt-get update && apt-get install -y --no-install-recommends$*" >&2
                exit 1
        fi
        echo "build-deb: installing:$*" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null ||
                { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null; }
}

tools=""
for pair in dpkg-buildpackage:dpkg-dev dh:debhelper lintian:lintian make:make cc:build-essential fakeroot:fakeroot; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || tools="$tools ${pair#*:}"
done
# shellcheck disable=SC2086
[ -z "$tools" ] || apt_install $tools

tmp=$(mktemp -d /tmp/connect-numbers-deb.XXXXXX)
trap 'rm -rf "$tmp"' EXIT INT TERM
src="$tmp/connect-numbers-$version"
mkdir "$src"
# The working tree as it is (committed or not), without build output,
# git metadata or editor droppings.
(cd "$top" && tar -cf - --exclude=./.git --exclude=./build --exclude='./build-*' --exclude=__pycache__ --exclude='*.pyc' \
        --exclude=./daemon/connect-numbersd --exclude=./debian --exclude='*.swp' --exclude='*~' .) |
        (cd "$src" && tar -xf -)
cp -R "$top/packaging/debian" "$src/debian"
chmod 0755 "$src/debian/rules"

unmet=$(cd "$src" && dpkg-checkbuilddeps 2>&1 | sed -n 's/.*Unmet build dependencies: //p')
if [ -n "$unmet" ]; then
        # Drop version constraints and alternatives: "a (>= 1) | b" -> "a".
        pkgs=$(echo "$unmet" | sed 's/([^)]*)//g; s/|[^ ]*//g')
        # shellcheck disable=SC2086
        apt_install $pkgs
fi

log="$tmp/build.log"
echo "build-deb: building connect-numbers $version in $src" >&2
if ! (cd "$tmp" && dpkg-source -b "connect-numbers-$version" && cd "$src" && dpkg-buildpackage -us -uc -b) >"$log" 2>&1; then
        mkdir -p "$out" && cp "$log" "$out/build-deb.log"
        tail -n 60 "$log" >&2
        echo "build-deb: FAILED (last lines above; whole log in build/packages/build-deb.log)" >&2
        exit 1
fi

mkdir -p "$out"
rm -f "$out"/connect-numbers_*.deb "$out"/connect-numbers-dbgsym_*.*deb "$out"/connect-numbers_*.lintian
cp "$tmp"/connect-numbers_"$version"_*.deb "$out/"
for f in "$tmp"/connect-numbers-dbgsym_*deb; do [ -e "$f" ] && cp "$f" "$out/"; done
cp "$log" "$out/build-deb.log"
deb=$(ls "$out"/connect-numbers_"$version"_*.deb)

if [ "${LINTIAN:-yes}" = no ]; then
        echo "build-deb: lintian skipped (LINTIAN=no)" >&2
        echo "build-deb: $deb"
        exit 0
fi
echo "== lintian" >&2
lint="$out/connect-numbers_$version.lintian"
rc=0
lintian --fail-on error,warning --display-info "$tmp/connect-numbers_$version.dsc" "$deb" >"$lint" 2>&1 || rc=$?
cat "$lint"
if [ "$rc" != 0 ]; then
        echo "build-deb: lintian found errors or warnings (exit $rc)" >&2
        exit 1
fi
echo "build-deb: lintian: no errors, no warnings" >&2

echo "== dpkg -c $(basename "$deb")"
dpkg -c "$deb"
echo "build-deb: $deb"
