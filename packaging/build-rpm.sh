#!/bin/sh
# build-rpm.sh (make rpm): builds the connect-numbers RPM with rpmbuild
# (Debian's rpm package will do) from a tarball of the working tree, puts
# the .rpm and .src.rpm in build/packages/, lists the package's files and
# compares them with the .deb when one is there.
# --nodeps: on Debian the BuildRequires are Debian packages, not RPMs;
# packaging/install-deps.sh covers them. %check runs the unit tests
# (DEB_BUILD_OPTIONS=nocheck skips them, as for the .deb).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
out="$top/build/packages"
spec="$top/packaging/rpm/connect-numbers.spec"
version=$(sed -n 's/^VERSION[[:space:]]*:=[[:space:]]*//p' "$top/Makefile")
spec_version=$(sed -n 's/^Version:[[:space:]]*//p' "$spec")
if [ "$version" != "$spec_version" ]; then
        echo "build-rpm: Makefile VERSION is '$version' but the spec says '$spec_version'" >&2
        exit 1
fi

if ! command -v rpmbuild >/dev/null 2>&1; then
        if [ "$(id -u)" != 0 ]; then
                echo "build-rpm: rpmbuild is missing; run as root: apt-get install -y rpm" >&2
                exit 1
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends rpm >/dev/null
fi

tmp=$(mktemp -d /tmp/connect-numbers-rpm.XXXXXX)
trap 'rm -rf "$tmp"' EXIT INT TERM
mkdir -p "$tmp/SOURCES" "$tmp/stage/connect-numbers-$version"
(cd "$top" && tar -cf - --exclude=./.git --exclude=./build --exclude='./build-*' --exclude=__pycache__ --exclude='*.pyc' \
        --exclude=./daemon/connect-numbersd --exclude=./debian --exclude='*.swp' --exclude='*~' .) |
        (cd "$tmp/stage/connect-numbers-$version" && tar -xf -)
tar -C "$tmp/stage" -czf "$tmp/SOURCES/connect-numbers-$version.tar.gz" "connect-numbers-$version"

# DEB_BUILD_OPTIONS=nocheck skips the unit tests here too (rpmbuild --nocheck).
nocheck=""
case " ${DEB_BUILD_OPTIONS:-} " in *" nocheck "*) nocheck=--nocheck ;; esac

log="$tmp/build.log"
echo "build-rpm: building connect-numbers $version" >&2
if ! rpmbuild --define "_topdir $tmp" --nodeps $nocheck -ba "$spec" >"$log" 2>&1; then
        mkdir -p "$out" && cp "$log" "$out/build-rpm.log"
        tail -n 60 "$log" >&2
        echo "build-rpm: FAILED (last lines above; whole log in build/packages/build-rpm.log)" >&2
        exit 1
fi

mkdir -p "$out"
rm -f "$out"/connect-numbers-*.rpm
find "$tmp/RPMS" "$tmp/SRPMS" -name '*.rpm' -exec cp {} "$out/" \;
cp "$log" "$out/build-rpm.log"
rpm=""
for f in "$out"/connect-numbers-"$version"-*.rpm; do
        case $f in *.src.rpm) ;; *) rpm=$f ;; esac
done

echo "== rpm -qlp $(basename "$rpm")"
rpm -qlp "$rpm"
echo "== scripts"
rpm -qp --scripts "$rpm"

# Same files as the .deb. The .deb puts the unit under /lib/systemd/system
# (where bookworm's dh_installsystemd looks), the same directory on a
# merged-/usr system; dpkg adds the Debian changelog and copyright.
deb=$(ls "$out"/connect-numbers_"$version"_*.deb 2>/dev/null | head -n 1 || true)
if [ -n "$deb" ]; then
        dpkg-deb -c "$deb" | awk '$1 ~ /^-/ { sub(/^\./, "", $6); print $6 }' |
                sed 's|^/lib/systemd/system/|/usr/lib/systemd/system/|' |
                grep -v -e '^/usr/share/doc/connect-numbers/changelog' -e '^/usr/share/doc/connect-numbers/copyright$' |
                sort >"$tmp/deb.list"
        rpm -qp --qf '[%{FILEMODES:perms} %{FILENAMES}\n]' "$rpm" | awk '$1 ~ /^-/ { print $2 }' | sort >"$tmp/rpm.list"
        if ! diff -u "$tmp/deb.list" "$tmp/rpm.list"; then
                echo "build-rpm: the .rpm and $(basename "$deb") ship different files" >&2
                exit 1
        fi
        echo "build-rpm: same files as $(basename "$deb")" >&2
fi
echo "build-rpm: $rpm"
