/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_push_worker.c: the push thread (sp_push_worker.h).
 *
 * Why libcurl: HTTP/1.1 and HTTP/2 over TLS to any push service (FCM,
 * Mozilla autopush, Apple, UnifiedPush distributors), with connection
 * reuse, timeouts and its multi interface for many requests on one thread;
 * libcurl4-openssl-dev shares OpenSSL with sp_webpush.c.
 */
#include "sp_push_worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <sodium.h>

#include "sp_keytab.h"
#include "sp_webpush.h"

/* What a wake-up says, encrypted: nothing but "there is mail". */
static const char wake_payload[] = "{\"type\":\"mail\"}";
/* RFC 8030 5.4: a newer wake-up replaces one the push service still holds. */
static const char wake_topic[] = "sealpost-mail";
enum { VAPID_EXP_S = 12 * 3600, HEADER_MAX = 2600 };

struct job {
	struct job *next;
	struct sp_push_worker *w;
	uint8_t device[SP_KEY_LEN];
	struct sp_push_sub sub;
	uint32_t attempts;
	uint64_t due_ms;
	CURL *easy;
	struct curl_slist *hdrs;
	uint8_t body[sizeof(wake_payload) + SP_WEBPUSH_OVERHEAD];
	size_t body_len;
	bool refused_addr;
};

struct sp_push_worker {
	struct sp_push_worker_config cfg;
	char subject[256], urgency[16];
	pthread_t thread;
	bool started;
	atomic_bool stop;
	int job_fd, res_fd;

	/* Shared with the loop, under mu. */
	pthread_mutex_t mu;
	struct job *in_head, *in_tail;  /* submitted, not yet seen by the thread */
	size_t count;                   /* submitted, pending or in flight */
	struct sp_keytab *devices;      /* devices with a job among count */
	struct sp_push_result *res;     /* outcomes for the loop */
	size_t nres, res_cap;

	/* The thread's own. */
	CURLM *multi;
	struct job *pending;            /* waiting to start (or for their retry) */
	struct job *running;            /* in the multi handle */
	uint32_t inflight;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void kick(int fd)
{
	uint64_t one = 1;
	ssize_t n = write(fd, &one, sizeof(one));

	(void)n;        /* a full counter is still readable: nothing is lost */
}

/* An outcome for the loop; final ones end the job's accounting. */
static void report(struct sp_push_worker *w, const struct job *j, enum sp_push_outcome o,
		   long status, bool timed_out, bool final)
{
	pthread_mutex_lock(&w->mu);
	if (w->nres == w->res_cap) {
		size_t ncap = w->res_cap ? w->res_cap * 2 : 64;
		struct sp_push_result *n = realloc(w->res, ncap * sizeof(*n));

		if (n) {
			w->res = n;
			w->res_cap = ncap;
		}
	}
	if (w->nres < w->res_cap) {
		struct sp_push_result *r = &w->res[w->nres++];

		memcpy(r->device, j->device, SP_KEY_LEN);
		r->outcome = o;
		r->http_status = status;
		r->timed_out = timed_out;
	}
	if (final) {
		uint64_t v;

		if (sp_keytab_lookup(w->devices, j->device, &v) == 0)
			sp_keytab_remove(w->devices, j->device, v);
		w->count--;
	}
	pthread_mutex_unlock(&w->mu);
	kick(w->res_fd);
}

static void job_free(struct job *j)
{
	if (j->easy)
		curl_easy_cleanup(j->easy);
	curl_slist_free_all(j->hdrs);
	sodium_memzero(j, sizeof(*j));
	free(j);
}

static curl_socket_t open_socket(void *ctx, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct job *j = ctx;

	(void)purpose;
	/* The address actually connected to, after DNS: a public name that
	 * resolves inside (or a redirect-free rebinding) is refused here. */
	if (!j->w->cfg.allow_private && sp_push_addr_private(&a->addr)) {
		j->refused_addr = true;
		return CURL_SOCKET_BAD;
	}
	return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

static size_t discard(char *p, size_t size, size_t n, void *ctx)
{
	(void)p;
	(void)ctx;
	return size * n;
}

static int add_header(struct curl_slist **l, const char *h)
{
	struct curl_slist *n = curl_slist_append(*l, h);

	if (!n)
		return -ENOMEM;
	*l = n;
	return 0;
}

/* A fresh message and token for this attempt, and its easy handle. */
static int job_prepare(struct sp_push_worker *w, struct job *j)
{
	char origin[SP_PUSH_ENDPOINT_WIRE_MAX + 1], auth[HEADER_MAX], line[HEADER_MAX + 32];
	struct timespec wall;
	int ret;

	ret = sp_webpush_encrypt(j->sub.p256dh, j->sub.auth, (const uint8_t *)wake_payload,
				 sizeof(wake_payload) - 1, j->body, sizeof(j->body), &j->body_len);
	if (ret)
		return ret;
	ret = sp_push_sub_origin(j->sub.endpoint, origin, sizeof(origin));
	if (ret)
		return ret;
	clock_gettime(CLOCK_REALTIME, &wall);
	ret = sp_vapid_header(w->cfg.vapid, origin, (uint64_t)wall.tv_sec + VAPID_EXP_S,
			      w->subject, auth, sizeof(auth));
	if (ret)
		return ret;
	curl_slist_free_all(j->hdrs);
	j->hdrs = NULL;
	snprintf(line, sizeof(line), "Authorization: %s", auth);
	ret = add_header(&j->hdrs, line);
	snprintf(line, sizeof(line), "TTL: %u", (unsigned)w->cfg.ttl_s);
	ret = ret ? ret : add_header(&j->hdrs, line);
	snprintf(line, sizeof(line), "Urgency: %s", w->urgency);
	ret = ret ? ret : add_header(&j->hdrs, line);
	snprintf(line, sizeof(line), "Topic: %s", wake_topic);
	ret = ret ? ret : add_header(&j->hdrs, line);
	ret = ret ? ret : add_header(&j->hdrs, "Content-Encoding: aes128gcm");
	ret = ret ? ret : add_header(&j->hdrs, "Content-Type: application/octet-stream");
	ret = ret ? ret : add_header(&j->hdrs, "Expect:");
	if (ret)
		return ret;
	j->easy = curl_easy_init();
	if (!j->easy)
		return -ENOMEM;
	j->refused_addr = false;
	curl_easy_setopt(j->easy, CURLOPT_URL, j->sub.endpoint);
	curl_easy_setopt(j->easy, CURLOPT_POST, 1L);
	curl_easy_setopt(j->easy, CURLOPT_POSTFIELDS, (const char *)j->body);
	curl_easy_setopt(j->easy, CURLOPT_POSTFIELDSIZE, (long)j->body_len);
	curl_easy_setopt(j->easy, CURLOPT_HTTPHEADER, j->hdrs);
	curl_easy_setopt(j->easy, CURLOPT_TIMEOUT_MS, (long)w->cfg.timeout_ms);
	curl_easy_setopt(j->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)w->cfg.timeout_ms);
	curl_easy_setopt(j->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(j->easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(j->easy, CURLOPT_PROXY, "");   /* never a proxy from the environment */
	curl_easy_setopt(j->easy, CURLOPT_PROTOCOLS_STR, w->cfg.allow_private ? "http,https"
									 : "https");
	curl_easy_setopt(j->easy, CURLOPT_OPENSOCKETFUNCTION, open_socket);
	curl_easy_setopt(j->easy, CURLOPT_OPENSOCKETDATA, j);
	curl_easy_setopt(j->easy, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(j->easy, CURLOPT_USERAGENT, "sealpostd");
	curl_easy_setopt(j->easy, CURLOPT_PRIVATE, j);
	return 0;
}

static void start_due(struct sp_push_worker *w)
{
	uint64_t now = now_ms();
	struct job **pp = &w->pending;

	while (*pp && w->inflight < w->cfg.concurrency) {
		struct job *j = *pp;

		if (j->due_ms > now) {
			pp = &j->next;
			continue;
		}
		*pp = j->next;
		j->next = NULL;
		if (job_prepare(w, j) || curl_multi_add_handle(w->multi, j->easy) != CURLM_OK) {
			report(w, j, SP_PUSH_FAILED, 0, false, true);
			job_free(j);
			continue;
		}
		w->inflight++;
		j->next = w->running;
		w->running = j;
	}
}

static void unlink_running(struct sp_push_worker *w, struct job *j)
{
	for (struct job **pp = &w->running; *pp; pp = &(*pp)->next) {
		if (*pp == j) {
			*pp = j->next;
			j->next = NULL;
			return;
		}
	}
}

static void finish(struct sp_push_worker *w, struct job *j, CURLcode rc)
{
	long code = 0;
	curl_off_t retry_after = 0;
	bool transient, timed_out = rc == CURLE_OPERATION_TIMEDOUT;

	curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_getinfo(j->easy, CURLINFO_RETRY_AFTER, &retry_after);
	curl_multi_remove_handle(w->multi, j->easy);
	curl_easy_cleanup(j->easy);
	j->easy = NULL;
	unlink_running(w, j);
	w->inflight--;
	if (j->refused_addr) {
		report(w, j, SP_PUSH_REFUSED_ADDRESS, 0, false, true);
		job_free(j);
		return;
	}
	if (rc == CURLE_OK && code >= 200 && code < 300) {
		report(w, j, SP_PUSH_SENT, code, false, true);
		job_free(j);
		return;
	}
	if (rc == CURLE_OK && (code == 404 || code == 410)) {
		report(w, j, SP_PUSH_GONE, code, false, true);
		job_free(j);
		return;
	}
	transient = rc != CURLE_OK || code == 429 || code >= 500;
	if (!transient || j->attempts >= w->cfg.retries) {
		report(w, j, SP_PUSH_FAILED, rc == CURLE_OK ? code : 0, timed_out, true);
		job_free(j);
		return;
	}
	/* Exponential back-off; a longer Retry-After (RFC 8030 8.4) wins. */
	uint64_t delay = (uint64_t)w->cfg.backoff_ms << (j->attempts < 30 ? j->attempts : 30);

	if (retry_after > 0 && (uint64_t)retry_after * 1000u > delay)
		delay = (uint64_t)retry_after * 1000u;
	if (delay > w->cfg.backoff_max_ms)
		delay = w->cfg.backoff_max_ms;
	j->attempts++;
	j->due_ms = now_ms() + delay;
	report(w, j, SP_PUSH_RETRIED, rc == CURLE_OK ? code : 0, timed_out, false);
	j->next = w->pending;
	w->pending = j;
}

/* Jobs submitted since the last look, onto the pending list. */
static void take_submitted(struct sp_push_worker *w)
{
	struct job *head;
	uint64_t v;
	ssize_t n = read(w->job_fd, &v, sizeof(v));

	(void)n;
	pthread_mutex_lock(&w->mu);
	head = w->in_head;
	w->in_head = w->in_tail = NULL;
	pthread_mutex_unlock(&w->mu);
	while (head) {
		struct job *j = head;

		head = j->next;
		j->next = w->pending;
		w->pending = j;
	}
}

static int poll_timeout(const struct sp_push_worker *w)
{
	uint64_t now = now_ms(), t = 1000;

	for (const struct job *j = w->pending; j; j = j->next) {
		if (w->inflight >= w->cfg.concurrency)
			break;
		if (j->due_ms <= now)
			return 0;
		if (j->due_ms - now < t)
			t = j->due_ms - now;
	}
	return (int)t;
}

static void *worker_main(void *arg)
{
	struct sp_push_worker *w = arg;
	struct curl_waitfd wfd;
	CURLMsg *msg;
	int running, left;

	while (!atomic_load(&w->stop)) {
		wfd.fd = w->job_fd;
		wfd.events = CURL_WAIT_POLLIN;
		wfd.revents = 0;
		curl_multi_poll(w->multi, &wfd, 1, poll_timeout(w), NULL);
		if (atomic_load(&w->stop))
			break;
		take_submitted(w);
		start_due(w);
		curl_multi_perform(w->multi, &running);
		while ((msg = curl_multi_info_read(w->multi, &left))) {
			struct job *j = NULL;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&j);
			if (j)
				finish(w, j, msg->data.result);
		}
		start_due(w);
	}
	return NULL;
}

int sp_push_worker_start(struct sp_push_worker **out, const struct sp_push_worker_config *cfg)
{
	struct sp_push_worker *w = calloc(1, sizeof(*w));
	int ret;

	*out = NULL;
	if (!w)
		return -ENOMEM;
	w->cfg = *cfg;
	snprintf(w->subject, sizeof(w->subject), "%s", cfg->subject ? cfg->subject : "");
	snprintf(w->urgency, sizeof(w->urgency), "%s", cfg->urgency ? cfg->urgency : "normal");
	w->cfg.subject = w->subject;
	w->cfg.urgency = w->urgency;
	if (w->cfg.concurrency == 0)
		w->cfg.concurrency = 1;
	pthread_mutex_init(&w->mu, NULL);
	w->job_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	w->res_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->job_fd < 0 || w->res_fd < 0) {
		ret = -errno;
		goto err;
	}
	ret = sp_keytab_create(&w->devices, 64);
	if (ret)
		goto err;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		ret = -EIO;
		goto err;
	}
	w->multi = curl_multi_init();
	if (!w->multi) {
		ret = -ENOMEM;
		goto err;
	}
	curl_multi_setopt(w->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)w->cfg.concurrency);
	ret = -pthread_create(&w->thread, NULL, worker_main, w);
	if (ret)
		goto err;
	w->started = true;
	*out = w;
	return 0;
err:
	sp_push_worker_stop(w);
	return ret;
}

static void free_list(struct job *j)
{
	while (j) {
		struct job *n = j->next;

		job_free(j);
		j = n;
	}
}

void sp_push_worker_stop(struct sp_push_worker *w)
{
	if (!w)
		return;
	if (w->started) {
		atomic_store(&w->stop, true);
		kick(w->job_fd);
		if (w->multi)
			curl_multi_wakeup(w->multi);
		pthread_join(w->thread, NULL);
	}
	if (w->multi) {
		/* Transfers in flight: out of the multi handle first. */
		for (struct job *j = w->running; j; j = j->next)
			curl_multi_remove_handle(w->multi, j->easy);
		free_list(w->running);
		curl_multi_cleanup(w->multi);
	}
	free_list(w->pending);
	free_list(w->in_head);
	if (w->devices)
		sp_keytab_destroy(w->devices);
	free(w->res);
	if (w->job_fd >= 0)
		close(w->job_fd);
	if (w->res_fd >= 0)
		close(w->res_fd);
	pthread_mutex_destroy(&w->mu);
	free(w);
}

int sp_push_worker_result_fd(const struct sp_push_worker *w)
{
	return w->res_fd;
}

int sp_push_worker_submit(struct sp_push_worker *w, const uint8_t device[SP_KEY_LEN],
			  const struct sp_push_sub *sub)
{
	struct job *j;
	uint64_t v;
	int ret = 0;

	pthread_mutex_lock(&w->mu);
	if (w->count >= w->cfg.queue_max)
		ret = -ENOBUFS;
	else if (sp_keytab_lookup(w->devices, device, &v) == 0)
		ret = -EALREADY;
	pthread_mutex_unlock(&w->mu);
	if (ret)
		return ret;
	/* Allocated outside the lock: the lock covers list and counters only. */
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->w = w;
	memcpy(j->device, device, SP_KEY_LEN);
	j->sub = *sub;
	pthread_mutex_lock(&w->mu);
	if (sp_keytab_insert(w->devices, device, 1, NULL) < 0) {
		pthread_mutex_unlock(&w->mu);
		free(j);
		return -ENOMEM;
	}
	w->count++;
	if (w->in_tail)
		w->in_tail->next = j;
	else
		w->in_head = j;
	w->in_tail = j;
	pthread_mutex_unlock(&w->mu);
	kick(w->job_fd);
	return 0;
}

size_t sp_push_worker_take(struct sp_push_worker *w, struct sp_push_result *out, size_t cap)
{
	size_t n;

	pthread_mutex_lock(&w->mu);
	n = w->nres < cap ? w->nres : cap;
	memcpy(out, w->res, n * sizeof(*out));
	memmove(w->res, w->res + n, (w->nres - n) * sizeof(*out));
	w->nres -= n;
	pthread_mutex_unlock(&w->mu);
	return n;
}
