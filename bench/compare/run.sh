#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench/compare/run.sh: sealpostd, Mosquitto and NATS side by side, one command.
#
# Starts each broker on a free loopback port with throwaway TLS certificates
# (openssl, in a temporary directory), runs the same workload shapes against
# each with the same load-generator design (bench/loadgen/: same rate control,
# same histogram, same report; the peers' clients are libmosquitto and
# libnats), stops everything, and prints ONE table with ratios to sealpost.
# Bounded (every run has a duration and a timeout) and self-cleaning (trap).
#
# Needs (Debian packages): mosquitto nats-server libmosquitto-dev libnats-dev
# openssl, and a build with the peer load generators (they are built when
# libmosquitto-dev and libnats-dev are present at configure time).
set -euo pipefail

usage() {
	cat <<EOF
usage: bench/compare/run.sh [options]
Runs sealpostd, Mosquitto (TLS, QoS 1, persistence on) and NATS (TLS; core and
JetStream with file storage) on loopback and prints one comparison table.

  --build-dir DIR       where bin/ holds sealpostd and the load generators
                        (default: build next to the source tree)
  --pairs N             devices exchanging envelopes in pairs (default 200)
  --rate R              envelopes/s for the latency runs (default 5000)
  --window W            envelopes outstanding per device in the capacity runs (default 8)
  --max-rate R          offered envelopes/s for core NATS's capacity run, which has no
                        per-message result for a closed loop (default 100000)
  --fanout N            devices in the fan-out run (default 200)
  --fanout-rate R       envelopes/s from the one fan-out sender (default 5000)
  --idle N              idle connections for memory per connection (default 1000)
  --size BYTES          payload size (default 256)
  --duration S          measured seconds per run (default 6)
  --warmup S            unmeasured seconds before each run (default 1)
  --processes P         load-generator worker processes per traffic run (default 2;
                        the idle runs use at least 4: the peers' libraries connect
                        one device at a time per process)
  --pin                 brokers on CPU 0, load generators on the other CPUs (taskset):
                        the broker's figures are then not mixed with client CPU use
  --only LIST           comma-separated subset of: sealpost,mosquitto,nats,natsjs
  --keep DIR            keep the JSON reports and broker logs in DIR
  --help                this text

A default run takes about 5 minutes on 2 vCPUs (most of the NATS time is its TLS
connect-up: ~20 connections/s here).
EOF
}

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SRC="$(cd "$HERE/../.." && pwd)"
BUILD="$SRC/build"
PAIRS=200 RATE=5000 MAXRATE=100000 FANOUT=200 FANRATE=5000 IDLE=1000 SIZE=256
DURATION=6 WARMUP=1 ONLY="sealpost,mosquitto,nats,natsjs" KEEP="" PROCS=2 PIN=0 WINDOW=8

while [ $# -gt 0 ]; do
	case "$1" in
	--help|-h) usage; exit 0 ;;
	--build-dir) BUILD="$2"; shift 2 ;;
	--pairs) PAIRS="$2"; shift 2 ;;
	--rate) RATE="$2"; shift 2 ;;
	--max-rate) MAXRATE="$2"; shift 2 ;;
	--window) WINDOW="$2"; shift 2 ;;
	--fanout) FANOUT="$2"; shift 2 ;;
	--fanout-rate) FANRATE="$2"; shift 2 ;;
	--idle) IDLE="$2"; shift 2 ;;
	--size) SIZE="$2"; shift 2 ;;
	--duration) DURATION="$2"; shift 2 ;;
	--warmup) WARMUP="$2"; shift 2 ;;
	--only) ONLY="$2"; shift 2 ;;
	--processes) PROCS="$2"; shift 2 ;;
	--pin) PIN=1; shift ;;
	--keep) KEEP="$2"; shift 2 ;;
	*) echo "run.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
	esac
done
for v in PAIRS RATE MAXRATE FANOUT FANRATE IDLE SIZE PROCS WINDOW; do
	case "${!v}" in ''|*[!0-9]*) echo "run.sh: --${v,,} needs a whole number" >&2; exit 2 ;; esac
done

BIN="$BUILD/bin"
missing=""
for t in mosquitto nats-server openssl ss; do
	command -v "$t" >/dev/null 2>&1 || missing="$missing $t"
done
for b in sealpostd sealpost-loadgen sealpost-loadgen-mqtt sealpost-loadgen-nats; do
	[ -x "$BIN/$b" ] || missing="$missing $BIN/$b"
done
if [ -n "$missing" ]; then
	echo "run.sh: missing:$missing" >&2
	echo "  apt-get install mosquitto nats-server libmosquitto-dev libnats-dev openssl iproute2" >&2
	echo "  then re-run cmake and build (the peer load generators need the -dev packages)" >&2
	exit 3
fi

BROKER_CPU=() CLIENT_CPU=()
if [ "$PIN" = 1 ]; then
	if [ "$(nproc)" -lt 2 ] || ! command -v taskset >/dev/null; then
		echo "run.sh: --pin needs 2 CPUs and taskset (util-linux)" >&2
		exit 2
	fi
	BROKER_CPU=(taskset -c 0)
	CLIENT_CPU=(taskset -c "1-$(( $(nproc) - 1 ))")
fi

TMP="$(mktemp -d /tmp/sealpost-compare.XXXXXX)"
PIDS=()
LG_PID=""
cleanup() {
	local p
	# The running load generator first (timeout passes the TERM on to it).
	if [ -n "$LG_PID" ]; then
		kill "$LG_PID" 2>/dev/null || true
		wait "$LG_PID" 2>/dev/null || true
	fi
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	if [ -n "$KEEP" ]; then
		mkdir -p "$KEEP" && cp "$TMP"/*.json "$TMP"/*.log "$KEEP"/ 2>/dev/null || true
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A loopback port nobody listens on (checked, then used at once).
free_port() {
	local p
	for _ in $(seq 200); do
		p=$(( 20000 + RANDOM % 30000 ))
		if ! ss -ltnH "sport = :$p" | grep -q .; then echo "$p"; return 0; fi
	done
	return 1
}

wait_port() {
	for _ in $(seq 100); do
		ss -ltnH "sport = :$1" | grep -q . && return 0
		sleep 0.1
	done
	echo "run.sh: nothing listens on port $1" >&2
	return 1
}

stop_pid() {
	kill "$1" 2>/dev/null || true
	for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# Throwaway self-signed certificate for 127.0.0.1 (ECDSA P-256): the clients
# trust exactly this one certificate.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
	-subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" \
	-keyout "$TMP/key.pem" -out "$TMP/cert.pem" >/dev/null 2>&1
CA="$TMP/cert.pem"

BROKER_PID=""
BROKER_PORT=""
start_broker() {
	local kind="$1" port
	port=$(free_port)
	case "$kind" in
	sealpost)
		mkdir -p "$TMP/sp"
		"${BROKER_CPU[@]}" "$BIN/sealpostd" --listen "127.0.0.1:$port" --data-dir "$TMP/sp" \
			--handshake-rate 0 --log-level warn 2>"$TMP/sealpostd.log" &
		;;
	mosquitto)
		mkdir -p "$TMP/mq"
		cat >"$TMP/mosquitto.conf" <<EOF
listener $port 127.0.0.1
certfile $TMP/cert.pem
keyfile $TMP/key.pem
allow_anonymous true
# run as root (the default drops to user mosquitto, which cannot read the temp dir)
user root
persistence true
persistence_location $TMP/mq/
set_tcp_nodelay true
max_inflight_messages 1000
max_queued_messages 100000
log_dest stderr
log_type error
EOF
		"${BROKER_CPU[@]}" mosquitto -c "$TMP/mosquitto.conf" 2>"$TMP/mosquitto.log" &
		;;
	nats|natsjs)
		mkdir -p "$TMP/js"
		cat >"$TMP/nats.conf" <<EOF
listen: 127.0.0.1:$port
tls {
  cert_file: "$TMP/cert.pem"
  key_file: "$TMP/key.pem"
}
jetstream {
  store_dir: "$TMP/js"
}
EOF
		"${BROKER_CPU[@]}" nats-server -c "$TMP/nats.conf" 2>"$TMP/nats.log" >&2 &
		;;
	esac
	BROKER_PID=$!
	BROKER_PORT=$port
	PIDS+=("$BROKER_PID")
	wait_port "$port"
}

# run_lg KIND NAME ARGS...: one load-generator run against the running broker.
run_lg() {
	local kind="$1" name="$2"; shift 2
	local prog args=(--server "127.0.0.1:$BROKER_PORT" --broker-pid "$BROKER_PID"
			 --json "$TMP/$kind-$name.json" --quiet --processes "$PROCS")
	case "$kind" in
	sealpost) prog="$BIN/sealpost-loadgen"; args+=(--data-dir "$TMP/sp") ;;
	mosquitto) prog="$BIN/sealpost-loadgen-mqtt"; args+=(--cafile "$CA" --qos 1) ;;
	nats) prog="$BIN/sealpost-loadgen-nats"; args+=(--cafile "$CA" --mode core) ;;
	natsjs) prog="$BIN/sealpost-loadgen-nats"; args+=(--cafile "$CA" --mode js) ;;
	esac
	echo "  $kind $name" >&2
	# In the background + wait, so a TERM/INT to this script runs the trap at
	# once (bash defers traps while a foreground child runs).
	timeout 300 "${CLIENT_CPU[@]}" "$prog" "${args[@]}" "$@" >"$TMP/$kind-$name.log" 2>&1 &
	LG_PID=$!
	local rc=0
	wait "$LG_PID" || rc=$?
	if [ "$rc" = 3 ]; then
		# The load generators exit 3 when devices did not connect or errors
		# occurred: the report exists and says which; keep it, but say so.
		echo "run.sh: $kind $name: not every device connected or errors occurred (see its report)" >&2
	elif [ "$rc" != 0 ]; then
		echo "run.sh: $kind $name failed:" >&2
		tail -5 "$TMP/$kind-$name.log" >&2
		rm -f "$TMP/$kind-$name.json"
	fi
}

IFS=, read -r -a KINDS <<<"$ONLY"
echo "bench/compare: ${KINDS[*]} on $(nproc) CPU(s)$([ "$PIN" = 1 ] && echo ", pinned"); temp dir $TMP" >&2
for kind in "${KINDS[@]}"; do
	case "$kind" in sealpost|mosquitto|nats|natsjs) ;; *) echo "run.sh: --only: '$kind'?" >&2; exit 2 ;; esac
	start_broker "$kind"
	run_lg "$kind" lat --pattern pairs --devices "$PAIRS" --size "$SIZE" --rate "$RATE" \
		--duration "$DURATION" --warmup "$WARMUP"
	# Capacity: closed loop (W outstanding per device) where the protocol has a
	# per-message result; core NATS has none, so open loop at --max-rate.
	if [ "$kind" = nats ]; then
		run_lg "$kind" max --pattern pairs --devices "$PAIRS" --size "$SIZE" --rate "$MAXRATE" \
			--duration "$DURATION" --warmup "$WARMUP" --grace 3
	else
		run_lg "$kind" max --pattern pairs --devices "$PAIRS" --size "$SIZE" \
			--closed-loop "$WINDOW" --duration "$DURATION" --warmup "$WARMUP" --grace 3
	fi
	run_lg "$kind" fanout --pattern fanout --devices "$FANOUT" --size "$SIZE" --rate "$FANRATE" \
		--duration "$DURATION" --warmup "$WARMUP"
	# Fresh broker for the memory figure, so earlier runs leave nothing behind.
	stop_pid "$BROKER_PID"
	start_broker "$kind"
	run_lg "$kind" idle --pattern idle --devices "$IDLE" --duration 1 --warmup 0 \
		--processes $(( PROCS > 4 ? PROCS : 4 ))
	stop_pid "$BROKER_PID"
done

# Field extraction from the reports (fixed layout written by bench/loadgen/lg.c).
top() { sed -n "s/^  \"$2\": \\([-0-9.]*\\).*/\\1/p" "$TMP/$1.json" 2>/dev/null | head -1; }
obj() { sed -n "s/.*\"$2\": {.*\"$3\": \([-0-9.]*\).*/\\1/p" "$TMP/$1.json" 2>/dev/null | head -1; }
lat() { sed -n "s/.*\"latency_us\": {.*\"$2\": \\([-0-9.]*\\).*/\\1/p" "$TMP/$1.json" 2>/dev/null | head -1; }

cell() { # value, sealpost value, unit: "value (ratio x)"
	local v="$1" s="$2"
	if [ -z "$v" ]; then printf '%s' "n/a"; return; fi
	if [ -n "$s" ] && awk -v s="$s" 'BEGIN { exit !(s > 0) }'; then
		awk -v v="$v" -v s="$s" 'BEGIN { printf (v == int(v) || v >= 100 ? "%.0f" : "%.2f") " (%.2fx)", v, v / s }'
	else
		awk -v v="$v" 'BEGIN { printf (v == int(v) || v >= 100 ? "%.0f" : "%.2f"), v }'
	fi
}

row() { # label, getter, field, run [subfield]
	local label="$1" get="$2" field="$3" run="$4" sub="${5:-}" s v k
	s=$($get "sealpost-$run" "$field" $sub)
	printf '%-34s' "$label"
	for k in "${KINDS[@]}"; do
		v=$($get "$k-$run" "$field" $sub)
		printf ' | %-20s' "$(cell "$v" "$s")"
	done
	printf '\n'
}

echo
printf '%-34s' "$SIZE B, $(nproc) vCPU$([ "$PIN" = 1 ] && echo " pinned"), x = vs sealpost"
for k in "${KINDS[@]}"; do
	case "$k" in
	sealpost) l="sealpost (IK)" ;;
	mosquitto) l="mosquitto TLS QoS1" ;;
	nats) l="nats TLS core" ;;
	natsjs) l="nats TLS JetStream" ;;
	esac
	printf ' | %-20s' "$l"
done
printf '\n'
row "pairs $PAIRS dev: capacity /s (*)" top throughput max
row "pairs @${RATE}/s: p50 us" lat p50 lat
row "pairs @${RATE}/s: p99 us" lat p99 lat
row "capacity run (*): p99 us" lat p99 max
row "fanout 1->$((FANOUT - 1)) @${FANRATE}/s: p50 us" lat p50 fanout
row "fanout 1->$((FANOUT - 1)) @${FANRATE}/s: p99 us" lat p99 fanout
row "idle $IDLE conns: broker bytes/conn" top broker_mem_per_conn_bytes idle
row "max run: broker CPU s in window" obj broker_cpu_s max window
row "max run: client CPU s (all)" obj client max cpu_s
row "max run: envelopes never sent" obj client max unsent
row "lat run: other processes CPU-s" obj machine lat other_cpu_s_window
row "max run: other processes CPU-s" obj machine max other_cpu_s_window
echo
echo "(*) capacity = envelopes delivered per second with $WINDOW outstanding per device (closed loop);"
echo "core NATS has no per-message acknowledgement: open loop at ${MAXRATE}/s offered instead."
echo "latency from the intended send time; memory = broker RSS growth / connections."
echo "Peers connect one device at a time per process (blocking library connect): no handshake"
echo "figures here. A client CPU near the window length x CPUs means the run is client-bound;"
echo "other processes' CPU above ~0.1 x window means the machine was shared during that run."
