/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_registration.c: the registration policy (sp_registration.h).
 *
 * Checked once per connection, on the handshake's last message, before the
 * device is routed: so a refused device gets no route, no mailbox, no push
 * state, nothing stored. Registered devices cost one point lookup per
 * connection (two if they are not enrolled but listed); only an enrolment
 * writes (one synced write, like a published list: rare and final).
 *
 * Why here and not at the IK proof: an IK message 1 can be replayed, but a
 * replay carries the same device key, sealed inside the handshake with the
 * token, so it can only register the device the token was given to; the
 * replayer gets a GoAway it cannot read, or nothing.
 */
#include "sp_registration.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "sp_conn.h"
#include "sp_keyfile.h"
#include "sp_log.h"
#include "sp_store.h"

_Static_assert((int)SP_STORE_TOKEN_ID_LEN == (int)SP_ENROL_ID_LEN, "token ids");

int sp_registration_key_path(const char *data_dir, char *path, size_t cap)
{
	int n = snprintf(path, cap, "%s/enrol.key", data_dir);

	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

int sp_registration_key_load(const char *data_dir, uint8_t key[SP_ENROL_KEY_LEN], bool *created)
{
	char path[SP_CONFIG_PATH_MAX + 16];
	int ret = sp_registration_key_path(data_dir, path, sizeof(path));

	_Static_assert((int)SP_ENROL_KEY_LEN == (int)SP_KEY_LEN, "the key file holds 32 bytes");
	if (created)
		*created = false;
	if (ret)
		return ret;
	ret = sp_keyfile_read_private(path, key);
	if (ret != -ENOENT)
		return ret;
	sp_enrol_keygen(key);
	ret = sp_keyfile_write_private(path, key);
	if (ret == -EEXIST)   /* another sealpostd or mint-token made it first */
		return sp_keyfile_read_private(path, key);
	if (ret) {
		sodium_memzero(key, SP_ENROL_KEY_LEN);
		return ret;
	}
	if (created)
		*created = true;
	return 0;
}

/* Registered: enrolled, or on a stored account list (linked by a device
 * that holds the account key: PROTOCOL.md 15). 1, 0, or a negative errno. */
static int known(struct sp_shard *sh, const uint8_t *dev, enum sp_metrics_enrol *how)
{
	uint8_t account[SP_ACCOUNT_LEN];
	int r = sp_store_device_registered(sp_shard_store(sh), dev);

	if (r == 0) {
		*how = SP_METRICS_ENROL_REGISTERED;
		return 1;
	}
	if (r != -ENOENT)
		return r;
	r = sp_store_device_account(sp_shard_store(sh), dev, account);
	if (r == 0) {
		*how = SP_METRICS_ENROL_LISTED;
		return 1;
	}
	return r == -ENOENT ? 0 : r;
}

static enum sp_close_reason check(struct sp_shard *sh, struct sp_conn *c, const struct sp_hello *h);

enum sp_close_reason sp_registration_check(void *ctx, struct sp_conn *c, const struct sp_hello *h)
{
	enum sp_close_reason r = check(ctx, c, h);

	/* IK, not proven yet: the refusal waits for the proof, which the
	 * client sends right after message 2. Closed before it arrives, the
	 * socket would have unread input, and the kernel's reset would race
	 * (and often destroy) the GoAway in the client's receive queue. */
	c->enrol.refuse = 0;
	if (r != SP_CLOSE_NONE && r != SP_CLOSE_INTERNAL && !c->s.proven) {
		c->enrol.refuse = (uint8_t)r;
		return SP_CLOSE_NONE;
	}
	return r;
}

void sp_registration_adopt(struct sp_conn *c, uint8_t refuse)
{
	c->enrol.refuse = refuse;
}

enum sp_close_reason sp_registration_proven(struct sp_conn *c)
{
	return (enum sp_close_reason)c->enrol.refuse;
}

static enum sp_close_reason check(struct sp_shard *sh, struct sp_conn *c, const struct sp_hello *h)
{
	enum sp_metrics_enrol how = SP_METRICS_ENROL_INTERNAL;
	uint8_t id[SP_ENROL_ID_LEN];
	uint64_t expires = 0;
	int r;

	if (sh->cfg->registration != SP_REGISTRATION_TOKEN || !c->s.has_peer)
		return SP_CLOSE_NONE;
	if (!sp_shard_store(sh)) {
		sp_metrics_enrol(sh->metrics, SP_METRICS_ENROL_INTERNAL);
		return SP_CLOSE_INTERNAL;
	}
	r = known(sh, c->s.peer, &how);
	if (r == 1) {
		/* a token it sent anyway stays unused */
		sp_metrics_enrol(sh->metrics, how);
		return SP_CLOSE_NONE;
	}
	if (r < 0)
		goto internal;
	if (!h->enrol_token_len) {
		sp_metrics_enrol(sh->metrics, SP_METRICS_ENROL_REQUIRED);
		return SP_CLOSE_ENROL_REQUIRED;
	}
	r = sh->enrol_key ? sp_enrol_verify(sh->enrol_key, h->enrol_token, h->enrol_token_len,
					    sh->wall_ms, id, &expires)
			  : -EKEYREJECTED;
	if (r) {
		sp_metrics_enrol(sh->metrics, r == -ETIME	   ? SP_METRICS_ENROL_EXPIRED
					      : r == -EBADMSG ? SP_METRICS_ENROL_MALFORMED
							      : SP_METRICS_ENROL_BAD_MAC);
		return SP_CLOSE_ENROL_BAD_TOKEN;
	}
	r = sp_store_enrol(sp_shard_store(sh), c->s.peer, id, expires);
	sodium_memzero(id, sizeof(id));
	if (r == -EALREADY) {
		sp_metrics_enrol(sh->metrics, SP_METRICS_ENROL_REPLAYED);
		return SP_CLOSE_ENROL_TOKEN_USED;
	}
	if (r)
		goto internal;
	sp_metrics_enrol(sh->metrics, SP_METRICS_ENROL_ENROLLED);
	SP_LOG(sh->log, SP_LOG_INFO, "device enrolled", SP_KV_UINT("conn", c->tab.slot));
	return SP_CLOSE_NONE;
internal:
	sp_metrics_enrol(sh->metrics, SP_METRICS_ENROL_INTERNAL);
	SP_LOG(sh->log, SP_LOG_ERROR, "registration check failed",
	       SP_KV_STR("error", strerror(-r)), SP_KV_STR("detail", sp_store_errmsg(sp_shard_store(sh))));
	return SP_CLOSE_INTERNAL;
}
