/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_admin_exec.c: admin jobs on the shard's thread (sp_admin_exec.h).
 */
#include "sp_admin_exec.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "sp_admin.h"
#include "sp_deliver.h"
#include "sp_lifecycle.h"
#include "sp_mailbox.h"
#include "sp_push.h"
#include "sp_route.h"
#include "sp_shard.h"
#include "sp_store.h"

void sp_admin_exec_arm(struct sp_shard *sh)
{
	int ret;

	if (!sh->admin || sh->admin_armed || sh->id != 0)     /* shard 0 takes the jobs */
		return;
	ret = sp_ring_read(&sh->ring, sp_admin_wake_fd(sh->admin), &sh->admin_buf,
			   sizeof(sh->admin_buf), sp_ud_pack(SP_OP_ADMIN, 0, 0));
	sh->admin_armed = ret == 0;
	sh->admin_retry = ret != 0;
	if (ret)
		SP_LOG_LIMITED(sh->log, &sh->lim[SP_LIM_REFUSED], sh->now_ns, SP_LOG_ERROR,
			       "io_uring submission failed: trying again",
			       SP_KV_STR("request", "admin read"), SP_KV_STR("error", strerror(-ret)));
}

void sp_admin_exec_retry(struct sp_shard *sh)
{
	if (sh->admin_retry)
		sp_admin_exec_arm(sh);
}

static void err(struct sp_admin_result *r, const char *code, const char *msg)
{
	r->error = code;
	snprintf(r->message, sizeof(r->message), "%s", msg);
}

/* The store's failed commits so far (its own count; the shard keeps none). */
static uint64_t commit_failures(struct sp_shard *sh)
{
	struct sp_store_stats ss;

	if (!sp_shard_store(sh))
		return 0;
	sp_store_get_stats(sp_shard_store(sh), &ss);
	return ss.commit_failures;
}

/* With shards, each adds its own (the job visits them in turn, shard 0
 * first); the mailbox gauges are signed deltas but for shard 0's, so
 * they are clamped once, by the last shard. */
static void run_status(struct sp_shard *sh, struct sp_admin_result *r)
{
	const struct sp_metrics_shard *m = sh->metrics;
	bool last = !sh->node || sh->id + 1u == sh->node->n;

	r->stopping = sh->stopping;
	r->connections += sh->nconns;
	r->devices_online += sp_route_count(sh->routes);
	r->has_store = sp_shard_store(sh) != NULL;
	r->mailbox_entries += (uint64_t)m->mailbox_entries;
	r->mailbox_bytes += (uint64_t)m->mailbox_bytes;
	if (last && (int64_t)r->mailbox_entries < 0)
		r->mailbox_entries = 0;
	if (last && (int64_t)r->mailbox_bytes < 0)
		r->mailbox_bytes = 0;
	/* The counts /metrics shows (sealpost_connections_accepted_total, the
	 * successful sealpost_handshakes_total): one count of each thing. */
	r->accepted_conns += m->connections_accepted;
	for (unsigned p = 0; p < SP_METRICS_PATTERN_COUNT; p++)
		r->handshakes += m->handshakes[p][SP_METRICS_OUTCOME_OK];
	r->envelopes_accepted += m->envelopes_accepted;
	for (unsigned i = 0; i < SP_METRICS_REFUSED_COUNT; i++)
		r->envelopes_refused += m->envelopes_refused[i];
	r->delivered_live += m->envelopes_delivered[SP_METRICS_PATH_LIVE];
	r->delivered_mailbox += m->envelopes_delivered[SP_METRICS_PATH_MAILBOX];
	r->acks += m->acks;
	r->expired += m->expired;
}

static void run_mailbox(struct sp_shard *sh, struct sp_admin_job *j)
{
	struct sp_admin_result *r = &j->res;
	uint64_t accepted_ms;
	int ret;

	r->online = sp_deliver_recipient(sh, j->req.key) != NULL;
	if (!sp_shard_store(sh))
		return;         /* no store: nothing kept, for anyone */
	ret = sp_store_mailbox_info(sp_shard_store(sh), j->req.key, &r->count, &r->bytes, NULL);
	if (ret < 0) {
		err(r, "internal", sp_store_errmsg(sp_shard_store(sh)));
		return;
	}
	ret = sp_store_mailbox_oldest(sp_shard_store(sh), j->req.key, sh->wall_ms, &accepted_ms);
	if (ret == 0)
		r->oldest_age_ms = sh->wall_ms > accepted_ms ? sh->wall_ms - accepted_ms : 0;
	else if (ret != -ENOENT)
		err(r, "internal", sp_store_errmsg(sp_shard_store(sh)));
}

static void run_purge(struct sp_shard *sh, struct sp_admin_job *j)
{
	int ret;

	if (!sp_shard_store(sh)) {
		err(&j->res, "no_store", "sealpostd runs without a mailbox store");
		return;
	}
	j->commit_failures = commit_failures(sh);
	ret = sp_mailbox_purge(sh, j->req.key, &j->res.count, &j->res.bytes);
	if (ret < 0)
		err(&j->res, "internal", strerror(-ret));
	else if (sh->push)
		/* The mailbox is dropped: its push subscription goes with it
		 * (the push state is shared: under the store lock, held here). */
		sp_push_dropped(sh->push, j->req.key, sh->metrics);
}

static void run_disconnect(struct sp_shard *sh, struct sp_admin_job *j)
{
	struct sp_conn *c = sp_deliver_recipient(sh, j->req.key);

	if (!c) {
		err(&j->res, "not_connected", "no connection of that device");
		return;
	}
	/* GoAway shutdown at the flush, after what it is owed (its results). */
	sp_life_end_later(sh, c, SP_CLOSE_ADMIN);
	j->res.online = true;
}

static void run_reload(struct sp_shard *sh, struct sp_admin_job *j)
{
	if (!sh->live_cfg || !j->fresh) {
		err(&j->res, "internal", "this shard cannot reload");
		return;
	}
	j->res.nchanges = sp_config_reload(sh->live_cfg, j->fresh, j->res.changes,
					   SP_ADMIN_CHANGES_MAX);
	sp_shard_limits_changed(sh);
}

static void run(struct sp_shard *sh, struct sp_admin_job *j)
{
	switch (j->req.cmd) {
	case SP_ADMIN_STATUS: run_status(sh, &j->res); break;
	case SP_ADMIN_MAILBOX: run_mailbox(sh, j); break;
	case SP_ADMIN_PURGE: run_purge(sh, j); break;
	case SP_ADMIN_DISCONNECT: run_disconnect(sh, j); break;
	case SP_ADMIN_RELOAD: run_reload(sh, j); break;
	default: err(&j->res, "internal", "not a shard command"); break;
	}
	if (j->req.cmd == SP_ADMIN_MAILBOX || j->req.cmd == SP_ADMIN_PURGE ||
	    j->req.cmd == SP_ADMIN_DISCONNECT)
		sp_admin_device_id(sh->admin, j->req.key, j->res.id);
}

/* Shards: a device's job runs on its home shard; status and reload on
 * every shard in turn (each its own counts, its own copy of the
 * configuration). True if j went to another shard (hop: the next one). */
static bool forward(struct sp_shard *sh, struct sp_admin_job *j, bool ran)
{
	struct sp_inbox_msg *m;
	unsigned to;

	if (!sh->node)
		return false;
	if (j->req.cmd == SP_ADMIN_STATUS || j->req.cmd == SP_ADMIN_RELOAD) {
		if (!ran || sh->id + 1u >= sh->node->n)
			return false;
		to = sh->id + 1u;
	} else if (j->req.cmd == SP_ADMIN_MAILBOX || j->req.cmd == SP_ADMIN_PURGE ||
		   j->req.cmd == SP_ADMIN_DISCONNECT) {
		if (ran || (to = sp_node_home(sh->node, j->req.key)) == sh->id)
			return false;
	} else {
		return false;
	}
	if (!(m = sp_inbox_msg_new(SP_XS_ADMIN, 0)))
		return false;   /* run or answered here, as with one shard */
	m->ptr = j;
	sp_shard_post(sh, to, m);
	return true;
}

static void queue(struct sp_shard *sh, struct sp_admin_job *j)
{
	struct sp_admin_job **tail = &sh->admin_jobs;

	while (*tail)
		tail = &(*tail)->next;
	j->next = NULL;
	*tail = j;
}

static void take_one(struct sp_shard *sh, struct sp_admin_job *j)
{
	if (forward(sh, j, false))
		return;
	run(sh, j);
	if (!forward(sh, j, true))
		queue(sh, j);
}

void sp_admin_exec_remote(struct sp_shard *sh, struct sp_admin_job *j, unsigned hops)
{
	(void)hops;
	j->next = NULL;
	take_one(sh, j);
}

void sp_admin_exec_cqe(struct sp_shard *sh, int res)
{
	struct sp_admin_job *j, *next;

	sh->admin_armed = false;
	if (res < 0 && res != -EAGAIN && res != -EINTR)
		SP_LOG(sh->log, SP_LOG_ERROR, "admin wake read failed", SP_KV_INT("errno", -res));
	for (j = sp_admin_take(sh->admin); j; j = next) {
		next = j->next;
		j->next = NULL;
		take_one(sh, j);
	}
	if (res >= 0 || res == -EAGAIN || res == -EINTR)
		sp_admin_exec_arm(sh);
}

void sp_admin_exec_finish(struct sp_shard *sh)
{
	struct sp_admin_job *j, *next;

	for (j = sh->admin_jobs; j; j = next) {
		next = j->next;
		if (j->req.cmd == SP_ADMIN_PURGE && !j->res.error &&
		    commit_failures(sh) != j->commit_failures) {
			err(&j->res, "internal", "the store's commit failed: nothing was purged");
			j->res.count = j->res.bytes = 0;
		}
		sp_admin_done(sh->admin, j);    /* j is the admin thread's from here */
	}
	sh->admin_jobs = NULL;
}
