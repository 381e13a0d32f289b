#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Installs the Debian 12 packages sealpost needs to build and test, and only
# those that are missing (so a second run costs one dpkg query, no network).
set -eu

PKGS="build-essential cmake pkg-config git
liburing-dev libsodium-dev libprotobuf-c-dev protobuf-c-compiler librocksdb-dev
libcmocka-dev libjansson-dev libmicrohttpd-dev libinih-dev prometheus
libmosquitto-dev libnats-dev
clang libclang-rt-14-dev"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ]; then
	echo "deps: all packages present"
	exit 0
fi

echo "deps: installing:$missing"
SUDO=""
if [ "$(id -u)" != 0 ]; then
	SUDO="sudo"
fi
# prometheus is installed for promtool only; keep its service from starting.
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends $missing
