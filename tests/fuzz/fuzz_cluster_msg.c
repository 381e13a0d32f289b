/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_cluster_msg.c: what any client of the NATS account may publish to a
 * cluster node (broker/cluster/sp_cluster_msg.h): a message on a device
 * subject (DELIVER, TAKEOVER) or on a port's reply subject (REPLY, "no
 * responders").
 *
 * Input: byte 0 selects the decoder (even: device subject, odd: reply
 * subject, bit 1: the no-responders flag), then the subject up to the
 * first NUL, then (device subjects) the reply subject up to the next NUL,
 * then the payload. Oracle: nothing crashes or reads out of bounds (ASan);
 * what decodes re-encodes to exactly the payload it came from, its subject
 * names its token, and a DELIVER's body is the rest of the payload.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sp_cluster_msg.h"

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
		if (it->kind == SP_CLUSTER_DELIVER) {
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (data[0] & 1)
		answer(data + 1, size - 1, (data[0] & 2) != 0);
	else
		device(data + 1, size - 1);
	return 0;
}
