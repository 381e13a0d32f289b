// SPDX-License-Identifier: Apache-2.0
// docs/PROTOCOL.md section 10, read from the document itself (the generated
// block between its markers), recomputed with this library: the IK
// handshake, the proof, the Send and the broker's answers, the rekey, and the
// sealed envelope.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ready } from '../src/sodium.js';
import { HandshakeState, CipherState, keypairFromPrivate, rekeyKey, REKEY_MESSAGES } from '../src/noise.js';
import { fromHex, toHex, concat } from '../src/bytes.js';
import { encodeMessage, decodeMessage, encodeFrame, decodeFrames } from '../src/proto.js';
import { seal, open, sealPadded, padBucket, MESSAGE_MAX, SealError } from '../src/seal.js';
import { preamble, lengthPrefix } from '../src/client.js';

const doc = readFileSync(fileURLToPath(new URL('../../../docs/PROTOCOL.md', import.meta.url)), 'utf8');
const block = doc.split('<!-- protocol vectors: begin')[1].split('<!-- protocol vectors: end')[0];

// label line, then indented hex lines; the label ends with "(N bytes)".
const V = {};
{
  let label = null;
  for (const line of block.split('\n')) {
    if (/^  [0-9a-f]+$/.test(line) && label) V[label] += line.trim();
    else if (/\(\d+ bytes\)$/.test(line)) { label = line.replace(/\s*\(\d+ bytes\)$/, ''); V[label] = ''; }
    else label = null;
  }
}
const get = (prefix) => {
  const k = prefix in V ? prefix : Object.keys(V).find((x) => x.startsWith(prefix));
  assert.ok(k, `PROTOCOL.md 10 has "${prefix}"`);
  return fromHex(V[k]);
};

test('PROTOCOL.md 10.1: IK handshake, proof, frames, rekey', async () => {
  await ready();
  const cs = keypairFromPrivate(get('client static private'));
  assert.equal(toHex(cs.publicKey), toHex(get('client static public')));
  const bs = keypairFromPrivate(get('broker static private'));
  assert.equal(toHex(bs.publicKey), toHex(get('broker static public')));
  const pre = get('preamble');
  assert.equal(toHex(preamble('IK')), toHex(pre));

  const ini = new HandshakeState({ pattern: 'IK', initiator: true, prologue: pre, s: cs,
    rs: bs.publicKey, e: get('client ephemeral private') });
  const res = new HandshakeState({ pattern: 'IK', initiator: false, prologue: pre, s: bs,
    e: get('broker ephemeral private') });
  const ch = encodeMessage('ClientHello', { protocol_version: 1 });
  assert.equal(toHex(ch), toHex(get('ClientHello')));
  const m1 = ini.writeMessage(ch);
  assert.equal(toHex(m1), toHex(get('message 1')));
  assert.equal(toHex(res.readMessage(m1)), toHex(ch));
  const sh = encodeMessage('ServerHello', { protocol_version: 1, max_envelope: 64000,
    max_transport: 65519, idle_timeout_ms: 600000 });
  assert.equal(toHex(sh), toHex(get('ServerHello')));
  const m2 = res.writeMessage(sh);
  assert.equal(toHex(m2), toHex(get('message 2')));
  const shd = decodeMessage('ServerHello', ini.readMessage(m2));
  assert.deepEqual(shd, { protocol_version: 1, max_envelope: 64000, max_transport: 65519, idle_timeout_ms: 600000 });
  assert.equal(toHex(ini.h), toHex(get('handshake hash h')));
  assert.equal(toHex(ini.result.send.k), toHex(get('k1')));
  assert.equal(toHex(ini.result.recv.k), toHex(get('k2')));

  const empty = new Uint8Array(0);
  const send = ini.result.send, recv = ini.result.recv;
  assert.equal(toHex(lengthPrefix(send.encryptWithAd(empty, empty))), toHex(get('proof, on the wire')));

  const body = get('body = 01');
  const sendFrame = encodeFrame({ type: 'send', send: { to: get('recipient static public'), client_id: 7n }, body });
  assert.equal(toHex(sendFrame), toHex(get('plaintext: the Send frame')));
  assert.equal(toHex(lengthPrefix(send.encryptWithAd(empty, sendFrame))), toHex(get("the Send's transport message")));

  // The broker's side, decrypted as the client does.
  const bsend = res.result.send;
  const drained = encodeFrame({ type: 'drained', drained: { count: 0n } });
  assert.equal(toHex(drained), toHex(get('plaintext: Drained{0}')));
  const w1 = get("broker's first transport message").subarray(2);
  const w2 = get("broker's second transport message").subarray(2);
  assert.equal(toHex(bsend.encryptWithAd(empty, drained)), toHex(w1));
  const f1 = decodeFrames(recv.decryptWithAd(empty, w1));
  assert.equal(f1[0].type, 'drained');
  const f2 = decodeFrames(recv.decryptWithAd(empty, w2));
  assert.deepEqual(f2[0].send_result, { client_id: 7n, status: 2, seq: 1n });
  assert.equal(toHex(encodeFrame({ type: 'send_result', send_result: { client_id: 7n, status: 2, seq: 1n } })),
    toHex(get('plaintext: SendResult')));

  // Rekey: run the client's sender on to nonce 65535, then check message 65536.
  const k1 = Uint8Array.from(get('k1'));
  assert.equal(toHex(rekeyKey(k1)), toHex(get('REKEY(k1)')));
  while (send.n < REKEY_MESSAGES) send.encryptWithAd(empty, empty);
  assert.equal(toHex(send.k), toHex(get('REKEY(k1)')));
  const ping = encodeFrame({ type: 'ping', ping: { id: 1n } });
  assert.equal(toHex(ping), toHex(get('plaintext: Ping{1}')));
  assert.equal(toHex(lengthPrefix(send.encryptWithAd(empty, ping))), toHex(get("the client's message with nonce 65536")));
  // The receiving side rekeys at the same point: give a fresh receiver the
  // message sent with nonce 65535 (under k1), then the one sent with 65536.
  const brecv = new CipherState(Uint8Array.from(get('k1')), true);
  const at65535 = new CipherState(Uint8Array.from(get('k1')), false);
  at65535.n = 65535n;
  brecv.n = 65535n;
  brecv.decryptWithAd(empty, at65535.encryptWithAd(empty, empty));
  assert.equal(toHex(brecv.k), toHex(get('REKEY(k1)')));
  assert.equal(toHex(brecv.decryptWithAd(empty, get("the client's message with nonce 65536").subarray(2))), toHex(ping));
});

test('PROTOCOL.md 10.2: sealed envelope', async () => {
  await ready();
  const sender = keypairFromPrivate(get('client static private'));
  const rcpt = keypairFromPrivate(get('recipient static private'));
  assert.equal(toHex(rcpt.publicKey), toHex(get('recipient static public')));
  const msg = get('message');
  assert.equal(new TextDecoder().decode(msg), 'hello, sealpost');
  const body = seal(sender, rcpt.publicKey, msg, { ephemeral: get('seal ephemeral private') });
  assert.equal(toHex(body), toHex(get('body = 01')));
  const o = open(rcpt, body);
  assert.equal(toHex(o.message), toHex(msg));
  assert.equal(toHex(o.sender), toHex(sender.publicKey));
});

// PROTOCOL.md 7.1: padded seals (version 2). libsealpost's are opened in
// broker.test.js; here the buckets and the format.
test('padded seals: buckets, round trips, the version bound by the prologue', async () => {
  await ready();
  const { generateKeypair } = await import('../src/noise.js');
  const a = generateKeypair();
  const b = generateKeypair();
  assert.equal(padBucket(0), 256);
  assert.equal(padBucket(255), 256);
  assert.equal(padBucket(256), 512);
  assert.equal(padBucket(32767), 32768);
  assert.equal(padBucket(32768), MESSAGE_MAX);
  assert.equal(padBucket(MESSAGE_MAX), 0);
  assert.equal(padBucket(600, 903), 903);
  for (const len of [0, 1, 255, 256, 1000, 40000]) {
    const m = new Uint8Array(len).map((_, i) => (i * 7) & 0xff);
    if (len >= 2) { m[len - 2] = 0x80; m[len - 1] = 0; }
    const body = sealPadded(a, b.publicKey, m);
    assert.equal(body[0], 2);
    assert.equal(body.length, padBucket(len) + 97);
    const r = open(b, body);
    assert.deepEqual(r.message, m);
    assert.deepEqual(r.sender, a.publicKey);
    body[0] = 1;
    assert.throws(() => open(b, body), SealError);
  }
  // Unpadded version 1 still opens.
  const v1 = seal(a, b.publicKey, new TextEncoder().encode('plain'));
  assert.equal(new TextDecoder().decode(open(b, v1).message), 'plain');
});
