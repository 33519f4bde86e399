#!/bin/sh
# Install what forkpool needs to build and test (Debian 12).  Idempotent:
# does nothing when every package is already there.
set -eu
PKGS="build-essential autoconf automake libtool pkg-config libev-dev
libmsgpack-dev check libjansson-dev libsodium-dev libseccomp-dev
libsystemd-dev libyajl-dev libssl-dev mandoc man-db
libhiredis-dev redis-server python3 python3-msgpack"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" \
        || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
