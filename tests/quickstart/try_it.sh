#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Runs the README's "Try it" block as a fresh shell would, in an empty
# directory, against this build: usage: try_it.sh SOURCE_DIR BIN_DIR WORK_DIR
# Substituted, and nothing else: the first line (dependencies and the build:
# this build already exists), build/bin/ (this build's bin/), and the ports
# 7400 and 9400 (free ones, so the test runs beside anything on the machine).
set -eu
src="$1"; bin="$2"; work="$3"

rm -rf "$work"
mkdir -p "$work"
block="$work/try-it.sh"
awk '/^## Try it/ { intry = 1; next }
     intry && /^## / { exit }
     intry && /^```sh$/ { inblock = 1; next }
     inblock && /^```$/ { exit }
     inblock { print }' "$src/README.md" > "$block.orig"
[ -s "$block.orig" ] || { echo "no sh block under '## Try it' in README.md" >&2; exit 1; }

# The first line must be the build (the one line not run here), so that
# everything after it is what a reader pastes and this test runs.
head -n 1 "$block.orig" | grep -q '^sh scripts/deps.sh && cmake ' ||
	{ echo "the Try-it block's first line is not the deps-and-build line" >&2; exit 1; }

# Two free loopback ports: bind port 0 and read what the kernel chose.
# (Without python3: a port from the pid, free unless something else chose it.)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
	echo $((20000 + ($$ + ${1:-0}) % 20000)); }
p_dev="$(port)"; p_met="$(port 1)"
[ "$p_dev" != "$p_met" ] || p_met="$(port 2)"

{
	# If a step fails, stop the broker the block started.
	echo 'trap '\''[ -n "${SEALPOSTD:-}" ] && kill "$SEALPOSTD" 2>/dev/null; true'\'' EXIT'
	tail -n +2 "$block.orig" |
		sed -e "s|build/bin/sealpostd &|build/bin/sealpostd --listen 127.0.0.1:$p_dev --metrics-listen 127.0.0.1:$p_met \&|" \
		    -e "s|build/bin/|$bin/|g" \
		    -e "s|127\.0\.0\.1:7400|127.0.0.1:$p_dev|g" \
		    -e "s|127\.0\.0\.1:9400|127.0.0.1:$p_met|g"
	echo 'wait "$SEALPOSTD"; echo "sealpostd exit $?"'
	echo 'SEALPOSTD='
} > "$block"
echo "--- running (from $work):"
cat "$block"
echo "---"

cd "$work"
# -e: a failing step fails the test (pasted, the reader would see it fail).
timeout 120 sh -e "$block" > "$work/out" 2> "$work/err" || { rc=$?; cat "$work/out" "$work/err"; echo "the block failed: $rc" >&2; exit 1; }
cat "$work/out" "$work/err"

alice="$(sed -n 1p "$work/out")"
# recv prints "SENDER hello": the sender is alice's key.
grep -qx "$alice hello" "$work/out" || { echo "recv did not print '$alice hello'" >&2; exit 1; }
grep -q '^sealpost_envelopes_accepted_total 1$' "$work/out" ||
	{ echo "metrics do not show one accepted envelope" >&2; exit 1; }
grep -q '^sealpostd exit 0$' "$work/out" || { echo "sealpostd did not stop cleanly" >&2; exit 1; }
[ -s "$work/data/server.pub" ] && [ -s "$work/alice.key" ] && [ -s "$work/bob.key" ]
echo "try-it: ok"
