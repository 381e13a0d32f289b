/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_admin.c: the admin socket's thread, its request parser and response
 * writer, and the job queue to the shard (sp_admin.h).
 */
#include "sp_admin.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

enum {
	LISTEN_BACKLOG = 16,
	OUT_MAX = 32768,                /* the longest answer: a reload's 64 changes, top 100 */
	REFUSE_LOG_RATE = 1,            /* refusal lines per second (busy, too large, ...) */
};

/* Slot states (this thread's) and job states (under mu). */
enum { C_FREE, C_READ, C_WAIT, C_WRITE, C_ORPHAN };
enum { J_IDLE, J_QUEUED, J_TAKEN, J_DONE };

static const char *const cmd_names[SP_ADMIN_CMD_COUNT] = {
	[SP_ADMIN_STATUS] = "status", [SP_ADMIN_MAILBOX] = "mailbox",
	[SP_ADMIN_PURGE] = "purge", [SP_ADMIN_DISCONNECT] = "disconnect",
	[SP_ADMIN_LOG_LEVEL] = "log-level", [SP_ADMIN_RELOAD] = "reload",
	[SP_ADMIN_TOP] = "top", [SP_ADMIN_HASH] = "hash",
};

const char *sp_admin_cmd_name(enum sp_admin_cmd cmd)
{
	return (unsigned)cmd < SP_ADMIN_CMD_COUNT ? cmd_names[cmd] : NULL;
}

static bool takes_key(enum sp_admin_cmd c)
{
	return c == SP_ADMIN_MAILBOX || c == SP_ADMIN_PURGE || c == SP_ADMIN_DISCONNECT ||
	       c == SP_ADMIN_HASH;
}

/* ---- the parser ------------------------------------------------------------ */

int sp_admin_parse(const char *line, size_t len, struct sp_admin_req *req, char *msg, size_t cap)
{
	json_error_t jerr;
	json_t *root, *v;
	const char *name, *s;
	int ret = -EINVAL;

	memset(req, 0, sizeof(*req));
	root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		snprintf(msg, cap, "not JSON: %s at column %d", jerr.text, jerr.column);
		return -EINVAL;
	}
	if (!json_is_object(root)) {
		snprintf(msg, cap, "the request must be a JSON object");
		goto out;
	}
	v = json_object_get(root, "cmd");
	if (!json_is_string(v)) {
		snprintf(msg, cap, "\"cmd\" (a string) is required");
		goto out;
	}
	s = json_string_value(v);
	for (unsigned i = 1; i < SP_ADMIN_CMD_COUNT; i++)
		if (strcmp(s, cmd_names[i]) == 0)
			req->cmd = (enum sp_admin_cmd)i;
	if (req->cmd == SP_ADMIN_NONE) {
		snprintf(msg, cap, "unknown cmd \"%.40s\"", s);
		ret = -ENOENT;
		goto out;
	}
	/* Every member must mean something to this command: a typo is an error,
	 * not a default. */
	json_object_foreach(root, name, v) {
		if (strcmp(name, "cmd") == 0)
			continue;
		if (strcmp(name, "key") == 0 && takes_key(req->cmd)) {
			size_t bin_len = 0;

			s = json_string_value(v);
			if (!s || strlen(s) != 2 * SP_KEY_LEN ||
			    sodium_hex2bin(req->key, SP_KEY_LEN, s, strlen(s), NULL, &bin_len,
					   NULL) != 0 || bin_len != SP_KEY_LEN) {
				snprintf(msg, cap, "\"key\" must be a device public key: %d hex "
					 "characters", 2 * SP_KEY_LEN);
				goto out;
			}
		} else if (strcmp(name, "level") == 0 && req->cmd == SP_ADMIN_LOG_LEVEL) {
			s = json_string_value(v);
			if (!s || sp_log_level_parse(s, &req->level)) {
				snprintf(msg, cap, "\"level\" must be error, warn, info or debug");
				goto out;
			}
		} else if (strcmp(name, "n") == 0 && req->cmd == SP_ADMIN_TOP) {
			if (!json_is_integer(v) || json_integer_value(v) < 1 ||
			    json_integer_value(v) > SP_ADMIN_TOP_MAX) {
				snprintf(msg, cap, "\"n\" must be an integer in 1..%d",
					 SP_ADMIN_TOP_MAX);
				goto out;
			}
			req->n = (uint32_t)json_integer_value(v);
		} else if (strcmp(name, "by") == 0 && req->cmd == SP_ADMIN_TOP) {
			s = json_string_value(v);
			if (!s || (strcmp(s, "bytes") != 0 && strcmp(s, "count") != 0)) {
				snprintf(msg, cap, "\"by\" must be \"bytes\" or \"count\"");
				goto out;
			}
			req->by_count = strcmp(s, "count") == 0;
		} else {
			snprintf(msg, cap, "\"%.40s\" is not a member of a %s request", name,
				 cmd_names[req->cmd]);
			goto out;
		}
	}
	if (takes_key(req->cmd) && !json_object_get(root, "key")) {
		snprintf(msg, cap, "%s needs \"key\"", cmd_names[req->cmd]);
		goto out;
	}
	if (req->cmd == SP_ADMIN_LOG_LEVEL && !json_object_get(root, "level")) {
		snprintf(msg, cap, "log-level needs \"level\"");
		goto out;
	}
	if (req->cmd == SP_ADMIN_TOP && req->n == 0)
		req->n = SP_ADMIN_TOP_DEFAULT;
	ret = 0;
out:
	json_decref(root);
	return ret;
}

/* ---- the response ---------------------------------------------------------- */

void sp_admin_id(const uint8_t *secret, const uint8_t key[SP_KEY_LEN], uint8_t id[SP_ADMIN_ID_LEN])
{
	crypto_generichash(id, SP_ADMIN_ID_LEN, key, SP_KEY_LEN, secret,
			   crypto_generichash_KEYBYTES);
}

static json_t *id_string(const uint8_t id[SP_ADMIN_ID_LEN])
{
	char hex[2 * SP_ADMIN_ID_LEN + 1];

	sodium_bin2hex(hex, sizeof(hex), id, SP_ADMIN_ID_LEN);
	return json_string(hex);
}

static json_t *num(uint64_t v)
{
	/* JSON integers are json_int_t (long long): beyond it is no count we keep. */
	return json_integer(v > (uint64_t)INT64_MAX ? INT64_MAX : (json_int_t)v);
}

static void add(json_t *o, const char *k, json_t *v)
{
	json_object_set_new(o, k, v);
}

static void format_reload(json_t *o, const struct sp_admin_result *r)
{
	json_t *applied = json_array(), *restart = json_array(), *list = json_array();
	size_t n = r->nchanges < SP_ADMIN_CHANGES_MAX ? r->nchanges : SP_ADMIN_CHANGES_MAX;
	const char *name;

	for (size_t i = 0; i < n; i++) {
		const struct sp_config_change *c = &r->changes[i];
		json_t *e = json_object();

		add(e, "key", json_string(c->name));
		add(e, "old", json_string(c->old_value));
		add(e, "new", json_string(c->new_value));
		json_array_append_new(c->applied ? applied : restart, e);
	}
	for (size_t i = 0; (name = sp_config_reloadable_name(i)); i++)
		json_array_append_new(list, json_string(name));
	add(o, "applied", applied);
	add(o, "needs_restart", restart);
	add(o, "reloadable", list);
	if (r->nchanges > n)
		add(o, "more_changes", num(r->nchanges - n));
}

int sp_admin_format(const struct sp_admin_req *req, const struct sp_admin_result *res,
		    const struct sp_admin_info *info, char *out, size_t cap)
{
	json_t *o = json_object(), *t;
	const char *name = sp_admin_cmd_name(req->cmd);
	char *s;
	size_t len;

	if (!o)
		return -ENOMEM;
	add(o, "ok", json_boolean(res->error == NULL));
	if (name)
		add(o, "cmd", json_string(name));
	if (res->error) {
		add(o, "error", json_string(res->error));
		add(o, "message", json_string(res->message));
		goto dump;
	}
	if (takes_key(req->cmd))
		add(o, "id", id_string(res->id));
	switch (req->cmd) {
	case SP_ADMIN_STATUS:
		if (info) {
			add(o, "version", json_string(info->version));
			add(o, "pid", json_integer(info->pid));
			add(o, "uptime_s", num(info->uptime_s));
			add(o, "log_level", json_string(sp_log_level_name(info->log_level)));
		}
		add(o, "stopping", json_boolean(res->stopping));
		add(o, "connections", num(res->connections));
		add(o, "devices_online", num(res->devices_online));
		add(o, "mailbox_store", json_boolean(res->has_store));
		add(o, "mailbox_entries", num(res->mailbox_entries));
		add(o, "mailbox_bytes", num(res->mailbox_bytes));
		t = json_object();
		add(t, "connections_accepted", num(res->accepted_conns));
		add(t, "handshakes", num(res->handshakes));
		add(t, "envelopes_accepted", num(res->envelopes_accepted));
		add(t, "envelopes_refused", num(res->envelopes_refused));
		add(t, "delivered_live", num(res->delivered_live));
		add(t, "delivered_from_mailbox", num(res->delivered_mailbox));
		add(t, "acks", num(res->acks));
		add(t, "expired", num(res->expired));
		add(o, "totals", t);
		break;
	case SP_ADMIN_MAILBOX:
		add(o, "count", num(res->count));
		add(o, "bytes", num(res->bytes));
		/* null: nothing stored, so no oldest entry. */
		add(o, "oldest_age_s", res->count ? json_real((double)res->oldest_age_ms / 1000.0) :
						     json_null());
		add(o, "online", json_boolean(res->online));
		break;
	case SP_ADMIN_PURGE:
		add(o, "purged", num(res->count));
		add(o, "bytes", num(res->bytes));
		break;
	case SP_ADMIN_DISCONNECT:
		add(o, "disconnected", json_boolean(res->online));
		break;
	case SP_ADMIN_LOG_LEVEL:
		add(o, "level", json_string(sp_log_level_name(res->new_level)));
		add(o, "previous", json_string(sp_log_level_name(res->old_level)));
		break;
	case SP_ADMIN_RELOAD:
		format_reload(o, res);
		break;
	case SP_ADMIN_TOP:
		add(o, "by", json_string(req->by_count ? "count" : "bytes"));
		add(o, "scanned", num(res->scanned));
		t = json_array();
		for (size_t i = 0; i < res->ntop && i < SP_ADMIN_TOP_MAX; i++) {
			json_t *e = json_object();

			add(e, "id", id_string(res->top[i].id));
			add(e, "count", num(res->top[i].count));
			add(e, "bytes", num(res->top[i].bytes));
			json_array_append_new(t, e);
		}
		add(o, "mailboxes", t);
		break;
	default:
		break;
	}
dump:
	s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
	json_decref(o);
	if (!s)
		return -ENOMEM;
	len = strlen(s);
	if (len + 2 > cap) {
		free(s);
		return -ENOSPC;
	}
	memcpy(out, s, len);
	out[len++] = '\n';
	out[len] = '\0';
	free(s);
	return (int)len;
}

/* ---- the server ------------------------------------------------------------ */

struct aconn {
	int fd;
	int state;                      /* C_* */
	uint64_t deadline_ns;
	long uid, pid;                  /* the peer (SO_PEERCRED), for the log */
	char *in;                       /* cfg->admin_request_max + 1 bytes */
	size_t in_len;
	char *out;                      /* OUT_MAX bytes */
	size_t out_len, out_off;
	struct sp_config *fresh;        /* reload's re-read configuration, allocated on use */
	struct sp_admin_job job;
};

struct sp_admin {
	const struct sp_config *cfg;
	struct sp_log *log;
	int argc;
	char *const *argv;
	const char *version;
	sp_admin_top_fn top;            /* NULL: no store, top lists nothing */
	void *top_ctx;
	char path[SP_CONFIG_SOCKET_MAX];
	dev_t dev;                      /* the socket file we made (removed at stop if still it) */
	ino_t ino;
	int listen_fd;
	int wake_fd;                    /* eventfd: jobs queued (the shard reads it) */
	int done_fd;                    /* eventfd: jobs done (this thread reads it) */
	int quit_fd;                    /* eventfd: stop */
	uint8_t *secret;                /* sodium_malloc'd: the device-id key */
	uint64_t start_ns;
	pthread_t thread;
	bool running;
	struct sp_log_limit refuse_lim; /* this thread's */

	pthread_mutex_t mu;             /* the queue and every job's state */
	struct sp_admin_job *head, *tail;

	uint32_t nconns;
	struct aconn *conns;
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void kick(int fd)
{
	uint64_t one = 1;
	ssize_t w = write(fd, &one, sizeof(one));

	(void)w;        /* an eventfd: fails only at 2^64-1 pending, and then it is readable */
}

static void drain(int fd)
{
	uint64_t v;
	ssize_t r = read(fd, &v, sizeof(v));

	(void)r;
}

int sp_admin_wake_fd(const struct sp_admin *a)
{
	return a->wake_fd;
}

struct sp_admin_job *sp_admin_take(struct sp_admin *a)
{
	struct sp_admin_job *jobs;

	pthread_mutex_lock(&a->mu);
	jobs = a->head;
	for (struct sp_admin_job *j = jobs; j; j = j->next)
		j->state = J_TAKEN;
	a->head = a->tail = NULL;
	pthread_mutex_unlock(&a->mu);
	return jobs;
}

void sp_admin_done(struct sp_admin *a, struct sp_admin_job *j)
{
	pthread_mutex_lock(&a->mu);
	j->state = J_DONE;
	j->next = NULL;
	pthread_mutex_unlock(&a->mu);
	kick(a->done_fd);
}

void sp_admin_device_id(const struct sp_admin *a, const uint8_t key[SP_KEY_LEN],
			uint8_t id[SP_ADMIN_ID_LEN])
{
	sp_admin_id(a->secret, key, id);
}

const char *sp_admin_socket_path(const struct sp_admin *a)
{
	return a->path;
}

static void enqueue(struct sp_admin *a, struct sp_admin_job *j)
{
	pthread_mutex_lock(&a->mu);
	j->state = J_QUEUED;
	j->next = NULL;
	if (a->tail)
		a->tail->next = j;
	else
		a->head = j;
	a->tail = j;
	pthread_mutex_unlock(&a->mu);
	kick(a->wake_fd);
}

/* The job's state, and if still queued (the shard has not taken it), takes
 * it back out of the queue. */
static int withdraw(struct sp_admin *a, struct sp_admin_job *j)
{
	struct sp_admin_job *prev = NULL;
	int st;

	pthread_mutex_lock(&a->mu);
	st = j->state;
	if (st == J_QUEUED) {
		for (struct sp_admin_job *q = a->head; q; prev = q, q = q->next) {
			if (q != j)
				continue;
			if (prev)
				prev->next = j->next;
			else
				a->head = j->next;
			if (a->tail == j)
				a->tail = prev;
			break;
		}
		j->state = J_IDLE;
	}
	pthread_mutex_unlock(&a->mu);
	return st;
}

static int job_state(struct sp_admin *a, struct sp_admin_job *j)
{
	int st;

	pthread_mutex_lock(&a->mu);
	st = j->state;
	if (st == J_DONE)
		j->state = J_IDLE;
	pthread_mutex_unlock(&a->mu);
	return st;
}

static void close_conn(struct aconn *c, bool orphan)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->in_len = c->out_len = c->out_off = 0;
	c->state = orphan ? C_ORPHAN : C_FREE;
}

/* One line per request: who, what, the outcome; a device only by its id. */
static void log_request(struct sp_admin *a, const struct aconn *c)
{
	const struct sp_admin_req *q = &c->job.req;
	const struct sp_admin_result *r = &c->job.res;
	const char *cmd = sp_admin_cmd_name(q->cmd);
	char id[2 * SP_ADMIN_ID_LEN + 1] = "-";
	enum sp_log_level lvl = r->error ? SP_LOG_WARN : SP_LOG_INFO;

	if (takes_key(q->cmd) && !r->error)
		sodium_bin2hex(id, sizeof(id), r->id, SP_ADMIN_ID_LEN);
	if (r->error) {
		SP_LOG(a->log, lvl, "admin request refused", SP_KV_STR("cmd", cmd ? cmd : "-"),
		       SP_KV_STR("error", r->error), SP_KV_STR("detail", r->message),
		       SP_KV_INT("uid", c->uid), SP_KV_INT("pid", c->pid));
		return;
	}
	switch (q->cmd) {
	case SP_ADMIN_PURGE:
		SP_LOG(a->log, lvl, "admin purge", SP_KV_STR("device", id),
		       SP_KV_UINT("purged", r->count), SP_KV_UINT("bytes", r->bytes),
		       SP_KV_INT("uid", c->uid), SP_KV_INT("pid", c->pid));
		break;
	case SP_ADMIN_LOG_LEVEL:
		SP_LOG(a->log, lvl, "admin log level", SP_KV_STR("level",
		       sp_log_level_name(r->new_level)),
		       SP_KV_STR("previous", sp_log_level_name(r->old_level)),
		       SP_KV_INT("uid", c->uid), SP_KV_INT("pid", c->pid));
		break;
	case SP_ADMIN_RELOAD: {
		size_t applied = 0, n = r->nchanges < SP_ADMIN_CHANGES_MAX ? r->nchanges :
					SP_ADMIN_CHANGES_MAX;

		for (size_t i = 0; i < n; i++) {
			const struct sp_config_change *ch = &r->changes[i];

			applied += ch->applied;
			SP_LOG(a->log, lvl, ch->applied ? "admin reload: applied" :
			       "admin reload: needs restart", SP_KV_STR("key", ch->name),
			       SP_KV_STR("old", ch->old_value), SP_KV_STR("new", ch->new_value));
		}
		SP_LOG(a->log, lvl, "admin reload", SP_KV_STR("config", a->cfg->config_path),
		       SP_KV_UINT("applied", applied), SP_KV_UINT("needs_restart", r->nchanges - applied),
		       SP_KV_INT("uid", c->uid), SP_KV_INT("pid", c->pid));
		break;
	}
	default:
		SP_LOG(a->log, lvl, "admin request", SP_KV_STR("cmd", cmd ? cmd : "-"),
		       SP_KV_STR("device", id), SP_KV_INT("uid", c->uid), SP_KV_INT("pid", c->pid));
	}
}

static void respond(struct sp_admin *a, struct aconn *c)
{
	struct sp_admin_info info = {
		.version = a->version,
		.uptime_s = (mono_ns() - a->start_ns) / 1000000000u,
		.pid = (long)getpid(),
		.log_level = sp_log_level(a->log),
	};
	int n;

	log_request(a, c);
	n = sp_admin_format(&c->job.req, &c->job.res, &info, c->out, OUT_MAX);
	if (n < 0)
		n = snprintf(c->out, OUT_MAX, "{\"ok\":false,\"error\":\"internal\",\"message\":"
			     "\"the answer does not fit\"}\n");
	c->out_len = (size_t)n;
	c->out_off = 0;
	c->state = C_WRITE;
}

static void fail(struct sp_admin *a, struct aconn *c, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void fail(struct sp_admin *a, struct aconn *c, const char *code, const char *fmt, ...)
{
	va_list ap;

	c->job.res.error = code;
	va_start(ap, fmt);
	vsnprintf(c->job.res.message, sizeof(c->job.res.message), fmt, ap);
	va_end(ap);
	respond(a, c);
}

/* Answered here: nothing of the shard's state involved. */
static void run_local(struct sp_admin *a, struct aconn *c)
{
	struct sp_admin_req *q = &c->job.req;
	struct sp_admin_result *r = &c->job.res;

	if (q->cmd == SP_ADMIN_HASH) {
		sp_admin_device_id(a, q->key, r->id);
	} else if (q->cmd == SP_ADMIN_TOP) {
		struct sp_admin_top_key keys[SP_ADMIN_TOP_MAX];
		size_t n = q->n <= SP_ADMIN_TOP_MAX ? q->n : SP_ADMIN_TOP_MAX, got = 0;
		int ret = a->top ? a->top(a->top_ctx, n, q->by_count, keys, &got, &r->scanned) : 0;

		if (ret < 0) {
			r->error = "internal";
			snprintf(r->message, sizeof(r->message), "reading the mailbox counters "
				 "failed: %s", strerror(-ret));
			got = 0;
		}
		for (size_t i = 0; i < got && i < n; i++) {
			sp_admin_device_id(a, keys[i].key, r->top[i].id);
			r->top[i].count = keys[i].count;
			r->top[i].bytes = keys[i].bytes;
		}
		r->ntop = got < n ? got : n;
		/* The keys go no further than this frame. */
		sodium_memzero(keys, sizeof(keys));
	} else {
		r->old_level = sp_log_level(a->log);
		sp_log_set_level(a->log, q->level);
		r->new_level = sp_log_level(a->log);
	}
	respond(a, c);
}

static void got_request(struct sp_admin *a, struct aconn *c, size_t len)
{
	char msg[SP_ADMIN_MSG_MAX], err[SP_CONFIG_ERR_MAX];
	int ret;

	memset(&c->job.res, 0, sizeof(c->job.res));
	ret = sp_admin_parse(c->in, len, &c->job.req, msg, sizeof(msg));
	if (ret) {
		fail(a, c, ret == -ENOENT ? "unknown_command" : "bad_request", "%s", msg);
		return;
	}
	if (c->job.req.cmd == SP_ADMIN_HASH || c->job.req.cmd == SP_ADMIN_LOG_LEVEL ||
	    c->job.req.cmd == SP_ADMIN_TOP) {
		run_local(a, c);
		return;
	}
	c->job.fresh = NULL;
	if (c->job.req.cmd == SP_ADMIN_RELOAD) {
		/* The file is read here, off the event loop; the shard applies it. */
		if (!a->cfg->config_path[0]) {
			fail(a, c, "no_config", "sealpostd was started without --config: "
			     "there is no file to reload");
			return;
		}
		if (!c->fresh && !(c->fresh = malloc(sizeof(*c->fresh)))) {
			fail(a, c, "internal", "out of memory");
			return;
		}
		ret = sp_config_load(c->fresh, a->argc, a->argv, err, sizeof(err));
		if (ret != SP_CONFIG_OK) {
			fail(a, c, "config_error", "%s", ret < 0 ? err : "unexpected flags");
			return;
		}
		c->job.fresh = c->fresh;
	}
	c->state = C_WAIT;
	enqueue(a, &c->job);
}

static void on_readable(struct sp_admin *a, struct aconn *c)
{
	size_t cap = a->cfg->admin_request_max;
	char *nl;
	ssize_t n;

	for (;;) {
		n = read(c->fd, c->in + c->in_len, cap + 1 - c->in_len);
		if (n < 0 && errno == EINTR)
			continue;
		break;
	}
	if (n < 0) {
		if (errno != EAGAIN)
			close_conn(c, false);
		return;
	}
	if (n == 0) {
		/* EOF: what came is the request (a client may omit the newline). */
		if (c->in_len == 0) {
			close_conn(c, false);
			return;
		}
		got_request(a, c, c->in_len);
		return;
	}
	c->in_len += (size_t)n;
	nl = memchr(c->in, '\n', c->in_len);
	if (nl) {
		got_request(a, c, (size_t)(nl - c->in));
		return;
	}
	if (c->in_len > cap)
		fail(a, c, "too_large", "a request is at most %zu bytes (admin-request-max)", cap);
}

static void on_writable(struct aconn *c)
{
	ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		close_conn(c, false);
		return;
	}
	c->out_off += (size_t)n;
	if (c->out_off == c->out_len)
		close_conn(c, false);
}

/* A line straight onto a socket we are about to close (best effort). */
static void refuse_now(int fd, const char *line)
{
	ssize_t w = write(fd, line, strlen(line));

	(void)w;
}

static void on_accept(struct sp_admin *a)
{
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	uint64_t suppressed;
	struct aconn *c = NULL;
	int fd;

	fd = accept4(a->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	for (uint32_t i = 0; i < a->nconns && !c; i++)
		if (a->conns[i].state == C_FREE)
			c = &a->conns[i];
	if (!c) {
		refuse_now(fd, "{\"ok\":false,\"error\":\"busy\",\"message\":\"too many admin "
			   "connections (admin-max-conns)\"}\n");
		close(fd);
		if (sp_log_limit_take(&a->refuse_lim, mono_ns(), &suppressed))
			SP_LOG(a->log, SP_LOG_WARN, "admin connection refused: all slots busy",
			       SP_KV_UINT("admin_max_conns", a->nconns),
			       SP_KV_UINT("suppressed", suppressed));
		return;
	}
	c->fd = fd;
	c->state = C_READ;
	c->in_len = 0;
	c->deadline_ns = mono_ns() + (uint64_t)a->cfg->admin_timeout_ms * 1000000u;
	c->uid = c->pid = -1;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0) {
		c->uid = (long)cred.uid;
		c->pid = (long)cred.pid;
	}
	memset(&c->job.req, 0, sizeof(c->job.req));
}

static void collect_done(struct sp_admin *a)
{
	for (uint32_t i = 0; i < a->nconns; i++) {
		struct aconn *c = &a->conns[i];

		if ((c->state != C_WAIT && c->state != C_ORPHAN) || job_state(a, &c->job) != J_DONE)
			continue;
		if (c->state == C_ORPHAN) {
			log_request(a, c);      /* done after all: still an action taken */
			c->state = C_FREE;
		} else {
			respond(a, c);
		}
	}
}

static void expire(struct sp_admin *a, uint64_t now)
{
	static const char timeout_line[] = "{\"ok\":false,\"error\":\"timeout\",\"message\":"
		"\"no complete request or answer within admin-timeout\"}\n";

	for (uint32_t i = 0; i < a->nconns; i++) {
		struct aconn *c = &a->conns[i];

		if (c->state == C_FREE || c->state == C_ORPHAN || now < c->deadline_ns)
			continue;
		if (c->state != C_WRITE)
			refuse_now(c->fd, timeout_line);
		if (c->state == C_WAIT && withdraw(a, &c->job) == J_TAKEN) {
			/* The shard is running it: the slot waits for its done. */
			close_conn(c, true);
			continue;
		}
		if (c->state == C_WAIT && job_state(a, &c->job) == J_DONE)
			log_request(a, c);
		close_conn(c, false);
	}
}

static void *admin_thread(void *arg)
{
	struct sp_admin *a = arg;
	struct pollfd *pfd = calloc(a->nconns + 3, sizeof(*pfd));
	uint32_t *which = calloc(a->nconns, sizeof(*which));

	if (!pfd || !which) {
		SP_LOG0(a->log, SP_LOG_ERROR, "admin socket: out of memory: not serving");
		free(pfd);
		free(which);
		return NULL;
	}
	for (;;) {
		uint64_t now = mono_ns(), next = UINT64_MAX;
		nfds_t n = 3;
		int timeout = -1;

		pfd[0] = (struct pollfd){ .fd = a->quit_fd, .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = a->done_fd, .events = POLLIN };
		pfd[2] = (struct pollfd){ .fd = a->listen_fd, .events = POLLIN };
		for (uint32_t i = 0; i < a->nconns; i++) {
			struct aconn *c = &a->conns[i];

			if (c->state == C_FREE || c->state == C_ORPHAN)
				continue;
			if (c->deadline_ns < next)
				next = c->deadline_ns;
			if (c->state == C_WAIT)
				continue;       /* the shard's turn: only the deadline */
			which[n - 3] = i;
			pfd[n++] = (struct pollfd){ .fd = c->fd,
				.events = c->state == C_READ ? POLLIN : POLLOUT };
		}
		if (next != UINT64_MAX)
			timeout = next <= now ? 0 : (int)((next - now + 999999) / 1000000);
		if (poll(pfd, n, timeout) < 0 && errno != EINTR)
			break;
		if (pfd[0].revents)
			break;
		if (pfd[1].revents) {
			drain(a->done_fd);
			collect_done(a);
		}
		for (nfds_t k = 3; k < n; k++) {
			struct aconn *c = &a->conns[which[k - 3]];

			if (!pfd[k].revents || c->fd != pfd[k].fd)
				continue;
			if (c->state == C_READ)
				on_readable(a, c);
			else if (c->state == C_WRITE)
				on_writable(c);
		}
		if (pfd[2].revents & POLLIN)
			on_accept(a);
		expire(a, mono_ns());
	}
	free(pfd);
	free(which);
	return NULL;
}

/* ---- setup ----------------------------------------------------------------- */

int sp_admin_path(const struct sp_config *cfg, char *out, size_t cap)
{
	int n;

	if (cfg->admin_socket[0])
		n = snprintf(out, cap, "%s", cfg->admin_socket);
	else
		n = snprintf(out, cap, "%s/admin.sock", cfg->data_dir);
	return n < 0 || (size_t)n >= cap || (size_t)n >= SP_CONFIG_SOCKET_MAX ? -ENAMETOOLONG : 0;
}

static int make_socket(struct sp_admin *a)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	mode_t old;
	int fd, probe, ret;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", a->path);
	if (lstat(a->path, &st) == 0) {
		/* Never replace what is not a socket (a symlink to somewhere else,
		 * a file someone put there). */
		if (!S_ISSOCK(st.st_mode)) {
			SP_LOG(a->log, SP_LOG_ERROR, "admin socket path exists and is not a socket: "
			       "refusing to replace it", SP_KV_STR("path", a->path));
			return -EEXIST;
		}
		/* A socket: stale if nothing answers on it. */
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			close(probe);
			SP_LOG(a->log, SP_LOG_ERROR, "admin socket is served by another process",
			       SP_KV_STR("path", a->path));
			return -EEXIST;
		}
		if (probe >= 0)
			close(probe);
		if (unlink(a->path) && errno != ENOENT) {
			ret = -errno;
			SP_LOG(a->log, SP_LOG_ERROR, "cannot remove the stale admin socket",
			       SP_KV_STR("path", a->path), SP_KV_STR("error", strerror(errno)));
			return ret;
		}
	} else if (errno != ENOENT) {
		ret = -errno;
		SP_LOG(a->log, SP_LOG_ERROR, "cannot check the admin socket path",
		       SP_KV_STR("path", a->path), SP_KV_STR("error", strerror(errno)));
		return ret;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* Created with its mode (0600, or 0660) from the start: no moment when
	 * anyone else could connect. (The umask is the process's; any file
	 * another thread makes meanwhile only comes out stricter.) bind() never
	 * follows a symlink at the last component: one that appeared since
	 * lstat fails it. */
	old = umask(a->cfg->admin_socket_mode == 0660 ? 0117 : 0177);
	ret = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (ret || listen(fd, LISTEN_BACKLOG) || lstat(a->path, &st)) {
		ret = -errno;
		SP_LOG(a->log, SP_LOG_ERROR, "cannot create the admin socket",
		       SP_KV_STR("path", a->path), SP_KV_STR("error", strerror(errno)));
		close(fd);
		return ret;
	}
	a->dev = st.st_dev;
	a->ino = st.st_ino;
	a->listen_fd = fd;
	return 0;
}

static void destroy(struct sp_admin *a)
{
	struct stat st;

	if (a->listen_fd >= 0) {
		close(a->listen_fd);
		/* Only our own socket file: not one a successor made meanwhile. */
		if (lstat(a->path, &st) == 0 && st.st_dev == a->dev && st.st_ino == a->ino)
			unlink(a->path);
	}
	for (uint32_t i = 0; a->conns && i < a->nconns; i++) {
		struct aconn *c = &a->conns[i];

		if (c->fd >= 0) {
			if (c->state == C_WAIT)
				refuse_now(c->fd, "{\"ok\":false,\"error\":\"shutting_down\","
					   "\"message\":\"sealpostd is stopping\"}\n");
			close(c->fd);
		}
		free(c->in);
		free(c->out);
		free(c->fresh);
	}
	free(a->conns);
	if (a->wake_fd >= 0)
		close(a->wake_fd);
	if (a->done_fd >= 0)
		close(a->done_fd);
	if (a->quit_fd >= 0)
		close(a->quit_fd);
	if (a->secret)
		sodium_free(a->secret);         /* zeroes it */
	pthread_mutex_destroy(&a->mu);
	free(a);
}

int sp_admin_start(struct sp_admin **out, const struct sp_config *cfg, struct sp_log *log,
		   int argc, char *const argv[], const char *version, sp_admin_top_fn top,
		   void *top_ctx)
{
	struct sp_admin *a = calloc(1, sizeof(*a));
	int ret;

	*out = NULL;
	if (!a)
		return -ENOMEM;
	a->cfg = cfg;
	a->log = log;
	a->argc = argc;
	a->argv = argv;
	a->version = version;
	a->top = top;
	a->top_ctx = top_ctx;
	a->listen_fd = a->wake_fd = a->done_fd = a->quit_fd = -1;
	a->start_ns = mono_ns();
	pthread_mutex_init(&a->mu, NULL);
	sp_log_limit_init(&a->refuse_lim, REFUSE_LOG_RATE, REFUSE_LOG_RATE);
	ret = sp_admin_path(cfg, a->path, sizeof(a->path));
	if (ret) {
		SP_LOG(log, SP_LOG_ERROR, "admin socket path too long (set --admin-socket)",
		       SP_KV_UINT("max", SP_CONFIG_SOCKET_MAX - 1));
		goto fail;
	}
	a->nconns = cfg->admin_max_conns;
	a->conns = calloc(a->nconns, sizeof(*a->conns));
	a->secret = sodium_malloc(crypto_generichash_KEYBYTES);
	a->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	a->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	a->quit_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	ret = -ENOMEM;
	if (!a->conns || !a->secret)
		goto fail;
	ret = -EMFILE;
	if (a->wake_fd < 0 || a->done_fd < 0 || a->quit_fd < 0)
		goto fail;
	randombytes_buf(a->secret, crypto_generichash_KEYBYTES);
	sodium_mprotect_readonly(a->secret);
	for (uint32_t i = 0; i < a->nconns; i++) {
		a->conns[i].fd = -1;
		a->conns[i].in = malloc(cfg->admin_request_max + 1);
		a->conns[i].out = malloc(OUT_MAX);
		if (!a->conns[i].in || !a->conns[i].out) {
			ret = -ENOMEM;
			goto fail;
		}
	}
	ret = make_socket(a);
	if (ret)
		goto fail;
	ret = -pthread_create(&a->thread, NULL, admin_thread, a);
	if (ret)
		goto fail;
	a->running = true;
	*out = a;
	return 0;
fail:
	if (ret == -ENOMEM || ret == -EMFILE)
		SP_LOG(log, SP_LOG_ERROR, "cannot set up the admin socket",
		       SP_KV_STR("error", strerror(-ret)));
	destroy(a);
	return ret;
}

void sp_admin_stop(struct sp_admin *a)
{
	if (!a)
		return;
	if (a->running) {
		kick(a->quit_fd);
		pthread_join(a->thread, NULL);
	}
	destroy(a);
}
