/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_log.c: logfmt lines and the per-event-kind rate limiter.
 */
#include "sp_log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sp_clock.h"

static const char *const level_names[] = {
	[SP_LOG_ERROR] = "error",
	[SP_LOG_WARN] = "warn",
	[SP_LOG_INFO] = "info",
	[SP_LOG_DEBUG] = "debug",
};

void sp_log_init(struct sp_log *lg, int fd, enum sp_log_level level)
{
	lg->fd = fd;
	lg->level = SP_LOG_ERROR;
	sp_log_set_level(lg, level);
}

void sp_log_set_level(struct sp_log *lg, enum sp_log_level level)
{
	int v = (int)level;

	if (v < SP_LOG_ERROR)
		v = SP_LOG_ERROR;
	if (v > SP_LOG_DEBUG)
		v = SP_LOG_DEBUG;
	__atomic_store_n(&lg->level, v, __ATOMIC_RELAXED);
}

const char *sp_log_level_name(enum sp_log_level level)
{
	if ((unsigned)level > SP_LOG_DEBUG)
		return "unknown";
	return level_names[level];
}

int sp_log_level_parse(const char *s, enum sp_log_level *out)
{
	for (unsigned i = 0; i <= SP_LOG_DEBUG; i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum sp_log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

/* A small bounded writer: once full, everything else is dropped and the
 * line is marked truncated, so a long value can never overrun the buffer. */
struct out {
	char *p;
	size_t cap;     /* usable bytes, excluding room kept for "...\n" */
	size_t len;
	bool trunc;
};

static void put_ch(struct out *o, char c)
{
	if (o->len < o->cap)
		o->p[o->len++] = c;
	else
		o->trunc = true;
}

static void put_str(struct out *o, const char *s)
{
	while (*s)
		put_ch(o, *s++);
}

/* Bytes that force quoting: anything that is not a plain printable token. */
static bool needs_quotes(const char *s)
{
	if (*s == '\0')
		return true;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c <= ' ' || c >= 0x7f || c == '"' || c == '=' || c == '\\')
			return true;
	}
	return false;
}

static void put_escaped(struct out *o, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		switch (c) {
		case '"': put_str(o, "\\\""); break;
		case '\\': put_str(o, "\\\\"); break;
		case '\n': put_str(o, "\\n"); break;
		case '\r': put_str(o, "\\r"); break;
		case '\t': put_str(o, "\\t"); break;
		default:
			if (c < ' ' || c >= 0x7f) {
				put_str(o, "\\x");
				put_ch(o, hex[c >> 4]);
				put_ch(o, hex[c & 15]);
			} else {
				put_ch(o, (char)c);
			}
		}
	}
}

static void put_value_str(struct out *o, const char *s)
{
	if (!s)
		s = "";
	if (!needs_quotes(s)) {
		put_str(o, s);
		return;
	}
	put_ch(o, '"');
	put_escaped(o, s);
	put_ch(o, '"');
}

static void put_kv(struct out *o, const struct sp_log_kv *kv)
{
	char num[32];

	put_ch(o, ' ');
	put_str(o, kv->key);
	put_ch(o, '=');
	switch (kv->type) {
	case SP_LOG_INT:
		snprintf(num, sizeof(num), "%" PRId64, kv->v.i);
		put_str(o, num);
		break;
	case SP_LOG_UINT:
		snprintf(num, sizeof(num), "%" PRIu64, kv->v.u);
		put_str(o, num);
		break;
	default:
		put_value_str(o, kv->v.s);
	}
}

static void put_ts(struct out *o, int64_t ts_ms)
{
	char buf[96];   /* roomy: the compiler cannot bound tm's fields */
	struct tm tm;
	time_t secs = (time_t)(ts_ms / 1000);

	gmtime_r(&secs, &tm);
	snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ts_ms % 1000));
	put_str(o, buf);
}

size_t sp_log_format(char *out, size_t cap, int64_t ts_ms, enum sp_log_level level,
		     const char *msg, const struct sp_log_kv *kv, size_t n)
{
	struct out o = { .p = out, .cap = cap - 4, .len = 0, .trunc = false };

	put_str(&o, "ts=");
	put_ts(&o, ts_ms);
	put_str(&o, " level=");
	put_str(&o, sp_log_level_name(level));
	put_str(&o, " msg=\"");
	put_escaped(&o, msg ? msg : "");
	put_ch(&o, '"');
	for (size_t i = 0; i < n && i < SP_LOG_KV_MAX; i++)
		put_kv(&o, &kv[i]);
	if (o.trunc) {
		memcpy(out + o.len, "...", 3);
		o.len += 3;
	}
	out[o.len++] = '\n';
	return o.len;
}

void sp_log_write(const struct sp_log *lg, enum sp_log_level level, const char *msg,
		  const struct sp_log_kv *kv, size_t n)
{
	char line[SP_LOG_LINE_MAX];
	size_t len;

	if (!sp_log_enabled(lg, level))
		return;
	len = sp_log_format(line, sizeof(line), (int64_t)sp_clock_wall_ms(), level, msg, kv, n);
	/* One write per line; a short write or EAGAIN loses the rest of the line:
	 * logging must never block or stop the event loop. */
	ssize_t w = write(lg->fd, line, len);
	(void)w;
}

void sp_log_limit_init(struct sp_log_limit *l, uint32_t rate, uint32_t burst)
{
	l->rate = rate;
	l->burst = burst ? burst : 1;
	l->tokens_milli = (uint64_t)l->burst * 1000;
	l->last_ns = 0;
	l->suppressed = 0;
}

static void refill(struct sp_log_limit *l, uint64_t now_ns)
{
	uint64_t max = (uint64_t)l->burst * 1000;

	if (l->last_ns == 0 || now_ns < l->last_ns) {
		l->last_ns = now_ns;
		return;
	}
	/* rate tokens per second = rate milli-tokens per millisecond. */
	uint64_t ms = (now_ns - l->last_ns) / 1000000;

	if (ms == 0)
		return;
	l->last_ns += ms * 1000000;
	if (ms > max)   /* long pause: the bucket is full anyway; avoid overflow */
		ms = max;
	l->tokens_milli += ms * l->rate;
	if (l->tokens_milli > max)
		l->tokens_milli = max;
}

bool sp_log_limit_take(struct sp_log_limit *l, uint64_t now_ns, uint64_t *suppressed)
{
	refill(l, now_ns);
	if (l->tokens_milli < 1000) {
		l->suppressed++;
		return false;
	}
	l->tokens_milli -= 1000;
	*suppressed = l->suppressed;
	l->suppressed = 0;
	return true;
}

void sp_log_write_limited(const struct sp_log *lg, struct sp_log_limit *l, uint64_t now_ns,
			  enum sp_log_level level, const char *msg, const struct sp_log_kv *kv,
			  size_t n)
{
	struct sp_log_kv all[SP_LOG_KV_MAX];
	uint64_t suppressed;

	if (!sp_log_enabled(lg, level) || !sp_log_limit_take(l, now_ns, &suppressed))
		return;
	if (suppressed == 0) {
		sp_log_write(lg, level, msg, kv, n);
		return;
	}
	if (n > SP_LOG_KV_MAX - 1)
		n = SP_LOG_KV_MAX - 1;
	if (n)
		memcpy(all, kv, n * sizeof(*kv));
	all[n] = SP_KV_UINT("suppressed", suppressed);
	sp_log_write(lg, level, msg, all, n + 1);
}
