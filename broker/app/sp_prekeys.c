/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_prekeys.c: PrekeyUpload, PrekeyFetch, PrekeyLow (sp_prekeys.h).
 */
#include "sp_prekeys.h"

#include <errno.h>
#include <string.h>

#include "sp_deliver.h"
#include "sp_lifecycle.h"
#include "sp_prekey.h"
#include "sp_sendlim.h"
#include "sp_store.h"

int sp_prekeys_init(struct sp_shard *sh)
{
	struct sp_sendlim_config sc = {
		.rate = sh->cfg->prekey_fetch_source_rate,
		.burst = sh->cfg->prekey_fetch_source_burst,
		.max_senders = sh->cfg->sender_table_max ? sh->cfg->sender_table_max : 1,
	};
	struct sp_sendlim_config dc = {
		.rate = sh->cfg->prekey_fetch_device_rate,
		.burst = sh->cfg->prekey_fetch_device_burst,
		.max_senders = sh->cfg->sender_table_max ? sh->cfg->sender_table_max : 1,
	};

	if (sp_sendlim_create(&sh->pk_src, &sc))
		return -ENOMEM;
	if (sp_sendlim_create(&sh->pk_dev, &dc)) {
		sp_sendlim_destroy(sh->pk_src);
		sh->pk_src = NULL;
		return -ENOMEM;
	}
	return 0;
}

void sp_prekeys_destroy(struct sp_shard *sh)
{
	sp_sendlim_destroy(sh->pk_src);
	sp_sendlim_destroy(sh->pk_dev);
	sh->pk_src = sh->pk_dev = NULL;
}

enum sp_status sp_prekeys_status_of(int prekey_err)
{
	switch (prekey_err) {
	case 0:
		return SP_STATUS_ACCEPTED;
	case -EMSGSIZE:
		return SP_STATUS_ERR_PREKEY_TOO_MANY;
	case -EPERM:
		return SP_STATUS_ERR_PREKEY_BAD_SIGNATURE;
	default: /* -EBADMSG, -EDOM */
		return SP_STATUS_ERR_PREKEY_MALFORMED;
	}
}

static enum sp_status upload_status(struct sp_shard *sh, struct sp_conn *c, const struct sp_frame *f,
				    uint32_t *count)
{
	struct sp_prekey_upload up;
	uint8_t spk[SP_PREKEY_REC_LEN];
	int ret;

	ret = sp_prekey_upload_decode(f->body, f->body_len, &up);
	if (ret == 0 && up.count > sh->cfg->prekey_upload_max)
		ret = -EMSGSIZE;
	/* Checked here too, although every client checks again: the broker
	 * must not keep (nor hand out) what no client would accept. */
	if (ret == 0)
		ret = sp_prekey_upload_verify(&up, c->s.peer);
	if (ret < 0)
		return sp_prekeys_status_of(ret);
	if (!sp_shard_store(sh))
		return SP_STATUS_ERR_INTERNAL;
	if (up.has_signed)
		sp_prekey_rec_put(spk, &up.spk);
	ret = sp_store_prekey_put(sp_shard_store(sh), c->s.peer, up.edkey, up.has_signed ? spk : NULL,
				  up.onetime, up.count, sh->cfg->prekey_stock_max, count);
	if (ret == -EXFULL)
		return SP_STATUS_ERR_PREKEY_TOO_MANY;
	return ret ? SP_STATUS_ERR_INTERNAL : SP_STATUS_ACCEPTED;
}

enum sp_close_reason sp_prekeys_upload(struct sp_shard *sh, struct sp_conn *c,
				       const struct sp_frame *f)
{
	struct sp_frame r;
	uint32_t count = 0;

	memset(&r, 0, sizeof(r));
	r.type = SP_FRAME_PREKEY_RESULT;
	r.u.prekey.client_id = f->u.prekey.client_id;
	r.u.prekey.status = upload_status(sh, c, f, &count);
	r.u.prekey.count = count;
	return sp_deliver_reply(sh, c, &r);
}

/* PrekeyLow to the device, wherever it runs (if it is online). */
static void tell_low(struct sp_shard *sh, const uint8_t dev[SP_KEY_LEN], uint32_t count)
{
	struct sp_frame f;

	memset(&f, 0, sizeof(f));
	f.type = SP_FRAME_PREKEY_LOW;
	f.u.prekey.count = count;
	sp_deliver_device(sh, dev, &f, NULL, 0, SP_CLOSE_NONE, NULL);
}

/* The fetching source's budget key: an authenticated connection's device
 * key; an anonymous one's 16-byte source key, zero-padded (as sp_anon). */
static void source_key(const struct sp_conn *c, uint8_t out[SP_KEY_LEN])
{
	if (c->s.has_peer) {
		memcpy(out, c->s.peer, SP_KEY_LEN);
		return;
	}
	memset(out, 0, SP_KEY_LEN);
	memcpy(out, c->source.key, SP_SOURCE_KEY_LEN);
}

static enum sp_status fetch_status(struct sp_shard *sh, struct sp_conn *c, const struct sp_frame *f,
				   uint8_t *body, size_t *body_len)
{
	const uint8_t *dev = f->u.prekey.device;
	struct sp_store_prekey_meta m;
	struct sp_prekey_bundle b;
	uint8_t otk[SP_PREKEY_REC_LEN], src[SP_KEY_LEN];
	bool has_otk = false;
	int ret;

	if (!f->u.prekey.device_ok || !sp_noise_key_valid(dev))
		return SP_STATUS_ERR_PREKEY_BAD_DEVICE;
	/* The source pays for every fetch; the device only for those that
	 * get this far, so a flood from one source cannot lock others out. */
	source_key(c, src);
	if (sp_sendlim_take(sh->pk_src, src, 0, sh->wall_ms) < 0 ||
	    sp_sendlim_take(sh->pk_dev, dev, 0, sh->wall_ms) < 0)
		return SP_STATUS_ERR_PREKEY_RATE_LIMITED;
	if (!sp_shard_store(sh))
		return SP_STATUS_ERR_INTERNAL;
	ret = sp_store_prekey_take(sp_shard_store(sh), dev, &m, otk, &has_otk);
	if (ret == -ENOENT)
		return SP_STATUS_ERR_PREKEY_NONE;
	if (ret < 0)
		return SP_STATUS_ERR_INTERNAL;
	memset(&b, 0, sizeof(b));
	memcpy(b.device, dev, SP_KEY_LEN);
	memcpy(b.edkey, m.edkey, SP_KEY_LEN);
	/* Records as uploaded (verified then); a corrupt one is sent as it is
	 * and the client refuses it, as it would a forged one. */
	if (sp_prekey_rec_get(m.spk, &b.spk) < 0 ||
	    (has_otk && sp_prekey_rec_get(otk, &b.otk) < 0))
		return SP_STATUS_ERR_INTERNAL;
	b.has_onetime = has_otk;
	if (sp_prekey_bundle_encode(&b, body, SP_PREKEY_BUNDLE_MAX, body_len) < 0)
		return SP_STATUS_ERR_INTERNAL;
	/* Each take below the mark tells the owner again: the count it sees
	 * is what is left, and a lost PrekeyLow costs nothing but a repeat. */
	if (has_otk && m.count < sh->cfg->prekey_low)
		tell_low(sh, dev, m.count);
	return SP_STATUS_ACCEPTED;
}

enum sp_close_reason sp_prekeys_fetch(struct sp_shard *sh, struct sp_conn *c,
				      const struct sp_frame *f)
{
	uint8_t body[SP_PREKEY_BUNDLE_MAX];
	size_t body_len = 0;
	struct sp_frame r;
	int ret;

	memset(&r, 0, sizeof(r));
	r.type = SP_FRAME_PREKEY_BUNDLE;
	r.u.prekey.client_id = f->u.prekey.client_id;
	r.u.prekey.status = fetch_status(sh, c, f, body, &body_len);
	memcpy(r.u.prekey.device, f->u.prekey.device, SP_KEY_LEN);
	if (r.u.prekey.status != SP_STATUS_ACCEPTED)
		body_len = 0;
	ret = sp_session_tx_frame(&c->s, &r, body, body_len);
	sp_conn_mark(sh, c);
	if (ret == -ENOMEM)
		return SP_CLOSE_NOMEM;
	return ret ? SP_CLOSE_INTERNAL : SP_CLOSE_NONE;
}

void sp_prekeys_connected(struct sp_shard *sh, struct sp_conn *c)
{
	struct sp_store_prekey_meta m;

	/* One point lookup per routed device (a bloom-filter miss for the
	 * devices that never uploaded); none when PrekeyLow is off. */
	if (!sp_shard_store(sh) || !sh->cfg->prekey_low || !c->s.has_peer)
		return;
	if (sp_store_prekey_meta_get(sp_shard_store(sh), c->s.peer, &m) == 0 && m.has_signed &&
	    m.count < sh->cfg->prekey_low)
		tell_low(sh, c->s.peer, m.count);
}
