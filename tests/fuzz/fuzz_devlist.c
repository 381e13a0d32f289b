/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_devlist.c: sp_devlist_verify on arbitrary bytes: what the broker gets
 * in a ListPut body and what a client library gets in a ListResult or
 * ListChanged body (docs/PROTOCOL.md 11.1).
 *
 * Invariants: decode and verify agree on everything but the signature; a
 * decoded list is canonical (sorted, unique, valid keys, labels); a list
 * that verifies re-signs, with the fixed test account key below when it is
 * that account's, to exactly the same bytes (Ed25519 is deterministic), so
 * there is one encoding per list. The seeds (tests/fuzz/corpus/fuzz_devlist)
 * are lists signed with that key.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "sp_devlist.h"
#include "sp_key.h"

/* Fixed test seed: never used anywhere else. */
static const uint8_t seed[32] = { 0xde, 0x71, 0x15, 0x7, 1, 2, 3, 4 };

static void check(int ok)
{
	if (!ok)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t pk[SP_ACCOUNT_KEY_LEN], sk[SP_ACCOUNT_SECRET_LEN];
	static uint8_t again[SP_DEVLIST_MAX];
	static bool ready;
	struct sp_devlist a, b;
	size_t len = 0;
	int rd, rv;

	if (!ready) {
		check(sodium_init() >= 0);
		crypto_sign_seed_keypair(pk, sk, seed);
		ready = true;
	}
	rd = sp_devlist_decode(data, size, &a);
	rv = sp_devlist_verify(data, size, &b);
	check(rd == 0 || rd == -EBADMSG || rd == -EMSGSIZE || rd == -EDOM || rd == -ENOTUNIQ);
	if (rd < 0) {
		check(rv == rd);
		return 0;
	}
	check(rv == 0 || rv == -EKEYREJECTED);
	check(a.version > 0 && a.count > 0 && a.count <= SP_DEVLIST_DEVICES_MAX);
	for (uint32_t i = 0; i < a.count; i++) {
		check(sp_noise_key_valid(a.dev[i].key));
		check(sp_devlist_label_ok(a.dev[i].label, a.dev[i].label_len) == 0);
		check(strlen(a.dev[i].label) == a.dev[i].label_len);
		check(i == 0 || memcmp(a.dev[i - 1].key, a.dev[i].key, SP_KEY_LEN) < 0);
	}
	if (rv == 0 && memcmp(a.account, pk, sizeof(pk)) == 0) {
		check(sp_devlist_sign(&a, sk, again, sizeof(again), &len) == 0);
		check(len == size && memcmp(again, data, size) == 0);
	}
	return 0;
}
