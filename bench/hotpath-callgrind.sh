#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# Instructions per envelope of the broker hot path, counted by callgrind
# (only inside hot_pass: setup, the bare AEAD pass and the handshakes are not
# counted), for one or more sealpost-bench-hotpath binaries. Instruction
# counts do not depend on the machine's load, so two builds can be compared
# on a shared machine where wall-clock figures drift by several percent.
#
# usage: hotpath-callgrind.sh BINARY... (needs valgrind)
# SHAPES (env): "size:batch ..." (default "256:16 64:16 16384:1 256:1")
# ITERATIONS (env): envelopes per measured repetition (default 32000)
set -eu
[ $# -ge 1 ] || { echo "usage: hotpath-callgrind.sh BINARY..." >&2; exit 2; }
shapes=${SHAPES:-"256:16 64:16 16384:1 256:1"}
iters=${ITERATIONS:-32000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

printf '%-10s' shape
for bin in "$@"; do printf ' %14s' "$(basename "$(dirname "$bin")")"; done
printf '   (instructions per envelope)\n'
for shape in $shapes; do
	size=${shape%%:*}
	batch=${shape##*:}
	printf '%-10s' "${size}x$batch"
	for bin in "$@"; do
		valgrind --tool=callgrind --toggle-collect=hot_pass --callgrind-out-file="$tmp/out" \
			"$bin" --size "$size" --batch "$batch" --devices 10000 --iterations "$iters" \
			--reps 1 --handshakes 16 >"$tmp/log" 2>&1
		ir=$(callgrind_annotate --auto=no "$tmp/out" 2>/dev/null |
		     awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
		# Passes counted: the warm-up one and as many as reach the iterations.
		per=$(awk -v ir="$ir" -v it="$iters" '
			/messages per pass/ { for (i = 1; i < NF; i++) if ($(i + 1) == "messages") m = $i
					      for (i = 1; i < NF; i++) if ($i == "batch") b = $(i + 1) + 0 }
			END { e = m * b; p = 1 + int((it + e - 1) / e); printf "%.0f", ir / (p * e) }' "$tmp/log")
		printf ' %14s' "$per"
	done
	printf '\n'
done
