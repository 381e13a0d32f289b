#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# Every group of the broker's connection struct (broker/sp_conn.h) is
# written by exactly one file. This finds every write to a group's fields
# (assignment, compound assignment, ++/--, the whole group assigned, or the
# address of a field taken, which is how lists and other writers get at it;
# the read-only sp_list_linked/sp_list_empty/sp_ilink_linked aside)
# in broker/, tests/ and bench/, and fails if one is outside the owner.
# The owner is a module: its .c and, for the inline helpers, its .h.
#
# The session (c->s) is lib/session's: nothing in broker/ writes into it.
# (The hot-path benchmark sets one up by hand, keys derived without a
# handshake and the receive nonce rewound between passes; it is not
# checked for that group.)
#
# usage: conn_writers.sh SOURCE_DIR
set -eu
src=${1:?usage: conn_writers.sh SOURCE_DIR}
cd "$src"

fail=0
# A write to member $1 of a connection: "x->G.f = ...", "x.G.f += ...",
# "x->G.f++", "++x->G.f", "x->G = ...", "&x->G.f", "&x->G".
pattern() {
	g=$1
	w="(->|\\.)$g(\\.[a-z_]+)*(\\[[^]]*\\])?[[:space:]]*([-+*/|&^]?=[^=]|\\+\\+|--)|(\\+\\+|--)[a-z_]+(->|\\.)$g\\."
	# The session is driven through its functions (&c->s): only direct
	# stores into its fields count.
	if [ "$g" = s ]; then
		printf '%s' "(->|\\.)s(\\.[a-z_]+)+(\\[[^]]*\\])?[[:space:]]*([-+*/|&^]?=[^=]|\\+\\+|--)"
	else
		printf '%s' "$w|&[a-z_]+(->|\\.)$g([^a-z_]|\$)"
	fi
}

check() {
	group=$1
	owner=$2
	dirs=$3
	# shellcheck disable=SC2086
	hits=$(grep -rnE --include='*.c' --include='*.h' "$(pattern "$group")" $dirs |
	       grep -vE "^($owner)\\.[ch]:" |
	       grep -vE 'sp_(list_(linked|empty)|ilink_linked)\(&[a-z_]+->[a-z_]+\.[a-z_]+\)' || true)
	if [ -n "$hits" ]; then
		echo "writes to c->$group outside $owner.[ch]:"
		echo "$hits"
		fail=1
	fi
}

check tab   broker/loop/sp_conn_table "broker tests bench"
check io    broker/loop/sp_conn_io    "broker tests bench"
check timer broker/loop/sp_timers     "broker tests bench"
check life  broker/loop/sp_lifecycle  "broker tests bench"
check source broker/loop/sp_source   "broker tests bench"
check route broker/app/sp_router      "broker tests bench"
check mbox  broker/app/sp_mailbox     "broker tests bench"
check ws    broker/loop/sp_ws         "broker tests bench"
check enrol broker/app/sp_registration "broker tests bench"
check fan   broker/app/sp_fanout       "broker tests bench"
check move  broker/loop/sp_xshard      "broker tests bench"
check s     lib/session/sp_session    "broker"

if [ "$fail" -ne 0 ]; then
	exit 1
fi
echo "every connection group is written by its owner only"
