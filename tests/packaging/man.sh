#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# ctest packaging/man: the manual pages in packaging/man/ format without a
# warning (groff -ww; man --warnings where man-db is installed), and each one
# describes every option its program's --help lists (an option line of
# --help: indented, starting with --), and sealpost(1) every command of
# `sealpost --help`.
# usage: man.sh SOURCE_DIR BIN_DIR
set -eu
src="$1"; bin="$2"
mandir="$src/packaging/man"
fail=0
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

if ! command -v groff >/dev/null 2>&1; then
	echo "SKIP: groff not installed"
	exit 77
fi

# Options of a --help text: the first word of each line that starts, after
# blanks, with --name.
options() { sed -n 's/^ \{1,\}\(--[a-z][a-z0-9-]*\).*/\1/p' | sort -u; }

# The page as plain text; -Tascii renders \- as '-'.
render() { LC_ALL=C groff -man -Tascii -P-cbou "$1" 2>/dev/null; }

check_options() { # page help-text-file what
	render "$1" > "$tmp/page.txt"
	for o in $(options < "$2"); do
		grep -q -- "$o\([^a-z0-9-]\|$\)" "$tmp/page.txt" ||
			{ echo "$(basename "$1"): $3 lists $o, the page does not describe it"; fail=1; }
	done
}

n=0
for page in "$mandir"/*.[1-8]; do
	[ -e "$page" ] || continue
	n=$((n + 1))
	LC_ALL=C.UTF-8 groff -man -Tutf8 -ww -z "$page" > "$tmp/warn" 2>&1 || true
	if [ -s "$tmp/warn" ]; then
		echo "$(basename "$page"): groff warnings:"; cat "$tmp/warn"; fail=1
	fi
	if command -v man >/dev/null 2>&1; then
		LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z "$page" \
			> /dev/null 2> "$tmp/warn" || true
		if [ -s "$tmp/warn" ]; then
			echo "$(basename "$page"): man --warnings:"; cat "$tmp/warn"; fail=1
		fi
	fi
	prog="$(basename "$page")"; prog="${prog%.*}"
	[ -x "$bin/$prog" ] || { echo "$(basename "$page"): no $bin/$prog to compare with"; fail=1; continue; }
	"$bin/$prog" --help > "$tmp/help" 2>&1 || true
	check_options "$page" "$tmp/help" "$prog --help"
	if [ "$prog" = sealpost ]; then
		cmds="$(sed -n '/^commands:/,/^$/s/^  \([a-z][a-z-]*\).*/\1/p' "$tmp/help")"
		[ -n "$cmds" ] || { echo "sealpost --help lists no commands"; fail=1; }
		for c in $cmds; do
			grep -q "^\.SS \"\?$c\( \|\"\|$\)" "$page" ||
				{ echo "sealpost.1: no section for the command $c"; fail=1; }
			"$bin/sealpost" "$c" --help > "$tmp/help.$c" 2>&1 || true
			check_options "$page" "$tmp/help.$c" "sealpost $c --help"
		done
	fi
done
for want in sealpostd.8 sealpost.1; do
	[ -e "$mandir/$want" ] || { echo "packaging/man/$want missing"; fail=1; }
done
[ "$fail" = 0 ] || exit 1
echo "man: $n pages format cleanly and describe every option of their --help"
