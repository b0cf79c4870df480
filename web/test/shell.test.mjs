// carkey web key — the service worker caches every file the page loads, so it opens offline.
// SPDX-License-Identifier: MIT

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';

const WEB = new URL('../', import.meta.url);

test('sw.js lists exactly the page, its assets and every module in lib/', () => {
  const sw = readFileSync(new URL('sw.js', WEB), 'utf8');
  const shell = JSON.parse(sw.match(/const SHELL = (\[[^\]]*\])/)[1].replace(/'/g, '"').replace(/,\s*\]/, ']'));
  const lib = readdirSync(new URL('lib/', WEB)).filter((f) => f.endsWith('.js')).map((f) => `lib/${f}`);
  const top = readdirSync(WEB).filter((f) => /\.(html|js|css|webmanifest|svg)$/.test(f) && f !== 'sw.js');
  assert.deepEqual([...shell].sort(), ['./', ...top, ...lib].sort());
});

test('every module the page imports is in lib/ and uses only relative imports (no CDN, no build step)', () => {
  for (const file of ['app.js', ...readdirSync(new URL('lib/', WEB)).map((f) => `lib/${f}`)]) {
    const text = readFileSync(new URL(file, WEB), 'utf8');
    for (const [, spec] of text.matchAll(/^import[^'"]*['"]([^'"]+)['"]/gm)) assert.match(spec, /^\.\.?\//, `${file} imports ${spec}`);
    assert.doesNotMatch(text.replace('http://www.w3.org/2000/svg', ''), /https?:\/\//, `${file} names a URL`);
  }
});
