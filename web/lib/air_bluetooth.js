// carkey web key — a Web-Bluetooth-shaped stand-in that reaches a car on carkey's virtual air over a WebSocket.
// SPDX-License-Identifier: MIT
//
// For development and tests without a radio: `carkey phone web --air HOST:PORT`
// tunnels the WebSocket at /air to the virtual air hub (docs/VIRTUAL-RADIO.md), and
// this module speaks the hub's central role: scan, connect, MTU exchange, discovery,
// CCCD write, writes with response, indications (confirmed at once, as a phone's
// stack does). It offers the part of navigator.bluetooth the page uses:
// requestDevice (filters on name / namePrefix and services, matched against the
// advertising and scan-response data), device.gatt.connect/disconnect,
// getPrimaryService, getCharacteristic, writeValueWithResponse, startNotifications,
// 'characteristicvaluechanged' and 'gattserverdisconnected'.
//
// Differences from a browser: no chooser (the first matching car is taken), and a
// write longer than MTU − 3 is refused here (a browser would split it into a long
// write, which carkey's framing never needs).

import { bytes, concat, fromHex, toHex } from './bytes.js';

const HELLO = 0x01, SCAN = 0x04, CONNECT = 0x05, DISCONNECT = 0x06, DISCOVER = 0x07, TABLE = 0x08, ATT = 0x10;
const CONNECTED = 0x81, DISCONNECTED = 0x82, CONNECT_FAILED = 0x83, ADV_REPORT = 0x84, SCAN_DONE = 0x85;
const CENTRAL = 1;
const ATT_ERROR = 0x01, ATT_MTU_REQ = 0x02, ATT_MTU_RSP = 0x03, ATT_WRITE_REQ = 0x12, ATT_WRITE_RSP = 0x13;
const ATT_NOTIFICATION = 0x1b, ATT_INDICATION = 0x1d, ATT_CONFIRM = 0x1e;
const FLAG_NOTIFY = 0x0010, FLAG_INDICATE = 0x0020;
const REASON_REMOTE_USER = 0x13;
const PHONE_MTU = 517; // what Chrome on Android asks for
const TIMEOUT_MS = 5000;

export function uuidLe(uuid) {
  return fromHex(uuid.replace(/-/g, '')).reverse();
}

function adFields(data) {
  const out = [];
  for (let i = 0; i + 1 < data.length;) {
    const n = data[i];
    if (n === 0 || i + 1 + n > data.length) break;
    out.push([data[i + 1], data.subarray(i + 2, i + 1 + n)]);
    i += 1 + n;
  }
  return out;
}

function advertisedName(fields) {
  const f = fields.find(([type]) => type === 0x09) || fields.find(([type]) => type === 0x08);
  return f ? new TextDecoder().decode(f[1]) : null;
}

function advertisedServices(fields) {
  const out = [];
  for (const [type, value] of fields) {
    if (type === 0x06 || type === 0x07) for (let i = 0; i + 16 <= value.length; i += 16) out.push(toHex(value.subarray(i, i + 16)));
  }
  return out;
}

function matches(filter, name, services) {
  if (filter.name !== undefined && filter.name !== name) return false;
  if (filter.namePrefix !== undefined && !(name || '').startsWith(filter.namePrefix)) return false;
  for (const uuid of filter.services || []) if (!services.includes(toHex(uuidLe(uuid)))) return false;
  return true;
}

function networkError(message) {
  const e = new Error(message);
  e.name = 'NetworkError';
  return e;
}

// One node on the air: a WebSocket carrying the hub's length-prefixed messages.
class AirNode {
  constructor(socket) {
    this.socket = socket;
    this.buf = new Uint8Array(0);
    this.waiters = [];
    this.listeners = [];
    this.closed = false;
  }

  static open(url) {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(url);
      socket.binaryType = 'arraybuffer';
      const node = new AirNode(socket);
      socket.onopen = () => {
        const addr = globalThis.crypto.getRandomValues(new Uint8Array(6));
        addr[5] |= 0xc0; // a random static address
        node.send(HELLO, concat(new Uint8Array([CENTRAL]), addr));
        resolve(node);
      };
      socket.onerror = () => reject(networkError(`cannot reach the virtual air at ${url}`));
      socket.onmessage = (event) => node.onData(new Uint8Array(event.data));
      socket.onclose = () => {
        node.closed = true;
        for (const listener of node.listeners) listener([DISCONNECTED, 0xff, 0xff, 0x08]);
        for (const w of node.waiters.splice(0)) w.reject(networkError('the virtual air closed'));
      };
    });
  }

  send(kind, payload = new Uint8Array(0)) {
    const n = payload.length + 1;
    this.socket.send(concat(new Uint8Array([n >> 8, n & 0xff, kind]), payload));
  }

  onData(data) {
    this.buf = concat(this.buf, data);
    while (this.buf.length >= 2) {
      const n = (this.buf[0] << 8) | this.buf[1];
      if (this.buf.length < 2 + n) break;
      const message = this.buf.slice(2, 2 + n);
      this.buf = this.buf.slice(2 + n);
      this.dispatch(message);
    }
  }

  dispatch(message) {
    const i = this.waiters.findIndex((w) => w.want(message));
    if (i >= 0) {
      const [w] = this.waiters.splice(i, 1);
      clearTimeout(w.timer);
      w.resolve(message);
      return;
    }
    for (const listener of this.listeners) listener(message);
  }

  // The next message accepted by want(message).
  next(want, timeoutMs = TIMEOUT_MS) {
    if (this.closed) return Promise.reject(networkError('the virtual air closed'));
    return new Promise((resolve, reject) => {
      const w = { want, resolve, reject };
      w.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(networkError('timed out waiting for the car'));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  close() {
    this.socket.close();
  }
}

const conn16 = (m) => (m[1] << 8) | m[2];

class AirCharacteristic extends EventTarget {
  constructor(server, uuid, handle, properties) {
    super();
    this.server = server;
    this.uuid = uuid;
    this.handle = handle;
    this.properties = { write: Boolean(properties & 0x0008), indicate: Boolean(properties & FLAG_INDICATE), notify: Boolean(properties & FLAG_NOTIFY) };
    this.value = null;
  }

  async writeValueWithResponse(value) {
    const data = bytes(value);
    const server = this.server;
    if (!server.connected) throw networkError('GATT server is disconnected');
    if (data.length > server.mtu - 3) throw networkError(`write of ${data.length} bytes does not fit MTU ${server.mtu}`);
    const handle = new Uint8Array([this.handle & 0xff, this.handle >> 8]);
    const reply = server.attReply([ATT_WRITE_RSP, ATT_ERROR]);
    server.att(concat(new Uint8Array([ATT_WRITE_REQ]), handle, data));
    const pdu = await reply;
    if (pdu[0] === ATT_ERROR) throw networkError(`GATT write refused (ATT error 0x${pdu[4].toString(16)})`);
  }

  async startNotifications() {
    const cccd = this.server.characteristicAt(this.handle + 1, this.uuid);
    const value = new Uint8Array([this.properties.indicate ? 0x02 : 0x01, 0x00]);
    await cccd.writeValueWithResponse(value);
    this.server.subscribed.set(this.handle, this);
    return this;
  }

  deliver(value) {
    this.value = new DataView(value.buffer, value.byteOffset, value.byteLength);
    this.dispatchEvent(new Event('characteristicvaluechanged'));
  }
}

class AirService {
  constructor(server, uuid) {
    this.server = server;
    this.uuid = uuid;
  }

  async getCharacteristic(uuid) {
    const entry = this.server.table.get(toHex(uuidLe(uuid)));
    if (!entry) throw networkError(`no characteristic ${uuid}`);
    return new AirCharacteristic(this.server, uuid, entry.handle, entry.properties);
  }
}

class AirServer {
  constructor(device) {
    this.device = device;
    this.connected = false;
    this.subscribed = new Map();
  }

  att(pdu) {
    this.node.send(ATT, concat(new Uint8Array([this.conn >> 8, this.conn & 0xff]), pdu));
  }

  attReply(ops) {
    const conn = this.conn;
    return this.node.next((m) => m[0] === ATT && conn16(m) === conn && ops.includes(m[3])).then((m) => m.slice(3));
  }

  characteristicAt(handle, uuid) {
    return new AirCharacteristic(this, uuid, handle, 0);
  }

  async connect() {
    if (this.connected) return this;
    const node = await AirNode.open(this.device.url);
    this.node = node;
    try {
      node.send(CONNECT, concat(this.device.address, new Uint8Array([TIMEOUT_MS >> 8, TIMEOUT_MS & 0xff])));
      const m = await node.next((x) => x[0] === CONNECTED || x[0] === CONNECT_FAILED, 2 * TIMEOUT_MS);
      if (m[0] === CONNECT_FAILED) throw networkError('connection to the car failed');
      this.conn = conn16(m);
      this.connected = true;
      this.mtu = 23;
      node.listeners.push((x) => this.onMessage(x));
      const reply = this.attReply([ATT_MTU_RSP, ATT_ERROR]);
      this.att(new Uint8Array([ATT_MTU_REQ, PHONE_MTU & 0xff, PHONE_MTU >> 8]));
      const pdu = await reply;
      if (pdu[0] === ATT_MTU_RSP) this.mtu = Math.max(23, Math.min(PHONE_MTU, pdu[1] | (pdu[2] << 8)));
      const table = node.next((x) => x[0] === TABLE && conn16(x) === this.conn);
      node.send(DISCOVER, new Uint8Array([this.conn >> 8, this.conn & 0xff]));
      const t = await table;
      this.table = new Map();
      for (let i = 3; i < t.length;) {
        const handle = (t[i] << 8) | t[i + 1];
        const properties = (t[i + 2] << 8) | t[i + 3];
        const n = t[i + 4];
        this.table.set(toHex(t.subarray(i + 5, i + 5 + n)), { handle, properties });
        i += 5 + n;
      }
      return this;
    } catch (e) {
      this.connected = false;
      node.close();
      throw e;
    }
  }

  onMessage(m) {
    if (m[0] === DISCONNECTED && (conn16(m) === this.conn || m[1] === 0xff)) {
      this.gone();
    } else if (m[0] === ATT && conn16(m) === this.conn && (m[3] === ATT_INDICATION || m[3] === ATT_NOTIFICATION)) {
      const handle = m[4] | (m[5] << 8);
      if (m[3] === ATT_INDICATION) this.att(new Uint8Array([ATT_CONFIRM]));
      const characteristic = this.subscribed.get(handle);
      if (characteristic) characteristic.deliver(m.slice(6));
    }
  }

  gone() {
    if (!this.connected) return;
    this.connected = false;
    this.subscribed.clear();
    this.node.close();
    this.device.dispatchEvent(new Event('gattserverdisconnected'));
  }

  disconnect() {
    if (!this.connected) return;
    this.node.send(DISCONNECT, new Uint8Array([this.conn >> 8, this.conn & 0xff, REASON_REMOTE_USER]));
    this.gone();
  }

  async getPrimaryService(uuid) {
    if (!this.connected) throw networkError('GATT server is disconnected');
    if (!this.table.has(toHex(uuidLe(uuid)))) throw networkError(`no service ${uuid}`);
    return new AirService(this, uuid);
  }
}

class AirDevice extends EventTarget {
  constructor(url, address, name) {
    super();
    this.url = url;
    this.address = address;
    this.id = toHex(address);
    this.name = name;
    this.gatt = new AirServer(this);
  }
}

// navigator.bluetooth's shape over the virtual air reached at `url` (ws://host:port/air).
export function airBluetooth(url) {
  const known = new Map();
  return {
    async requestDevice(options) {
      const filters = options.filters || [];
      const node = await AirNode.open(url);
      try {
        const deadline = Date.now() + TIMEOUT_MS;
        while (Date.now() < deadline) {
          const reports = [];
          const done = new Promise((resolve) => {
            node.listeners.push((m) => {
              if (m[0] === ADV_REPORT) reports.push(m);
              else if (m[0] === SCAN_DONE) resolve();
            });
          });
          node.send(SCAN);
          await done;
          node.listeners.length = 0;
          for (const m of reports) {
            const address = m.slice(2, 8);
            const n = m[10];
            const fields = adFields(concat(m.subarray(11, 11 + n), m.subarray(11 + n)));
            const name = advertisedName(fields);
            if (m[9] && filters.some((f) => matches(f, name, advertisedServices(fields)))) {
              const device = new AirDevice(url, address, name);
              known.set(device.id, device);
              return device;
            }
          }
          await new Promise((r) => setTimeout(r, 50));
        }
        const e = new Error('no car matching the filter is advertising');
        e.name = 'NotFoundError';
        throw e;
      } finally {
        node.close();
      }
    },
    async getDevices() {
      return [...known.values()];
    },
  };
}
