// SPDX-License-Identifier: Apache-2.0
// Hand-rolled proto3 codec for the messages of proto/sealpost.proto, and the
// frame layout of PROTOCOL.md 5 (u16 header_len | u16 body_len | FrameHeader | body).
//
// Why hand-rolled: the schema is ten small messages of varints and bytes, and
// the broker's rules are stricter than a generic protobuf library applies
// (exactly one member of FrameHeader.kind, once; a library keeps the last
// one). A generic library would also be a large dependency for the browser.
// uint64 fields are BigInt; uint32 and enum fields are Number.

export const STATUS = Object.freeze({
  UNSPECIFIED: 0, DELIVERED: 1, ACCEPTED: 2,
  ERR_OFFLINE: 16, ERR_TOO_LARGE: 17, ERR_BAD_RECIPIENT: 18, ERR_RECIPIENT_BUSY: 19,
  ERR_MAILBOX_FULL: 20, ERR_RATE_LIMITED: 21, ERR_INTERNAL: 22, ERR_SHUTTING_DOWN: 23,
  GOAWAY_PROTOCOL: 32, GOAWAY_TAKEOVER: 33, GOAWAY_SHUTDOWN: 34,
  GOAWAY_SLOW_CONSUMER: 35, GOAWAY_IDLE: 36,
});

export const STATUS_NAME = Object.freeze(
  Object.fromEntries(Object.entries(STATUS).map(([k, v]) => [v, k])));

export const FRAME_HEADER_MAX = 1024;
export const ACK_SEQS_MAX = 64;

export class ProtoError extends Error {
  constructor(msg) { super(msg); this.name = 'ProtoError'; }
}

// ---- writer -----------------------------------------------------------------

class Writer {
  constructor() { this.b = []; }
  varint(v) {
    let x = BigInt(v);
    if (x < 0n || x >= (1n << 64n)) throw new RangeError('varint out of range');
    while (x >= 0x80n) { this.b.push(Number(x & 0x7fn) | 0x80); x >>= 7n; }
    this.b.push(Number(x));
  }
  tag(field, wt) { this.varint((field << 3) | wt); }
  // proto3: a zero scalar is not written.
  u(field, v) { if (v !== undefined && v !== null && BigInt(v) !== 0n) { this.tag(field, 0); this.varint(v); } }
  bytes(field, data) { this.tag(field, 2); this.varint(data.length); for (const x of data) this.b.push(x); }
  out() { return Uint8Array.from(this.b); }
}

// ---- reader -----------------------------------------------------------------

class Reader {
  constructor(buf) { this.buf = buf; this.o = 0; }
  eof() { return this.o >= this.buf.length; }
  varint() {
    let x = 0n, shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.o >= this.buf.length) throw new ProtoError('truncated varint');
      const c = this.buf[this.o++];
      x |= BigInt(c & 0x7f) << shift;
      if (!(c & 0x80)) {
        if (x >= (1n << 64n)) throw new ProtoError('varint above 64 bits');
        return x;
      }
      shift += 7n;
    }
    throw new ProtoError('varint too long');
  }
  bytes() {
    const n = this.varint();
    if (n > BigInt(this.buf.length - this.o)) throw new ProtoError('truncated bytes');
    const b = this.buf.subarray(this.o, this.o + Number(n));
    this.o += Number(n);
    return b;
  }
  skip(wt) {
    switch (wt) {
      case 0: this.varint(); return;
      case 1: this.fixed(8); return;
      case 2: this.bytes(); return;
      case 5: this.fixed(4); return;
      default: throw new ProtoError(`unsupported wire type ${wt}`);
    }
  }
  fixed(n) {
    if (this.buf.length - this.o < n) throw new ProtoError('truncated fixed field');
    this.o += n;
  }
}

const u32 = (v) => {
  if (v > 0xffffffffn) return Number(v & 0xffffffffn); // proto3 uint32 truncates
  return Number(v);
};

// Each message: field number -> [name, kind] with kind 'u64' | 'u32' | 'bytes' | 'rep64'.
const SCHEMA = {
  ClientHello: { 1: ['protocol_version', 'u32'] },
  ServerHello: { 1: ['protocol_version', 'u32'], 2: ['max_envelope', 'u32'],
    3: ['max_transport', 'u32'], 4: ['idle_timeout_ms', 'u32'] },
  Send: { 1: ['to', 'bytes'], 2: ['client_id', 'u64'], 3: ['flags', 'u32'] },
  SendResult: { 1: ['client_id', 'u64'], 2: ['status', 'u32'], 3: ['seq', 'u64'] },
  Deliver: { 1: ['seq', 'u64'] },
  Ack: { 1: ['seqs', 'rep64'] },
  Drained: { 1: ['count', 'u64'] },
  Ping: { 1: ['id', 'u64'] },
  Pong: { 1: ['id', 'u64'] },
  GoAway: { 1: ['code', 'u32'] },
};

/** FrameHeader.kind members: field number -> [frame type name, message]. */
export const KINDS = {
  1: ['send', 'Send'], 2: ['send_result', 'SendResult'], 3: ['deliver', 'Deliver'],
  4: ['ack', 'Ack'], 5: ['drained', 'Drained'], 6: ['ping', 'Ping'], 7: ['pong', 'Pong'],
  8: ['goaway', 'GoAway'],
};
const KIND_FIELD = Object.fromEntries(Object.entries(KINDS).map(([f, [n]]) => [n, Number(f)]));
/** Frame types that carry a body (PROTOCOL.md 5). */
export const HAS_BODY = new Set(['send', 'deliver']);

export function encodeMessage(type, obj = {}) {
  const s = SCHEMA[type];
  if (!s) throw new Error(`unknown message ${type}`);
  const w = new Writer();
  for (const [f, [name, kind]] of Object.entries(s)) {
    const v = obj[name];
    if (v === undefined || v === null) continue;
    const field = Number(f);
    if (kind === 'bytes') {
      if (v.length) w.bytes(field, v);
    } else if (kind === 'rep64') {
      if (v.length) { // packed, as proto3 writes repeated scalars
        const inner = new Writer();
        for (const x of v) inner.varint(x);
        w.bytes(field, inner.out());
      }
    } else {
      w.u(field, v);
    }
  }
  return w.out();
}

export function decodeMessage(type, buf) {
  const s = SCHEMA[type];
  const r = new Reader(buf);
  const out = {};
  for (const [, [name, kind]] of Object.entries(s)) {
    out[name] = kind === 'bytes' ? new Uint8Array(0) : kind === 'rep64' ? [] : kind === 'u64' ? 0n : 0;
  }
  while (!r.eof()) {
    const key = r.varint();
    const field = Number(key >> 3n), wt = Number(key & 7n);
    if (field === 0) throw new ProtoError('field number 0');
    const d = s[field];
    if (!d) { r.skip(wt); continue; } // unknown fields are ignored
    const [name, kind] = d;
    if (kind === 'bytes') {
      if (wt !== 2) throw new ProtoError(`${type}.${name}: wrong wire type`);
      out[name] = Uint8Array.from(r.bytes());
    } else if (kind === 'rep64') {
      if (wt === 0) out[name].push(r.varint());
      else if (wt === 2) {
        const inner = new Reader(r.bytes());
        while (!inner.eof()) out[name].push(inner.varint());
      } else throw new ProtoError(`${type}.${name}: wrong wire type`);
    } else {
      if (wt !== 0) throw new ProtoError(`${type}.${name}: wrong wire type`);
      const v = r.varint();
      out[name] = kind === 'u64' ? v : u32(v);
    }
  }
  return out;
}

/** FrameHeader with its one kind member: { type: 'send', send: {...} } etc. */
export function encodeHeader(type, msg) {
  const f = KIND_FIELD[type];
  if (!f) throw new Error(`unknown frame type ${type}`);
  const w = new Writer();
  w.bytes(f, encodeMessage(KINDS[f][1], msg));
  return w.out();
}

/** Decodes a FrameHeader: exactly one member of kind, once (PROTOCOL.md 5). */
export function decodeHeader(buf) {
  const r = new Reader(buf);
  let found = null;
  while (!r.eof()) {
    const key = r.varint();
    const field = Number(key >> 3n), wt = Number(key & 7n);
    if (field === 0) throw new ProtoError('field number 0');
    if (!KINDS[field]) { r.skip(wt); continue; }
    if (wt !== 2) throw new ProtoError('FrameHeader member with wrong wire type');
    if (found) throw new ProtoError('FrameHeader with more than one kind');
    const [type, mtype] = KINDS[field];
    found = { type, [type]: decodeMessage(mtype, r.bytes()) };
  }
  if (!found) throw new ProtoError('FrameHeader with no kind');
  return found;
}

/** One frame's bytes: prefix, header, body. frame = { type, [type]: msg, body? } */
export function encodeFrame(frame) {
  const header = encodeHeader(frame.type, frame[frame.type] ?? {});
  const body = frame.body ?? new Uint8Array(0);
  if (header.length < 1 || header.length > FRAME_HEADER_MAX) throw new RangeError('frame header size');
  if (body.length && !HAS_BODY.has(frame.type)) throw new RangeError(`${frame.type} has no body`);
  if (body.length > 0xffff) throw new RangeError('frame body above 65535 bytes');
  const out = new Uint8Array(4 + header.length + body.length);
  out[0] = header.length >> 8; out[1] = header.length & 0xff;
  out[2] = body.length >> 8; out[3] = body.length & 0xff;
  out.set(header, 4);
  out.set(body, 4 + header.length);
  return out;
}

/** Splits a transport plaintext into frames; throws ProtoError on any malformed frame. */
export function decodeFrames(pt) {
  const frames = [];
  let o = 0;
  while (o < pt.length) {
    if (pt.length - o < 4) throw new ProtoError('frame prefix cut short');
    const hl = (pt[o] << 8) | pt[o + 1], bl = (pt[o + 2] << 8) | pt[o + 3];
    o += 4;
    if (hl < 1 || hl > FRAME_HEADER_MAX) throw new ProtoError('frame header length out of range');
    if (pt.length - o < hl + bl) throw new ProtoError('frame cut short');
    const f = decodeHeader(pt.subarray(o, o + hl));
    o += hl;
    if (bl && !HAS_BODY.has(f.type)) throw new ProtoError(`${f.type} with a body`);
    f.body = Uint8Array.from(pt.subarray(o, o + bl));
    o += bl;
    frames.push(f);
  }
  return frames;
}
