// SPDX-License-Identifier: Apache-2.0
// The page: a device key kept in IndexedDB, a connection to a broker over
// WebSocket, sealed messages out and in. Query parameters ?url=...&brokerKey=...
// fill the broker form and connect at once (handy for links and for tests).
import { ready, generateKey, keyFromPrivate, Device, toHex, STATUS_NAME, parsePublicKey } from '../js/src/index.js';

const $ = (id) => document.getElementById(id);

// ---- the key in IndexedDB ----------------------------------------------------

const DB = 'sealpost', STORE = 'keys', SLOT = 'device';

function idb() {
  return new Promise((resolve, reject) => {
    const r = indexedDB.open(DB, 1);
    r.onupgradeneeded = () => r.result.createObjectStore(STORE);
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

async function idbGet(k) {
  const db = await idb();
  return new Promise((resolve, reject) => {
    const r = db.transaction(STORE).objectStore(STORE).get(k);
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

async function idbPut(k, v) {
  const db = await idb();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(STORE, 'readwrite');
    tx.objectStore(STORE).put(v, k);
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
  });
}

async function loadOrCreateKey(fresh = false) {
  const stored = fresh ? null : await idbGet(SLOT);
  if (stored && stored.privateKey instanceof Uint8Array && stored.privateKey.length === 32) {
    return keyFromPrivate(stored.privateKey);
  }
  const k = generateKey();
  await idbPut(SLOT, { privateKey: k.privateKey, created: Date.now() });
  return k;
}

// ---- UI -----------------------------------------------------------------------

let key = null;
let device = null;

function status(text, cls = '') {
  $('status').textContent = text;
  $('status').className = cls;
}

function showKey() {
  $('pubkey').textContent = toHex(key.publicKey);
  document.body.dataset.pubkey = toHex(key.publicKey);
}

function addReceived(m) {
  const li = document.createElement('li');
  li.dataset.seq = String(m.seq);
  li.dataset.from = m.from;
  const from = document.createElement('span');
  from.className = 'from';
  from.textContent = `from ${m.from}${m.seq ? ` (seq ${m.seq})` : ' (online-only)'}`;
  const text = document.createElement('span');
  text.className = 'text';
  text.textContent = m.text();
  li.append(from, text);
  $('inbox').append(li);
}

function connect() {
  if (device) device.stop();
  const url = $('url').value.trim();
  const bk = $('brokerkey').value.trim();
  localStorage.setItem('sealpost.url', url);
  localStorage.setItem('sealpost.brokerKey', bk);
  try {
    device = new Device({ key, url, brokerKey: bk || null, pattern: bk ? 'IK' : 'XX' });
  } catch (e) {
    status(`bad settings: ${e.message}`, 'error');
    return;
  }
  device.on('connected', (c) => {
    status(`connected (${device.pattern})`, 'ok');
    if (!bk) {
      // first contact: show the key the broker proved, pin it for next time
      $('brokerkey').value = c.brokerKey;
      localStorage.setItem('sealpost.brokerKey', c.brokerKey);
    }
  });
  device.on('disconnected', (e) => status(`disconnected${e ? `: ${e.message}` : ''}; reconnecting`, 'error'));
  device.on('error', (e) => status(`error: ${e.message}`, 'error'));
  device.on('message', addReceived);
  device.on('bad-envelope', (b) => status(`an envelope (seq ${b.seq}) did not open: ${b.error.message}`, 'error'));
  status('connecting…');
  device.start().catch((e) => status(`error: ${e.message}`, 'error'));
}

async function send(ev) {
  ev.preventDefault();
  const out = $('send-result');
  out.className = '';
  out.textContent = 'sending…';
  try {
    if (!device) throw new Error('connect first');
    const to = parsePublicKey($('to').value);
    const r = await device.sendMessage(to, $('message').value);
    out.textContent = r.ok ? `${STATUS_NAME[r.status].toLowerCase()}${r.seq ? `, seq ${r.seq}` : ''}`
      : `refused: ${STATUS_NAME[r.status] ?? r.status}`;
    out.className = r.ok ? 'ok' : 'error';
  } catch (e) {
    out.textContent = `not sent: ${e.message}`;
    out.className = 'error';
  }
}

async function main() {
  await ready();
  key = await loadOrCreateKey();
  showKey();
  $('newkey').onclick = async () => {
    if (!confirm('Replace this device key? Messages to the old key can no longer be read here.')) return;
    key = await loadOrCreateKey(true);
    showKey();
    if (device) connect();
  };
  const q = new URLSearchParams(location.search);
  $('url').value = q.get('url') ?? localStorage.getItem('sealpost.url') ?? '';
  $('brokerkey').value = q.get('brokerKey') ?? localStorage.getItem('sealpost.brokerKey') ?? '';
  $('connect-form').onsubmit = (ev) => { ev.preventDefault(); connect(); };
  $('send-form').onsubmit = send;
  document.body.dataset.ready = '1';
  if (q.get('url')) connect();
}

main().catch((e) => status(`failed to start: ${e.message}`, 'error'));
