// SPDX-License-Identifier: Apache-2.0
// WebSocket transport (sealpostd --ws-listen; path /v1, subprotocol
// sealpost.v1). WebSocket binary messages carry the protocol's byte stream:
// this side writes each write as one binary message and treats the received
// messages as consecutive pieces of one stream (PROTOCOL.md 13).
// The browser's WebSocket, node's global WebSocket when it has one (22+), or
// the `ws` package (node 18/20).

export const SUBPROTOCOL = 'sealpost.v1';

async function wsClass() {
  if (typeof globalThis.WebSocket === 'function') return globalThis.WebSocket;
  const m = await import('ws');
  return m.WebSocket ?? m.default;
}

/**
 * Opens a WebSocket to url (e.g. "wss://broker.example/v1"); resolves with a
 * transport { send, close, onData, onClose } once the socket is open.
 */
export async function connectWebSocket(url, { timeoutMs = 10000, origin } = {}) {
  const WS = await wsClass();
  return new Promise((resolve, reject) => {
    let ws;
    try {
      // the `ws` package takes options (origin) as its third argument; browsers ignore it
      ws = origin && WS !== globalThis.WebSocket ? new WS(url, SUBPROTOCOL, { origin }) : new WS(url, SUBPROTOCOL);
    } catch (e) { reject(e); return; }
    ws.binaryType = 'arraybuffer';
    let open = false;
    const t = {
      onData: null,
      onClose: null,
      send(bytes) { if (ws.readyState === 1) ws.send(bytes); },
      close() { try { ws.close(1000); } catch (e) { /* already closing */ } },
      get ws() { return ws; },
    };
    const timer = setTimeout(() => { try { ws.close(); } catch (e) { /* */ } reject(new Error('WebSocket connect timed out')); }, timeoutMs);
    ws.onopen = () => {
      if (ws.protocol !== SUBPROTOCOL) {
        clearTimeout(timer);
        ws.close(1002);
        reject(new Error(`the server did not accept subprotocol ${SUBPROTOCOL}`));
        return;
      }
      open = true;
      clearTimeout(timer);
      resolve(t);
    };
    ws.onmessage = (ev) => {
      if (!(ev.data instanceof ArrayBuffer)) {
        // a text message is a protocol violation; close (1003: unsupported data)
        ws.close(1003);
        return;
      }
      t.onData?.(new Uint8Array(ev.data));
    };
    ws.onerror = () => { /* onclose follows */ };
    ws.onclose = (ev) => {
      clearTimeout(timer);
      if (!open) { reject(new Error(`WebSocket closed before opening (${ev.code})`)); return; }
      t.onClose?.(null, ev.code);
    };
  });
}
