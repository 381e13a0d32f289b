#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# Cluster mode (docs/CLUSTER.md): online-only envelopes between devices on
# the same node and on two nodes of one clustered broker, against a single
# node (no --cluster) as the baseline. Three nats-servers (cluster routes,
# JetStream, temporary stores) on 127.0.0.1-3, three sealpostd nodes sharing
# one server key, all on loopback, all killed by PID at the end.
#   single      one sealpostd without --cluster; pairs on it
#   same-node   the cluster; senders and receivers on node 1
#   cross-node  the cluster; senders on node 1, receivers on node 2
#               (every envelope: DELIVER over NATS, REPLY back)
# Then the same three with durable sends (--durable: store, deliver, ack):
# on the single node into its RocksDB (--fsync never), in the cluster into
# the JetStream mailbox streams (R3, nats-server's file store at its
# defaults: written at once, fsync'd on its sync interval), each envelope
# ACCEPTED at the quorum's PubAck and deleted on ack.
# Prints the load generator's one-line summaries (envelopes/s, latency).
#
# usage: cluster-bench.sh [SEALPOSTD [LOADGEN]]
# env:   DEVICES (100), WINDOW (16: envelopes outstanding per sender),
#        DURATION (5 s), SIZE (256), NATS_SERVER (nats-server),
#        THREADS (the nodes' --threads; unset: sealpostd's default, one
#        shard per core), MODES ("online durable": which halves to run),
#        NO_SINGLE (set: skip the single-node baseline)
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
sealpostd=${1:-$here/build/bin/sealpostd}
loadgen=${2:-$here/build/bin/sealpost-loadgen}
natsd=${NATS_SERVER:-nats-server}
devices=${DEVICES:-100}
window=${WINDOW:-16}
duration=${DURATION:-5}
size=${SIZE:-256}
modes=${MODES:-online durable}
threads=${THREADS:+--threads $THREADS}
command -v "$natsd" >/dev/null 2>&1 || { echo "SKIP: no nats-server"; exit 77; }

tmp=$(mktemp -d /tmp/sp-cluster-bench-XXXXXX)
pids=""
cleanup() {
	for p in $pids; do kill -9 "$p" 2>/dev/null || true; done
	for p in $pids; do wait "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
[ -n "${KEEP_LOGS:-}" ] && trap "cp $tmp/*.log $KEEP_LOGS/ 2>/dev/null; cleanup" EXIT

free_port() { # ip
	python3 -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1])' "$1"
}

# --- three nats-servers -------------------------------------------------------
urls=""
for i in 1 2 3; do
	eval "cp$i=$(free_port 127.0.0.$i) rp$i=$(free_port 127.0.0.$i) hp$i=$(free_port 127.0.0.$i)"
done
for i in 1 2 3; do
	eval "cp=\$cp$i rp=\$rp$i hp=\$hp$i"
	routes=""
	for j in 1 2 3; do
		[ "$j" = "$i" ] && continue
		eval "r=\$rp$j"
		routes="$routes nats-route://127.0.0.$j:$r"
	done
	cat > "$tmp/n$i.conf" <<CONF
server_name: n$i
listen: 127.0.0.$i:$cp
http: 127.0.0.$i:$hp
jetstream { store_dir: "$tmp/js$i", max_memory_store: 64MB, max_file_store: 256MB }
cluster { name: bench, listen: 127.0.0.$i:$rp, routes: [$(echo $routes | tr ' ' ',')] }
CONF
	"$natsd" -c "$tmp/n$i.conf" > "$tmp/n$i.log" 2>&1 &
	pids="$pids $!"
	urls="$urls${urls:+,}nats://127.0.0.$i:$cp"
done
# JetStream meta leader with all three peers, bounded.
n=0
until curl -s "http://127.0.0.1:$hp1/jsz" | grep -q '"cluster_size": 3' &&
      curl -s "http://127.0.0.1:$hp1/jsz" | grep -q '"leader": "n'; do
	n=$((n + 1)); [ $n -lt 200 ] || { echo "nats cluster not ready"; exit 1; }
	sleep 0.1
done

# --- brokers --------------------------------------------------------------------
start_broker() { # name port args...
	name=$1 port=$2; shift 2
	mkdir -p "$tmp/$name"
	[ -f "$tmp/key" ] && install -m 0600 "$tmp/key" "$tmp/$name/server.key"
	mp=$(free_port 127.0.0.1)
	eval "metrics_$name=$mp"
	"$sealpostd" --listen "127.0.0.1:$port" --data-dir "$tmp/$name" --metrics-listen "127.0.0.1:$mp" \
		--admin-socket off --fsync never "$@" > "$tmp/$name.log" 2>&1 &
	pids="$pids $!"
	n=0
	until grep -q 'msg="sealpostd started"' "$tmp/$name.log" 2>/dev/null; do
		n=$((n + 1)); [ $n -lt 200 ] || { cat "$tmp/$name.log"; exit 1; }
		sleep 0.05
	done
	[ -f "$tmp/key" ] || cp "$tmp/$name/server.key" "$tmp/key"
}

run() { # label server recv-server-or-empty data-dir [loadgen options]
	label=$1 server=$2 recv=$3 dir=$4
	shift 4
	printf '%-20s ' "$label"
	"$loadgen" "$@" --server "$server" ${recv:+--recv-server "$recv"} --data-dir "$dir" \
		--devices "$devices" --pattern pairs --size "$size" --closed-loop "$window" \
		--duration "$duration" --warmup 1 --no-progress 2>&1 | grep -E 'envelopes/s|p50|p99' |
		tr -s ' ' | tr '\n' ' '
	echo
}

has() { case " $modes " in *" $1 "*) return 0 ;; esac; return 1; }
sp=$(free_port 127.0.0.1)
if [ -z "${NO_SINGLE:-}" ]; then
	start_broker single "$sp" $threads
	has online && run single "127.0.0.1:$sp" "" "$tmp/single"
	has durable && run single-durable "127.0.0.1:$sp" "" "$tmp/single" --durable
fi
rm -f "$tmp/key"
p1=$(free_port 127.0.0.1); p2=$(free_port 127.0.0.1); p3=$(free_port 127.0.0.1)
start_broker node1 "$p1" --cluster "$urls" $threads
start_broker node2 "$p2" --cluster "$urls" $threads
start_broker node3 "$p3" --cluster "$urls" $threads
s=$(grep -o 'shards=[0-9]*' "$tmp/node1.log" | head -1)
echo "nodes: ${s:-shards=1}"
if has online; then
	run same-node "127.0.0.1:$p1" "" "$tmp/node1"
	run cross-node "127.0.0.1:$p1" "127.0.0.1:$p2" "$tmp/node1"
fi
if has durable; then
	run same-node-durable "127.0.0.1:$p1" "" "$tmp/node1" --durable
	run cross-node-durable "127.0.0.1:$p1" "127.0.0.1:$p2" "$tmp/node1" --durable
fi
# The envelopes did cross: node 2's count of deliveries from other nodes,
# node 1's round trips (sum / count = mean request-to-answer time).
curl -s "http://127.0.0.1:$metrics_node2/metrics" | grep -E '^sealpost_cluster_remote_deliveries_total'
curl -s "http://127.0.0.1:$metrics_node1/metrics" |
	grep -E '^sealpost_cluster_(remote_sends_total|round_trip_seconds_(sum|count)|request_timeouts_total|mailbox_|jetstream_publish_seconds_(sum|count))'
