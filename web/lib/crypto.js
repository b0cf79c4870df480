// carkey web key — the Aliro expedited-phase cryptography on WebCrypto: ECDH, ECDSA, X9.63, HKDF, AES-GCM.
// SPDX-License-Identifier: MIT
//
// The same API in Chrome and in Node (globalThis.crypto.subtle). WebCrypto's ECDSA
// signatures are IEEE P1363, i.e. raw r || s (64 bytes), exactly Aliro's format; its
// nonces are random, so a device signature is checked by verifying, never by bytes.

import { concat, u32 } from './bytes.js';
import * as tlv from './tlv.js';

const subtle = globalThis.crypto.subtle;

export const LABEL_VOLATILE = new TextEncoder().encode('Volatile****');
export const LABEL_VOLATILE_FAST = new TextEncoder().encode('VolatileFast');
export const LABEL_PERSISTENT = new TextEncoder().encode('Persistent**');
export const USAGE_READER = new Uint8Array([0x41, 0x5d, 0x95, 0x69]);
export const USAGE_DEVICE = new Uint8Array([0x4e, 0x88, 0x7b, 0x4c]);
export const INTERFACE_NFC = 0x5e; // carkey's GATT transport carries the NFC bytes, this byte included
export const PROTOCOL_VERSION = new Uint8Array([0x01, 0x00]);
export const KEY_LEN = 32;
export const SIGNATURE_LEN = 64;
export const PUBLIC_KEY_LEN = 65;
export const CRYPTOGRAM_IV = new Uint8Array(12);
const TIMESTAMP_LEN = 20;

const ECDSA = { name: 'ECDSA', namedCurve: 'P-256' };
const ECDH = { name: 'ECDH', namedCurve: 'P-256' };
const SIGN = { name: 'ECDSA', hash: 'SHA-256' };

export class InvalidPublicKey extends Error {}

export function randomBytes(n) {
  return globalThis.crypto.getRandomValues(new Uint8Array(n));
}

export async function sha256(data) {
  return new Uint8Array(await subtle.digest('SHA-256', data));
}

// carkey's 8-byte key slot: SHA-1 of the 65-byte public key, first 8 bytes (carkey's own choice).
export async function keySlot(publicKey) {
  return new Uint8Array(await subtle.digest('SHA-1', publicKey)).slice(0, 8);
}

export function xOf(point) {
  if (point.length !== PUBLIC_KEY_LEN) throw new InvalidPublicKey('expected a 65-byte uncompressed P-256 point');
  return point.slice(1, 33);
}

async function importPoint(point, algorithm, usages) {
  if (point.length !== PUBLIC_KEY_LEN || point[0] !== 0x04) throw new InvalidPublicKey('expected a 65-byte uncompressed P-256 point');
  try {
    return await subtle.importKey('raw', point, algorithm, true, usages);
  } catch (e) {
    throw new InvalidPublicKey('point is not on P-256');
  }
}

// Refuses bytes that are not an uncompressed point on P-256.
export async function checkPublicKey(point) {
  await importPoint(point, ECDSA, ['verify']);
}

export async function exportPublicKey(publicKey) {
  return new Uint8Array(await subtle.exportKey('raw', publicKey));
}

// --- keys ---------------------------------------------------------------------------

// A credential: ECDSA P-256, private key not extractable.
export async function generateCredential() {
  return subtle.generateKey(ECDSA, false, ['sign', 'verify']);
}

// A fresh ephemeral ECDH key pair for one transaction: {privateKey, publicBytes}.
export async function generateEphemeral() {
  const pair = await subtle.generateKey(ECDH, false, ['deriveBits']);
  return { privateKey: pair.privateKey, publicBytes: await exportPublicKey(pair.publicKey) };
}

function jwkFor(scalar, point) {
  const b64 = (b) => btoa(String.fromCharCode(...b)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  return { kty: 'EC', crv: 'P-256', d: b64(scalar), x: b64(point.slice(1, 33)), y: b64(point.slice(33)), ext: true };
}

// Fixed keys for known-answer tests: a private scalar and its public point.
export async function importEphemeral(scalar, point) {
  return { privateKey: await subtle.importKey('jwk', jwkFor(scalar, point), ECDH, false, ['deriveBits']), publicBytes: point };
}

export async function importCredential(scalar, point) {
  return {
    privateKey: await subtle.importKey('jwk', jwkFor(scalar, point), ECDSA, false, ['sign']),
    publicKey: await importPoint(point, ECDSA, ['verify']),
  };
}

// Z: the X coordinate of private * peer, 32 bytes.
export async function ecdhSharedX(privateKey, peerPoint) {
  const peer = await importPoint(peerPoint, ECDH, []);
  return new Uint8Array(await subtle.deriveBits({ name: 'ECDH', public: peer }, privateKey, 256));
}

// ANSI X9.63 KDF with SHA-256: Hash(Z || counter || SharedInfo), counter from 1.
export async function x963kdf(z, sharedInfo, length = KEY_LEN) {
  const blocks = [];
  for (let counter = 1; blocks.length * 32 < length; counter++) blocks.push(await sha256(concat(z, u32(counter), sharedInfo)));
  return concat(...blocks).slice(0, length);
}

export async function hkdf(ikm, salt, info, length) {
  const key = await subtle.importKey('raw', ikm, 'HKDF', false, ['deriveBits']);
  return new Uint8Array(await subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt, info }, key, length * 8));
}

// --- AES-GCM -----------------------------------------------------------------------

export async function aesGcmKey(raw) {
  return subtle.importKey('raw', raw, 'AES-GCM', false, ['encrypt', 'decrypt']);
}

export async function seal(key, iv, plaintext) {
  return new Uint8Array(await subtle.encrypt({ name: 'AES-GCM', iv, tagLength: 128 }, key, plaintext));
}

// null when the tag does not verify.
export async function open(key, iv, message) {
  try {
    return new Uint8Array(await subtle.decrypt({ name: 'AES-GCM', iv, tagLength: 128 }, key, message));
  } catch (e) {
    return null;
  }
}

// --- ECDSA -------------------------------------------------------------------------

export async function sign(privateKey, data) {
  return new Uint8Array(await subtle.sign(SIGN, privateKey, data));
}

// True only for a valid raw r || s signature by the 65-byte `publicKey`.
export async function verify(publicKey, data, signature) {
  if (signature.length !== SIGNATURE_LEN) return false;
  const key = await importPoint(publicKey, ECDSA, ['verify']);
  return subtle.verify(SIGN, key, signature, data);
}

// --- the key schedule --------------------------------------------------------------

// The SELECT answer's A5 object; the whole object enters every salt.
export function proprietaryTlv(applicationType = new Uint8Array(2), versions = [PROTOCOL_VERSION]) {
  return tlv.encode(0xa5, concat(tlv.encode(0x80, applicationType), tlv.encode(0x5c, concat(...versions))));
}

// What both sides know once AUTH0 is answered: the inputs of every salt and info.
export class Transcript {
  constructor(fields) {
    Object.assign(this, { protocolVersion: PROTOCOL_VERSION, interfaceByte: INTERFACE_NFC, infoExtension: new Uint8Array(0) }, fields);
  }

  salt(label) {
    const parts = [
      xOf(this.readerGroupPublicKey), label, this.readerIdentifier, new Uint8Array([this.interfaceByte]),
      tlv.encode(0x5c, this.protocolVersion), xOf(this.readerEphemeralPublicKey), this.transactionId, this.flag,
      this.proprietaryTlv,
    ];
    if (label === LABEL_VOLATILE_FAST || label === LABEL_PERSISTENT) parts.push(xOf(this.credentialPublicKey));
    return concat(...parts);
  }

  info() {
    return concat(xOf(this.deviceEphemeralPublicKey), this.infoExtension);
  }

  // 4D reader id || 86 device eph X || 87 reader eph X || 4C transaction id || 93 usage.
  signedData(usage) {
    return tlv.encodeAll([
      [0x4d, this.readerIdentifier], [0x86, xOf(this.deviceEphemeralPublicKey)],
      [0x87, xOf(this.readerEphemeralPublicKey)], [0x4c, this.transactionId], [0x93, usage],
    ]);
  }
}

const split = (okm) => [0, 1, 2, 3, 4].map((i) => okm.slice(32 * i, 32 * i + 32));

export async function deriveKdh(sharedX, transactionId) {
  return x963kdf(sharedX, transactionId, KEY_LEN);
}

export async function deriveStandardKeys(kdh, transcript) {
  const [skReader, skDevice, stepUpSk, bleSk, ursk] = split(await hkdf(kdh, transcript.salt(LABEL_VOLATILE), transcript.info(), 160));
  return { skReader, skDevice, stepUpSk, bleSk, ursk };
}

export async function deriveKpersistent(kdh, transcript) {
  return hkdf(kdh, transcript.salt(LABEL_PERSISTENT), transcript.info(), KEY_LEN);
}

export async function deriveFastKeys(kpersistent, transcript) {
  const [cryptogramSk, skReader, skDevice, bleSk, ursk] = split(await hkdf(kpersistent, transcript.salt(LABEL_VOLATILE_FAST), transcript.info(), 160));
  return { cryptogramSk, skReader, skDevice, bleSk, ursk };
}

// 5E bitmap || 91 credential timestamp || 92 revocation timestamp (48 bytes; zero timestamps).
export function cryptogramPlaintext(signalingBitmap) {
  return tlv.encodeAll([[0x5e, signalingBitmap], [0x91, new Uint8Array(TIMESTAMP_LEN)], [0x92, new Uint8Array(TIMESTAMP_LEN)]]);
}

export async function sealCryptogram(cryptogramSk, plaintext) {
  return seal(await aesGcmKey(cryptogramSk), CRYPTOGRAM_IV, plaintext);
}
