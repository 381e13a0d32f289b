#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# bench/shards-loadgen.sh: sealpost-loadgen pairs against sealpostd with
# --threads 1 and then --threads 2, and where the machine's CPU went in each
# run: the broker (user, system), the load generator (user, system), and the
# whole machine (/proc/stat: user, system, softirq, idle), over the loadgen run.
# usage: bench/shards-loadgen.sh BUILD_DIR [DEVICES] [WINDOW] [SECONDS]
# docs/BENCHMARKS.md, "Shards", has the figures and the command.
set -eu
bin="$1/bin"; devices="${2:-200}"; window="${3:-8}"; secs="${4:-5}"
tck=$(getconf CLK_TCK)
cpu() { awk '$1=="cpu"{print $2+$3, $4, $8, $5}' /proc/stat; }  # user sys softirq idle
pstat() { awk '{print $14, $15}' "/proc/$1/stat"; }              # utime stime (ticks)
for t in 1 2; do
	dir=$(mktemp -d); port=$((20000 + $$ % 20000 + t))
	"$bin/sealpostd" --listen "127.0.0.1:$port" --metrics-listen off --data-dir "$dir" \
		--threads "$t" --handshake-rate 0 --log-level warn > "$dir/log" 2>&1 &
	bpid=$!
	while [ ! -s "$dir/server.pub" ]; do sleep 0.1; done
	sleep 0.5
	set -- $(cpu); u0=$1 s0=$2 q0=$3 i0=$4
	set -- $(pstat "$bpid"); bu0=$1 bs0=$2
	start=$(date +%s.%N)
	out=$( { /usr/bin/env time -f "LG %U %S" "$bin/sealpost-loadgen" --server "127.0.0.1:$port" \
		--data-dir "$dir" --devices "$devices" --closed-loop "$window" --duration "$secs" \
		--warmup 1 --no-progress --broker-pid "$bpid"; } 2>&1 )
	end=$(date +%s.%N)
	set -- $(cpu); u1=$1 s1=$2 q1=$3 i1=$4
	set -- $(pstat "$bpid"); bu1=$1 bs1=$2
	kill "$bpid"; wait "$bpid" || true
	echo "== --threads $t: $devices devices (pairs), $window outstanding per sender, ${secs}s"
	echo "$out" | grep -iE "envelopes/s|throughput|broker cpu|LG" | head -6
	awk -v t="$tck" -v w="$(echo "$end - $start" | bc)" -v bu="$((bu1 - bu0))" -v bs="$((bs1 - bs0))" \
	    -v u="$((u1 - u0))" -v s="$((s1 - s0))" -v q="$((q1 - q0))" -v i="$((i1 - i0))" '
	    BEGIN { printf "cores busy over %.1f s: broker user %.2f sys %.2f; machine user %.2f sys %.2f softirq %.2f idle %.2f (of 2)\n",
		    w, bu/t/w, bs/t/w, u/t/w, s/t/w, q/t/w, i/t/w }'
	rm -rf "$dir"
done
