// carkey web key — the Aliro user device: answers the reader's expedited-phase APDUs (standard and fast).
// SPDX-License-Identifier: MIT
//
// `process(capdu)` takes one C-APDU and resolves to its R-APDU, so any link (Web
// Bluetooth, the virtual air, a test) can carry it. Every error answer ends the
// transaction: its keys are dropped and a reader starts again at AUTH0 or SELECT.
// A reader whose group is not trusted gets an ordinary AUTH0 answer and then
// LinkDropped at AUTH1: the device goes silent.

import * as apdu from './apdu.js';
import { ApduError } from './apdu.js';
import { concat, equal, toHex } from './bytes.js';
import * as crypto from './crypto.js';
import { ChannelError, ChannelExhausted, DeviceChannel } from './channel.js';
import { KpersistentCache } from './kpersistent.js';
import * as tlv from './tlv.js';

export const EXPEDITED_AID = new Uint8Array([0xa0, 0x00, 0x00, 0x09, 0x09, 0xac, 0xce, 0x55, 0x01]);
export const TRANSACTION_STANDARD = 0x00;
export const TRANSACTION_FAST = 0x01;
const POLICIES = [0x01, 0x02, 0x03];
const AUTH1_SEND_KEY_SLOT = 0x00;
const AUTH1_SEND_PUBLIC_KEY = 0x01;
const CRYPTOGRAM_LEN = 64;
export const EXCHANGE_STATUS_OK = new Uint8Array([0x00, 0x02, 0x00, 0x00]);

export const State = Object.freeze({ IDLE: 'idle', SELECTED: 'selected', AUTH0_DONE: 'auth0', AUTH0_FAST: 'auth0-fast', SECURE: 'secure' });

export class LinkDropped extends Error {}

const HANDLERS = new Map([
  [apdu.INS_SELECT, ['select', apdu.CLA_ISO]],
  [apdu.INS_AUTH0, ['auth0', apdu.CLA_PROPRIETARY]],
  [apdu.INS_AUTH1, ['auth1', apdu.CLA_PROPRIETARY]],
  [apdu.INS_EXCHANGE, ['exchange', apdu.CLA_PROPRIETARY]],
  [apdu.INS_CONTROL_FLOW, ['controlFlow', apdu.CLA_PROPRIETARY]],
]);
const CHAINABLE = [apdu.INS_AUTH0, apdu.INS_AUTH1, apdu.INS_EXCHANGE];

export class UserDevice {
  /**
   * credential: {privateKey: CryptoKey (ECDSA P-256), publicBytes: 65 bytes}.
   * trustedReaders: Map of group id hex (32 chars) -> reader public key (65 bytes).
   * options: kpersistentCache, exchangeHandler(items) -> [[tag, value]], fastEnabled,
   *   signalingBitmap (2 bytes), and for tests: newEphemeral(), randomBytes(n), sign(data).
   */
  constructor(credential, trustedReaders, options = {}) {
    this.credential = credential;
    this.credentialPublicKey = credential.publicBytes;
    this.trusted = new Map(trustedReaders || []);
    this.kpersistentCache = options.kpersistentCache || new KpersistentCache();
    this.exchangeHandler = options.exchangeHandler || null;
    this.fastEnabled = options.fastEnabled !== false;
    this.signalingBitmap = options.signalingBitmap || new Uint8Array(2);
    this.newEphemeral = options.newEphemeral || crypto.generateEphemeral;
    this.randomBytes = options.randomBytes || crypto.randomBytes;
    this.sign = options.sign || ((data) => crypto.sign(credential.privateKey, data));
    this.proprietaryTlv = crypto.proprietaryTlv();
    this.state = State.IDLE;
    this.txn = null;
    this.commandChain = new apdu.CommandChain();
    this.responseChain = new apdu.ResponseChain();
    this.lastReaderStatus = null;
    this.lastControlFlow = null;
    this.lastError = null; // the last ApduError answered (e.g. 6982: the reader's signature did not verify)
    this.lastKind = null; // standard, fast or fallback: what the last transaction was, as this device saw it
  }

  // The reader identifier of the transaction under way (null outside one).
  get currentReaderIdentifier() {
    return this.txn && this.txn.transcript ? this.txn.transcript.readerIdentifier : null;
  }

  selectResponse() {
    return tlv.encode(0x6f, concat(tlv.encode(0x84, EXPEDITED_AID), this.proprietaryTlv));
  }

  // The link went away: forget the selection and the transaction.
  reset() {
    this.txn = null;
    this.commandChain.reset();
    this.responseChain.reset();
    this.state = State.IDLE;
  }

  async process(capdu) {
    try {
      const command = apdu.parseCommand(capdu);
      if (command.ins === apdu.INS_GET_RESPONSE && command.cla === apdu.CLA_ISO) return this.getResponse(command);
      this.responseChain.reset();
      if (command.ins === apdu.INS_SELECT) this.commandChain.reset();
      if (command.chained) this.checkHeader(command);
      const whole = this.commandChain.feed(command);
      if (whole === null) return apdu.status(apdu.SW_OK);
      const name = this.checkHeader(whole);
      return this.responseChain.start(await this[name](whole));
    } catch (error) {
      if (error instanceof LinkDropped) {
        this.reset();
        throw error;
      }
      if (!(error instanceof ApduError)) throw error;
      this.lastError = error;
      this.fail();
      return apdu.status(error.sw);
    }
  }

  checkHeader(command) {
    const baseCla = command.cla & ~apdu.CLA_CHAINING;
    if (baseCla !== apdu.CLA_ISO && baseCla !== apdu.CLA_PROPRIETARY) throw new ApduError(apdu.SW_BAD_CLA);
    const handler = HANDLERS.get(command.ins);
    if (!handler) throw new ApduError(apdu.SW_WRONG_STATE, 'instruction not supported');
    const [name, cla] = handler;
    if (baseCla !== cla || (command.chained && !CHAINABLE.includes(command.ins))) throw new ApduError(apdu.SW_BAD_CLA);
    const [p1, p2] = command.ins === apdu.INS_SELECT ? [0x04, 0x00] : [0x00, 0x00];
    if (command.p1 !== p1 || command.p2 !== p2) throw new ApduError(apdu.SW_BAD_P1P2);
    return name;
  }

  getResponse(command) {
    if (!this.responseChain.pending) throw new ApduError(apdu.SW_WRONG_STATE, 'no answer waiting');
    if (command.p1 !== 0 || command.p2 !== 0) throw new ApduError(apdu.SW_BAD_P1P2);
    return this.responseChain.next(command.le);
  }

  fail() {
    this.txn = null;
    this.commandChain.reset();
    this.responseChain.reset();
    if (this.state !== State.IDLE) this.state = State.SELECTED;
  }

  require(...states) {
    if (!states.includes(this.state)) throw new ApduError(apdu.SW_WRONG_STATE, `not expected in state ${this.state}`);
    return this.txn;
  }

  static fields(data) {
    try {
      return tlv.decodeUnique(data);
    } catch (e) {
      if (e instanceof tlv.TlvError) throw new ApduError(apdu.SW_MALFORMED, e.message);
      throw e;
    }
  }

  static field(fields, tag, length) {
    const value = fields.get(tag);
    if (value === undefined || value.length !== length) throw new ApduError(apdu.SW_MALFORMED, `tag ${tag.toString(16)} missing or not ${length} bytes`);
    return value;
  }

  // --- commands ---------------------------------------------------------------------

  async select(command) {
    this.txn = null;
    if (!equal(command.data, EXPEDITED_AID)) {
      this.state = State.IDLE;
      throw new ApduError(apdu.SW_UNKNOWN_AID);
    }
    this.state = State.SELECTED;
    return this.selectResponse();
  }

  async auth0(command) {
    this.require(State.SELECTED);
    const f = UserDevice.fields(command.data);
    const type = UserDevice.field(f, 0x41, 1)[0];
    const policy = UserDevice.field(f, 0x42, 1)[0];
    const version = UserDevice.field(f, 0x5c, 2);
    const readerEphemeral = UserDevice.field(f, 0x87, crypto.PUBLIC_KEY_LEN);
    const transactionId = UserDevice.field(f, 0x4c, 16);
    const readerIdentifier = UserDevice.field(f, 0x4d, 32);
    if ((type !== TRANSACTION_STANDARD && type !== TRANSACTION_FAST) || !POLICIES.includes(policy)) {
      throw new ApduError(apdu.SW_MALFORMED, 'unknown transaction type or policy');
    }
    try {
      await crypto.checkPublicKey(readerEphemeral);
    } catch (e) {
      throw new ApduError(apdu.SW_MALFORMED, 'reader ephemeral key is not a P-256 point');
    }
    if (!equal(version, crypto.PROTOCOL_VERSION)) throw new ApduError(apdu.SW_CONDITIONS, 'protocol version not supported');

    const ephemeral = await this.newEphemeral();
    const groupKey = this.trusted.get(toHex(readerIdentifier.subarray(0, 16)));
    let transcript = null;
    if (groupKey) {
      transcript = new crypto.Transcript({
        readerGroupPublicKey: groupKey, readerIdentifier, readerEphemeralPublicKey: readerEphemeral,
        deviceEphemeralPublicKey: ephemeral.publicBytes, transactionId, flag: new Uint8Array([type, policy]),
        proprietaryTlv: this.proprietaryTlv, credentialPublicKey: this.credentialPublicKey, protocolVersion: version,
      });
    }
    // An untrusted reader still gets an ordinary-looking answer; AUTH1 drops it.
    this.txn = { ephemeral, transcript, channel: null };
    const answer = tlv.encode(0x86, ephemeral.publicBytes);
    if (type === TRANSACTION_STANDARD) {
      this.state = State.AUTH0_DONE;
      return answer;
    }
    const kpersistent = transcript ? this.kpersistentCache.get(readerIdentifier) : null;
    let cryptogram;
    if (this.fastEnabled && kpersistent) {
      const keys = await crypto.deriveFastKeys(kpersistent, transcript);
      cryptogram = await crypto.sealCryptogram(keys.cryptogramSk, crypto.cryptogramPlaintext(this.signalingBitmap));
      this.txn.channel = await DeviceChannel.fromKeys(keys);
      this.lastKind = 'fast';
      this.state = State.AUTH0_FAST;
    } else {
      // Indistinguishable from a real cryptogram: the reader falls back to AUTH1.
      cryptogram = this.randomBytes(CRYPTOGRAM_LEN);
      this.state = State.AUTH0_DONE;
    }
    return concat(answer, tlv.encode(0x9d, cryptogram));
  }

  async auth1(command) {
    const txn = this.require(State.AUTH0_DONE, State.AUTH0_FAST);
    const f = UserDevice.fields(command.data);
    const mode = UserDevice.field(f, 0x41, 1)[0];
    const readerSignature = UserDevice.field(f, 0x9e, crypto.SIGNATURE_LEN);
    if (mode !== AUTH1_SEND_KEY_SLOT && mode !== AUTH1_SEND_PUBLIC_KEY) throw new ApduError(apdu.SW_MALFORMED, 'unknown AUTH1 command parameters');
    const t = txn.transcript;
    if (!t) throw new LinkDropped('reader group not trusted');
    // No reader certificate (tag 90): the signature must verify under the trusted group key itself.
    if (!(await crypto.verify(t.readerGroupPublicKey, t.signedData(crypto.USAGE_READER), readerSignature))) {
      throw new ApduError(apdu.SW_SECURITY, 'reader signature does not verify');
    }
    const sharedX = await crypto.ecdhSharedX(txn.ephemeral.privateKey, t.readerEphemeralPublicKey);
    const kdh = await crypto.deriveKdh(sharedX, t.transactionId);
    const keys = await crypto.deriveStandardKeys(kdh, t);
    this.kpersistentCache.put(t.readerIdentifier, await crypto.deriveKpersistent(kdh, t));
    const signature = await this.sign(t.signedData(crypto.USAGE_DEVICE));
    const identity = mode === AUTH1_SEND_PUBLIC_KEY
      ? tlv.encode(0x5a, this.credentialPublicKey)
      : tlv.encode(0x4e, await crypto.keySlot(this.credentialPublicKey));
    const plaintext = concat(identity, tlv.encode(0x9e, signature), tlv.encode(0x5e, this.signalingBitmap));
    txn.channel = await DeviceChannel.fromKeys(keys);
    this.lastKind = t.flag[0] === TRANSACTION_FAST ? 'fallback' : 'standard'; // as the reader names it
    const answer = await txn.channel.seal(plaintext);
    this.state = State.SECURE;
    return answer;
  }

  async exchange(command) {
    const txn = this.require(State.AUTH0_FAST, State.SECURE);
    if (command.data.length < 16) throw new ApduError(apdu.SW_MALFORMED, 'EXCHANGE shorter than a GCM tag');
    let plaintext;
    try {
      plaintext = await txn.channel.open(command.data);
    } catch (e) {
      if (e instanceof ChannelExhausted) throw new ApduError(apdu.SW_WRONG_STATE, 'channel counter exhausted');
      if (e instanceof ChannelError) throw new ApduError(apdu.SW_SECURITY, 'EXCHANGE does not authenticate');
      throw e;
    }
    // The reader proved it holds the session keys: the channel is open.
    this.state = State.SECURE;
    let items;
    try {
      items = tlv.decodeAll(plaintext);
    } catch (e) {
      throw new ApduError(apdu.SW_MALFORMED, e.message);
    }
    for (const [tag, value] of items) {
      if (tag === 0x97) {
        if (value.length !== 2) throw new ApduError(apdu.SW_MALFORMED, 'reader status is 2 bytes');
        this.lastReaderStatus = value;
      }
    }
    let reply = new Uint8Array(0);
    if (this.exchangeHandler) {
      try {
        reply = tlv.encodeAll(await this.exchangeHandler(items));
      } catch (e) {
        if (e instanceof tlv.TlvError) throw new ApduError(apdu.SW_MALFORMED, e.message);
        throw e;
      }
    }
    try {
      return await txn.channel.seal(concat(reply, EXCHANGE_STATUS_OK));
    } catch (e) {
      if (e instanceof ChannelExhausted) throw new ApduError(apdu.SW_WRONG_STATE, 'channel counter exhausted');
      throw e;
    }
  }

  async controlFlow(command) {
    if (this.state === State.IDLE) throw new ApduError(apdu.SW_WRONG_STATE);
    const f = UserDevice.fields(command.data);
    const s1 = UserDevice.field(f, 0x41, 1)[0];
    const s2 = UserDevice.field(f, 0x42, 1)[0];
    this.lastControlFlow = [s1, s2];
    this.txn = null;
    this.state = State.SELECTED;
    return new Uint8Array(0);
  }
}
