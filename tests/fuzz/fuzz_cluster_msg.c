/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_cluster_msg.c: what any client of the NATS account may publish to a
 * cluster node (broker/cluster/sp_cluster_msg.h): a message on a device
 * subject (DELIVER, TAKEOVER, STORED), on a port's reply subject (REPLY,
 * "no responders"), or on the reply subjects of the port's JetStream
 * requests (a PubAck, a STREAM.MSG.GET's message, a STREAM.MSG.DELETE's
 * answer: JSON), and the RFC 3339 times those carry.
 *
 * Input: byte 0 selects the decoder (even: device subject; odd: a reply
 * subject, bit 1: the no-responders flag, bit 2: a JetStream answer, and
 * the subject is also given to the time parser), then the subject up to
 * the first NUL, then (device subjects) the reply subject up to the next
 * NUL, then the payload. Oracle: nothing crashes or reads out of bounds
 * (ASan); what decodes re-encodes to exactly the payload it came from, its
 * subject names its token, a DELIVER's or STORED's body is the rest of the
 * payload; a JetStream answer names what the subject asked (kind, ticket,
 * connection, seq) and a message body fits; a time read back through
 * gmtime_r prints the same date and time.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sp_cluster_msg.h"
#include "sp_limits.h"

#define PREFIX "sp.r.0123456789abcdef.0."

static void check(int ok)
{
	if (!ok)
		abort();
}

/* A NUL-terminated copy of the next field (up to a NUL or the end). */
static char *field(const uint8_t **p, size_t *n)
{
	const uint8_t *z = memchr(*p, 0, *n);
	size_t len = z ? (size_t)(z - *p) : *n;
	char *s = malloc(len + 1);

	if (!s)
		abort();
	memcpy(s, *p, len);
	s[len] = '\0';
	*p += z ? len + 1 : len;
	*n -= z ? len + 1 : len;
	return s;
}

static void device(const uint8_t *p, size_t n)
{
	char *subj = field(&p, &n), *reply = field(&p, &n);
	struct sp_cluster_item *it = sp_cluster_msg_device(subj, reply[0] ? reply : NULL, p, n);
	char again[SP_CLUSTER_SUBJECT_MAX];
	uint8_t enc[SP_CLUSTER_TAKEOVER_LEN];

	if (it) {
		sp_cluster_msg_subject(it->token, again);
		check(strlen(again) == strlen(subj));       /* hex case may differ */
		if (it->kind == SP_CLUSTER_STORED) {
			sp_cluster_msg_stored_head(enc, it->node, it->seq);
			check(n == SP_CLUSTER_STORED_HEAD + it->len && it->len <= SP_BODY_MAX);
			check(memcmp(enc, p, SP_CLUSTER_STORED_HEAD) == 0);
			check(memcmp(it->body, p + SP_CLUSTER_STORED_HEAD, it->len) == 0);
		} else if (it->kind == SP_CLUSTER_DELIVER) {
			sp_cluster_msg_deliver_head(enc, it->node);
			check(n == SP_CLUSTER_MSG_HEAD + it->len);
			check(memcmp(enc, p, SP_CLUSTER_MSG_HEAD) == 0);
			check(memcmp(it->body, p + SP_CLUSTER_MSG_HEAD, it->len) == 0);
			check(strcmp(it->reply, reply) == 0);
		} else {
			check(it->kind == SP_CLUSTER_TAKEOVER && n == SP_CLUSTER_TAKEOVER_LEN);
			sp_cluster_msg_takeover(enc, it->node, it->value);
			check(memcmp(enc, p, n) == 0);
		}
		free(it);
	}
	free(subj);
	free(reply);
}

static void answer(const uint8_t *p, size_t n, bool no_responders)
{
	char *subj = field(&p, &n);
	uint8_t status = 0, enc[SP_CLUSTER_REPLY_LEN];
	uint64_t ticket = 0;

	if (sp_cluster_msg_answer(PREFIX, subj, p, n, no_responders, &ticket, &status) == 0) {
		check(ticket > 0 && strncmp(subj, PREFIX, strlen(PREFIX)) == 0);
		if (!no_responders) {
			sp_cluster_msg_reply(enc, status);
			check(n == sizeof(enc) && memcmp(enc, p, n) == 0);
		}
	}
	free(subj);
}

/* Go's RFC 3339 in UTC back from ms: the date and time must print as read. */
static void js_time(const char *s)
{
	uint64_t ms = sp_cluster_msg_js_time(s);
	char again[32];
	struct tm tm;
	time_t t;

	if (ms == 0)
		return;
	t = (time_t)(ms / 1000);
	check(gmtime_r(&t, &tm) != NULL);
	check(strftime(again, sizeof(again), "%Y-%m-%dT%H:%M:%S", &tm) == 19);
	check(strncmp(again, s, 19) == 0);
	check(s[strlen(s) - 1] == 'Z');
}

static void js_answer(const uint8_t *p, size_t n, bool no_responders)
{
	char *subj = field(&p, &n);
	struct sp_cluster_js_answer a;
	static uint8_t body[SP_BODY_MAX + 64];
	size_t body_len = 99;
	const char *q;

	js_time(subj);
	if (sp_cluster_msg_js_answer(PREFIX, subj, p, n, no_responders, &a, body, sizeof(body),
				     &body_len) == 0) {
		check(strncmp(subj, PREFIX, strlen(PREFIX)) == 0);
		q = subj + strlen(PREFIX);
		check(a.kind == q[0] && a.no_responders == no_responders);
		check(body_len <= SP_BODY_MAX);
		check(body_len == 0 || (a.kind == SP_CLUSTER_JS_GET && a.ok));
		if (no_responders)
			check(!a.ok && a.err_code == 0);
		if (a.ok && a.kind != SP_CLUSTER_JS_DELETE && a.kind != SP_CLUSTER_JS_PURGE)
			check(a.seq > 0);
		if (!a.ok)
			check(body_len == 0);
		switch (a.kind) {
		case SP_CLUSTER_JS_PUBACK:
			check(a.ticket > 0 && a.conn == 0 && strtoull(q + 1, NULL, 10) == a.ticket);
			break;
		case SP_CLUSTER_JS_GET:
			check(a.ticket > 0 && strtoull(q + 1, NULL, 10) == a.conn);
			break;
		case SP_CLUSTER_JS_DELETE:
			check(a.seq > 0 && a.ticket == 0 && strtoull(q + 1, NULL, 10) == a.conn);
			break;
		case SP_CLUSTER_JS_PURGE:
			check(a.ticket > 0 && strtoull(q + 1, NULL, 10) == a.conn);
			check(a.ok || a.seq == 0);
			break;
		default:
			check(0);
		}
	} else {
		check(body_len == 0);
	}
	free(subj);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if ((data[0] & 5) == 5)
		js_answer(data + 1, size - 1, (data[0] & 2) != 0);
	else if (data[0] & 1)
		answer(data + 1, size - 1, (data[0] & 2) != 0);
	else
		device(data + 1, size - 1);
	return 0;
}
