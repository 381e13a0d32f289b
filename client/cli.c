/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli.c: the `sealpost` command-line tool, built on libsealpost only (the
 * public header): what it can do, an app can do.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sealpost.h"

#include "cli_admin.h"

/* Exit statuses; documented in usage(). */
enum {
	EX_OK = 0,
	EX_USAGE = 1,           /* bad option, bad hex key, bad address, message too large */
	EX_KEYFILE = 2,         /* the key file could not be read or written */
	EX_CONNECT = 3,         /* connect or handshake failed (wrong --server-key too) */
	EX_LOST = 4,            /* the connection failed or timed out before the answer */
	EX_TIMEOUT = 5,         /* recv: --timeout expired before --count messages */
	/* 16..63: send: the broker refused the envelope; the exit status is the
	 * protocol status code (16 err_offline, 17 err_too_large, ...). */
	EX_STATUS_BASE = 16,
};

enum { SYNC_TIMEOUT_MS = 5000 };    /* recv: bound on confirming the last acks */

static const char usage_text[] =
	"usage: sealpost COMMAND [OPTIONS]\n"
	"\n"
	"commands:\n"
	"  keygen FILE     create a device key (mode 0600), print its public key\n"
	"  pubkey FILE     print the public key of a device key file\n"
	"  send            seal a message for a device and send it through a broker\n"
	"  recv            receive messages and print them\n"
	"  admin           talk to a running sealpostd over its admin socket\n"
	"\n"
	"Run 'sealpost COMMAND --help' for the options of each.\n";

static const char exit_text[] =
	"exit status:\n"
	"  0   success (send: the broker accepted the envelope into the recipient's\n"
	"      mailbox, or, with --online-only, delivered it)\n"
	"  1   usage error: unknown option, bad hex key, bad address, message too large\n"
	"  2   the key file could not be read or written\n"
	"  3   could not connect, or the handshake failed (e.g. wrong --server-key)\n"
	"  4   the connection failed or timed out before the answer\n"
	"  5   recv: --timeout expired before --count messages arrived\n"
	"  16+ send: the broker refused the envelope; the status is the protocol code:\n"
	"      16 err_offline (--online-only: recipient not connected), 17 err_too_large,\n"
	"      18 err_bad_recipient, 19 err_recipient_busy, 20 err_mailbox_full,\n"
	"      21 err_rate_limited, 22 err_internal, 23 err_shutting_down\n";

static const char keygen_help[] =
	"usage: sealpost keygen FILE\n"
	"\n"
	"Creates a new device key in FILE (which must not exist) with mode 0600 and\n"
	"prints the public key (the device's address) as 64 hex characters.\n";

static const char pubkey_help[] =
	"usage: sealpost pubkey FILE\n"
	"\n"
	"Prints the public key of the device key in FILE as 64 hex characters.\n";

static const char send_help[] =
	"usage: sealpost send --server HOST:PORT [--server-key HEX] --key FILE --to HEX\n"
	"                     [--online-only] [--timeout SECONDS] [MESSAGE]\n"
	"\n"
	"Seals MESSAGE (or, without it, all of standard input) for the device --to\n"
	"and sends it as the device in --key. Exits 0 when the broker accepted it:\n"
	"stored in the recipient's mailbox until the recipient acknowledges it (or\n"
	"it expires), whether or not the recipient is connected. Accepted means it\n"
	"survives a crash of the broker; with the broker's --fsync always also a\n"
	"power loss (batch: all but the last --fsync-interval; never: all but what\n"
	"the OS had not written back). With --online-only it is never stored: exit\n"
	"0 when it was handed to the recipient's live connection, 16 (err_offline)\n"
	"if the recipient is not connected. Otherwise prints the broker's status\n"
	"name to stderr. If no answer comes (exit 4), the envelope may or may not\n"
	"be stored.\n"
	"\n"
	"  --server HOST:PORT   broker address: 1.2.3.4:7400, [::1]:7400, name:7400\n"
	"  --server-key HEX     broker public key (its server.pub); without it the\n"
	"                       XX handshake is used and the learned key is printed\n"
	"                       to stderr as 'server-key HEX'\n"
	"  --key FILE           this device's key file (from sealpost keygen)\n"
	"  --to HEX             recipient's public key\n"
	"  --online-only        never store; deliver now or fail with err_offline\n"
	"  --timeout SECONDS    for connect and answer together (default 10)\n";

static const char recv_help[] =
	"usage: sealpost recv --server HOST:PORT [--server-key HEX] --key FILE\n"
	"                     [--count N] [--timeout SECONDS] [--raw] [--verbose]\n"
	"\n"
	"Receives messages for the device in --key: first what waits in its mailbox\n"
	"(oldest first), then live ones. Each message is acknowledged (deleted from\n"
	"the mailbox) only after it has been printed; with --count N exactly the N\n"
	"printed are acknowledged and later ones stay in the mailbox for the next\n"
	"recv. A message printed just before the connection broke may come again.\n"
	"It prints one line per message:\n"
	"the sender's public key in hex, a space, the message. In the message,\n"
	"bytes other than printable ASCII are escaped so one message stays one line:\n"
	"backslash as \\\\, newline \\n, tab \\t, carriage return \\r, other bytes\n"
	"\\xHH. With --raw the exact message bytes are written instead, with no\n"
	"sender, separator or newline (the sender goes to stderr): for --count 1.\n"
	"Once connected it prints 'listening PUBKEY' to stderr.\n"
	"\n"
	"  --server HOST:PORT   broker address\n"
	"  --server-key HEX     broker public key; without it XX is used and the\n"
	"                       learned key is printed to stderr as 'server-key HEX'\n"
	"  --key FILE           this device's key file\n"
	"  --count N            exit 0 after N messages (default: no limit)\n"
	"  --timeout SECONDS    stop after this long: with --count, exit 5 if fewer\n"
	"                       arrived; without, exit 0 (default: no limit)\n"
	"  --raw                exact bytes, see above\n"
	"  --verbose            report on stderr when the stored backlog has been\n"
	"                       received ('drained N'); prints nothing else extra\n";

struct opts {
	const char *server;
	const char *server_key_hex;
	const char *key_path;
	const char *to_hex;
	long count;
	long timeout_s;
	int raw;
	int online_only;
	int verbose;
};

static void help(const char *text)
{
	fputs(text, stdout);
	fputs("\n", stdout);
	fputs(exit_text, stdout);
}

static int bad_usage(const char *msg, const char *text)
{
	fprintf(stderr, "sealpost: %s\n", msg);
	fputs(text, stderr);
	return EX_USAGE;
}

static int parse_long(const char *s, long min, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < min)
		return -1;
	*out = v;
	return 0;
}

/* Parses the options of send/recv; returns -1 after printing help, 0, or EX_USAGE. */
static int parse(int argc, char **argv, struct opts *o, const char *text, int *first_arg)
{
	static const struct option longopts[] = {
		{ "server", required_argument, NULL, 's' },
		{ "server-key", required_argument, NULL, 'S' },
		{ "key", required_argument, NULL, 'k' },
		{ "to", required_argument, NULL, 't' },
		{ "count", required_argument, NULL, 'c' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "raw", no_argument, NULL, 'r' },
		{ "online-only", no_argument, NULL, 'o' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	opterr = 0;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
		switch (ch) {
		case 's': o->server = optarg; break;
		case 'S': o->server_key_hex = optarg; break;
		case 'k': o->key_path = optarg; break;
		case 't': o->to_hex = optarg; break;
		case 'r': o->raw = 1; break;
		case 'o': o->online_only = 1; break;
		case 'v': o->verbose = 1; break;
		case 'c':
			if (parse_long(optarg, 1, &o->count) < 0)
				return bad_usage("--count needs a positive number", text);
			break;
		case 'T':
			if (parse_long(optarg, 1, &o->timeout_s) < 0 || o->timeout_s > INT_MAX / 1000)
				return bad_usage("--timeout needs a positive number of seconds", text);
			break;
		case 'h':
			help(text);
			return -1;
		default:
			return bad_usage("unknown option or missing argument", text);
		}
	}
	*first_arg = optind;
	if (!o->server || !o->key_path)
		return bad_usage("--server and --key are required", text);
	return 0;
}

/* Loads the key and connects; prints why not. Returns 0 or an exit status. */
static int open_client(const struct opts *o, int timeout_ms, struct sealpost_key **key,
		       struct sealpost_client **c)
{
	uint8_t server_key[SEALPOST_KEY_LEN], learned[SEALPOST_KEY_LEN];
	char hex[SEALPOST_KEY_HEX_LEN + 1];
	int r;

	if (o->server_key_hex && sealpost_key_from_hex(server_key, o->server_key_hex) < 0) {
		fprintf(stderr, "sealpost: --server-key is not 64 hex characters\n");
		return EX_USAGE;
	}
	r = sealpost_key_load(key, o->key_path);
	if (r < 0) {
		fprintf(stderr, "sealpost: cannot load key %s: %s\n", o->key_path, strerror(-r));
		return EX_KEYFILE;
	}
	r = sealpost_client_connect(c, o->server, *key, o->server_key_hex ? server_key : NULL,
				    timeout_ms);
	if (r == -EINVAL) {
		fprintf(stderr, "sealpost: bad --server address or key: %s\n", o->server);
		return EX_USAGE;
	}
	if (r < 0) {
		fprintf(stderr, "sealpost: cannot connect to %s: %s\n", o->server, strerror(-r));
		return EX_CONNECT;
	}
	if (!o->server_key_hex) {
		sealpost_client_server_key(*c, learned);
		sealpost_key_to_hex(learned, hex);
		fprintf(stderr, "server-key %s\n", hex);
	}
	return 0;
}

static int cmd_keygen(int argc, char **argv)
{
	struct sealpost_key *key = NULL;
	uint8_t pub[SEALPOST_KEY_LEN];
	char hex[SEALPOST_KEY_HEX_LEN + 1];
	int r;

	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		help(keygen_help);
		return EX_OK;
	}
	if (argc != 2 || argv[1][0] == '-')
		return bad_usage("keygen takes exactly one FILE", keygen_help);
	r = sealpost_key_generate(&key);
	if (r == 0)
		r = sealpost_key_save(key, argv[1]);
	if (r < 0) {
		fprintf(stderr, "sealpost: cannot write %s: %s\n", argv[1], strerror(-r));
		sealpost_key_free(key);
		return EX_KEYFILE;
	}
	sealpost_key_public(key, pub);
	sealpost_key_free(key);
	sealpost_key_to_hex(pub, hex);
	printf("%s\n", hex);
	return EX_OK;
}

static int cmd_pubkey(int argc, char **argv)
{
	struct sealpost_key *key = NULL;
	uint8_t pub[SEALPOST_KEY_LEN];
	char hex[SEALPOST_KEY_HEX_LEN + 1];
	int r;

	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		help(pubkey_help);
		return EX_OK;
	}
	if (argc != 2 || argv[1][0] == '-')
		return bad_usage("pubkey takes exactly one FILE", pubkey_help);
	r = sealpost_key_load(&key, argv[1]);
	if (r < 0) {
		fprintf(stderr, "sealpost: cannot load key %s: %s\n", argv[1], strerror(-r));
		return EX_KEYFILE;
	}
	sealpost_key_public(key, pub);
	sealpost_key_free(key);
	sealpost_key_to_hex(pub, hex);
	printf("%s\n", hex);
	return EX_OK;
}

/* Reads all of stdin, at most max bytes; -EMSGSIZE beyond. *out is malloc'd. */
static int read_stdin(size_t max, uint8_t **out, size_t *len)
{
	size_t cap = max + 1, n = 0;
	uint8_t *buf = malloc(cap);

	if (!buf)
		return -ENOMEM;
	while (n < cap) {
		size_t got = fread(buf + n, 1, cap - n, stdin);

		if (got == 0)
			break;
		n += got;
	}
	if (ferror(stdin)) {
		free(buf);
		return -EIO;
	}
	if (n > max) {
		free(buf);
		return -EMSGSIZE;
	}
	*out = buf;
	*len = n;
	return 0;
}

static int cmd_send(int argc, char **argv)
{
	struct opts o = { .timeout_s = 10 };
	struct sealpost_key *key = NULL;
	struct sealpost_client *c = NULL;
	uint8_t to[SEALPOST_KEY_LEN], *stdin_msg = NULL;
	const uint8_t *msg;
	size_t len;
	uint64_t id = 0;
	int first, r, status = 0, ex;

	r = parse(argc, argv, &o, send_help, &first);
	if (r)
		return r < 0 ? EX_OK : r;
	if (!o.to_hex)
		return bad_usage("--to is required", send_help);
	if (sealpost_key_from_hex(to, o.to_hex) < 0) {
		fprintf(stderr, "sealpost: --to is not 64 hex characters\n");
		return EX_USAGE;
	}
	if (argc - first > 1)
		return bad_usage("at most one MESSAGE argument", send_help);
	if (argc - first == 1) {
		msg = (const uint8_t *)argv[first];
		len = strlen(argv[first]);
		if (len > SEALPOST_MESSAGE_MAX) {
			fprintf(stderr, "sealpost: message too large\n");
			return EX_USAGE;
		}
	} else {
		r = read_stdin(SEALPOST_MESSAGE_MAX, &stdin_msg, &len);
		if (r < 0) {
			fprintf(stderr, "sealpost: standard input: %s\n",
				r == -EMSGSIZE ? "message too large" : strerror(-r));
			return EX_USAGE;
		}
		msg = stdin_msg;
	}
	ex = open_client(&o, (int)o.timeout_s * 1000, &key, &c);
	if (ex)
		goto out;
	if (len > sealpost_client_max_message(c)) {
		fprintf(stderr, "sealpost: message too large for this broker (max %zu bytes)\n",
			sealpost_client_max_message(c));
		ex = EX_USAGE;
		goto out;
	}
	r = sealpost_client_send_ex(c, to, msg, len,
				    o.online_only ? SEALPOST_SEND_ONLINE_ONLY : 0, 0, &id);
	if (r == 0)
		r = sealpost_client_wait_result(c, id, (int)o.timeout_s * 1000, &status, NULL);
	if (r == -EINVAL) {
		fprintf(stderr, "sealpost: --to is not a valid public key\n");
		ex = EX_USAGE;
	} else if (r < 0) {
		fprintf(stderr, "sealpost: no answer from the broker: %s\n", strerror(-r));
		ex = EX_LOST;
	} else if (status == SEALPOST_STATUS_DELIVERED || status == SEALPOST_STATUS_ACCEPTED) {
		ex = EX_OK;
	} else {
		fprintf(stderr, "%s\n", sealpost_status_string(status));
		ex = status >= EX_STATUS_BASE && status < 64 ? status : EX_LOST;
	}
out:
	sealpost_client_close(c);
	sealpost_key_free(key);
	free(stdin_msg);
	return ex;
}

static void print_escaped(const uint8_t *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		uint8_t b = p[i];

		if (b == '\\')
			fputs("\\\\", stdout);
		else if (b == '\n')
			fputs("\\n", stdout);
		else if (b == '\t')
			fputs("\\t", stdout);
		else if (b == '\r')
			fputs("\\r", stdout);
		else if (b < 0x20 || b > 0x7e)
			printf("\\x%02x", b);
		else
			putchar(b);
	}
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int cmd_recv(int argc, char **argv)
{
	struct opts o = { 0 };
	struct sealpost_key *key = NULL;
	struct sealpost_client *c = NULL;
	struct sealpost_event ev;
	uint8_t me[SEALPOST_KEY_LEN];
	char hex[SEALPOST_KEY_HEX_LEN + 1];
	int64_t deadline = -1;
	long got = 0;
	int first, r, ex;

	r = parse(argc, argv, &o, recv_help, &first);
	if (r)
		return r < 0 ? EX_OK : r;
	if (first != argc)
		return bad_usage("recv takes no arguments", recv_help);
	if (o.timeout_s)
		deadline = now_ms() + o.timeout_s * 1000;
	ex = open_client(&o, o.timeout_s ? (int)o.timeout_s * 1000 : 0, &key, &c);
	if (ex)
		goto out;
	sealpost_client_public_key(c, me);
	sealpost_key_to_hex(me, hex);
	fprintf(stderr, "listening %s\n", hex);
	while (!o.count || got < o.count) {
		int wait = -1;

		if (deadline >= 0) {
			int64_t left = deadline - now_ms();

			wait = left > 0 ? (int)left : 0;
		}
		r = sealpost_client_next_event(c, &ev, wait);
		if (r == 0) {
			ex = o.count ? EX_TIMEOUT : EX_OK;
			goto done;
		}
		if (r < 0) {
			fprintf(stderr, "sealpost: %s\n", strerror(-r));
			ex = EX_LOST;
			goto out;
		}
		switch (ev.type) {
		case SEALPOST_EVENT_MESSAGE:
			sealpost_key_to_hex(ev.sender, hex);
			if (o.raw) {
				fprintf(stderr, "from %s\n", hex);
				fwrite(ev.data, 1, ev.len, stdout);
			} else {
				printf("%s ", hex);
				print_escaped(ev.data, ev.len);
				putchar('\n');
			}
			fflush(stdout);
			got++;
			break;
		case SEALPOST_EVENT_BAD_ENVELOPE:
			fprintf(stderr, "sealpost: skipped an envelope that does not open (seq %llu)\n",
				(unsigned long long)ev.seq);
			break;
		case SEALPOST_EVENT_GOAWAY:
			fprintf(stderr, "sealpost: broker closing: %s\n",
				sealpost_status_string(ev.status));
			break;
		case SEALPOST_EVENT_DRAINED:
			if (o.verbose)
				fprintf(stderr, "drained %llu\n", (unsigned long long)ev.count);
			break;
		case SEALPOST_EVENT_CLOSED:
			fprintf(stderr, "sealpost: connection closed%s%s\n", ev.error ? ": " : "",
				ev.error ? strerror(-ev.error) : "");
			ex = EX_LOST;
			goto out;
		default:
			break;
		}
	}
	ex = EX_OK;
done:
	/*
	 * The library acknowledged every message we printed except the last
	 * (its ack is queued once we call in again); sync sends it and waits
	 * until the broker has processed it, so a recv right after us does not
	 * see it again. Messages read but not printed are never acknowledged.
	 */
	r = sealpost_client_sync(c, SYNC_TIMEOUT_MS);
	if (r < 0 && got)
		fprintf(stderr, "sealpost: could not confirm the acknowledgements (%s); the last "
			"messages may be delivered again\n", strerror(-r));
out:
	sealpost_client_close(c);
	sealpost_key_free(key);
	return ex;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(usage_text, stderr);
		return EX_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		help(usage_text);
		return EX_OK;
	}
	if (!strcmp(argv[1], "keygen"))
		return cmd_keygen(argc - 1, argv + 1);
	if (!strcmp(argv[1], "pubkey"))
		return cmd_pubkey(argc - 1, argv + 1);
	if (!strcmp(argv[1], "send"))
		return cmd_send(argc - 1, argv + 1);
	if (!strcmp(argv[1], "recv"))
		return cmd_recv(argc - 1, argv + 1);
	if (!strcmp(argv[1], "admin"))
		return cli_admin_main(argc - 1, argv + 1);
	fprintf(stderr, "sealpost: unknown command '%s'\n", argv[1]);
	fputs(usage_text, stderr);
	return EX_USAGE;
}
