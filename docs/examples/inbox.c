/* SPDX-License-Identifier: Apache-2.0 */
/*
 * inbox.c: fetch a device's mailbox with manual acknowledgements.
 *
 * Connects as the device in KEYFILE, prints every message that waited in
 * its mailbox (oldest first), acknowledging each one only after it has
 * been written out (a real app would acknowledge after committing it to
 * its own storage), stops at the end of the backlog, and makes sure the
 * broker has processed the acknowledgements before it disconnects.
 *
 *   cc inbox.c $(pkg-config --cflags --libs sealpost) -o inbox
 *   ./inbox 127.0.0.1:7400 "$(cat data/server.pub)" bob.key
 *
 * What was printed is gone from the mailbox; run it twice and the second
 * run prints only "drained 0". A message printed just before a crash would
 * come again next time (at-least-once): the seq printed lets you notice.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <sealpost.h>

int main(int argc, char **argv)
{
	struct sealpost_connect_opts opts = SEALPOST_CONNECT_OPTS_INIT;
	uint8_t server_key[SEALPOST_KEY_LEN];
	char hex[SEALPOST_KEY_HEX_LEN + 1];
	struct sealpost_key *key = NULL;
	struct sealpost_client *c = NULL;
	struct sealpost_event ev;
	int r, ret = 1;

	if (argc != 4) {
		fprintf(stderr, "usage: %s HOST:PORT SERVER_KEY_HEX KEYFILE\n", argv[0]);
		return 2;
	}
	if (sealpost_key_from_hex(server_key, argv[2]) < 0) {
		fprintf(stderr, "inbox: bad server key\n");
		return 2;
	}
	r = sealpost_key_load(&key, argv[3]);
	if (r < 0) {
		fprintf(stderr, "inbox: %s: %s\n", argv[3], strerror(-r));
		return 2;
	}
	opts.flags = SEALPOST_CONNECT_MANUAL_ACK;
	r = sealpost_client_connect_opts(&c, argv[1], key, server_key, 10000, &opts);
	if (r < 0) {
		fprintf(stderr, "inbox: connect: %s\n", strerror(-r));
		goto out;
	}
	for (;;) {
		r = sealpost_client_next_event(c, &ev, 10000);
		if (r <= 0) {
			fprintf(stderr, "inbox: %s\n", r == 0 ? "timed out" : strerror(-r));
			goto out;
		}
		if (ev.type == SEALPOST_EVENT_DRAINED) {
			printf("drained %llu\n", (unsigned long long)ev.count);
			break;
		}
		if (ev.type == SEALPOST_EVENT_CLOSED) {
			fprintf(stderr, "inbox: connection closed\n");
			goto out;
		}
		if (ev.type != SEALPOST_EVENT_MESSAGE && ev.type != SEALPOST_EVENT_BAD_ENVELOPE)
			continue;
		if (ev.type == SEALPOST_EVENT_MESSAGE) {
			sealpost_key_to_hex(ev.sender, hex);
			printf("seq %llu from %s: %.*s\n", (unsigned long long)ev.seq, hex,
			       (int)ev.len, (const char *)ev.data);
		}
		/* Safe on our side first, then acknowledged (a seal that does not
		 * open never will: acknowledge it too, or it comes back forever). */
		if (fflush(stdout) != 0)
			goto out;
		r = sealpost_client_ack(c, ev.seq);
		if (r < 0)
			goto out;
	}
	/* Acks are queued; wait until the broker has processed them. */
	r = sealpost_client_sync(c, 10000);
	if (r < 0) {
		fprintf(stderr, "inbox: acknowledgements not confirmed: %s\n", strerror(-r));
		goto out;
	}
	ret = 0;
out:
	sealpost_client_close(c);
	sealpost_key_free(key);
	return ret;
}
