// carkey web key — a line-JSON driver for the browser test: the real page in headless Chromium (playwright-core).
// SPDX-License-Identifier: MIT
//
// One JSON request per line on stdin, one answer per line on stdout ({"error": ...} on failure):
//   {"op": "open", "url", "chromium", "profile"} -> {"radio"}   launch with a fresh profile, load the page
//   {"op": "make_key"}                 -> {"pem", "qrViewBox"}  click "Make this phone's key"
//   {"op": "pem"}                      -> {"pem"}               the key the page shows now
//   {"op": "import", "text"|"file"}    -> {"message"}           paste (or choose a file) in "Trust a car", click Import
//   {"op": "tap", "command"}           -> {"result", "state", "time"}  click a command button, wait for the outcome
//   {"op": "reload", "offline": bool}  -> {"radio", "controlled"}  reload, optionally with the network cut
//   {"op": "close"}

import { createInterface } from 'node:readline';

import { chromium } from 'playwright-core';

const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let context;
let page;
const consoleLines = [];

async function waitRadio() {
  await page.waitForFunction(() => document.getElementById('radio').textContent !== '', null, { timeout: 15000 });
  return page.textContent('#radio');
}

async function handle(r) {
  switch (r.op) {
    case 'open': {
      context = await chromium.launchPersistentContext(r.profile, { executablePath: r.chromium, headless: true, args: FLAGS });
      page = context.pages()[0] || (await context.newPage());
      page.on('console', (m) => consoleLines.push(m.text()));
      page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));
      await page.goto(r.url);
      const radio = await waitRadio();
      // The service worker has cached the shell once it is ready.
      await page.evaluate(() => navigator.serviceWorker.ready.then(() => true));
      return { radio };
    }
    case 'make_key':
      await page.click('#make-key');
      await page.waitForFunction(() => document.getElementById('pem').textContent.includes('END PUBLIC KEY'));
      await page.waitForSelector('#qr svg path');
      return { pem: await page.textContent('#pem'), qrViewBox: await page.getAttribute('#qr svg', 'viewBox') };
    case 'pem':
      return { pem: await page.textContent('#pem'), keyShown: await page.isVisible('#key') };
    case 'import':
      if (r.file) await page.setInputFiles('#import-file', r.file);
      else await page.fill('#import-text', r.text);
      await page.click('#import');
      await page.waitForFunction(() => document.getElementById('import-result').textContent !== '');
      {
        const message = await page.textContent('#import-result');
        await page.evaluate(() => { document.getElementById('import-result').textContent = ''; });
        return { message };
      }
    case 'tap': {
      await page.click(`button[data-command="${r.command}"]`);
      await page.waitForFunction(() => !document.getElementById('result').textContent.endsWith('…'), null, { timeout: 30000 });
      return { result: await page.textContent('#result'), state: await page.textContent('#state'), time: await page.textContent('#time') };
    }
    case 'reload': {
      await context.setOffline(Boolean(r.offline));
      await page.reload();
      const radio = await waitRadio();
      const controlled = await page.evaluate(() => Boolean(navigator.serviceWorker.controller));
      await context.setOffline(false);
      return { radio, controlled };
    }
    case 'close':
      await context.close();
      return { console: consoleLines };
    default:
      throw new Error(`unknown op ${r.op}`);
  }
}

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  let answer;
  try {
    answer = await handle(JSON.parse(line));
  } catch (e) {
    answer = { error: e.message || String(e), console: consoleLines.slice(-20) };
  }
  process.stdout.write(JSON.stringify(answer) + '\n');
}
