/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_log.h: one line per event, logfmt, on a file descriptor (stderr in sealpostd).
 *
 *   ts=2026-11-28T09:00:00.123Z level=info msg="connection closed" reason=eof
 *
 * Values are typed (string, signed, unsigned); strings are quoted when they
 * need it and escaped (\" \\ \n \r \t, other control bytes and DEL as \xNN),
 * so a peer-chosen byte can never forge a second line or a key.
 *
 * What is logged (the rule, see docs/OPERATIONS.md): never keys (private or
 * public: a device key is metadata), never bodies, never frame contents.
 * Peer addresses are logged at debug level only, so default (info) logs do
 * not identify devices or their networks. Connections are named by slot
 * number, which is reused and means nothing outside one process.
 *
 * Anything a peer can trigger goes through a struct sp_log_limit (a token
 * bucket per event kind, owned by the caller): excess lines are dropped and
 * counted, and the next line that passes carries suppressed=N.
 *
 * Threading: a struct sp_log may be shared by threads; only its level
 * changes after sp_log_init (sp_log_set_level, e.g. on SIGUSR1), read and
 * written with relaxed atomics, so readers see the old or the new level and
 * nothing else. Each line is written with a single write(2) so lines from
 * different threads do not interleave. A struct sp_log_limit belongs to one
 * thread.
 */
#ifndef SP_LOG_H
#define SP_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum sp_log_level {
	SP_LOG_ERROR = 0,
	SP_LOG_WARN = 1,
	SP_LOG_INFO = 2,
	SP_LOG_DEBUG = 3,
};

enum { SP_LOG_LINE_MAX = 1024 }; /* longer lines are truncated with "..." */
enum { SP_LOG_KV_MAX = 16 };     /* key/value pairs per line, at most */

struct sp_log {
	int fd;
	int level;              /* enum sp_log_level; atomic: see sp_log_set_level */
};

enum sp_log_kv_type { SP_LOG_STR, SP_LOG_INT, SP_LOG_UINT };

struct sp_log_kv {
	const char *key;        /* a constant identifier; written as is */
	enum sp_log_kv_type type;
	union {
		const char *s;  /* NULL is written as "" */
		int64_t i;
		uint64_t u;
	} v;
};

#define SP_KV_STR(k, val) ((struct sp_log_kv){ .key = (k), .type = SP_LOG_STR, .v.s = (val) })
#define SP_KV_INT(k, val) ((struct sp_log_kv){ .key = (k), .type = SP_LOG_INT, .v.i = (val) })
#define SP_KV_UINT(k, val) ((struct sp_log_kv){ .key = (k), .type = SP_LOG_UINT, .v.u = (val) })

/* Token bucket: `rate` lines per second, bursts up to `burst`. */
struct sp_log_limit {
	uint32_t rate;
	uint32_t burst;
	uint64_t tokens_milli;  /* tokens * 1000, so refill needs no floating point */
	uint64_t last_ns;
	uint64_t suppressed;    /* dropped since the last line that passed */
};

void sp_log_init(struct sp_log *lg, int fd, enum sp_log_level level);
static inline bool sp_log_enabled(const struct sp_log *lg, enum sp_log_level level)
{
	return lg && (int)level <= __atomic_load_n(&lg->level, __ATOMIC_RELAXED);
}

/* The level now in force. Any thread. */
static inline enum sp_log_level sp_log_level(const struct sp_log *lg)
{
	return (enum sp_log_level)__atomic_load_n(&lg->level, __ATOMIC_RELAXED);
}

/*
 * Changes the level at run time (from any thread; lines being written by
 * other threads finish with whichever level they saw). Out-of-range levels
 * are clamped to error..debug.
 */
void sp_log_set_level(struct sp_log *lg, enum sp_log_level level);

/* "error", "warn", "info", "debug"; sp_log_level_parse returns -EINVAL for others. */
const char *sp_log_level_name(enum sp_log_level level);
int sp_log_level_parse(const char *s, enum sp_log_level *out);

/*
 * Formats one line (with '\n') into out (cap bytes, cap >= 64) and returns its
 * length. ts_ms: milliseconds since the Unix epoch. kv: borrowed for the call.
 */
size_t sp_log_format(char *out, size_t cap, int64_t ts_ms, enum sp_log_level level,
		     const char *msg, const struct sp_log_kv *kv, size_t n);

/* Writes one line if level is enabled. kv: borrowed for the call. */
void sp_log_write(const struct sp_log *lg, enum sp_log_level level, const char *msg,
		  const struct sp_log_kv *kv, size_t n);

void sp_log_limit_init(struct sp_log_limit *l, uint32_t rate, uint32_t burst);
/*
 * Takes a token at monotonic time now_ns. true: the caller may log, and
 * *suppressed receives (and the limiter forgets) how many were dropped
 * before; false: dropped and counted.
 */
bool sp_log_limit_take(struct sp_log_limit *l, uint64_t now_ns, uint64_t *suppressed);

/* sp_log_write through a limiter: adds suppressed=N when lines were dropped. */
void sp_log_write_limited(const struct sp_log *lg, struct sp_log_limit *l, uint64_t now_ns,
			  enum sp_log_level level, const char *msg, const struct sp_log_kv *kv,
			  size_t n);

/* Convenience: SP_LOG(lg, SP_LOG_INFO, "msg", SP_KV_STR("k", v), ...); at least one kv. */
#define SP_LOG(lg, level, msg, ...)                                                         \
	do {                                                                                \
		if (sp_log_enabled((lg), (level))) {                                        \
			const struct sp_log_kv sp_kv_[] = { __VA_ARGS__ };                  \
			sp_log_write((lg), (level), (msg), sp_kv_,                          \
				     sizeof(sp_kv_) / sizeof(sp_kv_[0]));                    \
		}                                                                           \
	} while (0)
#define SP_LOG0(lg, level, msg) sp_log_write((lg), (level), (msg), NULL, 0)
#define SP_LOG_LIMITED(lg, lim, now_ns, level, msg, ...)                                     \
	do {                                                                                \
		if (sp_log_enabled((lg), (level))) {                                        \
			const struct sp_log_kv sp_kv_[] = { __VA_ARGS__ };                  \
			sp_log_write_limited((lg), (lim), (now_ns), (level), (msg), sp_kv_, \
					     sizeof(sp_kv_) / sizeof(sp_kv_[0]));            \
		}                                                                           \
	} while (0)

#endif
