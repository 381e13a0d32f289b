// SPDX-License-Identifier: Apache-2.0
// Test support: real sealpostd processes on loopback ports with their own
// data directories, and the C CLI. Paths come from ctest's environment
// (SEALPOSTD, SEALPOST_CLI); without them the broker tests are skipped.
import { spawn, execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';

export const SEALPOSTD = process.env.SEALPOSTD;
export const CLI = process.env.SEALPOST_CLI;
export const haveBroker = !!(SEALPOSTD && existsSync(SEALPOSTD));
export const haveCli = !!(CLI && existsSync(CLI));
const READY_BOUND_MS = 20000;

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
    s.on('error', reject);
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let wsSupport = null;
/** True if this sealpostd has --ws-listen. */
export async function brokerHasWs() {
  if (wsSupport !== null) return wsSupport;
  const out = await new Promise((resolve) => {
    execFile(SEALPOSTD, ['--help'], (err, stdout, stderr) => resolve(String(stdout) + String(stderr)));
  });
  wsSupport = out.includes('--ws-listen');
  return wsSupport;
}

function tcpConnects(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.on('connect', () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  });
}

export function tempDir(prefix = 'sealpost-js-') {
  return mkdtempSync(join(process.env.SP_TEST_TMP ?? tmpdir(), prefix));
}

/** One sealpostd: .port, .wsPort (null without --ws-listen), .serverPub (hex), .dataDir. */
export class Broker {
  constructor({ dataDir, extra = [], ws = true } = {}) {
    this.dataDir = dataDir ?? tempDir('sealpostd-');
    this.extra = extra;
    this.wantWs = ws;
  }

  async start(port = null, wsPort = null) {
    const ws = this.wantWs && await brokerHasWs();
    for (let attempt = 0; attempt < 5; attempt++) {
      this.port = port ?? await freePort();
      this.wsPort = ws ? (wsPort ?? await freePort()) : null;
      const args = ['--listen', `127.0.0.1:${this.port}`, '--data-dir', this.dataDir,
        '--metrics-listen', 'off', '--log-level', 'info', ...this.extra];
      if (ws) args.push('--ws-listen', `127.0.0.1:${this.wsPort}`);
      this.log = '';
      this.proc = spawn(SEALPOSTD, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      this.proc.stdout.on('data', (d) => { this.log += d; });
      this.proc.stderr.on('data', (d) => { this.log += d; });
      this.exited = new Promise((r) => this.proc.on('exit', (code, sig) => r({ code, sig })));
      let dead = false;
      this.exited.then(() => { dead = true; });
      const deadline = Date.now() + READY_BOUND_MS;
      while (Date.now() < deadline && !dead) {
        if (this.log.includes('sealpostd started') && await tcpConnects(this.port) &&
            (!ws || await tcpConnects(this.wsPort))) {
          this.serverPub = readFileSync(join(this.dataDir, 'server.pub'), 'utf8').trim();
          return this;
        }
        await sleep(20);
      }
      this.kill();
      await this.exited;
      if (port) break;
    }
    throw new Error(`sealpostd did not start:\n${this.log.slice(-4000)}`);
  }

  get wsUrl() { return `ws://127.0.0.1:${this.wsPort}/v1`; }

  /** SIGTERM and wait; returns the exit code. */
  async stop() {
    if (this.proc && this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill('SIGTERM');
      const t = setTimeout(() => this.proc.kill('SIGKILL'), 10000);
      const r = await this.exited;
      clearTimeout(t);
      return r.code;
    }
    return this.proc ? this.proc.exitCode : null;
  }

  kill() {
    if (this.proc && this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGKILL');
  }

  async restart() {
    await this.stop();
    return this.start(this.port, this.wsPort);
  }

  /** True while the process runs. */
  alive() { return this.proc && this.proc.exitCode === null && this.proc.signalCode === null; }

  cleanup() { rmSync(this.dataDir, { recursive: true, force: true }); }
}

/** Runs the C CLI; resolves { code, stdout, stderr }. */
export function cli(args, { env = {}, timeoutMs = 30000, home } = {}) {
  return new Promise((resolve) => {
    const p = spawn(CLI, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, HOME: home ?? tmpdir(), SEALPOST_KNOWN_BROKERS: '/dev/null', ...env },
    });
    let stdout = '', stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('exit', (code) => { clearTimeout(t); resolve({ code, stdout, stderr }); });
    cli.last = p;
  });
}

/** Starts the CLI and resolves once `needle` appeared on its stderr; returns { proc, done }. */
export function cliUntil(args, needle, { env = {}, timeoutMs = 30000, home } = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(CLI, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, HOME: home ?? tmpdir(), SEALPOST_KNOWN_BROKERS: '/dev/null', ...env },
    });
    let stdout = '', stderr = '', seen = false;
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    const done = new Promise((r) => p.on('exit', (code) => { clearTimeout(t); r({ code, stdout, stderr }); }));
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => {
      stderr += d;
      if (!seen && stderr.includes(needle)) { seen = true; resolve({ proc: p, done }); }
    });
    done.then((r) => { if (!seen) reject(new Error(`CLI exited ${r.code} before "${needle}": ${r.stderr}`)); });
  });
}

/** Resolves with the next event `ev` of emitter e (bounded). */
export function nextEvent(e, ev, timeoutMs = 15000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => { e.off(ev, f); reject(new Error(`no ${ev} within ${timeoutMs} ms`)); }, timeoutMs);
    const f = (x) => { clearTimeout(t); e.off(ev, f); resolve(x); };
    e.on(ev, f);
  });
}
