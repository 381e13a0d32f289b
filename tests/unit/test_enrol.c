/* SPDX-License-Identifier: Apache-2.0 */
/* test_enrol.c: enrolment tokens (lib/crypto/sp_enrol.c): mint, verify,
 * tampered, expired, another key, the text form. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <sodium.h>

#include "sp_enrol.h"

static const uint64_t now = 1764700000000ull;

static void test_round_trip(void **state)
{
	uint8_t key[SP_ENROL_KEY_LEN], tok[SP_ENROL_TOKEN_LEN], back[SP_ENROL_TOKEN_LEN];
	uint8_t id[SP_ENROL_ID_LEN], id2[SP_ENROL_ID_LEN];
	char text[SP_ENROL_TEXT_LEN + 1];
	uint64_t exp = 0;

	(void)state;
	sp_enrol_keygen(key);
	sp_enrol_mint(key, now + 60000, tok);
	assert_int_equal(tok[0], SP_ENROL_VERSION);
	assert_int_equal(sp_enrol_verify(key, tok, sizeof(tok), now, id, &exp), 0);
	assert_true(exp == now + 60000);
	assert_memory_equal(id, tok + 1, SP_ENROL_ID_LEN);
	assert_int_equal(sp_enrol_to_text(tok, text, sizeof(text)), 0);
	assert_int_equal(strlen(text), SP_ENROL_TEXT_LEN);
	assert_null(strpbrk(text, "+/="));
	assert_int_equal(sp_enrol_from_text(text, back), 0);
	assert_memory_equal(back, tok, sizeof(tok));
	/* two tokens never share an id */
	sp_enrol_mint(key, now + 60000, back);
	assert_int_equal(sp_enrol_verify(key, back, sizeof(back), now, id2, NULL), 0);
	assert_memory_not_equal(id, id2, SP_ENROL_ID_LEN);
	assert_int_equal(sp_enrol_to_text(tok, text, SP_ENROL_TEXT_LEN), -EMSGSIZE);
}

static void test_tampered(void **state)
{
	uint8_t key[SP_ENROL_KEY_LEN], other[SP_ENROL_KEY_LEN], tok[SP_ENROL_TOKEN_LEN];

	(void)state;
	sp_enrol_keygen(key);
	sp_enrol_keygen(other);
	sp_enrol_mint(key, now + 60000, tok);
	/* every bit of id, expiry and MAC matters */
	for (size_t i = 1; i < sizeof(tok); i++)
		for (int b = 0; b < 8; b++) {
			tok[i] ^= (uint8_t)(1u << b);
			assert_int_equal(sp_enrol_verify(key, tok, sizeof(tok), now, NULL, NULL),
					 -EKEYREJECTED);
			tok[i] ^= (uint8_t)(1u << b);
		}
	/* an expiry pushed later is not believed */
	tok[1 + SP_ENROL_ID_LEN] = 0x7f;
	assert_int_equal(sp_enrol_verify(key, tok, sizeof(tok), now, NULL, NULL), -EKEYREJECTED);
	sp_enrol_mint(key, now + 60000, tok);
	assert_int_equal(sp_enrol_verify(other, tok, sizeof(tok), now, NULL, NULL), -EKEYREJECTED);
	tok[0] = 2;
	assert_int_equal(sp_enrol_verify(key, tok, sizeof(tok), now, NULL, NULL), -EBADMSG);
	tok[0] = 1;
	assert_int_equal(sp_enrol_verify(key, tok, sizeof(tok) - 1, now, NULL, NULL), -EBADMSG);
	assert_int_equal(sp_enrol_verify(key, tok, 0, now, NULL, NULL), -EBADMSG);
}

static void test_expired(void **state)
{
	uint8_t key[SP_ENROL_KEY_LEN], tok[SP_ENROL_TOKEN_LEN], id[SP_ENROL_ID_LEN];
	uint64_t exp = 0;

	(void)state;
	sp_enrol_keygen(key);
	sp_enrol_mint(key, now, tok);
	assert_int_equal(sp_enrol_verify(key, tok, sizeof(tok), now - 1, NULL, NULL), 0);
	/* expires_ms itself is past: the token lives for [mint, expires_ms) */
	assert_int_equal(sp_enrol_verify(key, tok, sizeof(tok), now, id, &exp), -ETIME);
	assert_true(exp == now);
	assert_int_equal(sp_enrol_verify(key, tok, sizeof(tok), UINT64_MAX, NULL, NULL), -ETIME);
}

static void test_text_refused(void **state)
{
	uint8_t key[SP_ENROL_KEY_LEN], tok[SP_ENROL_TOKEN_LEN], back[SP_ENROL_TOKEN_LEN];
	char text[SP_ENROL_TEXT_LEN + 4], spaced[SP_ENROL_TEXT_LEN + 8];

	(void)state;
	sp_enrol_keygen(key);
	sp_enrol_mint(key, now + 1, tok);
	assert_int_equal(sp_enrol_to_text(tok, text, sizeof(text)), 0);
	snprintf(spaced, sizeof(spaced), "  %s\n", text);
	assert_int_equal(sp_enrol_from_text(spaced, back), 0);
	assert_memory_equal(back, tok, sizeof(tok));
	assert_int_equal(sp_enrol_from_text("", back), -EBADMSG);
	assert_int_equal(sp_enrol_from_text("not a token", back), -EBADMSG);
	text[10] = '+';         /* standard base64, not url-safe */
	assert_int_equal(sp_enrol_from_text(text, back), -EBADMSG);
	text[10] = '*';
	assert_int_equal(sp_enrol_from_text(text, back), -EBADMSG);
	assert_int_equal(sp_enrol_to_text(tok, text, sizeof(text)), 0);
	text[SP_ENROL_TEXT_LEN - 1] = '\0';
	assert_int_equal(sp_enrol_from_text(text, back), -EBADMSG);
	tok[0] = 9;             /* another version */
	assert_int_equal(sp_enrol_to_text(tok, text, sizeof(text)), 0);
	assert_int_equal(sp_enrol_from_text(text, back), -EBADMSG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_tampered),
		cmocka_unit_test(test_expired),
		cmocka_unit_test(test_text_refused),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
