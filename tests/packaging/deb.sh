#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# ctest packaging/deb: `dpkg-buildpackage -us -uc -b` on a copy of the tree
# (the source tree stays clean) builds the four packages, each holding what
# it should (dpkg-deb -c) with the right metadata (dpkg-deb -I), and lintian
# finds no error in them. Exit 77 (skipped) where dpkg-buildpackage or
# debhelper is not installed. One build, DEB_BUILD_OPTIONS=nocheck (the
# tests are this suite's business, not the package build's), parallel=2.
# usage: deb.sh SOURCE_DIR WORK_DIR
set -eu
src="$1"; work="$2"
case "$src" in /*) ;; *) src="$(pwd)/$src" ;; esac
set -- "$src" "$work"
for tool in dpkg-buildpackage dh dpkg-deb; do
	command -v "$tool" >/dev/null 2>&1 || { echo "SKIP: $tool not installed (Debian: dpkg-dev, debhelper)"; exit 77; }
done

rm -rf "$work"
mkdir -p "$work/sealpost"
# The tree as it stands (committed or not), without build trees or .git.
(cd "$src" && tar -c --exclude='./build*' --exclude=./.git --exclude=./b \
	--exclude=./debian/build --exclude='./debian/.debhelper' -f - .) | tar -x -C "$work/sealpost" -f -
cd "$work/sealpost"
echo "dpkg-buildpackage in $work/sealpost (log: $work/build.log)"
if ! DEB_BUILD_OPTIONS="nocheck parallel=2" dpkg-buildpackage -us -uc -b > "$work/build.log" 2>&1; then
	tail -n 60 "$work/build.log"
	echo "dpkg-buildpackage failed"
	exit 1
fi
cd "$work"
ver="$(dpkg-parsechangelog -l sealpost/debian/changelog -S Version)"
arch="$(dpkg --print-architecture)"
multi="$(dpkg-architecture -qDEB_HOST_MULTIARCH)"

fail=0
has() { # package path-regex
	grep -Eq "[[:space:]]\\./$2( -> .*)?\$" "$work/$1.contents" ||
		{ echo "$1: no $2"; fail=1; }
}
lacks() { # package path-regex
	! grep -Eq "[[:space:]]\\./$2" "$work/$1.contents" ||
		{ echo "$1: should not carry $2"; fail=1; }
}
for p in sealpostd libsealpost0 libsealpost-dev sealpost-tools; do
	deb="${p}_${ver}_${arch}.deb"
	[ -f "$deb" ] || { echo "not built: $deb"; ls "$work"; exit 1; }
	dpkg-deb -c "$deb" > "$work/$p.contents"
	dpkg-deb -I "$deb" > "$work/$p.info"
	dpkg-deb -f "$deb" Depends > "$work/$p.depends" || true
	echo "== $deb"
	cat "$work/$p.info" | sed -n '/Package:/,$p'
done

has sealpostd "usr/bin/sealpostd"
has sealpostd "lib/systemd/system/sealpostd.service"
has sealpostd "etc/sealpost/sealpostd.conf"
has sealpostd "usr/share/man/man8/sealpostd.8.gz"
has sealpostd "usr/share/doc/sealpostd/OPERATIONS.md"
has sealpostd "usr/share/doc/sealpostd/copyright"
has sealpostd "usr/share/sealpost/grafana/sealpost.json"
has sealpostd "usr/share/sealpost/prometheus/sealpost-rules.yml"
lacks sealpostd "usr/bin/sealpost$"
lacks sealpostd "var/lib/sealpost"
has libsealpost0 "usr/lib/$multi/libsealpost.so.0.*"
lacks libsealpost0 "usr/include"
has libsealpost-dev "usr/include/sealpost.h"
has libsealpost-dev "usr/lib/$multi/libsealpost.a"
has libsealpost-dev "usr/lib/$multi/libsealpost.so"
has libsealpost-dev "usr/lib/$multi/pkgconfig/sealpost.pc"
has libsealpost-dev "usr/lib/$multi/cmake/sealpost/sealpostConfig.cmake"
has sealpost-tools "usr/bin/sealpost"
has sealpost-tools "usr/bin/sealpost-loadgen"
has sealpost-tools "usr/share/man/man1/sealpost.1.gz"

# The unit: the packaged binary and config, enabled and started the Debian
# way (dh_installsystemd's maintainer scripts).
dpkg-deb --fsys-tarfile "sealpostd_${ver}_${arch}.deb" | tar -xO ./lib/systemd/system/sealpostd.service > "$work/unit"
grep -qx 'ExecStart="/usr/bin/sealpostd" --config "/etc/sealpost/sealpostd.conf"' "$work/unit" ||
	{ echo "sealpostd.service: ExecStart is not the packaged paths:"; grep ExecStart "$work/unit"; fail=1; }
grep -qx 'StateDirectory=sealpost' "$work/unit" && grep -qx 'DynamicUser=yes' "$work/unit" ||
	{ echo "sealpostd.service: no DynamicUser/StateDirectory"; fail=1; }
mkdir -p "$work/ctl"
dpkg-deb -e "sealpostd_${ver}_${arch}.deb" "$work/ctl"
grep -q 'deb-systemd-helper.*enable.*sealpostd.service\|deb-systemd-helper unmask .sealpostd.service' "$work/ctl/postinst" ||
	{ echo "sealpostd postinst does not enable the unit"; fail=1; }
grep -qx '/etc/sealpost/sealpostd.conf' "$work/ctl/conffiles" ||
	{ echo "sealpostd: /etc/sealpost/sealpostd.conf is not a conffile"; fail=1; }
# The library's package metadata.
grep -q 'libsealpost0 (= ' "$work/libsealpost-dev.depends" ||
	{ echo "libsealpost-dev does not depend on its exact libsealpost0"; fail=1; }
grep -q 'libsodium' "$work/libsealpost0.depends" ||
	{ echo "libsealpost0: no shlibs dependency on libsodium"; fail=1; }
[ "$fail" = 0 ] || exit 1

# What the packages hold works as installed (unpacked into a directory, not
# onto this machine): the packaged unit passes systemd-analyze verify with
# its ExecStart pointed at the unpacked daemon; that daemon accepts the
# packaged config; an app builds against libsealpost-dev through its
# pkg-config file (shared, and --static) and runs against libsealpost0.
root="$work/root"
rm -rf "$root"
mkdir -p "$root"
for deb in *_"${ver}"_"${arch}".deb; do dpkg-deb -x "$deb" "$root"; done
"$root/usr/bin/sealpostd" --check-config --config "$root/etc/sealpost/sealpostd.conf" > "$work/check.out"
grep -qx 'data-dir = /var/lib/sealpost' "$work/check.out" ||
	{ echo "packaged sealpostd does not take the packaged config"; exit 1; }
"$root/usr/bin/sealpost" --help > /dev/null
"$root/usr/bin/sealpost-loadgen" --help > /dev/null 2>&1 ||
	{ echo "packaged sealpost-loadgen --help fails"; exit 1; }
if command -v systemd-analyze >/dev/null 2>&1; then
	sed "s|^ExecStart=\"/usr/bin/sealpostd\"|ExecStart=\"$root/usr/bin/sealpostd\"|" "$work/unit" > "$work/sealpostd.service"
	grep -q "^ExecStart=\"$root/usr/bin/sealpostd\"" "$work/sealpostd.service"
	out="$(MANPATH="$root/usr/share/man:" systemd-analyze verify "$work/sealpostd.service" 2>&1)" ||
		{ echo "systemd-analyze verify (packaged unit): $out"; exit 1; }
	case "$out" in *sealpostd.service*) echo "systemd-analyze verify (packaged unit): $out"; exit 1 ;; esac
fi
export PKG_CONFIG_PATH="$root/usr/lib/$multi/pkgconfig"
cc -o "$work/consumer" "$1/tests/install/consumer.c" $(pkg-config --cflags --libs sealpost)
LD_LIBRARY_PATH="$root/usr/lib/$multi" "$work/consumer"
# Not linked against the build tree's copy by accident: the one resolved is
# the unpacked package's.
LD_LIBRARY_PATH="$root/usr/lib/$multi" ldd "$work/consumer" | grep -q "$root/usr/lib/$multi/libsealpost.so.0" ||
	{ echo "consumer did not resolve the packaged libsealpost.so.0"; exit 1; }
# -l prefers the .so: name the archive the .pc file's libdir holds.
cc -o "$work/consumer-static" "$1/tests/install/consumer.c" \
	$(pkg-config --static --cflags --libs sealpost | sed "s#-lsealpost\( \|\$\)#$root/usr/lib/$multi/libsealpost.a #")
! ldd "$work/consumer-static" | grep -q libsealpost ||
	{ echo "consumer-static links libsealpost.so"; exit 1; }
"$work/consumer-static"
# find_package(sealpost), the way an app's CMakeLists.txt does it.
cmake -S "$1/tests/install" -B "$work/app" -DCMAKE_PREFIX_PATH="$root/usr" > "$work/app.log" 2>&1 &&
	cmake --build "$work/app" >> "$work/app.log" 2>&1 ||
	{ cat "$work/app.log"; echo "find_package(sealpost) against libsealpost-dev failed"; exit 1; }
LD_LIBRARY_PATH="$root/usr/lib/$multi" "$work/app/consumer_shared"
"$work/app/consumer_static"
echo "unpacked packages: unit verified, config accepted, consumer built and run (pkg-config and find_package; shared and static)"

if command -v lintian >/dev/null 2>&1; then
	changes="sealpost_${ver}_${arch}.changes"
	lintian --tag-display-limit 0 "$changes" > "$work/lintian.out" 2>&1 || true
	echo "== lintian $changes"
	cat "$work/lintian.out"
	if grep -q '^E: ' "$work/lintian.out"; then
		echo "lintian reports errors"
		exit 1
	fi
	echo "lintian: $(grep -c '^W: ' "$work/lintian.out" || true) warnings, no errors"
else
	echo "lintian not installed: packages not checked by it"
fi
echo "deb: ok"
