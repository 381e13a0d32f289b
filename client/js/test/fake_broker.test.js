// SPDX-License-Identifier: Apache-2.0
// What a broker (or whatever answers in its place) may send that the library
// must refuse: a fake broker on a loopback TCP port, built from our own Noise
// responder, sends each kind of bad input; the connect or the connection
// must fail with the right error, and nothing be accepted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { ready, generateKey, Connection, encodeMessage, encodeFrame } from '../src/index.js';
import { HandshakeState } from '../src/noise.js';
import { connectTcp } from '../src/node_tcp.js';
import { concat } from '../src/bytes.js';
import { lengthPrefix } from '../src/client.js';

await ready();
const brokerKey = generateKey();
const EMPTY = new Uint8Array(0);
const goodHello = () => encodeMessage('ServerHello', { protocol_version: 1, max_envelope: 64000, max_transport: 65519 });

/**
 * A fake broker for one connection. script(ctx) is called with
 * { sock, hs, readMsg(): Promise<Uint8Array>, sendMsg(bytes), finish(pattern) }.
 */
function fakeBroker(script) {
  return new Promise((resolve) => {
    const server = net.createServer((sock) => {
      let buf = new Uint8Array(0);
      let waiter = null;
      let pre = null;
      const pump = () => {
        if (!pre && buf.length >= 8) { pre = buf.slice(0, 8); buf = buf.subarray(8); }
        if (pre && waiter && buf.length >= 2) {
          const n = (buf[0] << 8) | buf[1];
          if (buf.length >= 2 + n) {
            const m = buf.slice(2, 2 + n);
            buf = buf.subarray(2 + n);
            const w = waiter; waiter = null; w(m);
          }
        }
      };
      sock.on('data', (d) => { buf = concat(buf, new Uint8Array(d)); pump(); });
      sock.on('error', () => {});
      const readMsg = () => new Promise((r) => { waiter = r; pump(); });
      const sendMsg = (b) => sock.write(lengthPrefix(b));
      const ctx = { sock, readMsg, sendMsg, get preamble() { return pre; } };
      ctx.handshake = async (pattern, { hello = goodHello(), mutateS = null } = {}) => {
        const m1 = await ctx.readMsg();
        const hs = new HandshakeState({ pattern, initiator: false, prologue: pre, s: brokerKey });
        if (mutateS) hs.s.publicKey = mutateS;
        hs.readMessage(m1);
        ctx.hs = hs;
        return hs.writeMessage(hello);
      };
      script(ctx);
    });
    server.listen(0, '127.0.0.1', () => resolve({ port: server.address().port, close: () => server.close() }));
  });
}

async function connectTo(fake, opts = {}) {
  const t = await connectTcp('127.0.0.1', fake.port);
  return Connection.open({ transport: t, key: generateKey(), pattern: 'IK', brokerKey: brokerKey.publicKey,
    timeoutMs: 5000, ...opts });
}

const cases = {
  'a ServerHello of another protocol_version': [async (c) => {
    c.sendMsg(await c.handshake('IK', { hello: encodeMessage('ServerHello', { protocol_version: 2 }) }));
  }, 'EPROTO', /incompatible/],
  'an undecodable ServerHello': [async (c) => {
    c.sendMsg(await c.handshake('IK', { hello: Uint8Array.of(0xff, 0xff) }));
  }, 'EPROTO', /ServerHello/],
  'a message 2 that does not decrypt': [async (c) => {
    const m2 = await c.handshake('IK');
    m2[m2.length - 1] ^= 1;
    c.sendMsg(m2);
  }, 'EPROTO', /handshake failed/],
  'a message 2 cut short': [async (c) => {
    c.sendMsg((await c.handshake('IK')).subarray(0, 20));
  }, 'EPROTO', /handshake/],
  'a handshake message over 1120 bytes': [async (c) => {
    await c.readMsg();
    c.sendMsg(new Uint8Array(1121));
  }, 'EPROTO', /over the limit/],
  'a zero-length message': [async (c) => {
    await c.readMsg();
    c.sock.write(Uint8Array.of(0, 0));
  }, 'EPROTO', /zero-length/],
  'a close during the handshake': [async (c) => { await c.readMsg(); c.sock.destroy(); }, 'ECONNRESET', /closed/],
  'no answer at all': [async () => {}, 'ETIMEDOUT', /timed out/, { timeoutMs: 300 }],
  'XX: a broker static key of low order': [async (c) => {
    c.sendMsg(await c.handshake('XX', { mutateS: new Uint8Array(32) }));
  }, 'EPROTO', /valid public key/, { pattern: 'XX', brokerKey: null }],
};

for (const [what, [script, code, re, opts]] of Object.entries(cases)) {
  test(`handshake: ${what} is refused`, async () => {
    const fake = await fakeBroker((c) => script(c).catch(() => {}));
    try {
      await assert.rejects(connectTo(fake, opts), (e) => {
        assert.equal(e.code, code, e.message);
        assert.match(e.message, re);
        return true;
      });
    } finally { fake.close(); }
  });
}

/** After a good IK handshake, the fake broker runs after(ctx, send, recv). */
async function established(after) {
  const fake = await fakeBroker(async (c) => {
    c.sendMsg(await c.handshake('IK'));
    const { send, recv } = c.hs.result;
    recv.decryptWithAd(EMPTY, await c.readMsg()); // the proof
    after(c, send, recv);
  });
  const conn = await connectTo(fake);
  return { conn, fake };
}

const transportCases = {
  'a transport message that fails authentication': [(c, send) => {
    const m = send.encryptWithAd(EMPTY, encodeFrame({ type: 'drained', drained: { count: 0n } }));
    m[0] ^= 1;
    c.sendMsg(m);
  }, 'EBADMSG'],
  'a frame the broker must not send (Send)': [(c, send) => {
    c.sendMsg(send.encryptWithAd(EMPTY, encodeFrame({ type: 'send', send: { to: new Uint8Array(32) }, body: Uint8Array.of(1) })));
  }, 'EPROTO'],
  'a SendResult without a Send': [(c, send) => {
    c.sendMsg(send.encryptWithAd(EMPTY, encodeFrame({ type: 'send_result', send_result: { client_id: 1n, status: 2 } })));
  }, 'EPROTO'],
  'a malformed frame': [(c, send) => {
    c.sendMsg(send.encryptWithAd(EMPTY, Uint8Array.of(0, 0, 0, 0)));
  }, 'EPROTO'],
  'a replayed transport message': [(c, send) => {
    const m = send.encryptWithAd(EMPTY, encodeFrame({ type: 'drained', drained: { count: 0n } }));
    c.sendMsg(m);
    c.sendMsg(m);
  }, 'EBADMSG'],
};

for (const [what, [after, code]] of Object.entries(transportCases)) {
  test(`transport: ${what} closes the connection`, async () => {
    const { conn, fake } = await established(after);
    try {
      const err = await new Promise((r) => conn.on('close', r));
      assert.equal(err.code, code, err.message);
      assert.equal(conn.closed, true);
      await assert.rejects(conn.send(new Uint8Array(32).fill(9), Uint8Array.of(1)), (e) => e.code === 'ENOTCONN');
    } finally { fake.close(); }
  });
}

test('transport: the broker Ping is answered with a Pong of the same id', async () => {
  let pong;
  const got = new Promise((r) => { pong = r; });
  const { conn, fake } = await established(async (c, send, recv) => {
    c.sendMsg(send.encryptWithAd(EMPTY, encodeFrame({ type: 'ping', ping: { id: 77n } })));
    pong(recv.decryptWithAd(EMPTY, await c.readMsg()));
  });
  try {
    assert.deepEqual([...await got], [...encodeFrame({ type: 'pong', pong: { id: 77n } })]);
  } finally { conn.close(); fake.close(); }
});

// ---- WebSocket: what a server in the broker's place may do wrong ----------

import { WebSocketServer } from 'ws';
import { connectWebSocket } from '../src/index.js';

function fakeWs(opts, onConn) {
  return new Promise((resolve) => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, path: '/v1', ...opts });
    wss.on('connection', onConn);
    wss.on('listening', () => resolve({ url: `ws://127.0.0.1:${wss.address().port}/v1`,
      close: () => { for (const c of wss.clients) c.terminate(); wss.close(); } }));
  });
}

test('ws: a server that does not choose subprotocol sealpost.v1 is refused', async () => {
  const f = await fakeWs({ handleProtocols: () => false }, () => {});
  try {
    // the ws package fails the upgrade itself (1006); a browser opens it, and
    // connectWebSocket then refuses the socket because protocol is not sealpost.v1
    await assert.rejects(connectWebSocket(f.url), /subprotocol sealpost.v1|closed before opening/);
  } finally { f.close(); }
});

test('ws: a text message closes the connection (1003); the handshake fails', async () => {
  const f = await fakeWs({ handleProtocols: () => 'sealpost.v1' }, (ws) => {
    ws.once('message', () => ws.send('not binary'));
  });
  let code = null;
  try {
    const t = await connectWebSocket(f.url);
    t.ws.addEventListener?.('close', (ev) => { code = ev.code; });
    t.ws.on?.('close', (c) => { code = c; });
    await assert.rejects(Connection.open({ transport: t, key: generateKey(), pattern: 'XX', timeoutMs: 5000 }),
      (e) => e.code === 'ECONNRESET');
    assert.equal(code, 1003);
  } finally { f.close(); }
});

test('ws: the byte stream cut anywhere across messages is reassembled', async () => {
  // A fake broker that answers XX message 1 one byte per WebSocket message.
  const f = await fakeWs({ handleProtocols: () => 'sealpost.v1' }, (ws) => {
    let buf = new Uint8Array(0);
    ws.on('message', (d) => {
      buf = concat(buf, new Uint8Array(d));
      if (buf.length < 8 + 2 + 32) return;
      const hs = new HandshakeState({ pattern: 'XX', initiator: false, prologue: buf.subarray(0, 8), s: brokerKey });
      hs.readMessage(buf.subarray(10, 42));
      const out = lengthPrefix(hs.writeMessage(goodHello()));
      for (const b of out) ws.send(Uint8Array.of(b));
      buf = new Uint8Array(0);
      ws.removeAllListeners('message');
    });
  });
  try {
    const t = await connectWebSocket(f.url);
    const c = await Connection.open({ transport: t, key: generateKey(), pattern: 'XX',
      brokerKey: brokerKey.publicKey, timeoutMs: 5000 });
    assert.equal(c.serverHello.max_envelope, 64000);
    c.close();
  } finally { f.close(); }
});
