// carkey web key — unit tests: import of shares and car identities, the credential, Kpersistent sealed at rest, framing.
// SPDX-License-Identifier: MIT
//
// Run: node --test web/test/

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { concat, fromHex, toHex } from '../lib/bytes.js';
import * as crypto from '../lib/crypto.js';
import { Reassembler, encodeFrame, runLink, split } from '../lib/frame.js';
import { KpersistentCache } from '../lib/kpersistent.js';
import { Keyring, MemoryStorage } from '../lib/keyring.js';
import { ImportError, parseShareDocument, parseTrustImport } from '../lib/share.js';
import * as tlv from '../lib/tlv.js';

const GROUP = '00112233445566778899aabbccddeeff';

function shareFor(friendPublic, group = GROUP) {
  const body = tlv.encodeAll([
    [0x80, fromHex('01')], [0x81, fromHex(group)], [0x82, friendPublic], [0x83, fromHex('03')], [0x84, fromHex('006f')],
    [0x85, fromHex('00000000')], [0x86, fromHex('00000000')], [0x88, fromHex('0000')], [0x89, fromHex('00000007')], [0x8a, fromHex('00')],
  ]);
  return tlv.encode(0xe2, concat(body, tlv.encode(0x9e, new Uint8Array(64)), tlv.encode(0x5a, concat(fromHex('04'), new Uint8Array(64)))));
}

async function readerKey() {
  const pair = await globalThis.crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign']);
  return crypto.exportPublicKey(pair.publicKey);
}

test('the credential is a P-256 key whose private half cannot be exported; its PEM is SubjectPublicKeyInfo', async () => {
  const ring = await Keyring.open(new MemoryStorage());
  assert.equal(ring.hasCredential, false);
  const cred = await ring.createCredential();
  assert.equal(cred.privateKey.extractable, false);
  await assert.rejects(globalThis.crypto.subtle.exportKey('pkcs8', cred.privateKey));
  const pem = await ring.publicKeyPem();
  assert.match(pem, /^-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE[\w+/]{20,}/);
  assert.ok(pem.replace(/\s/g, '').includes(Buffer.from(cred.publicBytes.slice(1)).toString('base64').slice(0, 40)));
  const again = await Keyring.open(ring.storage);
  assert.equal(toHex(again.credential.publicBytes), toHex(cred.publicBytes));
});

test('import: a car identity, then a share for this key; a share for another key is refused', async () => {
  const ring = await Keyring.open(new MemoryStorage());
  await ring.createCredential();
  const key = await readerKey();
  const identity = new TextEncoder().encode(JSON.stringify([{ group_id: GROUP, reader_public_key: toHex(key) }]));
  const car = await ring.importTrust(identity);
  assert.deepEqual([car.groupId, car.name, car.readerPublicKey, car.shareDocument], [GROUP, 'carkey-00112233', toHex(key), null]);
  const share = shareFor(ring.credential.publicBytes);
  const withShare = await ring.importTrust(new TextEncoder().encode(toHex(share)));
  assert.equal(withShare.readerPublicKey, toHex(key)); // kept from the identity
  assert.equal(withShare.shareDocument, toHex(share));
  assert.equal(withShare.role, 'guest');
  assert.equal(ring.cars.length, 1);
  await assert.rejects(ring.importTrust(shareFor(key)), /another key/);
  await assert.rejects(ring.importTrust(new TextEncoder().encode(JSON.stringify({ group_id: GROUP, reader_public_key: '04' + '11'.repeat(64) }))), /not on P-256/);
});

test('import: malformed inputs get specific errors and change nothing', async () => {
  const bad = [
    [new Uint8Array(0), /empty/],
    [new TextEncoder().encode('hello'), /nor JSON/],
    [new TextEncoder().encode('{"group_id": "0011"}'), /group id: expected 16 bytes/],
    [new TextEncoder().encode('{"reader_public_key": "04"}'), /reader public key: expected 65/],
    [new TextEncoder().encode('[{}, {}]'), /names 2 cars/],
    [new TextEncoder().encode(JSON.stringify({ group_id: GROUP, name: 'my car' })), /does not look like/],
    [fromHex('e203800101'), /malformed share document/],
    [shareFor(new Uint8Array(65)).slice(0, -1), /not a share document/],
  ];
  for (const [data, message] of bad) await assert.rejects(parseTrustImport(data), (e) => e instanceof ImportError && message.test(e.message));
  const other = '99'.repeat(16);
  await assert.rejects(parseTrustImport(new TextEncoder().encode(JSON.stringify({ group_id: other, share: toHex(shareFor(concat(fromHex('04'), new Uint8Array(64)))) }))), /another car/);
  const parsed = parseShareDocument(shareFor(concat(fromHex('04'), new Uint8Array(64))));
  assert.deepEqual([parsed.groupId, parsed.role, parsed.entitlements, parsed.serial], [GROUP, 'guest', 0x6f, 7]);
});

test('Kpersistent is sealed at rest under a non-extractable AES key; a damaged blob is dropped, not used', async () => {
  const storage = new MemoryStorage();
  const ring = await Keyring.open(storage);
  const cache = new KpersistentCache();
  const secret = fromHex('5a'.repeat(32));
  cache.put(fromHex('01'.repeat(32)), secret);
  await ring.saveCache(cache);
  const stored = await storage.get('kpersistent');
  assert.equal(toHex(stored.sealed).includes('5a5a5a5a'), false);
  assert.equal((await storage.get('atRestKey')).extractable, false);
  const loaded = await ring.loadCache();
  assert.equal(toHex(loaded.get(fromHex('01'.repeat(32)))), toHex(secret));
  stored.sealed[0] ^= 1;
  assert.equal((await ring.loadCache()).size, 0);
});

test('the cache keeps at most 32 cars, least recently used out first', () => {
  const cache = new KpersistentCache(2);
  const id = (b) => new Uint8Array(32).fill(b);
  cache.put(id(1), id(11));
  cache.put(id(2), id(12));
  cache.get(id(1));
  cache.put(id(3), id(13));
  assert.equal(cache.get(id(2)), null);
  assert.equal(toHex(cache.get(id(1))), toHex(id(11)));
  assert.throws(() => cache.put(id(1), new Uint8Array(16)), /32 bytes/);
});

test('framing: frames in chunks, strict reassembly', () => {
  const frame = encodeFrame(new Uint8Array(50).fill(7));
  assert.deepEqual(split(frame, 20).map((c) => c.length), [20, 20, 12]);
  const rx = new Reassembler(261);
  assert.equal(rx.feed(frame.slice(0, 1)), null); // a split header is fine
  assert.equal(rx.feed(frame.slice(1, 30)), null);
  assert.equal(rx.feed(frame.slice(30)).length, 50);
  assert.throws(() => rx.feed(fromHex('0000')), /frame length 0/);
  assert.throws(() => rx.feed(fromHex('0106')), /frame length 262/);
  assert.throws(() => rx.feed(fromHex('000100ff')), /1 bytes past the end/);
  assert.throws(() => rx.feed(new Uint8Array(0)), /empty chunk/);
  assert.throws(() => encodeFrame(new Uint8Array(513)), /outside 1..512/);
});

function fakeTransport() {
  const t = { written: [], disconnected: false };
  t.write = async (chunk) => { t.written.push(chunk); };
  t.disconnect = () => { t.disconnected = true; t.onDisconnect(); };
  return t;
}

test('the link answers each command, learns the chunk size from the car, and ends with the car', async () => {
  const t = fakeTransport();
  const done = runLink(t, async (capdu) => new Uint8Array(100).fill(capdu[0]));
  t.onChunk(encodeFrame(fromHex('01020304')));
  await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(t.written.map((c) => c.length), [20, 20, 20, 20, 20, 2]); // 102 bytes at MTU 23
  const big = encodeFrame(new Uint8Array(200).fill(9));
  t.onChunk(big.slice(0, 182)); // the car cuts at MTU 185 − 3
  t.onChunk(big.slice(182));
  await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(t.written.slice(6).map((c) => c.length), [102]);
  t.onDisconnect();
  const log = await done;
  assert.deepEqual([log.commands.length, log.writes, log.chunk, log.error], [2, 7, 182, null]);
});

test('the link hangs up on a garbled frame, and on a frame left unfinished', async () => {
  let t = fakeTransport();
  let log = await (async () => {
    const done = runLink(t, async () => fromHex('9000'));
    t.onChunk(fromHex('0000'));
    return done;
  })();
  assert.match(log.error, /frame length 0/);
  assert.ok(t.disconnected);
  t = fakeTransport();
  const done = runLink(t, async () => fromHex('9000'), { chunkTimeoutMs: 30 });
  t.onChunk(fromHex('0010aabb'));
  log = await done;
  assert.match(log.error, /timed out inside a frame/);
  assert.ok(t.disconnected);
});

async function signedShareFile(friendPublic, { name = 'carkey-00112233', tamper = null } = {}) {
  const owner = await globalThis.crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
  const ownerPublic = await crypto.exportPublicKey(owner.publicKey);
  const body = tlv.encodeAll([
    [0x80, fromHex('01')], [0x81, fromHex(GROUP)], [0x82, friendPublic], [0x83, fromHex('02')], [0x84, fromHex('007f')],
    [0x85, fromHex('00000000')], [0x86, fromHex('00000000')], [0x88, fromHex('0000')], [0x89, fromHex('00000009')], [0x8a, fromHex('00')],
  ]);
  const sign = (data) => crypto.sign(owner.privateKey, data);
  const docSignature = await sign(concat(new TextEncoder().encode('carkey/share/v1\0'), body));
  const document = tlv.encode(0xe2, concat(body, tlv.encode(0x9e, docSignature), tlv.encode(0x5a, ownerPublic)));
  const reader = await readerKey();
  const rawName = new TextEncoder().encode(name);
  const carSignature = await sign(concat(new TextEncoder().encode('carkey/share-file/v1\0'), fromHex(GROUP), reader,
    new Uint8Array([rawName.length]), rawName, await crypto.sha256(document)));
  const file = { carkey_share: 1, car: { name, group_id: GROUP, reader_public_key: toHex(reader) }, document: toHex(document), car_signature: toHex(carSignature) };
  if (tamper) tamper(file);
  return { file: new TextEncoder().encode(JSON.stringify(file)), reader };
}

test('a share file (PROTOCOL §5a) brings the car identity; both owner signatures must verify', async () => {
  const ring = await Keyring.open(new MemoryStorage());
  await ring.createCredential();
  const { file, reader } = await signedShareFile(ring.credential.publicBytes);
  const car = await ring.importTrust(file);
  assert.deepEqual([car.groupId, car.readerPublicKey, car.name, car.role], [GROUP, toHex(reader), 'carkey-00112233', 'driver']);
  assert.ok(car.shareDocument.startsWith('e281'));
  const other = toHex(await readerKey());
  const cases = [
    [(f) => { f.car.reader_public_key = other; }, /car_signature does not verify/],
    [(f) => { f.car.name = 'carkey-99999999'; }, /car_signature does not verify/],
    [(f) => { f.document = f.document.replace(/9e40(..)/, (m, b) => `9e40${(parseInt(b, 16) ^ 1).toString(16).padStart(2, '0')}`); }, /document's signature does not verify/],
    [(f) => { f.carkey_share = 2; }, /format 2 is not supported/],
    [(f) => { f.car.group_id = '11'.repeat(16); }, /bound to another car/],
    [(f) => { delete f.car_signature; }, /car_signature expected/],
  ];
  for (const [tamper, message] of cases) {
    const fresh = await Keyring.open(new MemoryStorage());
    fresh.credential = ring.credential;
    const bad = await signedShareFile(ring.credential.publicBytes, { tamper });
    await assert.rejects(fresh.importTrust(bad.file), message);
    assert.equal(fresh.cars.length, 0);
  }
  await assert.rejects(ring.importTrust((await signedShareFile(reader)).file), /another key/);
});

test('forgetting a car drops its record and its Kpersistent, and nothing of the other cars', async () => {
  const ring = await Keyring.open(new MemoryStorage());
  await ring.createCredential();
  const other = 'ffeeddccbbaa99887766554433221100';
  for (const group of [GROUP, other]) {
    await ring.importTrust(new TextEncoder().encode(JSON.stringify({ group_id: group, reader_public_key: toHex(await readerKey()) })));
  }
  const cache = new KpersistentCache();
  cache.put(fromHex(GROUP + '01'.repeat(16)), new Uint8Array(32).fill(1));
  cache.put(fromHex(other + '02'.repeat(16)), new Uint8Array(32).fill(2));
  await ring.saveCache(cache);
  await ring.forgetCar(GROUP);
  assert.deepEqual(ring.cars.map((c) => c.groupId), [other]);
  assert.deepEqual((await ring.storage.get('cars')).map((c) => c.groupId), [other]);
  const left = await ring.loadCache();
  assert.deepEqual([...left.entries.keys()], [other + '02'.repeat(16)]);
});
