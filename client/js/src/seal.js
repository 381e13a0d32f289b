// SPDX-License-Identifier: Apache-2.0
// Sealed envelopes (PROTOCOL.md 7): body = 0x01 || Noise_X message 1, prologue
// "sealpost/seal/1", sender = initiator with its static key, recipient =
// responder. The broker never opens them.

import { HandshakeState, NoiseError } from './noise.js';
import { keyValid } from './keys.js';
import { concat } from './bytes.js';

export const SEAL_VERSION = 1;
export const SEAL_OVERHEAD = 97;
export const BODY_MAX = 64000;
export const MESSAGE_MAX = BODY_MAX - SEAL_OVERHEAD; // 63903
const PROLOGUE = new TextEncoder().encode('sealpost/seal/1');

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
  if (body[0] !== SEAL_VERSION) throw new SealError(`unknown seal version ${body[0]}`);
  const hs = new HandshakeState({ pattern: 'X', initiator: false, prologue: PROLOGUE, s: recipient });
  try {
    const message = hs.readMessage(body.subarray(1));
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
