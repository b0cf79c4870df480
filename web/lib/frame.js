// carkey web key — carkey's GATT framing (docs/PROTOCOL.md §2b) and the phone side of one BLE visit.
// SPDX-License-Identifier: MIT
//
// Every APDU travels as a frame: its length (2 bytes, big-endian), then the APDU, cut
// into chunks of at most ATT MTU − 3 bytes; a chunk never holds bytes of two frames.
// The car sends commands as indications, the phone answers with writes with response.
//
// Web Bluetooth does not tell a page the ATT MTU. The car cuts its indications at
// MTU − 3 of the agreed MTU, and the MTU is the same both ways, so the phone writes
// chunks as large as the largest indication it has seen on this connection, and 20
// bytes (MTU 23, always valid) before it has seen one.

import { concat } from './bytes.js';
import { LinkDropped } from './user_device.js';

export const SERVICE_UUID = '7f1e0001-6c2b-4b8e-9f3a-2d5c1ac0a201';
export const WRITE_UUID = '7f1e0002-6c2b-4b8e-9f3a-2d5c1ac0a201';
export const INDICATE_UUID = '7f1e0003-6c2b-4b8e-9f3a-2d5c1ac0a201';
export const NAME_PREFIX = 'carkey-';
export const MIN_CHUNK = 20; // MTU 23 − 3
export const MAX_CHUNK = 514; // MTU 517 − 3
export const MAX_COMMAND = 261; // what the car sends: short APDUs, longer ones chained
export const MAX_ANSWER = 512; // what the car accepts
export const READY = new Uint8Array([0, 0]); // the empty frame: subscribed, the car may send SELECT
export const CHUNK_TIMEOUT_MS = 2000; // between chunks of one frame (the car allows 1 s per chunk its side)
export const IDLE_TIMEOUT_MS = 10000; // no command from the car for this long: give up

export class FramingError extends Error {}

// The name a car advertises, from its reader group id (hex).
export function deviceName(groupIdHex) {
  return NAME_PREFIX + groupIdHex.slice(0, 8).toLowerCase();
}

export function encodeFrame(apdu, limit = MAX_ANSWER) {
  if (apdu.length < 1 || apdu.length > limit) throw new FramingError(`APDU length ${apdu.length} outside 1..${limit}`);
  return concat(new Uint8Array([apdu.length >> 8, apdu.length & 0xff]), apdu);
}

export function split(frame, chunk) {
  const out = [];
  for (let i = 0; i < frame.length; i += chunk) out.push(frame.slice(i, i + chunk));
  return out;
}

// Collects chunks until one frame of at most `limit` APDU bytes is whole.
export class Reassembler {
  constructor(limit = MAX_COMMAND) {
    this.limit = limit;
    this.reset();
  }

  reset() {
    this.parts = [];
    this.got = 0;
    this.want = null;
  }

  get started() {
    return this.got > 0;
  }

  // The APDU once the frame is whole, else null; FramingError on a bad frame.
  feed(chunk) {
    if (!chunk.length) throw new FramingError('empty chunk');
    this.parts.push(chunk);
    this.got += chunk.length;
    const buf = this.parts.length > 1 ? concat(...this.parts) : chunk;
    if (this.want === null && this.got >= 2) {
      const n = (buf[0] << 8) | buf[1];
      if (n === 0 || n > this.limit) {
        this.reset();
        throw new FramingError(`frame length ${n} outside 1..${this.limit}`);
      }
      this.want = 2 + n;
    }
    if (this.want !== null) {
      if (this.got > this.want) {
        const extra = this.got - this.want;
        this.reset();
        throw new FramingError(`${extra} bytes past the end of the frame`);
      }
      if (this.got === this.want) {
        this.reset();
        return buf.slice(2);
      }
    }
    return null;
  }
}

/**
 * Answer the car over one connection until it disconnects.
 *
 * transport: {write(chunk): Promise, disconnect()}; runLink sets transport.onChunk(bytes)
 * and transport.onDisconnect() before it returns, so wire them to the radio's events
 * before saying "ready". process(capdu) -> Promise<rapdu> is the user device.
 * Resolves to a log {commands, answers, indications, writes, chunk, dropped, error}.
 */
export function runLink(transport, process, options = {}) {
  const chunkTimeout = options.chunkTimeoutMs ?? CHUNK_TIMEOUT_MS;
  const idleTimeout = options.idleTimeoutMs ?? IDLE_TIMEOUT_MS;
  const log = { commands: [], answers: [], indications: 0, writes: 0, chunk: MIN_CHUNK, dropped: false, error: null };
  const rx = new Reassembler(MAX_COMMAND);
  const queue = [];
  let finished = false;
  let busy = false;
  let timer = null;
  let resolve;
  const done = new Promise((r) => { resolve = r; });

  const finish = (error) => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    if (error && !log.error) log.error = error;
    resolve(log);
  };
  const hangUp = (error) => {
    finish(error);
    try {
      transport.disconnect();
    } catch (e) { /* already gone */ }
  };
  const arm = () => {
    clearTimeout(timer);
    const ms = rx.started ? chunkTimeout : idleTimeout;
    timer = setTimeout(() => hangUp(rx.started ? 'timed out inside a frame from the car' : 'the car went quiet'), ms);
  };

  const pump = async () => {
    if (busy) return;
    busy = true;
    try {
      while (queue.length && !finished) {
        const chunk = queue.shift();
        log.indications += 1;
        log.chunk = Math.min(MAX_CHUNK, Math.max(log.chunk, chunk.length));
        const capdu = rx.feed(chunk);
        if (capdu === null) {
          arm();
          continue;
        }
        clearTimeout(timer);
        log.commands.push(capdu);
        const rapdu = await process(capdu);
        log.answers.push(rapdu);
        for (const part of split(encodeFrame(rapdu), log.chunk)) {
          if (finished) return;
          await transport.write(part);
          log.writes += 1;
        }
        arm();
      }
    } catch (e) {
      if (e instanceof LinkDropped) {
        log.dropped = true;
        hangUp(null);
      } else {
        hangUp(e.message || String(e));
      }
    } finally {
      busy = false;
    }
  };

  transport.onChunk = (chunk) => {
    if (finished) return;
    queue.push(chunk);
    pump();
  };
  transport.onDisconnect = () => {
    if (!finished && rx.started) log.error = 'the link ended inside a frame';
    finish(null);
  };
  arm();
  return done;
}
