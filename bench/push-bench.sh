#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Push wake-ups on vs off: what the envelope path costs the broker's event
# loop when every envelope is for an offline device with a Web Push
# subscription (push on: the loop looks the subscription up, coalesces and
# hands a wake-up to the libcurl worker thread) against the same envelopes
# with push off (no VAPID subject, no subscriptions).
#
# Figures: broker loop-thread CPU and whole-process CPU (all threads, the
# push worker's included) per envelope, from /proc/PID/task/*/stat, and
# the wake-ups the sink counted. Clients are `sealpost send --lines`
# processes (one per recipient; they seal every envelope, so they, not the
# broker, bound the rate: envelopes/s is printed but is the clients' figure).
# Medians of REPS runs per mode, modes alternated, a fresh broker per run.
#
# Usage: bench/push-bench.sh [BUILD_DIR]   env: DEVICES (8) PER_DEVICE (4000)
#        REPS (3) COALESCE_MS (100, the broker's minimum) PORT (free ports)
set -eu
build="${1:-build}"
bin="$build/bin"
here="$(cd "$(dirname "$0")" && pwd)"
DEVICES="${DEVICES:-8}"
PER_DEVICE="${PER_DEVICE:-4000}"
REPS="${REPS:-3}"
COALESCE_MS="${COALESCE_MS:-100}"
# Three loopback ports the kernel says are free (PORT, PORT+1, PORT+2 if set).
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
if [ -n "${PORT:-}" ]; then mport=$((PORT + 1)); sport=$((PORT + 2))
else PORT="$(free_port)"; mport="$(free_port)"; sport="$(free_port)"; fi
tmp="$(mktemp -d)"
sink_pid=""
broker_pid=""
cleanup() {
	[ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null || true
	[ -n "$sink_pid" ] && kill "$sink_pid" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
hz="$(getconf CLK_TCK)"

# CPU ticks (utime + stime) of one thread or of the whole process.
ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "$1"; }

# A valid P-256 point and auth secret: the RFC 8291 appendix A receiver's
# public key (the sink never decrypts, so any valid point will do).
P256DH="BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
AUTH="BTBZMqHH6r4Tts7J_aSIgg"

node "$here/push/sink.mjs" "$sport" "$tmp/sink.count" &
sink_pid=$!
for _ in $(seq 1 50); do [ -s "$tmp/sink.count" ] && break; sleep 0.1; done

for i in $(seq 1 "$DEVICES"); do
	"$bin/sealpost" keygen "$tmp/dev$i.key" > "$tmp/dev$i.pub"
	"$bin/sealpost" keygen "$tmp/snd$i.key" > /dev/null
done
yes "a sealed envelope of about a hundred bytes once the library has sealed it" |
	head -n "$PER_DEVICE" > "$tmp/lines"

run() { # mode rep -> prints "loop_ns_per_env proc_ns_per_env env_per_s wakeups"
	mode="$1"
	d="$tmp/data-$mode-$2"
	extra=""
	[ "$mode" = on ] && extra="--push-vapid-subject mailto:bench@example.org --push-allow-private 1 --push-coalesce $COALESCE_MS"
	# shellcheck disable=SC2086
	"$bin/sealpostd" --data-dir "$d" --listen "127.0.0.1:$PORT" --metrics-listen "127.0.0.1:$mport" \
		--fsync batch --mailbox-max-count 1000000 --mailbox-sender-share 100 \
		--sender-rate 0 $extra > "$tmp/broker.log" 2>&1 &
	broker_pid=$!
	sleep 0.2
	kill -0 "$broker_pid" 2>/dev/null || { cat "$tmp/broker.log" >&2; exit 1; }
	for _ in $(seq 1 100); do
		[ -s "$d/server.pub" ] && curl -sf "http://127.0.0.1:$mport/readyz" > /dev/null 2>&1 && break
		sleep 0.1
	done
	srv="--server 127.0.0.1:$PORT --server-key-file $d/server.pub"
	if [ "$mode" = on ]; then
		for i in $(seq 1 "$DEVICES"); do
			# shellcheck disable=SC2086
			"$bin/sealpost" push register $srv --key "$tmp/dev$i.key" \
				"http://127.0.0.1:$sport/sub/$i" "$P256DH" "$AUTH" > /dev/null 2>&1
		done
	fi
	w0="$(cat "$tmp/sink.count")"
	l0="$(ticks "/proc/$broker_pid/task/$broker_pid/stat")"
	p0="$(ticks "/proc/$broker_pid/stat")"
	t0="$(date +%s.%N)"
	pids=""
	for i in $(seq 1 "$DEVICES"); do
		# shellcheck disable=SC2086
		"$bin/sealpost" send $srv --key "$tmp/snd$i.key" --to "$(cat "$tmp/dev$i.pub")" \
			--lines < "$tmp/lines" > /dev/null &
		pids="$pids $!"
	done
	# shellcheck disable=SC2086
	wait $pids
	t1="$(date +%s.%N)"
	sleep 0.5 # wake-ups still in the worker's queue are sent (and counted by the sink)
	l1="$(ticks "/proc/$broker_pid/task/$broker_pid/stat")"
	p1="$(ticks "/proc/$broker_pid/stat")"
	kill -TERM "$broker_pid"; wait "$broker_pid" 2>/dev/null || true
	broker_pid=""
	wakes=$(($(cat "$tmp/sink.count") - w0))
	n=$((DEVICES * PER_DEVICE))
	awk -v l=$((l1 - l0)) -v p=$((p1 - p0)) -v hz="$hz" -v n="$n" -v t0="$t0" -v t1="$t1" -v w="$wakes" \
		'BEGIN { printf "%.0f %.0f %.0f %d\n", l * 1e9 / hz / n, p * 1e9 / hz / n, n / (t1 - t0), w }'
}

echo "push-bench: $DEVICES offline devices x $PER_DEVICE durable envelopes, coalescing ${COALESCE_MS} ms, $REPS runs per mode"
for r in $(seq 1 "$REPS"); do
	for m in off on; do
		set -- $(run "$m" "$r")
		echo "run $r push $m: loop ${1} ns/envelope, process ${2} ns/envelope, ${3} envelopes/s (client-bound), ${4} wake-ups"
		echo "$m $1 $2 $3 $4" >> "$tmp/results"
	done
done
med() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
for m in off on; do
	lm="$(awk -v m="$m" '$1 == m { print $2 }' "$tmp/results" | med)"
	pm="$(awk -v m="$m" '$1 == m { print $3 }' "$tmp/results" | med)"
	rm_="$(awk -v m="$m" '$1 == m { print $4 }' "$tmp/results" | med)"
	wm="$(awk -v m="$m" '$1 == m { print $5 }' "$tmp/results" | med)"
	echo "median push $m: loop $lm ns/envelope, process $pm ns/envelope, $rm_ envelopes/s, $wm wake-ups"
	echo "$m $lm $pm" >> "$tmp/med"
done
awk '{ v[$1 "l"] = $2; v[$1 "p"] = $3 } END { printf "ratio on/off: loop %.2f, process %.2f\n", v["onl"] / v["offl"], v["onp"] / v["offp"] }' "$tmp/med"
# A push-on run without a single wake-up measured nothing: fail loudly.
awk '$1 == "on" && $5 == 0 { bad = 1 } END { exit bad ? 3 : 0 }' "$tmp/results" ||
	{ echo "push-bench: a push-on run made no wake-up" >&2; exit 3; }
