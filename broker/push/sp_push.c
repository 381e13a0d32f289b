/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_push.c: subscriptions, registrations and coalescing (sp_push.h).
 */
#include "sp_push.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "sp_keytab.h"
#include "sp_list.h"
#include "sp_push_sub.h"
#include "sp_push_worker.h"
#include "sp_store.h"

struct entry {
	struct sp_list node;            /* in all: freed at destroy */
	uint64_t last_wake_ns;          /* 0: none since the device last connected */
	struct sp_push_sub sub;
};

struct sp_push {
	const struct sp_config *cfg;
	const struct sp_log *log;
	struct sp_store *store;
	struct sp_push_worker *worker;
	struct sp_keytab *subs;         /* device -> struct entry * */
	struct sp_list all;
	struct sp_push_policy pol;
	struct sp_log_limit lim;
};

/* For the log limiter only (the rare lines: failures, debug). */
static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static struct entry *find(const struct sp_push *p, const uint8_t device[SP_KEY_LEN])
{
	uint64_t v;

	if (sp_keytab_lookup(p->subs, device, &v) < 0)
		return NULL;
	return (struct entry *)(uintptr_t)v;
}

static void entry_free(struct entry *e)
{
	sp_list_del(&e->node);
	sodium_memzero(e, sizeof(*e));
	free(e);
}

/* Replaces device's entry with e (taken; NULL: removes it). */
static int put(struct sp_push *p, const uint8_t device[SP_KEY_LEN], struct entry *e,
	       struct sp_metrics_shard *m)
{
	struct entry *old = find(p, device);
	int ret;

	if (old) {
		sp_keytab_remove(p->subs, device, (uint64_t)(uintptr_t)old);
		entry_free(old);
		sp_metrics_push_subscriptions(m, -1);
	}
	if (!e)
		return 0;
	ret = sp_keytab_insert(p->subs, device, (uint64_t)(uintptr_t)e, NULL);
	if (ret < 0) {
		entry_free(e);
		return ret;
	}
	sp_list_add_tail(&p->all, &e->node);
	sp_metrics_push_subscriptions(m, 1);
	return 0;
}

struct load_ctx {
	struct sp_push *p;
	struct sp_metrics_shard *m;
	size_t bad;
};

static int load_one(void *ctx, const uint8_t device[SP_KEY_LEN], const uint8_t *val, size_t len)
{
	struct load_ctx *x = ctx;
	struct entry *e = calloc(1, sizeof(*e));

	if (!e)
		return -ENOMEM;
	if (sp_push_sub_decode(val, len, &e->sub)) {
		x->bad++;
		free(e);
		return 0;
	}
	return put(x->p, device, e, x->m);
}

int sp_push_create(struct sp_push **out, const struct sp_config *cfg, const struct sp_log *log,
		   struct sp_store *store, struct sp_push_worker *worker,
		   struct sp_metrics_shard *m)
{
	struct sp_push *p = calloc(1, sizeof(*p));
	struct load_ctx x = { .p = p, .m = m };
	int ret;

	*out = NULL;
	if (!p)
		return -ENOMEM;
	p->cfg = cfg;
	p->log = log;
	p->store = store;
	p->worker = worker;
	sp_list_init(&p->all);
	p->pol.endpoint_max = cfg->push_endpoint_max;
	p->pol.allow_private = cfg->push_allow_private != 0;
	p->pol.allowed_hosts = cfg->push_allowed_hosts;
	sp_log_limit_init(&p->lim, cfg->log_rate, cfg->log_rate);
	ret = sp_keytab_create(&p->subs, 64);
	if (ret) {
		free(p);
		return ret;
	}
	if (store) {
		ret = sp_store_push_each(store, load_one, &x);
		if (ret) {
			sp_push_destroy(p);
			return ret;
		}
		if (x.bad)
			SP_LOG(log, SP_LOG_WARN, "push subscriptions unreadable: skipped",
			       SP_KV_UINT("count", x.bad));
	}
	*out = p;
	return 0;
}

void sp_push_destroy(struct sp_push *p)
{
	if (!p)
		return;
	while (!sp_list_empty(&p->all))
		entry_free(sp_list_entry(p->all.next, struct entry, node));
	if (p->subs)
		sp_keytab_destroy(p->subs);
	free(p);
}

int sp_push_result_fd(const struct sp_push *p)
{
	return p->worker ? sp_push_worker_result_fd(p->worker) : -1;
}

size_t sp_push_count(const struct sp_push *p)
{
	return sp_keytab_count(p->subs);
}

static enum sp_status do_register(struct sp_push *p, const uint8_t device[SP_KEY_LEN],
				  const struct sp_frame_push_register *r,
				  struct sp_metrics_shard *m)
{
	struct entry *e;
	uint8_t val[SP_PUSH_SUB_HDR_LEN + SP_PUSH_ENDPOINT_WIRE_MAX];
	enum sp_status st;

	e = calloc(1, sizeof(*e));
	if (!e)
		return SP_STATUS_ERR_INTERNAL;
	st = sp_push_sub_check(&p->pol, r->endpoint, r->endpoint_len, r->p256dh, r->p256dh_len,
			       r->auth, r->auth_len, &e->sub);
	if (st == SP_STATUS_ACCEPTED && !find(p, device) &&
	    sp_keytab_count(p->subs) >= p->cfg->push_subscriptions_max)
		st = SP_STATUS_ERR_PUSH_FULL;
	if (st != SP_STATUS_ACCEPTED) {
		entry_free(e);
		return st;
	}
	sp_push_sub_encode(&e->sub, val);
	if (sp_store_push_put(p->store, device, val, sp_push_sub_size(&e->sub))) {
		SP_LOG_LIMITED(p->log, &p->lim, mono_ns(), SP_LOG_ERROR, "push subscription write failed",
			       SP_KV_STR("detail", sp_store_errmsg(p->store)));
		entry_free(e);
		return SP_STATUS_ERR_INTERNAL;
	}
	sodium_memzero(val, sizeof(val));
	if (put(p, device, e, m))
		return SP_STATUS_ERR_INTERNAL;
	return SP_STATUS_ACCEPTED;
}

/* Store first, then memory: a device told ACCEPTED is not woken again. */
static enum sp_status do_remove(struct sp_push *p, const uint8_t device[SP_KEY_LEN],
				struct sp_metrics_shard *m)
{
	if (!find(p, device))
		return SP_STATUS_ACCEPTED;
	if (sp_store_push_del(p->store, device)) {
		SP_LOG_LIMITED(p->log, &p->lim, mono_ns(), SP_LOG_ERROR, "push subscription delete failed",
			       SP_KV_STR("detail", sp_store_errmsg(p->store)));
		return SP_STATUS_ERR_INTERNAL;
	}
	put(p, device, NULL, m);
	return SP_STATUS_ACCEPTED;
}

static unsigned reg_index(bool remove, enum sp_status st)
{
	if (st == SP_STATUS_ACCEPTED)
		return remove ? 1 : 0;
	if (st >= SP_STATUS_ERR_PUSH_BAD_KEY && st <= SP_STATUS_ERR_PUSH_FULL)
		return 2 + (unsigned)(st - SP_STATUS_ERR_PUSH_BAD_KEY);
	return SP_METRICS_PUSH_REG_COUNT - 1;
}

enum sp_status sp_push_frame(struct sp_push *p, const uint8_t device[SP_KEY_LEN],
			     const struct sp_frame *f, struct sp_metrics_shard *m)
{
	bool remove = f->type == SP_FRAME_PUSH_REMOVE;
	enum sp_status st;

	if (!p || !p->store || !p->worker)
		st = SP_STATUS_ERR_PUSH_DISABLED;
	else if (remove)
		st = do_remove(p, device, m);
	else
		st = do_register(p, device, &f->u.push_register, m);
	sp_metrics_push_registration(m, reg_index(remove, st));
	return st;
}

void sp_push_mail(struct sp_push *p, const uint8_t device[SP_KEY_LEN], uint64_t now_ns,
		  struct sp_metrics_shard *m)
{
	struct entry *e = find(p, device);
	uint64_t interval = (uint64_t)p->cfg->push_coalesce_ms * 1000000u;
	int ret;

	if (!e || !p->worker)
		return;
	if (e->last_wake_ns && now_ns - e->last_wake_ns < interval) {
		sp_metrics_push_wakeup(m, SP_METRICS_PUSH_COALESCED, false);
		return;
	}
	ret = sp_push_worker_submit(p->worker, device, &e->sub);
	if (ret == -EALREADY) {
		/* The queued one (retrying, maybe) wakes it as well. */
		sp_metrics_push_wakeup(m, SP_METRICS_PUSH_COALESCED, false);
		return;
	}
	if (ret) {
		sp_metrics_push_wakeup(m, SP_METRICS_PUSH_DROPPED, false);
		return;
	}
	e->last_wake_ns = now_ns ? now_ns : 1;
}

void sp_push_connected(struct sp_push *p, const uint8_t device[SP_KEY_LEN])
{
	struct entry *e = find(p, device);

	if (e)
		e->last_wake_ns = 0;
}

void sp_push_dropped(struct sp_push *p, const uint8_t device[SP_KEY_LEN],
		     struct sp_metrics_shard *m)
{
	if (p && p->store && find(p, device))
		do_remove(p, device, m);
}

void sp_push_outcomes(struct sp_push *p, struct sp_metrics_shard *m)
{
	static const enum sp_metrics_push map[SP_PUSH_OUTCOME_COUNT] = {
		[SP_PUSH_SENT] = SP_METRICS_PUSH_SENT,
		[SP_PUSH_GONE] = SP_METRICS_PUSH_GONE,
		[SP_PUSH_RETRIED] = SP_METRICS_PUSH_RETRIED,
		[SP_PUSH_FAILED] = SP_METRICS_PUSH_FAILED,
		[SP_PUSH_REFUSED_ADDRESS] = SP_METRICS_PUSH_REFUSED_ADDRESS,
		[SP_PUSH_DROPPED] = SP_METRICS_PUSH_DROPPED,
	};
	static const char *const names[] = SP_METRICS_PUSH_NAMES;
	struct sp_push_result r[64];
	size_t n;

	if (!p->worker)
		return;
	while ((n = sp_push_worker_take(p->worker, r, 64)) > 0) {
		for (size_t i = 0; i < n; i++) {
			sp_metrics_push_wakeup(m, map[r[i].outcome], r[i].timed_out);
			SP_LOG_LIMITED(p->log, &p->lim, mono_ns(), SP_LOG_DEBUG, "push wake-up",
				       SP_KV_STR("outcome", names[map[r[i].outcome]]),
				       SP_KV_INT("http_status", r[i].http_status));
			/* The push service says the subscription is gone (RFC 8030 7.3). */
			if (r[i].outcome == SP_PUSH_GONE)
				do_remove(p, r[i].device, m);
		}
		if (n < 64)
			break;
	}
}
