// carkey web key — the bounded Kpersistent cache, one key per reader identifier, least recently used out first.
// SPDX-License-Identifier: MIT
//
// Kpersistent lets a later fast transaction skip ECDH and signatures: it is as
// secret as the credential. The page keeps it encrypted at rest (store.js); here
// it lives in memory only.

import { fromHex, toHex } from './bytes.js';

export const MAX_ENTRIES = 32;

export class KpersistentCache {
  constructor(maxEntries = MAX_ENTRIES) {
    this.maxEntries = maxEntries;
    this.entries = new Map(); // reader identifier hex -> 32-byte key, oldest first
  }

  get size() {
    return this.entries.size;
  }

  get(readerIdentifier) {
    const id = toHex(readerIdentifier);
    const key = this.entries.get(id);
    if (key === undefined) return null;
    this.entries.delete(id);
    this.entries.set(id, key);
    return key;
  }

  put(readerIdentifier, kpersistent) {
    if (readerIdentifier.length !== 32 || kpersistent.length !== 32) throw new Error('reader identifier and Kpersistent are 32 bytes each');
    const id = toHex(readerIdentifier);
    this.entries.delete(id);
    this.entries.set(id, kpersistent.slice());
    while (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value);
  }

  remove(readerIdentifier) {
    this.entries.delete(toHex(readerIdentifier));
  }

  // [[reader identifier hex, key hex]], oldest first: the plaintext the page encrypts.
  toJSON() {
    return [...this.entries].map(([id, key]) => [id, toHex(key)]);
  }

  static fromJSON(list, maxEntries = MAX_ENTRIES) {
    const cache = new KpersistentCache(maxEntries);
    for (const [id, key] of list) cache.put(fromHex(id), fromHex(key));
    return cache;
  }
}
