/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_push_worker.h: the thread that talks to push services, so that no
 * HTTP, DNS or TLS ever runs on the event loop.
 *
 * The loop hands over wake-up jobs (sp_push_worker_submit: a copy of the
 * subscription, one mutex-protected list push and an eventfd write); the
 * worker runs them with libcurl's multi interface, at most concurrency at
 * once, each with a fresh RFC 8291 message and VAPID token
 * (sp_webpush.h), retries 429, 5xx, timeouts and connection failures with
 * back-off (Retry-After honoured, capped at backoff_max_ms), and hands
 * every outcome back (sp_push_worker_take) with the outcome eventfd made
 * readable for the loop's ring. Connections are made only to addresses
 * sp_push_addr_private refuses not, unless allow_private (checked on the
 * resolved address at connect: a DNS name cannot point it inside).
 *
 * Threading: submit and take from the loop's thread; the worker's own
 * thread does everything else. Errors: 0 or a negative errno.
 */
#ifndef SP_PUSH_WORKER_H
#define SP_PUSH_WORKER_H

#include <stdbool.h>
#include <stdint.h>

#include "sp_limits.h"
#include "sp_push_sub.h"

struct sp_vapid;
struct sp_push_worker;

struct sp_push_worker_config {
	const struct sp_vapid *vapid;   /* borrowed for the worker's life */
	const char *subject;            /* VAPID sub, borrowed; may be "" */
	uint32_t ttl_s;
	const char *urgency;            /* "very-low" .. "high", borrowed */
	uint32_t concurrency, timeout_ms, retries, backoff_ms, backoff_max_ms, queue_max;
	bool allow_private;
};

/* What became of one wake-up (or of one attempt, for RETRIED). */
enum sp_push_outcome {
	SP_PUSH_SENT = 0,               /* 2xx */
	SP_PUSH_GONE,                   /* 404, 410: the subscription is removed */
	SP_PUSH_RETRIED,                /* 429, 5xx, timeout, connection failure: again later */
	SP_PUSH_FAILED,                 /* other answers, or retries exhausted */
	SP_PUSH_REFUSED_ADDRESS,        /* the endpoint resolved to a private address */
	SP_PUSH_DROPPED,                /* queue full, or the device already has one queued */
	SP_PUSH_OUTCOME_COUNT,
};

struct sp_push_result {
	uint8_t device[SP_KEY_LEN];
	enum sp_push_outcome outcome;
	long http_status;               /* 0 without an answer */
	bool timed_out;                 /* RETRIED or FAILED because the request timed out */
};

int sp_push_worker_start(struct sp_push_worker **out, const struct sp_push_worker_config *cfg);
/* Stops the thread (transfers in flight are abandoned), frees everything. */
void sp_push_worker_stop(struct sp_push_worker *w);

/* Readable (eventfd) when outcomes wait for sp_push_worker_take. */
int sp_push_worker_result_fd(const struct sp_push_worker *w);

/* Queues one wake-up of device for sub (both copied). -ENOBUFS if
 * queue_max wake-ups are queued or in flight, -EALREADY if one for device
 * is (then it covers this one too), -ENOMEM. */
int sp_push_worker_submit(struct sp_push_worker *w, const uint8_t device[SP_KEY_LEN],
			  const struct sp_push_sub *sub);

/* Up to cap outcomes into out (filled); how many. */
size_t sp_push_worker_take(struct sp_push_worker *w, struct sp_push_result *out, size_t cap);

#endif
