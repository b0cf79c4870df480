// carkey web key — the QR encoder against matrices made by an independent encoder (test/qr_vectors.json).
// SPDX-License-Identifier: MIT

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { qrMatrix, qrSvg } from '../lib/qr.js';

const VECTORS = JSON.parse(readFileSync(new URL('./qr_vectors.json', import.meta.url)));

for (const c of VECTORS.cases) {
  test(`QR version ${c.version}-${c.level} mask ${c.mask}: ${c.text.length} bytes, module for module`, () => {
    const got = qrMatrix(c.text, { version: c.version, level: c.level, mask: c.mask });
    assert.deepEqual(got.rows.map((row) => row.map((v) => (v ? '1' : '0')).join('')), c.rows);
  });
}

test('the smallest version that fits is chosen, and too much data is refused', () => {
  assert.equal(qrMatrix('HELLO carkey').version, 1);
  const pem = VECTORS.cases.find((c) => c.text.startsWith('-----BEGIN')).text;
  assert.equal(qrMatrix(pem).version, 9); // a P-256 public key PEM at level M
  assert.throws(() => qrMatrix('z'.repeat(300)), /too long/);
  assert.match(qrSvg('hi'), /^<svg [^>]*viewBox="0 0 29 29"/);
});
