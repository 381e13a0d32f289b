/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_reasons.c: the one table of statuses and close reasons
 * (lib/wire/sp_reasons.def) and what is generated from it: names unique,
 * GoAway codes that are GoAway statuses, statuses equal to the protobuf
 * enum's values, and the broker's metric labels equal to the log's words.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sealpost.pb-c.h"
#include "sp_frame.h"
#include "sp_metrics.h"
#include "sp_reasons.h"

static void test_close_names_unique(void **state)
{
	(void)state;
	for (int a = 0; a < SP_CLOSE_REASON_COUNT; a++) {
		const char *na = sp_close_reason_name((enum sp_close_reason)a);

		assert_non_null(na);
		assert_string_not_equal(na, "unknown");
		for (int b = a + 1; b < SP_CLOSE_REASON_COUNT; b++)
			assert_string_not_equal(na, sp_close_reason_name((enum sp_close_reason)b));
	}
	assert_string_equal(sp_close_reason_name(SP_CLOSE_NONE), "none");
	assert_string_equal(sp_close_reason_name(SP_CLOSE_REASON_COUNT), "unknown");
}

static void test_goaway_codes(void **state)
{
	int goaways = 0;

	(void)state;
	for (int r = 0; r < SP_CLOSE_REASON_COUNT; r++) {
		enum sp_status g = sp_close_reason_goaway((enum sp_close_reason)r);

		if (g == SP_STATUS_UNSPECIFIED)
			continue;
		goaways++;
		assert_true((g >= SP_STATUS_GOAWAY_PROTOCOL && g <= SP_STATUS_GOAWAY_REMOVED) ||
			    g == SP_STATUS_GOAWAY_ANONYMOUS ||
			    (g >= SP_STATUS_GOAWAY_ENROL_REQUIRED && g <= SP_STATUS_GOAWAY_ENROL_TOKEN_USED));
		assert_int_equal(strncmp(sp_status_name(g), "goaway_", 7), 0);
	}
	/* The wire's five GoAway codes, each sent for exactly one reason, but
	 * shutdown: an admin's disconnect sends it too (the device is told to
	 * go, as when the broker stops; no code of its own on the wire); and
	 * protocol: an ack flood is a misbehaving peer as well; and
	 * slow_consumer: a connection evicted for holding the most of the
	 * memory budget (its unread output, or a message it is slow to send);
	 * and removed (37), a device taken off its account's list. */
	/* + anon_forbidden (68), sealed sender's. */
	/* + enrol_required, enrol_bad_token, enrol_token_used (53-55), registration's. */
	assert_int_equal(goaways, 13);
	assert_int_equal(sp_close_reason_goaway(SP_CLOSE_MEM_BUDGET), SP_STATUS_GOAWAY_SLOW_CONSUMER);
	assert_int_equal(sp_close_reason_goaway(SP_CLOSE_ACK_FLOOD), SP_STATUS_GOAWAY_PROTOCOL);
	assert_int_equal(sp_close_reason_goaway(SP_CLOSE_SHUTDOWN), SP_STATUS_GOAWAY_SHUTDOWN);
	assert_int_equal(sp_close_reason_goaway(SP_CLOSE_ADMIN), SP_STATUS_GOAWAY_SHUTDOWN);
	assert_int_equal(sp_close_reason_goaway(SP_CLOSE_TAKEOVER), SP_STATUS_GOAWAY_TAKEOVER);
	assert_int_equal(sp_close_reason_goaway(SP_CLOSE_EOF), SP_STATUS_UNSPECIFIED);
	assert_int_equal(sp_close_reason_goaway(SP_CLOSE_NONE), SP_STATUS_UNSPECIFIED);
}

static void test_statuses_match_proto(void **state)
{
	const ProtobufCEnumDescriptor *d = &sealpost__v1__status__descriptor;
	int seen = 0;

	(void)state;
	/* Every proto value is a status with a name of its own, and back. */
	for (unsigned i = 0; i < d->n_values; i++) {
		const char *name = sp_status_name((enum sp_status)d->values[i].value);

		assert_string_not_equal(name, "unknown");
		for (unsigned j = i + 1; j < d->n_values; j++)
			assert_string_not_equal(name,
						sp_status_name((enum sp_status)d->values[j].value));
		seen++;
	}
	for (int v = 0; v < 256; v++)
		if (strcmp(sp_status_name((enum sp_status)v), "unknown") != 0)
			assert_non_null(protobuf_c_enum_descriptor_get_value(d, v));
	/* + push (56-63), + sealed sender (65-71), + registration (53-55),
	 * + fan-out (49-52) + prekeys (73-78) + cluster (81-82) */
	assert_int_equal(seen, 27 + 8 + 7 + 3 + 4 + 6 + 2);
}

static void test_metric_labels_are_log_words(void **state)
{
	(void)state;
	/* sealpost_connections_closed_total{reason} uses the log's reason=. */
	for (int r = 1; r < SP_CLOSE_REASON_COUNT; r++)
		assert_string_equal(sp_metrics_close_name((enum sp_metrics_close)(r - 1)),
				    sp_close_reason_name((enum sp_close_reason)r));
	assert_string_equal(sp_metrics_close_name(SP_METRICS_CLOSE_MAX_CONNS), "max_conns");
	assert_string_equal(sp_metrics_close_name(SP_METRICS_CLOSE_HANDSHAKE_RATE),
			    "handshake_rate");
	assert_null(sp_metrics_close_name(SP_METRICS_CLOSE_COUNT));
	/* Refused envelopes: the status name without its err_ prefix. */
	for (int s = SP_STATUS_ERR_OFFLINE; s <= SP_STATUS_ERR_SHUTTING_DOWN; s++)
		assert_string_equal(sp_metrics_refused_name((enum sp_status)s),
				    sp_status_name((enum sp_status)s) + 4);
	assert_null(sp_metrics_refused_name(SP_STATUS_DELIVERED));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_close_names_unique),
		cmocka_unit_test(test_goaway_codes),
		cmocka_unit_test(test_statuses_match_proto),
		cmocka_unit_test(test_metric_labels_are_log_words),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
