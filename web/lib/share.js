// carkey web key — what the page imports to trust a car: share documents and car identities.
// SPDX-License-Identifier: MIT
//
// parseTrustImport(bytes) takes what an owner hands over and resolves to one record
// {groupId, readerPublicKey, name, shareDocument, share}:
// - a share file (docs/PROTOCOL.md §5a, {"carkey_share": 1, "car": {...}, "document",
//   "car_signature"}): trusted only when the document's own signature and the
//   owner's signature over the car's identity both verify under the document's owner
//   key (5A) — so nobody can pair a real share with another reader's key;
// - a bare share document (docs/PROTOCOL.md §5, the file `carkey keys share --out` writes,
//   starting with E2), raw or as hex text: the car's group id and the document the
//   page presents on its first tap. A bare document does not carry the reader's
//   public key, so the page also needs the car's identity;
// - JSON naming the car: {"group_id", "reader_public_key", "name"?, "share"?} (hex),
//   e.g. `carkey reader identity --json`, one entry of the owner's trust.json or a
//   list of them, or a share bundle with the document in "share" / "share_document".
// Nothing here decides trust by itself: the page keeps one car per group id and
// refuses every reader whose group it does not hold (UserDevice).

import { concat, fromHex, toHex } from './bytes.js';
import { sha256, verify } from './crypto.js';
import * as tlv from './tlv.js';

export class ImportError extends Error {}

const ROLES = { 1: 'owner', 2: 'driver', 3: 'guest', 4: 'valet' };
const SHARE_FIELDS = [
  [0x80, 1, 'version'], [0x81, 16, 'groupId'], [0x82, 65, 'friendPublicKey'], [0x83, 1, 'role'],
  [0x84, 2, 'entitlements'], [0x85, 4, 'validFrom'], [0x86, 4, 'validUntil'], [0x87, null, 'schedule'],
  [0x88, 2, 'useLimit'], [0x89, 4, 'serial'], [0x8a, 1, 'delegation'],
];

const uint = (b) => b.reduce((n, x) => n * 256 + x, 0);
const SHARE_CONTEXT = new TextEncoder().encode('carkey/share/v1\0');
const SHARE_FILE_CONTEXT = new TextEncoder().encode('carkey/share-file/v1\0');
const SHARE_FILE_FORMAT = 1;
const MAX_NAME = 32;

// The fields of a share document, in the order §5 fixes (the car checks the signature).
export function parseShareDocument(doc) {
  let tag, value;
  try {
    [tag, value] = tlv.decodeOne(doc);
  } catch (e) {
    throw new ImportError(`not a share document (${e.message})`);
  }
  if (tag !== 0xe2) throw new ImportError(`not a share document (starts with ${tag.toString(16)}, not e2)`);
  let items;
  try {
    items = tlv.decodeAll(value);
  } catch (e) {
    throw new ImportError(`malformed share document (${e.message})`);
  }
  const share = {};
  let i = 0;
  for (const [want, length, name] of SHARE_FIELDS) {
    const item = items[i];
    if (want === 0x87 && (!item || item[0] !== 0x87)) continue; // the schedule is optional
    if (!item || item[0] !== want || (length !== null && item[1].length !== length)) {
      throw new ImportError(`malformed share document (field ${want.toString(16)})`);
    }
    share[name] = item[1];
    i += 1;
  }
  const [sig, owner] = [items[i], items[i + 1]];
  if (!sig || sig[0] !== 0x9e || sig[1].length !== 64 || !owner || owner[0] !== 0x5a || owner[1].length !== 65 || items.length !== i + 2) {
    throw new ImportError('malformed share document (signature and owner key)');
  }
  if (share.version[0] !== 1) throw new ImportError('unsupported share document version');
  if (share.friendPublicKey[0] !== 0x04) throw new ImportError('malformed share document (friend key)');
  return {
    groupId: toHex(share.groupId),
    friendPublicKey: share.friendPublicKey,
    role: ROLES[share.role[0]] || `role ${share.role[0]}`,
    entitlements: uint(share.entitlements),
    validFrom: uint(share.validFrom),
    validUntil: uint(share.validUntil),
    useLimit: uint(share.useLimit),
    serial: uint(share.serial),
    ownerPublicKey: owner[1],
    signature: sig[1],
    body: tlv.encodeAll(items.slice(0, i)), // the decoder is strict: re-encoding gives the signed bytes
  };
}

// True when the document's signature verifies under its own owner key (the car checks it too).
export async function shareSignatureValid(share) {
  return verify(share.ownerPublicKey, concat(SHARE_CONTEXT, share.body), share.signature);
}

async function fromShareFile(object) {
  if (object.carkey_share !== SHARE_FILE_FORMAT) throw new ImportError(`share file format ${JSON.stringify(object.carkey_share)} is not supported (this page reads ${SHARE_FILE_FORMAT})`);
  const car = object.car;
  if (typeof car !== 'object' || car === null) throw new ImportError('car: missing');
  const groupId = hexField(car, ['group_id'], 16, 'car.group_id');
  const readerPublicKey = hexField(car, ['reader_public_key'], 65, 'car.reader_public_key');
  const name = car.name;
  if (!groupId || !readerPublicKey || readerPublicKey[0] !== 0x04) throw new ImportError('car: group_id (16 bytes) and reader_public_key (65 bytes, 04 || X || Y) expected');
  const rawName = typeof name === 'string' ? new TextEncoder().encode(name) : new Uint8Array(0);
  if (!rawName.length || rawName.length > MAX_NAME || /[\x00-\x1f\x7f]/.test(name)) throw new ImportError(`car.name: 1..${MAX_NAME} printable characters expected`);
  const document = hexField(object, ['document'], null, 'document');
  const carSignature = hexField(object, ['car_signature'], 64, 'car_signature');
  if (!document || !carSignature) throw new ImportError('document and car_signature expected');
  const share = parseShareDocument(document);
  if (share.groupId !== toHex(groupId)) throw new ImportError('the share document is bound to another car than the file names');
  if (!(await shareSignatureValid(share))) throw new ImportError('the share document\'s signature does not verify');
  const signed = concat(SHARE_FILE_CONTEXT, groupId, readerPublicKey, new Uint8Array([rawName.length]), rawName, await sha256(document));
  if (!(await verify(share.ownerPublicKey, signed, carSignature))) {
    throw new ImportError('car_signature does not verify: the car\'s identity was not signed by the sharing owner');
  }
  return { groupId: share.groupId, readerPublicKey, name, shareDocument: document, share };
}

function hexField(object, names, length, what) {
  for (const name of names) {
    if (object[name] !== undefined && object[name] !== null) {
      let value;
      try {
        value = fromHex(String(object[name]));
      } catch (e) {
        throw new ImportError(`${what}: not hexadecimal`);
      }
      if (length !== null && value.length !== length) throw new ImportError(`${what}: expected ${length} bytes, got ${value.length}`);
      return value;
    }
  }
  return null;
}

function fromDocument(doc) {
  const share = parseShareDocument(doc);
  return { groupId: share.groupId, readerPublicKey: null, name: null, shareDocument: doc, share };
}

function fromObject(object) {
  if (Array.isArray(object)) {
    if (object.length !== 1) throw new ImportError(`the file names ${object.length} cars: import one at a time`);
    return fromObject(object[0]);
  }
  if (typeof object !== 'object' || object === null) throw new ImportError('not a car identity or share');
  const doc = hexField(object, ['share', 'share_document', 'document'], null, 'share document');
  const record = doc ? fromDocument(doc) : { groupId: null, readerPublicKey: null, name: null, shareDocument: null, share: null };
  const groupId = hexField(object, ['group_id', 'groupId'], 16, 'group id');
  if (groupId) {
    if (record.groupId && record.groupId !== toHex(groupId)) throw new ImportError('the share document is bound to another car than the group id given');
    record.groupId = toHex(groupId);
  }
  const key = hexField(object, ['reader_public_key', 'readerPublicKey'], 65, 'reader public key');
  if (key) {
    if (key[0] !== 0x04) throw new ImportError('reader public key: not an uncompressed P-256 point');
    record.readerPublicKey = key;
  }
  if (typeof object.name === 'string') {
    if (!/^carkey-[0-9a-f]{8}$/.test(object.name)) throw new ImportError(`name ${object.name} does not look like carkey-XXXXXXXX`);
    record.name = object.name;
  }
  if (!record.groupId) throw new ImportError('no group id: expected "group_id" and "reader_public_key", or a share document');
  return record;
}

export async function parseTrustImport(data) {
  if (!data.length) throw new ImportError('the file is empty');
  if (data[0] === 0xe2) return fromDocument(data);
  const text = new TextDecoder('utf-8', { fatal: false }).decode(data).trim();
  if (/^[0-9a-fA-F\s]+$/.test(text)) return fromDocument(fromHex(text.replace(/\s+/g, '')));
  let object;
  try {
    object = JSON.parse(text);
  } catch (e) {
    throw new ImportError('not a share document, nor JSON naming a car');
  }
  if (object && typeof object === 'object' && 'carkey_share' in object) return fromShareFile(object);
  return fromObject(object);
}
