/* SPDX-License-Identifier: Apache-2.0 */
/*
 * session_peer.h: the fixed keys and the record format shared by
 * fuzz_session.c and the seed generator seed_session.c.
 *
 * An established-mode input is records: u16-be len | plaintext, each
 * encrypted by the fuzzed session's peer as one transport message; a record
 * with the top bit of len set has one ciphertext bit flipped.
 */
#ifndef SP_FUZZ_SESSION_PEER_H
#define SP_FUZZ_SESSION_PEER_H

#include <stdint.h>

#include "sp_limits.h"

static const uint8_t fuzz_client_s[SP_KEY_LEN] = { 0xc0, 0x22, 0x44, 0x66, 0x88, 0xaa, 0xcc,
						   0xee, 7 };
static const uint8_t fuzz_server_s[SP_KEY_LEN] = { 0x50, 0x13, 0x35, 0x57, 0x79, 0x9b, 0xbd,
						   0xdf, 8 };

/* Input byte 0: the mode (| FUZZ_AESGCM); byte 1: the receive-buffer size - 1. */
enum fuzz_session_mode {
	FUZZ_RESPONDER_RAW = 0,         /* bytes from the first byte of a connection */
	FUZZ_RESPONDER_ESTABLISHED = 1, /* records from the initiator */
	FUZZ_INITIATOR_RAW = 2,         /* bytes after the initiator's message 1 (XX) */
	FUZZ_INITIATOR_ESTABLISHED = 3, /* records from the responder */
	/* Or'ed in: the AESGCM suite (preamble cipher byte 01) where the CPU
	 * has AES-NI; the responder then takes AESGCM, else it refuses it. */
	FUZZ_AESGCM = 4,
};

#endif
