// SPDX-License-Identifier: Apache-2.0
// The library against a real sealpostd: IK and XX, sending and receiving
// between JS devices, sealing both ways with the C CLI, reconnect after a
// broker restart, and the bad input the library must refuse. Over WebSocket
// (--ws-listen) when this sealpostd has it, and over TCP (the same byte
// stream) always.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { rmSync, writeFileSync } from 'node:fs';
import { ready, generateKey, Device, Connection, toHex, fromHex, STATUS, seal, connectWebSocket } from '../src/index.js';
import { concat } from '../src/bytes.js';
import { connectTcp } from '../src/node_tcp.js';
import { Broker, haveBroker, haveCli, brokerHasWs, cli, cliUntil, nextEvent, tempDir } from './support.js';

const skip = haveBroker ? false : 'SEALPOSTD is not set (run through ctest)';
let broker;
let transports = [];

before(async () => {
  if (skip) return;
  await ready();
  broker = await new Broker({ extra: ['--mailbox-sender-share', '100'] }).start();
  transports = ['tcp'];
  if (await brokerHasWs()) transports.unshift('ws');
});

after(async () => {
  if (!broker) return;
  const code = await broker.stop();
  assert.equal(code, 0, `sealpostd exited ${code}:\n${broker.log.slice(-2000)}`);
  broker.cleanup();
});

function connector(kind) {
  return kind === 'ws' ? () => connectWebSocket(broker.wsUrl) : () => connectTcp('127.0.0.1', broker.port);
}

function device(kind, opts = {}) {
  return new Device({ key: opts.key ?? generateKey(), connect: connector(kind),
    brokerKey: opts.pattern === 'XX' ? opts.brokerKey : (opts.brokerKey ?? broker.serverPub), ...opts });
}

test('IK and XX: a message from one JS device to another, sender authenticated, acked', { skip }, async (t) => {
  for (const kind of transports) {
    for (const pattern of ['IK', 'XX']) {
      await t.test(`${kind} ${pattern}`, async () => {
        const a = device(kind, { pattern });
        const b = device(kind, { pattern });
        const drained = nextEvent(b, 'drained');
        await a.start();
        await b.start();
        assert.equal((await drained).count, 0n);
        if (pattern === 'XX') assert.equal(a.learnedBrokerKey, broker.serverPub);
        const got = nextEvent(b, 'message');
        const r = await a.sendMessage(b.key.publicKey, `hello over ${kind} ${pattern}`);
        assert.equal(r.status, STATUS.ACCEPTED);
        assert.ok(r.seq > 0n);
        const m = await got;
        assert.equal(m.text(), `hello over ${kind} ${pattern}`);
        assert.equal(m.from, a.publicKeyHex);
        assert.equal(m.seq, r.seq);
        await b.sync(); // the ack went out before this ping
        b.stop();
        // acked: a new connection of b gets an empty backlog
        const b2 = device(kind, { key: b.key, pattern });
        const d2 = nextEvent(b2, 'drained');
        await b2.start();
        assert.equal((await d2).count, 0n);
        // online-only to a connected device: delivered, seq 0
        const got2 = nextEvent(b2, 'message');
        const r2 = await a.sendMessage(b2.key.publicKey, 'now', { onlineOnly: true });
        assert.equal(r2.status, STATUS.DELIVERED);
        assert.equal((await got2).seq, 0n);
        b2.stop();
        const r3 = await a.sendMessage(b2.key.publicKey, 'nobody', { onlineOnly: true });
        assert.equal(r3.status, STATUS.ERR_OFFLINE);
        a.stop();
      });
    }
  }
});

test('XX: a broker key other than the expected one is refused and not retried', { skip }, async (t) => {
  for (const kind of transports) {
    await t.test(kind, async () => {
      const wrong = toHex(generateKey().publicKey);
      const a = device(kind, { pattern: 'XX', brokerKey: wrong });
      await assert.rejects(a.start(), (e) => e.code === 'EKEYREJECTED');
      assert.equal(a.stopped, true);
    });
  }
});

test('IK with a wrong broker key: the broker closes, the connection fails', { skip }, async (t) => {
  for (const kind of transports) {
    await t.test(kind, async () => {
      const tr = await connector(kind)();
      await assert.rejects(Connection.open({ transport: tr, key: generateKey(), pattern: 'IK',
        brokerKey: generateKey().publicKey, timeoutMs: 15000 }), (e) => e.code === 'ECONNRESET');
    });
  }
});

test('sealing both ways with the C CLI', { skip: skip || (haveCli ? false : 'SEALPOST_CLI is not set') }, async (t) => {
  const dir = tempDir('sealpost-cli-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const keyFile = join(dir, 'cli.key');
  const kg = await cli(['keygen', keyFile], { home: dir });
  assert.equal(kg.code, 0, kg.stderr);
  const cliPub = kg.stdout.trim();
  assert.match(cliPub, /^[0-9a-f]{64}$/);
  const conn = ['--server', `127.0.0.1:${broker.port}`, '--server-key', broker.serverPub, '--key', keyFile];
  for (const kind of transports) {
    await t.test(`${kind}: JS seals, the CLI opens`, async () => {
      const a = device(kind);
      await a.start();
      const r = await a.sendMessage(cliPub, `from js over ${kind}: ünïcode`);
      assert.equal(r.status, STATUS.ACCEPTED);
      const got = await cli(['recv', ...conn, '--count', '1', '--json', '--timeout', '20'], { home: dir });
      assert.equal(got.code, 0, got.stderr);
      const j = JSON.parse(got.stdout.trim());
      assert.equal(j.sender, a.publicKeyHex);
      assert.equal(j.message, `from js over ${kind}: ünïcode`);
      assert.equal(BigInt(j.seq), r.seq);
      a.stop();
    });
    await t.test(`${kind}: the CLI seals, JS opens`, async () => {
      const b = device(kind);
      await b.start();
      const got = nextEvent(b, 'message', 30000);
      const s = await cli(['send', ...conn, '--to', b.publicKeyHex, `from the CLI to js over ${kind}`], { home: dir });
      assert.equal(s.code, 0, s.stderr);
      const m = await got;
      assert.equal(m.from, cliPub);
      assert.equal(m.text(), `from the CLI to js over ${kind}`);
      b.stop();
    });
  }
});

test('sealed sender: the CLI sends anonymously (a padded seal), JS opens it', { skip: skip || (haveCli ? false : 'SEALPOST_CLI is not set') }, async (t) => {
  const dir = tempDir('sealpost-anon-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const keyFile = join(dir, 'cli.key');
  const kg = await cli(['keygen', keyFile], { home: dir });
  assert.equal(kg.code, 0, kg.stderr);
  const cliPub = kg.stdout.trim();
  // The JS device's key in a key file, so the CLI can set its access (accept
  // from anyone) before the device connects.
  const jsKey = generateKey();
  const jsKeyFile = join(dir, 'js.key');
  writeFileSync(jsKeyFile, `${toHex(jsKey.privateKey)}\n`, { mode: 0o600 });
  const conn = ['--server', `127.0.0.1:${broker.port}`, '--server-key', broker.serverPub];
  const op = await cli(['access', 'open', ...conn, '--key', jsKeyFile], { home: dir });
  assert.equal(op.code, 0, op.stderr);
  const b = device('tcp', { key: jsKey });
  await b.start();
  const got = nextEvent(b, 'message', 30000);
  const s = await cli(['send', ...conn, '--key', keyFile, '--to', b.publicKeyHex, '--anonymous',
    'anonymous, padded, from the CLI'], { home: dir });
  assert.equal(s.code, 0, s.stderr);
  const m = await got;
  assert.equal(m.from, cliPub);
  assert.equal(m.text(), 'anonymous, padded, from the CLI');
  b.stop();
});

test('reconnect: a broker restart, the device connects again and a queued send goes out', { skip }, async () => {
  const kind = transports[0];
  const a = device(kind, { backoff: { initialMs: 50, maxMs: 500 } });
  const b = device(kind, { backoff: { initialMs: 50, maxMs: 500 } });
  await a.start();
  await b.start();
  const down = nextEvent(a, 'disconnected', 20000);
  await broker.restart();
  await down;
  const again = nextEvent(b, 'message', 30000);
  const r = await a.sendMessage(b.key.publicKey, 'after the restart'); // sent once reconnected
  assert.equal(r.status, STATUS.ACCEPTED);
  assert.equal((await again).text(), 'after the restart');
  a.stop();
  b.stop();
});

test('bad input: what the library refuses before sending, and what the broker refuses', { skip }, async (t) => {
  const kind = transports[0];
  const a = device(kind, { autoAck: true });
  const b = device(kind);
  await a.start();
  await b.start();
  await t.test('recipient keys that are not valid public keys', () => {
    const low = new Uint8Array(32); // 0: low order
    const high = new Uint8Array(32).fill(0xff); // not canonical
    const pMinus1 = fromHex('ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f');
    for (const k of [low, high, pMinus1, new Uint8Array(31), 'zz', toHex(low)]) {
      assert.throws(() => a.sendMessage(k, 'x'));
    }
  });
  await t.test('a message above 63903 bytes', () => {
    assert.throws(() => a.sendMessage(b.key.publicKey, new Uint8Array(63904)), /63903/);
  });
  await t.test('the broker answers ERR_BAD_RECIPIENT for a low-order `to` sent raw', async () => {
    const c = await a.waitConnected();
    const r = await c.send(new Uint8Array(32), new Uint8Array(100), { clientId: 5n });
    assert.equal(r.status, STATUS.ERR_BAD_RECIPIENT);
    assert.equal(r.ok, false);
  });
  await t.test('an envelope that does not open is reported, acked, not delivered as a message', async () => {
    const c = await a.waitConnected();
    const good = seal(a.key, b.key.publicKey, new TextEncoder().encode('tampered'));
    good[good.length - 1] ^= 1;
    const bad = nextEvent(b, 'bad-envelope');
    const r = await c.send(b.key.publicKey, good, { clientId: 6n });
    assert.equal(r.status, STATUS.ACCEPTED);
    const e = await bad;
    assert.equal(e.seq, r.seq);
    // 2 is the padded seal (PROTOCOL.md 7.1); 3 is unknown.
    const ver = seal(a.key, b.key.publicKey, new TextEncoder().encode('v3'));
    ver[0] = 3;
    const bad2 = nextEvent(b, 'bad-envelope');
    await c.send(b.key.publicKey, ver, { clientId: 7n });
    assert.match((await bad2).error.message, /version/);
  });
  await t.test('a frame the client must not send: GoAway PROTOCOL, then close', async () => {
    const c = await a.waitConnected();
    const closed = nextEvent(c, 'close');
    const ga = nextEvent(c, 'goaway');
    // a Drained frame is broker -> client only
    c.sendPlaintextForTest(Uint8Array.of(0, 2, 0, 0, 0x2a, 0));
    assert.equal((await ga).code, STATUS.GOAWAY_PROTOCOL);
    await closed;
  });
  a.stop();
  b.stop();
  assert.ok(broker.alive());
});

test('rekey: past 65536 transport messages the broker still reads this client (PROTOCOL.md 5.1)', { skip }, async () => {
  const kind = transports[0];
  const tr = await connector(kind)();
  const c = await Connection.open({ transport: tr, key: generateKey(), pattern: 'IK', brokerKey: fromHex(broker.serverPub) });
  // the proof was nonce 0; send empty transport messages up to nonce 65540, in batches
  const empty = new Uint8Array(0);
  while (c.send_cs.n < 65541n) {
    const batch = [];
    for (let i = 0; i < 4096 && c.send_cs.n < 65541n; i++) {
      const ct = c.send_cs.encryptWithAd(empty, empty);
      batch.push(Uint8Array.of(0, ct.length), ct);
    }
    c.sendRawForTest(concat(...batch));
  }
  assert.equal(c.send_cs.n, 65541n);
  await c.ping(); // answered only if the broker rekeyed at 65536 as we did
  c.close();
});
