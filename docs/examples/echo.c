/* SPDX-License-Identifier: Apache-2.0 */
/*
 * echo.c: the smallest complete libsealpost program.
 *
 * Creates a throw-away device key, connects to a broker, seals a message for
 * its own public key (sending to yourself is allowed), and waits until the
 * broker hands it back: the result of the send, then the message itself,
 * opened, with its proven sender.
 *
 *   cc echo.c $(pkg-config --cflags --libs sealpost) -o echo
 *   ./echo 127.0.0.1:7400 "$(cat data/server.pub)" "hello"
 *
 * Without the server key (pass "-") it uses the XX handshake and prints the
 * key it learned, which you would then pin.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <sealpost.h>

int main(int argc, char **argv)
{
	const char *server, *message;
	uint8_t server_key[SEALPOST_KEY_LEN], me[SEALPOST_KEY_LEN], learned[SEALPOST_KEY_LEN];
	char hex[SEALPOST_KEY_HEX_LEN + 1];
	struct sealpost_key *key = NULL;
	struct sealpost_client *c = NULL;
	struct sealpost_event ev;
	uint64_t id;
	int r, ret = 1, delivered = 0, echoed = 0;

	if (argc != 4) {
		fprintf(stderr, "usage: %s HOST:PORT SERVER_KEY_HEX|- MESSAGE\n", argv[0]);
		return 2;
	}
	server = argv[1];
	message = argv[3];
	if (strcmp(argv[2], "-") != 0 && sealpost_key_from_hex(server_key, argv[2]) < 0) {
		fprintf(stderr, "echo: bad server key\n");
		return 2;
	}

	r = sealpost_key_generate(&key);
	if (r < 0)
		goto out;
	/* IK with a known server key, XX (NULL) otherwise; 10 s for both. */
	r = sealpost_client_connect(&c, server, key, strcmp(argv[2], "-") ? server_key : NULL,
				    10000);
	if (r < 0) {
		fprintf(stderr, "echo: connect: %s\n", strerror(-r));
		goto out;
	}
	sealpost_client_server_key(c, learned);
	sealpost_key_to_hex(learned, hex);
	printf("server key %s\n", hex);

	sealpost_key_public(key, me);
	r = sealpost_client_send(c, me, message, strlen(message), &id);
	if (r < 0) {
		fprintf(stderr, "echo: send: %s\n", strerror(-r));
		goto out;
	}
	/* next_event flushes the queued send, then returns events as they come. */
	while (!(delivered && echoed)) {
		r = sealpost_client_next_event(c, &ev, 10000);
		if (r == 0) {
			fprintf(stderr, "echo: timed out\n");
			goto out;
		}
		if (r < 0)
			goto out;
		switch (ev.type) {
		case SEALPOST_EVENT_RESULT:
			/* ACCEPTED: stored in our own mailbox and delivered live. */
			if (ev.client_id == id && ev.status != SEALPOST_STATUS_ACCEPTED) {
				fprintf(stderr, "echo: %s\n", sealpost_status_string(ev.status));
				goto out;
			}
			delivered = 1;
			break;
		case SEALPOST_EVENT_MESSAGE:
			/* ev.data is ours only until the next call on c. */
			if (memcmp(ev.sender, me, SEALPOST_KEY_LEN) != 0)
				break;
			printf("echo: %.*s\n", (int)ev.len, (const char *)ev.data);
			echoed = 1;
			break;
		case SEALPOST_EVENT_CLOSED:
			fprintf(stderr, "echo: connection closed\n");
			goto out;
		default:
			break;
		}
	}
	ret = 0;
out:
	sealpost_client_close(c);     /* wipes the session keys; NULL is fine */
	sealpost_key_free(key);
	return ret;
}
