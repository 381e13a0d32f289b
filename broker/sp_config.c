/*
 * sp_config.c: defaults, the option table, parsing and --help.
 */
#include "sp_config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "sp_limits.h"

enum opt_kind { OPT_LISTEN, OPT_PATH, OPT_U32, OPT_U64, OPT_LEVEL, OPT_HELP, OPT_VERSION };

struct opt {
	const char *name;       /* without the leading "--" */
	const char *arg;        /* metavariable in --help, NULL for flags */
	enum opt_kind kind;
	size_t off;             /* field offset in struct sp_config */
	uint64_t min, max;      /* inclusive range for OPT_U32 / OPT_U64 */
	bool pow2;              /* value must be a power of two */
	const char *help;
};

#define FIELD(f) offsetof(struct sp_config, f)

static const struct opt opts[] = {
	{ "listen", "HOST:PORT", OPT_LISTEN, FIELD(listen), 0, 0, false,
	  "address to listen on; IPv6 as [::1]:7400" },
	{ "data-dir", "DIR", OPT_PATH, FIELD(data_dir), 0, 0, false,
	  "data directory (created 0700; holds server.key, server.pub, the lock)" },
	{ "max-conns", "N", OPT_U32, FIELD(max_conns), 1, SP_CONFIG_MAX_CONNS_MAX, false,
	  "most connections at once; more are closed right after accept" },
	{ "max-envelope", "BYTES", OPT_U32, FIELD(max_envelope), 1, SP_BODY_MAX, false,
	  "largest envelope body accepted (protocol maximum 64000)" },
	{ "sendq-max", "BYTES", OPT_U64, FIELD(sendq_max), 65536, (uint64_t)1 << 32, false,
	  "per-connection outbound queue: above it envelopes for that device get "
	  "err_recipient_busy; above twice it the connection is closed as a slow consumer" },
	{ "handshake-timeout", "MS", OPT_U32, FIELD(handshake_timeout_ms), 100, 600000, false,
	  "a connection must finish its handshake within this many milliseconds" },
	{ "idle-timeout", "S", OPT_U32, FIELD(idle_timeout_s), 0, 86400 * 7, false,
	  "close a connection that sent nothing for this many seconds (GoAway idle); 0 = off" },
	{ "handshake-rate", "N", OPT_U32, FIELD(handshake_rate), 0, 10000000, false,
	  "connections accepted per second per shard (token bucket); excess are closed "
	  "at once and counted; 0 = no limit" },
	{ "recv-buffers", "N", OPT_U32, FIELD(recv_buffers), 1, SP_CONFIG_RECV_BUFFERS_MAX, true,
	  "receive buffers in the provided-buffer ring (a power of two)" },
	{ "recv-buffer-size", "BYTES", OPT_U32, FIELD(recv_buffer_size), 64, 1 << 20, false,
	  "bytes per receive buffer" },
	{ "close-grace", "MS", OPT_U32, FIELD(close_grace_ms), 0, 60000, false,
	  "after a GoAway (shutdown, takeover, slow consumer, idle), how long queued output "
	  "may take to drain before the connection is cut" },
	{ "log-rate", "N", OPT_U32, FIELD(log_rate), 1, 1000000, false,
	  "log lines per second per kind of peer-triggered event "
	  "(excess counted as suppressed=N)" },
	{ "log-level", "LEVEL", OPT_LEVEL, FIELD(log_level), 0, 0, false,
	  "error, warn, info or debug (peer addresses appear at debug only)" },
	{ "help", NULL, OPT_HELP, 0, 0, 0, false, "print this help and exit" },
	{ "version", NULL, OPT_VERSION, 0, 0, 0, false, "print the version and exit" },
};

void sp_config_defaults(struct sp_config *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->listen, sizeof(c->listen), "%s", SP_DEFAULT_LISTEN);
	sp_config_parse_listen(c->listen, &c->listen_addr, &c->listen_addr_len);
	snprintf(c->data_dir, sizeof(c->data_dir), "%s", SP_DEFAULT_DATA_DIR);
	c->max_conns = SP_DEFAULT_MAX_CONNS;
	c->max_envelope = SP_BODY_MAX;
	c->sendq_max = SP_DEFAULT_SENDQ_MAX;
	c->handshake_timeout_ms = SP_DEFAULT_HANDSHAKE_TIMEOUT_MS;
	c->idle_timeout_s = SP_DEFAULT_IDLE_TIMEOUT_S;
	c->handshake_rate = SP_DEFAULT_HANDSHAKE_RATE;
	c->recv_buffers = SP_DEFAULT_RECV_BUFFERS;
	c->recv_buffer_size = SP_DEFAULT_RECV_BUFFER_SIZE;
	c->close_grace_ms = SP_DEFAULT_CLOSE_GRACE_MS;
	c->log_rate = SP_DEFAULT_LOG_RATE;
	c->log_level = SP_LOG_INFO;
}

static int parse_port(const char *s, uint16_t *port)
{
	char *end;
	unsigned long v;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v == 0 || v > 65535)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

int sp_config_parse_listen(const char *s, struct sockaddr_storage *addr, socklen_t *len)
{
	char host[SP_CONFIG_HOST_MAX];
	const char *colon, *hs = s;
	size_t hlen;
	uint16_t port;

	memset(addr, 0, sizeof(*addr));
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':')
			return -EINVAL;
		hs = s + 1;
		hlen = (size_t)(close - hs);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -EINVAL;
		hlen = (size_t)(colon - s);
	}
	if (hlen == 0 || hlen >= sizeof(host) || parse_port(colon + 1, &port))
		return -EINVAL;
	memcpy(host, hs, hlen);
	host[hlen] = '\0';

	struct sockaddr_in *v4 = (struct sockaddr_in *)addr;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)addr;

	if (s[0] != '[' && inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons(port);
		*len = sizeof(*v4);
		return 0;
	}
	if (s[0] == '[' && inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons(port);
		*len = sizeof(*v6);
		return 0;
	}
	return -EINVAL;
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9')       /* strtoull accepts "-1" and spaces */
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

static int set_number(struct sp_config *c, const struct opt *o, const char *val, char *err,
		      size_t err_cap)
{
	uint64_t v;

	if (parse_u64(val, &v)) {
		snprintf(err, err_cap, "--%s: '%s' is not a number", o->name, val);
		return -EINVAL;
	}
	if (v < o->min || v > o->max) {
		snprintf(err, err_cap,
			 "--%s: %" PRIu64 " is out of range [%" PRIu64 ", %" PRIu64 "]", o->name,
			 v, o->min, o->max);
		return -EINVAL;
	}
	if (o->pow2 && (v & (v - 1))) {
		snprintf(err, err_cap, "--%s: %" PRIu64 " is not a power of two", o->name, v);
		return -EINVAL;
	}
	if (o->kind == OPT_U32)
		*(uint32_t *)((char *)c + o->off) = (uint32_t)v;
	else
		*(uint64_t *)((char *)c + o->off) = v;
	return 0;
}

static int set_value(struct sp_config *c, const struct opt *o, const char *val, char *err,
		     size_t err_cap)
{
	switch (o->kind) {
	case OPT_LISTEN:
		if (strlen(val) >= sizeof(c->listen) ||
		    sp_config_parse_listen(val, &c->listen_addr, &c->listen_addr_len)) {
			snprintf(err, err_cap,
				 "--listen: '%s' is not HOST:PORT with a numeric address "
				 "(IPv6: [::1]:7400)", val);
			return -EINVAL;
		}
		snprintf(c->listen, sizeof(c->listen), "%s", val);
		return 0;
	case OPT_PATH:
		if (!*val || strlen(val) >= sizeof(c->data_dir) - 32) {
			snprintf(err, err_cap, "--%s: empty or too long", o->name);
			return -EINVAL;
		}
		snprintf(c->data_dir, sizeof(c->data_dir), "%s", val);
		return 0;
	case OPT_LEVEL:
		if (sp_log_level_parse(val, &c->log_level)) {
			snprintf(err, err_cap, "--%s: '%s' is not error, warn, info or debug",
				 o->name, val);
			return -EINVAL;
		}
		return 0;
	default:
		return set_number(c, o, val, err, err_cap);
	}
}

static const struct opt *find_opt(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		if (strlen(opts[i].name) == len && memcmp(opts[i].name, name, len) == 0)
			return &opts[i];
	}
	return NULL;
}

int sp_config_parse(struct sp_config *c, int argc, char *const argv[], char *err, size_t err_cap)
{
	int result = SP_CONFIG_OK;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *eq, *val = NULL;
		const struct opt *o;

		if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
			snprintf(err, err_cap, "unexpected argument '%s' (see --help)", a);
			return -EINVAL;
		}
		a += 2;
		eq = strchr(a, '=');
		o = find_opt(a, eq ? (size_t)(eq - a) : strlen(a));
		if (!o) {
			snprintf(err, err_cap, "unknown option '%s' (see --help)", argv[i]);
			return -EINVAL;
		}
		if (o->kind == OPT_HELP || o->kind == OPT_VERSION) {
			if (eq) {
				snprintf(err, err_cap, "--%s takes no value", o->name);
				return -EINVAL;
			}
			if (result == SP_CONFIG_OK || o->kind == OPT_HELP)
				result = o->kind == OPT_HELP ? SP_CONFIG_HELP : SP_CONFIG_VERSION;
			continue;
		}
		if (eq) {
			val = eq + 1;
		} else if (i + 1 < argc) {
			val = argv[++i];
		} else {
			snprintf(err, err_cap, "--%s needs a value (%s)", o->name, o->arg);
			return -EINVAL;
		}
		if (set_value(c, o, val, err, err_cap))
			return -EINVAL;
	}
	return result;
}

static void default_text(const struct opt *o, char *buf, size_t cap)
{
	struct sp_config d;

	sp_config_defaults(&d);
	switch (o->kind) {
	case OPT_LISTEN: snprintf(buf, cap, "%.48s", d.listen); break;
	case OPT_PATH: snprintf(buf, cap, "%.48s", d.data_dir); break;
	case OPT_LEVEL: snprintf(buf, cap, "%s", sp_log_level_name(d.log_level)); break;
	case OPT_U32:
		snprintf(buf, cap, "%" PRIu32, *(const uint32_t *)((const char *)&d + o->off));
		break;
	case OPT_U64:
		snprintf(buf, cap, "%" PRIu64, *(const uint64_t *)((const char *)&d + o->off));
		break;
	default: buf[0] = '\0';
	}
}

void sp_config_usage(FILE *f, const char *prog)
{
	fprintf(f, "usage: %s [--listen HOST:PORT] [--data-dir DIR] [OPTION...]\n\n"
		   "sealpostd: a blind message broker for sealed envelopes.\n\n"
		   "Options (--name VALUE or --name=VALUE):\n", prog);
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		const struct opt *o = &opts[i];
		char left[64], def[64];

		snprintf(left, sizeof(left), "--%s%s%s", o->name, o->arg ? " " : "",
			 o->arg ? o->arg : "");
		default_text(o, def, sizeof(def));
		fprintf(f, "  %-28s %s", left, o->help);
		if (def[0])
			fprintf(f, " (default: %s)", def);
		if (o->kind == OPT_U32 || o->kind == OPT_U64)
			fprintf(f, " [%" PRIu64 "..%" PRIu64 "]", o->min, o->max);
		fputc('\n', f);
	}
}
