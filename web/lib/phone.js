// carkey web key — the phone key: a user device that speaks carkey's envelope (commands, shares, results).
// SPDX-License-Identifier: MIT
//
// Like the host's simulated phone (carkey_host.phone): after the car's hello the
// phone presents the share document it holds for that car (until the car accepts it)
// and its command request; it collects the command and document results. A phone
// that wants drive-enable sends no fast cryptogram, so the car runs a standard
// transaction (drive-enable needs one).

import { toHex } from './bytes.js';
import * as env from './envelope.js';
import { UserDevice } from './user_device.js';

export class KeyPhone {
  /**
   * credential: {privateKey, publicBytes}; cars: [{groupId: hex, readerPublicKey: Uint8Array,
   * shareDocument?: Uint8Array}]; kpersistentCache; deviceOptions: passed to UserDevice (tests).
   */
  constructor(credential, cars, kpersistentCache, deviceOptions = {}) {
    this.cars = new Map(cars.map((car) => [car.groupId, car]));
    this.device = new UserDevice(credential, [...this.cars].map(([g, car]) => [g, car.readerPublicKey]), {
      kpersistentCache, exchangeHandler: (items) => this.onExchange(items), ...deviceOptions,
    });
    this.transaction = null;
  }

  // Start a visit: `commands` = [[name, argument bytes]] sent one after another (at most 4).
  begin(commands) {
    this.device.reset();
    this.device.lastReaderStatus = this.device.lastControlFlow = this.device.lastKind = this.device.lastError = null;
    this.device.fastEnabled = !commands.some(([name]) => name === 'drive');
    this.pending = [...commands];
    this.transaction = { results: [], documents: [], carState: null, sharePresentedTo: null, readerGroup: null };
  }

  onExchange(items) {
    const inner = env.openEnvelope(items);
    const txn = this.transaction;
    const reply = [];
    const readerId = this.device.currentReaderIdentifier;
    if (readerId) txn.readerGroup = toHex(readerId.subarray(0, 16));
    if (inner.some(([tag]) => tag === env.HELLO_VERSION)) {
      // A carkey reader opened the conversation: present what this phone carries for it.
      const car = readerId && this.cars.get(toHex(readerId.subarray(0, 16)));
      if (car && car.shareDocument) {
        reply.push([env.SHARE_DOCUMENT, car.shareDocument]);
        txn.sharePresentedTo = car.groupId;
      }
    }
    for (const [tag, value] of inner) {
      if (tag === env.CAR_STATE) txn.carState = env.parseCarState(value);
      else if (tag === env.COMMAND_RESULT) {
        const result = env.parseResult(value);
        txn.results.push(result);
        txn.carState = result.state;
      } else if (tag === env.DOCUMENT_RESULT) txn.documents.push(env.parseDocumentResult(value));
    }
    if (this.pending.length) {
      const [name, argument] = this.pending.shift();
      reply.push(env.commandRequest(name, argument));
    }
    return reply.length ? [env.envelope(reply)] : [];
  }

  // What the visit came to, once the link is gone.
  finish() {
    const txn = this.transaction;
    txn.controlFlow = this.device.lastControlFlow;
    txn.readerStatus = this.device.lastReaderStatus;
    txn.kind = this.device.lastKind;
    txn.deviceError = this.device.lastError ? this.device.lastError.sw : null;
    txn.granted = Boolean(txn.controlFlow && txn.controlFlow[0] === 1);
    txn.shareAccepted = txn.sharePresentedTo !== null && txn.documents.some(([tag, code]) => tag === env.SHARE_TAG && code === 0);
    if (txn.shareAccepted) delete this.cars.get(txn.sharePresentedTo).shareDocument;
    this.device.reset();
    this.pending = [];
    return txn;
  }
}
