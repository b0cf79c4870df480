// carkey web key — the credential's public key as SubjectPublicKeyInfo PEM (what `carkey keys add --credential` takes).
// SPDX-License-Identifier: MIT

import { toBase64 } from './bytes.js';

export async function publicKeyPem(publicKey) {
  const spki = new Uint8Array(await globalThis.crypto.subtle.exportKey('spki', publicKey));
  const b64 = toBase64(spki);
  const lines = b64.match(/.{1,64}/g).join('\n');
  return `-----BEGIN PUBLIC KEY-----\n${lines}\n-----END PUBLIC KEY-----\n`;
}
