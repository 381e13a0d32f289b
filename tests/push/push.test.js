// SPDX-License-Identifier: Apache-2.0
// Web Push wake-ups end to end: a real sealpostd, the C CLI, and a push
// service stand-in on 127.0.0.1 that checks what the broker sends with
// independent libraries: jose verifies the VAPID JWT (RFC 8292) against the
// key `sealpostd --print-vapid-key` printed, http_ece decrypts the RFC 8291
// body with the subscription's private key and auth secret.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import ece from 'http_ece';
import { importJWK, jwtVerify } from 'jose';
import { Broker, cli, tempDir, haveBroker, haveCli, SEALPOSTD } from '../../client/js/test/support.js';

const skip = !(haveBroker && haveCli) && 'needs SEALPOSTD and SEALPOST_CLI';

/** The stand-in: every request is checked and recorded; answers 201. */
function pushService() {
  const wakes = [];
  const held = [];      // /slow requests, answered when the test calls release()
  const srv = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      wakes.push({ path: req.url, headers: req.headers, body: Buffer.concat(chunks) });
      if (req.url.endsWith('/slow')) { held.push(res); return; }
      let code = 201;
      if (req.url.endsWith('/410')) code = 410;
      // 500-then-201: the first request to the path fails, the next succeeds.
      if (req.url.endsWith('/500-then-201') && wakes.filter((w) => w.path === req.url).length === 1) code = 500;
      res.writeHead(code).end();
    });
  });
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve({ srv, wakes, held, port: srv.address().port, release: () => { for (const r of held.splice(0)) r.writeHead(201).end(); } })));
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test('an offline device is woken: VAPID verifies, the body decrypts to "you have mail" only', { skip, timeout: 60000 }, async () => {
  const ps = await pushService();
  const dir = tempDir('sealpost-push-');
  const dataDir = `${dir}/d`;
  const vapid = execFileSync(SEALPOSTD, ['--data-dir', dataDir, '--print-vapid-key']).toString().trim();
  const b = await new Broker({ dataDir, ws: false, extra: ['--push-vapid-subject', 'mailto:ops@example.org',
    '--push-allow-private', '1'] }).start();
  try {
    const server = ['--server', `127.0.0.1:${b.port}`, '--server-key', b.serverPub];
    const dev = (await cli(['keygen', `${dir}/dev.key`])).stdout.trim();
    await cli(['keygen', `${dir}/snd.key`]);
    const ecdh = crypto.createECDH('prime256v1');
    ecdh.generateKeys();
    const auth = crypto.randomBytes(16);
    const endpoint = `http://127.0.0.1:${ps.port}/sub/201`;
    const reg = await cli(['push', 'register', ...server, '--key', `${dir}/dev.key`, endpoint,
      ecdh.getPublicKey().toString('base64url'), auth.toString('base64url')]);
    assert.equal(reg.code, 0, reg.stderr);
    const s = await cli(['send', ...server, '--key', `${dir}/snd.key`, '--to', dev, 'hello']);
    assert.equal(s.code, 0, s.stderr);
    for (let i = 0; i < 500 && ps.wakes.length === 0; i++) await sleep(20);
    assert.equal(ps.wakes.length, 1);
    const w = ps.wakes[0];
    assert.equal(w.path, '/sub/201');
    assert.ok(Number(w.headers.ttl) >= 0);
    assert.match(w.headers.urgency, /^(very-low|low|normal|high)$/);
    assert.equal(w.headers['content-encoding'], 'aes128gcm');
    const m = /^vapid t=([^,]+), k=(.+)$/.exec(w.headers.authorization);
    assert.ok(m, w.headers.authorization);
    assert.equal(m[2], vapid);
    const raw = Buffer.from(vapid, 'base64url');
    const key = await importJWK({ kty: 'EC', crv: 'P-256', x: raw.subarray(1, 33).toString('base64url'),
      y: raw.subarray(33, 65).toString('base64url') }, 'ES256');
    const { payload } = await jwtVerify(m[1], key, { audience: `http://127.0.0.1:${ps.port}`, algorithms: ['ES256'] });
    assert.equal(payload.sub, 'mailto:ops@example.org');
    assert.ok(payload.exp > Date.now() / 1000 && payload.exp <= Date.now() / 1000 + 86400);
    const plain = ece.decrypt(w.body, { version: 'aes128gcm', privateKey: ecdh, authSecret: auth.toString('base64url') });
    assert.deepEqual(JSON.parse(plain.toString()), { type: 'mail' });
    assert.ok(!plain.toString().includes('hello'));
  } finally {
    await b.stop();
    ps.srv.close();
    b.cleanup();
  }
});

async function metrics(port) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
      let t = '';
      res.on('data', (d) => { t += d; });
      res.on('end', () => resolve(t));
    }).on('error', reject);
  });
}

function metric(text, name) {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : NaN;
}

test('a burst to an offline device within push-coalesce makes one wake-up, the rest are coalesced', { skip, timeout: 60000 }, async () => {
  const ps = await pushService();
  const dir = tempDir('sealpost-push-');
  const { freePort } = await import('../../client/js/test/support.js');
  const mport = await freePort();
  const b = await new Broker({ dataDir: `${dir}/d`, ws: false, extra: ['--push-vapid-subject', 'mailto:ops@example.org',
    '--push-allow-private', '1', '--push-coalesce', '3600000', '--metrics-listen', `127.0.0.1:${mport}`] }).start();
  try {
    const server = ['--server', `127.0.0.1:${b.port}`, '--server-key', b.serverPub];
    const dev = (await cli(['keygen', `${dir}/dev.key`])).stdout.trim();
    await cli(['keygen', `${dir}/snd.key`]);
    const ecdh = crypto.createECDH('prime256v1');
    ecdh.generateKeys();
    const reg = await cli(['push', 'register', ...server, '--key', `${dir}/dev.key`,
      `http://127.0.0.1:${ps.port}/sub/201`, ecdh.getPublicKey().toString('base64url'),
      crypto.randomBytes(16).toString('base64url')]);
    assert.equal(reg.code, 0, reg.stderr);
    for (let i = 0; i < 5; i++) {
      const s = await cli(['send', ...server, '--key', `${dir}/snd.key`, '--to', dev, `m${i}`]);
      assert.equal(s.code, 0, s.stderr);
    }
    let m = '';
    for (let i = 0; i < 500; i++) {
      m = await metrics(mport);
      if (metric(m, 'sealpost_push_wakeups_total{outcome="sent"}') >= 1) break;
      await sleep(20);
    }
    assert.equal(metric(m, 'sealpost_push_wakeups_total{outcome="sent"}'), 1);
    assert.equal(metric(m, 'sealpost_push_wakeups_total{outcome="coalesced"}'), 4);
    assert.equal(ps.wakes.length, 1);
  } finally {
    await b.stop();
    ps.srv.close();
    b.cleanup();
  }
});

test('410 removes the subscription: the next envelope makes no request; bad subscriptions refused with their own status', { skip, timeout: 60000 }, async () => {
  const ps = await pushService();
  const dir = tempDir('sealpost-push-');
  const { freePort } = await import('../../client/js/test/support.js');
  const mport = await freePort();
  const b = await new Broker({ dataDir: `${dir}/d`, ws: false, extra: ['--push-vapid-subject', 'mailto:ops@example.org',
    '--push-allow-private', '1', '--push-endpoint-max', '64', '--metrics-listen', `127.0.0.1:${mport}`] }).start();
  try {
    const server = ['--server', `127.0.0.1:${b.port}`, '--server-key', b.serverPub];
    const dev = (await cli(['keygen', `${dir}/dev.key`])).stdout.trim();
    await cli(['keygen', `${dir}/snd.key`]);
    const ecdh = crypto.createECDH('prime256v1');
    ecdh.generateKeys();
    const p256 = ecdh.getPublicKey().toString('base64url');
    const auth = crypto.randomBytes(16).toString('base64url');
    const reg = (ep, k = p256, a = auth) => cli(['push', 'register', ...server, '--key', `${dir}/dev.key`, ep, k, a]);
    assert.equal((await reg(`http://127.0.0.1:${ps.port}/x`, crypto.randomBytes(65).toString('base64url'))).code, 56);
    assert.equal((await reg(`http://127.0.0.1:${ps.port}/x`, p256, 'AAAA')).code, 57);
    assert.equal((await reg('http://push.example.com/x')).code, 59);
    assert.equal((await reg(`http://127.0.0.1:${ps.port}/${'a'.repeat(80)}`)).code, 60);
    const r = await reg(`http://127.0.0.1:${ps.port}/sub/410`);
    assert.equal(r.code, 0, r.stderr);
    const send = async (msg) => {
      const s = await cli(['send', ...server, '--key', `${dir}/snd.key`, '--to', dev, msg]);
      assert.equal(s.code, 0, s.stderr);
    };
    await send('one');
    let m = '';
    for (let i = 0; i < 500; i++) {
      m = await metrics(mport);
      // /metrics reads the counters while the loop updates them: wait for both.
      if (metric(m, 'sealpost_push_wakeups_total{outcome="gone"}') >= 1 &&
          metric(m, 'sealpost_push_subscriptions') === 0) break;
      await sleep(20);
    }
    assert.equal(metric(m, 'sealpost_push_wakeups_total{outcome="gone"}'), 1);
    assert.equal(metric(m, 'sealpost_push_subscriptions'), 0);
    await send('two');
    m = await metrics(mport);
    // No subscription: neither queued nor coalesced, and the stand-in saw one request only.
    assert.equal(metric(m, 'sealpost_push_wakeups_total{outcome="coalesced"}'), 0);
    assert.equal(metric(m, 'sealpost_push_wakeups_total{outcome="gone"}'), 1);
    assert.equal(ps.wakes.length, 1);
  } finally {
    await b.stop();
    ps.srv.close();
    b.cleanup();
  }
});

test('a private endpoint without --push-allow-private is refused (61)', { skip, timeout: 60000 }, async () => {
  const dir = tempDir('sealpost-push-');
  const b = await new Broker({ dataDir: `${dir}/d`, ws: false, extra: ['--push-vapid-subject', 'mailto:ops@example.org'] }).start();
  try {
    await cli(['keygen', `${dir}/dev.key`]);
    const ecdh = crypto.createECDH('prime256v1');
    ecdh.generateKeys();
    const r = await cli(['push', 'register', '--server', `127.0.0.1:${b.port}`, '--server-key', b.serverPub,
      '--key', `${dir}/dev.key`, 'https://127.0.0.1/x', ecdh.getPublicKey().toString('base64url'),
      crypto.randomBytes(16).toString('base64url')]);
    assert.equal(r.code, 61, r.stderr);
    assert.match(r.stderr, /err_push_host_not_allowed/);
  } finally {
    await b.stop();
    b.cleanup();
  }
});

test('a 500 is retried, then the wake-up succeeds', { skip, timeout: 60000 }, async () => {
  const ps = await pushService();
  const dir = tempDir('sealpost-push-');
  const { freePort } = await import('../../client/js/test/support.js');
  const mport = await freePort();
  const b = await new Broker({ dataDir: `${dir}/d`, ws: false, extra: ['--push-vapid-subject', 'mailto:ops@example.org',
    '--push-allow-private', '1', '--push-backoff', '10', '--metrics-listen', `127.0.0.1:${mport}`] }).start();
  try {
    const server = ['--server', `127.0.0.1:${b.port}`, '--server-key', b.serverPub];
    const dev = (await cli(['keygen', `${dir}/dev.key`])).stdout.trim();
    await cli(['keygen', `${dir}/snd.key`]);
    const ecdh = crypto.createECDH('prime256v1');
    ecdh.generateKeys();
    const r = await cli(['push', 'register', ...server, '--key', `${dir}/dev.key`,
      `http://127.0.0.1:${ps.port}/sub/500-then-201`, ecdh.getPublicKey().toString('base64url'),
      crypto.randomBytes(16).toString('base64url')]);
    assert.equal(r.code, 0, r.stderr);
    const s = await cli(['send', ...server, '--key', `${dir}/snd.key`, '--to', dev, 'x']);
    assert.equal(s.code, 0, s.stderr);
    let m = '';
    for (let i = 0; i < 500; i++) {
      m = await metrics(mport);
      if (metric(m, 'sealpost_push_wakeups_total{outcome="sent"}') >= 1) break;
      await sleep(20);
    }
    assert.equal(metric(m, 'sealpost_push_wakeups_total{outcome="retried"}'), 1);
    assert.equal(metric(m, 'sealpost_push_wakeups_total{outcome="sent"}'), 1);
    assert.equal(ps.wakes.length, 2);
  } finally {
    await b.stop();
    ps.srv.close();
    b.cleanup();
  }
});

test('a stalled push service does not stall delivery to other devices', { skip, timeout: 60000 }, async () => {
  const ps = await pushService();
  const dir = tempDir('sealpost-push-');
  const b = await new Broker({ dataDir: `${dir}/d`, ws: false, extra: ['--push-vapid-subject', 'mailto:ops@example.org',
    '--push-allow-private', '1', '--push-timeout', '120000'] }).start();
  try {
    const server = ['--server', `127.0.0.1:${b.port}`, '--server-key', b.serverPub];
    const slowDev = (await cli(['keygen', `${dir}/slow.key`])).stdout.trim();
    const other = (await cli(['keygen', `${dir}/other.key`])).stdout.trim();
    await cli(['keygen', `${dir}/snd.key`]);
    const ecdh = crypto.createECDH('prime256v1');
    ecdh.generateKeys();
    const r = await cli(['push', 'register', ...server, '--key', `${dir}/slow.key`,
      `http://127.0.0.1:${ps.port}/sub/slow`, ecdh.getPublicKey().toString('base64url'),
      crypto.randomBytes(16).toString('base64url')]);
    assert.equal(r.code, 0, r.stderr);
    let s = await cli(['send', ...server, '--key', `${dir}/snd.key`, '--to', slowDev, 'wake']);
    assert.equal(s.code, 0, s.stderr);
    for (let i = 0; i < 500 && ps.held.length === 0; i++) await sleep(20);
    assert.equal(ps.held.length, 1, 'the stand-in holds the wake-up');
    // While it is held: envelopes to another device are accepted and delivered.
    for (let i = 0; i < 3; i++) {
      s = await cli(['send', ...server, '--key', `${dir}/snd.key`, '--to', other, `m${i}`]);
      assert.equal(s.code, 0, s.stderr);
    }
    const got = await cli(['recv', ...server, '--key', `${dir}/other.key`, '--count', '3', '--timeout', '30']);
    assert.equal(got.code, 0, got.stderr);
    assert.deepEqual(got.stdout.trim().split('\n').filter((l) => /m[0-2]/.test(l)).length, 3);
    assert.equal(ps.held.length, 1, 'still held: delivery did not wait for it');
    ps.release();
  } finally {
    ps.release();
    await b.stop();
    ps.srv.close();
    b.cleanup();
  }
});

async function waitMetric(mport, name, want) {
  let m = '';
  for (let i = 0; i < 500; i++) {
    m = await metrics(mport);
    if (metric(m, name) >= want) break;
    await sleep(20);
  }
  return m;
}

test('a connected device gets no wake-up; once gone, mail wakes it; after push-coalesce, again', { skip, timeout: 60000 }, async () => {
  const ps = await pushService();
  const dir = tempDir('sealpost-push-');
  const { freePort } = await import('../../client/js/test/support.js');
  const mport = await freePort();
  const b = await new Broker({ dataDir: `${dir}/d`, ws: false, extra: ['--push-vapid-subject', 'mailto:ops@example.org',
    '--push-allow-private', '1', '--push-coalesce', '100', '--metrics-listen', `127.0.0.1:${mport}`] }).start();
  try {
    const server = ['--server', `127.0.0.1:${b.port}`, '--server-key', b.serverPub];
    const dev = (await cli(['keygen', `${dir}/dev.key`])).stdout.trim();
    await cli(['keygen', `${dir}/snd.key`]);
    const ecdh = crypto.createECDH('prime256v1');
    ecdh.generateKeys();
    const r = await cli(['push', 'register', ...server, '--key', `${dir}/dev.key`,
      `http://127.0.0.1:${ps.port}/sub/201`, ecdh.getPublicKey().toString('base64url'),
      crypto.randomBytes(16).toString('base64url')]);
    assert.equal(r.code, 0, r.stderr);
    const recv = cli(['recv', ...server, '--key', `${dir}/dev.key`, '--count', '2', '--timeout', '30']);
    // --online-only succeeds only once the device is connected.
    let online = false;
    for (let i = 0; i < 200 && !online; i++) {
      const o = await cli(['send', ...server, '--key', `${dir}/snd.key`, '--to', dev, '--online-only', 'hi']);
      online = o.code === 0;
      if (!online) await sleep(20);
    }
    assert.ok(online, 'the device connected');
    const d = await cli(['send', ...server, '--key', `${dir}/snd.key`, '--to', dev, 'stored']);
    assert.equal(d.code, 0, d.stderr);
    assert.equal((await recv).code, 0);
    // Until the broker has seen it leave: --online-only is refused err_offline (16).
    let offline = false;
    for (let i = 0; i < 200 && !offline; i++) {
      const o = await cli(['send', ...server, '--key', `${dir}/snd.key`, '--to', dev, '--online-only', 'hi']);
      offline = o.code === 16;
      if (!offline) await sleep(20);
    }
    assert.ok(offline, 'the broker saw the device leave');
    // Offline now: this one wakes it. Had anything been queued while it was
    // connected, this would be coalesced or a second request would show.
    const s = await cli(['send', ...server, '--key', `${dir}/snd.key`, '--to', dev, 'later']);
    assert.equal(s.code, 0, s.stderr);
    let m = await waitMetric(mport, 'sealpost_push_wakeups_total{outcome="sent"}', 1);
    assert.equal(metric(m, 'sealpost_push_wakeups_total{outcome="sent"}'), 1);
    assert.equal(metric(m, 'sealpost_push_wakeups_total{outcome="coalesced"}'), 0);
    assert.equal(ps.wakes.length, 1);
    // Past the (100 ms) coalescing interval, the next envelope wakes it again.
    await sleep(300);
    const t = await cli(['send', ...server, '--key', `${dir}/snd.key`, '--to', dev, 'again']);
    assert.equal(t.code, 0, t.stderr);
    m = await waitMetric(mport, 'sealpost_push_wakeups_total{outcome="sent"}', 2);
    assert.equal(metric(m, 'sealpost_push_wakeups_total{outcome="sent"}'), 2);
    assert.equal(ps.wakes.length, 2);
  } finally {
    await b.stop();
    ps.srv.close();
    b.cleanup();
  }
});
