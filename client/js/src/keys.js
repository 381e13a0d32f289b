// SPDX-License-Identifier: Apache-2.0
// Device keys (X25519) and the public-key validity rule of PROTOCOL.md 6.1 / 8:
// exactly 32 bytes, canonical (bit 255 clear and below 2^255 - 19) and not
// one of the low-order points (the same table as lib/crypto/sp_key.c).

import { fromHex, toHex } from './bytes.js';

const LOW_ORDER = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
  '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
].map(fromHex);

function canonical(b) {
  if (b[31] >> 7) return false;
  let ones = 0xff;
  for (let i = 1; i < 31; i++) ones &= b[i];
  return !(b[31] === 0x7f && ones === 0xff && b[0] >= 0xed);
}

/** True iff pub is usable as a device or broker key (PROTOCOL.md 8). */
export function keyValid(pub) {
  if (!(pub instanceof Uint8Array) || pub.length !== 32) return false;
  let found = false;
  for (const lo of LOW_ORDER) {
    let d = 0;
    for (let i = 0; i < 32; i++) d |= pub[i] ^ lo[i];
    found = found || d === 0;
  }
  return !found && canonical(pub);
}

/** Parses a 64-hex-character public key (server.pub, CLI output); throws if invalid. */
export function parsePublicKey(s) {
  if (s instanceof Uint8Array) {
    if (!keyValid(s)) throw new TypeError('not a valid X25519 public key');
    return Uint8Array.from(s);
  }
  const t = String(s).trim();
  if (!/^[0-9a-fA-F]{64}$/.test(t)) throw new TypeError('a public key is 64 hex characters');
  const b = fromHex(t);
  if (!keyValid(b)) throw new TypeError('not a valid X25519 public key');
  return b;
}

export { toHex };
