#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# What synchronous store calls cost the event loop (issue 10, finding 11):
# an honest probe (PROBE_DEVICES/2 pairs, online-only, PROBE_RATE envelopes/s
# open loop: each envelope's latency is a live envelope's, and a loop stall
# shows in it) runs beside a second load generator that makes the store work:
#   idle         nothing else (the probe's own baseline)
#   durable F    LOAD_DEVICES/2 pairs sending durable envelopes at LOAD_RATE/s
#                (open loop), broker --fsync F, for F in FSYNC
#   drain        DRAIN_DEVICES/2 offline devices get DRAIN_PER_DEVICE envelopes
#                each (--fsync never, DRAIN_SIZE bytes), then connect and read
#                their backlogs while the probe runs (the probe covers the fill
#                too: the read figures below are the drain's alone)
# A fresh broker and data directory each. Exit status 1 when a probe got
# nothing delivered, the broker exported no store-call figures, or a drain
# did not deliver its whole backlog (ctest runs it at a tiny size). Prints the probe's latency
# percentiles (the load generator's, from the envelope's intended send time)
# and, from the broker's own sealpost_store_call_seconds{op} histogram, per
# op: calls, mean, and the bucket bounds holding p99 and the maximum
# ("iteration" = all store time of one loop iteration: the loop's stall).
#
# usage: loop-stall.sh [SEALPOSTD [LOADGEN]]
# env:   FSYNC ("never batch always"), DURATION (10 s), PROBE_DEVICES (10),
#        PROBE_RATE (200), LOAD_DEVICES (20), LOAD_RATE (5000), SIZE (256),
#        DRAIN_DEVICES (4), DRAIN_PER_DEVICE (10000), DRAIN_SIZE (1024),
#        DRAIN_FILL (4 s), SCENARIOS ("idle durable drain"), BROKER_ARGS
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
sealpostd=${1:-$here/build/bin/sealpostd}
loadgen=${2:-$here/build/bin/sealpost-loadgen}
fsyncs=${FSYNC:-"never batch always"}
duration=${DURATION:-10}
pdev=${PROBE_DEVICES:-10}
prate=${PROBE_RATE:-200}
ldev=${LOAD_DEVICES:-20}
lrate=${LOAD_RATE:-5000}
size=${SIZE:-256}
ddev=${DRAIN_DEVICES:-4}
dper=${DRAIN_PER_DEVICE:-10000}
dsize=${DRAIN_SIZE:-1024}
dfill=${DRAIN_FILL:-4}
scenarios=${SCENARIOS:-"idle durable drain"}
extra=${BROKER_ARGS:-}
tmp=$(mktemp -d)
port=$((19000 + $$ % 2000))
mport=$((port + 1))
bpid=
lpid=
fail=0
cleanup() {
	[ -n "$lpid" ] && kill "$lpid" 2>/dev/null && wait "$lpid" 2>/dev/null
	[ -n "$bpid" ] && kill "$bpid" 2>/dev/null && wait "$bpid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# start_broker FSYNC: a fresh data directory; no limit stands in the way of
# the load (rates, shares, quotas are not what is measured here)
start_broker() {
	rm -rf "$tmp/data"
	mkdir -p "$tmp/data"
	# shellcheck disable=SC2086
	"$sealpostd" --listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:$mport" \
		--data-dir "$tmp/data" --handshake-rate 0 --handshake-rate-per-source 0 \
		--log-level warn --fsync "$1" --mailbox-sender-share 100 --store-min-free 0 \
		--mailbox-max-count $((dper * 2)) --sender-rate 0 --sender-byte-rate 0 \
		$extra >"$tmp/broker.log" 2>&1 &
	bpid=$!
	i=0
	until curl -sf -m 2 "http://127.0.0.1:$mport/readyz" >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -lt 300 ] || { cat "$tmp/broker.log" >&2; echo "broker did not start" >&2; exit 1; }
		sleep 0.1
	done
}

stop_broker() {
	kill "$bpid" 2>/dev/null || true
	wait "$bpid" 2>/dev/null || true
	bpid=
}

lg() {
	"$loadgen" --server "127.0.0.1:$port" --data-dir "$tmp/data" --no-progress --grace 30 "$@"
}

# probe SECONDS: the honest devices; prints "p50 p99 p99.9 max" in us
probe() {
	lg --pattern pairs --devices "$pdev" --rate "$prate" --online-only --size "$size" \
		--duration "$1" --warmup 1 --json "$tmp/probe.json" >"$tmp/probe.log" 2>&1 || true
	python3 -c '
import json, sys
try:
    l = json.load(open(sys.argv[1]))["latency_us"]
    print("%.0f %.0f %.0f %.0f" % (l["p50"], l["p99"], l["p99_9"], l["max"]))
except Exception:
    print("- - - -")' "$tmp/probe.json"
}

# store_calls LABEL PROBE: one line per op with calls, from the broker's histogram
store_calls() {
	curl -s -m 5 "http://127.0.0.1:$mport/metrics" >"$tmp/metrics" || true
	grep -q '^sealpost_store_call_seconds_count{op="iteration"} [1-9]' "$tmp/metrics" || fail=1
	case $2 in -*) fail=1; tail -n 5 "$tmp/probe.log" >&2 ;; esac
	awk -v label="$1" -v probe="$2" '
	/^sealpost_store_call_seconds_bucket/ {
		match($0, /op="[a-z]+"/); op = substr($0, RSTART + 4, RLENGTH - 5)
		match($0, /le="[^"]+"/); le = substr($0, RSTART + 4, RLENGTH - 5)
		if (!(op in n)) { ops[++nops] = op; n[op] = 0 }
		k = ++n[op]; les[op, k] = le; cum[op, k] = $2 + 0
	}
	/^sealpost_store_call_seconds_sum/ {
		match($0, /op="[a-z]+"/); op = substr($0, RSTART + 4, RLENGTH - 5); sum[op] = $2 + 0
	}
	function bound(op, q,   k, tot) {
		tot = cum[op, n[op]]
		for (k = 1; k <= n[op]; k++)
			if (cum[op, k] >= q * tot)
				return les[op, k] == "+Inf" ? "inf" : sprintf("%g", les[op, k] * 1e6)
	}
	$1 == "sealpost_rocksdb_write_stall_seconds_total" { stall = $2 }
	END {
		if (!nops) print "no sealpost_store_call_seconds in the metrics" > "/dev/stderr"
		printf "%-14s probe p50/p99/p99.9/max us: %s  (RocksDB write stalls: %s s)\n", label,
		       probe, stall == "" ? "-" : stall
		for (i = 1; i <= nops; i++) {
			op = ops[i]; tot = cum[op, n[op]]
			if (!tot)
				continue
			printf "%-14s   %-9s %9d calls  mean %9.1f us  p99 <= %7s us  max <= %7s us\n",
			       label, op, tot, sum[op] / tot * 1e6, bound(op, 0.99), bound(op, 1)
		}
	}' "$tmp/metrics"
}

printf 'probe: %s devices, %s/s online-only, %s B; %s s per run; load average %s\n' \
	"$pdev" "$prate" "$size" "$duration" "$(cut -d' ' -f1-3 /proc/loadavg)"
for sc in $scenarios; do
	case $sc in
	idle)
		start_broker batch
		p=$(probe "$duration")
		store_calls idle "$p"
		stop_broker
		;;
	durable)
		for f in $fsyncs; do
			start_broker "$f"
			lg --pattern pairs --devices "$ldev" --rate "$lrate" --durable --size "$size" \
				--duration $((duration + 2)) --warmup 0 >"$tmp/load.log" 2>&1 &
			lpid=$!
			sleep 1
			p=$(probe "$duration")
			wait "$lpid" || true
			lpid=
			store_calls "durable-$f" "$p"
			stop_broker
		done
		;;
	drain)
		start_broker never
		rate=$((ddev / 2 * dper / dfill))
		lg --pattern drain --devices "$ddev" --rate "$rate" --durable --size "$dsize" \
			--duration "$dfill" --json "$tmp/drain.json" >"$tmp/drain.log" 2>&1 &
		lpid=$!
		p=$(probe $((dfill + 4)))
		wait "$lpid" || true
		lpid=
		python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print("drain          %d envelopes of %s B to %d devices in %.3f s" % (d["delivered"],
      sys.argv[2], d["drain"]["devices"], d["drain"]["seconds"]))
sys.exit(0 if d["delivered"] >= int(sys.argv[3]) else 1)' "$tmp/drain.json" "$dsize" \
				$((ddev / 2 * dper)) || { fail=1; tail -n 5 "$tmp/drain.log"; }
		store_calls drain "$p"
		stop_broker
		;;
	esac
done
exit $fail
