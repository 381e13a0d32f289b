// SPDX-License-Identifier: Apache-2.0
// Node only: the same byte stream over raw TCP (sealpostd's --listen). Not
// imported by index.js, so the browser never loads node:net.
import net from 'node:net';

/** Resolves with a transport { send, close, onData, onClose } on a TCP connection. */
export function connectTcp(host, port, { timeoutMs = 10000 } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    sock.setNoDelay(true);
    const t = {
      onData: null,
      onClose: null,
      send(bytes) { if (!sock.destroyed) sock.write(bytes); },
      close() { sock.destroy(); },
      sock,
    };
    const timer = setTimeout(() => { sock.destroy(); reject(new Error('TCP connect timed out')); }, timeoutMs);
    let open = false;
    sock.on('connect', () => { open = true; clearTimeout(timer); resolve(t); });
    sock.on('data', (d) => t.onData?.(new Uint8Array(d.buffer, d.byteOffset, d.length)));
    sock.on('error', (e) => { if (!open) { clearTimeout(timer); reject(e); } });
    sock.on('close', () => { if (open) t.onClose?.(null); });
  });
}
