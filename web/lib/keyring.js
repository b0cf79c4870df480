// carkey web key — the phone key's state and its one action: a credential, the cars it trusts, a tap.
// SPDX-License-Identifier: MIT
//
// `storage` is a small async key-value store: IndexedDB in the page (store.js), a
// Map in tests. What it holds:
//   credential  the ECDSA P-256 key pair, private key made non-extractable by WebCrypto
//   cars        [{groupId, readerPublicKey hex, name, shareDocument hex?}]: the only readers answered
//   atRestKey   a non-extractable AES-256-GCM key that seals the Kpersistent cache
//   kpersistent {iv, sealed}: the cache (reader identifier -> Kpersistent), encrypted
// CryptoKey objects are stored as they are (structured clone); a page script in this
// origin can use them but cannot read their bytes out.

import { fromHex, toHex } from './bytes.js';
import { SW_SECURITY } from './apdu.js';
import * as crypto from './crypto.js';
import { describeResult, describeState } from './envelope.js';
import { deviceName } from './frame.js';
import { KpersistentCache } from './kpersistent.js';
import { publicKeyPem } from './pem.js';
import { KeyPhone } from './phone.js';
import { ImportError, parseTrustImport } from './share.js';
import { rememberedCar, requestCar, visit } from './webble.js';

export class MemoryStorage {
  constructor() {
    this.map = new Map();
  }

  async get(name) {
    return this.map.get(name);
  }

  async set(name, value) {
    this.map.set(name, value);
  }
}

const subtle = globalThis.crypto.subtle;

export class Keyring {
  constructor(storage) {
    this.storage = storage;
    this.devices = new Map(); // group id -> BluetoothDevice found this session (one tap to reconnect)
  }

  static async open(storage) {
    const ring = new Keyring(storage);
    ring.credential = (await storage.get('credential')) || null;
    ring.cars = (await storage.get('cars')) || [];
    return ring;
  }

  get hasCredential() {
    return this.credential !== null;
  }

  // A new credential (the old one, if any, is gone for good: every car must enroll the new key).
  async createCredential() {
    const pair = await crypto.generateCredential();
    this.credential = { privateKey: pair.privateKey, publicKey: pair.publicKey, publicBytes: await crypto.exportPublicKey(pair.publicKey) };
    await this.storage.set('credential', this.credential);
    await this.storage.set('kpersistent', null);
    return this.credential;
  }

  async publicKeyPem() {
    return publicKeyPem(this.credential.publicKey);
  }

  // Import a share or a car identity (share.js); returns the car record as stored.
  async importTrust(data) {
    const found = await parseTrustImport(data);
    if (found.share) {
      if (!this.credential) throw new ImportError('make this phone\'s key first');
      if (toHex(found.share.friendPublicKey) !== toHex(this.credential.publicBytes)) {
        throw new ImportError('this share is for another key, not for this phone');
      }
    }
    const cars = this.cars.filter((c) => c.groupId !== found.groupId);
    const old = this.cars.find((c) => c.groupId === found.groupId) || {};
    const readerPublicKey = found.readerPublicKey ? toHex(found.readerPublicKey) : old.readerPublicKey || null;
    if (readerPublicKey) await crypto.checkPublicKey(fromHex(readerPublicKey));
    const car = {
      groupId: found.groupId,
      readerPublicKey,
      name: found.name || old.name || deviceName(found.groupId),
      shareDocument: found.shareDocument ? toHex(found.shareDocument) : old.shareDocument || null,
      role: found.share ? found.share.role : old.role || null,
    };
    cars.push(car);
    this.cars = cars;
    await this.storage.set('cars', cars);
    return car;
  }

  // Stop trusting a car: its record and its Kpersistent go (reader identifier = group id || sub id).
  async forgetCar(groupId) {
    this.cars = this.cars.filter((c) => c.groupId !== groupId);
    this.devices.delete(groupId);
    await this.storage.set('cars', this.cars);
    const cache = await this.loadCache();
    for (const id of [...cache.entries.keys()]) if (id.startsWith(groupId)) cache.entries.delete(id);
    await this.saveCache(cache);
  }

  // --- Kpersistent at rest ---------------------------------------------------------

  async atRestKey() {
    let key = await this.storage.get('atRestKey');
    if (!key) {
      key = await subtle.generateKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
      await this.storage.set('atRestKey', key);
    }
    return key;
  }

  async loadCache() {
    const stored = await this.storage.get('kpersistent');
    if (!stored) return new KpersistentCache();
    const plain = await crypto.open(await this.atRestKey(), stored.iv, stored.sealed);
    // A cache that does not open is dropped: the next tap is a standard transaction.
    if (plain === null) return new KpersistentCache();
    return KpersistentCache.fromJSON(JSON.parse(new TextDecoder().decode(plain)));
  }

  async saveCache(cache) {
    const iv = crypto.randomBytes(12);
    const sealed = await crypto.seal(await this.atRestKey(), iv, new TextEncoder().encode(JSON.stringify(cache.toJSON())));
    await this.storage.set('kpersistent', { iv, sealed });
  }

  // --- a tap ---------------------------------------------------------------------------

  /**
   * Connect to the car `groupId` through `bluetooth` (navigator.bluetooth or a stand-in),
   * run one transaction asking for `command` ('unlock', 'drive', ...; minutes for drive),
   * and resolve to what happened, in words, with the time the tap took.
   */
  async tap(bluetooth, groupId, command, argument = new Uint8Array(0), options = {}) {
    const car = this.cars.find((c) => c.groupId === groupId);
    if (!car) throw new Error('this phone does not know that car');
    if (!car.readerPublicKey) throw new Error(`import the car's identity (reader public key) for ${car.name} first`);
    const started = performance.now();
    // The chooser first: a browser lets requestDevice run only close to the click.
    let device = this.devices.get(groupId);
    if (!device) device = (await rememberedCar(bluetooth, car.name)) || (await requestCar(bluetooth, car.name));
    this.devices.set(groupId, device);
    const connected = performance.now();
    const cache = await this.loadCache();
    const trusted = [{ groupId: car.groupId, readerPublicKey: fromHex(car.readerPublicKey), shareDocument: car.shareDocument ? fromHex(car.shareDocument) : null }];
    const phone = new KeyPhone(this.credential, trusted, cache, options.deviceOptions);
    phone.begin([[command, argument]]);
    let log;
    let txn;
    try {
      log = await visit(device, (capdu) => phone.device.process(capdu), options.link);
    } finally {
      txn = phone.finish();
      await this.saveCache(cache);
    }
    if (txn.shareAccepted) {
      car.shareDocument = null;
      await this.storage.set('cars', this.cars);
    }
    const ms = performance.now() - started;
    const result = txn.results.length ? txn.results[txn.results.length - 1] : null;
    let words;
    if (log.dropped) words = 'refused: this car is not one this phone trusts';
    else if (txn.deviceError === SW_SECURITY) words = 'refused: the car did not prove it is the car this phone trusts';
    else if (txn.granted && result) words = `${result.command}: ${result.result}`;
    else if (result) words = `refused: ${result.result}`;
    else if (log.error) words = `no answer: ${log.error}`;
    else words = 'refused by the car';
    return {
      granted: txn.granted, kind: txn.kind, words, command,
      results: txn.results.map(describeResult), documents: txn.documents,
      state: txn.carState, stateWords: txn.carState ? describeState(txn.carState) : null,
      shareAccepted: txn.shareAccepted, dropped: log.dropped, linkError: log.error,
      ms, chooserMs: connected - started, writes: log.writes, indications: log.indications, chunk: log.chunk,
    };
  }
}
