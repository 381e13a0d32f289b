/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_push_sub.h: a Web Push subscription: its checks at registration
 * (PROTOCOL.md 12), its stored encoding, the endpoint's origin, and the
 * address policy (private and loopback addresses refused unless
 * push-allow-private).
 *
 * Stored value v1 (sp_store.h, "push subscriptions"):
 *   u8 version=1 | u8 zero | u16 endpoint_len (BE) | p256dh[65] | auth[16] |
 *   endpoint[endpoint_len]
 * No protocol, no I/O. Errors: 0 or a negative errno (-EBADMSG: a stored
 * value that does not decode).
 */
#ifndef SP_PUSH_SUB_H
#define SP_PUSH_SUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "sp_limits.h"

struct sp_push_sub {
	uint8_t p256dh[SP_PUSH_P256DH_LEN];
	uint8_t auth[SP_PUSH_AUTH_LEN];
	uint16_t endpoint_len;
	char endpoint[SP_PUSH_ENDPOINT_WIRE_MAX + 1]; /* NUL-terminated */
};

enum { SP_PUSH_SUB_HDR_LEN = 4 + SP_PUSH_P256DH_LEN + SP_PUSH_AUTH_LEN };

struct sp_push_policy {
	uint32_t endpoint_max;
	bool allow_private;
	const char *allowed_hosts;      /* borrowed; "" = any public host */
};

/*
 * The registration's verdict: SP_STATUS_ACCEPTED and *out filled, or the
 * ERR_PUSH_* status of the first check that fails, in this order: endpoint
 * too large, p256dh, auth, endpoint syntax, https, host. All inputs
 * borrowed.
 */
enum sp_status sp_push_sub_check(const struct sp_push_policy *pol, const uint8_t *endpoint,
				 size_t endpoint_len, const uint8_t *p256dh, size_t p256dh_len,
				 const uint8_t *auth, size_t auth_len, struct sp_push_sub *out);

/* The encoded value's length, and the encoding into out (filled, at least
 * that many bytes). */
size_t sp_push_sub_size(const struct sp_push_sub *s);
void sp_push_sub_encode(const struct sp_push_sub *s, uint8_t *out);
/* Decodes a stored value (borrowed) into *s: 0 or -EBADMSG. */
int sp_push_sub_decode(const uint8_t *v, size_t len, struct sp_push_sub *s);

/* "scheme://host[:port]" of an endpoint that passed the check (the VAPID
 * audience) into out (cap bytes, filled): 0 or -EMSGSIZE / -EINVAL. */
int sp_push_sub_origin(const char *endpoint, char *out, size_t cap);

/* true for loopback, private, link-local, unique-local, CGNAT, multicast,
 * unspecified and reserved addresses (IPv4, IPv6, IPv4-mapped). */
bool sp_push_addr_private(const struct sockaddr *sa);

#endif
