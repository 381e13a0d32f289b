/* SPDX-License-Identifier: Apache-2.0 */
/*
 * support_shard.h: a detached shard (broker/loop/sp_detached.h) with a real
 * mailbox store in a temporary directory, and devices that talk to it with
 * real protocol bytes: an IK handshake built from the crypto layer, frames
 * encrypted into transport messages and fed as receive completions, and
 * every byte the shard hands to "the socket" decrypted and decoded into
 * events the test reads in order.
 *
 * The test plays the event loop: sps_begin, feeds, sps_end. The clock is
 * the test's (sps.now_ns, sps.wall_ms), moved only when the test moves it.
 * Failures of the harness itself (not of the code under test) abort the
 * test through cmocka's fail_msg.
 */
#ifndef SUPPORT_SHARD_H
#define SUPPORT_SHARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sp_config.h"
#include "sp_frame.h"
#include "sp_log.h"
#include "sp_noise.h"
#include "sp_shard.h"
#include "sp_detached.h"

/* One decoded frame the broker sent to a device. */
struct sps_event {
	enum sp_frame_type type;
	uint64_t seq;                   /* Deliver, SendResult */
	uint64_t client_id;             /* SendResult */
	enum sp_status status;          /* SendResult; GoAway code */
	uint64_t count;                 /* Drained; FanoutResult: missing keys */
	uint64_t id;                    /* Pong */
	/* Deliver, FanoutResult (ListResult, ListChanged: client_id, status,
	 * seq = version, no body kept): a copy, owned by the event */
	uint8_t *body;
	size_t body_len;
	uint64_t msg;                   /* index of the transport message it came in */
};

/* A device: its keys, its side of the Noise session, and what it received. */
struct sps_dev {
	uint8_t priv[SP_KEY_LEN], pub[SP_KEY_LEN];
	struct sp_noise_handshake hs;
	struct sp_noise_transport t;
	struct sp_conn *c;              /* its broker connection, NULL if none */
	uint32_t slot, gen;
	bool taking;                    /* false: its output stays queued (a stalled reader) */
	/* Set by the test: the broker may end the connection for what this
	 * device sends (the reason is in refused) instead of failing the test. */
	bool may_refuse;
	enum sp_close_reason refused;
	uint8_t out[SP_TRANSPORT_PLAINTEXT_MAX]; /* frames to send in the next message */
	size_t out_len;
	uint8_t *in;                    /* received bytes not yet decoded */
	size_t in_len, in_cap;
	struct sps_event *ev;
	size_t nev, ev_cap, ev_next;
	uint64_t msgs;                  /* transport messages received */
};

struct sps {
	char dir[64];
	struct sp_config cfg;           /* set before sps_start; borrowed by sh */
	struct sp_log log;
	int log_fd;
	struct sp_shard sh;
	struct sp_store *store;
	uint8_t *server_priv;           /* sodium_malloc */
	uint8_t server_pub[SP_KEY_LEN];
	uint64_t now_ns, wall_ms;       /* the iteration clock the test steps */
	struct sps_dev *devs[16];
	size_t ndevs;
	bool no_store;                  /* set before sps_start: a shard without mailboxes */
	bool started, in_iteration;
};

/*
 * What the broker counted, read where it keeps each count: the shard's
 * metrics slot (what /metrics shows; envelopes and results are counted at
 * the end of the iteration) and the store's statistics. Zero for what a
 * shard without a store does not count.
 */
struct sps_counts {
	uint64_t delivered_live;        /* Deliver frames routed straight through */
	uint64_t delivered_mailbox;     /* Deliver frames read back from the store */
	uint64_t accepted;              /* SendResults DELIVERED or ACCEPTED */
	uint64_t refused_internal;      /* SendResults ERR_INTERNAL */
	uint64_t refused_mailbox_full;  /* SendResults ERR_MAILBOX_FULL */
	uint64_t refused_rate_limited;  /* SendResults ERR_RATE_LIMITED */
	uint64_t acks;                  /* seqs acknowledged and removed */
	uint64_t expired;               /* mailbox entries expired */
	/* the store's */
	uint64_t acks_unknown;          /* acked seqs not in the mailbox */
	uint64_t duplicates;            /* retries answered with the original seq */
	uint64_t commits, commit_failures;
};
struct sps_counts sps_counts(const struct sps *t);
/* Connections ended for r (sealpost_connections_closed_total{reason}). */
uint64_t sps_closed(const struct sps *t, enum sp_close_reason r);

/* Creates the directory and the default configuration (mailboxes on, fsync
 * never: durability is not what these tests look at). */
void sps_init(struct sps *t);
/* Opens the store under dir/mailbox and the detached shard with t->cfg. */
void sps_start(struct sps *t);
/* The broker stops and starts again (same key, same directory): every
 * connection is gone (each device's c is NULL), the store is reopened. */
void sps_restart(struct sps *t);
/* Frees the devices, the shard and the store; removes the directory. */
void sps_fini(struct sps *t);

/* A device with a fresh key pair (owned by t). */
struct sps_dev *sps_dev_new(struct sps *t);
/* Another device with the same key as d: the same device connecting twice. */
struct sps_dev *sps_dev_same(struct sps *t, const struct sps_dev *d);

/* IK handshake (one iteration for message 1, whose output is message 2) and
 * the proof: a first transport message with Ping{id} plus whatever frames
 * d has queued, in a second iteration. Returns that iteration's
 * sps_end result. The backlog and Drained come in that second iteration. */
int sps_connect(struct sps *t, struct sps_dev *d, uint64_t ping_id);
/* The peer's TCP connection closes (EOF), in an iteration of its own. */
int sps_disconnect(struct sps *t, struct sps_dev *d);

/* Frames queued into d's next transport message. */
void sps_send(struct sps_dev *d, const uint8_t to[SP_KEY_LEN], uint64_t client_id,
	      uint32_t flags, const uint8_t *body, size_t body_len);
void sps_ack(struct sps_dev *d, const uint64_t *seqs, uint32_t n);
/* Any frame (body: borrowed, copied) into d's next message. */
void sps_frame(struct sps_dev *d, const struct sp_frame *f, const uint8_t *body, size_t len);
void sps_ping(struct sps_dev *d, uint64_t id);

/* The loop: begin an iteration at (now_ns, wall_ms); feed d's queued frames
 * as one transport message in one receive completion; end the iteration
 * (commit, results, readers, seal, take). sps_end returns what
 * sp_shard_end_iteration returned. */
void sps_begin(struct sps *t);
void sps_feed(struct sps *t, struct sps_dev *d);
int sps_end(struct sps *t);
/* begin, feed d (if any), end. */
int sps_round(struct sps *t, struct sps_dev *d);

/* The next event d has not read yet, or NULL. */
const struct sps_event *sps_next(struct sps_dev *d);
/* Events d has not read yet. */
size_t sps_unread(const struct sps_dev *d);
/* Reads the next event and checks its type (fails the test otherwise). */
const struct sps_event *sps_expect(struct sps_dev *d, enum sp_frame_type type);

/* A body of len bytes derived from tag, and whether b is that body. */
void sps_body(uint8_t *b, size_t len, uint64_t tag);
bool sps_body_is(const struct sps_event *e, size_t len, uint64_t tag);

#endif
