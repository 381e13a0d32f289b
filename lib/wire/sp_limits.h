/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_limits.h: every wire size, protocol constant and status code in one place.
 *
 * Like WireGuard's messages.h: the numbers a peer can observe live here and
 * nowhere else, so docs/PROTOCOL.md and the code cannot drift apart quietly.
 * Operator-tunable limits (defaults) live in broker/sp_config.h; the values
 * here are protocol maxima that a configuration may lower but never raise.
 */
#ifndef SP_LIMITS_H
#define SP_LIMITS_H

#include <stdint.h>

enum sp_wire {
	SP_KEY_LEN = 32,                /* X25519 public or private key */
	SP_HASH_LEN = 64,               /* BLAKE2b-512 */
	SP_TAG_LEN = 16,                /* ChaCha20-Poly1305 tag */
	SP_PREAMBLE_LEN = 8,            /* "SEAL", version, pattern, cipher, 1 reserved */
	SP_LEN_PREFIX = 2,              /* big-endian length before every Noise message */
	SP_NOISE_MSG_MAX = 65535,       /* a Noise message, tag included */
	SP_TRANSPORT_PLAINTEXT_MAX = SP_NOISE_MSG_MAX - SP_TAG_LEN, /* 65519 */
	SP_FRAME_PREFIX_LEN = 4,        /* u16 header_len, u16 body_len, big-endian */
	SP_FRAME_HEADER_MAX = 1024,     /* a FrameHeader protobuf, encoded */
	SP_BODY_MAX = 64000,            /* an envelope body (sealed bytes) */
	SP_HANDSHAKE_PAYLOAD_MAX = 1024,/* ClientHello / ServerHello, encoded */
	/* Longest handshake message either side accepts: e + s + tag + payload + tag. */
	SP_HANDSHAKE_MSG_MAX = SP_KEY_LEN + SP_KEY_LEN + SP_TAG_LEN + SP_HANDSHAKE_PAYLOAD_MAX + SP_TAG_LEN,
	/* A sealed envelope: version byte, then a Noise_X message:
	 * e (32) + encrypted s (32 + 16) + encrypted payload (+ 16). */
	SP_SEAL_OVERHEAD = 1 + SP_KEY_LEN + SP_KEY_LEN + SP_TAG_LEN + SP_TAG_LEN, /* 97 */
	SP_MESSAGE_MAX = SP_BODY_MAX - SP_SEAL_OVERHEAD, /* largest plaintext a client can seal */
};

_Static_assert(SP_FRAME_PREFIX_LEN + SP_FRAME_HEADER_MAX + SP_BODY_MAX <= SP_TRANSPORT_PLAINTEXT_MAX,
	       "one maximal frame must fit in one transport message");

/* The preamble a client sends first, in clear; it is also the Noise prologue. */
#define SP_PREAMBLE_MAGIC "SEAL"
enum sp_preamble {
	SP_PROTOCOL_VERSION = 1,
	SP_PREAMBLE_PATTERN_IK = 1,     /* Noise_IK_25519_ChaChaPoly_BLAKE2b */
	SP_PREAMBLE_PATTERN_XX = 2,     /* Noise_XX_25519_ChaChaPoly_BLAKE2b */
	/* Noise_NK_25519_ChaChaPoly_BLAKE2b: an anonymous, send-only
	 * connection (PROTOCOL.md 14): the broker learns no device key. */
	SP_PREAMBLE_PATTERN_NK = 3,
	/* Byte 6, the cipher the client proposes (PROTOCOL.md 2): 00 is
	 * ChaChaPoly, what every client before it sent as "reserved". */
	SP_PREAMBLE_CIPHER_CHACHAPOLY = 0,  /* Noise_*_25519_ChaChaPoly_BLAKE2b */
	SP_PREAMBLE_CIPHER_AESGCM = 1,      /* Noise_*_25519_AESGCM_BLAKE2b */
	/* The broker's answer to a cipher it will not speak: these 8 bytes
	 * ("SEAL", version, the pattern, cipher 00, 00), then it closes.
	 * Its first two bytes read as a length prefix (0x5345 = 21317) are
	 * longer than any handshake message, so an initiator tells it apart
	 * from message 2 by them. */
	SP_PREAMBLE_REFUSAL_PREFIX = 0x5345,
};

/* The seal (end-to-end envelope) format version: first byte of every sealed body. */
enum { SP_SEAL_VERSION = 1 };
#define SP_SEAL_PROLOGUE "sealpost/seal/1"
/* Padded seals (PROTOCOL.md 7.1): version 2, its own prologue, so that a
 * version byte changed in transit fails authentication. */
enum { SP_SEAL_VERSION_PADDED = 2 };
#define SP_SEAL_PROLOGUE_PADDED "sealpost/seal/2"

/*
 * Status codes: per-envelope results (SendResult.status) and the reason in a
 * GoAway before the broker closes a connection. Generated from
 * sp_reasons.def, the one table of statuses and close reasons; it mirrors
 * enum Status in proto/sealpost.proto, and sp_frame.c asserts the two agree
 * at compile time.
 */
enum sp_status {
#define SP_STATUS(id, value, name, label) SP_STATUS_##id = value,
#include "sp_reasons.def"
};

/* Frame types: the field number of the oneof in FrameHeader. */
enum sp_frame_type {
	SP_FRAME_NONE = 0,
	SP_FRAME_SEND = 1,        /* client -> broker, carries a body */
	SP_FRAME_SEND_RESULT = 2, /* broker -> client */
	SP_FRAME_DELIVER = 3,     /* broker -> client, carries a body */
	SP_FRAME_ACK = 4,         /* client -> broker */
	SP_FRAME_DRAINED = 5,     /* broker -> client */
	SP_FRAME_PING = 6,        /* either way */
	SP_FRAME_PONG = 7,        /* either way */
	SP_FRAME_GOAWAY = 8,      /* broker -> client, then close */
	SP_FRAME_LIST_PUT = 9,    /* client -> broker, carries a body (the signed list) */
	SP_FRAME_LIST_FETCH = 10, /* client -> broker */
	SP_FRAME_LIST_RESULT = 11,/* broker -> client, may carry a body */
	SP_FRAME_LIST_CHANGED = 12, /* broker -> client, carries a body */
	/* Fan-out (PROTOCOL.md 16). */
	SP_FRAME_FANOUT_BEGIN = 13,  /* client -> broker */
	SP_FRAME_FANOUT_COPY = 14,   /* client -> broker, carries a body */
	SP_FRAME_FANOUT_RESULT = 15, /* broker -> client, may carry a body (device keys) */
	SP_FRAME_TYPE_MAX = SP_FRAME_FANOUT_RESULT,
	/* The transparency log (11.7); 16..19 accounts, 20..22 push (PROTOCOL.md 12). */
	SP_FRAME_LOG_FETCH = 24,  /* client -> broker */
	SP_FRAME_LOG_REPLY = 25,  /* broker -> client, carries a body */
	/* Web Push (PROTOCOL.md 12); 9..19 are accounts'. */
	SP_FRAME_PUSH_REGISTER = 20, /* client -> broker */
	SP_FRAME_PUSH_REMOVE = 21,   /* client -> broker */
	SP_FRAME_PUSH_RESULT = 22,   /* broker -> client */
	/* Sealed sender (PROTOCOL.md 14); 29 is reserved. */
	SP_FRAME_SET_ACCESS = 26,    /* client -> broker, authenticated only */
	SP_FRAME_ACCESS_RESULT = 27, /* broker -> client */
	SP_FRAME_ANON_SEND = 28,     /* client -> broker, anonymous (NK) only, carries a body */
	/* Prekeys (PROTOCOL.md 17); 35 is reserved. */
	SP_FRAME_PREKEY_UPLOAD = 30, /* client -> broker, authenticated only, carries a body */
	SP_FRAME_PREKEY_RESULT = 31, /* broker -> client */
	SP_FRAME_PREKEY_FETCH = 32,  /* client -> broker, authenticated or anonymous */
	SP_FRAME_PREKEY_BUNDLE = 33, /* broker -> client, carries a body */
	SP_FRAME_PREKEY_LOW = 34,    /* broker -> client: this device's one-time stock is low */
};

/* Access keys (delivery tokens, PROTOCOL.md 14). */
enum {
	SP_ACCESS_KEY_MIN = 16,
	SP_ACCESS_KEY_MAX = 32,
	SP_ACCESS_HASH_LEN = 32,        /* what the broker keeps: BLAKE2b-256 of the key */
};

/* SetAccess.flags bits */
enum sp_access_flags {
	SP_ACCESS_ANYONE = 1u << 0,     /* accept anonymous sends without a token */
};

/* Prekeys (PROTOCOL.md 17; the codec is lib/crypto/sp_prekey.h): protocol
 * maxima; the broker's prekey-upload-max and prekey-stock-max may lower them. */
enum {
	SP_PREKEY_UPLOAD_MAX = 256,     /* one-time prekeys in one PrekeyUpload */
	SP_PREKEY_STOCK_MAX = 1024,     /* one-time prekeys the broker keeps per device */
};

/* Web Push subscription fields (PROTOCOL.md 12). */
enum sp_push_wire {
	SP_PUSH_P256DH_LEN = 65,        /* uncompressed P-256 point: 0x04 | x | y */
	SP_PUSH_AUTH_LEN = 16,          /* the subscription's auth secret */
	SP_PUSH_ENDPOINT_WIRE_MAX = 900, /* fits a FrameHeader with both keys */
};

/* Send.flags bits */
enum sp_send_flags {
	SP_SEND_ONLINE_ONLY = 1u << 0, /* never stored; refused if recipient offline */
};

/*
 * Transport rekeying (Noise 11.3), per direction: each side applies
 * REKEY(k) to a cipher once SP_REKEY_MESSAGES transport messages have used
 * its key, i.e. after the message with nonce n when n + 1 is a multiple of
 * it. The nonce is not reset (Noise 4.2), so 2^64 - 1 still ends a
 * connection. docs/PROTOCOL.md 5.
 */
#define SP_REKEY_MESSAGES ((uint64_t)1 << 16)

/* Acks carried in one Ack frame, at most. */
enum { SP_ACK_SEQS_MAX = 64 };

/* Fan-out (PROTOCOL.md 16): protocol maxima; the broker's --fanout-max-copies
 * may lower the first. A FanoutResult body holds at most two full lists of
 * keys (missing, stale). */
enum {
	SP_FANOUT_COPIES_MAX = 64,      /* = SP_DEVLIST_DEVICES_MAX: copies in one group */
	SP_FANOUT_RESULT_BODY_MAX = 2 * 64 * SP_KEY_LEN,
};

/* Signed device lists (docs/PROTOCOL.md 11; the codec is lib/crypto/sp_devlist.h):
 * protocol maxima; the broker's --account-max-devices may lower the first. */
enum {
	SP_DEVLIST_DEVICES_MAX = 64,    /* devices on one list */
	SP_DEVLIST_LABEL_MAX = 64,      /* bytes of one device label */
	SP_ACCOUNT_LEN = 32,            /* an account: its Ed25519 public key */
};

#endif
