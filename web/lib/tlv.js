// carkey web key — BER-TLV encoding and strict decoding (one- and two-byte tags, lengths to 65535).
// SPDX-License-Identifier: MIT
//
// Decoding is strict like the host's carkey_host.aliro.tlv: a truncated object,
// a tag or length in a longer form than needed, or bytes left over are errors.
// Tag 00 is accepted: an EXCHANGE answer ends with 00 02 00 00.

import { concat } from './bytes.js';

export class TlvError extends Error {}

const MAX_LENGTH = 0xffff;
const isMultibyteLead = (first) => (first & 0x1f) === 0x1f;

export function encodeTag(tag) {
  if (tag >= 0 && tag <= 0xff) {
    if (isMultibyteLead(tag)) throw new TlvError(`tag ${tag.toString(16)} needs a second byte`);
    return new Uint8Array([tag]);
  }
  if (tag >= 0x100 && tag <= 0xffff) {
    const lead = tag >> 8;
    const second = tag & 0xff;
    if (!isMultibyteLead(lead) || second < 0x1f || second > 0x7f) throw new TlvError(`tag ${tag.toString(16)} is not a valid two-byte tag`);
    return new Uint8Array([lead, second]);
  }
  throw new TlvError(`tag ${tag} out of range`);
}

export function encodeLength(n) {
  if (n < 0 || n > MAX_LENGTH) throw new TlvError(`length ${n} out of range`);
  if (n < 0x80) return new Uint8Array([n]);
  if (n <= 0xff) return new Uint8Array([0x81, n]);
  return new Uint8Array([0x82, n >> 8, n & 0xff]);
}

export function encode(tag, value) {
  return concat(encodeTag(tag), encodeLength(value.length), value);
}

export function encodeAll(items) {
  return concat(...items.map(([tag, value]) => encode(tag, value)));
}

function readTag(data, pos) {
  if (pos >= data.length) throw new TlvError('truncated tag');
  const first = data[pos];
  if (!isMultibyteLead(first)) return [first, pos + 1];
  if (pos + 1 >= data.length) throw new TlvError('truncated two-byte tag');
  const second = data[pos + 1];
  if (second & 0x80) throw new TlvError('tags longer than two bytes are not supported');
  if (second < 0x1f) throw new TlvError('overlong tag encoding');
  return [(first << 8) | second, pos + 2];
}

function readLength(data, pos) {
  if (pos >= data.length) throw new TlvError('truncated length');
  const first = data[pos];
  if (first < 0x80) return [first, pos + 1];
  if (first === 0x81) {
    if (pos + 2 > data.length) throw new TlvError('truncated length');
    const n = data[pos + 1];
    if (n < 0x80) throw new TlvError('overlong length encoding');
    return [n, pos + 2];
  }
  if (first === 0x82) {
    if (pos + 3 > data.length) throw new TlvError('truncated length');
    const n = (data[pos + 1] << 8) | data[pos + 2];
    if (n <= 0xff) throw new TlvError('overlong length encoding');
    return [n, pos + 3];
  }
  throw new TlvError(`unsupported length form ${first.toString(16)}`);
}

function readOne(data, pos) {
  let tag, length;
  [tag, pos] = readTag(data, pos);
  [length, pos] = readLength(data, pos);
  const end = pos + length;
  if (end > data.length) throw new TlvError(`value of tag ${tag.toString(16)} truncated`);
  return [[tag, data.slice(pos, end)], end];
}

// Every object in `data`, in order, as [tag, value] pairs; they must cover it exactly.
export function decodeAll(data) {
  const items = [];
  let pos = 0;
  while (pos < data.length) {
    let item;
    [item, pos] = readOne(data, pos);
    items.push(item);
  }
  return items;
}

export function decodeOne(data) {
  const [item, end] = readOne(data, 0);
  if (end !== data.length) throw new TlvError('trailing bytes after TLV');
  return item;
}

// Objects by tag; a repeated tag is refused (a reader must not send two of one field).
export function decodeUnique(data) {
  const fields = new Map();
  for (const [tag, value] of decodeAll(data)) {
    if (fields.has(tag)) throw new TlvError(`duplicate tag ${tag.toString(16)}`);
    fields.set(tag, value);
  }
  return fields;
}
