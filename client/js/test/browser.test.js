// SPDX-License-Identifier: Apache-2.0
// The web page (client/web/) in Debian's headless Chromium, driven by
// playwright-core over the DevTools protocol (no browser download): the page
// connects to a real sealpostd over WebSocket, seals a message to a device
// run by the C CLI, and the CLI's reply shows up on the page. The test reads
// the DOM, saves a screenshot, and reloads the page to check that the key
// came back from IndexedDB.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Broker, haveBroker, haveCli, brokerHasWs, cli, cliUntil, tempDir } from './support.js';
import { serveStatic } from './static_server.js';
import { startRelay } from './relay.js';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const CLIENT_DIR = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const ARTIFACTS = process.env.SP_ARTIFACT_DIR ?? tempDir('sealpost-browser-out-');
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let playwright = null;
try { playwright = await import('playwright-core'); } catch (e) { /* skipped below */ }

const skip = !haveBroker ? 'SEALPOSTD is not set (run through ctest)'
  : !haveCli ? 'SEALPOST_CLI is not set'
  : !existsSync(CHROMIUM) ? `no Chromium at ${CHROMIUM} (scripts/deps.sh installs it)`
  : !playwright ? 'playwright-core is not installed (npm ci in client/js)' : false;

const cleanups = [];
after(async () => { for (const f of cleanups.reverse()) await f(); });

test('the page sends a sealed message to a CLI device and shows its reply', { skip, timeout: 120000 }, async () => {
  // The page's origin is the static server's: the broker allows exactly it.
  const web = await serveStatic(CLIENT_DIR);
  cleanups.push(() => web.close());
  const broker = await new Broker({ extra: ['--ws-allowed-origins', web.url] }).start();
  cleanups.push(async () => { await broker.stop(); broker.cleanup(); });
  const viaBroker = await brokerHasWs();
  let wsUrl;
  if (viaBroker) {
    wsUrl = broker.wsUrl;
  } else {
    // This sealpostd has no --ws-listen: a test-only relay carries the
    // WebSocket's bytes to its TCP port (the byte stream is the same).
    const relay = await startRelay('127.0.0.1', broker.port);
    cleanups.push(() => relay.close());
    wsUrl = relay.url;
    console.log(`# sealpostd has no --ws-listen: the page goes through a test relay to TCP`);
  }

  const dir = tempDir('sealpost-browser-');
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const keyFile = join(dir, 'cli.key');
  const kg = await cli(['keygen', keyFile], { home: dir });
  assert.equal(kg.code, 0, kg.stderr);
  const cliPub = kg.stdout.trim();
  const conn = ['--server', `127.0.0.1:${broker.port}`, '--server-key', broker.serverPub, '--key', keyFile];

  const profile = tempDir('sealpost-chromium-profile-');
  cleanups.push(() => rmSync(profile, { recursive: true, force: true }));
  const ctx = await playwright.chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, args: FLAGS, viewport: { width: 1000, height: 900 },
  });
  cleanups.push(() => ctx.close());
  const page = ctx.pages()[0] ?? await ctx.newPage();
  const logs = [];
  page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
  try {
    const q = new URLSearchParams({ url: wsUrl, brokerKey: broker.serverPub });
    await page.goto(`${web.url}/web/index.html?${q}`);
    await page.waitForFunction(() => document.getElementById('status').textContent.startsWith('connected'),
      null, { timeout: 30000 });
    const pagePub = (await page.textContent('#pubkey')).trim();
    assert.match(pagePub, /^[0-9a-f]{64}$/);

    // The CLI device listens; the page seals a message to it.
    const recv = await cliUntil(['recv', ...conn, '--count', '1', '--json', '--timeout', '30'], 'listening', { home: dir });
    await page.fill('#to', cliPub);
    await page.fill('#message', 'hello from the browser');
    await page.click('#send');
    await page.waitForFunction(() => /accepted/.test(document.getElementById('send-result').textContent),
      null, { timeout: 30000 });
    const got = await recv.done;
    assert.equal(got.code, 0, got.stderr);
    const j = JSON.parse(got.stdout.trim());
    assert.equal(j.sender, pagePub, 'the CLI sees the page key as the sender');
    assert.equal(j.message, 'hello from the browser');

    // The CLI replies to the sender it saw; the page shows it.
    const s = await cli(['send', ...conn, '--to', j.sender, `reply to: ${j.message}`], { home: dir });
    assert.equal(s.code, 0, s.stderr);
    const li = await page.waitForSelector(`#inbox li[data-from="${cliPub}"]`, { timeout: 30000 });
    assert.equal((await li.$eval('.text', (e) => e.textContent)), 'reply to: hello from the browser');
    mkdirSync(ARTIFACTS, { recursive: true });
    const shot = join(ARTIFACTS, 'browser-client.png');
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`# screenshot: ${shot}`);

    // Reload: the same key from IndexedDB, and the reply (acked) is not delivered again.
    await page.reload();
    await page.waitForFunction(() => document.getElementById('status').textContent.startsWith('connected'),
      null, { timeout: 30000 });
    assert.equal((await page.textContent('#pubkey')).trim(), pagePub);
    assert.equal(await page.$$eval('#inbox li', (l) => l.length), 0);

    // The same page from another origin (another port): the broker refuses
    // the upgrade, and the page says so instead of connecting.
    if (viaBroker) {
      const other = await serveStatic(CLIENT_DIR);
      cleanups.push(() => other.close());
      await page.goto(`${other.url}/web/index.html?${q}`);
      await page.waitForFunction(() => /^error: WebSocket closed before opening/.test(
        document.getElementById('status').textContent), null, { timeout: 30000 });
      assert.ok(broker.alive());
    }
  } catch (e) {
    console.log(`# page log:\n${logs.join('\n')}`);
    throw e;
  }
});
