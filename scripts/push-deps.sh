#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Installs tests/push's npm packages exactly as tests/push/package-lock.json
# pins them (npm ci), and only when tests/push/node_modules does not already
# match that lock file: a second run reads one file and needs no network.
# Run by ctest (push/npm-ci, the setup of push/e2e); scripts/deps.sh
# installs node and npm. No install scripts run, and no browser is
# downloaded.
set -eu
cd "$(dirname "$0")/../tests/push"

if ! command -v npm >/dev/null 2>&1; then
	echo "push-deps: npm not found (scripts/deps.sh installs it)" >&2
	exit 1
fi
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
stamp=node_modules/.sealpost-lock-sha256

# One npm ci at a time for this tree (two build dirs' ctest runs share it).
exec 9>"${TMPDIR:-/tmp}/sealpost-push-deps.$(id -u).lock"
flock 9

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
	echo "push-deps: node_modules matches package-lock.json"
	exit 0
fi
npm ci --no-audit --no-fund --prefer-offline --ignore-scripts
echo "$want" >"$stamp"
echo "push-deps: installed from package-lock.json"
