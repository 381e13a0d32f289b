// SPDX-License-Identifier: Apache-2.0
// The protocol engine: preamble, length-prefixed Noise messages, the IK and XX
// handshakes with their hellos and the IK proof (PROTOCOL.md 2-4), transport
// messages of frames (5, 5.1), and the semantics of 6 (send results in order,
// deliveries, acks, ping/pong, GoAway). It runs over any byte-stream
// transport: WebSocket (transport.js) in browsers and node, or TCP in node
// (node_tcp.js); the byte stream is the same on both.

import { HandshakeState, NoiseError } from './noise.js';
import { concat, toHex, equal, wipe } from './bytes.js';
import { keyValid } from './keys.js';
import { encodeMessage, decodeMessage, encodeFrame, decodeFrames, ProtoError, STATUS,
  ACK_SEQS_MAX } from './proto.js';

export const PROTOCOL_VERSION = 1;
export const PATTERN_ID = { IK: 1, XX: 2 };
export const NOISE_MSG_MAX = 65535;
export const TRANSPORT_PLAINTEXT_MAX = 65519;
export const HANDSHAKE_MSG_MAX = 1120;
const EMPTY = new Uint8Array(0);

/** The 8-byte preamble, also the Noise prologue (PROTOCOL.md 2). */
export function preamble(pattern) {
  const id = PATTERN_ID[pattern];
  if (!id) throw new Error(`pattern must be IK or XX, not ${pattern}`);
  return Uint8Array.of(0x53, 0x45, 0x41, 0x4c, PROTOCOL_VERSION, id, 0, 0);
}

/** u16 big-endian length | msg (PROTOCOL.md 3). */
export function lengthPrefix(msg) {
  if (msg.length < 1 || msg.length > NOISE_MSG_MAX) throw new RangeError('Noise message size');
  const out = new Uint8Array(2 + msg.length);
  out[0] = msg.length >> 8; out[1] = msg.length & 0xff;
  out.set(msg, 2);
  return out;
}

export class SealpostError extends Error {
  constructor(msg, code) { super(msg); this.name = 'SealpostError'; this.code = code; }
}

/** Reassembles length-prefixed messages from a byte stream cut anywhere. */
class Deframer {
  constructor() { this.buf = new Uint8Array(0); }
  push(chunk) {
    this.buf = this.buf.length ? concat(this.buf, chunk) : Uint8Array.from(chunk);
    const out = [];
    while (this.buf.length >= 2) {
      const n = (this.buf[0] << 8) | this.buf[1];
      if (n === 0) throw new SealpostError('zero-length Noise message', 'EPROTO');
      if (this.buf.length < 2 + n) break;
      out.push(this.buf.slice(2, 2 + n));
      this.buf = this.buf.subarray(2 + n);
    }
    return out;
  }
}

/** A minimal event emitter that works the same in browsers and node. */
export class Emitter {
  constructor() { this._l = new Map(); }
  on(ev, fn) { if (!this._l.has(ev)) this._l.set(ev, []); this._l.get(ev).push(fn); return this; }
  off(ev, fn) { const a = this._l.get(ev); if (a) this._l.set(ev, a.filter((f) => f !== fn)); return this; }
  emit(ev, ...args) {
    for (const fn of [...(this._l.get(ev) ?? [])]) {
      try { fn(...args); } catch (e) { if (ev !== 'error') this.emit('error', e); }
    }
  }
}

/**
 * One connection to a broker, from the preamble to the close.
 *
 * Connection.open({ transport, key, pattern, brokerKey, timeoutMs })
 *   transport: { send(Uint8Array), close(), onData, onClose } (an open byte stream)
 *   key: the device's { privateKey, publicKey }
 *   pattern: 'IK' (brokerKey required) or 'XX' (brokerKey, if given, is checked)
 * resolves once the handshake is complete (and, for IK, the proof sent).
 *
 * Events: 'deliver' ({seq, body}), 'drained' ({count}), 'goaway' ({code}),
 * 'close' (Error|null).
 */
export class Connection extends Emitter {
  constructor(transport) {
    super();
    this.t = transport;
    this.deframer = new Deframer();
    this.state = 'handshake';
    this.pending = [];      // SendResult waiters, in Send order
    this.pings = new Map(); // ping id -> resolve
    this.nextPing = 1n;
    this.closed = false;
    this.goaway = null;
    this.lastSent = Date.now();
  }

  static async open(opts) {
    const c = new Connection(opts.transport);
    await c._handshake(opts);
    return c;
  }

  _handshake({ key, pattern = 'IK', brokerKey = null, timeoutMs = 10000 }) {
    if (!key || !(key.privateKey instanceof Uint8Array)) throw new TypeError('key: { privateKey, publicKey }');
    if (brokerKey !== null && !keyValid(brokerKey)) throw new TypeError('brokerKey is not a valid public key');
    if (pattern === 'IK' && !brokerKey) throw new TypeError('IK needs the broker key');
    const pre = preamble(pattern);
    const hs = new HandshakeState({ pattern, initiator: true, prologue: pre, s: key,
      rs: pattern === 'IK' ? brokerKey : null });
    const hello = encodeMessage('ClientHello', { protocol_version: PROTOCOL_VERSION });
    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (err) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        hs.destroy();
        this._teardown(err);
        reject(err);
      };
      const timer = setTimeout(() => fail(new SealpostError('handshake timed out', 'ETIMEDOUT')), timeoutMs);
      const finish = () => {
        settled = true;
        clearTimeout(timer);
        this.hsHash = hs.h;
        this.send_cs = hs.result.send;
        this.recv_cs = hs.result.recv;
        this.brokerKey = hs.rs;
        hs.destroy(); // the copies of the static and ephemeral private keys
        this.state = 'open';
        if (pattern === 'IK') this._sendTransport(EMPTY); // the proof (PROTOCOL.md 4)
        this._armKeepalive();
        resolve(this);
      };
      const onServerHello = (payload) => {
        let sh;
        try { sh = decodeMessage('ServerHello', payload); } catch (e) {
          throw new SealpostError('undecodable ServerHello', 'EPROTO');
        }
        if (sh.protocol_version !== PROTOCOL_VERSION) throw new SealpostError('incompatible broker', 'EPROTO');
        this.serverHello = sh;
        this.maxTransport = Math.min(TRANSPORT_PLAINTEXT_MAX, sh.max_transport || TRANSPORT_PLAINTEXT_MAX);
        this.maxEnvelope = Math.min(64000, sh.max_envelope || 64000);
      };
      this._onHandshakeMessage = (msg) => {
        try {
          if (msg.length > HANDSHAKE_MSG_MAX) throw new SealpostError('handshake message over the limit', 'EPROTO');
          onServerHello(hs.readMessage(msg));
          if (pattern === 'XX') {
            if (brokerKey && !equal(hs.rs, brokerKey)) {
              throw new SealpostError(`broker key ${toHex(hs.rs)} is not the expected one`, 'EKEYREJECTED');
            }
            this.t.send(lengthPrefix(hs.writeMessage(hello)));
          }
          finish();
        } catch (e) {
          fail(e instanceof NoiseError ? new SealpostError(`handshake failed: ${e.message}`, 'EPROTO') : e);
        }
      };
      this._handshakeFail = fail;
      this._onHandshakeClose = (err) =>
        fail(err ?? new SealpostError('the broker closed the connection during the handshake', 'ECONNRESET'));
      this.t.onData = (chunk) => this._onData(chunk);
      this.t.onClose = (err) => this._onTransportClose(err);
      try {
        const m1 = hs.writeMessage(pattern === 'IK' ? hello : EMPTY);
        this.t.send(concat(pre, lengthPrefix(m1)));
      } catch (e) {
        fail(e);
      }
    });
  }

  _onData(chunk) {
    if (this.closed) return;
    let msgs;
    try { msgs = this.deframer.push(chunk); } catch (e) { this._fatal(e); return; }
    for (const m of msgs) {
      if (this.closed) return;
      if (this.state === 'handshake') { this._onHandshakeMessage(m); continue; }
      let frames;
      try {
        const pt = this.recv_cs.decryptWithAd(EMPTY, m);
        frames = decodeFrames(pt);
      } catch (e) {
        this._fatal(e instanceof NoiseError
          ? new SealpostError('a transport message failed authentication', 'EBADMSG')
          : new SealpostError(`malformed frame from the broker: ${e.message}`, 'EPROTO'));
        return;
      }
      for (const f of frames) this._onFrame(f);
    }
  }

  _onFrame(f) {
    switch (f.type) {
      case 'send_result': {
        const w = this.pending.shift();
        if (!w) { this._fatal(new SealpostError('SendResult without a Send', 'EPROTO')); return; }
        const r = f.send_result;
        w.resolve({ clientId: r.client_id, status: r.status, seq: r.seq,
          ok: r.status === STATUS.ACCEPTED || r.status === STATUS.DELIVERED });
        break;
      }
      case 'deliver': this.emit('deliver', { seq: f.deliver.seq, body: f.body }); break;
      case 'drained': this.emit('drained', { count: f.drained.count }); break;
      case 'ping': this._sendFrames([{ type: 'pong', pong: { id: f.ping.id } }]); break;
      case 'pong': {
        const r = this.pings.get(f.pong.id);
        if (r) { this.pings.delete(f.pong.id); r(f.pong.id); }
        break;
      }
      case 'goaway':
        this.goaway = f.goaway.code;
        this.emit('goaway', { code: f.goaway.code });
        break;
      default:
        this._fatal(new SealpostError(`frame ${f.type} is not allowed from the broker`, 'EPROTO'));
    }
  }

  _sendTransport(pt) {
    if (this.closed) throw new SealpostError('connection closed', 'ENOTCONN');
    let ct;
    try { ct = this.send_cs.encryptWithAd(EMPTY, pt); } catch (e) {
      // nonce exhausted: close; the caller connects again (PROTOCOL.md 5.1)
      this._fatal(new SealpostError('nonces exhausted', 'ECONNRESET'));
      throw e;
    }
    this.lastSent = Date.now();
    this.t.send(lengthPrefix(ct));
  }

  /** Packs frames into as few transport messages as fit within max_transport. */
  _sendFrames(frames) {
    let parts = [], size = 0;
    const flush = () => { if (parts.length) this._sendTransport(concat(...parts)); parts = []; size = 0; };
    for (const fr of frames) {
      const b = encodeFrame(fr);
      if (b.length > this.maxTransport) throw new SealpostError('frame larger than a transport message', 'EMSGSIZE');
      if (size + b.length > this.maxTransport) flush();
      parts.push(b); size += b.length;
    }
    flush();
  }

  /**
   * Sends one envelope body to `to` (32-byte key). Resolves with
   * { clientId, status, seq, ok } from the broker's SendResult.
   */
  send(to, body, { clientId = 0n, onlineOnly = false } = {}) {
    if (this.state !== 'open' || this.closed) return Promise.reject(new SealpostError('not connected', 'ENOTCONN'));
    if (!(to instanceof Uint8Array) || to.length !== 32) return Promise.reject(new TypeError('to: 32-byte key'));
    if (!(body instanceof Uint8Array) || body.length === 0) return Promise.reject(new TypeError('body: non-empty Uint8Array'));
    if (body.length > this.maxEnvelope) {
      return Promise.reject(new SealpostError(`envelope above the broker's max_envelope (${this.maxEnvelope})`, 'EMSGSIZE'));
    }
    return new Promise((resolve, reject) => {
      this._sendFrames([{ type: 'send', send: { to, client_id: BigInt(clientId), flags: onlineOnly ? 1 : 0 }, body }]);
      this.pending.push({ resolve, reject });
    });
  }

  /** Acknowledges deliveries (at most 64 seqs per Ack frame, several frames if needed). */
  ack(seqs) {
    const list = (Array.isArray(seqs) ? seqs : [seqs]).map(BigInt).filter((s) => s !== 0n);
    const frames = [];
    for (let i = 0; i < list.length; i += ACK_SEQS_MAX) {
      frames.push({ type: 'ack', ack: { seqs: list.slice(i, i + ACK_SEQS_MAX) } });
    }
    if (frames.length) this._sendFrames(frames);
  }

  /** Ping; resolves on the matching Pong (after every earlier Send's result, PROTOCOL.md 6.4). */
  ping() {
    if (this.closed) return Promise.reject(new SealpostError('not connected', 'ENOTCONN'));
    const id = this.nextPing++;
    return new Promise((resolve, reject) => {
      this.pings.set(id, resolve);
      this._pingRejects = this._pingRejects ?? new Map();
      this._pingRejects.set(id, reject);
      this._sendFrames([{ type: 'ping', ping: { id } }]);
    });
  }

  /** Sends raw bytes on the transport (tests of the broker's bad-input handling). */
  sendRawForTest(bytes) { this.t.send(bytes); }
  /** Sends a transport message with this plaintext, frames or not (tests). */
  sendPlaintextForTest(pt) { this._sendTransport(pt); }

  _armKeepalive() {
    const idle = this.serverHello?.idle_timeout_ms ?? 0;
    if (!idle) return;
    const half = Math.max(1000, Math.floor(idle / 2));
    this.keepalive = setInterval(() => {
      if (this.closed) return;
      if (Date.now() - this.lastSent >= half) {
        try { this._sendFrames([{ type: 'ping', ping: { id: this.nextPing++ } }]); } catch (e) { /* closing */ }
      }
    }, Math.max(500, Math.floor(half / 2)));
    if (typeof this.keepalive === 'object' && this.keepalive.unref) this.keepalive.unref();
  }

  _onTransportClose(err) {
    if (this.state === 'handshake' && this._onHandshakeClose) { this._onHandshakeClose(err); return; }
    const e = err ?? (this.goaway !== null
      ? new SealpostError(`the broker closed the connection (GoAway ${this.goaway})`, 'ECONNRESET')
      : new SealpostError('the connection closed', 'ECONNRESET'));
    this._teardown(this.userClosed ? null : e);
  }

  _fatal(err) {
    if (this.state === 'handshake' && this._handshakeFail) { this._handshakeFail(err); return; }
    this._teardown(err);
  }

  _teardown(err) {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.keepalive);
    try { this.t.close(); } catch (e) { /* already closed */ }
    if (this.send_cs) this.send_cs.destroy();
    if (this.recv_cs) this.recv_cs.destroy();
    const reason = err ?? new SealpostError('connection closed', 'ENOTCONN');
    for (const w of this.pending) w.reject(reason);
    this.pending = [];
    for (const [, rej] of this._pingRejects ?? []) rej(reason);
    this.pings.clear();
    this.emit('close', err);
  }

  /** Closes the connection. */
  close() {
    this.userClosed = true;
    this._teardown(null);
  }
}

export { wipe };
