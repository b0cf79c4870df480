# carkey — virtual board: a `bluetooth` module for the Unix port, backed by the virtual air.
# SPDX-License-Identifier: MIT
#
# The firmware imports `bluetooth` and cannot tell this module from the real one
# for what it uses: the GATT server and peripheral role of MicroPython's API, its
# IRQ event tuples (addresses as memoryviews), the 20-byte default attribute
# buffer and writes cut to it as NimBLE does, the 23-byte ATT MTU until the
# central exchanges a larger one, indications cut to MTU−3 and one at a time per
# connection with _IRQ_GATTS_INDICATE_DONE, advertising stopped by a connection,
# and MicroPython's ESP32 connection limit. Errors are OSError with an errno.
#
# The radio is a TCP connection to carkey_host.virtual_air (docs/VIRTUAL-RADIO.md);
# AIR (or the CARKEY_AIR environment variable, HOST:PORT) says where. Events are
# read by an asyncio task started by active(True), so the IRQ handler runs inside
# the event loop between tasks, as the scheduler runs it on a board. The one
# difference: nothing is delivered while the event loop is not running.
# The observer role (gap_scan) gives RSSI of advertisers for proximity hints: one
# report per advertiser per scan interval. The central role (gap_connect,
# gattc_discover_services/characteristics, gattc_exchange_mtu, gattc_write,
# indications and notifications in) serves the key fob; a node joins the air as
# a central when AIR_ROLE (or CARKEY_AIR_ROLE) is "central", as the hub wants to
# know at HELLO. L2CAP is not provided.

import asyncio
import errno
import os
import select
import socket
import struct
import sys
import time
from micropython import const

FLAG_READ = const(0x0002)
FLAG_WRITE_NO_RESPONSE = const(0x0004)
FLAG_WRITE = const(0x0008)
FLAG_NOTIFY = const(0x0010)
FLAG_INDICATE = const(0x0020)

_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_GATTS_WRITE = const(3)
_IRQ_GATTS_INDICATE_DONE = const(20)
_IRQ_MTU_EXCHANGED = const(21)
_IRQ_SCAN_RESULT = const(5)
_IRQ_SCAN_DONE = const(6)
_IRQ_PERIPHERAL_DISCONNECT = const(8)
_IRQ_GATTC_WRITE_DONE = const(17)
_ADV_IND = const(0x00)
_ADV_NONCONN_IND = const(0x03)
_SCAN_RSP = const(0x04)

MAX_CONNECTIONS = const(4)  # CONFIG_BT_NIMBLE_MAX_CONNECTIONS of MicroPython's ESP32 BLE build
_DEFAULT_MTU = const(23)
_MAX_MTU = const(517)
_DEFAULT_BUFFER = const(20)
_RX_BUFFER = const(1024)  # the longest air message: an ATT PDU at MTU 517 and its header
_STATUS_NOT_CONNECTED = const(7)  # BLE_HS_ENOTCONN, as NimBLE reports an indication cut by a disconnect

# Virtual air messages (docs/VIRTUAL-RADIO.md): [length 2 BE][type][fields].
_M_HELLO = const(0x01)
_M_ADVERTISE = const(0x02)
_M_ADV_STOP = const(0x03)
_M_SCAN = const(0x04)
_M_DISCONNECT = const(0x06)
_M_DISCOVER = const(0x07)
_M_TABLE = const(0x08)
_M_ATT = const(0x10)
_M_CONNECTED = const(0x81)
_M_CONNECT_FAILED = const(0x83)
_M_DISCONNECTED = const(0x82)
_M_ADV_REPORT = const(0x84)
_M_SCAN_DONE = const(0x85)

# ATT opcodes (Bluetooth Core, Vol 3 Part F).
_ATT_ERROR = const(0x01)
_ATT_MTU_REQ = const(0x02)
_ATT_MTU_RSP = const(0x03)
_ATT_WRITE_REQ = const(0x12)
_ATT_WRITE_RSP = const(0x13)
_ATT_WRITE_CMD = const(0x52)
_ATT_NOTIFICATION = const(0x1B)
_ATT_INDICATION = const(0x1D)
_ATT_CONFIRM = const(0x1E)
_ATT_E_INVALID_HANDLE = const(0x01)
_ATT_E_WRITE_NOT_PERMITTED = const(0x03)
_ATT_E_REQUEST_NOT_SUPPORTED = const(0x06)
_ATT_E_INVALID_LENGTH = const(0x0D)

_HCI_LOCAL_HOST_TERMINATED = const(0x16)

AIR = None  # (host, port); None: CARKEY_AIR or 127.0.0.1:7300
AIR_ROLE = None  # "central" or "peripheral"; None: CARKEY_AIR_ROLE or peripheral


class UUID:
    # 16-bit or 128-bit UUID; bytes(uuid) is little-endian, as on the board.
    def __init__(self, value):
        if isinstance(value, UUID):
            self._b = value._b
        elif isinstance(value, int):
            if not 0 <= value <= 0xFFFF:
                raise ValueError("invalid UUID")
            self._b = struct.pack("<H", value)
        elif isinstance(value, str):
            h = value.replace("-", "")
            if len(h) != 32:
                raise ValueError("invalid UUID")
            self._b = bytes(reversed(bytes.fromhex(h)))
        else:
            b = bytes(value)
            if len(b) not in (2, 16):
                raise ValueError("invalid UUID")
            self._b = b

    def __bytes__(self):
        return self._b

    def __eq__(self, other):
        return isinstance(other, UUID) and other._b == self._b

    def __hash__(self):
        return hash(self._b)

    def __len__(self):
        return len(self._b)

    def __getitem__(self, i):
        return self._b[i]

    def __repr__(self):
        if len(self._b) == 2:
            return "UUID(0x%04x)" % struct.unpack("<H", self._b)[0]
        h = bytes(reversed(self._b)).hex()
        return "UUID('%s-%s-%s-%s-%s')" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])


class _Attr:
    def __init__(self, flags, uuid, cccd=False):
        self.flags = flags
        self.uuid = uuid
        self.value = b""
        self.size = _DEFAULT_BUFFER
        self.append = False
        self.cccd = cccd


class _Conn:
    def __init__(self, handle, addr_type, addr):
        self.handle = handle
        self.addr_type = addr_type
        self.addr = addr
        self.mtu = _DEFAULT_MTU
        self.indicating = 0  # value handle of the indication awaiting confirmation
        self.central = False  # this node is the central of the connection (gap_connect)
        self.table = None  # the server's attribute table, once discovered
        self.writing = 0  # value handle of the write request awaiting its response
        self.mtu_asked = False
        self.want = None  # a discovery waiting for the table


def _air_address():
    if AIR is not None:
        return AIR
    spec = os.getenv("CARKEY_AIR") or "127.0.0.1:7300"
    host, _, port = spec.rpartition(":")
    return host, int(port)


class BLE:
    _instance = None

    def __new__(cls):
        # The real BLE() returns one singleton object.
        if BLE._instance is None:
            BLE._instance = object.__new__(cls)
            BLE._instance._init()
        return BLE._instance

    def __init__(self):
        pass

    def _init(self):
        self._active = False
        self._central = False
        self._connecting = None
        self._sock = None
        self._task = None
        self._rx = None
        self._scan_task = None
        self._scan_active = False
        self._scan_round = asyncio.Event()
        self.bad_messages = 0
        self._handler = None
        self._name = "MPY NIMBLE"
        self._mtu = _DEFAULT_MTU
        self._addr = bytes(6)
        self._attrs = {}
        self._services = []
        self._conns = {}
        self._advertising = False
        self._adv = b""
        self._resp = b""

    # --- configuration -------------------------------------------------------------

    def active(self, *args):
        if args:
            on = bool(args[0])
            if on and not self._active:
                self._open()
            elif not on and self._active:
                self._close()
        return self._active

    def _check(self):
        if not self._active:
            raise OSError(errno.EPERM)

    def config(self, *args, **kwargs):
        if args:
            if len(args) != 1 or kwargs:
                raise TypeError("must query one param")
            name = args[0]
            if name == "mac":
                self._check()
                return (0, self._addr)
            if name == "gap_name":
                return self._name.encode()
            if name == "mtu":
                return self._mtu
            raise ValueError("unknown config param")
        for name, value in kwargs.items():
            if name == "gap_name":
                self._name = value if isinstance(value, str) else bytes(value).decode()
            elif name == "mtu":
                if not _DEFAULT_MTU <= value <= _MAX_MTU:
                    raise OSError(errno.EINVAL)
                self._mtu = value
            elif name in ("rxbuf", "addr_mode", "bond", "mitm", "io", "le_secure"):
                pass
            else:
                raise ValueError("unknown config param")

    def irq(self, handler):
        self._handler = handler

    # --- GAP ---------------------------------------------------------------------------

    def gap_advertise(self, interval_us, adv_data=None, *, resp_data=None, connectable=True):
        self._check()
        if interval_us is None:
            self._advertising = False
            self._send(bytes((_M_ADV_STOP,)))
            return
        if adv_data is not None:
            self._adv = bytes(adv_data)
        if resp_data is not None:
            self._resp = bytes(resp_data)
        if len(self._adv) > 31 or len(self._resp) > 31:
            raise OSError(errno.EINVAL)
        if connectable and len(self._conns) >= MAX_CONNECTIONS:
            # NimBLE will not advertise connectable with no connection to spare.
            raise OSError(errno.ENOMEM)
        self._advertising = True
        self._send(bytes((_M_ADVERTISE, 1 if connectable else 0, len(self._adv))) + self._adv + self._resp)

    def gap_scan(self, duration_ms, interval_us=1280000, window_us=11250, active=False):
        self._check()
        if self._scan_task is not None:
            self._scan_task.cancel()
            self._scan_task = None
            if duration_ms is None:
                self._scan_stopped()
        if duration_ms is None:
            return
        if duration_ms < 0 or interval_us <= 0 or window_us <= 0 or window_us > interval_us:
            raise OSError(errno.EINVAL)
        self._scan_active = bool(active)
        self._scan_task = asyncio.create_task(self._scan(duration_ms, interval_us // 1000))

    def _scan_stopped(self):
        # _IRQ_SCAN_DONE comes from the event loop, not from inside gap_scan().
        async def done():
            self._irq(_IRQ_SCAN_DONE, ())

        asyncio.create_task(done())

    async def _scan(self, duration_ms, interval_ms):
        start = time.ticks_ms()
        try:
            while True:
                self._scan_round.clear()
                self._send(bytes((_M_SCAN,)))
                await self._scan_round.wait()
                left = duration_ms - time.ticks_diff(time.ticks_ms(), start) if duration_ms else interval_ms
                if left <= 0:
                    break
                await asyncio.sleep_ms(min(left, interval_ms))
                if duration_ms and time.ticks_diff(time.ticks_ms(), start) >= duration_ms:
                    break
        except asyncio.CancelledError:
            return
        self._scan_task = None
        self._irq(_IRQ_SCAN_DONE, ())

    def _on_adv_report(self, msg):
        # [addr type][addr 6][rssi][connectable][adv len][adv][resp]
        addr = bytes(msg[2:8])
        rssi = msg[8] - 256 if msg[8] > 127 else msg[8]
        n = msg[10]
        adv = bytes(msg[11 : 11 + n])
        resp = bytes(msg[11 + n :])
        kind = _ADV_IND if msg[9] else _ADV_NONCONN_IND
        self._irq(_IRQ_SCAN_RESULT, (msg[1], memoryview(addr), kind, rssi, memoryview(adv)))
        if self._scan_active and resp:
            self._irq(_IRQ_SCAN_RESULT, (msg[1], memoryview(addr), _SCAN_RSP, rssi, memoryview(resp)))

    def gap_disconnect(self, conn_handle):
        self._check()
        if conn_handle not in self._conns:
            return False
        self._send(struct.pack(">BHB", _M_DISCONNECT, conn_handle, 0x13))
        return True

    # --- GATT server ------------------------------------------------------------------

    def gatts_register_services(self, services):
        self._check()
        self._attrs = {}
        self._services = []
        handle = 10  # NimBLE's own GAP and GATT services come first
        out = []
        for service in services:
            suuid, chars = UUID(service[0]), service[1]
            shandle = handle
            handle += 1
            entries = []
            values = []
            for ch in chars:
                cuuid, flags = UUID(ch[0]), ch[1]
                handle += 1  # characteristic declaration
                value = handle
                self._attrs[value] = _Attr(flags, cuuid)
                values.append(value)
                entries.append((value, flags, cuuid))
                handle += 1
                if flags & (FLAG_NOTIFY | FLAG_INDICATE):
                    self._attrs[handle] = _Attr(FLAG_READ | FLAG_WRITE, UUID(0x2902), cccd=True)
                    self._attrs[handle].value = b"\x00\x00"
                    handle += 1
                for dsc in ch[2] if len(ch) > 2 else ():
                    self._attrs[handle] = _Attr(dsc[1], UUID(dsc[0]))
                    values.append(handle)
                    handle += 1
            self._services.append((shandle, suuid, entries))
            out.append(tuple(values))
        return out

    def _attr(self, value_handle):
        a = self._attrs.get(value_handle)
        if a is None:
            raise OSError(errno.EINVAL)
        return a

    def gatts_read(self, value_handle):
        self._check()
        a = self._attr(value_handle)
        v = a.value
        if a.append:
            a.value = b""
        return v

    def gatts_write(self, value_handle, data, send_update=False):
        self._check()
        a = self._attr(value_handle)
        a.value = bytes(data)
        if len(a.value) > a.size:
            a.size = len(a.value)  # a local write grows the buffer
        if send_update:
            for conn in self._conns:
                self._indicate_or_notify(conn, value_handle, a.value, a.flags & FLAG_INDICATE)

    def gatts_set_buffer(self, value_handle, length, append=False):
        self._check()
        a = self._attr(value_handle)
        a.size = length
        a.append = bool(append)
        if len(a.value) > length:
            a.value = a.value[:length]

    def gatts_notify(self, conn_handle, value_handle, data=None):
        self._check()
        a = self._attr(value_handle)
        self._indicate_or_notify(conn_handle, value_handle, a.value if data is None else bytes(data), False)

    def gatts_indicate(self, conn_handle, value_handle, data=None):
        self._check()
        a = self._attr(value_handle)
        self._indicate_or_notify(conn_handle, value_handle, a.value if data is None else bytes(data), True)

    def _indicate_or_notify(self, conn_handle, value_handle, value, indicate):
        conn = self._conns.get(conn_handle)
        if conn is None:
            raise OSError(errno.ENOTCONN)
        if indicate and conn.indicating:
            # ATT allows one unconfirmed indication per connection.
            raise OSError(errno.EALREADY)
        value = value[: conn.mtu - 3]  # the stack cuts what does not fit the MTU
        op = _ATT_INDICATION if indicate else 0x1B
        if indicate:
            conn.indicating = value_handle
        self._att(conn_handle, struct.pack("<BH", op, value_handle) + value)

    # --- the air -----------------------------------------------------------------------

    def _open(self):
        host, port = _air_address()
        sock = socket.socket()
        try:
            sock.connect(socket.getaddrinfo(host, port)[0][-1])
        except OSError:
            sock.close()
            raise OSError(errno.ENODEV)  # no radio to bring up
        self._addr = bytes(b | 0xC0 if i == 5 else b for i, b in enumerate(os.urandom(6)))  # random static
        if self._rx is None:
            self._rx = bytearray(_RX_BUFFER)  # made once, like the stack's own buffers
        sock.setblocking(False)
        self._sock = sock
        self._poll = select.poll()
        self._poll.register(sock, select.POLLOUT)
        self._active = True
        self._conns = {}
        role = AIR_ROLE or os.getenv("CARKEY_AIR_ROLE") or "peripheral"
        self._central = role == "central"
        self._connecting = None
        self._send(bytes((_M_HELLO, 1 if self._central else 0)) + self._addr)
        self._task = asyncio.create_task(self._pump())

    def _close(self):
        self._active = False
        self._connecting = None
        if self._scan_task is not None:
            self._scan_task.cancel()
            self._scan_task = None
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._conns = {}
        self._advertising = False

    def _send(self, msg):
        # HCI commands return at once on a board; a local socket takes a
        # message as fast, and waits for room only when the hub lags.
        data = struct.pack(">H", len(msg)) + msg
        mv = memoryview(data)
        while mv:
            n = self._sock.write(mv)
            if n is None:
                self._poll.poll(1000)
                continue
            mv = mv[n:]

    def _att(self, conn_handle, pdu):
        self._send(struct.pack(">BH", _M_ATT, conn_handle) + pdu)

    def _irq(self, event, data):
        # As on a board: an exception in the handler is printed and the stack goes on.
        if self._handler is None:
            return None
        try:
            return self._handler(event, data)
        except Exception as e:
            print("Unhandled exception in IRQ callback handler")
            sys.print_exception(e)
            return None

    async def _pump(self):
        # Messages land in one buffer made once; each is handled in place.
        stream = asyncio.StreamReader(self._sock)
        buf = self._rx
        mv = memoryview(buf)
        fill = 0
        while self._active:
            n = await stream.readinto(mv[fill:])
            if not n:
                # The air went away: every connection is lost.
                for h in list(self._conns):
                    self._lost(h, 0x08)
                self._active = False
                return
            fill += n
            start = 0
            while fill - start >= 2:
                n = (buf[start] << 8) | buf[start + 1]
                if fill - start < 2 + n:
                    break
                try:
                    self._dispatch(mv[start + 2 : start + 2 + n])
                except (IndexError, ValueError):
                    self.bad_messages += 1  # a malformed message from the hub changes nothing
                start += 2 + n
            if start:
                mv[: fill - start] = mv[start:fill]
                fill -= start

    def _lost(self, h, reason):
        conn = self._conns.pop(h, None)
        if conn is None:
            return
        if conn.central:
            if conn.writing:
                self._irq(_IRQ_GATTC_WRITE_DONE, (h, conn.writing, _STATUS_NOT_CONNECTED))
            self._irq(_IRQ_PERIPHERAL_DISCONNECT, (h, conn.addr_type, memoryview(conn.addr)))
            return
        if conn.indicating:
            self._irq(_IRQ_GATTS_INDICATE_DONE, (h, conn.indicating, _STATUS_NOT_CONNECTED))
        self._irq(_IRQ_CENTRAL_DISCONNECT, (h, conn.addr_type, memoryview(conn.addr)))

    def _dispatch(self, msg):
        kind = msg[0]
        if kind == _M_ATT:
            h = (msg[1] << 8) | msg[2]
            conn = self._conns.get(h)
            if conn is not None and len(msg) > 3:
                if conn.central:
                    _central().on_att_client(self, conn, msg[3:])
                else:
                    self._on_att(conn, msg[3:])
        elif kind == _M_CONNECTED and self._central:
            _central().on_connected(self, msg)
        elif kind == _M_CONNECT_FAILED:
            if self._central:  # only a central has a connection attempt to fail
                _central().on_connect_failed(self, msg)
        elif kind == _M_TABLE:
            if self._central:  # only a central asks for a server's table
                _central().on_table(self, msg)
        elif kind == _M_CONNECTED:
            h = (msg[1] << 8) | msg[2]
            addr = bytes(msg[4:10])
            self._advertising = False  # a connection ends advertising
            if len(self._conns) >= MAX_CONNECTIONS:
                self._send(struct.pack(">BHB", _M_DISCONNECT, h, 0x0D))  # no resources
                return
            self._conns[h] = _Conn(h, msg[3], addr)
            self._irq(_IRQ_CENTRAL_CONNECT, (h, msg[3], memoryview(addr)))
        elif kind == _M_DISCONNECTED:
            self._lost((msg[1] << 8) | msg[2], msg[3])
        elif kind == _M_ADV_REPORT:
            if self._scan_task is not None:
                self._on_adv_report(msg)
        elif kind == _M_SCAN_DONE:
            self._scan_round.set()
        elif kind == _M_DISCOVER:
            self._send_table((msg[1] << 8) | msg[2])

    def _send_table(self, h):
        # The service discovery NimBLE answers by itself: no IRQ.
        out = [struct.pack(">BH", _M_TABLE, h)]
        for shandle, suuid, entries in self._services:
            out.append(struct.pack(">HHB", shandle, 0, len(suuid)) + bytes(suuid))
            for value, flags, cuuid in entries:
                out.append(struct.pack(">HHB", value, flags, len(cuuid)) + bytes(cuuid))
        self._send(b"".join(out))

    def _att_error(self, conn, op, handle, code):
        self._att(conn.handle, struct.pack("<BBHB", _ATT_ERROR, op, handle, code))

    def _on_att(self, conn, pdu):
        op = pdu[0]
        if op == _ATT_MTU_REQ and len(pdu) == 3:
            client = pdu[1] | (pdu[2] << 8)
            self._att(conn.handle, struct.pack("<BH", _ATT_MTU_RSP, self._mtu))
            conn.mtu = max(_DEFAULT_MTU, min(client, self._mtu))
            self._irq(_IRQ_MTU_EXCHANGED, (conn.handle, conn.mtu))
        elif op == _ATT_CONFIRM:
            handle = conn.indicating
            if handle:
                conn.indicating = 0
                self._irq(_IRQ_GATTS_INDICATE_DONE, (conn.handle, handle, 0))
        elif (op == _ATT_WRITE_REQ or op == _ATT_WRITE_CMD) and len(pdu) >= 3:
            handle = pdu[1] | (pdu[2] << 8)
            value = bytes(pdu[3:])
            a = self._attrs.get(handle)
            if a is None:
                if op == _ATT_WRITE_REQ:
                    self._att_error(conn, op, handle, _ATT_E_INVALID_HANDLE)
                return
            need = FLAG_WRITE if op == _ATT_WRITE_REQ else FLAG_WRITE_NO_RESPONSE
            if not a.flags & need:
                if op == _ATT_WRITE_REQ:
                    self._att_error(conn, op, handle, _ATT_E_WRITE_NOT_PERMITTED)
                return
            if len(pdu) > conn.mtu:
                if op == _ATT_WRITE_REQ:
                    self._att_error(conn, op, handle, _ATT_E_INVALID_LENGTH)
                return
            if a.cccd:
                a.value = value[:2]
            else:
                # NimBLE copies at most the buffer size: the rest is cut silently.
                if a.append:
                    a.value = (a.value + value)[: a.size]
                else:
                    a.value = value[: a.size]
                # ESP32 runs the IRQ synchronously, before the write response goes out.
                self._irq(_IRQ_GATTS_WRITE, (conn.handle, handle))
            if op == _ATT_WRITE_REQ:
                self._att(conn.handle, bytes((_ATT_WRITE_RSP,)))
        elif op & 0x40 == 0 and op not in (_ATT_ERROR, _ATT_MTU_RSP, _ATT_WRITE_RSP):
            self._att_error(conn, op, 0, _ATT_E_REQUEST_NOT_SUPPORTED)

    # --- GAP central and GATT client (the key fob) -------------------------------------
    # In virtual_hw/ble_central.py, loaded when this node joins the air as a central:
    # a car (a peripheral) never holds it, as on a board, where all of this is C.

    def gap_connect(self, addr_type, addr, scan_duration_ms=2000, min_conn_interval_us=None,
                    max_conn_interval_us=None):
        self._check()
        if not self._central:
            raise OSError(errno.EPERM)  # this node joined the air as a peripheral
        return _central().gap_connect(self, addr_type, addr, scan_duration_ms)

    def gattc_exchange_mtu(self, conn_handle):
        return _central().gattc_exchange_mtu(self, conn_handle)

    def gattc_discover_services(self, conn_handle, uuid=None):
        return _central().gattc_discover_services(self, conn_handle, uuid)

    def gattc_discover_characteristics(self, conn_handle, start_handle, end_handle, uuid=None):
        return _central().gattc_discover_characteristics(self, conn_handle, start_handle, end_handle, uuid)

    def gattc_write(self, conn_handle, value_handle, data, mode=0):
        return _central().gattc_write(self, conn_handle, value_handle, data, mode)


def _central():
    import ble_central

    return ble_central
