// carkey web key — IndexedDB as the Keyring's key-value store (database "carkey", object store "kv").
// SPDX-License-Identifier: MIT
//
// Values are stored by structured clone, CryptoKey objects included: a non-extractable
// key stays non-extractable in the database.

const DB = 'carkey';
const STORE = 'kv';

function request(r) {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

export class IdbStorage {
  static async open() {
    const open = indexedDB.open(DB, 1);
    open.onupgradeneeded = () => open.result.createObjectStore(STORE);
    const storage = new IdbStorage();
    storage.db = await request(open);
    return storage;
  }

  async get(name) {
    return request(this.db.transaction(STORE).objectStore(STORE).get(name));
  }

  async set(name, value) {
    const tx = this.db.transaction(STORE, 'readwrite');
    tx.objectStore(STORE).put(value, name);
    await new Promise((resolve, reject) => {
      tx.oncomplete = resolve;
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  }
}
