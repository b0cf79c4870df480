// carkey web key — a line-JSON driver for the host tests: the page's Keyring in Node, over the virtual air.
// SPDX-License-Identifier: MIT
//
// Reads one JSON request per line on stdin, writes one JSON answer per line:
//   {"op": "init"}                                   -> {"pem", "public_key"}
//   {"op": "import", "data": hex}                    -> {"group_id", "name", "has_reader_key", "has_share"}
//   {"op": "device", "trust": [[group hex, reader key hex]]} -> {}: a bare user device on this key,
//                                                    echoing the reader's EXCHANGE objects other than 97
//   {"op": "apdu", "data": hex}                      -> {"answer"} or {"dropped": true}
//   {"op": "verify_share", "data": hex}              -> {"valid"}: the share document's owner signature
//   {"op": "tap", "air": ws-url, "group_id", "command", "minutes"?} -> the Keyring.tap result
// Errors come back as {"error": message}. Node 20 needs --experimental-websocket.

import { createInterface } from 'node:readline';

import { fromHex, toHex } from '../lib/bytes.js';
import { airBluetooth } from '../lib/air_bluetooth.js';
import { Keyring, MemoryStorage } from '../lib/keyring.js';
import { parseShareDocument, shareSignatureValid } from '../lib/share.js';
import { LinkDropped, UserDevice } from '../lib/user_device.js';

const ring = await Keyring.open(new MemoryStorage());
const radios = new Map();
let device = null;

async function handle(request) {
  if (request.op === 'init') {
    await ring.createCredential();
    return { pem: await ring.publicKeyPem(), public_key: toHex(ring.credential.publicBytes) };
  }
  if (request.op === 'import') {
    const car = await ring.importTrust(fromHex(request.data));
    return { group_id: car.groupId, name: car.name, has_reader_key: Boolean(car.readerPublicKey), has_share: Boolean(car.shareDocument) };
  }
  if (request.op === 'device') {
    device = new UserDevice(ring.credential, request.trust.map(([g, k]) => [g, fromHex(k)]), {
      exchangeHandler: (items) => items.filter(([tag]) => tag !== 0x97),
    });
    return {};
  }
  if (request.op === 'apdu') {
    try {
      return { answer: toHex(await device.process(fromHex(request.data))) };
    } catch (e) {
      if (e instanceof LinkDropped) return { dropped: true };
      throw e;
    }
  }
  if (request.op === 'verify_share') return { valid: await shareSignatureValid(parseShareDocument(fromHex(request.data))) };
  if (request.op === 'tap') {
    if (!radios.has(request.air)) radios.set(request.air, airBluetooth(request.air));
    const argument = request.command === 'drive' ? new Uint8Array([request.minutes || 30]) : new Uint8Array(0);
    return ring.tap(radios.get(request.air), request.group_id, request.command, argument);
  }
  throw new Error(`unknown op ${request.op}`);
}

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  let answer;
  try {
    answer = await handle(JSON.parse(line));
  } catch (e) {
    answer = { error: e.message || String(e) };
  }
  process.stdout.write(JSON.stringify(answer, (k, v) => (v instanceof Uint8Array ? toHex(v) : v)) + '\n');
}
