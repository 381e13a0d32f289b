// SPDX-License-Identifier: Apache-2.0
// Sealed envelopes (PROTOCOL.md 7): body = 0x01 || Noise_X message 1, prologue
// "sealpost/seal/1", sender = initiator with its static key, recipient =
// responder. The broker never opens them.
// open() also takes padded seals (0x02, PROTOCOL.md 7.1: what libsealpost
// sends anonymously) and strips the padding.

import { HandshakeState, NoiseError } from './noise.js';
import { keyValid } from './keys.js';
import { concat } from './bytes.js';

export const SEAL_VERSION = 1;
export const SEAL_OVERHEAD = 97;
export const BODY_MAX = 64000;
export const MESSAGE_MAX = BODY_MAX - SEAL_OVERHEAD; // 63903
const PROLOGUE = new TextEncoder().encode('sealpost/seal/1');
// Padded seals (PROTOCOL.md 7.1): version 2, its own prologue, the payload
// padded ISO/IEC 7816-4 style (0x80, then zeros) to a size bucket.
export const SEAL_VERSION_PADDED = 2;
const PROLOGUE_PADDED = new TextEncoder().encode('sealpost/seal/2');
export const PAD_MIN = 256;
export const PAD_MAX_BUCKET = 32768;

/**
 * The padded payload length for a message of len bytes (PROTOCOL.md 7.1):
 * the smallest of 256, 512, ..., 32768 that holds len + 1, else maxPayload
 * (at most MESSAGE_MAX); 0 if len + 1 > maxPayload.
 */
export function padBucket(len, maxPayload = MESSAGE_MAX) {
  const max = Math.min(maxPayload, MESSAGE_MAX);
  if (len >= max) return 0;
  for (let b = PAD_MIN; b <= PAD_MAX_BUCKET; b *= 2) if (len + 1 <= b) return Math.min(b, max);
  return max;
}

/** Seals message padded to its bucket (version 2); otherwise as seal(). */
export function sealPadded(sender, recipientPub, message, opts = {}) {
  if (!keyValid(recipientPub)) throw new SealError('recipient is not a valid public key');
  if (!(message instanceof Uint8Array)) throw new TypeError('message must be a Uint8Array');
  const b = padBucket(message.length, opts.maxPayload);
  if (!b) throw new SealError('message too large to pad');
  const padded = new Uint8Array(b);
  padded.set(message);
  padded[message.length] = 0x80;
  const hs = new HandshakeState({ pattern: 'X', initiator: true, prologue: PROLOGUE_PADDED,
    s: sender, rs: recipientPub, e: opts.ephemeral });
  try {
    return concat(Uint8Array.of(SEAL_VERSION_PADDED), hs.writeMessage(padded));
  } finally {
    hs.destroy();
    padded.fill(0);
  }
}

// The message inside a padded payload: up to the last 0x80, after which
// only zeros may follow.
function unpad(p) {
  let i = p.length - 1;
  while (i >= 0 && p[i] === 0) i--;
  if (i < 0 || p[i] !== 0x80) throw new SealError('envelope does not open: bad padding');
  return p.subarray(0, i);
}

export class SealError extends Error {
  constructor(msg) { super(msg); this.name = 'SealError'; }
}

/**
 * Seals message (Uint8Array) from `sender` ({privateKey, publicKey}) to the
 * recipient's public key. opts.ephemeral fixes the ephemeral private key
 * (test vectors only). Returns the envelope body.
 */
export function seal(sender, recipientPub, message, opts = {}) {
  if (!keyValid(recipientPub)) throw new SealError('recipient is not a valid public key');
  if (!(message instanceof Uint8Array)) throw new TypeError('message must be a Uint8Array');
  if (message.length > MESSAGE_MAX) throw new SealError(`message above ${MESSAGE_MAX} bytes`);
  const hs = new HandshakeState({ pattern: 'X', initiator: true, prologue: PROLOGUE,
    s: sender, rs: recipientPub, e: opts.ephemeral });
  try {
    return concat(Uint8Array.of(SEAL_VERSION), hs.writeMessage(message));
  } finally {
    hs.destroy();
  }
}

/**
 * Opens an envelope body with the recipient's key pair. Returns
 * { message, sender } (sender: the authenticated static public key).
 * Throws SealError for another version, a body that does not open, or a
 * low-order or non-canonical sender key.
 */
export function open(recipient, body) {
  if (!(body instanceof Uint8Array) || body.length < SEAL_OVERHEAD) throw new SealError('envelope too short');
  const padded = body[0] === SEAL_VERSION_PADDED;
  if (body[0] !== SEAL_VERSION && !padded) throw new SealError(`unknown seal version ${body[0]}`);
  const hs = new HandshakeState({ pattern: 'X', initiator: false,
    prologue: padded ? PROLOGUE_PADDED : PROLOGUE, s: recipient });
  try {
    const read = hs.readMessage(body.subarray(1));
    const message = padded ? unpad(read) : read;
    const sender = hs.rs;
    if (!keyValid(sender)) throw new SealError('sender key is not a valid public key');
    return { message, sender };
  } catch (e) {
    if (e instanceof NoiseError) throw new SealError(`envelope does not open: ${e.message}`);
    throw e;
  } finally {
    hs.destroy();
  }
}

// PROTOCOL.md 11.7: a sender that keeps a head of the broker's transparency
// log puts it first in the sealed plaintext: "SPT1" | log_key[32] | sth[113]
// (149 bytes). This client does not check the log (the C library does), but
// the application must get exactly what was sent: the wrap is split off and
// handed over as logHead { logKey, sth } for an app that wants to compare
// heads itself. A message shorter than a wrap, or without the magic, is
// returned as it is.
export const LOG_WRAP_LEN = 149;
const LOG_WRAP_MAGIC = [0x53, 0x50, 0x54, 0x31]; // "SPT1"

export function unwrapLogHead(message) {
  if (message.length < LOG_WRAP_LEN || LOG_WRAP_MAGIC.some((b, i) => message[i] !== b)) {
    return { message, logHead: null };
  }
  return {
    message: message.subarray(LOG_WRAP_LEN),
    logHead: { logKey: message.slice(4, 36), sth: message.slice(36, LOG_WRAP_LEN) },
  };
}
