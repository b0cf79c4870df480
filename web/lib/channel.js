// carkey web key — the expedited-phase secure channel, device side: AES-256-GCM with per-direction counters.
// SPDX-License-Identifier: MIT
//
// Reader -> device: SKReader, IV 00 x8 || counter; device -> reader: SKDevice, IV
// 00 x7 01 || counter (4 bytes big-endian). Each direction counts from 1; a message
// opens only under the next counter, so a replayed or reordered one fails its tag.
// Counter 0xFFFF is never used.

import { concat, u32 } from './bytes.js';
import { aesGcmKey, open, seal } from './crypto.js';

export const READER_IV_PREFIX = new Uint8Array(8);
export const DEVICE_IV_PREFIX = new Uint8Array([0, 0, 0, 0, 0, 0, 0, 1]);
const COUNTER_LIMIT = 0xffff;
const TAG_LEN = 16;

export class ChannelError extends Error {}
export class ChannelExhausted extends ChannelError {}

export function channelIv(prefix, counter) {
  return concat(prefix, u32(counter));
}

export class DeviceChannel {
  static async fromKeys(keys) {
    const channel = new DeviceChannel();
    channel.sendKey = await aesGcmKey(keys.skDevice);
    channel.receiveKey = await aesGcmKey(keys.skReader);
    channel.sendCounter = 1;
    channel.receiveCounter = 1;
    return channel;
  }

  async seal(plaintext) {
    if (this.sendCounter >= COUNTER_LIMIT) throw new ChannelExhausted('send counter exhausted');
    const out = await seal(this.sendKey, channelIv(DEVICE_IV_PREFIX, this.sendCounter), plaintext);
    this.sendCounter += 1;
    return out;
  }

  // A failure leaves the counter where it was; the caller ends the transaction.
  async open(message) {
    if (this.receiveCounter >= COUNTER_LIMIT) throw new ChannelExhausted('receive counter exhausted');
    if (message.length < TAG_LEN) throw new ChannelError('message shorter than a GCM tag');
    const plaintext = await open(this.receiveKey, channelIv(READER_IV_PREFIX, this.receiveCounter), message);
    if (plaintext === null) throw new ChannelError('message does not authenticate');
    this.receiveCounter += 1;
    return plaintext;
  }
}
