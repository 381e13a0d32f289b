#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Installs the Debian 12 packages sealpost needs to build and test, and only
# those that are missing (so a second run costs one dpkg query, no network).
set -eu

# curl: the README's Try it. prometheus: promtool (rules, metrics checks).
# debhelper, lintian: ctest packaging/deb (dpkg-buildpackage, once per run).
# libwslay-dev, libssl-dev: the WebSocket listener (wslay frames, libcrypto's SHA-1);
# nginx: it_ws_nginx (wss:// through nginx in front of sealpostd; skipped without it,
# and never started as a service: policy-rc.d below).
# mosquitto, nats-server, openssl, iproute2: it_bench's peer load-generator runs and
# bench/compare/run.sh (skipped with a message where the servers are absent).
# libnats-dev: sealpostd --cluster (broker/cluster/); nats-server: it_cluster runs
# a three-server NATS cluster with JetStream on loopback (skipped without it).
PKGS="build-essential cmake pkg-config git curl
liburing-dev libsodium-dev libssl-dev libcurl4-openssl-dev libprotobuf-c-dev protobuf-c-compiler librocksdb-dev
libcmocka-dev libjansson-dev libmicrohttpd-dev libinih-dev prometheus
libwslay-dev libssl-dev nginx
libmosquitto-dev libnats-dev mosquitto nats-server openssl iproute2
debhelper lintian
python3 python3-cffi python3-setuptools python3-pytest python3-pip python3-venv
zlib1g-dev gnuplot-nox
clang libclang-rt-14-dev"

# python3-cryptography: tests/vectors/xeddsa_kat.py checks its XEdDSA known
# answers (the prekey signatures, PROTOCOL.md 16) with it (ctest vectors/xeddsa_py).
PKGS="$PKGS python3-cryptography"

# gdb: gcore, for the tests that dump a running broker's memory and search it
# (it_core_secrets, it_seizure; skipped with a message without it).
PKGS="$PKGS gdb"

# chromium, fonts-dejavu-core: the browser test js/browser (headless, driven by
# playwright-core over the DevTools protocol; chromium-driver is not needed).
PKGS="$PKGS chromium fonts-dejavu-core"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done

# node and npm (client/js and its tests, js/ in ctest): Debian's nodejs (18)
# and npm unless a node and npm are already there (e.g. a newer nodejs that
# ships its own npm and conflicts with Debian's npm package).
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"

if [ -z "$missing" ]; then
	echo "deps: all packages present"
	exit 0
fi

echo "deps: installing:$missing"
SUDO=""
if [ "$(id -u)" != 0 ]; then
	SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q

# prometheus is installed for promtool only: its server must not start, now
# or at the next boot. During the install a policy-rc.d that forbids every
# start (exit 101, see invoke-rc.d(8); deb-systemd-invoke honours it too)
# keeps the maintainer scripts from starting it, with or without systemd;
# afterwards the service is disabled (systemctl works offline, also where
# systemd is not running; without systemctl, update-rc.d). An existing
# policy-rc.d (an image's own) is left as it is: it already decides.
new_prometheus=""
case " $missing " in *" prometheus "*|*" nginx "*) new_prometheus=1 ;; esac
policy=/usr/sbin/policy-rc.d
own_policy=""
if [ -n "$new_prometheus" ] && [ ! -e "$policy" ]; then
	printf '#!/bin/sh\n# written by sealpost scripts/deps.sh for one apt-get install\nexit 101\n' |
		$SUDO tee "$policy" >/dev/null
	$SUDO chmod 755 "$policy"
	own_policy=1
fi
rc=0
$SUDO apt-get install -y -q --no-install-recommends $missing || rc=$?
[ -z "$own_policy" ] || $SUDO rm -f "$policy"
[ "$rc" = 0 ] || exit "$rc"

# prometheus (for promtool) and nginx (for a test that runs its own) are
# installed as programs only: their services are disabled, never started.
for svc in prometheus nginx; do
	case " $missing " in *" $svc "*) ;; *) continue ;; esac
	if command -v systemctl >/dev/null 2>&1; then
		# --now only where systemd runs; offline, disable just removes the links.
		if [ -d /run/systemd/system ]; then
			$SUDO systemctl disable --now "$svc.service" >/dev/null 2>&1 || true
		else
			$SUDO systemctl disable "$svc.service" >/dev/null 2>&1 || true
		fi
	fi
	if [ -x "/etc/init.d/$svc" ] && command -v update-rc.d >/dev/null 2>&1; then
		$SUDO update-rc.d "$svc" disable >/dev/null 2>&1 || true
	fi
	echo "deps: $svc installed for the tests; its service is disabled and not started"
done
