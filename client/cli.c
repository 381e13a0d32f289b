/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli.c: the `sealpost` command-line tool, built on libsealpost only (the
 * public header): what it can do, an app can do.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "cli_conf.h"
#include "cli_json.h"
#include "cli_pins.h"
#include "sealpost.h"

#include "cli_admin.h"
#include "cli_access.h"

/* Exit statuses; documented in usage(). */
enum {
	EX_OK = 0,
	EX_USAGE = 1,           /* bad option, bad hex key, bad address, message too large */
	EX_KEYFILE = 2,         /* the key file could not be read or written */
	EX_CONNECT = 3,         /* connect or handshake failed (wrong --server-key too) */
	EX_LOST = 4,            /* the connection failed or timed out before the answer */
	EX_TIMEOUT = 5,         /* recv: --timeout expired before --count messages */
	EX_ROLLBACK = 6,        /* account: the broker served a list older than one seen */
	EX_BADLIST = 7,         /* account: the list does not verify (forged, wrong account) */
	EX_NOLIST = 8,          /* account: the broker has no list for that account */
	EX_CODE = 9,            /* account link: the short code does not match */
	EX_LOG = 10,            /* account: the transparency log does not verify (split view,
				 * bad proof, another log key, audit failed) */
	/* 16..63: send: the broker refused the envelope; the exit status is the
	 * protocol status code (16 err_offline, 17 err_too_large, ...). */
	EX_STATUS_BASE = 16,
};

enum {
	SYNC_TIMEOUT_MS = 5000,     /* recv: bound on confirming the last acks */
	PROBE_TIMEOUT_MS = 5000,    /* learning a refusing broker's key, for the message */
	RECONNECT_MIN_MS = 100,     /* recv: first back-off after losing the broker */
	RECONNECT_MAX_MS = 5000,    /* recv: back-off doubles up to this */
	RECENT_SEQS = 1024,         /* recv: printed seqs remembered across reconnects */
	LINES_PENDING_MAX = 4096,   /* send --lines: sends awaiting a result before reading on */
};

/* sealpostd's default --listen: where --server points when nothing says otherwise. */
#define DEFAULT_SERVER "127.0.0.1:7400"

static const char usage_text[] =
	"usage: sealpost COMMAND [OPTIONS]\n"
	"       sealpost --version | --help\n"
	"\n"
	"commands:\n"
	"  keygen FILE     create a device key (mode 0600), print its public key\n"
	"  pubkey FILE     print the public key of a device key file\n"
	"  send            seal a message for a device and send it through a broker\n"
	"  recv            receive messages, print them, acknowledge them\n"
	"  account         accounts: create, link-request, link, devices, remove\n"
	"  push            Web Push wake-ups: register, remove a subscription\n"
	"  access          sealed sender: this device's access key, contacts' keys\n"
	"  prekeys         forward secrecy: upload this device's prekeys, show them\n"
	"  admin           talk to a running sealpostd over its admin socket\n"
	"\n"
	"Run 'sealpost COMMAND --help' for the options of each. --version prints the\n"
	"version of libsealpost the CLI runs on.\n";

static const char exit_text[] =
	"exit status:\n"
	"  0   success (send: the broker accepted the envelope into the recipient's\n"
	"      mailbox, or, with --online-only, delivered it)\n"
	"  1   usage error: unknown option, bad hex key, bad address, message too\n"
	"      large, unreadable config file or known-brokers file\n"
	"  2   the key file could not be read or written\n"
	"  3   could not connect, or the handshake failed: the broker does not hold\n"
	"      the server key given, or no longer the one pinned in the known brokers;\n"
	"      or it refused this device's registration (--enrol-token)\n"
	"  4   the connection failed or timed out before the answer\n"
	"  5   recv: --timeout expired before --count messages arrived\n"
	"  6   account, send --to-account: the broker served an account's list older\n"
	"      than one seen before (a rollback; the accounts file keeps the newer)\n"
	"  7   account, send --to-account: the list does not verify (forged)\n"
	"  8   account, send --to-account: the broker has no list for the account\n"
	"  9   account link: --code is not the code of the link request\n"
	"  10  account, send --to-account: the broker's transparency log does not\n"
	"      verify (a split view, a bad proof, another log key; audit: any failure)\n"
	"  16+ send: the broker refused the envelope; the status is the protocol code:\n"
	"      16 err_offline (--online-only: recipient not connected), 17 err_too_large,\n"
	"      18 err_bad_recipient, 19 err_recipient_busy, 20 err_mailbox_full,\n"
	"      21 err_rate_limited, 22 err_internal, 23 err_shutting_down;\n"
	"      account: the broker refused the list: 40 err_list_malformed ..\n"
	"      48 err_list_not_member (docs/PROTOCOL.md 11.5);\n"
	"      send --to-account: the broker refused the group (nothing stored):\n"
	"      49 err_fanout_mismatch (the list kept changing), 50 .. 52, or a\n"
	"      status above (20 err_mailbox_full: one device's mailbox is full)\n"
	"      (docs/PROTOCOL.md 16);\n"
	"      push: 56 err_push_bad_key .. 63 err_push_full (docs/PROTOCOL.md 12);\n"
	"      send --anonymous: 65 err_access_missing, 66 err_access_wrong,\n"
	"      67 err_access_rotated, 70 err_anon_rate_limited; access: 71\n"
	"      err_access_bad_key (docs/PROTOCOL.md 14)\n";

/* send and recv: where the connection settings come from. */
static const char conn_text[] =
	"connection settings (each taken from the first of these that has it):\n"
	"  broker address   --server, $SEALPOST_SERVER, 'server' in the config file,\n"
	"                   else " DEFAULT_SERVER " (sealpostd's default --listen)\n"
	"  broker key       --server-key or --server-key-file, $SEALPOST_SERVER_KEY,\n"
	"                   'server-key' or 'server-key-file' in the config file, the\n"
	"                   address's entry in the known brokers. With none of them\n"
	"                   this is a first contact: the XX handshake accepts the key\n"
	"                   the broker proves, prints it to stderr as 'server-key HEX'\n"
	"                   and adds it to the known brokers\n"
	"  device key file  --key, $SEALPOST_KEY, 'key' in the config file\n"
	"  --aesgcm         propose the AES-256-GCM transport cipher\n"
	"                   (Noise_*_25519_AESGCM_BLAKE2b) where this CPU has AES-NI;\n"
	"                   a broker that does not offer it is used with\n"
	"                   ChaCha20-Poly1305 (the default) instead. With --verbose\n"
	"                   too, the cipher is reported on stderr as 'cipher NAME'\n"
	"\n"
	"files:\n"
	"  config file      $SEALPOST_CONFIG, else ~/.config/sealpost/cli.conf (or\n"
	"                   $XDG_CONFIG_HOME/sealpost/cli.conf). Lines 'NAME = VALUE'\n"
	"                   with NAME one of server, server-key, server-key-file, key;\n"
	"                   blank lines and lines starting with '#' are ignored; a\n"
	"                   value starting with ~/ is under $HOME. The default file\n"
	"                   may be missing; one named by $SEALPOST_CONFIG must exist.\n"
	"  known brokers    $SEALPOST_KNOWN_BROKERS, else\n"
	"                   ~/.config/sealpost/known_brokers: lines 'ADDRESS HEX', the\n"
	"                   address exactly as given to --server. Like ssh's\n"
	"                   known_hosts: a broker that no longer holds the key pinned\n"
	"                   for its address is refused with a warning (exit 3); if its\n"
	"                   new key is right, delete the line the warning names.\n"
	"                   Entries are only appended; /dev/null turns pinning off.\n"
	"                   A key given by flag, environment or config file is used\n"
	"                   as given and the known brokers are not consulted.\n";

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
	"usage: sealpost send [--server HOST:PORT] [--server-key HEX | --server-key-file FILE]\n"
	"                     [--key FILE] (--to HEX | --to-account HEX [--accounts FILE])\n"
	"                     [--online-only] [--lines] [--verbose] [--first ACCOUNT]\n"
	"                     [--anonymous [--access-key HEX] | --authenticated]\n"
	"                     [--timeout SECONDS] [MESSAGE]\n"
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
	"With --lines every line of standard input is one message (without its\n"
	"newline; empty lines are skipped), sent as soon as it is read without\n"
	"waiting for the answers to the ones before (so 'tail -f log | sealpost\n"
	"send --lines' works). A refused line is reported on stderr as 'line N:\n"
	"STATUS'; the exit status is that of the first line that failed (1 for a\n"
	"line too large), 0 if every line was accepted.\n"
	"\n"
	"options:\n"
	"  --server HOST:PORT   broker address: 1.2.3.4:7400, [::1]:7400, name:7400\n"
	"  --server-key HEX     broker public key (its server.pub), for the IK\n"
	"                       handshake; see 'connection settings' below\n"
	"  --server-key-file FILE  the same, read from a file (e.g. server.pub)\n"
	"  --key FILE           this device's key file (from sealpost keygen)\n"
	"  --enrol-token TOKEN  a one-use enrolment token (sealpostd mint-token), for\n"
	"                       this device's first connection to a broker with\n"
	"                       --registration=token; ignored once registered\n"
	"  --to HEX             recipient's public key\n"
	"  --to-account HEX     every device of this account (its signed device list,\n"
	"                       fetched and verified; this device left out): one\n"
	"                       sealed copy each, handed over as one fan-out group\n"
	"                       the broker stores all or none (docs/PROTOCOL.md 16);\n"
	"                       if the list changed meanwhile, it is fetched again and\n"
	"                       the group resent (3 times at most). Exit 0 when the\n"
	"                       group was accepted, else its status (49\n"
	"                       err_fanout_mismatch: the list kept changing)\n"
	"  --own-account HEX    this device's own account: its other devices get a\n"
	"                       copy too (a second group), so they see what it sent;\n"
	"                       with --account-key FILE, that key's account is taken\n"
	"  --accounts FILE      the lists seen per account (see 'sealpost account')\n"
	"  --online-only        never store; deliver now or fail with err_offline\n"
	"  --first ACCOUNT      first contact: seal to --to's prekey bundle, checked\n"
	"                       against ACCOUNT's list (exit 7: FORGED), starting a\n"
	"                       session (no prekeys: an ordinary seal)\n"
	"With $SEALPOST_STORAGE_KEY (64 hex digits) send and recv use sessions\n"
	"(docs/PROTOCOL.md 7.3; store: KEY.sessions or $SEALPOST_SESSIONS).\n"
	"  --anonymous          sealed sender (docs/PROTOCOL.md 14): hand it over on an\n"
	"                       anonymous connection that proves no device key; the\n"
	"                       recipient still learns the sender from the seal. Needs\n"
	"                       the broker's key (given or pinned). The default for a\n"
	"                       contact with a line in the access keys file (see\n"
	"                       'sealpost access'); without a key the recipient must\n"
	"                       accept anonymous sends from anyone. Exit 65\n"
	"                       err_access_missing, 66 err_access_wrong, 67\n"
	"                       err_access_rotated (ask for the new key), 70\n"
	"                       err_anon_rate_limited\n"
	"  --access-key HEX     the recipient's access key (32 or 64 hex), instead of\n"
	"                       the access keys file's; implies --anonymous\n"
	"  --authenticated      the usual send, even to a contact with an access key\n"
	"  --lines              one message per line of standard input, see above\n"
	"  --verbose            print each answer on stderr: 'accepted seq N' (the\n"
	"                       seq the recipient will see), 'delivered', or the\n"
	"                       error; with --lines prefixed 'line N: '\n"
	"  --timeout SECONDS    connect, then wait for an answer, at most this long\n"
	"                       each (default 10); with --lines: that long without\n"
	"                       any answer while some are due\n"
	"\n";

static const char recv_help[] =
	"usage: sealpost recv [--server HOST:PORT] [--server-key HEX | --server-key-file FILE]\n"
	"                     [--key FILE] [--count N] [--timeout SECONDS]\n"
	"                     [--json | --raw] [--verbose]\n"
	"\n"
	"WARNING: recv ACKNOWLEDGES what it prints: each message it writes out is\n"
	"deleted from the device's mailbox on the broker. It is the mailbox's\n"
	"consumer, not a way to look at it; what recv printed is not delivered to\n"
	"any later connection of this device.\n"
	"\n"
	"Receives messages for the device in --key: first what waits in its mailbox\n"
	"(oldest first), then live ones. Each message is acknowledged only after it\n"
	"has been printed and flushed; with --count N exactly the N printed are\n"
	"acknowledged and later ones stay in the mailbox for the next recv.\n"
	"\n"
	"If the connection is lost (broker restart, network) recv connects again,\n"
	"backing off from 0.1 s to 5 s, and carries on until --count or --timeout;\n"
	"it says 'sealpost: connection lost (...); reconnecting' and 'sealpost:\n"
	"reconnected' on stderr. A message that was printed but whose\n"
	"acknowledgement did not reach the broker comes again; recv skips it\n"
	"rather than print it twice. Only the first connect failing exits (3), and\n"
	"a takeover (the same key connected elsewhere) exits 4.\n"
	"\n"
	"It prints one line per message: the sender's public key in hex, a space,\n"
	"the message. In the message, bytes other than printable ASCII are escaped\n"
	"so one message stays one line: backslash as \\\\, newline \\n, tab \\t,\n"
	"carriage return \\r, other bytes \\xHH. With --json one JSON object per\n"
	"line instead:\n"
	"  {\"sender\":HEX,\"seq\":N,\"size\":BYTES,\"encoding\":\"utf-8\",\"message\":TEXT}\n"
	"where a message that is not valid UTF-8 has \"encoding\":\"base64\" and its\n"
	"bytes base64-encoded (seq 0: an online-only message). With --raw the exact\n"
	"message bytes are written instead, with no sender, separator or newline\n"
	"(the sender goes to stderr): for --count 1.\n"
	"Once connected it prints 'listening PUBKEY' to stderr.\n"
	"\n"
	"options:\n"
	"  --server HOST:PORT   broker address\n"
	"  --server-key HEX     broker public key; see 'connection settings' below\n"
	"  --server-key-file FILE  the same, read from a file (e.g. server.pub)\n"
	"  --key FILE           this device's key file\n"
	"  --enrol-token TOKEN  a one-use enrolment token, as for send\n"
	"  --count N            exit 0 after N messages (default: no limit)\n"
	"  --timeout SECONDS    stop after this long: with --count, exit 5 if fewer\n"
	"                       arrived; without, exit 0 (default: no limit)\n"
	"  --json               one JSON object per message, see above\n"
	"  --raw                exact bytes, see above\n"
	"  --verbose            report on stderr when the stored backlog has been\n"
	"                       received ('drained N')\n"
	"\n";

struct opts {
	const char *enrol_token;
	const char *to_account;
	const char *own_account;        /* send --to-account: this device's account (hex) */
	const char *account_key;
	const char *accounts;
	const char *label;
	const char *code;
	const char *server;
	const char *server_key_hex;
	const char *server_key_file;
	const char *key_path;
	const char *to_hex;
	const char *access_key;
	const char *first_account;      /* send --first: the recipient's account (hex) */
	int anonymous;
	int authenticated;
	int open_anyone;
	long count;
	long timeout_s;
	int raw;
	int json;
	int lines;
	int online_only;
	int verbose;
	int aesgcm;                 /* --aesgcm */
};

/*
 * Where send and recv connect, resolved from flags, environment, config file
 * and known brokers (resolve()). The *_from strings say where each setting
 * came from, for messages.
 */
struct target {
	char server[SP_CLI_CONF_VALUE_MAX + 1];
	char key_path[SP_CLI_CONF_VALUE_MAX + 1];
	uint8_t server_key[SEALPOST_KEY_LEN];
	int have_server_key;
	int pinned;                 /* server_key is the known-brokers entry */
	char key_from[SP_CLI_CONF_VALUE_MAX + 64];     /* e.g. "--server-key", "FILE:3" */
	char pins_path[SP_CLI_CONF_VALUE_MAX + 1];     /* "" when there is no pin store */
	unsigned pin_line;
	const char *enrol_token;    /* --enrol-token, borrowed from argv; NULL = none */
	int aesgcm;                 /* --aesgcm: SEALPOST_CONNECT_AESGCM */
	int verbose;                /* --verbose: report the cipher after the connect */
};

static void help(const char *text)
{
	fputs(text, stdout);
	fputs("\n", stdout);
	fputs(exit_text, stdout);
}

/* help() for the commands that connect. */
static void help_conn(const char *text)
{
	fputs(text, stdout);
	fputs(conn_text, stdout);
	fputs("\n", stdout);
	fputs(exit_text, stdout);
}

static int bad_usage(const char *msg, const char *text)
{
	fprintf(stderr, "sealpost: %s\n", msg);
	fputs(text, stderr);
	return EX_USAGE;
}

/* A refused registration (the broker's GoAway 53-55): a connect failure,
 * whether it came during the connect or right after. */
static int is_enrol_error(int err)
{
	return err == -SEALPOST_EENROLREQUIRED || err == -SEALPOST_EENROLTOKEN ||
	       err == -SEALPOST_EENROLUSED;
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
		{ "server-key-file", required_argument, NULL, 'F' },
		{ "key", required_argument, NULL, 'k' },
		{ "to", required_argument, NULL, 't' },
		{ "count", required_argument, NULL, 'c' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "raw", no_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'j' },
		{ "lines", no_argument, NULL, 'l' },
		{ "online-only", no_argument, NULL, 'o' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "to-account", required_argument, NULL, 'A' },
		{ "own-account", required_argument, NULL, 'W' },
		{ "account-key", required_argument, NULL, 'K' },
		{ "accounts", required_argument, NULL, 'a' },
		{ "label", required_argument, NULL, 'L' },
		{ "code", required_argument, NULL, 'C' },
		{ "anonymous", no_argument, NULL, 'N' },
		{ "authenticated", no_argument, NULL, 'U' },
		{ "access-key", required_argument, NULL, 'X' },
		{ "open", no_argument, NULL, 'O' },
		{ "enrol-token", required_argument, NULL, 'E' },
		{ "aesgcm", no_argument, NULL, 'G' },
		{ "first", required_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	opterr = 0;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'E': o->enrol_token = optarg; break;
		case 'G': o->aesgcm = 1; break;
		case 'P': o->first_account = optarg; break;
		case 's': o->server = optarg; break;
		case 'S': o->server_key_hex = optarg; break;
		case 'F': o->server_key_file = optarg; break;
		case 'k': o->key_path = optarg; break;
		case 't': o->to_hex = optarg; break;
		case 'r': o->raw = 1; break;
		case 'j': o->json = 1; break;
		case 'l': o->lines = 1; break;
		case 'o': o->online_only = 1; break;
		case 'v': o->verbose = 1; break;
		case 'A': o->to_account = optarg; break;
		case 'W': o->own_account = optarg; break;
		case 'K': o->account_key = optarg; break;
		case 'a': o->accounts = optarg; break;
		case 'L': o->label = optarg; break;
		case 'C': o->code = optarg; break;
		case 'N': o->anonymous = 1; break;
		case 'U': o->authenticated = 1; break;
		case 'X': o->access_key = optarg; o->anonymous = 1; break;
		case 'O': o->open_anyone = 1; break;
		case 'c':
			if (parse_long(optarg, 1, &o->count) < 0)
				return bad_usage("--count needs a positive number", text);
			break;
		case 'T':
			if (parse_long(optarg, 1, &o->timeout_s) < 0 || o->timeout_s > INT_MAX / 1000)
				return bad_usage("--timeout needs a positive number of seconds", text);
			break;
		case 'h':
			help_conn(text);
			return -1;
		default:
			return bad_usage("unknown option or missing argument", text);
		}
	}
	*first_arg = optind;
	if (o->server_key_hex && o->server_key_file)
		return bad_usage("--server-key and --server-key-file exclude each other", text);
	return 0;
}

/*
 * The front of a command with subcommands (account, push, access, prekeys):
 * `sealpost NAME SUB [options] [args]`. 1 with *ex set when the command is
 * done (its help printed, or a usage error); 0 with *sub the subcommand and
 * *nargs arguments from argv[*first] on.
 */
static int parse_sub(int argc, char **argv, struct opts *o, const char *name, const char *text,
		     const char **sub, int *first, int *nargs, int *ex)
{
	char msg[64];
	int r;

	o->timeout_s = 10;
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		if (argc < 2) {
			snprintf(msg, sizeof(msg), "%s needs a subcommand", name);
			*ex = bad_usage(msg, text);
			return 1;
		}
		help_conn(text);
		*ex = EX_OK;
		return 1;
	}
	*sub = argv[1];
	r = parse(argc - 1, argv + 1, o, text, first);
	if (r) {
		*ex = r < 0 ? EX_OK : r;
		return 1;
	}
	(*first)++;         /* parse saw argv + 1 */
	*nargs = argc - *first;
	return 0;
}

/* getenv, with an empty value taken as unset. */
static const char *env(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

static int set_key_hex(struct target *t, const char *hex, const char *from)
{
	if (sealpost_key_from_hex(t->server_key, hex) < 0) {
		fprintf(stderr, "sealpost: %s is not 64 hex characters\n", from);
		return EX_USAGE;
	}
	t->have_server_key = 1;
	snprintf(t->key_from, sizeof(t->key_from), "%s", from);
	return 0;
}

static int set_key_file(struct target *t, const char *path, const char *from)
{
	int r = sp_cli_conf_read_key(path, t->server_key);

	if (r < 0) {
		fprintf(stderr, "sealpost: cannot read the server key file %s (%s): %s\n", path, from,
			r == -EBADMSG ? "not 64 hex characters" : strerror(-r));
		return EX_USAGE;
	}
	t->have_server_key = 1;
	snprintf(t->key_from, sizeof(t->key_from), "%s (%s)", path, from);
	return 0;
}

static int copy_setting(char *dst, size_t cap, const char *v, const char *what)
{
	if (strlen(v) >= cap) {
		fprintf(stderr, "sealpost: the %s is too long\n", what);
		return EX_USAGE;
	}
	strcpy(dst, v);
	return 0;
}

/*
 * Resolves the connection settings of send/recv: flags, then environment,
 * then config file, then (broker key only) the known brokers; the order is
 * documented in conn_text. Prints why not. 0 or an exit status.
 */
static int resolve(const struct opts *o, struct target *t)
{
	struct sp_cli_conf conf;
	char conf_path[SP_CLI_CONF_VALUE_MAX + 1], from[SP_CLI_CONF_VALUE_MAX + 32];
	const char *v;
	unsigned line = 0;
	int from_env = 0, r, ex;

	memset(t, 0, sizeof(*t));
	memset(&conf, 0, sizeof(conf));
	r = sp_cli_conf_path(conf_path, sizeof(conf_path), "SEALPOST_CONFIG", "cli.conf", &from_env);
	if (r == -ENOENT) {
		snprintf(conf_path, sizeof(conf_path), "the config file");
	} else if (r < 0) {
		fprintf(stderr, "sealpost: config file path: %s\n", strerror(-r));
		return EX_USAGE;
	} else {
		r = sp_cli_conf_load(conf_path, from_env, &conf, &line);
		if (r == -EBADMSG) {
			fprintf(stderr, "sealpost: %s:%u: not 'NAME = VALUE' with NAME one of "
				"server, server-key, server-key-file, key\n", conf_path, line);
			return EX_USAGE;
		}
		if (r < 0) {
			fprintf(stderr, "sealpost: cannot read the config file %s: %s\n", conf_path,
				strerror(-r));
			return EX_USAGE;
		}
	}

	v = o->server ? o->server : env("SEALPOST_SERVER") ? env("SEALPOST_SERVER") :
	    conf.server ? conf.server : DEFAULT_SERVER;
	ex = copy_setting(t->server, sizeof(t->server), v, "broker address");
	if (ex)
		goto out;

	v = o->key_path ? o->key_path : env("SEALPOST_KEY") ? env("SEALPOST_KEY") : conf.key;
	if (!v) {
		fprintf(stderr, "sealpost: no device key: give --key FILE, set SEALPOST_KEY, or put "
			"'key = FILE' in %s\n", conf_path);
		ex = EX_USAGE;
		goto out;
	}
	ex = copy_setting(t->key_path, sizeof(t->key_path), v, "key file path");
	if (ex)
		goto out;

	if (o->server_key_hex) {
		ex = set_key_hex(t, o->server_key_hex, "--server-key");
	} else if (o->server_key_file) {
		ex = set_key_file(t, o->server_key_file, "--server-key-file");
	} else if (env("SEALPOST_SERVER_KEY")) {
		ex = set_key_hex(t, env("SEALPOST_SERVER_KEY"), "$SEALPOST_SERVER_KEY");
	} else if (conf.server_key && conf.server_key_file) {
		fprintf(stderr, "sealpost: %s sets both server-key and server-key-file\n", conf_path);
		ex = EX_USAGE;
	} else if (conf.server_key) {
		snprintf(from, sizeof(from), "server-key in %s", conf_path);
		ex = set_key_hex(t, conf.server_key, from);
	} else if (conf.server_key_file) {
		snprintf(from, sizeof(from), "server-key-file in %s", conf_path);
		ex = set_key_file(t, conf.server_key_file, from);
	} else {
		r = sp_cli_conf_path(t->pins_path, sizeof(t->pins_path), "SEALPOST_KNOWN_BROKERS",
				     "known_brokers", NULL);
		if (r < 0 || !strcmp(t->pins_path, "/dev/null")) {
			t->pins_path[0] = '\0';     /* no HOME, or pinning off */
		} else {
			r = sp_cli_pins_lookup(t->pins_path, t->server, t->server_key, &t->pin_line);
			if (r == -EBADMSG) {
				fprintf(stderr, "sealpost: %s:%u: not 'ADDRESS HEX'; fix or delete that "
					"line\n", t->pins_path, t->pin_line);
				ex = EX_USAGE;
			} else if (r < 0) {
				fprintf(stderr, "sealpost: cannot read the known brokers %s: %s\n",
					t->pins_path, strerror(-r));
				ex = EX_USAGE;
			} else if (r == 1) {
				t->have_server_key = 1;
				t->pinned = 1;
				snprintf(t->key_from, sizeof(t->key_from), "%s:%u", t->pins_path,
					 t->pin_line);
			}
		}
	}
out:
	sp_cli_conf_free(&conf);
	return ex;
}

/* Learns the key the broker at server proves, through XX with a throwaway
 * device key: an impostor learns nothing about this device. 0 or -errno. */
static int probe_key(const char *server, uint8_t out[SEALPOST_KEY_LEN])
{
	struct sealpost_key *k = NULL;
	struct sealpost_client *pc = NULL;
	int r = sealpost_key_generate(&k);

	if (r == 0)
		r = sealpost_client_connect(&pc, server, k, NULL, PROBE_TIMEOUT_MS);
	if (r == 0)
		sealpost_client_server_key(pc, out);
	sealpost_client_close(pc);
	sealpost_key_free(k);
	return r;
}

/* The broker no longer holds the key pinned for it: as loud as ssh. */
static void warn_changed(const struct target *t, const uint8_t now[SEALPOST_KEY_LEN])
{
	char was[SEALPOST_KEY_HEX_LEN + 1], is[SEALPOST_KEY_HEX_LEN + 1];

	sealpost_key_to_hex(t->server_key, was);
	sealpost_key_to_hex(now, is);
	fprintf(stderr,
		"@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
		"@    WARNING: THE BROKER'S KEY HAS CHANGED!                    @\n"
		"@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
		"Someone may be intercepting this connection (a man in the middle),\n"
		"or the broker at %s was given a new key.\n"
		"The key pinned for it in %s:%u is\n"
		"    %s\n"
		"but the broker there now proves\n"
		"    %s\n"
		"Ask the broker's operator. If the new key is right, delete line %u of\n"
		"%s and connect again.\n"
		"sealpost: refusing to connect: the broker's key is not the pinned one\n",
		t->server, t->pins_path, t->pin_line, was, is, t->pin_line, t->pins_path);
}

/* Connects to t with the device key, reporting the learned key of a first
 * contact and pinning it; prints why not. flags: SEALPOST_CONNECT_*. */
static int connect_target(struct target *t, const struct sealpost_key *key, int timeout_ms,
			  uint32_t flags, struct sealpost_client **c)
{
	struct sealpost_connect_opts co = SEALPOST_CONNECT_OPTS_INIT;
	uint8_t now[SEALPOST_KEY_LEN];
	char hex[SEALPOST_KEY_HEX_LEN + 1];
	int r;

	/* The library reconnects by itself (IK with the key this connection
	 * proves) and resends what got no answer; the CLI's back-off is shorter
	 * than its default so a restarted broker is found again quickly. */
	co.flags = flags | (t->aesgcm ? SEALPOST_CONNECT_AESGCM : 0);
	co.enrol_token = t->enrol_token;
	co.reconnect_min_ms = RECONNECT_MIN_MS;
	co.reconnect_max_ms = RECONNECT_MAX_MS;
	r = sealpost_client_connect_opts(c, t->server, key, t->have_server_key ? t->server_key : NULL,
					 timeout_ms, &co);
	if (r == -EINVAL) {
		fprintf(stderr, "sealpost: bad broker address: %s\n", t->server);
		return EX_USAGE;
	}
	if (r < 0) {
		/* The library found the broker holds another key; learn which, so
		 * the message can show it (a throwaway key: an impostor learns
		 * nothing about this device). */
		if (r == -SEALPOST_ESERVERKEY && probe_key(t->server, now) == 0 &&
		    memcmp(now, t->server_key, sizeof(now))) {
			if (t->pinned) {
				warn_changed(t, now);
			} else {
				sealpost_key_to_hex(now, hex);
				fprintf(stderr, "sealpost: the broker at %s does not hold the server "
					"key from %s; it proves %s\n", t->server, t->key_from, hex);
			}
			return EX_CONNECT;
		}
		fprintf(stderr, "sealpost: cannot connect to %s: %s\n", t->server,
			sealpost_strerror(r));
		return EX_CONNECT;
	}
	if (t->aesgcm && t->verbose)
		fprintf(stderr, "cipher %s\n", sealpost_client_cipher(*c) == SEALPOST_CIPHER_AESGCM
					       ? "AESGCM" : "ChaChaPoly");
	if (!t->have_server_key) {
		sealpost_client_server_key(*c, t->server_key);
		t->have_server_key = 1;
		sealpost_key_to_hex(t->server_key, hex);
		fprintf(stderr, "server-key %s\n", hex);
		if (t->pins_path[0]) {
			r = sp_cli_pins_add(t->pins_path, t->server, t->server_key);
			if (r == 0)
				fprintf(stderr, "sealpost: added %s to the known brokers in %s\n",
					t->server, t->pins_path);
			else
				fprintf(stderr, "sealpost: warning: could not add %s to the known "
					"brokers in %s: %s\n", t->server, t->pins_path, strerror(-r));
		}
	}
	return 0;
}

/* Resolves the settings, loads the device key and connects; prints why not.
 * Returns 0 or an exit status. */
static int open_target(const struct opts *o, struct target *t, int timeout_ms, uint32_t flags,
		       struct sealpost_key **key, struct sealpost_client **c)
{
	int r, ex;

	ex = resolve(o, t);
	if (ex)
		return ex;
	t->enrol_token = o->enrol_token;
	t->aesgcm = o->aesgcm;
	t->verbose = o->verbose;
	r = sealpost_key_load(key, t->key_path);
	if (r < 0) {
		fprintf(stderr, "sealpost: cannot load key %s: %s\n", t->key_path,
			sealpost_strerror(r));
		return EX_KEYFILE;
	}
	return connect_target(t, *key, timeout_ms, flags, c);
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

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* send --verbose: one answer on stderr; line 0 for a single message. */
static void report(unsigned long line, int status, uint64_t seq)
{
	if (line)
		fprintf(stderr, "line %lu: ", line);
	if (status == SEALPOST_STATUS_ACCEPTED)
		fprintf(stderr, "accepted seq %llu\n", (unsigned long long)seq);
	else
		fprintf(stderr, "%s\n", sealpost_status_string(status));
}

/* The exit status for a send's answer. */
static int status_exit(int status)
{
	if (status == SEALPOST_STATUS_DELIVERED || status == SEALPOST_STATUS_ACCEPTED)
		return EX_OK;
	return status >= EX_STATUS_BASE && status < 128 ? status : EX_LOST;
}

/* send --lines: sends waiting for their RESULT, in send order (the broker
 * answers in that order). */
struct lines {
	struct sealpost_client *c;
	const uint8_t *to;
	const struct opts *o;
	struct { uint64_t id; unsigned long line; } *q;
	size_t head, n, cap;
	uint8_t *buf;           /* the line being read */
	size_t len, max;
	int overlong;
	unsigned long lineno;
	int first_fail;         /* exit status of the first failed line, 0 */
	unsigned long failed;
	int64_t last_answer;    /* when the last RESULT came (or the first send) */
	int lost;
};

static void lines_fail(struct lines *l, int ex)
{
	if (!l->first_fail)
		l->first_fail = ex;
	l->failed++;
}

/* Takes every event there is; RESULTs settle the oldest pending sends. */
static void lines_pump(struct lines *l)
{
	struct sealpost_event ev;

	while (!l->lost && sealpost_client_next_event(l->c, &ev, 0) == 1) {
		size_t i;

		switch (ev.type) {
		case SEALPOST_EVENT_RESULT:
			for (i = 0; i < l->n && l->q[l->head + i].id != ev.client_id; i++)
				;
			if (i == l->n)
				break;      /* not ours (cannot happen: we only send lines) */
			if (l->o->verbose || status_exit(ev.status) != EX_OK)
				report(l->q[l->head + i].line, ev.status, ev.seq);
			if (status_exit(ev.status) != EX_OK)
				lines_fail(l, status_exit(ev.status));
			/* Normally i == 0; otherwise keep the order of the rest. */
			memmove(&l->q[l->head + 1], &l->q[l->head], i * sizeof(l->q[0]));
			l->head++;
			l->n--;
			l->last_answer = now_ms();
			break;
		case SEALPOST_EVENT_GOAWAY:
			fprintf(stderr, "sealpost: broker closing: %s\n",
				sealpost_status_string(ev.status));
			break;
		case SEALPOST_EVENT_DISCONNECTED:
			/* The library reconnects and resends what got no answer
			 * (with the same client ids: the broker keeps one copy). */
			fprintf(stderr, "sealpost: connection lost (%s); reconnecting\n",
				ev.error ? sealpost_strerror(ev.error) :
				ev.status ? sealpost_status_string(ev.status) :
				"closed by the broker");
			break;
		case SEALPOST_EVENT_RECONNECTED:
			fprintf(stderr, "sealpost: reconnected\n");
			break;
		case SEALPOST_EVENT_CLOSED:
			fprintf(stderr, "sealpost: connection closed%s%s\n", ev.error ? ": " : "",
				ev.error ? sealpost_strerror(ev.error) : "");
			l->lost = 1;
			break;
		default:
			/* Deliveries to the sending device stay in its mailbox: the
			 * connection is in manual-ack mode and acknowledges nothing. */
			break;
		}
	}
}

/* Sends the line just read (skips an empty one). */
static void lines_send(struct lines *l)
{
	uint64_t id = 0;
	int r;

	l->lineno++;
	if (l->overlong) {
		fprintf(stderr, "sealpost: line %lu: message too large (max %zu bytes)\n", l->lineno,
			l->max);
		lines_fail(l, EX_USAGE);
		return;
	}
	if (!l->len)
		return;
	if (l->n == l->cap || l->head + l->n == l->cap) {
		if (l->head) {
			memmove(l->q, &l->q[l->head], l->n * sizeof(l->q[0]));
			l->head = 0;
		} else {
			size_t cap = l->cap ? 2 * l->cap : 64;
			void *q = realloc(l->q, cap * sizeof(l->q[0]));

			if (!q) {
				fprintf(stderr, "sealpost: out of memory\n");
				lines_fail(l, EX_LOST);
				l->lost = 1;
				return;
			}
			l->q = q;
			l->cap = cap;
		}
	}
	for (;;) {
		r = sealpost_client_send_ex(l->c, l->to, l->buf, l->len,
					    l->o->online_only ? SEALPOST_SEND_ONLINE_ONLY : 0, 0, &id);
		if (r != -ENOBUFS)
			break;
		/* The library's queue is full: write it out (reading meanwhile). */
		r = sealpost_client_flush(l->c, (int)l->o->timeout_s * 1000);
		lines_pump(l);
		if (r < 0 || l->lost)
			break;
	}
	if (r < 0) {
		if (!l->lost)
			fprintf(stderr, "sealpost: line %lu: %s\n", l->lineno, sealpost_strerror(r));
		lines_fail(l, r == -EINVAL ? EX_USAGE : EX_LOST);
		if (r != -EINVAL)
			l->lost = 1;
		return;
	}
	if (!l->n)
		l->last_answer = now_ms();
	l->q[l->head + l->n].id = id;
	l->q[l->head + l->n].line = l->lineno;
	l->n++;
}

/* Splits what was read from stdin into lines and sends each. */
static void lines_feed(struct lines *l, const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n && !l->lost; i++) {
		if (p[i] == '\n') {
			lines_send(l);
			l->len = 0;
			l->overlong = 0;
		} else if (l->len < l->max) {
			l->buf[l->len++] = p[i];
		} else {
			l->overlong = 1;
		}
	}
}

/*
 * send --lines: one envelope per line of stdin, each sent as soon as its
 * line is complete (stdin and the connection are polled together, so a slow
 * producer like 'tail -f' works and answers are taken as they come).
 */
static int send_lines(struct sealpost_client *c, const uint8_t *to, const struct opts *o)
{
	static uint8_t chunk[65536];
	struct lines l = { .c = c, .to = to, .o = o, .max = sealpost_client_max_message(c) };
	int64_t timeout_ms = (int64_t)o->timeout_s * 1000;
	int eof = 0, ex;

	l.buf = malloc(l.max ? l.max : 1);
	if (!l.buf) {
		fprintf(stderr, "sealpost: out of memory\n");
		return EX_LOST;
	}
	while ((!eof || l.n) && !l.lost) {
		struct pollfd p[2];
		int np = 0, in = -1, wait = -1, timer;

		if (!eof && l.n < LINES_PENDING_MAX) {
			p[np].fd = STDIN_FILENO;
			p[np].events = POLLIN;
			in = np++;
		}
		p[np].fd = sealpost_client_fd(c);
		p[np].events = sealpost_client_poll_events(c);
		np++;
		if (l.n) {
			int64_t left = l.last_answer + timeout_ms - now_ms();

			if (left <= 0) {
				fprintf(stderr, "sealpost: no answer from the broker for %ld s\n",
					o->timeout_s);
				break;
			}
			wait = (int)left;
		}
		/* The library's timers (reconnect attempts, keepalive pings) need a
		 * step when they are due, also while we only wait for stdin. */
		timer = sealpost_client_timeout(c);
		if (timer >= 0 && (wait < 0 || timer < wait))
			wait = timer;
		if (poll(p, (nfds_t)np, wait) < 0 && errno != EINTR) {
			fprintf(stderr, "sealpost: poll: %s\n", strerror(errno));
			break;
		}
		if (in >= 0 && p[in].revents) {
			ssize_t got = read(STDIN_FILENO, chunk, sizeof(chunk));

			if (got > 0) {
				lines_feed(&l, chunk, (size_t)got);
			} else if (got == 0) {
				eof = 1;
				if ((l.len || l.overlong) && !l.lost)
					lines_send(&l);     /* a last line without a newline */
			} else if (errno != EINTR) {
				fprintf(stderr, "sealpost: standard input: %s\n", strerror(errno));
				lines_fail(&l, EX_USAGE);
				eof = 1;
			}
		}
		sealpost_client_step(c);
		lines_pump(&l);
	}
	if (l.n) {
		/* Lost or timed out: these may or may not be stored. */
		fprintf(stderr, "sealpost: %zu lines got no answer (may or may not be stored), "
			"the first line %lu\n", l.n, l.q[l.head].line);
		lines_fail(&l, EX_LOST);
	} else if (!eof) {
		lines_fail(&l, EX_LOST);
	}
	if (l.failed)
		fprintf(stderr, "sealpost: %lu of %lu lines failed\n", l.failed, l.lineno);
	ex = l.first_fail;
	free(l.q);
	free(l.buf);
	return ex;
}

static int send_account(const struct opts *o, int argc, char **argv, int first);
static int access_keys_path(char *out, size_t cap);
static int prekeys_path(const char *key_path, char *out, size_t cap);
static int list_error(int r, uint64_t kept);

/* $SEALPOST_STORAGE_KEY into sk: 1 set, 0 unset, -1 malformed (said on stderr). */
static int storage_key(uint8_t sk[SEALPOST_STORAGE_KEY_LEN])
{
	const char *hex = getenv("SEALPOST_STORAGE_KEY");
	size_t n = 0;

	if (!hex || !*hex)
		return 0;
	if (strlen(hex) != 2 * SEALPOST_STORAGE_KEY_LEN ||
	    sodium_hex2bin(sk, SEALPOST_STORAGE_KEY_LEN, hex, strlen(hex), NULL, &n, NULL) != 0 ||
	    n != SEALPOST_STORAGE_KEY_LEN) {
		fprintf(stderr, "sealpost: $SEALPOST_STORAGE_KEY is not 64 hex digits\n");
		return -1;
	}
	return 1;
}

/* The stores send and recv attach (sessions: only with a storage key). */
struct stores {
	struct sealpost_sessions *ss;
	struct sealpost_prekeys *pk;
};

static void stores_close(struct sealpost_client *c, struct stores *st)
{
	if (c) {
		sealpost_client_set_sessions(c, NULL);
		sealpost_client_set_prekeys(c, NULL);
	}
	sealpost_sessions_close(st->ss);
	sealpost_prekeys_close(st->pk);
	st->ss = NULL;
	st->pk = NULL;
}

/*
 * $SEALPOST_STORAGE_KEY set: the session store ($SEALPOST_SESSIONS or
 * KEY.sessions) opened and attached to c; with prekeys, the prekeys file
 * too when it exists (recv: first contacts). 0, or an exit status.
 */
static int stores_open(const char *key_path, const struct sealpost_key *key,
		       struct sealpost_client *c, int prekeys, struct stores *st)
{
	const char *ss_env = getenv("SEALPOST_SESSIONS");
	uint8_t sk[SEALPOST_STORAGE_KEY_LEN];
	char path[SP_CLI_CONF_VALUE_MAX + 16];
	int r, have = storage_key(sk);

	memset(st, 0, sizeof(*st));
	if (have < 0)
		return EX_USAGE;
	if (prekeys && prekeys_path(key_path, path, sizeof(path)) == 0 && access(path, F_OK) == 0) {
		r = sealpost_prekeys_open_keyed(&st->pk, path, key, have ? sk : NULL);
		if (r < 0) {
			sodium_memzero(sk, sizeof(sk));
			fprintf(stderr, "sealpost: prekeys file %s: %s\n", path, sealpost_strerror(r));
			return EX_KEYFILE;
		}
		sealpost_client_set_prekeys(c, st->pk);
	}
	if (!have)
		return 0;
	if ((size_t)snprintf(path, sizeof(path), "%s%s", ss_env && *ss_env ? ss_env : key_path,
			     ss_env && *ss_env ? "" : ".sessions") >= sizeof(path)) {
		fprintf(stderr, "sealpost: sessions file name too long\n");
		stores_close(c, st);
		return EX_USAGE;
	}
	r = sealpost_sessions_open(&st->ss, path, key, sk);
	sodium_memzero(sk, sizeof(sk));
	if (r == 0)
		r = sealpost_client_set_sessions(c, st->ss);
	if (r < 0) {
		fprintf(stderr, "sealpost: sessions file %s: %s\n", path, sealpost_strerror(r));
		stores_close(c, st);
		return EX_KEYFILE;
	}
	return 0;
}

/*
 * send --first: the list of account (verified), to's bundle checked
 * against it, the first contact queued (*id). *sent 0 when the device has
 * no prekeys: the caller seals as usual. 0 or an exit status.
 */
static int send_first(struct sealpost_client *c, const struct opts *o, const uint8_t *to,
		      const uint8_t *msg, size_t len, uint64_t *id, int *sent)
{
	uint8_t account[SEALPOST_ACCOUNT_KEY_LEN], *raw;
	struct sealpost_prekey_bundle b;
	struct sealpost_devlist l;
	int tmo = (int)o->timeout_s * 1000, r;
	size_t raw_len = 0;

	*sent = 0;
	memset(&l, 0, sizeof(l));
	if (sealpost_key_from_hex(account, o->first_account) < 0)
		return bad_usage("--first is not 64 hex characters", send_help);
	raw = malloc(SEALPOST_LIST_MAX);
	if (!raw) {
		fprintf(stderr, "sealpost: out of memory\n");
		return EX_LOST;
	}
	r = sealpost_account_fetch_wait(c, account, tmo, &l, raw, SEALPOST_LIST_MAX, &raw_len);
	if (r < 0) {
		free(raw);
		return list_error(r, l.version);
	}
	r = sealpost_prekeys_fetch_wait(c, raw, raw_len, to, tmo, &b);
	free(raw);
	if (r == -SEALPOST_ENOPREKEY) {
		if (o->verbose)
			fprintf(stderr, "no prekeys: an ordinary seal\n");
		return 0;
	}
	if (r == -SEALPOST_EPREKEYBAD || r == -SEALPOST_ENOTONLIST) {
		fprintf(stderr, "sealpost: prekey bundle refused: %s: FORGED\n", sealpost_strerror(r));
		return EX_BADLIST;
	}
	if (r < 0) {
		fprintf(stderr, "sealpost: no prekey bundle: %s\n", sealpost_strerror(r));
		return EX_LOST;
	}
	r = sealpost_client_send_first(c, &b, msg, len, id);
	if (r < 0) {
		fprintf(stderr, "sealpost: first contact: %s\n", sealpost_strerror(r));
		return r == -EMSGSIZE ? EX_USAGE : EX_LOST;
	}
	*sent = 1;
	return 0;
}
static int send_anonymous(const struct opts *o, const uint8_t to[SEALPOST_KEY_LEN],
			  const uint8_t *msg, size_t len);

static int cmd_send(int argc, char **argv)
{
	struct opts o = { .timeout_s = 10 };
	struct sealpost_key *key = NULL;
	struct sealpost_client *c = NULL;
	uint8_t to[SEALPOST_KEY_LEN], *stdin_msg = NULL;
	const uint8_t *msg;
	size_t len;
	struct target t;
	struct stores st = { 0 };
	uint64_t id = 0, seq = 0;
	int first, r, status = 0, ex, sent = 0;

	r = parse(argc, argv, &o, send_help, &first);
	if (r)
		return r < 0 ? EX_OK : r;
	if (o.to_account && !o.to_hex)
		return send_account(&o, argc, argv, first);
	if (!o.to_hex || o.to_account)
		return bad_usage("exactly one of --to and --to-account is required", send_help);
	if (sealpost_key_from_hex(to, o.to_hex) < 0) {
		fprintf(stderr, "sealpost: --to is not 64 hex characters\n");
		return EX_USAGE;
	}
	if (o.first_account && (o.lines || o.anonymous || o.online_only))
		return bad_usage("--first is for one authenticated, stored message", send_help);
	if (o.first_account && !env("SEALPOST_STORAGE_KEY"))
		return bad_usage("--first needs $SEALPOST_STORAGE_KEY (the session store's key)",
				 send_help);
	if (o.first_account)
		o.authenticated = 1;
	if (argc - first > 1)
		return bad_usage("at most one MESSAGE argument", send_help);
	if (o.lines) {
		if (argc - first)
			return bad_usage("--lines reads standard input, no MESSAGE", send_help);
		msg = NULL;
		len = 0;
	} else if (argc - first == 1) {
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
	if (o.anonymous || !o.authenticated) {
		/* Sealed sender: asked for, or a contact whose key we know. */
		char path[SP_CLI_CONF_VALUE_MAX + 1];
		uint8_t k[SP_CLI_ACCESS_KEY_MAX];
		size_t klen = 0;
		unsigned line = 0;

		if (o.anonymous && o.authenticated) {
			ex = bad_usage("--anonymous and --authenticated exclude each other",
				       send_help);
			goto out;
		}
		r = o.access_key ? 0 : access_keys_path(path, sizeof(path));
		if (r == 0 && !o.access_key) {
			r = sp_cli_access_lookup(path, to, k, &klen, &line);
			sodium_memzero(k, sizeof(k));
			if (r == -EBADMSG) {
				fprintf(stderr, "sealpost: %s:%u: not 'CONTACT KEY'\n", path, line);
				ex = EX_USAGE;
				goto out;
			}
			if (r == 1)
				o.anonymous = 1;
		}
		if (o.anonymous) {
			if (o.lines || o.online_only) {
				ex = bad_usage("--lines and --online-only are not for anonymous "
					       "sends (add --authenticated)", send_help);
				goto out;
			}
			ex = send_anonymous(&o, to, msg, len);
			goto out;
		}
	}
	/* Manual acks: deliveries to the sending device are not ours to take. */
	ex = open_target(&o, &t, (int)o.timeout_s * 1000, SEALPOST_CONNECT_MANUAL_ACK, &key, &c);
	if (ex)
		goto out;
	ex = stores_open(t.key_path, key, c, 0, &st);
	if (ex)
		goto out;
	if (o.lines) {
		ex = send_lines(c, to, &o);
		goto out;
	}
	if (len > sealpost_client_max_message(c)) {
		fprintf(stderr, "sealpost: message too large for this broker (max %zu bytes)\n",
			sealpost_client_max_message(c));
		ex = EX_USAGE;
		goto out;
	}
	if (o.first_account) {
		ex = send_first(c, &o, to, msg, len, &id, &sent);
		if (ex)
			goto out;
	}
	r = sent ? 0
		 : sealpost_client_send_ex(c, to, msg, len,
					   o.online_only ? SEALPOST_SEND_ONLINE_ONLY : 0, 0, &id);
	if (r == 0)
		r = sealpost_client_wait_result(c, id, (int)o.timeout_s * 1000, &status, &seq);
	if (r == -EINVAL) {
		fprintf(stderr, "sealpost: --to is not a valid public key\n");
		ex = EX_USAGE;
	} else if (is_enrol_error(r)) {
		fprintf(stderr, "sealpost: cannot connect to %s: %s\n", t.server, sealpost_strerror(r));
		ex = EX_CONNECT;
	} else if (r < 0) {
		fprintf(stderr, "sealpost: no answer from the broker: %s\n", sealpost_strerror(r));
		ex = EX_LOST;
	} else {
		ex = status_exit(status);
		if (o.verbose || ex != EX_OK)
			report(0, status, seq);
	}
out:
	sealpost_client_close(c);
	stores_close(NULL, &st);
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

/* Printed seqs, remembered so a message printed just before a connection
 * broke (its ack lost with it) is not printed again after reconnecting. A
 * ring: only the last few can have unconfirmed acks. */
struct recent {
	uint64_t seq[RECENT_SEQS];
	size_t n, pos;
};

static int recent_has(const struct recent *r, uint64_t seq)
{
	size_t i;

	for (i = 0; i < r->n; i++)
		if (r->seq[i] == seq)
			return 1;
	return 0;
}

static void recent_add(struct recent *r, uint64_t seq)
{
	r->seq[r->pos] = seq;
	r->pos = (r->pos + 1) % RECENT_SEQS;
	if (r->n < RECENT_SEQS)
		r->n++;
}

static int cmd_recv(int argc, char **argv)
{
	struct opts o = { 0 };
	struct target t;
	struct sealpost_key *key = NULL;
	struct sealpost_client *c = NULL;
	struct sealpost_event ev;
	struct recent *recent = NULL;
	struct stores st = { 0 };
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
	if (o.json && o.raw)
		return bad_usage("--json and --raw exclude each other", recv_help);
	recent = calloc(1, sizeof(*recent));
	if (!recent) {
		fprintf(stderr, "sealpost: out of memory\n");
		return EX_LOST;
	}
	if (o.timeout_s)
		deadline = now_ms() + o.timeout_s * 1000;
	ex = open_target(&o, &t, o.timeout_s ? (int)o.timeout_s * 1000 : 0, 0, &key, &c);
	if (ex)
		goto out;
	ex = stores_open(t.key_path, key, c, 1, &st);
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
			fprintf(stderr, "sealpost: %s\n", sealpost_strerror(r));
			ex = EX_LOST;
			goto out;
		}
		switch (ev.type) {
		case SEALPOST_EVENT_MESSAGE:
			if (ev.seq && recent_has(recent, ev.seq)) {
				/* Printed on an earlier connection whose ack was lost;
				 * taking it acknowledges it now. */
				if (o.verbose)
					fprintf(stderr, "skipped seq %llu: printed before\n",
						(unsigned long long)ev.seq);
				break;
			}
			sealpost_key_to_hex(ev.sender, hex);
			if (o.raw) {
				fprintf(stderr, "from %s\n", hex);
				fwrite(ev.data, 1, ev.len, stdout);
			} else if (o.json) {
				if (sp_cli_json_write_message(stdout, hex, ev.seq, ev.data, ev.len) ==
				    -ENOMEM) {
					fprintf(stderr, "sealpost: out of memory\n");
					ex = EX_LOST;
					goto out;   /* not printed: not acknowledged */
				}
			} else {
				printf("%s ", hex);
				print_escaped(ev.data, ev.len);
				putchar('\n');
			}
			fflush(stdout);
			if (ev.seq)
				recent_add(recent, ev.seq);
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
		case SEALPOST_EVENT_DISCONNECTED:
			/* Another connection of this device key replaced us: coming
			 * back would only take it over in turn. */
			if (ev.status == SEALPOST_STATUS_GOAWAY_TAKEOVER) {
				fprintf(stderr, "sealpost: this device key connected elsewhere; "
					"stopping\n");
				ex = EX_LOST;
				goto out;
			}
			fprintf(stderr, "sealpost: connection lost (%s); reconnecting\n",
				ev.error ? sealpost_strerror(ev.error) :
				ev.status ? sealpost_status_string(ev.status) :
				"closed by the broker");
			break;
		case SEALPOST_EVENT_RECONNECTED:
			fprintf(stderr, "sealpost: reconnected\n");
			break;
		case SEALPOST_EVENT_CLOSED:
			/* Final: the library gives up only on what another attempt
			 * cannot fix (a changed server key, a protocol error). */
			fprintf(stderr, "sealpost: connection closed%s%s\n", ev.error ? ": " : "",
				ev.error ? sealpost_strerror(ev.error) : "");
			ex = is_enrol_error(ev.error) ? EX_CONNECT : EX_LOST;
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
			"messages may be delivered again\n", sealpost_strerror(r));
out:
	sealpost_client_close(c);
	stores_close(NULL, &st);
	sealpost_key_free(key);
	free(recent);
	return ex;
}


/* ---- accounts ------------------------------------------------------------ */

static const char account_help[] =
	"usage: sealpost account create --account-key FILE [--label LABEL] [CONNECTION]\n"
	"       sealpost account link-request [--key FILE] --label LABEL\n"
	"       sealpost account link --account-key FILE --code CODE [CONNECTION] REQUEST\n"
	"       sealpost account devices [--json] [CONNECTION] ACCOUNT\n"
	"       sealpost account remove --account-key FILE [CONNECTION] DEVICE\n"
	"       sealpost account audit [--json] [CONNECTION]\n"
	"\n"
	"An account is an Ed25519 key; its signed device list names the devices\n"
	"that receive its mail (docs/PROTOCOL.md 11). The broker keeps the list\n"
	"but cannot make one: only a holder of the account key can.\n"
	"\n"
	"  create        makes a new account key in FILE (mode 0600), publishes the\n"
	"                list {this device (--key), LABEL} as version 1, prints the\n"
	"                account's public key\n"
	"  link-request  on the NEW device: prints a link request (one line) and\n"
	"                its 6-digit code; nothing is sent\n"
	"  link          on a device holding the account key: checks that CODE is\n"
	"                the code of REQUEST (as the new device shows it), fetches\n"
	"                and verifies the current list, adds the device, signs\n"
	"                version + 1 and publishes it\n"
	"  devices       fetches ACCOUNT's list, verifies it, prints one line per\n"
	"                device: KEY ADDED_UNIX_TIME LABEL (--json: one object)\n"
	"  remove        publishes a new list without DEVICE; the broker drops its\n"
	"                mailbox and closes its connection\n"
	"  audit         checks the broker's whole transparency log: its signed head\n"
	"                (consistent with the one kept in --accounts), every leaf a\n"
	"                list that verifies, each account's versions rising, the\n"
	"                root recomputed from the leaves; exit 10 if anything fails\n"
	"\n"
	"options:\n"
	"  --account-key FILE   the account's secret key (keep it like a device key)\n"
	"  --label LABEL        1..64 bytes, no control characters (create: default\n"
	"                       'device')\n"
	"  --code CODE          the code the new device printed\n"
	"  --accounts FILE      the newest list seen per account, to refuse an older\n"
	"                       one (a rollback, exit 6): default $SEALPOST_ACCOUNTS,\n"
	"                       else ~/.config/sealpost/accounts\n"
	"  --json               devices: JSON output\n"
	"  --timeout SECONDS    connect, then each answer (default 10)\n"
	"  --server, --server-key, --server-key-file, --key: as for send\n"
	"\n";

/* The accounts file: --accounts, $SEALPOST_ACCOUNTS, the config directory. */
static int open_accounts(const struct opts *o, struct sealpost_account_store **st)
{
	char path[SP_CLI_CONF_VALUE_MAX + 1];
	int r;

	if (o->accounts) {
		if (strlen(o->accounts) >= sizeof(path))
			return EX_USAGE;
		strcpy(path, o->accounts);
	} else {
		r = sp_cli_conf_path(path, sizeof(path), "SEALPOST_ACCOUNTS", "accounts", NULL);
		if (r < 0) {
			fprintf(stderr, "sealpost: accounts file: %s (use --accounts)\n", strerror(-r));
			return EX_USAGE;
		}
		if (!getenv("SEALPOST_ACCOUNTS") || !*getenv("SEALPOST_ACCOUNTS")) {
			/* the config directory may not exist yet */
			char dir[SP_CLI_CONF_VALUE_MAX + 1];
			char *slash;

			strcpy(dir, path);
			slash = strrchr(dir, '/');
			if (slash) {
				char *up;

				*slash = '\0';
				up = strrchr(dir, '/');
				if (up) {
					*up = '\0';
					(void)mkdir(dir, 0700);   /* ~/.config */
					*up = '/';
				}
				(void)mkdir(dir, 0700);           /* ~/.config/sealpost */
			}
		}
	}
	r = sealpost_account_store_open(st, path);
	if (r < 0) {
		fprintf(stderr, "sealpost: cannot read accounts file %s: %s\n", path,
			sealpost_strerror(r));
		return EX_USAGE;
	}
	return 0;
}

/* Fetches and verifies account's list; an exit status on failure. */
/* What a failed fetch of a list (r) means, said on stderr; the exit status.
 * kept: the version kept for the account (0: not known here). */
static int list_error(int r, uint64_t kept)
{
	if (r == -SEALPOST_EROLLBACK) {
		if (kept)
			fprintf(stderr, "sealpost: ROLLBACK: the broker served version of this "
				"account's list older than version %llu seen before; refused\n",
				(unsigned long long)kept);
		else
			fprintf(stderr, "sealpost: ROLLBACK: the broker served this account's "
				"list older than one seen before; refused\n");
		return EX_ROLLBACK;
	}
	if (r == -SEALPOST_EBADLIST) {
		fprintf(stderr, "sealpost: the broker served a list that does not verify: "
			"FORGED, refused\n");
		return EX_BADLIST;
	}
	if (r == -SEALPOST_ENOLIST) {
		fprintf(stderr, "sealpost: the broker has no list for this account\n");
		return EX_NOLIST;
	}
	if (r == -SEALPOST_ESPLITVIEW || r == -SEALPOST_ELOGPROOF || r == -SEALPOST_ELOGKEY) {
		fprintf(stderr, "sealpost: the broker's transparency log does not verify: %s; "
			"its lists cannot be trusted\n", sealpost_strerror(r));
		return EX_LOG;
	}
	fprintf(stderr, "sealpost: no list from the broker: %s\n", sealpost_strerror(r));
	return EX_LOST;
}

static int fetch_list(struct sealpost_client *c, const uint8_t account[32], int timeout_ms,
		      struct sealpost_devlist *l)
{
	int r = sealpost_account_fetch_wait(c, account, timeout_ms, l, NULL, 0, NULL);

	return r == 0 ? EX_OK : list_error(r, l->version);
}

/* Signs and publishes l; an exit status. */
static int publish(struct sealpost_client *c, const struct sealpost_account *a,
		   const struct sealpost_devlist *l, struct sealpost_account_store *st,
		   int timeout_ms)
{
	uint8_t bytes[SEALPOST_LIST_MAX];
	struct sealpost_devlist kept;
	uint64_t version = 0;
	size_t len = 0;
	int r, status = 0;

	r = sealpost_devlist_sign(a, l, bytes, sizeof(bytes), &len);
	if (r < 0) {
		fprintf(stderr, "sealpost: cannot sign the list: %s\n", sealpost_strerror(r));
		return EX_USAGE;
	}
	r = sealpost_account_publish_wait(c, bytes, len, timeout_ms, &status, &version);
	if (r < 0) {
		fprintf(stderr, "sealpost: no answer from the broker: %s\n", sealpost_strerror(r));
		return EX_LOST;
	}
	if (status != SEALPOST_STATUS_ACCEPTED) {
		fprintf(stderr, "sealpost: list refused: %s\n", sealpost_status_string(status));
		return status_exit(status);
	}
	(void)sealpost_account_store_check(st, bytes, len, &kept);
	fprintf(stderr, "sealpost: published version %llu (%u devices)\n",
		(unsigned long long)version, l->count);
	return EX_OK;
}

/* Connects and loads the account key and the accounts file as asked. */
struct acct_ctx {
	struct opts o;
	struct target t;
	struct sealpost_key *key;
	struct sealpost_client *c;
	struct sealpost_account *a;
	struct sealpost_account_store *st;
	uint8_t self[SEALPOST_KEY_LEN];
	uint8_t account[SEALPOST_ACCOUNT_KEY_LEN];
};

static int acct_open(struct acct_ctx *x, bool need_account, bool create)
{
	int r, ex;

	if (need_account) {
		if (!x->o.account_key)
			return bad_usage("--account-key FILE is required", account_help);
		r = create ? sealpost_account_generate(&x->a)
			   : sealpost_account_load(&x->a, x->o.account_key);
		if (r == 0 && create)
			r = sealpost_account_save(x->a, x->o.account_key);
		if (r < 0) {
			fprintf(stderr, "sealpost: account key %s: %s\n", x->o.account_key,
				sealpost_strerror(r));
			return EX_KEYFILE;
		}
		sealpost_account_public(x->a, x->account);
	}
	ex = open_accounts(&x->o, &x->st);
	if (ex)
		return ex;
	ex = open_target(&x->o, &x->t, (int)x->o.timeout_s * 1000, SEALPOST_CONNECT_MANUAL_ACK,
			 &x->key, &x->c);
	if (ex)
		return ex;
	sealpost_client_set_account_store(x->c, x->st);
	sealpost_key_public(x->key, x->self);
	return 0;
}

static void acct_close(struct acct_ctx *x)
{
	sealpost_client_close(x->c);
	sealpost_key_free(x->key);
	sealpost_account_free(x->a);
	sealpost_account_store_close(x->st);
}

static int account_create(struct acct_ctx *x)
{
	struct sealpost_devlist l;
	char hex[SEALPOST_KEY_HEX_LEN + 1];
	int ex;

	ex = acct_open(x, true, true);
	if (ex)
		return ex;
	memset(&l, 0, sizeof(l));
	memcpy(l.account, x->account, sizeof(l.account));
	l.version = 1;
	if (sealpost_devlist_add(&l, x->self, x->o.label ? x->o.label : "device",
				 (uint64_t)time(NULL)) < 0)
		return bad_usage("--label: 1..64 bytes, no control characters", account_help);
	ex = publish(x->c, x->a, &l, x->st, (int)x->o.timeout_s * 1000);
	if (ex)
		return ex;
	sealpost_key_to_hex(x->account, hex);
	printf("%s\n", hex);
	return EX_OK;
}

static int account_link_request(struct acct_ctx *x)
{
	char req[SEALPOST_LINK_REQUEST_MAX], code[SEALPOST_LINK_CODE_LEN + 1];
	struct target t;
	int r, ex;

	if (!x->o.label)
		return bad_usage("--label LABEL is required", account_help);
	ex = resolve(&x->o, &t);
	if (ex)
		return ex;
	r = sealpost_key_load(&x->key, t.key_path);
	if (r < 0) {
		fprintf(stderr, "sealpost: cannot load key %s: %s\n", t.key_path,
			sealpost_strerror(r));
		return EX_KEYFILE;
	}
	sealpost_key_public(x->key, x->self);
	r = sealpost_link_request(x->self, x->o.label, req, sizeof(req), code);
	if (r < 0)
		return bad_usage("--label: 1..64 bytes, no control characters", account_help);
	printf("%s\n", req);
	fprintf(stderr, "code %s\n", code);
	return EX_OK;
}

static int account_link(struct acct_ctx *x, const char *request)
{
	struct sealpost_devlist l;
	uint8_t dev[SEALPOST_KEY_LEN];
	char label[SEALPOST_LABEL_MAX + 1], code[SEALPOST_LINK_CODE_LEN + 1];
	int r, ex;

	if (!x->o.code)
		return bad_usage("--code CODE (as the new device shows it) is required",
				 account_help);
	r = sealpost_link_request_parse(request, dev, label, code);
	if (r < 0) {
		fprintf(stderr, "sealpost: not a link request\n");
		return EX_USAGE;
	}
	if (strcmp(code, x->o.code) != 0) {
		fprintf(stderr, "sealpost: the code of this request is not %s: not linked\n",
			x->o.code);
		return EX_CODE;
	}
	ex = acct_open(x, true, false);
	if (ex)
		return ex;
	ex = fetch_list(x->c, x->account, (int)x->o.timeout_s * 1000, &l);
	if (ex)
		return ex;
	r = sealpost_devlist_add(&l, dev, label, (uint64_t)time(NULL));
	if (r == -EEXIST) {
		fprintf(stderr, "sealpost: that device is on the list already\n");
		return EX_OK;
	}
	if (r < 0) {
		fprintf(stderr, "sealpost: cannot add the device: %s\n", sealpost_strerror(r));
		return EX_USAGE;
	}
	l.version++;
	return publish(x->c, x->a, &l, x->st, (int)x->o.timeout_s * 1000);
}

static int account_remove(struct acct_ctx *x, const char *device_hex)
{
	struct sealpost_devlist l;
	uint8_t dev[SEALPOST_KEY_LEN];
	int ex;

	if (sealpost_key_from_hex(dev, device_hex) < 0)
		return bad_usage("DEVICE is not 64 hex characters", account_help);
	ex = acct_open(x, true, false);
	if (ex)
		return ex;
	ex = fetch_list(x->c, x->account, (int)x->o.timeout_s * 1000, &l);
	if (ex)
		return ex;
	if (sealpost_devlist_remove(&l, dev) < 0) {
		fprintf(stderr, "sealpost: that device is not on the list\n");
		return EX_USAGE;
	}
	if (l.count == 0) {
		fprintf(stderr, "sealpost: an account keeps at least one device\n");
		return EX_USAGE;
	}
	l.version++;
	return publish(x->c, x->a, &l, x->st, (int)x->o.timeout_s * 1000);
}

static int account_devices(struct acct_ctx *x, const char *account_hex)
{
	struct sealpost_devlist l;
	char hex[SEALPOST_KEY_HEX_LEN + 1];
	int ex;

	if (sealpost_key_from_hex(x->account, account_hex) < 0)
		return bad_usage("ACCOUNT is not 64 hex characters", account_help);
	ex = acct_open(x, false, false);
	if (ex)
		return ex;
	ex = fetch_list(x->c, x->account, (int)x->o.timeout_s * 1000, &l);
	if (ex)
		return ex;
	if (x->o.json)
		printf("{\"account\":\"%s\",\"version\":%llu,\"devices\":[", account_hex,
		       (unsigned long long)l.version);
	else
		printf("version %llu\n", (unsigned long long)l.version);
	for (uint32_t i = 0; i < l.count; i++) {
		sealpost_key_to_hex(l.dev[i].key, hex);
		if (x->o.json) {
			printf("%s{\"key\":\"%s\",\"added\":%llu,\"label\":", i ? "," : "", hex,
			       (unsigned long long)l.dev[i].added_s);
			sp_cli_json_write_string(stdout, (const uint8_t *)l.dev[i].label,
					   strlen(l.dev[i].label));
			printf(",\"self\":%s}", memcmp(l.dev[i].key, x->self, 32) ? "false" : "true");
		} else {
			printf("%s %llu %s%s\n", hex, (unsigned long long)l.dev[i].added_s,
			       l.dev[i].label, memcmp(l.dev[i].key, x->self, 32) ? "" : " (this device)");
		}
	}
	if (x->o.json)
		printf("]}\n");
	return EX_OK;
}

/* The whole log checked (sealpost_log_audit). */
static int account_audit(struct acct_ctx *x)
{
	struct sealpost_log_audit a;
	char key[SEALPOST_KEY_HEX_LEN + 1], root[SEALPOST_KEY_HEX_LEN + 1];
	int r, ex;

	ex = acct_open(x, false, false);
	if (ex)
		return ex;
	r = sealpost_log_audit(x->c, (int)x->o.timeout_s * 1000, &a);
	if (r == -ETIMEDOUT || r == -ENOTCONN || r == -ECONNRESET || r == -EPROTO) {
		fprintf(stderr, "sealpost: audit incomplete: %s\n", sealpost_strerror(r));
		return EX_LOST;
	}
	sealpost_key_to_hex(a.log_key, key);
	/* the root: bytes 17..48 of the sth (PROTOCOL.md 11.7) */
	sealpost_key_to_hex(a.head + 17, root);
	if (x->o.json) {
		printf("{\"ok\":%s,\"size\":%llu,\"accounts\":%llu,\"log_key\":\"%s\","
		       "\"root\":\"%s\",\"bad_leaf\":%llu,\"error\":", r ? "false" : "true",
		       (unsigned long long)a.size, (unsigned long long)a.accounts, key, root,
		       (unsigned long long)a.bad_leaf);
		if (r)
			sp_cli_json_write_string(stdout, (const uint8_t *)sealpost_strerror(r),
						 strlen(sealpost_strerror(r)));
		else
			printf("null");
		printf("}\n");
	} else if (r == 0) {
		printf("log OK: %llu lists of %llu accounts, root %s, log key %s\n",
		       (unsigned long long)a.size, (unsigned long long)a.accounts, root, key);
	}
	if (r == 0)
		return EX_OK;
	if (a.bad_leaf)
		fprintf(stderr, "sealpost: AUDIT FAILED at leaf %llu of %llu: %s\n",
			(unsigned long long)(a.bad_leaf - 1), (unsigned long long)a.size,
			sealpost_strerror(r));
	else
		fprintf(stderr, "sealpost: AUDIT FAILED: %s\n", sealpost_strerror(r));
	return EX_LOG;
}

static int cmd_account(int argc, char **argv)
{
	struct acct_ctx x;
	const char *sub;
	int first, r, nargs;

	memset(&x, 0, sizeof(x));
	if (parse_sub(argc, argv, &x.o, "account", account_help, &sub, &first, &nargs, &r))
		return r;
	if (!strcmp(sub, "create") && nargs == 0)
		r = account_create(&x);
	else if (!strcmp(sub, "link-request") && nargs == 0)
		r = account_link_request(&x);
	else if (!strcmp(sub, "link") && nargs == 1)
		r = account_link(&x, argv[first]);
	else if (!strcmp(sub, "devices") && nargs == 1)
		r = account_devices(&x, argv[first]);
	else if (!strcmp(sub, "remove") && nargs == 1)
		r = account_remove(&x, argv[first]);
	else if (!strcmp(sub, "audit") && nargs == 0)
		r = account_audit(&x);
	else
		r = bad_usage("unknown account subcommand or wrong arguments", account_help);
	acct_close(&x);
	return r;
}

/* send --to-account: one fan-out group to every device of the verified
 * list but this one (and, with --own-account, one to this device's other
 * devices). */
static void fanout_report(const struct opts *o, const struct sealpost_fanout_result *res)
{
	char hex[SEALPOST_KEY_HEX_LEN + 1];

	for (uint32_t i = 0; i < res->count; i++) {
		const struct sealpost_fanout_device *d = &res->dev[i];

		if (!o->verbose && d->status == SEALPOST_STATUS_ACCEPTED)
			continue;
		sealpost_key_to_hex(d->key, hex);
		fprintf(stderr, "%s%s %s\n", d->own ? "own " : "", hex,
			sealpost_status_string(d->status));
	}
}

static int send_account(const struct opts *o, int argc, char **argv, int first)
{
	struct acct_ctx x;
	struct sealpost_fanout_result res;
	uint8_t own[SEALPOST_ACCOUNT_KEY_LEN];
	const uint8_t *msg;
	uint8_t *stdin_msg = NULL;
	size_t len;
	uint32_t n = 0, nown = 0;
	int r, ex;

	memset(&x, 0, sizeof(x));
	x.o = *o;
	if (sealpost_key_from_hex(x.account, o->to_account) < 0)
		return bad_usage("--to-account is not 64 hex characters", send_help);
	if (o->own_account && sealpost_key_from_hex(own, o->own_account) < 0)
		return bad_usage("--own-account is not 64 hex characters", send_help);
	if (!o->own_account && o->account_key) {
		/* a device holding its account's key: that is its own account */
		struct sealpost_account *a = NULL;

		r = sealpost_account_load(&a, o->account_key);
		if (r < 0) {
			fprintf(stderr, "sealpost: account key %s: %s\n", o->account_key,
				sealpost_strerror(r));
			return EX_KEYFILE;
		}
		sealpost_account_public(a, own);
		sealpost_account_free(a);
	}
	if (argc - first > 1 || o->lines)
		return bad_usage("--to-account takes one MESSAGE (or standard input)", send_help);
	if (argc - first == 1) {
		msg = (const uint8_t *)argv[first];
		len = strlen(argv[first]);
	} else {
		r = read_stdin(SEALPOST_MESSAGE_MAX, &stdin_msg, &len);
		if (r < 0) {
			fprintf(stderr, "sealpost: standard input: %s\n", strerror(-r));
			return EX_USAGE;
		}
		msg = stdin_msg;
	}
	ex = acct_open(&x, false, false);
	if (ex)
		goto out;
	r = sealpost_client_send_account(x.c, x.account,
					 o->own_account || o->account_key ? own : NULL, msg, len,
					 (int)o->timeout_s * 1000, &res);
	fanout_report(o, &res);
	for (uint32_t i = 0; i < res.count; i++)
		res.dev[i].own ? nown++ : n++;
	if (r == 0) {
		fprintf(stderr, "sealpost: sent to %u device%s of version %llu in one group",
			n, n == 1 ? "" : "s", (unsigned long long)res.version);
		if (res.own_status)
			fprintf(stderr, ", and to %u other device%s of this device's account", nown,
				nown == 1 ? "" : "s");
		fprintf(stderr, "%s\n", res.retries ? " (after the list changed)" : "");
		ex = EX_OK;
	} else if (r == -SEALPOST_EFANOUT || r == -SEALPOST_EFANOUTMISMATCH) {
		int st = res.own_status && res.own_status != SEALPOST_STATUS_ACCEPTED
				 ? res.own_status : res.status;

		fprintf(stderr, "sealpost: the broker refused the %sgroup: %s; nothing of it was "
			"stored\n", st == res.own_status ? "own account's " : "",
			sealpost_status_string(st));
		ex = status_exit(st);
	} else if (r == -SEALPOST_EFANOUTLIE) {
		fprintf(stderr, "sealpost: %s\n", sealpost_strerror(r));
		ex = EX_BADLIST;
	} else if (r == -SEALPOST_EFANOUTNONE) {
		fprintf(stderr, "sealpost: %s\n", sealpost_strerror(r));
		ex = EX_NOLIST;
	} else if (r == -SEALPOST_EROLLBACK || r == -SEALPOST_EBADLIST || r == -SEALPOST_ENOLIST ||
		   r == -SEALPOST_ESPLITVIEW || r == -SEALPOST_ELOGPROOF || r == -SEALPOST_ELOGKEY) {
		ex = list_error(r, 0);
	} else {
		fprintf(stderr, "sealpost: cannot send: %s\n", sealpost_strerror(r));
		ex = r == -EMSGSIZE ? EX_USAGE : EX_LOST;
	}
out:
	acct_close(&x);
	free(stdin_msg);
	return ex;
}

/* ---- push ---------------------------------------------------------------- */

static const char push_help[] =
	"usage: sealpost push register [CONNECTION] ENDPOINT P256DH AUTH\n"
	"       sealpost push remove [CONNECTION]\n"
	"\n"
	"Web Push wake-ups (docs/PROTOCOL.md 12): while this device (--key) is not\n"
	"connected and mail arrives, the broker wakes it through its push\n"
	"subscription, content-free. ENDPOINT, P256DH and AUTH are the fields of a\n"
	"browser's PushSubscription.toJSON() (endpoint, keys.p256dh, keys.auth),\n"
	"the keys base64url as given there (padding accepted).\n"
	"\n"
	"  register   stores (or replaces) this device's subscription\n"
	"  remove     forgets it\n"
	"\n"
	"options:\n"
	"  --timeout SECONDS    connect, then the answer (default 10)\n"
	"  --server, --server-key, --server-key-file, --key: as for send\n"
	"\n"
	"The broker's refusal is the exit status, its protocol code: 56\n"
	"err_push_bad_key .. 63 err_push_full (62 err_push_disabled: the broker\n"
	"sends no pushes).\n"
	"\n";

/* base64url (or standard, padded or not) text into out (cap bytes): length or -1. */
static long push_b64(const char *s, uint8_t *out, size_t cap)
{
	size_t len = 0;

	if (sodium_base642bin(out, cap, s, strlen(s), "=", &len, NULL,
			      sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0 ||
	    sodium_base642bin(out, cap, s, strlen(s), "=", &len, NULL,
			      sodium_base64_VARIANT_ORIGINAL_NO_PADDING) == 0)
		return (long)len;
	return -1;
}

static int cmd_push(int argc, char **argv)
{
	struct opts o;
	struct target t;
	struct sealpost_key *key = NULL;
	struct sealpost_client *c = NULL;
	struct sealpost_event ev;
	uint8_t p256dh[128], auth[64];
	long p256dh_len = 0, auth_len = 0;
	uint64_t id = 0;
	const char *sub;
	int first, r, nargs, ex;
	bool reg;

	memset(&o, 0, sizeof(o));
	if (parse_sub(argc, argv, &o, "push", push_help, &sub, &first, &nargs, &ex))
		return ex;
	reg = !strcmp(sub, "register");
	if (!(reg && nargs == 3) && !(!strcmp(sub, "remove") && nargs == 0))
		return bad_usage("unknown push subcommand or wrong arguments", push_help);
	if (reg) {
		p256dh_len = push_b64(argv[first + 1], p256dh, sizeof(p256dh));
		auth_len = push_b64(argv[first + 2], auth, sizeof(auth));
		if (p256dh_len < 0)
			return bad_usage("P256DH is not base64url", push_help);
		if (auth_len < 0)
			return bad_usage("AUTH is not base64url", push_help);
	}
	ex = open_target(&o, &t, (int)o.timeout_s * 1000, SEALPOST_CONNECT_NO_RECONNECT, &key, &c);
	if (ex)
		goto out;
	r = reg ? sealpost_push_register(c, argv[first], p256dh, (size_t)p256dh_len, auth,
					 (size_t)auth_len, &id)
		: sealpost_push_remove(c, &id);
	if (r == -EINVAL) {
		fprintf(stderr, "sealpost: the subscription does not fit the protocol's bounds\n");
		ex = EX_USAGE;
		goto out;
	}
	if (r < 0) {
		fprintf(stderr, "sealpost: cannot send: %s\n", sealpost_strerror(r));
		ex = EX_LOST;
		goto out;
	}
	ex = EX_LOST;
	/* The answer, or the connection's end, or the timeout. */
	while ((r = sealpost_client_next_event(c, &ev, (int)o.timeout_s * 1000)) == 1) {
		if (ev.type == SEALPOST_EVENT_CLOSED) {
			fprintf(stderr, "sealpost: the connection failed before the answer\n");
			break;
		}
		if (ev.type != SEALPOST_EVENT_PUSH_RESULT || ev.id != id)
			continue;
		if (ev.status == SEALPOST_STATUS_ACCEPTED) {
			fprintf(stderr, "sealpost: push subscription %s\n",
				reg ? "registered" : "removed");
			ex = EX_OK;
		} else {
			fprintf(stderr, "sealpost: push %s refused: %s\n", sub,
				sealpost_status_string(ev.status));
			ex = status_exit(ev.status);
		}
		break;
	}
	if (r == 0)
		fprintf(stderr, "sealpost: no answer from the broker within %ld s\n", o.timeout_s);
out:
	sodium_memzero(auth, sizeof(auth));
	sealpost_client_close(c);
	sealpost_key_free(key);
	return ex;
}

/* ---- access (sealed sender) ---------------------------------------------- */

static const char access_help[] =
	"usage: sealpost access set [CONNECTION] [--open] KEY\n"
	"       sealpost access rotate [CONNECTION] [--open]\n"
	"       sealpost access open [CONNECTION]\n"
	"       sealpost access close [CONNECTION]\n"
	"       sealpost access contact CONTACT KEY\n"
	"       sealpost access forget CONTACT\n"
	"\n"
	"Sealed sender (docs/PROTOCOL.md 14): the broker admits an anonymous send\n"
	"to this device (--key) only with its access key, or when it accepts\n"
	"anonymous sends from anyone. The broker keeps a hash of the key, never the\n"
	"key; give the key to your contacts inside sealed messages only.\n"
	"\n"
	"  set KEY    sets the access key (32 or 64 hex characters: 16 or 32 bytes)\n"
	"  rotate     sets a new random 32-byte key and prints it (hex) on stdout;\n"
	"             senders of the old key get err_access_rotated from then on\n"
	"  open       accept anonymous sends without a key (the key stays)\n"
	"  close      do not (the default)\n"
	"  Every set, rotate, open and close states the accept-from-anyone flag:\n"
	"  set and rotate close it unless --open is given.\n"
	"\n"
	"  contact CONTACT KEY   keep a contact's access key (CONTACT: its public\n"
	"             key in hex) in the access keys file: 'sealpost send --to\n"
	"             CONTACT' then sends anonymously with it\n"
	"  forget CONTACT        remove it (sends to it are authenticated again)\n"
	"\n"
	"access keys file: $SEALPOST_ACCESS_KEYS, else ~/.config/sealpost/access_keys\n"
	"(or under $XDG_CONFIG_HOME): lines 'CONTACT KEY', mode 0600, rewritten on\n"
	"every change.\n"
	"\n"
	"options:\n"
	"  --open               with set and rotate: also accept from anyone\n"
	"  --timeout SECONDS    connect, then the answer (default 10)\n"
	"  --server, --server-key, --server-key-file, --key: as for send\n"
	"\n"
	"The broker's refusal is the exit status, its protocol code: 71\n"
	"err_access_bad_key, 22 err_internal.\n"
	"\n";

static int access_keys_path(char *out, size_t cap)
{
	int r = sp_cli_conf_path(out, cap, "SEALPOST_ACCESS_KEYS", "access_keys", NULL);

	if (r < 0)
		fprintf(stderr, "sealpost: no access keys file: set SEALPOST_ACCESS_KEYS or HOME\n");
	return r;
}

/* send --anonymous: its own NK connection (no authenticated one at all,
 * so nothing at the broker links this device's connection to the send),
 * the message sealed with the device key. */
static int send_anonymous(const struct opts *o, const uint8_t to[SEALPOST_KEY_LEN],
			  const uint8_t *msg, size_t len)
{
	struct sealpost_connect_opts co = SEALPOST_CONNECT_OPTS_INIT;
	struct sealpost_key *key = NULL;
	struct sealpost_client *a = NULL;
	char path[SP_CLI_CONF_VALUE_MAX + 1];
	uint8_t k[SP_CLI_ACCESS_KEY_MAX];
	size_t klen = 0;
	struct target t;
	uint64_t id = 0, seq = 0;
	unsigned line = 0;
	int r, ex, status = 0;

	ex = resolve(o, &t);
	if (ex)
		return ex;
	if (!t.have_server_key) {
		fprintf(stderr, "sealpost: an anonymous send needs the broker's key (--server-key, "
			"or a known broker): the handshake proves no device key\n");
		return EX_USAGE;
	}
	if (o->access_key) {
		if (sp_cli_access_parse_key(o->access_key, k, &klen) < 0) {
			fprintf(stderr, "sealpost: --access-key is not 32 or 64 hex characters\n");
			return EX_USAGE;
		}
	} else if (access_keys_path(path, sizeof(path)) == 0) {
		r = sp_cli_access_lookup(path, to, k, &klen, &line);
		if (r == -EBADMSG) {
			fprintf(stderr, "sealpost: %s:%u: not 'CONTACT KEY'\n", path, line);
			return EX_USAGE;
		}
		if (r != 1)
			klen = 0;   /* none: for a recipient that accepts anyone */
	}
	r = sealpost_key_load(&key, t.key_path);
	if (r < 0) {
		fprintf(stderr, "sealpost: cannot load key %s: %s\n", t.key_path,
			sealpost_strerror(r));
		ex = EX_KEYFILE;
		goto out;
	}
	co.flags = SEALPOST_CONNECT_NO_RECONNECT | SEALPOST_CONNECT_NO_KEEPALIVE;
	r = sealpost_client_connect_anonymous(&a, t.server, t.server_key, (int)o->timeout_s * 1000,
					      &co);
	if (r < 0) {
		fprintf(stderr, "sealpost: cannot connect anonymously to %s: %s%s\n", t.server,
			sealpost_strerror(r),
			r == -ECONNRESET ? " (does the broker hold that key?)" : "");
		ex = r == -EINVAL ? EX_USAGE : EX_CONNECT;
		goto out;
	}
	if (len > sealpost_client_max_message(a)) {
		fprintf(stderr, "sealpost: message too large for this broker (max %zu bytes)\n",
			sealpost_client_max_message(a));
		ex = EX_USAGE;
		goto out;
	}
	r = sealpost_client_send_anonymous(a, key, to, klen ? k : NULL, klen, msg, len, 0, &id);
	if (r == 0)
		r = sealpost_client_wait_result(a, id, (int)o->timeout_s * 1000, &status, &seq);
	if (r == -EINVAL) {
		fprintf(stderr, "sealpost: --to is not a valid public key\n");
		ex = EX_USAGE;
	} else if (r < 0) {
		fprintf(stderr, "sealpost: no answer from the broker: %s\n", sealpost_strerror(r));
		ex = EX_LOST;
	} else {
		ex = status_exit(status);
		if (o->verbose || ex != EX_OK)
			report(0, status, seq);
	}
out:
	sodium_memzero(k, sizeof(k));
	sealpost_client_close(a);
	sealpost_key_free(key);
	return ex;
}

static int cmd_access(int argc, char **argv)
{
	struct opts o;
	struct target t;
	struct sealpost_key *key = NULL;
	struct sealpost_client *c = NULL;
	char path[SP_CLI_CONF_VALUE_MAX + 1], hex[2 * SP_CLI_ACCESS_KEY_MAX + 1];
	uint8_t k[SP_CLI_ACCESS_KEY_MAX], contact[SEALPOST_KEY_LEN];
	size_t klen = 0;
	const char *sub;
	unsigned line = 0;
	int first, r, nargs, ex;
	bool open_flag;

	memset(&o, 0, sizeof(o));
	if (parse_sub(argc, argv, &o, "access", access_help, &sub, &first, &nargs, &ex))
		return ex;
	if (!strcmp(sub, "contact") || !strcmp(sub, "forget")) {
		bool put = !strcmp(sub, "contact");

		if (nargs != (put ? 2 : 1))
			return bad_usage("wrong arguments", access_help);
		if (sealpost_key_from_hex(contact, argv[first]) < 0)
			return bad_usage("CONTACT is not 64 hex characters", access_help);
		if (put && sp_cli_access_parse_key(argv[first + 1], k, &klen) < 0)
			return bad_usage("KEY is not 32 or 64 hex characters", access_help);
		if (access_keys_path(path, sizeof(path)) < 0)
			return EX_USAGE;
		r = sp_cli_access_put(path, contact, k, put ? klen : 0, &line);
		sodium_memzero(k, sizeof(k));
		if (r == -EBADMSG) {
			fprintf(stderr, "sealpost: %s:%u: not 'CONTACT KEY'\n", path, line);
			return EX_USAGE;
		}
		if (r < 0) {
			fprintf(stderr, "sealpost: cannot write %s: %s\n", path, strerror(-r));
			return EX_KEYFILE;
		}
		return EX_OK;
	}
	if (!strcmp(sub, "set")) {
		if (nargs != 1)
			return bad_usage("set takes one KEY", access_help);
		if (sp_cli_access_parse_key(argv[first], k, &klen) < 0)
			return bad_usage("KEY is not 32 or 64 hex characters", access_help);
		open_flag = o.open_anyone;
	} else if (!strcmp(sub, "rotate")) {
		if (nargs)
			return bad_usage("rotate takes no arguments", access_help);
		sealpost_access_key_generate(k);
		klen = SEALPOST_ACCESS_KEY_LEN;
		open_flag = o.open_anyone;
	} else if ((!strcmp(sub, "open") || !strcmp(sub, "close")) && !nargs && !o.open_anyone) {
		open_flag = !strcmp(sub, "open");
	} else {
		return bad_usage("unknown access subcommand or wrong arguments", access_help);
	}
	ex = open_target(&o, &t, (int)o.timeout_s * 1000,
			 SEALPOST_CONNECT_NO_RECONNECT | SEALPOST_CONNECT_MANUAL_ACK, &key, &c);
	if (ex)
		goto out;
	r = sealpost_set_access(c, klen ? k : NULL, klen, open_flag, (int)o.timeout_s * 1000);
	if (r == 0) {
		ex = EX_OK;
		if (!strcmp(sub, "rotate")) {
			sodium_bin2hex(hex, sizeof(hex), k, klen);
			printf("%s\n", hex);
			sodium_memzero(hex, sizeof(hex));
		}
	} else if (r == -SEALPOST_EACCESSBADKEY || r == -EIO) {
		fprintf(stderr, "sealpost: access %s refused: %s\n", sub, sealpost_strerror(r));
		ex = r == -EIO ? SEALPOST_STATUS_ERR_INTERNAL : SEALPOST_STATUS_ERR_ACCESS_BAD_KEY;
	} else {
		fprintf(stderr, "sealpost: no answer from the broker: %s\n", sealpost_strerror(r));
		ex = EX_LOST;
	}
out:
	sodium_memzero(k, sizeof(k));
	sealpost_client_close(c);
	sealpost_key_free(key);
	return ex;
}


static const char prekeys_help[] =
	"usage: sealpost prekeys upload [CONNECTION] [--count N]\n"
	"       sealpost prekeys status [--key FILE]\n"
	"\n"
	"Prekeys (docs/PROTOCOL.md 17): keys this device (--key) publishes through\n"
	"the broker, signed with its own key, so that others can seal first\n"
	"messages to keys it deletes after use. Their secrets are kept in the\n"
	"prekeys file: the key file's name + \".prekeys\", or $SEALPOST_PREKEYS.\n"
	"\n"
	"  upload     makes --count one-time prekeys (default 20, at most 256) and,\n"
	"             every 7 days, a new signed prekey; saves them, uploads them\n"
	"             with the signed prekey, prints how many one-time prekeys the\n"
	"             broker holds for this device\n"
	"  status     prints what the prekeys file holds (no connection)\n";

/* The prekeys file at path, encrypted under $SEALPOST_STORAGE_KEY when it is set. */
static int prekeys_open(struct sealpost_prekeys **pk, const char *path,
			const struct sealpost_key *key)
{
	uint8_t sk[SEALPOST_STORAGE_KEY_LEN];
	int have = storage_key(sk), r;

	if (have < 0)
		return -EINVAL;
	r = sealpost_prekeys_open_keyed(pk, path, key, have ? sk : NULL);
	sodium_memzero(sk, sizeof(sk));
	return r;
}

/* The prekeys file of key file key_path: $SEALPOST_PREKEYS or KEY.prekeys. */
static int prekeys_path(const char *key_path, char *out, size_t cap)
{
	const char *env = getenv("SEALPOST_PREKEYS");
	int n = env && *env ? snprintf(out, cap, "%s", env) : snprintf(out, cap, "%s.prekeys", key_path);

	if (n < 0 || (size_t)n >= cap) {
		fprintf(stderr, "sealpost: prekeys file name too long\n");
		return EX_USAGE;
	}
	return 0;
}

static int prekeys_status(const struct opts *o)
{
	char path[SP_CLI_CONF_VALUE_MAX + 16];
	struct sealpost_prekeys_info info;
	struct sealpost_prekeys *pk = NULL;
	struct sealpost_key *key = NULL;
	struct target t;
	int r, ex;

	ex = resolve(o, &t);
	if (ex)
		return ex;
	r = sealpost_key_load(&key, t.key_path);
	if (r < 0) {
		fprintf(stderr, "sealpost: cannot load key %s: %s\n", t.key_path, sealpost_strerror(r));
		return EX_KEYFILE;
	}
	ex = prekeys_path(t.key_path, path, sizeof(path));
	if (!ex && (r = prekeys_open(&pk, path, key)) < 0) {
		fprintf(stderr, "sealpost: cannot open %s: %s\n", path, sealpost_strerror(r));
		ex = EX_KEYFILE;
	}
	if (!ex) {
		sealpost_prekeys_info(pk, &info);
		printf("one-time %u\n", info.onetime);
		if (info.has_signed)
			printf("signed %u created %llu\n", info.signed_id,
			       (unsigned long long)info.signed_created_s);
		else
			printf("signed none\n");
		printf("previous %s\n", info.has_previous ? "kept" : "none");
	}
	sealpost_prekeys_close(pk);
	sealpost_key_free(key);
	return ex;
}

static int cmd_prekeys(int argc, char **argv)
{
	char path[SP_CLI_CONF_VALUE_MAX + 16];
	struct opts o;
	struct target t;
	struct sealpost_key *key = NULL;
	struct sealpost_client *c = NULL;
	struct sealpost_prekeys *pk = NULL;
	uint32_t stock = 0;
	const char *sub;
	int first, nargs, r, ex;

	memset(&o, 0, sizeof(o));
	if (parse_sub(argc, argv, &o, "prekeys", prekeys_help, &sub, &first, &nargs, &ex))
		return ex;
	if (nargs != 0)
		return bad_usage("prekeys takes no arguments after the subcommand", prekeys_help);
	if (!strcmp(sub, "status"))
		return prekeys_status(&o);
	if (strcmp(sub, "upload"))
		return bad_usage("unknown prekeys subcommand", prekeys_help);
	if (o.count > SEALPOST_PREKEY_UPLOAD_MAX)
		return bad_usage("--count is at most 256", prekeys_help);
	ex = open_target(&o, &t, (int)o.timeout_s * 1000,
			 SEALPOST_CONNECT_NO_RECONNECT | SEALPOST_CONNECT_MANUAL_ACK, &key, &c);
	if (ex)
		goto out;
	ex = prekeys_path(t.key_path, path, sizeof(path));
	if (ex)
		goto out;
	r = prekeys_open(&pk, path, key);
	if (r < 0) {
		fprintf(stderr, "sealpost: cannot open %s: %s\n", path, sealpost_strerror(r));
		ex = EX_KEYFILE;
		goto out;
	}
	r = sealpost_prekeys_upload_wait(c, pk, o.count ? (unsigned)o.count : 20,
					 (int)o.timeout_s * 1000, &stock);
	if (r == 0) {
		printf("%u\n", stock);
		ex = EX_OK;
	} else if (r == -SEALPOST_EPREKEYLIMIT) {
		fprintf(stderr, "sealpost: prekeys upload refused: %s\n", sealpost_strerror(r));
		ex = SEALPOST_STATUS_ERR_PREKEY_TOO_MANY;
	} else if (r == -SEALPOST_EPREKEYREFUSED || r == -EIO) {
		fprintf(stderr, "sealpost: prekeys upload refused: %s\n", sealpost_strerror(r));
		ex = r == -EIO ? SEALPOST_STATUS_ERR_INTERNAL : SEALPOST_STATUS_ERR_PREKEY_MALFORMED;
	} else {
		fprintf(stderr, "sealpost: no answer from the broker: %s\n", sealpost_strerror(r));
		ex = EX_LOST;
	}
out:
	sealpost_prekeys_close(pk);
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
	if (!strcmp(argv[1], "--version")) {
		/* The library's own version: the one this CLI runs on. */
		printf("sealpost %s\n", sealpost_version());
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
	if (!strcmp(argv[1], "account"))
		return cmd_account(argc - 1, argv + 1);
	if (!strcmp(argv[1], "push"))
		return cmd_push(argc - 1, argv + 1);
	if (!strcmp(argv[1], "access"))
		return cmd_access(argc - 1, argv + 1);
	if (!strcmp(argv[1], "prekeys"))
		return cmd_prekeys(argc - 1, argv + 1);
	fprintf(stderr, "sealpost: unknown command '%s'\n", argv[1]);
	fputs(usage_text, stderr);
	return EX_USAGE;
}
