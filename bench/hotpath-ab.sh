#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# A/B comparison of two sealpost-bench-hotpath binaries in one sitting:
# for each shape, PAIRS pairs of runs, alternating which binary goes first
# so that a drift of the machine's load hits both alike. Prints every run's
# ratios (hot path / bare AEAD, handshake / bare X25519: each run divides by
# its own bare figure, which is what makes a shared, noisy machine usable)
# and their medians per binary.
#
# usage: hotpath-ab.sh BEFORE AFTER [PAIRS] [DEVICES] [SECONDS]
#   e.g. bench/hotpath-ab.sh /work/before/sealpost-bench-hotpath \
#          build/bin/sealpost-bench-hotpath 3
# SHAPES (env): "size:batch ..." (default "256:16 64:16 16384:1 256:1")
set -eu
before=${1:?usage: hotpath-ab.sh BEFORE AFTER [PAIRS] [DEVICES] [SECONDS]}
after=${2:?usage: hotpath-ab.sh BEFORE AFTER [PAIRS] [DEVICES] [SECONDS]}
pairs=${3:-3}
devices=${4:-1000000}
seconds=${5:-2}
shapes=${SHAPES:-"256:16 64:16 16384:1 256:1"}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

run() { # binary size batch -> "hot_ratio hs_ratio"
	"$1" --size "$2" --batch "$3" --devices "$devices" --seconds "$seconds" 2>&1 |
		awk '/ratio hot path/ { h = $NF } /ratio handshake/ { x = $NF }
		     END { if (h == "" || x == "") exit 1; print h, x }'
}

median() { # file column
	sort -n -k "$2" "$1" | awk -v c="$2" '{ v[NR] = $c }
		END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

echo "shape        run  before(hot hs)  after(hot hs)"
for shape in $shapes; do
	size=${shape%%:*}
	batch=${shape##*:}
	: >"$tmp/b"
	: >"$tmp/a"
	i=1
	while [ "$i" -le "$pairs" ]; do
		if [ $((i % 2)) -eq 1 ]; then
			b=$(run "$before" "$size" "$batch")
			a=$(run "$after" "$size" "$batch")
		else
			a=$(run "$after" "$size" "$batch")
			b=$(run "$before" "$size" "$batch")
		fi
		echo "$b" >>"$tmp/b"
		echo "$a" >>"$tmp/a"
		printf '%-12s %-4s %-15s %s\n' "${size}x$batch" "$i" "$b" "$a"
		i=$((i + 1))
	done
	printf '%-12s med  %-15s %s\n' "${size}x$batch" \
		"$(median "$tmp/b" 1) $(median "$tmp/b" 2)" "$(median "$tmp/a" 1) $(median "$tmp/a" 2)"
done
