// SPDX-License-Identifier: Apache-2.0
// A device: one key, one broker, connected again with back-off whenever the
// connection breaks. Messages are sealed to the recipient (PROTOCOL.md 7)
// and opened on arrival; durable sends not yet answered are sent again with
// the same client_id after a reconnect, which the broker deduplicates (6.1).

import { Connection, Emitter, SealpostError } from './client.js';
import { connectWebSocket } from './transport.js';
import { seal, sealPadded, padBucket, open, unwrapLogHead, SealError, SEAL_OVERHEAD } from './seal.js';
import { parsePublicKey, keyValid } from './keys.js';
import { toHex } from './bytes.js';
import { so } from './sodium.js';
import { STATUS } from './proto.js';

const enc = new TextEncoder();

function randomClientIdStart() {
  // a random 63-bit start per connection's counter, as libsealpost does (6.1)
  const b = so().randombytes_buf(8);
  let v = 0n;
  for (const x of b) v = (v << 8n) | BigInt(x);
  return (v & ((1n << 63n) - 1n)) | 1n;
}

/**
 * new Device({ key, url | connect, brokerKey, pattern, autoAck, backoff })
 *   key: { privateKey, publicKey }
 *   url: the broker's WebSocket URL (ws://host:port/v1 or wss://.../v1), or
 *   connect: async () => transport (any byte-stream transport, e.g. TCP in node)
 *   brokerKey: the broker's public key (hex or bytes): IK; with XX it is checked
 *   pattern: 'IK' (default when brokerKey is given) or 'XX'
 *   autoAck: acknowledge each delivery after the 'message' listeners ran (default true)
 *   backoff: { initialMs = 250, maxMs = 30000 }
 *
 * Events: 'connected' ({ brokerKey, serverHello }), 'disconnected' (Error|null),
 * 'message' ({ seq, from (hex), fromKey, message (Uint8Array), text() }),
 * 'bad-envelope' ({ seq, error }), 'drained' ({ count }), 'error' (Error).
 */
export class Device extends Emitter {
  constructor(opts) {
    super();
    this.key = opts.key;
    this.publicKeyHex = toHex(opts.key.publicKey);
    this.brokerKey = opts.brokerKey ? parsePublicKey(opts.brokerKey) : null;
    this.pattern = opts.pattern ?? (this.brokerKey ? 'IK' : 'XX');
    this.connectTransport = opts.connect ?? (() => connectWebSocket(opts.url, { origin: opts.origin }));
    this.autoAck = opts.autoAck ?? true;
    // PROTOCOL.md 7.1: messages are sealed padded to a size bucket unless
    // padding: false (apps that pad in their own layer), as libsealpost does.
    this.padding = opts.padding ?? true;
    this.backoff = { initialMs: 250, maxMs: 30000, ...(opts.backoff ?? {}) };
    this.handshakeTimeoutMs = opts.handshakeTimeoutMs ?? 10000;
    this.conn = null;
    this.stopped = true;
    this.attempt = 0;
    this.outbox = new Map(); // clientId -> { to, body, onlineOnly, resolve, reject, inflight }
    this.nextClientId = null;
    this._waiters = [];
  }

  /** Connects (and keeps reconnecting until stop()). Resolves at the first connection. */
  start() {
    this.stopped = false;
    const p = this.waitConnected();
    this._connectLoop();
    return p;
  }

  /** Resolves when a connection is established. */
  waitConnected() {
    if (this.conn && !this.conn.closed) return Promise.resolve(this.conn);
    return new Promise((resolve, reject) => this._waiters.push({ resolve, reject }));
  }

  async _connectLoop() {
    while (!this.stopped) {
      try {
        const t = await this.connectTransport();
        if (this.stopped) { t.close(); return; }
        const c = await Connection.open({ transport: t, key: this.key, pattern: this.pattern,
          brokerKey: this.brokerKey, timeoutMs: this.handshakeTimeoutMs });
        if (this.stopped) { c.close(); return; }
        this._attach(c);
        return;
      } catch (e) {
        if (e instanceof SealpostError && e.code === 'EKEYREJECTED') {
          // a broker presenting another key is not retried
          this.stopped = true;
          this.emit('error', e);
          for (const w of this._waiters.splice(0)) w.reject(e);
          return;
        }
        this.emit('error', e);
        await this._sleep();
      }
    }
  }

  _sleep() {
    const d = Math.min(this.backoff.maxMs, this.backoff.initialMs * 2 ** Math.min(this.attempt, 20));
    this.attempt++;
    const jittered = d / 2 + Math.random() * d / 2;
    return new Promise((r) => { this._sleepTimer = setTimeout(r, jittered); });
  }

  _attach(c) {
    this.conn = c;
    this.attempt = 0;
    if (this.pattern === 'XX' && !this.brokerKey) this.learnedBrokerKey = toHex(c.brokerKey);
    if (this.nextClientId === null) this.nextClientId = randomClientIdStart();
    c.on('deliver', (d) => this._onDeliver(c, d));
    c.on('drained', (d) => this.emit('drained', d));
    c.on('goaway', (g) => { this.lastGoAway = g.code; });
    c.on('close', (err) => {
      if (this.conn === c) this.conn = null;
      for (const m of this.outbox.values()) m.inflight = false;
      // online-only sends are not retried: the recipient may have had them
      for (const [id, m] of this.outbox) {
        if (m.onlineOnly) { this.outbox.delete(id); m.reject(err ?? new SealpostError('disconnected', 'ECONNRESET')); }
      }
      this.emit('disconnected', err);
      if (this.lastGoAway === STATUS.GOAWAY_TAKEOVER) {
        // another connection of this device took over: do not fight it
        this.stopped = true;
      }
      if (!this.stopped) this._sleep().then(() => this._connectLoop());
    });
    this.emit('connected', { brokerKey: toHex(c.brokerKey), serverHello: c.serverHello });
    for (const w of this._waiters.splice(0)) w.resolve(c);
    for (const [id, m] of this.outbox) this._transmit(id, m);
  }

  _onDeliver(c, { seq, body }) {
    let opened;
    try {
      opened = open(this.key, body);
    } catch (e) {
      if (!(e instanceof SealError)) throw e;
      this.emit('bad-envelope', { seq, error: e });
      if (this.autoAck && seq !== 0n && !c.closed) c.ack([seq]);
      return;
    }
    // the sender's log head, if it put one first (PROTOCOL.md 11.7)
    const { message, logHead } = unwrapLogHead(opened.message);
    const msg = {
      seq,
      from: toHex(opened.sender),
      fromKey: opened.sender,
      message,
      logHead,
      text: () => new TextDecoder().decode(message),
    };
    this.emit('message', msg);
    if (this.autoAck && seq !== 0n && !c.closed) c.ack([seq]);
  }

  /** Acknowledges deliveries (when autoAck is false). */
  ack(seqs) {
    if (!this.conn) throw new SealpostError('not connected', 'ENOTCONN');
    this.conn.ack(seqs);
  }

  /**
   * Seals message (string or Uint8Array) to `to` (hex or 32 bytes) and sends
   * it. Resolves with { clientId, status, seq, ok } once the broker answered;
   * a durable send survives reconnects (sent again with the same client_id).
   */
  sendMessage(to, message, { onlineOnly = false } = {}) {
    const toKey = parsePublicKey(to);
    const bytes = typeof message === 'string' ? enc.encode(message) : message;
    // the largest payload this broker takes (its max_envelope, once known)
    const maxPayload = (this.conn?.maxEnvelope ?? 64000) - SEAL_OVERHEAD;
    const body = this.padding && padBucket(bytes.length, maxPayload)
      ? sealPadded(this.key, toKey, bytes, { maxPayload })
      : seal(this.key, toKey, bytes);
    return new Promise((resolve, reject) => {
      if (this.nextClientId === null) this.nextClientId = randomClientIdStart();
      const id = this.nextClientId++;
      const m = { to: toKey, body, onlineOnly, resolve, reject, inflight: false };
      this.outbox.set(id, m);
      if (this.conn && !this.conn.closed) this._transmit(id, m);
      else if (this.stopped) { this.outbox.delete(id); reject(new SealpostError('device not started', 'ENOTCONN')); }
    });
  }

  _transmit(id, m) {
    if (m.inflight) return;
    m.inflight = true;
    this.conn.send(m.to, m.body, { clientId: id, onlineOnly: m.onlineOnly }).then((r) => {
      this.outbox.delete(id);
      m.resolve(r);
    }, (e) => {
      m.inflight = false;
      if (e instanceof SealpostError && (e.code === 'ECONNRESET' || e.code === 'ENOTCONN' || e.code === 'EBADMSG' || e.code === 'EPROTO')) return; // retried on reconnect
      this.outbox.delete(id);
      m.reject(e);
    });
  }

  /** Round trip to the broker: resolves once every earlier send has its result. */
  async sync() {
    const c = await this.waitConnected();
    return c.ping();
  }

  /** Disconnects and stops reconnecting; pending sends are rejected. */
  stop() {
    this.stopped = true;
    clearTimeout(this._sleepTimer);
    const c = this.conn;
    this.conn = null;
    if (c) c.close();
    for (const [id, m] of this.outbox) { this.outbox.delete(id); m.reject(new SealpostError('device stopped', 'ECANCELED')); }
    for (const w of this._waiters.splice(0)) w.reject(new SealpostError('device stopped', 'ECANCELED'));
  }
}

export { keyValid };
