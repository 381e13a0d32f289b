#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The README's two quick-start commands:
#   scripts/quickstart.sh run    install what is missing, build, run sealpostd on its defaults
#   scripts/quickstart.sh test   install what is missing, build, run the whole test suite
# Environment: BUILD_DIR (default build), SP_SANITIZE_TOO=0 to skip the ASan/UBSan pass,
# SP_FUZZ_TOO=0 to skip the libFuzzer pass (scripts/fuzz.sh; FUZZ_SECONDS per target).
set -eu

cd "$(dirname "$0")/.."
mode="${1:-run}"
build="${BUILD_DIR:-build}"
jobs="$(nproc 2>/dev/null || echo 2)"

sh scripts/deps.sh

configure_and_build() {
	dir="$1"; shift
	cmake -S . -B "$dir" "$@" >/dev/null
	cmake --build "$dir" -j "$jobs"
}

case "$mode" in
run)
	configure_and_build "$build"
	shift || true
	exec "$build/bin/sealpostd" "$@"
	;;
test)
	configure_and_build "$build"
	(cd "$build" && ctest --output-on-failure -j "$jobs")
	if [ "${SP_SANITIZE_TOO:-1}" = 1 ]; then
		echo "== the same suite under AddressSanitizer + UndefinedBehaviorSanitizer =="
		configure_and_build "$build-asan" -DSP_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
		(cd "$build-asan" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allocator_may_return_null=1 \
			UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
			ctest --output-on-failure -j "$jobs")
	fi
	if [ "${SP_FUZZ_TOO:-1}" = 1 ]; then
		echo "== every libFuzzer target (clang, ASan + UBSan), ${FUZZ_SECONDS:-20}s each =="
		sh scripts/fuzz.sh
	fi
	;;
*)
	echo "usage: $0 run [sealpostd options] | test" >&2
	exit 2
	;;
esac
