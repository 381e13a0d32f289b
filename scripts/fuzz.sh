#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Runs every libFuzzer target for a bounded time and fails if any finds
# something. Part of `scripts/quickstart.sh test` (so of CI); on its own:
#   scripts/fuzz.sh            builds the fuzz preset (clang) in build-fuzz, then runs
# Environment:
#   FUZZ_SECONDS   seconds per target (default 20)
#   FUZZ_BUILD_DIR the fuzz build (default build-fuzz; made with `cmake --preset fuzz`)
#   FUZZ_NO_BUILD=1  use the build as it is
# Each target starts from its checked-in corpus (tests/fuzz/corpus/<target>:
# the regression inputs), the seeds its generator writes from real traffic,
# and a scratch directory that receives the inputs libFuzzer finds
# interesting (not checked in). A crash, leak, sanitizer report or timeout
# leaves its input in $FUZZ_BUILD_DIR/fuzz-run/findings/ and fails the run;
# add that file to tests/fuzz/corpus/<target>/ with the fix, so the plain
# suite (ctest fuzz/<target>) replays it from then on. Prints a table of
# executions, execs/s and new coverage per target.
set -eu
cd "$(dirname "$0")/.."
src="$(pwd)"
build="${FUZZ_BUILD_DIR:-build-fuzz}"
secs="${FUZZ_SECONDS:-20}"
jobs="$(nproc 2>/dev/null || echo 2)"

if [ "${FUZZ_NO_BUILD:-0}" != 1 ]; then
	cmake --preset fuzz >/dev/null
	cmake --build "$build" -j "$jobs" --target fuzz_all
fi

work="$build/fuzz-run"
rm -rf "$work"
mkdir -p "$work/seeds" "$work/corpus" "$work/findings"
"$build/bin/sealpost-fuzz-seeds" "$work/seeds/fuzz_session"
"$build/bin/sealpost-fuzz-seeds-targets" "$work/seeds" "$src"

failed=""
total=0
printf '%-18s %8s %10s %10s %8s %8s\n' target seconds executions "execs/s" "new" "rss_mb" \
	> "$work/summary.txt"
for bin in "$build"/bin/fuzz_*; do
	t="$(basename "$bin")"
	mkdir -p "$work/corpus/$t"
	set -- "$work/corpus/$t"
	[ -d "tests/fuzz/corpus/$t" ] && set -- "$@" "tests/fuzz/corpus/$t"
	[ -d "$work/seeds/$t" ] && set -- "$@" "$work/seeds/$t"
	echo "== fuzz: $t for ${secs}s"
	start=$(date +%s)
	if ! ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		"$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$work/findings/$t-" "$@" \
		> "$work/$t.log" 2>&1; then
		failed="$failed $t"
		tail -n 60 "$work/$t.log"
	fi
	end=$(date +%s)
	total=$((total + end - start))
	stat() { sed -n "s/^stat::$1: *//p" "$work/$t.log" | tail -n 1; }
	printf '%-18s %8s %10s %10s %8s %8s\n' "$t" "$((end - start))" \
		"$(stat number_of_executed_units)" "$(stat average_exec_per_sec)" \
		"$(stat new_units_added)" "$(stat peak_rss_mb)" >> "$work/summary.txt"
done
cat "$work/summary.txt"
echo "total fuzz time: ${total}s"
if [ -n "$failed" ]; then
	echo "fuzz: FINDINGS in:$failed (inputs in $work/findings/; add each to" \
		"tests/fuzz/corpus/<target>/ with the fix)" >&2
	ls -l "$work/findings" >&2 || true
	exit 1
fi
echo "fuzz: no findings"
