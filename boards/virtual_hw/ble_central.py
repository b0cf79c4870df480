# carkey — virtual board: the GAP central and GATT client role of the virtual `bluetooth`.
# SPDX-License-Identifier: MIT
#
# bluetooth.BLE's central calls land here (the key fob's role): gap_connect, the
# gattc_* calls and the air messages only a central receives. Loaded by the first of
# them, so a car, a peripheral, never holds this code, as a board holds none of
# bluetooth's (it is C there). Behaviour as described in bluetooth.py.

import asyncio
import errno
import struct
from micropython import const

from bluetooth import UUID, _Conn

# Numbers of the air and of ATT, as bluetooth.py has them (its const()s are folded
# there and cannot be imported).
_IRQ_MTU_EXCHANGED = const(21)
_IRQ_PERIPHERAL_CONNECT = const(7)
_IRQ_PERIPHERAL_DISCONNECT = const(8)
_IRQ_GATTC_SERVICE_RESULT = const(9)
_IRQ_GATTC_SERVICE_DONE = const(10)
_IRQ_GATTC_CHARACTERISTIC_RESULT = const(11)
_IRQ_GATTC_CHARACTERISTIC_DONE = const(12)
_IRQ_GATTC_WRITE_DONE = const(17)
_IRQ_GATTC_NOTIFY = const(18)
_IRQ_GATTC_INDICATE = const(19)
_DEFAULT_MTU = const(23)
_M_CONNECT = const(0x05)
_M_DISCONNECT = const(0x06)
_M_DISCOVER = const(0x07)
_ATT_ERROR = const(0x01)
_ATT_MTU_REQ = const(0x02)
_ATT_MTU_RSP = const(0x03)
_ATT_WRITE_REQ = const(0x12)
_ATT_WRITE_RSP = const(0x13)
_ATT_WRITE_CMD = const(0x52)
_ATT_NOTIFICATION = const(0x1B)
_ATT_INDICATION = const(0x1D)
_ATT_CONFIRM = const(0x1E)
_NO_CONN = const(0xFFFF)  # conn_handle of _IRQ_PERIPHERAL_DISCONNECT for a failed gap_connect


def gap_connect(ble, addr_type, addr, scan_duration_ms):
    # bluetooth.BLE.gap_connect checked that the radio is on and this node a central.
    if ble._connecting is not None:
        raise OSError(errno.EALREADY)
    addr = bytes(addr)
    if len(addr) != 6:
        raise ValueError("address is 6 bytes")
    wait = max(0, min(0xFFFF, int(scan_duration_ms)))
    ble._connecting = (addr_type, addr)
    ble._send(bytes((_M_CONNECT,)) + addr + struct.pack(">H", wait))
    return True


def on_connected(ble, msg):
    h = (msg[1] << 8) | msg[2]
    addr = bytes(msg[4:10])
    pending = ble._connecting
    if pending is None or pending[1] != addr:
        ble._send(struct.pack(">BHB", _M_DISCONNECT, h, 0x13))  # nothing asked for it
        return
    ble._connecting = None
    conn = _Conn(h, pending[0], addr)
    conn.central = True
    ble._conns[h] = conn
    ble._irq(_IRQ_PERIPHERAL_CONNECT, (h, pending[0], memoryview(addr)))


def on_connect_failed(ble, msg):
    pending = ble._connecting
    if pending is None or pending[1] != bytes(msg[1:7]):
        return
    ble._connecting = None
    # As the ESP32 port reports a connection attempt that timed out.
    ble._irq(_IRQ_PERIPHERAL_DISCONNECT, (_NO_CONN, pending[0], memoryview(pending[1])))


def _client(ble, conn_handle):
    ble._check()
    conn = ble._conns.get(conn_handle)
    if conn is None or not conn.central:
        raise OSError(errno.ENOTCONN)
    return conn


def _later(ble, events):
    # GATT client results arrive from the stack later, never inside the call.
    async def deliver():
        for event, data in events:
            ble._irq(event, data)

    asyncio.create_task(deliver())


def gattc_exchange_mtu(ble, conn_handle):
    conn = _client(ble, conn_handle)
    if conn.mtu_asked:
        raise OSError(errno.EALREADY)
    conn.mtu_asked = True
    ble._att(conn_handle, struct.pack("<BH", _ATT_MTU_REQ, ble._mtu))


def gattc_discover_services(ble, conn_handle, uuid=None):
    conn = _client(ble, conn_handle)
    if conn.table is None:
        ble._send(struct.pack(">BH", _M_DISCOVER, conn_handle))
        conn.want = ("services", uuid)
    else:
        _later(ble, _service_events(conn, uuid))


def gattc_discover_characteristics(ble, conn_handle, start_handle, end_handle, uuid=None):
    conn = _client(ble, conn_handle)
    events = []
    for handle, flags, u in conn.table or ():
        if flags and start_handle <= handle <= end_handle and (uuid is None or UUID(uuid) == u):
            events.append((_IRQ_GATTC_CHARACTERISTIC_RESULT, (conn_handle, end_handle, handle, flags, u)))
    events.append((_IRQ_GATTC_CHARACTERISTIC_DONE, (conn_handle, 0)))
    _later(ble, events)


def _service_events(conn, uuid):
    events = []
    table = conn.table or []
    for i, (handle, flags, u) in enumerate(table):
        if flags:
            continue
        end = 0xFFFF
        for later, f, _ in table[i + 1 :]:
            if not f:
                end = later - 1
                break
        if uuid is None or UUID(uuid) == u:
            events.append((_IRQ_GATTC_SERVICE_RESULT, (conn.handle, handle, end, u)))
    events.append((_IRQ_GATTC_SERVICE_DONE, (conn.handle, 0)))
    return events


def on_table(ble, msg):
    h = (msg[1] << 8) | msg[2]
    conn = ble._conns.get(h)
    if conn is None or not conn.central:
        return
    table = []
    i = 3
    while i + 5 <= len(msg):
        handle, flags, n = struct.unpack(">HHB", msg[i : i + 5])
        table.append((handle, flags, UUID(bytes(msg[i + 5 : i + 5 + n]))))
        i += 5 + n
    conn.table = table
    want = conn.want
    if want is not None and want[0] == "services":
        conn.want = None
        for event, data in _service_events(conn, want[1]):
            ble._irq(event, data)


def gattc_write(ble, conn_handle, value_handle, data, mode=0):
    conn = _client(ble, conn_handle)
    data = bytes(data)
    if len(data) > conn.mtu - 3:
        raise OSError(errno.EINVAL)  # longer than one ATT write at this MTU
    if mode == 1:
        if conn.writing:
            raise OSError(errno.EALREADY)  # one request at a time per connection
        conn.writing = value_handle
        ble._att(conn_handle, struct.pack("<BH", _ATT_WRITE_REQ, value_handle) + data)
    else:
        ble._att(conn_handle, struct.pack("<BH", _ATT_WRITE_CMD, value_handle) + data)


def on_att_client(ble, conn, pdu):
    op = pdu[0]
    if op == _ATT_MTU_RSP and len(pdu) == 3:
        conn.mtu = max(_DEFAULT_MTU, min(ble._mtu, pdu[1] | (pdu[2] << 8)))
        ble._irq(_IRQ_MTU_EXCHANGED, (conn.handle, conn.mtu))
    elif op == _ATT_WRITE_RSP or (op == _ATT_ERROR and len(pdu) == 5 and pdu[1] == _ATT_WRITE_REQ):
        handle = conn.writing
        if handle:
            conn.writing = 0
            ble._irq(_IRQ_GATTC_WRITE_DONE, (conn.handle, handle, 0 if op == _ATT_WRITE_RSP else pdu[4]))
    elif op == _ATT_INDICATION and len(pdu) >= 3:
        # The stack confirms an indication by itself, before the application sees it.
        ble._att(conn.handle, bytes((_ATT_CONFIRM,)))
        ble._irq(_IRQ_GATTC_INDICATE, (conn.handle, pdu[1] | (pdu[2] << 8), memoryview(bytes(pdu[3:]))))
    elif op == _ATT_NOTIFICATION and len(pdu) >= 3:
        ble._irq(_IRQ_GATTC_NOTIFY, (conn.handle, pdu[1] | (pdu[2] << 8), memoryview(bytes(pdu[3:]))))
    elif op == _ATT_MTU_REQ and len(pdu) == 3:
        # A server may ask too: answer as NimBLE does.
        ble._att(conn.handle, struct.pack("<BH", _ATT_MTU_RSP, ble._mtu))
        conn.mtu = max(_DEFAULT_MTU, min(pdu[1] | (pdu[2] << 8), ble._mtu))
        ble._irq(_IRQ_MTU_EXCHANGED, (conn.handle, conn.mtu))
