// carkey web key — carkey's extension inside EXCHANGE (docs/PROTOCOL.md §4): the E1 envelope, requests, results.
// SPDX-License-Identifier: MIT

import * as tlv from './tlv.js';

export const ENVELOPE = 0xe1;
export const HELLO_VERSION = 0xc0;
export const CAR_STATE = 0xc1;
export const COMMAND_REQUEST = 0xc2;
export const SHARE_DOCUMENT = 0xc3;
export const COMMAND_RESULT = 0xc4;
export const REVOCATION_DOCUMENT = 0xc5;
export const DOCUMENT_RESULT = 0xc6;
export const SHARE_TAG = 0xe2;
export const REVOCATION_TAG = 0xe3;
export const READER_STATUS = 0x97;

export const COMMANDS = Object.freeze({
  lock: 0x01, unlock: 0x02, 'unlock-driver': 0x03, trunk: 0x04, drive: 0x05, locate: 0x06, status: 0x07,
});
export const COMMAND_NAMES = Object.freeze(Object.fromEntries(Object.entries(COMMANDS).map(([k, v]) => [v, k])));

export const RESULTS = Object.freeze({
  0x00: 'ok', 0x01: 'not entitled', 0x02: 'outside validity window', 0x03: 'outside schedule',
  0x04: 'use limit reached', 0x05: 'needs a standard transaction', 0x06: 'key suspended',
  0x07: 'key revoked or unknown', 0x08: 'locked out', 0x09: 'clock not trusted',
  0x0a: 'unknown command or bad argument', 0x0b: 'document refused', 0x0c: 'hardware fault',
  0x0d: 'no room (key store or revocation list full)', 0x0e: 'document superseded',
});

const DOORS = ['driver', 'passenger', 'rear-left', 'rear-right', 'trunk'];

// Car state C1 / the last 3 bytes of C4: lock state, door bitmap, drive-enable minutes left.
export function parseCarState(value) {
  if (value.length !== 3) throw new tlv.TlvError(`car state is 3 bytes, got ${value.length}`);
  const doorsOpen = DOORS.filter((_, bit) => (value[1] >> bit) & 1);
  return { locked: Boolean(value[0]), doorsOpen, driveMinutes: value[2] };
}

export function describeState(state) {
  let text = state.locked ? 'locked' : 'unlocked';
  text += ', open: ' + (state.doorsOpen.length ? state.doorsOpen.join(',') : 'none');
  if (state.driveMinutes) text += `, drive enabled ${state.driveMinutes} min`;
  return text;
}

export function parseResult(value) {
  if (value.length !== 5) throw new tlv.TlvError(`command result is 5 bytes, got ${value.length}`);
  const command = COMMAND_NAMES[value[0]] || `0x${value[0].toString(16)}`;
  const result = RESULTS[value[1]] || `result 0x${value[1].toString(16)}`;
  return { command, code: value[1], result, ok: value[1] === 0, state: parseCarState(value.subarray(2)) };
}

export function describeResult(r) {
  return `${r.command}: ${r.result} (${describeState(r.state)})`;
}

// [document tag E2|E3, result code] of a C6 object.
export function parseDocumentResult(value) {
  if (value.length !== 2 || (value[0] !== SHARE_TAG && value[0] !== REVOCATION_TAG)) throw new tlv.TlvError('malformed document result');
  return [value[0], value[1]];
}

// [tag, value] of a command request; drive takes minutes 1..240.
export function commandRequest(name, argument = new Uint8Array(0)) {
  const id = COMMANDS[name];
  if (id === undefined) throw new Error(`unknown command ${name}`);
  if (name === 'drive' && (argument.length !== 1 || argument[0] < 1 || argument[0] > 240)) throw new Error('drive wants minutes 1..240');
  const value = new Uint8Array(1 + argument.length);
  value[0] = id;
  value.set(argument, 1);
  return [COMMAND_REQUEST, value];
}

export function envelope(items) {
  return [ENVELOPE, tlv.encodeAll(items)];
}

// The TLVs inside the E1 envelope among decrypted EXCHANGE items (empty when absent).
export function openEnvelope(items) {
  for (const [tag, value] of items) if (tag === ENVELOPE) return tlv.decodeAll(value);
  return [];
}
