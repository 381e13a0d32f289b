/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_cluster_msg.c: the node-to-node payloads (sp_cluster_msg.h).
 */
#include "sp_cluster_msg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "sp_limits.h"

enum { TOKEN_HEX = 2 * SP_KEY_LEN, PREFIX_LEN = sizeof(SP_CLUSTER_SUBJECT_DEVICE) - 1 };

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

void sp_cluster_msg_subject(const uint8_t token[SP_KEY_LEN], char out[SP_CLUSTER_SUBJECT_MAX])
{
	memcpy(out, SP_CLUSTER_SUBJECT_DEVICE, PREFIX_LEN);
	sodium_bin2hex(out + PREFIX_LEN, SP_CLUSTER_SUBJECT_MAX - PREFIX_LEN, token, SP_KEY_LEN);
}

void sp_cluster_msg_deliver_head(uint8_t *out, uint64_t node)
{
	out[0] = 'D';
	put_be64(out + 1, node);
}

void sp_cluster_msg_takeover(uint8_t out[SP_CLUSTER_TAKEOVER_LEN], uint64_t node, uint64_t since_ms)
{
	out[0] = 'T';
	put_be64(out + 1, node);
	put_be64(out + SP_CLUSTER_MSG_HEAD, since_ms);
}

void sp_cluster_msg_reply(uint8_t out[SP_CLUSTER_REPLY_LEN], uint8_t status)
{
	out[0] = 'R';
	out[1] = status;
}

/* The token of a device subject, exactly "sp.d." and 64 hex digits. */
static int subject_token(const char *subj, uint8_t token[SP_KEY_LEN])
{
	size_t n = strnlen(subj, SP_CLUSTER_SUBJECT_MAX);

	if (n != PREFIX_LEN + TOKEN_HEX || memcmp(subj, SP_CLUSTER_SUBJECT_DEVICE, PREFIX_LEN))
		return -EINVAL;
	return sodium_hex2bin(token, SP_KEY_LEN, subj + PREFIX_LEN, TOKEN_HEX, NULL, NULL, NULL) ?
		       -EINVAL : 0;
}

struct sp_cluster_item *sp_cluster_msg_device(const char *subj, const char *reply,
					      const uint8_t *d, size_t len)
{
	struct sp_cluster_item *it;
	uint8_t token[SP_KEY_LEN];
	size_t blen;

	if (!subj || len < SP_CLUSTER_MSG_HEAD || subject_token(subj, token))
		return NULL;
	blen = len - SP_CLUSTER_MSG_HEAD;
	if (d[0] == 'T' ? len != SP_CLUSTER_TAKEOVER_LEN : d[0] != 'D' || blen > SP_BODY_MAX)
		return NULL;
	if (reply && strnlen(reply, sizeof(it->reply)) >= sizeof(it->reply))
		return NULL;
	it = malloc(sizeof(*it) + (d[0] == 'D' ? blen : 0));
	if (!it)
		return NULL;
	memset(it, 0, sizeof(*it));
	memcpy(it->token, token, SP_KEY_LEN);
	it->node = get_be64(d + 1);
	if (d[0] == 'D') {
		it->kind = SP_CLUSTER_DELIVER;
		it->len = (uint32_t)blen;
		memcpy(it->body, d + SP_CLUSTER_MSG_HEAD, blen);
		if (reply)
			snprintf(it->reply, sizeof(it->reply), "%s", reply);
	} else {
		it->kind = SP_CLUSTER_TAKEOVER;
		it->value = get_be64(d + SP_CLUSTER_MSG_HEAD);
	}
	sodium_memzero(token, sizeof(token));
	return it;
}

int sp_cluster_msg_answer(const char *prefix, const char *subj, const uint8_t *d, size_t len,
			  bool no_responders, uint64_t *ticket, uint8_t *status)
{
	size_t plen = strlen(prefix);
	uint64_t t = 0;
	const char *p;

	if (!subj || strncmp(subj, prefix, plen) != 0)
		return -EINVAL;
	/* Decimal, no sign or spaces (strtoull would take them), no overflow. */
	for (p = subj + plen; *p; p++) {
		if (*p < '0' || *p > '9' || t > (UINT64_MAX - 9) / 10)
			return -EINVAL;
		t = t * 10 + (uint64_t)(*p - '0');
	}
	if (p == subj + plen || t == 0)
		return -EINVAL;
	if (no_responders)
		*status = SP_STATUS_ERR_OFFLINE;        /* nobody holds the device */
	else if (len == SP_CLUSTER_REPLY_LEN && d[0] == 'R')
		*status = d[1];
	else
		return -EINVAL;
	*ticket = t;
	return 0;
}
