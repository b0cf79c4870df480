# carkey — the key fob's BLE central: find the car, connect, answer its APDUs over carkey's GATT framing.
# SPDX-License-Identifier: MIT
#
# docs/PROTOCOL.md §2b from the phone's end, on MicroPython's `bluetooth`: an
# active scan for the car's name (from its group id) with carkey's service UUID
# in the scan response; gap_connect; MTU exchange; service and characteristic
# discovery; the indicate characteristic's CCCD (the handle after its value, as
# NimBLE lays a server out) set to indications; the empty "ready" frame; then
# every command frame the car indicates is answered with write requests of at
# most MTU-3 bytes. Every step has a deadline (FobLink.DEADLINES, the board may
# change them), and the whole visit has one more.
#
# A car visited before is not scanned for: its address and the two
# characteristics' handles (FobLink.learned(), kept by the fob between presses)
# let the fob connect at the car's next advertising event and skip discovery.
# Connecting straight to an address saves the scan's advertising event; if the
# car does not answer there within `direct_ms` (it changed its address, or is
# out of range), or the cached handles are refused, the fob scans and discovers
# as for a new car.
#
# The IRQ handler only records and sets a ThreadSafeFlag; the visit task does
# the rest, as in carkey.hw.ble_gatt.

import asyncio
import time
from micropython import const

import bluetooth

from carkey.hw.ble_frame import FrameError, Reassembler, chunk_size, encode
from carkey.hw.ble_ids import INDICATE_UUID, SERVICE_UUID, WRITE_UUID

_IRQ_SCAN_RESULT = const(5)
_IRQ_SCAN_DONE = const(6)
_IRQ_PERIPHERAL_CONNECT = const(7)
_IRQ_PERIPHERAL_DISCONNECT = const(8)
_IRQ_GATTC_SERVICE_RESULT = const(9)
_IRQ_GATTC_SERVICE_DONE = const(10)
_IRQ_GATTC_CHARACTERISTIC_RESULT = const(11)
_IRQ_GATTC_CHARACTERISTIC_DONE = const(12)
_IRQ_GATTC_WRITE_DONE = const(17)
_IRQ_GATTC_INDICATE = const(19)
_IRQ_MTU_EXCHANGED = const(21)

_NO_CONN = const(0xFFFF)  # conn_handle of a connection attempt that failed
_AD_NAME = const(0x09)
_AD_UUID128 = const(0x07)
_MAX_COMMAND = const(261)  # the car chains longer commands
_MAX_ANSWER = const(512)
_WRITE_WITH_RESPONSE = const(1)
_CONN_INTERVAL_MIN_US = const(7500)  # the least BLE allows
_CONN_INTERVAL_MAX_US = const(15000)
_CCCD_INDICATE = b"\x02\x00"
_READY = b"\x00\x00"

# Outcomes of a visit
DONE = "done"  # the car ended the transaction (CONTROL FLOW) or hung up after it
NOT_FOUND = "car-not-found"
CONNECT_FAILED = "connect-failed"
LINK_LOST = "link-lost"
TIMEOUT = "timeout"
DROPPED = "dropped"  # the fob hung up: the car is not one it trusts


class VisitError(Exception):
    def __init__(self, outcome, detail=""):
        super().__init__("%s: %s" % (outcome, detail) if detail else outcome)
        self.outcome = outcome


def _ad_fields(adv):
    # (type, value) of each advertising data structure.
    i = 0
    n = len(adv)
    while i + 1 < n:
        length = adv[i]
        if length == 0 or i + 1 + length > n:
            return
        yield adv[i + 1], adv[i + 2 : i + 1 + length]
        i += 1 + length


class FobLink:
    DEADLINES = {
        "direct_ms": 700,  # connecting to a known address: three of the car's advertising events
        "scan_ms": 3000,  # the car advertises every 200 ms: fifteen chances
        "connect_ms": 2000,
        "setup_ms": 2000,  # MTU, discovery, subscription, ready
        "apdu_ms": 5000,  # from one answer to the next command: the car's crypto runs in between
        "visit_ms": 15000,  # everything
    }

    def __init__(self, ble, deadlines=None):
        self._ble = ble
        self.deadlines = dict(self.DEADLINES)
        if deadlines:
            self.deadlines.update(deadlines)
        self._flag = asyncio.ThreadSafeFlag()
        self._rx = Reassembler(_MAX_COMMAND)
        self._out = bytearray(2 + _MAX_ANSWER)
        self._out_mv = memoryview(self._out)
        self._service = bluetooth.UUID(SERVICE_UUID)
        self._write_uuid = bluetooth.UUID(WRITE_UUID)
        self._indicate_uuid = bluetooth.UUID(INDICATE_UUID)
        self._reset()

    def _reset(self):
        self.conn = None
        self.connected = False
        self.mtu = 23
        self._name = None
        self._named = None  # address advertising the wanted name
        self._uuid_at = None  # address whose scan response names carkey's service
        self.found = None  # (addr_type, addr)
        self._scan_done = False
        self._connect_failed = False
        self._mtu_done = False
        self._range = None
        self._services_done = False
        self.write_handle = None
        self.indicate_handle = None
        self._chars_done = False
        self._write_status = None
        self._error = None
        self.apdus = 0
        self._known = None  # (addr_type, addr, write handle, indicate handle) from an earlier visit
        self.direct = False  # this visit connected straight to the known address

    # --- IRQ side: record and flag ---------------------------------------------------

    def _irq(self, event, data):
        if event == _IRQ_SCAN_RESULT:
            addr_type, addr, _, _, adv = data
            if self.found is None:
                self._on_advert(addr_type, bytes(addr), adv)
        elif event == _IRQ_SCAN_DONE:
            self._scan_done = True
        elif event == _IRQ_PERIPHERAL_CONNECT:
            self.conn = data[0]
            self.connected = True
        elif event == _IRQ_PERIPHERAL_DISCONNECT:
            if data[0] == _NO_CONN:
                self._connect_failed = True
            elif data[0] == self.conn:
                self.connected = False
        elif event == _IRQ_MTU_EXCHANGED:
            if data[0] == self.conn:
                self.mtu = data[1]
                self._mtu_done = True
        elif event == _IRQ_GATTC_SERVICE_RESULT:
            if data[0] == self.conn and data[3] == self._service:
                self._range = (data[1], data[2])
        elif event == _IRQ_GATTC_SERVICE_DONE:
            self._services_done = True
        elif event == _IRQ_GATTC_CHARACTERISTIC_RESULT:
            if data[0] == self.conn:
                if data[4] == self._write_uuid:
                    self.write_handle = data[2]
                elif data[4] == self._indicate_uuid:
                    self.indicate_handle = data[2]
        elif event == _IRQ_GATTC_CHARACTERISTIC_DONE:
            self._chars_done = True
        elif event == _IRQ_GATTC_WRITE_DONE:
            if data[0] == self.conn:
                self._write_status = data[2]
        elif event == _IRQ_GATTC_INDICATE:
            if data[0] == self.conn and data[1] == self.indicate_handle and self._error is None:
                try:
                    self._rx.feed(data[2])
                except FrameError as e:
                    self._error = e
        else:
            return
        self._flag.set()

    def _on_advert(self, addr_type, addr, adv):
        for kind, value in _ad_fields(adv):
            if kind == _AD_NAME and bytes(value) == self._name:
                self._named = addr
            elif kind == _AD_UUID128 and bytes(value) == bytes(self._service):
                self._uuid_at = addr
        if self._named is not None and self._named == self._uuid_at:
            self.found = (addr_type, addr)
            self._ble.gap_scan(None)

    # --- task side ------------------------------------------------------------------------

    async def _until(self, cond, ms, outcome, what):
        deadline = time.ticks_add(time.ticks_ms(), ms)
        while not cond():
            if self.conn is not None and not self.connected:
                raise VisitError(LINK_LOST, what)
            left = time.ticks_diff(deadline, time.ticks_ms())
            if left <= 0:
                raise VisitError(outcome, what)
            try:
                await asyncio.wait_for_ms(self._flag.wait(), left)
            except asyncio.TimeoutError:
                pass

    def _start_scan(self):
        self._ble.gap_scan(self.deadlines["scan_ms"], 30000, 30000, True)

    async def find(self, name, started=False):
        # Active scan until an advertiser shows the name and the service; (addr_type, addr).
        self._name = name.encode() if isinstance(name, str) else bytes(name)
        ms = self.deadlines["scan_ms"]
        if not started:
            self._start_scan()
        try:
            await self._until(lambda: self.found is not None or self._scan_done, ms + 500, NOT_FOUND, "scan")
        finally:
            if self.found is None and not self._scan_done:
                self._ble.gap_scan(None)
        if self.found is None:
            raise VisitError(NOT_FOUND, "no car advertising as %s" % name)
        return self.found

    def _start_connect(self, ms):
        addr_type, addr = self.found
        self._connect_failed = False
        # A short connection interval: each APDU costs about two connection events.
        self._ble.gap_connect(addr_type, addr, ms, _CONN_INTERVAL_MIN_US, _CONN_INTERVAL_MAX_US)

    async def connect(self, started_ms=None):
        ms = self.deadlines["connect_ms"] if started_ms is None else started_ms
        if started_ms is None:
            self._start_connect(ms)
        try:
            await self._until(lambda: self.connected or self._connect_failed, ms + 500, CONNECT_FAILED, "connect")
        except VisitError:
            try:
                self._ble.gap_connect(None)  # the stack did not give up on its own: cancel the attempt
            except (OSError, TypeError, ValueError):
                pass
            raise
        if not self.connected:
            raise VisitError(CONNECT_FAILED, "the car did not accept the connection")

    async def _write(self, handle, data, ms):
        self._write_status = None
        self._ble.gattc_write(self.conn, handle, data, _WRITE_WITH_RESPONSE)
        await self._until(lambda: self._write_status is not None, ms, TIMEOUT, "write")
        if self._write_status != 0:
            raise VisitError(LINK_LOST, "write refused (status %d)" % self._write_status)

    async def setup(self):
        ms = self.deadlines["setup_ms"]
        ble = self._ble
        ble.gattc_exchange_mtu(self.conn)
        await self._until(lambda: self._mtu_done, ms, TIMEOUT, "MTU exchange")
        if self.direct:
            self.write_handle, self.indicate_handle = self._known[2], self._known[3]
            try:
                await self._write(self.indicate_handle + 1, _CCCD_INDICATE, ms)
                return
            except VisitError as e:
                if e.outcome != LINK_LOST or not self.connected:
                    raise
                self.write_handle = self.indicate_handle = None  # refused: the car's table changed
        ble.gattc_discover_services(self.conn)
        await self._until(lambda: self._services_done, ms, TIMEOUT, "service discovery")
        if self._range is None:
            raise VisitError(CONNECT_FAILED, "no carkey service on this device")
        ble.gattc_discover_characteristics(self.conn, self._range[0], self._range[1])
        await self._until(lambda: self._chars_done, ms, TIMEOUT, "characteristic discovery")
        if self.write_handle is None or self.indicate_handle is None:
            raise VisitError(CONNECT_FAILED, "the carkey service lacks its characteristics")
        await self._write(self.indicate_handle + 1, _CCCD_INDICATE, ms)

    async def serve(self, device):
        # Answers the car's commands until CONTROL FLOW or a hang-up. Returns DONE.
        from carkey.protocol.errors import DropLink  # the device has loaded it: not before the radio starts

        ms = self.deadlines["apdu_ms"]
        while True:
            try:
                await self._until(lambda: self._rx.complete() or self._error is not None, ms, TIMEOUT, "command")
            except VisitError as e:
                if e.outcome == LINK_LOST and device.txn is not None and device.txn.control_flow is not None:
                    return DONE
                raise
            if self._error is not None:
                raise VisitError(LINK_LOST, "garbled command frame: %s" % self._error)
            capdu = bytes(self._rx.payload())
            self._rx.reset()
            self.apdus += 1
            try:
                rapdu = await device.process(capdu)
            except DropLink:
                raise VisitError(DROPPED, "the car is not one this fob trusts")
            total = encode(self._out, rapdu, _MAX_ANSWER)
            step = chunk_size(self.mtu)
            off = 0
            while off < total:
                end = min(off + step, total)
                await self._write(self.write_handle, self._out_mv[off:end], ms)
                off = end
            if device.txn is not None and device.txn.control_flow is not None:
                return DONE

    async def disconnect(self):
        if self.connected:
            try:
                self._ble.gap_disconnect(self.conn)
            except OSError:
                pass
            try:
                await self._until(lambda: not self.connected, 1000, TIMEOUT, "disconnect")
            except VisitError:
                pass

    def begin(self, name, known=None):
        # Starts the radio's part at once and returns: a connection to the known
        # car (known: learned() of an earlier visit) or a scan for it. The fob
        # calls this before it loads the rest of its code, so the radio works
        # while the interpreter imports.
        self._reset()
        self._name = name.encode() if isinstance(name, str) else bytes(name)
        self._ble.irq(self._irq)
        if known is not None:
            self._known = known
            self.found = (known[0], bytes(known[1]))
            self.direct = True
            self._start_connect(self.deadlines["direct_ms"])
        else:
            self._start_scan()

    async def open(self, device, name=None):
        # Everything before the car starts talking: find, connect, set up (begin()
        # first, or name here). The fob runs this from the moment the button goes
        # down, while the gesture is still being told apart; an ephemeral key is
        # made meanwhile if the fob holds none made ahead.
        if name is not None:
            self.begin(name)
        prep = asyncio.create_task(device.prepare())
        try:
            await asyncio.wait_for_ms(self._open(), self.deadlines["visit_ms"])
        except asyncio.TimeoutError:
            raise VisitError(TIMEOUT, "finding and connecting took too long") from None
        finally:
            await prep

    async def _open(self):
        if self.direct:
            try:
                await self.connect(self.deadlines["direct_ms"])
            except VisitError as e:
                if e.outcome != CONNECT_FAILED:
                    raise
                self.direct = False  # not there: look for it
                self.found = None
                await self.find(self._name)
                await self.connect()
        else:
            await self.find(self._name, True)
            await self.connect()
        await self.setup()

    def learned(self):
        # (addr_type, addr, write handle, indicate handle) of the car this visit
        # reached, for the next visit's begin(); None before setup.
        if self.found is None or self.write_handle is None or self.indicate_handle is None:
            return None
        return self.found[0], bytes(self.found[1]), self.write_handle, self.indicate_handle

    async def run(self, device):
        # "Ready": the car starts the transaction; answer it to the end. DONE or VisitError.
        try:
            return await asyncio.wait_for_ms(self._run(device), self.deadlines["visit_ms"])
        except asyncio.TimeoutError:
            raise VisitError(TIMEOUT, "the transaction took too long") from None

    async def _run(self, device):
        self._rx.reset()
        await self._write(self.write_handle, _READY, self.deadlines["setup_ms"])
        return await self.serve(device)

    async def close(self, device):
        await self.disconnect()
        device.reset()

    async def visit(self, device, name):
        # One whole visit; returns DONE or raises VisitError(outcome).
        try:
            await self.open(device, name)
            return await self.run(device)
        finally:
            await self.close(device)
