#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# The hot path with each transport cipher, in one sitting: for RUNS runs,
# every shape with ChaChaPoly and with AESGCM (the order of the two
# alternating run by run, so a drift of the machine's load hits both alike),
# each a full sealpost-bench-hotpath (its own bare-AEAD baseline of the same
# cipher, measured interleaved with its hot path). Prints a Markdown table:
# per shape and cipher the median of the RUNS run medians (hot path ns per
# envelope, envelopes/s per core, bare AEAD ns, ratio hot / bare, and for
# AESGCM the bare AEAD with libsodium's precomputed state), the range of
# the runs' ratios in brackets. JSON of every run stays in OUT (default: a
# temporary directory, removed).
#
# usage: hotpath-ciphers.sh [RUNS] [DEVICES] [SECONDS]
# BENCH (env): the binary (default build/bin/sealpost-bench-hotpath)
# SHAPES (env): "size:batch ..." (default "256:1 256:16 64:16")
# OUT (env): keep the JSON files here
set -eu
runs=${1:-3}
devices=${2:-1000000}
seconds=${3:-2}
bench=${BENCH:-build/bin/sealpost-bench-hotpath}
shapes=${SHAPES:-"256:1 256:16 64:16"}
if [ -n "${OUT:-}" ]; then
	out=$OUT
	mkdir -p "$out"
else
	out=$(mktemp -d)
	trap 'rm -rf "$out"' EXIT
fi

i=1
while [ "$i" -le "$runs" ]; do
	for shape in $shapes; do
		size=${shape%%:*}
		batch=${shape##*:}
		if [ $((i % 2)) -eq 1 ]; then order="chachapoly aesgcm"; else order="aesgcm chachapoly"; fi
		for cipher in $order; do
			"$bench" --cipher "$cipher" --size "$size" --batch "$batch" --devices "$devices" \
				--seconds "$seconds" --quiet --json "$out/$cipher-s$size-b$batch-r$i.json"
			echo "run $i: $cipher ${size} B x $batch done" >&2
		done
	done
	i=$((i + 1))
done

python3 - "$out" "$shapes" "$runs" <<'EOF'
import json, statistics, sys
out, shapes, runs = sys.argv[1], sys.argv[2].split(), int(sys.argv[3])
print("| body × batch | cipher | hot path, ns/env | envelopes/s per core | bare AEAD, ns/env "
      "| **ratio hot / bare** | bare AEAD, precomputed state, ns/env | core share |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for shape in shapes:
    size, batch = shape.split(":")
    for cipher in ("chachapoly", "aesgcm"):
        js = [json.load(open(f"{out}/{cipher}-s{size}-b{batch}-r{i}.json")) for i in range(1, runs + 1)]
        hot = statistics.median(j["hotpath"]["ns_median"] for j in js)
        bare = statistics.median(j["bare_aead"]["ns_median"] for j in js)
        rs = [j["ratio_hotpath_bare"] for j in js]
        pre = ("%.0f" % statistics.median(j["bare_aead_precomputed"]["ns_median"] for j in js)
               if cipher == "aesgcm" else "")
        share = statistics.median(j["cpu_share"] for j in js)
        name = "ChaChaPoly" if cipher == "chachapoly" else "AESGCM"
        print(f"| {size} B × {js[0]['batch']} | {name} | {hot:,.0f} | {1e9 / hot:,.0f} | {bare:,.0f} "
              f"| **{statistics.median(rs):.2f}** ({min(rs):.2f}–{max(rs):.2f}) | {pre} "
              f"| {100 * share:.0f} % |")
EOF
