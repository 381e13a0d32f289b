/* SPDX-License-Identifier: Apache-2.0 */
/*
 * consumer.c: an app built against an installed libsealpost only (the
 * installed header, pkg-config or find_package), as tests/install/run.cmake
 * builds it. Checks the version and one key function end to end.
 */
#include <stdio.h>
#include <string.h>

#include <sealpost.h>

int main(void)
{
	struct sealpost_key *k = NULL;
	uint8_t pub[SEALPOST_KEY_LEN], back[SEALPOST_KEY_LEN];
	char hex[SEALPOST_KEY_HEX_LEN + 1];
	int r;

	if (strcmp(sealpost_version(), SEALPOST_VERSION_STRING) != 0) {
		fprintf(stderr, "consumer: library %s, header %s\n", sealpost_version(),
			SEALPOST_VERSION_STRING);
		return 1;
	}
	r = sealpost_key_generate(&k);
	if (r < 0) {
		fprintf(stderr, "consumer: key_generate: %s\n", sealpost_strerror(r));
		return 1;
	}
	sealpost_key_public(k, pub);
	sealpost_key_to_hex(pub, hex);
	sealpost_key_free(k);
	if (sealpost_key_from_hex(back, hex) != 0 || memcmp(back, pub, sizeof(pub)) != 0) {
		fprintf(stderr, "consumer: hex round trip failed\n");
		return 1;
	}
	printf("sealpost %s key %s\n", sealpost_version(), hex);
	return 0;
}
