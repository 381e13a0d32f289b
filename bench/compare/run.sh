#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench/compare/run.sh: sealpostd, Mosquitto and NATS side by side, one command.
#
# Compares like with like: brokers that store each envelope before they
# acknowledge it (sealpostd durable, Mosquitto QoS 1 with persistence, NATS
# JetStream) in one section, brokers that do not (sealpostd online-only, core
# NATS) in another. Starts a fresh broker for every run on a free loopback
# port with throwaway TLS certificates (openssl, in a temporary directory),
# drives each with the same load-generator design (bench/loadgen/: same rate
# and window control, same histogram, same report; the peers' clients are
# libmosquitto and libnats), stops everything and prints the table with
# ratios to the section's sealpost column. Bounded (every run has a duration
# and a timeout) and self-cleaning (trap).
#
# Needs (Debian packages): mosquitto nats-server libmosquitto-dev libnats-dev
# openssl, and a build with the peer load generators (they are built when
# libmosquitto-dev and libnats-dev are present at configure time).
set -euo pipefail

usage() {
	cat <<'USAGE'
usage: bench/compare/run.sh [options]
Compares like with like, in two sections of one table, every broker on loopback with TLS:
  stored   (each envelope stored before it is acknowledged): sealpostd durable sends
           (--fsync, default batch) | Mosquitto QoS 1, persistence on | NATS JetStream,
           file storage
  unstored (nothing stored; delivered to a connected recipient): sealpostd online-only
           sends | core NATS
Every system gets the same window rule in the capacity runs: at most W envelopes per
sender outstanding. An envelope stops being outstanding at the broker's per-message
result (sealpost SendResult, MQTT PUBACK, JetStream PubAck); core NATS has none, so there
it is at delivery to the recipient (the later of the two ends).
Each capacity run is repeated with 1, 2, ... load-generator processes (--sweep); the best
is the figure, and client and broker CPU are printed beside each, so a run the client
(not the broker) limits is visible.

  --build-dir DIR       where bin/ holds sealpostd and the load generators
                        (default: build next to the source tree)
  --pairs N             device pairs exchanging envelopes (default 50: 100 devices)
  --window W            envelopes outstanding per sender in the capacity runs (default 64)
  --sweep LIST          load-generator processes per capacity run, comma-separated
                        (default 1,2,5; core NATS skips counts that do not divide --pairs)
  --rate R              envelopes/s for the latency runs (default 5000)
  --fanout N            devices in the fan-out run (default 100)
  --fanout-rate R       envelopes/s from the one fan-out sender (default 5000)
  --idle N              idle connections for memory per connection (default 500; 0 = none)
  --size BYTES          payload size (default 256)
  --duration S          measured seconds per run (default 5)
  --warmup S            unmeasured seconds before each run (default 1)
  --fsync MODE          sealpostd's --fsync in the stored section: always|batch|never
                        (default batch; the peers' own disk settings are printed)
  --processes P         load-generator processes of the latency and fan-out runs (default 2)
  --pin                 brokers on CPU 0, load generators on the other CPUs (taskset)
  --only LIST           comma-separated subset of: sealpost-durable,mosquitto,natsjs,sealpost,nats
  --keep DIR            keep the JSON reports and broker logs in DIR
  --help                this text

Every run gets a fresh broker (empty store). The default run takes about 8 minutes on
2 vCPUs (most of it NATS's blocking TLS connect-up, one device at a time per process).
USAGE
}

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SRC="$(cd "$HERE/../.." && pwd)"
BUILD="$SRC/build"
PAIRS=50 RATE=5000 FANOUT=100 FANRATE=5000 IDLE=500 SIZE=256 FSYNC=batch SWEEP="1,2,5"
DURATION=5 WARMUP=1 ONLY="sealpost-durable,mosquitto,natsjs,sealpost,nats" KEEP="" PROCS=2 PIN=0
WINDOW=64

while [ $# -gt 0 ]; do
	case "$1" in
	--help|-h) usage; exit 0 ;;
	--build-dir) BUILD="$2"; shift 2 ;;
	--pairs) PAIRS="$2"; shift 2 ;;
	--rate) RATE="$2"; shift 2 ;;
	--window) WINDOW="$2"; shift 2 ;;
	--sweep) SWEEP="$2"; shift 2 ;;
	--fanout) FANOUT="$2"; shift 2 ;;
	--fanout-rate) FANRATE="$2"; shift 2 ;;
	--idle) IDLE="$2"; shift 2 ;;
	--size) SIZE="$2"; shift 2 ;;
	--duration) DURATION="$2"; shift 2 ;;
	--warmup) WARMUP="$2"; shift 2 ;;
	--fsync) FSYNC="$2"; shift 2 ;;
	--only) ONLY="$2"; shift 2 ;;
	--processes) PROCS="$2"; shift 2 ;;
	--pin) PIN=1; shift ;;
	--keep) KEEP="$2"; shift 2 ;;
	*) echo "run.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
	esac
done
for v in PAIRS RATE FANOUT FANRATE IDLE SIZE PROCS WINDOW; do
	case "${!v}" in ''|*[!0-9]*) echo "run.sh: --${v,,} needs a whole number" >&2; exit 2 ;; esac
done
case "$FSYNC" in always|batch|never) ;; *) echo "run.sh: --fsync always|batch|never" >&2; exit 2 ;; esac
case "$SWEEP" in ''|,*|*,|*,,*|*[!0-9,]*) echo "run.sh: --sweep: comma-separated counts" >&2; exit 2 ;; esac
IFS=, read -r -a SWEEPS <<<"$SWEEP"
IFS=, read -r -a KINDS <<<"$ONLY"
for kind in "${KINDS[@]}"; do
	case "$kind" in sealpost-durable|mosquitto|natsjs|sealpost|nats) ;;
	*) echo "run.sh: --only: '$kind'?" >&2; exit 2 ;; esac
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
		mkdir -p "$KEEP" && cp "$TMP"/*.json "$TMP"/*.log "$TMP"/*.conf "$KEEP"/ 2>/dev/null || true
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

# The peers' settings, each the best-known one for throughput with the
# guarantee the section promises; printed under the table as well.
#  Mosquitto: set_tcp_nodelay (no Nagle delay on PUBACK/PUBLISH), outgoing
#  QoS 1 window per client far above W (default 20) and a queue that never
#  drops (default 1000), no byte limits. persistence writes the in-memory
#  store to disk every autosave_interval seconds (default 1800) and at exit:
#  a QoS 1 message is "stored" in memory when PUBACKed, as with NATS below.
#  NATS: write_deadline and max_pending as large as a slow receiver needs
#  (defaults 10s / 64 MB in 2.9; set explicitly). JetStream (2.9) has no
#  sync setting: its file store writes each message to the OS at once and
#  fsyncs every 2 minutes, which sealpostd's --fsync never matches and
#  --fsync batch (fsync every --fsync-interval, 100 ms) exceeds.
write_configs() {
	local port="$1"
	cat >"$TMP/mosquitto.conf" <<EOF
listener $port 127.0.0.1
certfile $TMP/cert.pem
keyfile $TMP/key.pem
allow_anonymous true
# run as root (the default drops to user mosquitto, which cannot read the temp dir)
user root
persistence true
persistence_location $TMP/mq/
autosave_interval 1800
set_tcp_nodelay true
max_inflight_messages 1000
max_inflight_bytes 0
max_queued_messages 1000000
max_queued_bytes 0
log_dest stderr
log_type error
EOF
	cat >"$TMP/nats.conf" <<EOF
listen: 127.0.0.1:$port
tls {
  cert_file: "$TMP/cert.pem"
  key_file: "$TMP/key.pem"
}
write_deadline: "10s"
max_pending: 67108864
jetstream {
  store_dir: "$TMP/js"
}
EOF
}
SETTINGS_MQ="mosquitto $( (mosquitto -h 2>/dev/null || true) | sed -n 's/^mosquitto version \([0-9.]*\).*/\1/p' | head -1): persistence true (autosave_interval 1800 s), set_tcp_nodelay true, max_inflight_messages 1000, max_queued_messages 1000000, byte limits off; client: libmosquitto, max_inflight 100"
SETTINGS_NATS="nats-server $(nats-server --version 2>/dev/null | sed 's/.*v//'): write_deadline 10s, max_pending 64 MB; JetStream file storage, fsync every 2 min (2.9 has no sync setting); client: libnats $(dpkg-query -W -f '${Version}' libnats-dev 2>/dev/null || echo '?'), own I/O threads, asynchronous publish (no flush per message), JetStream PubAcks through the async ack handler"
SETTINGS_SP="sealpostd: --fsync $FSYNC (batch: fsync at most every --fsync-interval 100 ms; durable sends survive kill -9 once ACCEPTED), --handshake-rate 0 --handshake-rate-per-source 0 (every load generator connects from 127.0.0.1, one source); client: libsealpost-style io_uring load generator"

BROKER_PID=""
BROKER_PORT=""
start_broker() {
	local kind="$1" port
	port=$(free_port)
	rm -rf "$TMP/sp" "$TMP/mq" "$TMP/js"
	mkdir -p "$TMP/sp" "$TMP/mq" "$TMP/js"
	write_configs "$port"
	case "$kind" in
	sealpost|sealpost-durable)
		"${BROKER_CPU[@]}" "$BIN/sealpostd" --listen "127.0.0.1:$port" --data-dir "$TMP/sp" \
			--handshake-rate 0 --handshake-rate-per-source 0 --fsync "$FSYNC" \
			--log-level warn 2>>"$TMP/sealpostd.log" &
		;;
	mosquitto)
		"${BROKER_CPU[@]}" mosquitto -c "$TMP/mosquitto.conf" 2>>"$TMP/mosquitto.log" &
		;;
	nats|natsjs)
		"${BROKER_CPU[@]}" nats-server -c "$TMP/nats.conf" 2>>"$TMP/nats.log" >&2 &
		;;
	esac
	BROKER_PID=$!
	BROKER_PORT=$port
	PIDS+=("$BROKER_PID")
	wait_port "$port"
}

# run_lg KIND NAME PROCS ARGS...: one load-generator run against a fresh broker.
run_lg() {
	local kind="$1" name="$2" procs="$3"; shift 3
	local prog args
	start_broker "$kind"
	args=(--server "127.0.0.1:$BROKER_PORT" --broker-pid "$BROKER_PID"
	      --json "$TMP/$kind-$name.json" --quiet --no-progress --processes "$procs")
	case "$kind" in
	sealpost) prog="$BIN/sealpost-loadgen"; args+=(--data-dir "$TMP/sp") ;;
	sealpost-durable) prog="$BIN/sealpost-loadgen"; args+=(--data-dir "$TMP/sp" --durable) ;;
	mosquitto) prog="$BIN/sealpost-loadgen-mqtt"; args+=(--cafile "$CA" --qos 1) ;;
	nats) prog="$BIN/sealpost-loadgen-nats"; args+=(--cafile "$CA" --mode core) ;;
	natsjs) prog="$BIN/sealpost-loadgen-nats"; args+=(--cafile "$CA" --mode js) ;;
	esac
	echo "  $kind $name (load average $(cut -d' ' -f1 /proc/loadavg))" >&2
	# In the background + wait, so a TERM/INT to this script runs the trap at
	# once (bash defers traps while a foreground child runs).
	timeout 300 "${CLIENT_CPU[@]}" "$prog" "${args[@]}" "$@" >"$TMP/$kind-$name.log" 2>&1 &
	LG_PID=$!
	local rc=0
	wait "$LG_PID" || rc=$?
	LG_PID=""
	if [ "$rc" = 3 ]; then
		# The load generators exit 3 when devices did not connect or errors
		# occurred: the report exists and says which; keep it, but say so.
		echo "run.sh: $kind $name: not every device connected or errors occurred (see its report)" >&2
	elif [ "$rc" != 0 ]; then
		echo "run.sh: $kind $name failed:" >&2
		tail -5 "$TMP/$kind-$name.log" >&2
		rm -f "$TMP/$kind-$name.json"
	fi
	stop_pid "$BROKER_PID"
}

# Field extraction from the reports (fixed layout written by bench/loadgen/lg.c).
top() { sed -n "s/^  \"$2\": \\([-0-9.]*\\).*/\\1/p" "$TMP/$1.json" 2>/dev/null | head -1; }
obj() { sed -n "s/.*\"$2\": {.*\"$3\": \([-0-9.]*\).*/\\1/p" "$TMP/$1.json" 2>/dev/null | head -1; }
lat() { sed -n "s/.*\"latency_us\": {.*\"$2\": \\([-0-9.]*\\).*/\\1/p" "$TMP/$1.json" 2>/dev/null | head -1; }
# CPU in the window as % of one core (both figures cover warm-up end to window end).
bcpu() { local v; v=$(obj "$1" broker_cpu_s window); [ -z "$v" ] || awk -v v="$v" -v d="$DURATION" 'BEGIN { if (v >= 0) printf "%.0f", 100 * v / d }'; }
ccpu() { local v; v=$(obj "$1" client cpu_s_window); [ -z "$v" ] || awk -v v="$v" -v d="$DURATION" 'BEGIN { printf "%.0f", 100 * v / d }'; }

echo "bench/compare: ${KINDS[*]} on $(nproc) CPU(s)$([ "$PIN" = 1 ] && echo ", pinned"); load average $(cut -d' ' -f1-3 /proc/loadavg); temp dir $TMP" >&2
declare -A BEST_P=()
NORATIO=0
for kind in "${KINDS[@]}"; do
	# Capacity: closed loop, W outstanding per sender, for 1, 2, ... processes.
	best=-1
	for p in "${SWEEPS[@]}"; do
		if [ "$kind" = nats ] && [ $(( PAIRS % p )) != 0 ]; then
			continue # its window closes on delivery: pairs must not straddle processes
		fi
		run_lg "$kind" "max-p$p" "$p" --pattern pairs --devices $(( 2 * PAIRS )) --size "$SIZE" \
			--closed-loop "$WINDOW" --duration "$DURATION" --warmup "$WARMUP" --grace 3
		v=$(top "$kind-max-p$p" throughput)
		if [ -n "$v" ] && awk -v v="$v" -v b="$best" 'BEGIN { exit !(v > b) }'; then
			best=$v
			BEST_P[$kind]=$p
		fi
	done
	[ -n "${BEST_P[$kind]:-}" ] && cp "$TMP/$kind-max-p${BEST_P[$kind]}.json" "$TMP/$kind-max.json"
	run_lg "$kind" lat "$PROCS" --pattern pairs --devices $(( 2 * PAIRS )) --size "$SIZE" --rate "$RATE" \
		--duration "$DURATION" --warmup "$WARMUP"
	run_lg "$kind" fanout "$PROCS" --pattern fanout --devices "$FANOUT" --size "$SIZE" --rate "$FANRATE" \
		--duration "$DURATION" --warmup "$WARMUP"
	if [ "$IDLE" -gt 0 ]; then
		run_lg "$kind" idle $(( PROCS > 4 ? PROCS : 4 )) --pattern idle --devices "$IDLE" \
			--duration 1 --warmup 0
	fi
done

cell() { # value, reference value: "value (ratio x)"; no ratio while NORATIO=1
	local v="$1" s="$2"
	if [ -z "$v" ]; then printf '%s' "n/a"; return; fi
	if [ "$NORATIO" = 0 ] && [ -n "$s" ] && awk -v s="$s" 'BEGIN { exit !(s > 0) }'; then
		awk -v v="$v" -v s="$s" 'BEGIN { printf (v == int(v) || v >= 100 ? "%.0f" : "%.2f") " (%.2fx)", v, v / s }'
	else
		awk -v v="$v" 'BEGIN { printf (v == int(v) || v >= 100 ? "%.0f" : "%.2f"), v }'
	fi
}

# row LABEL GETTER FIELD RUN [SUBFIELD]: one line of the current section.
row() {
	local label="$1" get="$2" field="$3" run="$4" sub="${5:-}" s v k
	s=$($get "${SEC[0]}-$run" "$field" $sub)
	printf '%-38s' "$label"
	for k in "${SEC[@]}"; do
		v=$($get "$k-$run" "$field" $sub)
		printf ' | %-21s' "$(cell "$v" "$s")"
	done
	printf '\n'
}

# The sweep: throughput, client CPU %, broker CPU % per process count.
sweep_rows() {
	local p k v
	for p in "${SWEEPS[@]}"; do
		printf '%-38s' "  capacity with $p lg proc: /s c%/b%"
		for k in "${SEC[@]}"; do
			v=$(top "$k-max-p$p" throughput)
			if [ -n "$v" ]; then
				printf ' | %-21s' "$(printf '%.0f %s/%s' "$v" "$(ccpu "$k-max-p$p")" "$(bcpu "$k-max-p$p")")"
			else
				printf ' | %-21s' "-"
			fi
		done
		printf '\n'
	done
}

label() {
	case "$1" in
	sealpost-durable) echo "sealpost durable" ;;
	sealpost) echo "sealpost online-only" ;;
	mosquitto) echo "mosquitto QoS1 persist" ;;
	nats) echo "nats core" ;;
	natsjs) echo "nats JetStream file" ;;
	esac
}

section() { # TITLE KIND...
	local title="$1" k; shift
	SEC=()
	for k in "$@"; do
		case ",$ONLY," in *",$k,"*) SEC+=("$k") ;; esac
	done
	[ ${#SEC[@]} -gt 0 ] || return 0
	echo
	printf '%-38s' "$title"
	for k in "${SEC[@]}"; do printf ' | %-21s' "$(label "$k")"; done
	printf '\n'
	row "capacity /s, W=$WINDOW, best of sweep" top throughput max
	NORATIO=1
	row "  ... at load-generator processes" top processes max
	row "  ... client CPU % of a core (window)" ccpu "" max
	row "  ... broker CPU % of a core (window)" bcpu "" max
	NORATIO=0
	sweep_rows
	row "capacity run: p50 us" lat p50 max
	row "capacity run: p99 us" lat p99 max
	row "pairs @${RATE}/s: p50 us" lat p50 lat
	row "pairs @${RATE}/s: p99 us" lat p99 lat
	row "fanout 1->$((FANOUT - 1)) @${FANRATE}/s: p99 us" lat p99 fanout
	[ "$IDLE" -gt 0 ] && row "idle $IDLE conns: broker bytes/conn" top broker_mem_per_conn_bytes idle
	NORATIO=1
	row "capacity run: errors" top errors_total max
	row "capacity run: other procs CPU-s" obj machine max other_cpu_s_window
	NORATIO=0
}

echo
echo "$SIZE B payloads, $((2 * PAIRS)) devices in pairs, TLS everywhere, $(nproc) vCPU$([ "$PIN" = 1 ] && echo "s, pinned"), load average $(cut -d' ' -f1-3 /proc/loadavg) at the end; x = vs the section's sealpost column"
section "STORED (ack = stored)" sealpost-durable mosquitto natsjs
section "UNSTORED (no store)" sealpost nats
echo
echo "Window rule (every system): at most W=$WINDOW envelopes outstanding per sender; one ends at"
echo "the broker's per-message result (SendResult / PUBACK / PubAck), for core NATS (none) at"
echo "delivery to the recipient. c%/b% = load-generator / broker CPU in the window, % of one"
echo "core: a sweep whose figure rises with processes while b% stays below what the broker can"
echo "use was client-bound at the smaller counts. Latency from the intended send time; memory ="
echo "broker RSS growth / connections. Fresh broker per run."
echo "Settings: $SETTINGS_SP"
echo "          $SETTINGS_MQ"
echo "          $SETTINGS_NATS"
