// SPDX-License-Identifier: Apache-2.0
// Test-only: a WebSocket server (path /v1, subprotocol sealpost.v1) relaying
// each connection's bytes to a TCP address, for a sealpostd built without
// --ws-listen. Binary messages in both directions carry pieces of the stream.
import net from 'node:net';
import { WebSocketServer } from 'ws';

export function startRelay(host, port) {
  return new Promise((resolve) => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, path: '/v1',
      handleProtocols: (p) => (p.has('sealpost.v1') ? 'sealpost.v1' : false) });
    wss.on('connection', (ws) => {
      const s = net.connect({ host, port });
      s.on('data', (d) => ws.send(d, { binary: true }));
      s.on('close', () => ws.close());
      s.on('error', () => ws.close());
      ws.on('message', (d, isBinary) => { if (isBinary) s.write(d); else { ws.close(1003); s.destroy(); } });
      ws.on('close', () => s.destroy());
    });
    wss.on('listening', () => resolve({
      url: `ws://127.0.0.1:${wss.address().port}/v1`,
      close: () => new Promise((r) => { for (const c of wss.clients) c.terminate(); wss.close(r); }),
    }));
  });
}
