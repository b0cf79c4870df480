// carkey web key — ISO 7816-4 short APDUs for the user device: parsing, status words, chaining.
// SPDX-License-Identifier: MIT
//
// Command data longer than 255 bytes arrives as a chain (CLA | 0x10 on all parts but
// the last); answers longer than 254 bytes go out in parts ending in 61xx until GET
// RESPONSE has fetched the rest (a share document in an EXCHANGE answer needs this).

import { concat } from './bytes.js';

export const SW_OK = 0x9000;
export const SW_KEY_LOOKUP_FAILED = 0x6400;
export const SW_MALFORMED = 0x6701;
export const SW_BAD_CLA = 0x6800;
export const SW_SECURITY = 0x6982;
export const SW_CONDITIONS = 0x6985;
export const SW_UNKNOWN_AID = 0x6a82;
export const SW_BAD_P1P2 = 0x6a86;
export const SW_WRONG_STATE = 0x6d00;
export const SW_MORE_DATA = 0x6100;

export const CLA_ISO = 0x00;
export const CLA_PROPRIETARY = 0x80;
export const CLA_CHAINING = 0x10;

export const INS_SELECT = 0xa4;
export const INS_AUTH0 = 0x80;
export const INS_AUTH1 = 0x81;
export const INS_EXCHANGE = 0xc9;
export const INS_CONTROL_FLOW = 0x3c;
export const INS_GET_RESPONSE = 0xc0;

export const MAX_RESPONSE_CHUNK = 254;
export const MAX_CHAINED_DATA = 4096;

// A command that must be answered with status word `sw`.
export class ApduError extends Error {
  constructor(sw, message) {
    super(message || `status ${sw.toString(16).padStart(4, '0')}`);
    this.sw = sw;
  }
}

export function status(sw) {
  return new Uint8Array([sw >> 8, sw & 0xff]);
}

// {cla, ins, p1, p2, data, le, chained}; ISO 7816-4 cases 1 to 4, short form only.
export function parseCommand(raw) {
  if (raw.length < 4) throw new ApduError(SW_MALFORMED, 'command shorter than its header');
  const [cla, ins, p1, p2] = raw;
  const body = raw.subarray(4);
  const command = { cla, ins, p1, p2, data: new Uint8Array(0), le: null };
  if (body.length === 1) {
    command.le = body[0] || 256;
  } else if (body.length > 1) {
    const lc = body[0];
    if (lc === 0) throw new ApduError(SW_MALFORMED, 'extended-length commands are not supported');
    if (body.length === 1 + lc) command.data = body.slice(1);
    else if (body.length === 2 + lc) {
      command.data = body.slice(1, -1);
      command.le = body[body.length - 1] || 256;
    } else throw new ApduError(SW_MALFORMED, 'Lc does not match the command length');
  }
  command.chained = Boolean(cla & CLA_CHAINING);
  return command;
}

// Joins chained parts into one command.
export class CommandChain {
  constructor(limit = MAX_CHAINED_DATA) {
    this.limit = limit;
    this.reset();
  }

  reset() {
    this.head = null;
    this.parts = [];
    this.size = 0;
  }

  // The whole command once the last part arrives; null while parts are still due.
  feed(command) {
    const head = this.head;
    if (head && ((head.cla & ~CLA_CHAINING) !== (command.cla & ~CLA_CHAINING) || head.ins !== command.ins ||
        head.p1 !== command.p1 || head.p2 !== command.p2)) {
      this.reset();
      throw new ApduError(SW_WRONG_STATE, 'command does not continue the chain');
    }
    if (this.size + command.data.length > this.limit) {
      this.reset();
      throw new ApduError(SW_MALFORMED, 'chained command too long');
    }
    if (command.chained) {
      if (!head) this.head = command;
      this.parts.push(command.data);
      this.size += command.data.length;
      return null;
    }
    if (!head) return command;
    const whole = { ...command, data: concat(...this.parts, command.data), chained: false };
    this.reset();
    return whole;
  }
}

// Hands out a long answer in parts through 61xx and GET RESPONSE.
export class ResponseChain {
  constructor(chunk = MAX_RESPONSE_CHUNK) {
    this.chunk = chunk;
    this.rest = new Uint8Array(0);
  }

  get pending() {
    return this.rest.length > 0;
  }

  reset() {
    this.rest = new Uint8Array(0);
  }

  start(data) {
    this.rest = data;
    return this.next(this.chunk);
  }

  next(le) {
    const size = Math.min(this.chunk, le || 256);
    const part = this.rest.slice(0, size);
    this.rest = this.rest.slice(size);
    if (this.rest.length) {
      const remaining = this.rest.length;
      return concat(part, status(SW_MORE_DATA | (remaining < 256 ? remaining : 0)));
    }
    return concat(part, status(SW_OK));
  }
}
