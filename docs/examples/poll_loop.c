/* SPDX-License-Identifier: Apache-2.0 */
/*
 * poll_loop.c: libsealpost in an event loop that owns the socket.
 *
 * The library does no I/O here: the program opens its own non-blocking TCP
 * socket and runs its own poll() loop; it hands the library what it
 * receives (sealpost_client_feed) and sends what the library gives it
 * (sealpost_client_take_output, sealpost_client_output_consumed). The same
 * shape fits any loop or transport: libuv, a language runtime, TLS.
 *
 * It sends a message to its own key and waits for it to come back.
 *
 *   cc poll_loop.c $(pkg-config --cflags --libs sealpost) -o poll_loop
 *   ./poll_loop 127.0.0.1 7400 "$(cat data/server.pub)" "hello"
 *
 * The server key may be "-" (XX: the key is learned, printed, to be pinned).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sealpost.h>

/* A non-blocking TCP connect to ip:port; the fd, or -1. */
static int tcp_start(const char *ip, const char *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	int fd;

	sa.sin_port = htons((uint16_t)atoi(port));
	if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1)
		return -1;
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Writes what the library has to send, as far as the socket takes it. */
static int write_out(struct sealpost_client *c, int fd)
{
	const uint8_t *p;
	size_t len;

	while (sealpost_client_take_output(c, &p, &len) == 1) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
		sealpost_client_output_consumed(c, (size_t)n);
	}
	return 0;
}

int main(int argc, char **argv)
{
	uint8_t server_key[SEALPOST_KEY_LEN], me[SEALPOST_KEY_LEN], learned[SEALPOST_KEY_LEN];
	char hex[SEALPOST_KEY_HEX_LEN + 1];
	struct sealpost_key *key = NULL;
	struct sealpost_client *c = NULL;
	struct sealpost_event ev;
	uint8_t buf[16384];
	const char *message;
	uint64_t id = 0;
	int fd = -1, r, ret = 1, done = 0, sent = 0, got_result = 0, got_message = 0;

	if (argc != 5) {
		fprintf(stderr, "usage: %s IPV4 PORT SERVER_KEY_HEX|- MESSAGE\n", argv[0]);
		return 2;
	}
	message = argv[4];
	if (strcmp(argv[3], "-") != 0 && sealpost_key_from_hex(server_key, argv[3]) < 0) {
		fprintf(stderr, "poll_loop: bad server key\n");
		return 2;
	}
	r = sealpost_key_generate(&key);
	if (r < 0)
		goto out;
	sealpost_key_public(key, me);
	/* No socket inside: the handshake's first bytes are queued at once. */
	r = sealpost_client_new(&c, key, strcmp(argv[3], "-") ? server_key : NULL, NULL);
	if (r < 0)
		goto out;
	fd = tcp_start(argv[1], argv[2]);
	if (fd < 0) {
		r = -errno;
		goto out;
	}

	while (!done) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		const uint8_t *unused;
		size_t pending;

		/* POLLOUT only while there is something to write (the TCP connect
		 * finishing counts: it makes the socket writable). */
		if (sealpost_client_take_output(c, &unused, &pending) == 1)
			p.events |= POLLOUT;
		/* The library's timers (keepalive) bound the wait. */
		r = poll(&p, 1, sealpost_client_timeout(c));
		if (r < 0 && errno != EINTR)
			goto out;
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = recv(fd, buf, sizeof(buf), 0);

			if (n > 0) {
				sealpost_client_feed(c, buf, (size_t)n);
			} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
				/* Transport gone: the client says why in an event. */
				sealpost_client_feed_eof(c, n == 0 ? 0 : -errno);
			}
		}
		sealpost_client_step(c);               /* timers */
		while (!done && sealpost_client_next_event(c, &ev, 0) == 1) {
			switch (ev.type) {
			case SEALPOST_EVENT_CONNECTED:
				sealpost_client_server_key(c, learned);
				sealpost_key_to_hex(learned, hex);
				printf("connected, server key %s\n", hex);
				break;
			case SEALPOST_EVENT_DRAINED:
				/* Backlog done: send once, to ourselves. */
				if (!sent && sealpost_client_send(c, me, message, strlen(message),
								  &id) == 0)
					sent = 1;
				break;
			case SEALPOST_EVENT_RESULT:
				/* Stored and delivered: its result may come before or
				 * after the delivery itself. */
				if (ev.client_id == id) {
					printf("result %s\n", sealpost_status_string(ev.status));
					got_result = 1;
				}
				break;
			case SEALPOST_EVENT_MESSAGE:
				/* Acknowledged by the library on our next call. */
				printf("message \"%.*s\"\n", (int)ev.len, (const char *)ev.data);
				got_message = 1;
				break;
			case SEALPOST_EVENT_DISCONNECTED:
			case SEALPOST_EVENT_CLOSED:
				fprintf(stderr, "poll_loop: connection lost: %s\n",
					sealpost_strerror(ev.error));
				goto out;
			default:
				break;
			}
			done = got_result && got_message;
		}
		if (write_out(c, fd) < 0) {
			sealpost_client_feed_eof(c, -errno);
			continue;
		}
	}
	/* The ack of the message is queued: one last write before closing. */
	write_out(c, fd);
	ret = 0;
	r = 0;
out:
	if (r < 0)
		fprintf(stderr, "poll_loop: %s\n", sealpost_strerror(r));
	sealpost_client_close(c);
	if (fd >= 0)
		close(fd);
	sealpost_key_free(key);
	return ret;
}
