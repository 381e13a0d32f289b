#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# Broker memory per idle authenticated connection (issue 9 item 4).
#
# One fresh sealpostd; CONNS IK devices connect in two equal stages, each
# stage one sealpost-loadgen (--pattern idle) spread over worker processes
# of at most PER_PROCESS connections (every process stays under the
# machine's open-files cap; the broker holds CONNS sockets in one process).
# The broker is sampled fresh, after stage 1 and after stage 2, from
# /proc/PID/status (VmRSS) and its metrics endpoint: sealpost_heap_bytes
# (mallinfo2) and sealpost_memory_bytes{kind} (the slab of session secrets,
# the connection slots, the routing table, reassembly and output chunks).
#
# Printed per connection:
#   marginal  (stage 2 - stage 1) / (CONNS/2): what one more idle
#             connection costs once fixed first-touch costs (the receive
#             buffer ring, the reserve of output chunks, the route table's
#             pages) are paid; the figure of the issue
#   whole     (stage 2 - fresh) / CONNS, fixed costs included
# and each stage's handshakes/s (devices / time from the load generator's
# start until the broker counts them all open: an IK handshake and the
# first Ping each; the load generator shares the CPUs with the broker).
# The last line is "idle-mem: CONNS connections: R B RSS/conn marginal (P B
# less the receive pools' first touch), H B/conn counted (heap + slab + slots
# marginal, route table share)"; exit status 1 when a stage did not connect
# or no figure came out (ctest runs it at a tiny size).
#
# usage: idle-mem.sh [SEALPOSTD [LOADGEN]]
# env:   CONNS (19000), PER_PROCESS (5000), SETTLE (3 s), BROKER_ARGS, KEEP (a directory
#        to keep the broker log and the JSON reports in)
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
sealpostd=${1:-$here/build/bin/sealpostd}
loadgen=${2:-$here/build/bin/sealpost-loadgen}
conns=${CONNS:-19000}
per=${PER_PROCESS:-5000}
extra=${BROKER_ARGS:-}
settle=${SETTLE:-3}
half=$((conns / 2))
tmp=$(mktemp -d)
port=$((21000 + $$ % 2000))
mport=$((port + 1))
bpid=
lg1=
lg2=
cleanup() {
	# the load generators run in their own sessions: end each group by its
	# id; and, since under a shell with job control setsid forks (the job
	# already leads its group) so that $! is not the session's leader, every
	# process of this run by its data directory, which is this run's alone
	for p in $lg1 $lg2; do kill -TERM -- "-$p" 2>/dev/null || true; done
	pkill -TERM -f -- "--data-dir $tmp/data" 2>/dev/null || true
	[ -n "$bpid" ] && kill "$bpid" 2>/dev/null && wait "$bpid" 2>/dev/null
	[ -n "${KEEP:-}" ] && cp "$tmp"/*.json "$tmp"/broker.log "$KEEP"/ 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
[ "$half" -ge 1 ] || { echo "CONNS must be at least 2" >&2; exit 2; }

mkdir -p "$tmp/data"
# shellcheck disable=SC2086
"$sealpostd" --listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:$mport" \
	--data-dir "$tmp/data" --handshake-rate 0 --handshake-rate-per-source 0 \
	--max-conns-per-source 0 --max-conns $((conns + 64)) --log-level warn \
	$extra >"$tmp/broker.log" 2>&1 &
bpid=$!
i=0
until curl -sf -m 2 "http://127.0.0.1:$mport/readyz" >/dev/null 2>&1; do
	i=$((i + 1))
	[ $i -lt 300 ] || { cat "$tmp/broker.log" >&2; echo "broker did not start" >&2; exit 1; }
	sleep 0.1
done

metric() { # metric NAME: its value in the last scrape ($tmp/m), or 0
	awk -v n="$1" '$1 == n { v = $2 } END { printf "%.0f\n", v + 0 }' "$tmp/m"
}
open_conns() {
	curl -sf -m 5 "http://127.0.0.1:$mport/metrics" >"$tmp/m" || return 1
	metric sealpost_connections_open
}
# sample TAG: RSS and the allocator's counts into $tmp/TAG, SETTLE s after
# the last connection: the shard trims its reserve of output chunks (which
# connect-up filled) within two 1 s trims and gives the heap's free pages
# back (malloc_trim), so that RSS holds what the connections keep
sample() {
	sleep "$settle"
	curl -sf -m 5 "http://127.0.0.1:$mport/metrics" >"$tmp/m"
	rss=$(awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$bpid/status")
	{
		echo "rss $rss"
		echo "heap $(metric 'sealpost_heap_bytes{kind="in_use"}')"
		for k in slab conns routes partial output reserve recv_pool; do
			echo "$k $(metric "sealpost_memory_bytes{kind=\"$k\"}")"
		done
		echo "open $(metric sealpost_connections_open)"
	} >"$tmp/$1"
}
val() { awk -v k="$2" '$1 == k { print $2 }' "$tmp/$1"; }

# stage N DEVICES TARGET: a load generator holding DEVICES idle devices
# until killed; returns once the broker has TARGET connections open
stage() {
	procs=$(( ($2 + per - 1) / per ))
	t0=$(date +%s.%N)
	setsid "$loadgen" --server "127.0.0.1:$port" --data-dir "$tmp/data" --pattern idle \
		--devices "$2" --processes "$procs" --max-per-process "$per" --warmup 0 \
		--duration 3600 --connect-timeout 300 --broker-pid "$bpid" --no-progress \
		--json "$tmp/stage$1.json" >"$tmp/stage$1.out" 2>&1 &
	eval "lg$1=\$!"
	i=0
	while :; do
		n=$(open_conns || echo 0)
		[ "$n" -ge "$3" ] && break
		i=$((i + 1))
		if [ $i -gt 3000 ]; then
			cat "$tmp/stage$1.out" >&2
			echo "stage $1: $n of $3 connections after 300 s" >&2
			exit 1
		fi
		sleep 0.1
	done
	t1=$(date +%s.%N)
	awk -v a="$t0" -v b="$t1" -v n="$2" 'BEGIN { printf "%.0f\n", n / (b - a) }' \
		>"$tmp/hs$1"
}

sample fresh
stage 1 "$half" "$half"
sample s1
stage 2 "$half" $((half * 2))
sample s2

per_conn() { # per_conn KEY FROM TO N: (TO - FROM) / N
	a=$(val "$2" "$1")
	b=$(val "$3" "$1")
	awk -v a="$a" -v b="$b" -v n="$4" 'BEGIN { printf "%.0f", (b - a) / n }'
}
hs() { cat "$tmp/hs$1"; }

echo "broker: $conns idle IK connections in one process ($half per stage, at most $per per load generator process)"
printf '%-8s %14s %14s %14s %10s %10s\n' kind fresh stage1 stage2 marginal whole
for k in rss heap slab conns routes partial output reserve recv_pool; do
	printf '%-8s %14s %14s %14s %10s %10s\n' "$k" "$(val fresh $k)" "$(val s1 $k)" \
		"$(val s2 $k)" "$(per_conn $k s1 s2 "$half")" "$(per_conn $k fresh s2 $((half * 2)))"
done
echo "handshakes/s: stage 1 $(hs 1), stage 2 $(hs 2) (load generator and broker share the CPUs)"
rssm=$(per_conn rss s1 s2 "$half")
# RSS less the receive buffer pools: the kernel takes a pool's buffers in
# turn, so each shard's pool (recv-buffers x recv-buffer-size, 32 MiB at the
# defaults) is touched over time up to its whole size whatever the number of
# connections; with several shards that first touch is still going on in
# stage 2 and would be counted as the connections'.
rssp=$(awk -v a="$(val s1 rss)" -v b="$(val s2 rss)" -v p1="$(val s1 recv_pool)" \
	-v p2="$(val s2 recv_pool)" -v n="$half" 'BEGIN { printf "%.0f", (b - p2 - a + p1) / n }')
# The allocator's count: the heap's growth less the output chunks (a
# reserve the shard keeps, not the connections'; the connection table and
# the route table are allocated whole at start, so they are counted apart),
# the slab's, the connection slots touched, and the route table's share
# (it is sized for --max-conns, here CONNS + 64).
alloc=$(awk -v h1="$(val s1 heap)" -v h2="$(val s2 heap)" -v s1="$(val s1 slab)" \
	-v s2="$(val s2 slab)" -v c1="$(val s1 conns)" -v c2="$(val s2 conns)" \
	-v v1="$(val s1 reserve)" -v v2="$(val s2 reserve)" -v o1="$(val s1 output)" \
	-v o2="$(val s2 output)" -v r="$(val s2 routes)" -v n="$half" -v all=$((half * 2)) \
	'BEGIN { printf "%.0f", (h2 - v2 - o2 - h1 + v1 + o1 + s2 - s1 + c2 - c1) / n + r / all }')
open=$(val s2 open)
if [ "$open" -lt $((half * 2)) ] || [ -z "$rssm" ] || [ "$(val s2 conns)" -le 0 ]; then
	echo "idle-mem: no figure (open $open, conns $(val s2 conns))" >&2
	exit 1
fi
# An allocator without mallinfo2's counts (ASan's) reports no heap: the
# count is then slots + slab + route share only.
[ "$(val s2 heap)" -gt 0 ] || echo "(no heap figure from this build's allocator: counted without it)"
echo "idle-mem: $conns connections: $rssm B RSS/conn marginal ($rssp B less the receive pools' first touch), $alloc B/conn counted (heap + slab + slots marginal, route table share)"
