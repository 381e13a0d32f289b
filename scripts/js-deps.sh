#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Installs an npm package directory's packages exactly as its
# package-lock.json pins them (npm ci), and only when its node_modules does
# not already match that lock file: a second run reads one file and needs no
# network. usage: js-deps.sh [DIR], DIR relative to the repository (default
# client/js; tests/push for the push-service stand-in).
# Run by ctest (js/npm-ci and push/npm-ci, the setups of the js/ and push/
# tests); scripts/deps.sh installs node and npm. No install scripts run, and
# no browser is downloaded: the browser test drives Debian's chromium.
set -eu
dir="${1:-client/js}"
cd "$(dirname "$0")/../$dir"

if ! command -v npm >/dev/null 2>&1; then
	echo "js-deps: npm not found (scripts/deps.sh installs it)" >&2
	exit 1
fi
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
stamp=node_modules/.sealpost-lock-sha256

# One npm ci at a time for this tree (two build dirs' ctest runs share it).
exec 9>"${TMPDIR:-/tmp}/sealpost-js-deps.$(echo "$dir" | tr / -).$(id -u).lock"
flock 9

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
	echo "js-deps: $dir/node_modules matches package-lock.json"
	exit 0
fi
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --prefer-offline --ignore-scripts
echo "$want" >"$stamp"
echo "js-deps: $dir: installed from package-lock.json"
