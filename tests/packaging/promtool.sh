#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# ctest packaging/promtool: the shipped Prometheus rules pass
# `promtool check rules` and their unit tests pass `promtool test rules`.
# Exit 77 (skipped) where promtool is not installed (Debian: prometheus).
# usage: promtool.sh SOURCE_DIR
set -eu
dir="$1/packaging/prometheus"
if ! command -v promtool >/dev/null 2>&1; then
	echo "SKIP: promtool not found (Debian package prometheus)"
	exit 77
fi
promtool check rules "$dir/sealpost-rules.yml"
# test rules resolves rule_files relative to the test file.
promtool test rules "$dir/sealpost-rules.test.yml"
