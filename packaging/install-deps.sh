#!/bin/sh
# Installs the Debian packages that building and testing connect-numbers
# needs, when any is missing. As root it runs apt-get; otherwise it prints
# the exact command and stops.
set -eu
PKGS="build-essential pkg-config libcurl4-openssl-dev libssl-dev libyaml-dev libsystemd-dev
libjansson-dev libcmocka-dev openssl systemd ca-certificates valgrind clang libclang-rt-14-dev"
missing=""
for p in $PKGS; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
cmd="apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" != 0 ]; then
        echo "connect-numbers needs these Debian packages:$missing" >&2
        echo "run as root: apt-get update && $cmd" >&2
        exit 1
fi
echo "installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || apt-get update
# shellcheck disable=SC2086
$cmd
