// SPDX-License-Identifier: Apache-2.0
// The Noise state machine against the cacophony vectors (tests/vectors/cacophony.json):
// every ChaChaPoly/BLAKE2b vector without a PSK, both roles, handshake hash and
// the transport messages that follow.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ready } from '../src/sodium.js';
import { HandshakeState, SUITE } from '../src/noise.js';
import { fromHex, toHex } from '../src/bytes.js';
import { keypairFromPrivate } from '../src/noise.js';

const path = fileURLToPath(new URL('../../../tests/vectors/cacophony.json', import.meta.url));
const all = JSON.parse(readFileSync(path, 'utf8')).vectors;
const ours = all.filter((v) => v.protocol_name.endsWith(SUITE) && !v.protocol_name.includes('psk'));

test('cacophony: the vectors we implement are all there', () => {
  const names = ours.map((v) => v.protocol_name.split('_')[1]).sort();
  assert.deepEqual(names, ['IK', 'K', 'N', 'NK', 'NN', 'X', 'XX']);
});

for (const v of ours) {
  test(`cacophony ${v.protocol_name}`, async () => {
    await ready();
    const pattern = v.protocol_name.split('_')[1];
    const h = (x) => (x ? fromHex(x) : undefined);
    const kp = (x) => (x ? keypairFromPrivate(fromHex(x)) : undefined);
    const ini = new HandshakeState({ pattern, initiator: true, prologue: h(v.init_prologue),
      s: kp(v.init_static), rs: h(v.init_remote_static), e: h(v.init_ephemeral) });
    const res = new HandshakeState({ pattern, initiator: false, prologue: h(v.resp_prologue),
      s: kp(v.resp_static), rs: h(v.resp_remote_static), e: h(v.resp_ephemeral) });
    let i = 0;
    for (; !ini.done; i++) {
      const m = v.messages[i];
      const [w, r] = ini.isMyTurn() ? [ini, res] : [res, ini];
      const ct = w.writeMessage(fromHex(m.payload));
      assert.equal(toHex(ct), m.ciphertext, `handshake message ${i}`);
      assert.equal(toHex(r.readMessage(ct)), m.payload);
    }
    assert.ok(res.done);
    assert.equal(toHex(ini.h), v.handshake_hash);
    assert.equal(toHex(res.h), v.handshake_hash);
    const oneWay = !ini.result.recv;
    for (; i < v.messages.length; i++) {
      const m = v.messages[i];
      const fromIni = oneWay || i % 2 === 0; // cacophony alternates from the first handshake message on
      const [w, r] = fromIni ? [ini.result.send, res.result.recv] : [res.result.send, ini.result.recv];
      const ct = w.encryptWithAd(new Uint8Array(0), fromHex(m.payload));
      assert.equal(toHex(ct), m.ciphertext, `transport message ${i}`);
      assert.equal(toHex(r.decryptWithAd(new Uint8Array(0), ct)), m.payload);
    }
  });
}
