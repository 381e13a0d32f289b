#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# ctest packaging/install: `cmake --install` into a prefix other than the one
# the build was configured with installs everything an installation needs,
# the systemd unit names that prefix's sealpostd and config file and passes
# `systemd-analyze verify` (where systemd-analyze exists), and the installed
# sealpostd accepts the installed example config.
# usage: install.sh SOURCE_DIR BUILD_DIR WORK_DIR
set -eu
src="$1"; build="$2"; work="$3"
rm -rf "$work"
mkdir -p "$work"
prefix="$work/prefix with space"
cmake --install "$build" --prefix "$prefix" > "$work/install.log"

fail=0
need() { # path-glob what
	set -- "$prefix"/$1 "$2"
	[ -e "$1" ] || { echo "not installed: $2 ($1)"; fail=1; }
}
need "bin/sealpostd" "the daemon"
need "bin/sealpost" "the CLI"
need "bin/sealpost-loadgen" "the load generator"
need "lib*/libsealpost.so.0" "the shared library (soname)"
need "lib*/libsealpost.so" "the shared library (dev link)"
need "lib*/libsealpost.a" "the static library"
need "include/sealpost.h" "the header"
need "lib*/pkgconfig/sealpost.pc" "the pkg-config file"
need "lib*/cmake/sealpost/sealpostConfig.cmake" "the CMake package"
need "lib/systemd/system/sealpostd.service" "the systemd unit"
need "etc/sealpost/sealpostd.conf" "the example config"
need "share/doc/sealpost/README.md" "the README"
need "share/doc/sealpost/OPERATIONS.md" "the operator's guide"
need "share/doc/sealpost/PROTOCOL.md" "the protocol"
need "share/sealpost/grafana/sealpost.json" "the Grafana dashboard"
need "share/sealpost/prometheus/sealpost-rules.yml" "the Prometheus rules"
need "share/man/man8/sealpostd.8" "sealpostd(8)"
need "share/man/man1/sealpost.1" "sealpost(1)"
for page in "$src"/packaging/man/*.[1-8]; do
	b="$(basename "$page")"
	need "share/man/man${b##*.}/$b" "$b"
done
[ "$fail" = 0 ] || exit 1

unit="$prefix/lib/systemd/system/sealpostd.service"
want="ExecStart=\"$prefix/bin/sealpostd\" --config \"$prefix/etc/sealpost/sealpostd.conf\""
grep -qxF "$want" "$unit" || { echo "unit: want '$want', got:"; grep '^ExecStart' "$unit"; exit 1; }
grep -q '@' "$unit" && grep '@[A-Z_]*@' "$unit" && { echo "unit: unreplaced @VAR@"; exit 1; }
grep -qx "LimitCORE=0" "$unit" || { echo "unit: no LimitCORE=0 (a core dump would hold the keys)"; exit 1; }
grep -qx "LimitMEMLOCK=16M" "$unit" || { echo "unit: no LimitMEMLOCK=16M (session secrets slab for max-conns 16000)"; exit 1; }
url="$(printf '%s' "$prefix" | sed 's/ /%%20/g')"
grep -qxF "Documentation=man:sealpostd(8) file:$url/share/doc/sealpost/OPERATIONS.md" "$unit" ||
	{ echo "unit: Documentation= does not name the installed docs"; exit 1; }

# The installed daemon takes the installed config (check-config touches
# nothing: the data directory /var/lib/sealpost is not created).
"$prefix/bin/sealpostd" --check-config --config "$prefix/etc/sealpost/sealpostd.conf" > "$work/check.out"
grep -qx 'data-dir = /var/lib/sealpost' "$work/check.out"

if command -v systemd-analyze >/dev/null 2>&1; then
	# verify wants the ExecStart binary to exist (it does, installed) and
	# runs man for Documentation=man:sealpostd(8): MANPATH names the
	# prefix's pages, which a system prefix has on man's path anyway.
	out="$(MANPATH="$prefix/share/man:" systemd-analyze verify "$unit" 2>&1)" || { echo "systemd-analyze verify failed: $out"; exit 1; }
	case "$out" in *sealpostd.service*) echo "systemd-analyze verify: $out"; exit 1 ;; esac
	echo "systemd-analyze verify: clean"
else
	echo "systemd-analyze not installed: unit not verified"
fi
echo "install: ok ($prefix)"
