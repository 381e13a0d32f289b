// SPDX-License-Identifier: Apache-2.0
// Byte helpers shared by the modules (no crypto here).

export function concat(...arrs) {
  let n = 0;
  for (const a of arrs) n += a.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const a of arrs) { out.set(a, o); o += a.length; }
  return out;
}

/** Overwrites a buffer with zeros (secrets leaving scope). */
export function wipe(b) {
  if (b && typeof b.fill === 'function') b.fill(0);
}

export function toHex(b) {
  let s = '';
  for (const x of b) s += x.toString(16).padStart(2, '0');
  return s;
}

export function fromHex(s) {
  s = s.replace(/\s+/g, '');
  if (s.length % 2 || /[^0-9a-fA-F]/.test(s)) throw new TypeError('not hex');
  const b = new Uint8Array(s.length / 2);
  for (let i = 0; i < b.length; i++) b[i] = parseInt(s.substr(i * 2, 2), 16);
  return b;
}

export function equal(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}
