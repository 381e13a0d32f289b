// SPDX-License-Identifier: Apache-2.0
// Noise Protocol Framework (revision 34) for 25519 / ChaChaPoly / BLAKE2b,
// composed from libsodium primitives exactly as the specification says
// (sections 4 and 5: CipherState, SymmetricState, HandshakeState, HKDF with
// HMAC-BLAKE2b, block length 128). docs/PROTOCOL.md 4 and 5.1 say which parts
// sealpost uses. Checked against the cacophony vectors and PROTOCOL.md 10.

import { so } from './sodium.js';
import { concat, wipe } from './bytes.js';
import { keyValid } from './keys.js';

export const DHLEN = 32;
export const HASHLEN = 64;
const BLOCKLEN = 128;
const TAGLEN = 16;
const MAX_NONCE = (1n << 64n) - 1n;
/** PROTOCOL.md 5.1: each direction rekeys after every 65536 transport messages. */
export const REKEY_MESSAGES = 65536n;

export class NoiseError extends Error {
  constructor(msg) { super(msg); this.name = 'NoiseError'; }
}

function nonceBytes(n) {
  const b = new Uint8Array(12);
  let v = BigInt(n);
  for (let i = 4; i < 12; i++) { b[i] = Number(v & 0xffn); v >>= 8n; }
  return b;
}

function hash(data) {
  return so().crypto_generichash(HASHLEN, data, null);
}

/** HMAC-BLAKE2b (RFC 2104 with BLAKE2b-512, block length 128), Noise section 4.3. */
export function hmac(key, data) {
  let k = key.length > BLOCKLEN ? hash(key) : key;
  const ipad = new Uint8Array(BLOCKLEN), opad = new Uint8Array(BLOCKLEN);
  ipad.set(k); opad.set(k);
  for (let i = 0; i < BLOCKLEN; i++) { ipad[i] ^= 0x36; opad[i] ^= 0x5c; }
  const inner = hash(concat(ipad, data));
  const out = hash(concat(opad, inner));
  wipe(ipad); wipe(opad); wipe(inner);
  return out;
}

/** Noise HKDF(chaining_key, input_key_material, num_outputs). */
export function hkdf(ck, ikm, n) {
  const temp = hmac(ck, ikm);
  const o1 = hmac(temp, Uint8Array.of(1));
  const o2 = hmac(temp, concat(o1, Uint8Array.of(2)));
  let out = [o1, o2];
  if (n === 3) out.push(hmac(temp, concat(o2, Uint8Array.of(3))));
  wipe(temp);
  return out;
}

function aeadEncrypt(k, n, ad, pt) {
  return so().crypto_aead_chacha20poly1305_ietf_encrypt(pt, ad, null, nonceBytes(n), k);
}

function aeadDecrypt(k, n, ad, ct) {
  if (ct.length < TAGLEN) throw new NoiseError('ciphertext shorter than its tag');
  try {
    return so().crypto_aead_chacha20poly1305_ietf_decrypt(null, ct, ad, nonceBytes(n), k);
  } catch (e) {
    throw new NoiseError('decryption failed');
  }
}

/** Noise REKEY(k): first 32 bytes of ENCRYPT(k, 2^64-1, empty, 32 zero bytes). */
export function rekeyKey(k) {
  const ct = aeadEncrypt(k, MAX_NONCE, new Uint8Array(0), new Uint8Array(32));
  const nk = ct.slice(0, 32);
  wipe(ct);
  return nk;
}

export function dh(priv, pub) {
  let r;
  try {
    r = so().crypto_scalarmult(priv, pub);
  } catch (e) {
    throw new NoiseError('DH result is all zeros');
  }
  if (r.every((x) => x === 0)) throw new NoiseError('DH result is all zeros');
  return r;
}

export function generateKeypair() {
  const priv = so().randombytes_buf(32);
  return { privateKey: priv, publicKey: so().crypto_scalarmult_base(priv) };
}

export function keypairFromPrivate(priv) {
  return { privateKey: Uint8Array.from(priv), publicKey: so().crypto_scalarmult_base(priv) };
}

/**
 * Noise CipherState. With `transport` set (after Split), it rekeys every
 * REKEY_MESSAGES messages as PROTOCOL.md 5.1 says, the nonce counting on.
 */
export class CipherState {
  constructor(k = null, transport = false) {
    this.k = k; this.n = 0n; this.transport = transport;
  }
  hasKey() { return this.k !== null; }
  _advance() {
    const sent = this.n;
    this.n += 1n;
    if (this.transport && this.n % REKEY_MESSAGES === 0n) this.rekey();
    return sent;
  }
  _check() {
    // Nonce 2^64-1 is reserved (REKEY); a side that would reach it closes.
    if (this.n >= MAX_NONCE) throw new NoiseError('nonce exhausted');
  }
  encryptWithAd(ad, pt) {
    if (!this.k) return Uint8Array.from(pt);
    this._check();
    const ct = aeadEncrypt(this.k, this.n, ad, pt);
    this._advance();
    return ct;
  }
  decryptWithAd(ad, ct) {
    if (!this.k) return Uint8Array.from(ct);
    this._check();
    const pt = aeadDecrypt(this.k, this.n, ad, ct); // n advances only on success
    this._advance();
    return pt;
  }
  rekey() {
    const nk = rekeyKey(this.k);
    wipe(this.k);
    this.k = nk;
  }
  destroy() { if (this.k) wipe(this.k); this.k = null; }
}

export class SymmetricState {
  constructor(protocolName) {
    const name = new TextEncoder().encode(protocolName);
    if (name.length <= HASHLEN) {
      this.h = new Uint8Array(HASHLEN); this.h.set(name);
    } else {
      this.h = hash(name);
    }
    this.ck = Uint8Array.from(this.h);
    this.cs = new CipherState();
  }
  mixKey(ikm) {
    const [ck, tk] = hkdf(this.ck, ikm, 2);
    wipe(this.ck);
    this.ck = ck;
    if (this.cs.k) wipe(this.cs.k);
    this.cs = new CipherState(tk.slice(0, 32));
    wipe(tk);
  }
  mixHash(data) { this.h = hash(concat(this.h, data)); }
  encryptAndHash(pt) {
    const ct = this.cs.encryptWithAd(this.h, pt);
    this.mixHash(ct);
    return ct;
  }
  decryptAndHash(ct) {
    const pt = this.cs.decryptWithAd(this.h, ct);
    this.mixHash(ct);
    return pt;
  }
  split() {
    const [a, b] = hkdf(this.ck, new Uint8Array(0), 2);
    const c1 = new CipherState(a.slice(0, 32), true);
    const c2 = new CipherState(b.slice(0, 32), true);
    wipe(a); wipe(b);
    return [c1, c2];
  }
  destroy() { wipe(this.ck); this.cs.destroy(); }
}

// Handshake patterns (Noise section 7). pre: [initiator pre-message, responder
// pre-message]; msgs: token lists, alternating initiator, responder, ...
const PATTERNS = {
  NN: { pre: [[], []], msgs: [['e'], ['e', 'ee']] },
  NK: { pre: [[], ['s']], msgs: [['e', 'es'], ['e', 'ee']] },
  IK: { pre: [[], ['s']], msgs: [['e', 'es', 's', 'ss'], ['e', 'ee', 'se']] },
  XX: { pre: [[], []], msgs: [['e'], ['e', 'ee', 's', 'es'], ['s', 'se']] },
  N: { pre: [[], ['s']], msgs: [['e', 'es']], oneWay: true },
  K: { pre: [['s'], ['s']], msgs: [['e', 'es', 'ss']], oneWay: true },
  X: { pre: [[], ['s']], msgs: [['e', 'es', 's', 'ss']], oneWay: true },
};

export const SUITE = '_25519_ChaChaPoly_BLAKE2b';

/**
 * Noise HandshakeState.
 * opts: { pattern: 'IK'|'XX'|..., initiator: bool, prologue: Uint8Array,
 *         s: {privateKey, publicKey} (own static), rs: Uint8Array (peer static, known),
 *         e: Uint8Array (own ephemeral private key: test vectors only) }
 */
export class HandshakeState {
  constructor(opts) {
    const p = PATTERNS[opts.pattern];
    if (!p) throw new Error(`unknown pattern ${opts.pattern}`);
    this.pattern = p;
    this.name = `Noise_${opts.pattern}${SUITE}`;
    this.initiator = !!opts.initiator;
    this.ss = new SymmetricState(this.name);
    this.s = opts.s ? keypairFromPrivate(opts.s.privateKey) : null;
    this.e = opts.e ? keypairFromPrivate(opts.e) : null;
    this.fixedE = !!opts.e;
    this.rs = opts.rs ? Uint8Array.from(opts.rs) : null;
    this.re = null;
    this.ss.mixHash(opts.prologue ?? new Uint8Array(0));
    const [ipre, rpre] = p.pre;
    for (const t of ipre) {
      if (t !== 's') throw new Error('unsupported pre-message');
      const k = this.initiator ? this.s?.publicKey : this.rs;
      if (!k) throw new Error('pattern needs the initiator static key in advance');
      this.ss.mixHash(k);
    }
    for (const t of rpre) {
      if (t !== 's') throw new Error('unsupported pre-message');
      const k = this.initiator ? this.rs : this.s?.publicKey;
      if (!k) throw new Error('pattern needs the responder static key in advance');
      this.ss.mixHash(k);
    }
    this.idx = 0;
    this.done = false;
    this.result = null;
  }

  /** True when the next message is ours to write. */
  isMyTurn() {
    return (this.idx % 2 === 0) === this.initiator;
  }

  _dhTok(tok) {
    // ee, es, se, ss: first letter is the initiator's key, second the responder's.
    const a = tok[0], b = tok[1];
    let mine, theirs;
    if (this.initiator) { mine = a; theirs = b; } else { mine = b; theirs = a; }
    const priv = (mine === 'e' ? this.e : this.s)?.privateKey;
    const pub = theirs === 'e' ? this.re : this.rs;
    if (!priv || !pub) throw new NoiseError(`missing key for ${tok}`);
    const r = dh(priv, pub);
    this.ss.mixKey(r);
    wipe(r);
  }

  /** Writes the next handshake message carrying payload; returns its bytes. */
  writeMessage(payload = new Uint8Array(0)) {
    if (this.done || !this.isMyTurn()) throw new NoiseError('not our turn to write');
    const parts = [];
    for (const tok of this.pattern.msgs[this.idx]) {
      if (tok === 'e') {
        if (!this.e) this.e = generateKeypair();
        parts.push(this.e.publicKey);
        this.ss.mixHash(this.e.publicKey);
      } else if (tok === 's') {
        parts.push(this.ss.encryptAndHash(this.s.publicKey));
      } else {
        this._dhTok(tok);
      }
    }
    parts.push(this.ss.encryptAndHash(payload));
    this._next();
    return concat(...parts);
  }

  /** Reads the next handshake message; returns its payload. Throws NoiseError. */
  readMessage(msg) {
    if (this.done || this.isMyTurn()) throw new NoiseError('not our turn to read');
    let off = 0;
    const need = (n) => {
      if (msg.length - off < n) throw new NoiseError('handshake message too short');
      const b = msg.subarray(off, off + n); off += n; return b;
    };
    for (const tok of this.pattern.msgs[this.idx]) {
      if (tok === 'e') {
        this.re = Uint8Array.from(need(DHLEN));
        this.ss.mixHash(this.re);
      } else if (tok === 's') {
        const len = this.ss.cs.hasKey() ? DHLEN + TAGLEN : DHLEN;
        const rs = this.ss.decryptAndHash(need(len));
        if (!keyValid(rs)) throw new NoiseError('peer static key is not a valid public key');
        this.rs = rs;
      } else {
        this._dhTok(tok);
      }
    }
    const payload = this.ss.decryptAndHash(msg.subarray(off));
    this._next();
    return payload;
  }

  _next() {
    this.idx++;
    if (this.idx === this.pattern.msgs.length) {
      this.done = true;
      const [c1, c2] = this.ss.split();
      this.h = Uint8Array.from(this.ss.h);
      // c1 encrypts initiator -> responder, c2 responder -> initiator.
      this.result = this.initiator ? { send: c1, recv: c2 } : { send: c2, recv: c1 };
      if (this.pattern.oneWay) {
        // One-way patterns: only the initiator sends.
        this.result = this.initiator ? { send: c1, recv: null } : { send: null, recv: c1 };
        c2.destroy();
      }
      this.ss.destroy();
      if (this.e) wipe(this.e.privateKey);
    }
  }

  /** Zeroes every secret still held. */
  destroy() {
    this.ss.destroy();
    if (this.e) wipe(this.e.privateKey);
    if (this.s) wipe(this.s.privateKey);
  }
}
