// SPDX-License-Identifier: Apache-2.0
// The frame codec (PROTOCOL.md 5) and the protobuf messages of
// proto/sealpost.proto: the document's encoding example, round trips, and
// every malformed frame the broker's rules name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeFrame, decodeFrames, encodeMessage, decodeMessage, decodeHeader, ProtoError } from '../src/proto.js';
import { toHex, fromHex, concat } from '../src/bytes.js';
import { preamble, lengthPrefix } from '../src/client.js';
import { unwrapLogHead, LOG_WRAP_LEN } from '../src/seal.js';

const K = Uint8Array.from({ length: 32 }, (_, i) => i + 1);

test('PROTOCOL.md 5 encoding example: Send{to K, client_id 7} + 200-byte body', () => {
  const body = new Uint8Array(200).fill(0xab);
  const f = encodeFrame({ type: 'send', send: { to: K, client_id: 7n }, body });
  assert.equal(toHex(f.subarray(0, 8)), '002600c80a240a20');
  assert.equal(toHex(f.subarray(8, 40)), toHex(K));
  assert.equal(toHex(f.subarray(40, 42)), '1007');
  assert.equal(f.length, 4 + 38 + 200);
  const [d] = decodeFrames(f);
  assert.equal(d.type, 'send');
  assert.equal(toHex(d.send.to), toHex(K));
  assert.equal(d.send.client_id, 7n);
  assert.equal(d.body.length, 200);
});

test('preamble and length prefix (PROTOCOL.md 2, 3)', () => {
  assert.equal(toHex(preamble('IK')), '5345414c01010000');
  assert.equal(toHex(preamble('XX')), '5345414c01020000');
  assert.throws(() => preamble('NN'));
  assert.equal(toHex(lengthPrefix(Uint8Array.of(1, 2, 3))), '0003010203');
  assert.throws(() => lengthPrefix(new Uint8Array(0)));
  assert.throws(() => lengthPrefix(new Uint8Array(65536)));
});

test('round trips of every frame type, several per plaintext', () => {
  const frames = [
    { type: 'send', send: { to: K, client_id: (1n << 64n) - 1n, flags: 1 }, body: Uint8Array.of(1, 2) },
    { type: 'send_result', send_result: { client_id: 9n, status: 2, seq: 4294967296n } },
    { type: 'deliver', deliver: { seq: 3n }, body: Uint8Array.of(9) },
    { type: 'ack', ack: { seqs: [1n, 2n, 300n] } },
    { type: 'drained', drained: { count: 0n } },
    { type: 'ping', ping: { id: 5n } },
    { type: 'pong', pong: { id: 5n } },
    { type: 'goaway', goaway: { code: 33 } },
  ];
  const pt = concat(...frames.map(encodeFrame));
  const out = decodeFrames(pt);
  assert.equal(out.length, frames.length);
  for (let i = 0; i < frames.length; i++) {
    assert.equal(out[i].type, frames[i].type);
    const want = frames[i][frames[i].type];
    for (const [k, v] of Object.entries(want)) {
      if (v instanceof Uint8Array) assert.equal(toHex(out[i][out[i].type][k]), toHex(v));
      else assert.deepEqual(out[i][out[i].type][k], v);
    }
    assert.equal(toHex(out[i].body), toHex(frames[i].body ?? new Uint8Array(0)));
  }
  assert.deepEqual(decodeFrames(new Uint8Array(0)), []);
});

test('hellos; unknown fields ignored; ServerHello of PROTOCOL.md 10', () => {
  assert.equal(toHex(encodeMessage('ClientHello', { protocol_version: 1 })), '0801');
  const sh = decodeMessage('ServerHello', fromHex('08011080f40318efff0320c0cf24'));
  assert.deepEqual(sh, { protocol_version: 1, max_envelope: 64000, max_transport: 65519, idle_timeout_ms: 600000 });
  // field 9 varint and field 10 bytes, unknown: ignored
  const withUnknown = decodeMessage('ClientHello', fromHex('0801480152020102'));
  assert.equal(withUnknown.protocol_version, 1);
  // non-packed repeated seqs are accepted too
  assert.deepEqual(decodeMessage('Ack', fromHex('08010802')).seqs, [1n, 2n]);
});

test('malformed frames are refused', () => {
  const ping = encodeFrame({ type: 'ping', ping: { id: 1n } });
  const bad = {
    'prefix cut short': ping.subarray(0, 3),
    'header cut short': ping.subarray(0, ping.length - 1),
    'header_len 0': Uint8Array.of(0, 0, 0, 0),
    'header_len above 1024': concat(Uint8Array.of(0x04, 0x01, 0, 0), new Uint8Array(1025)),
    'not protobuf': Uint8Array.of(0, 2, 0, 0, 0xff, 0xff),
    'no kind': Uint8Array.of(0, 2, 0, 0, 0x48, 0x01),
    'two kinds': Uint8Array.of(0, 4, 0, 0, 0x32, 0x00, 0x3a, 0x00),
    'the same kind twice': Uint8Array.of(0, 4, 0, 0, 0x32, 0x00, 0x32, 0x00),
    'a body on a Ping': concat(Uint8Array.of(0, 2, 0, 1, 0x32, 0x00), Uint8Array.of(7)),
    'kind with the wrong wire type': Uint8Array.of(0, 2, 0, 0, 0x30, 0x01),
    'varint over 10 bytes': concat(Uint8Array.of(0, 13, 0, 0, 0x32, 0x0b, 0x08), new Uint8Array(10).fill(0xff)),
    'body cut short': Uint8Array.of(0, 2, 0, 5, 0x1a, 0x00, 1),
  };
  for (const [what, pt] of Object.entries(bad)) {
    assert.throws(() => decodeFrames(pt), ProtoError, what);
  }
  assert.throws(() => decodeHeader(new Uint8Array(0)), ProtoError);
  assert.throws(() => encodeFrame({ type: 'ping', ping: { id: 1n }, body: Uint8Array.of(1) }), RangeError);
});

test('PROTOCOL.md 11.7: a sender\'s log head first in the plaintext is split off', () => {
  const key = Uint8Array.from({ length: 32 }, (_, i) => 0x40 + i);
  const sth = Uint8Array.from({ length: 113 }, (_, i) => i);
  const text = new TextEncoder().encode('hello');
  const wrapped = concat(new TextEncoder().encode('SPT1'), key, sth, text);
  assert.equal(LOG_WRAP_LEN, 149);
  const u = unwrapLogHead(wrapped);
  assert.equal(new TextDecoder().decode(u.message), 'hello');
  assert.equal(toHex(u.logHead.logKey), toHex(key));
  assert.equal(toHex(u.logHead.sth), toHex(sth));
  // an empty message after the wrap
  assert.equal(unwrapLogHead(wrapped.subarray(0, LOG_WRAP_LEN)).message.length, 0);
  // no magic, or too short for a wrap: the message as it is
  for (const m of [text, wrapped.subarray(0, LOG_WRAP_LEN - 1), concat(new TextEncoder().encode('SPT2'), key, sth)]) {
    const v = unwrapLogHead(m);
    assert.equal(v.logHead, null);
    assert.equal(toHex(v.message), toHex(m));
  }
});
