/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_cluster_msg.c: the node-to-node payloads (sp_cluster_msg.h).
 */
#include "sp_cluster_msg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
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

void sp_cluster_msg_stored_head(uint8_t *out, uint64_t node, uint64_t seq)
{
	out[0] = 'S';
	put_be64(out + 1, node);
	put_be64(out + SP_CLUSTER_MSG_HEAD, seq);
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
	size_t head, blen;

	if (!subj || len < SP_CLUSTER_MSG_HEAD || subject_token(subj, token))
		return NULL;
	switch (d[0]) {
	case 'T':
		if (len != SP_CLUSTER_TAKEOVER_LEN)
			return NULL;
		head = len;
		break;
	case 'D': head = SP_CLUSTER_MSG_HEAD; break;
	case 'S': head = SP_CLUSTER_STORED_HEAD; break;
	default: return NULL;
	}
	if (len < head || len - head > SP_BODY_MAX)
		return NULL;
	blen = len - head;
	if (reply && strnlen(reply, sizeof(it->reply)) >= sizeof(it->reply))
		return NULL;
	it = malloc(sizeof(*it) + blen);
	if (!it)
		return NULL;
	memset(it, 0, sizeof(*it));
	memcpy(it->token, token, SP_KEY_LEN);
	it->node = get_be64(d + 1);
	it->len = (uint32_t)blen;
	memcpy(it->body, d + head, blen);
	if (d[0] == 'D') {
		it->kind = SP_CLUSTER_DELIVER;
		if (reply)
			snprintf(it->reply, sizeof(it->reply), "%s", reply);
	} else if (d[0] == 'S') {
		it->kind = SP_CLUSTER_STORED;
		it->seq = get_be64(d + SP_CLUSTER_MSG_HEAD);
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

/* Decimal digits from *p up to stop (a char) or the end: no sign, no
 * spaces (strtoull would take them), no overflow, at least one digit. */
static int decimal(const char **p, char stop, uint64_t *out)
{
	const char *q = *p;
	uint64_t t = 0;

	for (; *q && *q != stop; q++) {
		if (*q < '0' || *q > '9' || t > (UINT64_MAX - 9) / 10)
			return -EINVAL;
		t = t * 10 + (uint64_t)(*q - '0');
	}
	if (q == *p)
		return -EINVAL;
	*p = q;
	*out = t;
	return 0;
}

/* days since 1970-01-01 of a proleptic Gregorian date (the civil-from-days
 * inverse, by eras of 400 years). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

/* n decimal digits at s (exactly: no sign, no space, as sscanf would take). */
static int digits(const char *s, unsigned n, unsigned *out)
{
	unsigned v = 0;

	for (unsigned i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	*out = v;
	return 0;
}

static unsigned month_days(unsigned y, unsigned m)
{
	static const unsigned char len[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return len[m - 1] + (m == 2 && leap);
}

uint64_t sp_cluster_msg_js_time(const char *s)
{
	unsigned y, mo, d, h, mi, sec, ms = 0;
	int64_t days;

	/* "YYYY-MM-DDTHH:MM:SS" then optional fractions then 'Z': the form Go's
	 * time.RFC3339Nano gives in UTC, nothing looser (no offsets, no leap
	 * second, no day past its month's end). */
	if (!s || strnlen(s, 20) < 20 || digits(s, 4, &y) || s[4] != '-' ||
	    digits(s + 5, 2, &mo) || s[7] != '-' || digits(s + 8, 2, &d) || s[10] != 'T' ||
	    digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' ||
	    digits(s + 17, 2, &sec))
		return 0;
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > month_days(y, mo) || h > 23 ||
	    mi > 59 || sec > 59)
		return 0;
	s += 19;
	if (*s == '.') {
		/* fractions: the first three digits are the milliseconds */
		unsigned k = 0;

		for (s++; *s >= '0' && *s <= '9'; s++, k++)
			if (k < 3)
				ms = ms * 10 + (unsigned)(*s - '0');
		if (k == 0)
			return 0;
		for (; k < 3; k++)
			ms *= 10;
	}
	if (*s != 'Z' || s[1])
		return 0;
	days = days_from_civil(y, mo, d);
	return ((uint64_t)days * 86400 + h * 3600u + mi * 60u + sec) * 1000 + ms;
}

/* A JSON integer member >= 0 of o, or -EINVAL. */
static int json_u64(json_t *o, const char *key, uint64_t *out)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -EINVAL;
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

/* JetStream's {"error":{"code":..,"err_code":..}}: true (with a->err_code) if o has one. */
static bool js_error(json_t *o, struct sp_cluster_js_answer *a)
{
	json_t *e = json_object_get(o, "error");
	uint64_t code = 0;

	if (!e)
		return false;
	if (json_is_object(e) && json_u64(e, "err_code", &code) == 0 && code <= UINT32_MAX)
		a->err_code = (uint32_t)code;
	return true;
}

/* A GET's answer: {"message":{"subject":..,"seq":N,"data":"base64","time":".."}}. */
static int js_get(json_t *o, struct sp_cluster_js_answer *a, uint8_t *body, size_t cap,
		  size_t *body_len)
{
	json_t *m = json_object_get(o, "message"), *data, *t;
	size_t n = 0;

	if (!json_is_object(m) || json_u64(m, "seq", &a->seq) || a->seq == 0)
		return -EINVAL;
	data = json_object_get(m, "data");     /* absent for an empty body */
	if (data) {
		if (!json_is_string(data) ||
		    sodium_base642bin(body, cap, json_string_value(data), json_string_length(data),
				      NULL, &n, NULL, sodium_base64_VARIANT_ORIGINAL) ||
		    n > SP_BODY_MAX)
			return -EINVAL;
	}
	t = json_object_get(m, "time");
	a->time_ms = json_is_string(t) ? sp_cluster_msg_js_time(json_string_value(t)) : 0;
	*body_len = n;
	a->ok = true;
	return 0;
}

int sp_cluster_msg_js_answer(const char *prefix, const char *subj, const uint8_t *d, size_t len,
			     bool no_responders, struct sp_cluster_js_answer *a, uint8_t *body,
			     size_t cap, size_t *body_len)
{
	size_t plen = strlen(prefix);
	const char *p;
	uint64_t first = 0, second = 0;
	json_t *o;
	int ret = 0;

	memset(a, 0, sizeof(*a));
	*body_len = 0;
	if (!subj || strncmp(subj, prefix, plen) != 0)
		return -EINVAL;
	p = subj + plen;
	a->kind = *p++;
	switch (a->kind) {
	case SP_CLUSTER_JS_PUBACK:
		if (decimal(&p, '\0', &a->ticket) || a->ticket == 0)
			return -EINVAL;
		break;
	case SP_CLUSTER_JS_GET:
	case SP_CLUSTER_JS_DELETE:
	case SP_CLUSTER_JS_PURGE:
		if (decimal(&p, '-', &first) || *p++ != '-' || decimal(&p, '\0', &second) || *p ||
		    second == 0)
			return -EINVAL;
		a->conn = first;
		if (a->kind == SP_CLUSTER_JS_DELETE)
			a->seq = second;
		else
			a->ticket = second;
		break;
	default:
		return -EINVAL;
	}
	if (no_responders) {
		a->no_responders = true;
		return 0;
	}
	o = json_loadb((const char *)d, len, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(o)) {
		json_decref(o);
		return -EINVAL;
	}
	if (js_error(o, a)) {
		/* refused: a->ok stays false */
	} else if (a->kind == SP_CLUSTER_JS_PUBACK) {
		json_t *dup = json_object_get(o, "duplicate");

		if (json_u64(o, "seq", &a->seq) || a->seq == 0)
			ret = -EINVAL;
		a->duplicate = json_is_true(dup);
		a->ok = ret == 0;
	} else if (a->kind == SP_CLUSTER_JS_GET) {
		ret = js_get(o, a, body, cap, body_len);
	} else if (a->kind == SP_CLUSTER_JS_PURGE) {
		/* {"success":true,"purged":N}: N is optional (0 left out). */
		a->ok = json_is_true(json_object_get(o, "success"));
		if (a->ok && json_object_get(o, "purged") && json_u64(o, "purged", &a->seq))
			ret = -EINVAL;
		if (ret)
			a->ok = false, a->seq = 0;
	} else {
		a->ok = json_is_true(json_object_get(o, "success"));
	}
	json_decref(o);
	return ret;
}
