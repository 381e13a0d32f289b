#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# RocksDB blob files for large bodies, on and off (issue 10, finding 10):
# for each body SIZE and each --store-blob-min-bytes in BLOBS, REPS runs,
# each on a fresh broker and data directory (--fsync batch):
#   pairs  PAIRS_DEVICES/2 online pairs, W durable envelopes outstanding per
#          sender, PAIRS_SECONDS: throughput (envelopes/s, wall clock) and
#          broker CPU per envelope (the load generator's window figure);
#   drain  DRAIN_DEVICES/2 offline devices get DRAIN_MB MiB of envelopes in
#          all, then connect, read and ack them all. With --store-max-wal
#          WAL_MB the backlog goes to table (or blob) files and is compacted,
#          as a backlog larger than the memtables would: broker CPU per
#          envelope (utime + stime of the whole process, RocksDB's threads
#          too, over fill + drain), bytes the broker wrote to the disk per
#          body byte (/proc/PID/io write_bytes), the data directory's peak
#          size, its size once every envelope was acked, and its size after
#          the scrub (flush + full compaction, --store-scrub-interval SCRUB_S
#          after the first ack).
# Prints one line per run and the medians per configuration. Exit status 1
# when a run lost envelopes, the scrub never ran, or blob files were on and
# none appeared (ctest runs it at a tiny size).
#
# usage: blob-bench.sh [SEALPOSTD [LOADGEN]]
# env:   SIZES ("16384 64000": 64,000 is the largest body a Send carries),
#        BLOBS ("0 4096"), REPS (3), PAIRS_DEVICES (10), W (4), PAIRS_SECONDS (5),
#        DRAIN_DEVICES (4), DRAIN_MB (48), WAL_MB (8), SCRUB_S (3), BROKER_ARGS
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
sealpostd=${1:-$here/build/bin/sealpostd}
loadgen=${2:-$here/build/bin/sealpost-loadgen}
sizes=${SIZES:-"16384 64000"}
blobs=${BLOBS:-"0 4096"}
reps=${REPS:-3}
pdev=${PAIRS_DEVICES:-10}
w=${W:-4}
psec=${PAIRS_SECONDS:-5}
ddev=${DRAIN_DEVICES:-4}
dmb=${DRAIN_MB:-48}
walmb=${WAL_MB:-8}
scrub=${SCRUB_S:-3}
extra=${BROKER_ARGS:-}
tmp=$(mktemp -d)
port=$((21000 + $$ % 2000))
mport=$((port + 1))
bpid=
spid=
fail=0
cleanup() {
	[ -n "$spid" ] && kill "$spid" 2>/dev/null && wait "$spid" 2>/dev/null
	[ -n "$bpid" ] && kill "$bpid" 2>/dev/null && wait "$bpid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

start_broker() { # BLOB_MIN [WRAPPER...]
	b=$1
	shift
	rm -rf "$tmp/data"
	mkdir -p "$tmp/data"
	# shellcheck disable=SC2086
	"$@" "$sealpostd" --listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:$mport" \
		--data-dir "$tmp/data" --handshake-rate 0 --handshake-rate-per-source 0 \
		--log-level warn --fsync batch --mailbox-sender-share 100 --store-min-free 0 \
		--store-ballast 0 --sender-rate 0 --sender-byte-rate 0 \
		--mailbox-max-bytes 1099511627776 --mailbox-max-count 1000000 \
		--store-max-wal $((walmb << 20)) --store-scrub-interval "$scrub" \
		--store-blob-min-bytes "$b" $extra >"$tmp/broker.log" 2>&1 &
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

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$bpid/stat"; }
wbytes() { awk '$1 == "write_bytes:" { print $2 }' "/proc/$bpid/io"; }
dir_bytes() { du -sb "$tmp/data/mailbox" | cut -f1; }
metric() {
	curl -s -m 2 "http://127.0.0.1:$mport/metrics" | awk -v m="$1" '$1 == m { print $2 }'
}

# Sealed bodies (--seal): ciphertext, as a real device sends. The load
# generator's unsealed filler repeats every 256 bytes, and RocksDB's table
# files compress it (blob files do not): the table files would look far
# smaller than they are with real ciphertext.
lg() {
	"$loadgen" --server "127.0.0.1:$port" --data-dir "$tmp/data" --no-progress --grace 60 \
		--broker-pid "$bpid" --seal "$@"
}

# "accepted delivered" of a drain run's report: an open-loop fill that falls
# behind (a busy machine) sends fewer than asked; those were never stored.
drain_counts() {
	python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print(d.get("results", {}).get("accepted", 0), d.get("delivered", 0))' "$tmp/d.json" 2>/dev/null ||
		echo "0 0"
}

hz=$(getconf CLK_TCK)
printf 'blob files: sizes %s, --store-blob-min-bytes %s, %s reps; load average %s\n' \
	"$sizes" "$blobs" "$reps" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-6s %-6s %-3s | %9s %8s | %8s %8s %8s %8s %8s\n' size blob rep 'pairs/s' 'us/env' \
	'us/env' 'wr/byte' 'peak MB' 'acked MB' 'scrub MB'
: >"$tmp/rows"
for size in $sizes; do
	for blob in $blobs; do
		for rep in $(seq 1 "$reps"); do
			# pairs: throughput and CPU per envelope
			start_broker "$blob" env
			lg --pattern pairs --devices "$pdev" --closed-loop "$w" --durable --size "$size" \
				--duration "$psec" --warmup 1 --json "$tmp/p.json" >"$tmp/p.log" 2>&1 || true
			set -- $(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
n = d.get("delivered_window", 0)
cpu = d.get("broker_cpu_s", {}).get("window", -1)
print("%.0f %.1f" % (d.get("throughput", 0), cpu * 1e6 / n if n and cpu >= 0 else -1))' \
				"$tmp/p.json" 2>/dev/null || echo "- -")
			tput=$1 pcpu=$2
			stop_broker
			# drain: a backlog through the files, acked, scrubbed
			start_broker "$blob" env
			n=$(((dmb << 20) / size))
			per=$((n / (ddev / 2)))
			n=$((per * (ddev / 2)))
			c0=$(cpu_ticks) w0=$(wbytes)
			: >"$tmp/nblob"
			( while :; do dir_bytes; find "$tmp/data/mailbox" -name '*.blob' | wc -l >>"$tmp/nblob"
			  sleep 0.5; done ) >"$tmp/du" 2>/dev/null &
			spid=$!
			lg --pattern drain --devices "$ddev" --rate $((n / 3 + 1)) --durable --size "$size" \
				--duration 3 --json "$tmp/d.json" >"$tmp/d.log" 2>&1 || true
			c1=$(cpu_ticks) w1=$(wbytes)
			acked=$(dir_bytes)
			s0=$(metric sealpost_store_scrubs_total)
			i=0
			while [ "$(metric sealpost_store_scrubs_total)" = "$s0" ] && [ $i -lt 600 ]; do
				sleep 0.1
				i=$((i + 1))
			done
			sleep 0.5
			scrubbed=$(dir_bytes)
			kill "$spid" 2>/dev/null || true
			wait "$spid" 2>/dev/null || true
			spid=
			peak=$(sort -n "$tmp/du" | tail -n 1)
			nblob=$(sort -n "$tmp/nblob" | tail -n 1)
			[ "$blob" = 0 ] || [ "${nblob:-0}" -gt 0 ] ||
				{ echo "no blob file seen (the backlog never left the memtables)" >&2; fail=1; }
			set -- $(drain_counts)
			[ "$1" -ge "$n" ] || echo "note: the fill sent $1 of $n (behind schedule)" >&2
			n=$1 got=$2
			if [ "$n" -eq 0 ] || [ "$got" -lt "$n" ]; then
				echo "$got of $n accepted envelopes delivered:" >&2
				grep -E 'fill|drain |results|errors' "$tmp/d.log" >&2
				curl -s -m 5 "http://127.0.0.1:$mport/metrics" |
					grep -E '^sealpost_connections_closed_total.* [1-9]' >&2
				fail=1
			fi
			[ $i -lt 600 ] || { echo "no scrub within 60 s" >&2; fail=1; }
			[ "$tput" != - ] || { tail -n 5 "$tmp/p.log" >&2; fail=1; }
			stop_broker
			row=$(awk -v sz="$size" -v b="$blob" -v r="$rep" -v t="$tput" -v pc="$pcpu" \
				-v c="$((c1 - c0))" -v hz="$hz" -v n="$n" -v wr="$((w1 - w0))" -v pk="$peak" \
				-v ak="$acked" -v sc="$scrubbed" 'BEGIN {
				printf "%-6s %-6s %-3s | %9s %8s | %8.1f %8.2f %8.1f %8.1f %8.1f\n", sz, b, r,
				       t, pc, c / hz * 1e6 / n, wr / (n * sz), pk / 1048576, ak / 1048576,
				       sc / 1048576 }')
			echo "$row"
			echo "$row" >>"$tmp/rows"
		done
	done
done
echo "medians of $reps:"
awk '{ k = $1 " " $2; keys[k]; for (f = 5; f <= NF; f++) if ($f != "|") v[k, f, ++c[k, f]] = $f }
END {
	for (k in keys) {
		line = sprintf("%-13s", k)
		for (f = 5; f <= 12; f++) {
			if (f == 7) { line = line " |"; continue }
			m = c[k, f]
			if (!m) continue
			for (i = 1; i <= m; i++) a[i] = v[k, f, i] + 0
			for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
			line = line sprintf(" %8s", a[int((m + 1) / 2)])
		}
		print line
	}
}' "$tmp/rows" | sort -n
exit $fail
