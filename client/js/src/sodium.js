// SPDX-License-Identifier: Apache-2.0
// Loads libsodium-wrappers once. The library is imported dynamically so that,
// on node 18 (no globalThis.crypto), node's Web Crypto can be installed first:
// the ESM build of libsodium takes its randomness from
// globalThis.crypto.getRandomValues.

let sodium = null;
let loading = null;

/** Resolves once libsodium is ready; returns the sodium object. */
export async function ready() {
  if (sodium) return sodium;
  if (!loading) {
    loading = (async () => {
      if (typeof globalThis.crypto === 'undefined' ||
          typeof globalThis.crypto.getRandomValues !== 'function') {
        const nc = await import('node:crypto');
        globalThis.crypto = nc.webcrypto;
      }
      const mod = await import('libsodium-wrappers');
      const s = mod.default ?? mod;
      await s.ready;
      sodium = s;
      return s;
    })();
  }
  return loading;
}

/** The loaded sodium object; throws if ready() has not completed. */
export function so() {
  if (!sodium) throw new Error('sealpost: call await ready() first');
  return sodium;
}
