# carkey — BLE GATT peripheral: one APDU link per connected phone over MicroPython's `bluetooth`.
# SPDX-License-Identifier: MIT
#
# docs/PROTOCOL.md §2b. The car is the GATT server and starts every exchange:
# a command APDU goes to the phone as indications on the indicate
# characteristic, the phone answers with writes (with response) to the write
# characteristic; both carry frames of carkey.hw.ble_frame in chunks of MTU−3.
# A phone first writes the empty frame 00 00 ("ready": subscribed); accept()
# hands out its link only then, and drops a phone that stays silent.
#
# The IRQ handler only records (a write's bytes into the link's own buffer,
# a status, a flag) and sets a ThreadSafeFlag; tasks do the rest. Each
# BleLink has `async transceive(capdu, timeout_ms)`, so Reader.transact runs
# over it unchanged, and `async close()` to drop the phone (after an
# authentication failure). Links are made once, one per connection slot.

import asyncio
import bluetooth
import time
from micropython import const

from carkey.hw.ble_frame import FrameError, Reassembler, chunk_size, encode
from carkey.hw.ble_ids import INDICATE_UUID, PREFERRED_MTU, SERVICE_UUID, WRITE_UUID, device_name  # noqa: F401
from carkey.protocol.errors import AuthenticationFailed, LinkError, LinkTimeout

_IRQ_CENTRAL_CONNECT = const(1)  # (conn_handle, addr_type, addr)
_IRQ_CENTRAL_DISCONNECT = const(2)  # (conn_handle, addr_type, addr)
_IRQ_GATTS_WRITE = const(3)  # (conn_handle, attr_handle)
_IRQ_GATTS_INDICATE_DONE = const(20)  # (conn_handle, value_handle, status)
_IRQ_MTU_EXCHANGED = const(21)  # (conn_handle, mtu)
_IRQ_SCAN_RESULT = const(5)  # (addr_type, addr, adv_type, rssi, adv_data)
_IRQ_SCAN_DONE = const(6)  # ()

_FLAG_WRITE = const(0x0008)
_FLAG_INDICATE = const(0x0020)

# CONFIG_BT_NIMBLE_MAX_CONNECTIONS in MicroPython's ESP32 BLE build (sdkconfig.ble).
MAX_CONNECTIONS = const(4)
_MAX_COMMAND = const(261)  # header 4 + Lc + 255 data + Le: the reader chains longer ones
_MAX_ANSWER = const(512)  # as the TCP link: longer answers come in 61xx parts
_ADV_INTERVAL_US = const(200_000)
_CHUNK_TIMEOUT_MS = const(1000)  # an indication's confirmation, or the gap between answer chunks
_READY_TIMEOUT_MS = const(5000)  # connect to "ready": MTU exchange, discovery, subscription

_AD_FLAGS = const(0x01)
_AD_NAME = const(0x09)  # complete local name
_AD_UUID128 = const(0x07)  # complete list of 128-bit service UUIDs


def advertising_payload(name):
    # Flags (LE general discoverable, no BR/EDR) and the name; at most 31 bytes.
    n = name.encode()
    if 3 + 2 + len(n) > 31:
        raise ValueError("name too long to advertise")
    return b"\x02\x01\x06" + bytes((len(n) + 1, _AD_NAME)) + n


def scan_response_payload():
    # The service UUID goes in the scan response: 18 bytes, no room beside the name.
    return bytes((17, _AD_UUID128)) + bytes(bluetooth.UUID(SERVICE_UUID))


class BleLink:
    # One connection slot. `conn` is None while the slot is free. The command and
    # answer buffers are the server's, one pair for every slot (BleServer.exchange).

    def __init__(self, server):
        self._server = server
        self._flag = asyncio.ThreadSafeFlag()
        self.addr = bytearray(6)
        self.conn = None
        self.connected = False
        # Handed out by accept() and not yet closed: the slot stays reserved even
        # after a disconnect, so a late transceive of an old transaction can never
        # reach the next phone that gets this slot.
        self.held = False
        self._reset()

    def _reset(self):
        self.mtu = 23
        self.ready = False  # the phone wrote the empty frame: subscribed, commands may go
        self.since = 0  # ticks_ms of the connection
        self._waiting = False
        self._ind_done = False
        self._ind_status = 0
        self._error = None
        self.stray_writes = 0  # writes while no answer was due: dropped
        self.indications = 0
        self.writes = 0
        self.bytes_out = 0
        self.bytes_in = 0

    # --- IRQ side: record and flag -------------------------------------------------

    def _irq_connect(self, conn, addr):
        self._reset()
        self.conn = conn
        self.connected = True
        self.since = time.ticks_ms()
        self.addr[:] = addr

    def _irq_disconnect(self):
        self.connected = False
        self.conn = None
        self._flag.set()

    def _irq_write(self, data):
        self.writes += 1
        self.bytes_in += len(data)
        if not self.ready:
            # Until it is subscribed a phone sends nothing but the empty frame.
            if data == b"\x00\x00":
                self.ready = True
                self._server._flag.set()
            else:
                self.stray_writes += 1
            return
        if not self._waiting or self._error is not None:
            self.stray_writes += 1
            return
        try:
            self._server.rx.feed(data)  # this link holds the server's buffers while waiting
        except FrameError as e:
            self._error = e
        self._flag.set()

    def _irq_indicate_done(self, status):
        self._ind_status = status
        self._ind_done = True
        self._flag.set()

    # --- task side --------------------------------------------------------------------

    async def _wait(self, ms):
        # One flag wait of at most `ms`; False on timeout. The flag is only set
        # by this link's IRQ records, so callers re-check their condition.
        if ms <= 0:
            return False
        try:
            await asyncio.wait_for_ms(self._flag.wait(), ms)
        except asyncio.TimeoutError:
            return False
        return True

    def _gone(self):
        if not self.connected:
            raise LinkError("phone disconnected")

    async def _fail(self, exc):
        self._drop()
        raise exc

    async def transceive(self, capdu, timeout_ms):
        # One C-APDU out, its R-APDU back (fresh bytes). `timeout_ms` bounds the
        # whole exchange; each indication confirmation and each gap between
        # answer chunks also has the per-chunk timeout. Any failure drops the
        # phone: a late answer must never pair with the next command. One link
        # at a time uses the server's buffers: another phone's exchange waits.
        self._gone()
        async with self._server.exchange:
            return await self._transceive(capdu, timeout_ms)

    async def _transceive(self, capdu, timeout_ms):
        self._gone()
        server = self._server
        ble = server.ble
        handle = server.indicate_handle
        total = encode(server.out, capdu, _MAX_COMMAND)
        out_mv = server.out_mv
        step = chunk_size(self.mtu)
        deadline = time.ticks_add(time.ticks_ms(), timeout_ms)
        chunk_ms = server.chunk_timeout_ms
        server.rx.reset()
        self._error = None
        self._flag.clear()
        self._waiting = True
        try:
            off = 0
            while off < total:
                end = off + step if off + step < total else total
                self._ind_done = False
                try:
                    ble.gatts_indicate(self.conn, handle, out_mv[off:end])
                except OSError as e:
                    await self._fail(LinkError("indication refused: %s" % e))
                self.indications += 1
                self.bytes_out += end - off
                while not self._ind_done:
                    self._gone()
                    left = time.ticks_diff(deadline, time.ticks_ms())
                    if not await self._wait(min(left, chunk_ms)):
                        self._gone()
                        if not self._ind_done:
                            await self._fail(LinkTimeout("indication not confirmed"))
                if self._ind_status != 0:
                    await self._fail(LinkError("indication failed (status %d)" % self._ind_status))
                off = end
            rx = server.rx
            while not rx.complete():
                if self._error is not None:
                    await self._fail(self._error)
                self._gone()
                left = time.ticks_diff(deadline, time.ticks_ms())
                # Before the first chunk the phone is thinking (AUTH0 may take
                # long); after it, chunks come back to back.
                if not await self._wait(min(left, chunk_ms) if rx.started() else left):
                    self._gone()
                    if self._error is None and not rx.complete():
                        if rx.started():
                            await self._fail(LinkTimeout("answer stalled at %d of %d bytes" % (rx.got, rx.want or 2)))
                        await self._fail(LinkTimeout("no answer within %d ms" % timeout_ms))
            if self._error is not None:
                await self._fail(self._error)
            return bytes(rx.payload())
        finally:
            self._waiting = False

    def _drop(self):
        if self.connected:
            self.connected = False
            try:
                self._server.ble.gap_disconnect(self.conn)
            except OSError:
                pass
            self._flag.set()

    async def close(self):
        # Drop the phone and give the slot back; it is reused once the stack
        # reports the disconnect.
        self._drop()
        if self.held:
            self.held = False
            self._server._adv_due = True  # the slot may be free already
            self._server._flag.set()


class BleServer:
    # The GATT service, advertising and the connection slots.

    def __init__(self, name, ble=None, max_connections=MAX_CONNECTIONS, mtu=PREFERRED_MTU,
                 chunk_timeout_ms=_CHUNK_TIMEOUT_MS, adv_interval_us=_ADV_INTERVAL_US,
                 ready_timeout_ms=_READY_TIMEOUT_MS):
        if not 1 <= max_connections <= MAX_CONNECTIONS:
            raise ValueError("max_connections outside 1..%d" % MAX_CONNECTIONS)
        chunk_size(mtu)
        self.ble = ble if ble is not None else bluetooth.BLE()
        self.name = name
        self.mtu = mtu
        self.chunk_timeout_ms = chunk_timeout_ms
        self.ready_timeout_ms = ready_timeout_ms
        self.adv_interval_us = adv_interval_us
        self.links = [BleLink(self) for _ in range(max_connections)]
        # One command buffer and one answer buffer for every slot, made once: the
        # car answers one phone at a time anyway (a tap holds the reader), so the
        # slots' exchanges take turns through `exchange` instead of each slot
        # holding 777 bytes of its own.
        self.rx = Reassembler(_MAX_ANSWER)
        self.out = bytearray(2 + _MAX_COMMAND)
        self.out_mv = memoryview(self.out)
        self.exchange = asyncio.Lock()
        self._flag = asyncio.ThreadSafeFlag()
        self._accepted = [True] * max_connections  # a connected slot not yet handed out is False
        self._adv_due = False
        self.advertising = False
        self.refused = 0  # connections beyond the slots, dropped at once
        self.scan_listener = None  # gets scan results (carkey.hw.ble_watch): one IRQ handler per radio
        self.write_handle = self.indicate_handle = None
        self._adv = advertising_payload(name)
        self._resp = scan_response_payload()

    def start(self):
        ble = self.ble
        ble.active(True)
        ble.config(gap_name=self.name, mtu=self.mtu)
        service = (
            bluetooth.UUID(SERVICE_UUID),
            (
                (bluetooth.UUID(WRITE_UUID), _FLAG_WRITE),
                (bluetooth.UUID(INDICATE_UUID), _FLAG_INDICATE),
            ),
        )
        ((self.write_handle, self.indicate_handle),) = ble.gatts_register_services((service,))
        # A write is at most MTU−3 bytes; the default 20-byte buffer would cut it.
        ble.gatts_set_buffer(self.write_handle, chunk_size(self.mtu))
        ble.irq(self._irq)
        self._advertise()

    def stop(self):
        self.ble.gap_advertise(None)
        self.advertising = False
        for link in self.links:
            if link.connected:
                self.ble.gap_disconnect(link.conn)

    def _link(self, conn):
        for link in self.links:
            if link.conn == conn:
                return link
        return None

    def _irq(self, event, data):
        if event == _IRQ_GATTS_WRITE:
            conn, handle = data
            link = self._link(conn)
            if link is not None and handle == self.write_handle:
                link._irq_write(self.ble.gatts_read(handle))
        elif event == _IRQ_GATTS_INDICATE_DONE:
            link = self._link(data[0])
            if link is not None:
                link._irq_indicate_done(data[2])
        elif event == _IRQ_MTU_EXCHANGED:
            link = self._link(data[0])
            if link is not None:
                link.mtu = data[1]
        elif event == _IRQ_CENTRAL_CONNECT:
            conn, _, addr = data
            self.advertising = False  # the controller stops advertising on a connection
            for i, link in enumerate(self.links):
                if link.conn is None and not link.held:
                    link._irq_connect(conn, addr)
                    self._accepted[i] = False
                    break
            else:
                self.refused += 1
                self.ble.gap_disconnect(conn)
            self._adv_due = True
            self._flag.set()
        elif event == _IRQ_CENTRAL_DISCONNECT:
            link = self._link(data[0])
            if link is not None:
                link._irq_disconnect()
            self._adv_due = True
            self._flag.set()
        elif event == _IRQ_SCAN_RESULT:
            if self.scan_listener is not None:
                self.scan_listener._irq_result(data[1], data[3])
        elif event == _IRQ_SCAN_DONE:
            if self.scan_listener is not None:
                self.scan_listener._irq_done()

    def free_slots(self):
        n = 0
        for link in self.links:
            if link.conn is None and not link.held:
                n += 1
        return n

    def _advertise(self):
        self._adv_due = False
        if self.free_slots() == 0:
            return
        try:
            self.ble.gap_advertise(self.adv_interval_us, self._adv, resp_data=self._resp, connectable=True)
            self.advertising = True
        except OSError:
            # The controller refuses while it has no connection to spare
            # (a disconnect it has not reported yet); the next event retries.
            self.advertising = False

    async def accept(self):
        # The next phone that connected and said it is ready; re-advertises as
        # slots free up. A central that holds a slot without getting ready
        # within ready_timeout_ms is dropped: it must not lock phones out.
        while True:
            if self._adv_due:
                self._advertise()
            wait = -1
            for i, link in enumerate(self.links):
                if self._accepted[i]:
                    continue
                if not link.connected:
                    self._accepted[i] = True
                elif link.ready:
                    self._accepted[i] = True
                    link.held = True
                    return link
                else:
                    left = self.ready_timeout_ms - time.ticks_diff(time.ticks_ms(), link.since)
                    if left <= 0:
                        self._accepted[i] = True
                        await link.close()
                    elif wait < 0 or left < wait:
                        wait = left
            if wait < 0:
                await self._flag.wait()
            else:
                try:
                    await asyncio.wait_for_ms(self._flag.wait(), wait)
                except asyncio.TimeoutError:
                    pass

    async def serve(self, handler):
        # Runs handler(link) in its own task for every phone, forever.
        while True:
            link = await self.accept()
            asyncio.create_task(self._run(handler, link))

    async def _run(self, handler, link):
        try:
            await handler(link)
        finally:
            await link.close()


async def transact(reader, link, credentials, fast=None, **kw):
    # Reader.transact over a BLE link; an authentication failure drops the
    # phone, so it cannot try again on the same connection.
    try:
        return await reader.transact(link, credentials, fast, **kw)
    except AuthenticationFailed:
        await link.close()
        raise
