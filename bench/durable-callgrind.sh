#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# Broker instructions per envelope, durable vs online-only, on the pairs
# workload (issue 9 item 1): sealpostd runs under callgrind, the load
# generator (libsealpost: every durable send carries a client id) drives
# DEVICES/2 pairs with W envelopes outstanding per sender for WINDOW seconds.
# Each figure is (instructions of the broker's whole life, all threads, RocksDB's
# background ones too, minus those of an idle run with the same devices
# connected for as long) / the envelopes delivered over the whole run (the
# load generator's report; every durable one was ACCEPTED and acked): start,
# handshakes and stop are not counted; the memtable flush at stop is. Instruction counts do not depend on
# the machine's load; the throughput lines below (broker without valgrind)
# do, so the load average is printed beside them.
#
# usage: durable-callgrind.sh [SEALPOSTD [LOADGEN]]   (needs valgrind)
# env:   FSYNC ("never batch", default), DEVICES (100), WINDOW (20 s under
#        callgrind), W (64), SIZE (256), TPUT (1: also wall-clock runs of
#        TPUT_SECONDS, default 5), ANNOTATE (0: 1 prints the top of
#        callgrind_annotate for each durable run), BROKER_ARGS (extra flags),
#        MODES ("online-only durable"), KEEP (a directory: the callgrind files kept)
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
sealpostd=${1:-$here/build/bin/sealpostd}
loadgen=${2:-$here/build/bin/sealpost-loadgen}
fsyncs=${FSYNC:-"never batch"}
devices=${DEVICES:-100}
window=${WINDOW:-20}
w=${W:-64}
size=${SIZE:-256}
tput=${TPUT:-1}
tput_s=${TPUT_SECONDS:-5}
annotate=${ANNOTATE:-0}
extra=${BROKER_ARGS:-}
tmp=$(mktemp -d)
port=$((17000 + $$ % 2000))
mport=$((port + 1))
bpid=
cleanup() {
	[ -n "$bpid" ] && kill "$bpid" 2>/dev/null && wait "$bpid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

accepted() {
	curl -s "http://127.0.0.1:$mport/metrics" 2>/dev/null |
		awk '$1 == "sealpost_envelopes_accepted_total" { print $2 }'
}

# start_broker WRAPPER... : a fresh data directory each time
start_broker() {
	rm -rf "$tmp/data"
	mkdir -p "$tmp/data"
	# shellcheck disable=SC2086
	"$@" "$sealpostd" --listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:$mport" \
		--data-dir "$tmp/data" --handshake-rate 0 --log-level warn --fsync "$fsync" \
		--mailbox-sender-share 100 --store-min-free 0 $extra >"$tmp/broker.log" 2>&1 &
	bpid=$!
	i=0
	until curl -sf "http://127.0.0.1:$mport/readyz" >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -lt 600 ] || { cat "$tmp/broker.log" >&2; echo "broker did not start" >&2; exit 1; }
		sleep 0.1
	done
}

stop_broker() {
	kill "$bpid" 2>/dev/null || true
	wait "$bpid" 2>/dev/null || true
	bpid=
}

# lg MODE DURATION WARMUP [more options]
lg() {
	mode=$1 dur=$2 warm=$3
	shift 3
	"$loadgen" --server "127.0.0.1:$port" --data-dir "$tmp/data" --devices "$devices" \
		--pattern pairs --closed-loop "$w" --size "$size" "--$mode" --duration "$dur" \
		--warmup "$warm" --grace 60 --no-progress --broker-pid "$bpid" "$@"
}

# cg_run MODE: the broker's whole life under callgrind (start, connect-up,
# the load, clean stop); prints "instructions envelopes"
cg_run() {
	start_broker valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out"
	if [ "$1" = idle ]; then
		"$loadgen" --server "127.0.0.1:$port" --data-dir "$tmp/data" --devices "$devices" \
			--pattern idle --duration "$window" --warmup 2 --no-progress \
			--broker-pid "$bpid" >"$tmp/lg.log" 2>&1 || true
	else
		lg "$1" "$window" 2 --json "$tmp/lg.json" >"$tmp/lg.log" 2>&1 || true
	fi
	# Envelopes the load generator got delivered over the whole run.
	n=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["delivered"])' \
		"$tmp/lg.json" 2>/dev/null || echo 0)
	[ "$1" = idle ] || [ "${n:-0}" -gt 0 ] || tail -n 12 "$tmp/lg.log" >&2
	stop_broker
	[ -z "${KEEP:-}" ] || cp "$tmp/cg.out" "$KEEP/callgrind.$fsync.$1"
	ir=$(callgrind_annotate --auto=no "$tmp/cg.out" 2>/dev/null |
	     awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
	echo "$ir ${n:-0}"
}

printf 'pairs: %s devices, %s outstanding per sender, %s-byte bodies, %s s per run\n' \
	"$devices" "$w" "$size" "$window"
for fsync in $fsyncs; do
	# What connect-up, idle time, start and stop cost: subtracted.
	set -- $(cg_run idle)
	idle_ir=$1
	online_per=
	for mode in ${MODES:-online-only durable}; do
		set -- $(cg_run "$mode")
		ir=$1 n=$2
		per=$(awk -v ir="$ir" -v b="$idle_ir" -v n="$n" 'BEGIN { printf "%.0f", (ir - b) / n }')
		printf 'fsync %-6s %-12s %10s instructions / envelope (%s envelopes; %s Ir, idle run %s Ir)\n' \
			"$fsync" "$mode" "$per" "$n" "$ir" "$idle_ir"
		if [ "$mode" = online-only ]; then
			online_per=$per
		elif [ -n "$online_per" ]; then
			awk -v d="$per" -v o="$online_per" -v f="$fsync" \
				'BEGIN { printf "fsync %-6s durable / online-only: %.2fx\n", f, d / o }'
		fi
		if [ "$annotate" = 1 ] && [ "$mode" = durable ]; then
			callgrind_annotate --inclusive=yes --threshold=100 "$tmp/cg.out" 2>/dev/null |
				grep -E 'sp_store|sp_mailbox|rocksdb_|sp_session_rx|sp_shard_run' | head -n 40
		fi
	done
	if [ "$tput" = 1 ]; then
		for mode in online-only durable; do
			start_broker env
			lg "$mode" "$tput_s" 2 --json "$tmp/t.json" >"$tmp/t.log" 2>&1 || true
			stop_broker
			r=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(round(d["throughput"]))' \
				"$tmp/t.json" 2>/dev/null || grep -i 'delivered' "$tmp/t.log" | head -n 1)
			printf 'fsync %-6s %-12s %10s envelopes/s wall clock (load average %s)\n' "$fsync" \
				"$mode" "$r" "$(cut -d' ' -f1-3 /proc/loadavg)"
		done
	fi
done
