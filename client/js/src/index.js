// SPDX-License-Identifier: Apache-2.0
// sealpost for JavaScript: `await ready()`, then keys, Device (connect, send,
// receive, ack, reconnect), seal/open, and the lower layers for those who
// need them. docs/CLIENT.md has an example.

import { ready as sodiumReady, so } from './sodium.js';
import { generateKeypair, keypairFromPrivate } from './noise.js';
import { toHex, fromHex } from './bytes.js';

export { Device } from './device.js';
export { Connection, SealpostError, preamble, lengthPrefix, PROTOCOL_VERSION } from './client.js';
export { connectWebSocket, SUBPROTOCOL } from './transport.js';
export { seal, sealPadded, padBucket, open, unwrapLogHead, LOG_WRAP_LEN, SealError, MESSAGE_MAX, SEAL_OVERHEAD } from './seal.js';
export { keyValid, parsePublicKey } from './keys.js';
export { STATUS, STATUS_NAME, encodeFrame, decodeFrames, encodeMessage, decodeMessage, ProtoError } from './proto.js';
export { HandshakeState, CipherState, NoiseError } from './noise.js';
export { toHex, fromHex };

/** Loads libsodium; every other call needs it done. */
export async function ready() { await sodiumReady(); }

/** A new device key pair { privateKey, publicKey } (32 bytes each). */
export function generateKey() { so(); return generateKeypair(); }

/** The key pair for a 32-byte private key (Uint8Array or 64 hex characters). */
export function keyFromPrivate(priv) {
  so();
  const b = typeof priv === 'string' ? fromHex(priv.trim()) : priv;
  if (!(b instanceof Uint8Array) || b.length !== 32) throw new TypeError('a private key is 32 bytes');
  return keypairFromPrivate(b);
}
