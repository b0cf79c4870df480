// carkey web key — the page: make the key, show it, import trust, tap the car.
// SPDX-License-Identifier: MIT
//
// The radio is navigator.bluetooth; with ?air in the address and a server started
// as `carkey phone web --air HOST:PORT`, the virtual air stand-in replaces it
// (development and tests without a radio).

import { airBluetooth } from './lib/air_bluetooth.js';
import { Keyring } from './lib/keyring.js';
import { qrSvg } from './lib/qr.js';
import { IdbStorage } from './lib/store.js';

const $ = (id) => document.getElementById(id);

async function chooseRadio() {
  if (new URLSearchParams(location.search).has('air')) {
    const config = await fetch('air-config.json').then((r) => r.json()).catch(() => ({ air: false }));
    if (config.air) {
      const url = new URL('air', location.href);
      url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
      // The stand-in replaces Web Bluetooth for this page (Navigator.prototype has only a getter).
      Object.defineProperty(navigator, 'bluetooth', { value: airBluetooth(url.href), configurable: true });
      return 'virtual air';
    }
  }
  return navigator.bluetooth ? 'Bluetooth' : null;
}

function showKey(ring) {
  $('no-key').hidden = ring.hasCredential;
  $('make-key').hidden = ring.hasCredential;
  $('key').hidden = !ring.hasCredential;
  if (!ring.hasCredential) return;
  ring.publicKeyPem().then((pem) => {
    $('pem').textContent = pem;
    try {
      $('qr').innerHTML = qrSvg(pem);
    } catch (e) {
      $('qr').textContent = '';
    }
  });
}

function showCars(ring) {
  const select = $('car');
  const chosen = select.value;
  select.innerHTML = '';
  for (const car of ring.cars) {
    const option = document.createElement('option');
    option.value = car.groupId;
    option.textContent = car.name + (car.role ? ` (${car.role})` : '') + (car.readerPublicKey ? '' : ' — identity missing');
    select.append(option);
  }
  if (chosen) select.value = chosen;
  const usable = ring.hasCredential && ring.cars.length > 0;
  for (const button of document.querySelectorAll('button[data-command]')) button.disabled = !usable;
  $('forget').disabled = ring.cars.length === 0;
}

function say(result, state, time, cls) {
  $('result').textContent = result;
  $('result').className = cls || '';
  $('state').textContent = state || '';
  $('time').textContent = time || '';
}

async function main() {
  if (!globalThis.isSecureContext || !globalThis.crypto || !globalThis.crypto.subtle) {
    say('This page needs a secure context: open it from localhost or over HTTPS.', '', '', 'bad');
    return;
  }
  const radio = await chooseRadio();
  $('radio').textContent = radio ? `radio: ${radio}` : 'no Web Bluetooth in this browser';
  if ('serviceWorker' in navigator) navigator.serviceWorker.register('sw.js').catch(() => {});
  const ring = await Keyring.open(await IdbStorage.open());
  showKey(ring);
  showCars(ring);
  if (!radio) say('This browser has no Web Bluetooth: use Chrome or Edge on Android or a desktop (iOS has none).', '', '', 'bad');

  $('make-key').addEventListener('click', async () => {
    await ring.createCredential();
    showKey(ring);
    showCars(ring);
  });
  $('forget').addEventListener('click', async () => {
    const car = ring.cars.find((c) => c.groupId === $('car').value);
    if (!car || !window.confirm(`Forget ${car.name}? This phone then answers it no more (its key stays enrolled until the owner revokes it).`)) return;
    await ring.forgetCar(car.groupId);
    showCars(ring);
  });
  $('copy-pem').addEventListener('click', () => navigator.clipboard.writeText($('pem').textContent));
  $('save-pem').addEventListener('click', () => {
    const a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob([$('pem').textContent], { type: 'application/x-pem-file' }));
    a.download = 'phone.pem';
    a.click();
  });
  $('import').addEventListener('click', async () => {
    const file = $('import-file').files[0];
    const text = $('import-text').value.trim();
    try {
      const data = file ? new Uint8Array(await file.arrayBuffer()) : new TextEncoder().encode(text);
      const car = await ring.importTrust(data);
      $('import-result').textContent = `${car.name}: ` + (car.readerPublicKey ? 'trusted' : 'share stored; now import the car\'s identity') +
        (car.shareDocument ? ', share presented on the first tap' : '');
      $('import-file').value = '';
      $('import-text').value = '';
      showCars(ring);
      $('car').value = car.groupId;
    } catch (e) {
      $('import-result').textContent = `not imported: ${e.message}`;
    }
  });

  for (const button of document.querySelectorAll('button[data-command]')) {
    button.addEventListener('click', async () => {
      const command = button.dataset.command;
      const minutes = Math.max(1, Math.min(240, Number($('minutes').value) || 30));
      const argument = command === 'drive' ? new Uint8Array([minutes]) : new Uint8Array(0);
      const buttons = document.querySelectorAll('button[data-command]');
      buttons.forEach((b) => { b.disabled = true; });
      say(`${command}…`, '', '');
      try {
        const r = await ring.tap(navigator.bluetooth, $('car').value, command, argument);
        const words = r.granted ? r.words.replace(/^unlock: ok$/, 'unlocked').replace(/^lock: ok$/, 'locked') : r.words;
        const finding = r.chooserMs >= 1 ? `, ${Math.round(r.chooserMs)} ms of it finding the car` : '';
        say(words, r.stateWords ? `car: ${r.stateWords}` : '', `tap took ${Math.round(r.ms)} ms (${r.kind || 'no'} transaction${finding})`,
          r.granted ? 'ok' : 'bad');
        showCars(ring);
      } catch (e) {
        say(`no answer: ${e.message}`, '', '', 'bad');
      } finally {
        showCars(ring);
      }
    });
  }
}

main().catch((e) => say(`the page failed to start: ${e.message}`, '', '', 'bad'));
