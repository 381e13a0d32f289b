/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_enrol.c: one-use enrolment tokens (sp_enrol.h).
 */
#include "sp_enrol.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "sp_be.h"

_Static_assert(SP_ENROL_KEY_LEN == crypto_auth_KEYBYTES, "enrol key is a crypto_auth key");
_Static_assert(SP_ENROL_MAC_LEN == crypto_auth_BYTES, "enrol MAC is a crypto_auth tag");

enum { BODY_LEN = SP_ENROL_TOKEN_LEN - SP_ENROL_MAC_LEN, DOMAIN_LEN = sizeof(SP_ENROL_DOMAIN) - 1 };

void sp_enrol_keygen(uint8_t key[SP_ENROL_KEY_LEN])
{
	crypto_auth_keygen(key);
}

/* mac over SP_ENROL_DOMAIN || body: the domain keeps the key from ever
 * authenticating anything but a token, should it be reused by mistake. */
static void token_mac(const uint8_t key[SP_ENROL_KEY_LEN], const uint8_t body[BODY_LEN],
		      uint8_t mac[SP_ENROL_MAC_LEN])
{
	uint8_t msg[DOMAIN_LEN + BODY_LEN];

	memcpy(msg, SP_ENROL_DOMAIN, DOMAIN_LEN);
	memcpy(msg + DOMAIN_LEN, body, BODY_LEN);
	crypto_auth(mac, msg, sizeof(msg), key);
}

void sp_enrol_mint(const uint8_t key[SP_ENROL_KEY_LEN], uint64_t expires_ms,
		   uint8_t out[SP_ENROL_TOKEN_LEN])
{
	out[0] = SP_ENROL_VERSION;
	randombytes_buf(out + 1, SP_ENROL_ID_LEN);
	sp_be_put64(out + 1 + SP_ENROL_ID_LEN, expires_ms);
	token_mac(key, out, out + BODY_LEN);
}

int sp_enrol_verify(const uint8_t key[SP_ENROL_KEY_LEN], const uint8_t *tok, size_t len,
		    uint64_t now_ms, uint8_t id[SP_ENROL_ID_LEN], uint64_t *expires_ms)
{
	uint8_t mac[SP_ENROL_MAC_LEN];
	uint64_t exp;
	int bad;

	if (len != SP_ENROL_TOKEN_LEN || tok[0] != SP_ENROL_VERSION)
		return -EBADMSG;
	token_mac(key, tok, mac);
	bad = sodium_memcmp(mac, tok + BODY_LEN, SP_ENROL_MAC_LEN);
	sodium_memzero(mac, sizeof(mac));
	if (bad)
		return -EKEYREJECTED;
	exp = sp_be_get64(tok + 1 + SP_ENROL_ID_LEN);
	if (id)
		memcpy(id, tok + 1, SP_ENROL_ID_LEN);
	if (expires_ms)
		*expires_ms = exp;
	return now_ms >= exp ? -ETIME : 0;
}

int sp_enrol_to_text(const uint8_t tok[SP_ENROL_TOKEN_LEN], char *out, size_t cap)
{
	if (cap <= SP_ENROL_TEXT_LEN)
		return -EMSGSIZE;
	sodium_bin2base64(out, cap, tok, SP_ENROL_TOKEN_LEN,
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	return 0;
}

int sp_enrol_from_text(const char *text, uint8_t out[SP_ENROL_TOKEN_LEN])
{
	size_t n, bin_len = 0;
	const char *end = NULL;

	while (*text == ' ' || *text == '\t')
		text++;
	n = strlen(text);
	while (n && isspace((unsigned char)text[n - 1]))
		n--;
	if (n != SP_ENROL_TEXT_LEN)
		return -EBADMSG;
	if (sodium_base642bin(out, SP_ENROL_TOKEN_LEN, text, n, NULL, &bin_len, &end,
			      sodium_base64_VARIANT_URLSAFE_NO_PADDING) ||
	    bin_len != SP_ENROL_TOKEN_LEN || end != text + n || out[0] != SP_ENROL_VERSION)
		return -EBADMSG;
	return 0;
}
