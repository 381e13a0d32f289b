/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_ws.c: what a peer of the WebSocket listener sends, through the code
 * sealpostd runs for it: the upgrade request parser (loop/sp_ws_upgrade.c)
 * alone, then a whole connection on the detached shard (loop/sp_ws.c over
 * wslay, the session behind it, the lifecycle's ends): the request, frames
 * of every opcode, fragments, pings, closes, oversized announcements, and
 * whatever the binary payload carries into the session.
 *
 * Input: byte 0 picks the receive size (byte + 1: 1..256 bytes per
 * receive, so requests and frames are cut everywhere); the rest is the
 * byte stream from the client. Small bounds (ws-upgrade-max 512, the
 * smallest ws-max-message) so the fuzzer reaches them.
 *
 * Oracle: nothing crashes or leaks (ASan, UBSan); a parse that succeeds
 * consumed no more than it was given and made a 28-character accept value;
 * whatever the broker sends parses as server frames (unmasked, lengths
 * within the buffer) after an HTTP status line; at the end the connection
 * closes and its slot is freed.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "sp_conn.h"
#include "sp_conn_table.h"
#include "sp_detached.h"
#include "sp_lifecycle.h"
#include "sp_noise.h"
#include "sp_ws.h"
#include "sp_ws_upgrade.h"

static struct {
	bool ready;
	struct sp_config cfg;
	struct sp_log log;
	struct sp_shard sh;
	uint8_t *server_priv;
	bool http_seen;                 /* the status line came */
	uint8_t out[1 << 17];           /* the broker's bytes so far, for the check */
	size_t out_len;
} F;

static void check(int ok)
{
	if (!ok)
		abort();
}

static void setup(void)
{
	uint8_t pub[SP_KEY_LEN];

	check(sodium_init() >= 0);
	sp_config_defaults(&F.cfg);
	F.cfg.ws_upgrade_max = 512;
	F.cfg.ws_max_message = SP_CONFIG_WS_MAX_MESSAGE_MIN;
	F.cfg.max_conns = 4;
	snprintf(F.cfg.ws_allowed_origins, sizeof(F.cfg.ws_allowed_origins), "https://a.example");
	sp_log_init(&F.log, open("/dev/null", O_WRONLY | O_CLOEXEC), SP_LOG_ERROR);
	F.server_priv = sodium_malloc(SP_KEY_LEN);
	check(F.server_priv != NULL);
	sp_noise_keypair(pub, F.server_priv);
	check(sp_shard_init_detached(&F.sh, 0, &F.cfg, &F.log, F.server_priv) == 0);
	F.ready = true;
}

/* Server frames: FIN/RSV/opcode, a length without the mask bit. */
static void check_frames(void)
{
	size_t off = 0;
	const uint8_t *p = F.out;

	if (!F.http_seen) {
		const uint8_t *end = memmem(p, F.out_len, "\r\n\r\n", 4);

		if (!end)
			return;
		check(F.out_len >= 12 && memcmp(p, "HTTP/1.1 ", 9) == 0);
		off = (size_t)(end - p) + 4;
		F.http_seen = true;
		memmove(F.out, F.out + off, F.out_len - off);
		F.out_len -= off;
		off = 0;
	}
	while (F.out_len - off >= 2) {
		uint64_t n = p[off + 1] & 0x7f;
		size_t h = 2;

		check(!(p[off + 1] & 0x80));
		check((p[off] & 0x70) == 0);
		if (n == 126) {
			if (F.out_len - off < 4)
				break;
			n = (uint64_t)p[off + 2] << 8 | p[off + 3];
			h = 4;
		} else if (n == 127) {
			if (F.out_len - off < 10)
				break;
			n = 0;
			for (int i = 0; i < 8; i++)
				n = n << 8 | p[off + 2 + i];
			h = 10;
		}
		if (F.out_len - off - h < n)
			break;
		off += h + (size_t)n;
	}
	memmove(F.out, F.out + off, F.out_len - off);
	F.out_len -= off;
}

static void take(void *ctx, struct sp_conn *c)
{
	const uint8_t *p;
	size_t n;

	(void)ctx;
	if (!c->ws.t)
		return;
	while (sp_ws_tx_peek(&F.sh, c, &p, &n)) {
		if (n > sizeof(F.out) - F.out_len)
			n = sizeof(F.out) - F.out_len;
		memcpy(F.out + F.out_len, p, n);
		F.out_len += n;
		sp_ws_tx_sent(c, n);
		check_frames();
		if (F.out_len == sizeof(F.out))
			F.out_len = 0;  /* a frame larger than the buffer: stop checking it */
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sp_ws_upgrade up;
	struct sp_conn *c;
	uint32_t slot, gen;
	size_t chunk, off = 1;

	if (!F.ready)
		setup();
	if (size < 1)
		return 0;
	chunk = (size_t)data[0] + 1;
	memset(&up, 0, sizeof(up));
	if (sp_ws_upgrade_parse(data + 1, size - 1, 512, "https://a.example", &up) == SP_WS_UP_OK)
		check(up.consumed <= size - 1 && strlen(up.accept) == SP_WS_ACCEPT_LEN);

	F.http_seen = false;
	F.out_len = 0;
	sp_shard_begin_iteration(&F.sh);
	c = sp_shard_conn_add(&F.sh);
	check(c != NULL);
	slot = c->tab.slot;
	gen = c->tab.gen;
	check(sp_ws_attach(&F.sh, c) == 0);
	while (off < size && sp_conn_at(&F.sh, slot, gen) && c->s.state != SP_SESSION_DEAD) {
		size_t n = size - off < chunk ? size - off : chunk;
		uint8_t buf[256];
		enum sp_close_reason r;

		memcpy(buf, data + off, n);
		sp_shard_begin_iteration(&F.sh);
		r = sp_ws_rx(&F.sh, c, buf, n);
		if (r)
			sp_life_rx_failed(&F.sh, c, r);
		sp_shard_end_iteration(&F.sh, 1, take, NULL);
		off += n;
	}
	/* The peer goes away: the slot must come back. */
	if (sp_conn_at(&F.sh, slot, gen)) {
		sp_shard_begin_iteration(&F.sh);
		sp_shard_conn_eof(&F.sh, c);
		sp_shard_end_iteration(&F.sh, 1, take, NULL);
	}
	check(sp_conn_at(&F.sh, slot, gen) == NULL);
	check(F.sh.nconns == 0);
	return 0;
}
