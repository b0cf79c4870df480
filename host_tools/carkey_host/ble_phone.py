"""The phone's BLE client: a GATT central answering the car's APDUs (docs/PROTOCOL.md §2b).

The car (GATT server) sends each command APDU as a frame — 2-byte big-endian length,
then the APDU — in indications of at most MTU−3 bytes on the indicate
characteristic; the phone answers with the frame of the response APDU in writes
(with response) of at most MTU−3 bytes to the write characteristic.

`Framer`/`Reassembler` and `PhoneLink` (frames in, user-device answers out) are
shared by two backends: `AirCentral` on the virtual air (carkey_host.virtual_air,
used by the tests) and `run_bleak` on a real board through bleak (not run in CI).
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
import uuid as uuidlib
from dataclasses import dataclass, field
from typing import Callable

from . import virtual_air as air
from .aliro.tlv import TlvError
from .aliro.user_device import LinkDropped
from .errors import CarkeyError

SERVICE_UUID = "7f1e0001-6c2b-4b8e-9f3a-2d5c1ac0a201"
WRITE_UUID = "7f1e0002-6c2b-4b8e-9f3a-2d5c1ac0a201"
INDICATE_UUID = "7f1e0003-6c2b-4b8e-9f3a-2d5c1ac0a201"
NAME_PREFIX = "carkey-"

MIN_MTU = 23
MAX_MTU = 517
MAX_COMMAND = 261  # what the car sends: short APDUs, longer ones chained
MAX_ANSWER = 512  # what the car accepts
PHONE_MTU = 247

ATT_ERROR = 0x01
ATT_MTU_REQ = 0x02
ATT_MTU_RSP = 0x03
ATT_WRITE_REQ = 0x12
ATT_WRITE_RSP = 0x13
ATT_INDICATION = 0x1D
ATT_CONFIRM = 0x1E
CCCD_INDICATE = b"\x02\x00"
READY = b"\x00\x00"  # the empty frame: subscribed, the car may send its first command


class BleError(CarkeyError):
    """The BLE link failed: not found, refused, lost, or timed out."""


class FramingError(BleError):
    """Chunks that do not make a valid frame."""


def device_name(group_id: bytes) -> str:
    """The name a car advertises: derived from its reader group id."""
    return NAME_PREFIX + group_id[:4].hex()


# --- framing (shared by both backends) -------------------------------------------------


def chunk_size(mtu: int) -> int:
    if not MIN_MTU <= mtu <= MAX_MTU:
        raise FramingError(f"ATT MTU {mtu} outside {MIN_MTU}..{MAX_MTU}")
    return mtu - 3


def encode_frame(apdu: bytes, limit: int = MAX_ANSWER) -> bytes:
    if not 0 < len(apdu) <= limit:
        raise FramingError(f"APDU length {len(apdu)} outside 1..{limit}")
    return struct.pack(">H", len(apdu)) + bytes(apdu)


def split(frame: bytes, mtu: int) -> list[bytes]:
    """The chunks of a frame at this MTU, in order."""
    step = chunk_size(mtu)
    return [frame[i : i + step] for i in range(0, len(frame), step)]


class Reassembler:
    """Collects chunks until one frame of at most `limit` APDU bytes is whole."""

    def __init__(self, limit: int = MAX_COMMAND):
        self.limit = limit
        self.reset()

    def reset(self):
        self._buf = bytearray()
        self._want = None

    @property
    def started(self) -> bool:
        return bool(self._buf)

    def feed(self, chunk: bytes) -> bytes | None:
        """The APDU once the frame is whole, else None; FramingError on a bad frame."""
        if not chunk:
            raise FramingError("empty chunk")
        self._buf.extend(chunk)
        if self._want is None and len(self._buf) >= 2:
            n = (self._buf[0] << 8) | self._buf[1]
            if not 0 < n <= self.limit:
                self.reset()
                raise FramingError(f"frame length {n} outside 1..{self.limit}")
            self._want = 2 + n
        if self._want is not None:
            if len(self._buf) > self._want:
                extra = len(self._buf) - self._want
                self.reset()
                raise FramingError(f"{extra} bytes past the end of the frame")
            if len(self._buf) == self._want:
                apdu = bytes(self._buf[2:])
                self.reset()
                return apdu
        return None

    def check_idle(self):
        """At the end of a link: a frame cut short is an error worth naming."""
        if self._buf:
            got, want = len(self._buf), self._want or 2
            self.reset()
            raise FramingError(f"frame short: {got} of {want} bytes")


@dataclass
class LinkLog:
    """What one connection carried, as the phone saw it."""

    commands: list = field(default_factory=list)
    answers: list = field(default_factory=list)
    indications: int = 0
    writes: int = 0
    bytes_in: int = 0  # indication values received
    bytes_out: int = 0  # write values sent
    mtu: int = MIN_MTU
    dropped: bool = False  # this phone dropped the link (untrusted reader)
    walked_away: bool = False
    disconnect_reason: int | None = None
    error: str | None = None


class PhoneLink:
    """Frames in, answers out: `on_indication(value)` returns the chunks to write.

    process(capdu) -> rapdu is the user device (UserDevice.process or Phone.device.process);
    LinkDropped from it propagates so the backend drops the connection.
    tamper(capdu, rapdu) may rewrite an answer (tests).
    """

    def __init__(self, process: Callable[[bytes], bytes], mtu: int = MIN_MTU, tamper=None):
        self.process = process
        self.mtu = mtu
        self.tamper = tamper
        self.log = LinkLog(mtu=mtu)
        self._rx = Reassembler(MAX_COMMAND)

    def on_indication(self, value: bytes) -> list[bytes]:
        self.log.indications += 1
        self.log.bytes_in += len(value)
        capdu = self._rx.feed(bytes(value))
        if capdu is None:
            return []
        self.log.commands.append(capdu)
        rapdu = self.process(capdu)
        if self.tamper is not None:
            rapdu = self.tamper(capdu, rapdu)
        self.log.answers.append(rapdu)
        return split(encode_frame(rapdu), self.mtu)

    def sent(self, chunk: bytes):
        self.log.writes += 1
        self.log.bytes_out += len(chunk)


# --- virtual air backend ----------------------------------------------------------------


@dataclass
class Advert:
    addr: bytes
    rssi: int
    connectable: bool
    adv: bytes
    resp: bytes

    @property
    def name(self) -> str | None:
        return ad_field(self.adv, 0x09) or ad_field(self.adv, 0x08)


def ad_field(data: bytes, ad_type: int) -> str | None:
    i = 0
    while i + 1 < len(data):
        n = data[i]
        if n == 0 or i + 1 + n > len(data):
            return None
        if data[i + 1] == ad_type:
            return data[i + 2 : i + 1 + n].decode(errors="replace")
        i += 1 + n
    return None


def uuid_le(text: str) -> bytes:
    return uuidlib.UUID(text).bytes[::-1]


class AirCentral:
    """A central on the virtual air: scan, connect, MTU exchange, discovery, writes, indications."""

    def __init__(self, address, addr: bytes | None = None, timeout: float = 5.0):
        self.addr = addr or bytes(b | (0xC0 if i == 5 else 0) for i, b in enumerate(uuidlib.uuid4().bytes[:6]))
        self.timeout = timeout
        self.sock = socket.create_connection(tuple(address), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = b""
        self._pending: list[bytes] = []
        self.conn: int | None = None
        self.mtu = MIN_MTU
        self.disconnect_reason: int | None = None
        self._send(air.HELLO, bytes((air.CENTRAL,)) + self.addr)

    def _send(self, kind, payload=b""):
        self.sock.sendall(air.frame(kind, payload))

    def _recv_raw(self, deadline):
        while True:
            messages, self._buf = air.parse_messages(self._buf)
            if messages:
                self._pending.extend(messages)
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise BleError("timed out waiting for the car")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                raise BleError("timed out waiting for the car") from None
            if not data:
                raise BleError("the virtual air closed")
            self._buf += data

    def _next(self, want, timeout=None):
        """The next message accepted by want(msg); DISCONNECTED ends the wait with BleError."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            for i, msg in enumerate(self._pending):
                if msg[0] == air.DISCONNECTED and self.conn == struct.unpack(">H", msg[1:3])[0]:
                    del self._pending[i]
                    self.disconnect_reason = msg[3]
                    self.conn = None
                    raise Disconnected(msg[3])
                if want(msg):
                    del self._pending[i]
                    return msg
            self._recv_raw(deadline)

    def scan(self, timeout=None) -> list[Advert]:
        self._send(air.SCAN)
        out = []
        while True:
            msg = self._next(lambda m: m[0] in (air.ADV_REPORT, air.SCAN_DONE), timeout)
            if msg[0] == air.SCAN_DONE:
                return out
            addr, rssi, conn, n = msg[2:8], struct.unpack(">b", msg[8:9])[0], msg[9], msg[10]
            out.append(Advert(bytes(addr), rssi, bool(conn), msg[11 : 11 + n], msg[11 + n :]))

    def find(self, name: str, timeout=None) -> Advert:
        deadline = time.monotonic() + (timeout or self.timeout)
        while time.monotonic() < deadline:
            for ad in self.scan():
                if ad.name == name:
                    return ad
            time.sleep(0.01)
        raise BleError(f"no car advertising as {name!r}")

    def connect(self, addr: bytes, wait_ms: int = 2000) -> int:
        """Connect, waiting up to wait_ms for the car to advertise (gap_connect's scan_duration_ms)."""
        self._send(air.CONNECT, addr + struct.pack(">H", wait_ms))
        msg = self._next(lambda m: m[0] in (air.CONNECTED, air.CONNECT_FAILED), wait_ms / 1000 + self.timeout)
        if msg[0] == air.CONNECT_FAILED:
            raise BleError(f"connection to {addr.hex()} failed (HCI reason {msg[7]:#04x})")
        self.conn = struct.unpack(">H", msg[1:3])[0]
        self.mtu = MIN_MTU
        return self.conn

    def _att(self, pdu: bytes):
        self._send(air.ATT, struct.pack(">H", self.conn) + pdu)

    def _att_reply(self, ops, timeout=None):
        conn = self.conn
        msg = self._next(lambda m: m[0] == air.ATT and struct.unpack(">H", m[1:3])[0] == conn and m[3] in ops, timeout)
        return msg[3:]

    def exchange_mtu(self, mtu: int = PHONE_MTU) -> int:
        chunk_size(mtu)
        self._att(struct.pack("<BH", ATT_MTU_REQ, mtu))
        pdu = self._att_reply((ATT_MTU_RSP, ATT_ERROR))
        if pdu[0] == ATT_ERROR:
            raise BleError(f"MTU exchange refused (ATT error {pdu[4]:#04x})")
        self.mtu = max(MIN_MTU, min(mtu, struct.unpack("<H", pdu[1:3])[0]))
        return self.mtu

    def discover(self) -> dict[bytes, tuple[int, int]]:
        """{uuid (16 bytes, little-endian): (value handle, properties)} of the server's characteristics."""
        self._send(air.DISCOVER, struct.pack(">H", self.conn))
        conn = self.conn
        msg = self._next(lambda m: m[0] == air.TABLE and struct.unpack(">H", m[1:3])[0] == conn)
        out, i = {}, 3
        while i < len(msg):
            handle, flags, n = struct.unpack(">HHB", msg[i : i + 5])
            out[bytes(msg[i + 5 : i + 5 + n])] = (handle, flags)
            i += 5 + n
        return out

    def write(self, handle: int, value: bytes, timeout=None):
        """A write request; returns once the server answered with a write response."""
        if len(value) > self.mtu - 3:
            raise BleError(f"write of {len(value)} bytes does not fit MTU {self.mtu}")
        self._att(struct.pack("<BH", ATT_WRITE_REQ, handle) + value)
        pdu = self._att_reply((ATT_WRITE_RSP, ATT_ERROR), timeout)
        if pdu[0] == ATT_ERROR:
            raise BleError(f"write refused (ATT error {pdu[4]:#04x})")

    def indication(self, timeout=None) -> tuple[int, bytes]:
        """The next indication (handle, value); confirmed at once, as a phone's stack does."""
        pdu = self._att_reply((ATT_INDICATION,), timeout)
        self._att(bytes((ATT_CONFIRM,)))
        return struct.unpack("<H", pdu[1:3])[0], bytes(pdu[3:])

    def beacon(self, adv_data: bytes):
        """Advertise non-connectable (a phone's beacon, for the car's proximity hint); b'' is allowed."""
        if len(adv_data) > 31:
            raise BleError("advertising data is at most 31 bytes")
        self._send(air.ADVERTISE, bytes((0, len(adv_data))) + adv_data)

    def stop_beacon(self):
        self._send(air.ADV_STOP)

    def disconnect(self):
        if self.conn is not None:
            self._send(air.DISCONNECT, struct.pack(">HB", self.conn, air.REASON_REMOTE_USER))
            try:
                self._next(lambda m: False, 2.0)
            except Disconnected:
                pass
            except BleError:
                pass

    def leave(self):
        """Walk out of range: the radio goes silent without a word."""
        self.conn = None
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Disconnected(BleError):
    def __init__(self, reason):
        super().__init__(f"disconnected (HCI reason {reason:#04x})")
        self.reason = reason


def connect_air(address, name: str, mtu: int = PHONE_MTU, timeout: float = 5.0, addr: bytes | None = None):
    """Find the car by name, connect, exchange the MTU, discover, subscribe and say "ready".

    Returns (central, write handle, indicate handle). addr: this phone's address (random if None).
    """
    central = AirCentral(address, addr=addr, timeout=timeout)
    try:
        ad = central.find(name, timeout)
        central.connect(ad.addr, int(timeout * 1000))
        central.exchange_mtu(mtu)
        table = central.discover()
        if uuid_le(SERVICE_UUID) not in table:
            raise BleError("the car does not offer the carkey service")
        write_handle = table.get(uuid_le(WRITE_UUID), (None,))[0]
        indicate_handle = table.get(uuid_le(INDICATE_UUID), (None,))[0]
        if write_handle is None or indicate_handle is None:
            raise BleError("the carkey service lacks its characteristics")
        central.write(indicate_handle + 1, CCCD_INDICATE)  # CCCD right after the value, as NimBLE lays it out
        central.write(write_handle, READY)
        return central, write_handle, indicate_handle
    except BaseException:
        central.close()
        raise


def serve_air(central: AirCentral, write_handle: int, process, tamper=None, leave_when=None,
              idle_timeout: float = 10.0) -> LinkLog:
    """Answer the car until it disconnects (or this phone drops or walks away)."""
    link = PhoneLink(process, central.mtu, tamper)
    try:
        while True:
            try:
                _, value = central.indication(idle_timeout)
            except Disconnected as e:
                link.log.disconnect_reason = e.reason
                link._rx.check_idle()
                break
            try:
                chunks = link.on_indication(value)
            except LinkDropped:
                link.log.dropped = True
                central.disconnect()
                break
            except (FramingError, TlvError) as e:
                # A garbled command frame or envelope: this phone hangs up.
                link.log.error = str(e)
                central.disconnect()
                break
            if leave_when is not None and link.log.commands and leave_when(link.log, bool(chunks)):
                link.log.walked_away = True
                central.leave()
                break
            for chunk in chunks:
                central.write(write_handle, chunk)
                link.sent(chunk)
    except BleError as e:
        link.log.error = str(e)
    return link.log


def phone_over_air(address, name, process, mtu=PHONE_MTU, addr=None, **kw) -> LinkLog:
    """One whole visit: connect to the car named `name`, answer it, return the log."""
    central, write_handle, _ = connect_air(address, name, mtu, addr=addr)
    try:
        log = serve_air(central, write_handle, process, **kw)
        log.mtu = central.mtu
        return log
    finally:
        central.close()


# --- bleak backend (a real board; not run in CI) ------------------------------------


async def run_bleak(name_or_address: str, process, timeout: float = 20.0) -> LinkLog:
    """Connect to a real board through bleak and answer its APDUs until it disconnects."""
    from bleak import BleakClient, BleakScanner

    target = name_or_address
    if name_or_address.startswith(NAME_PREFIX):
        target = await BleakScanner.find_device_by_name(name_or_address, timeout=timeout)
        if target is None:
            raise BleError(f"no car advertising as {name_or_address!r}")
    gone = asyncio.Event()
    chunks: asyncio.Queue[bytes] = asyncio.Queue()
    client = BleakClient(target, disconnected_callback=lambda _c: gone.set(), timeout=timeout)
    await client.connect()
    try:
        # BlueZ reports 23 whatever was agreed: chunks then stay small but valid.
        link = PhoneLink(process, client.mtu_size)
        await client.start_notify(INDICATE_UUID, lambda _char, data: chunks.put_nowait(bytes(data)))
        await client.write_gatt_char(WRITE_UUID, READY, response=True)
        while not gone.is_set():
            getter = asyncio.ensure_future(chunks.get())
            waiter = asyncio.ensure_future(gone.wait())
            done, _ = await asyncio.wait({getter, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                break
            waiter.cancel()
            try:
                out = link.on_indication(getter.result())
            except LinkDropped:
                link.log.dropped = True
                break
            for chunk in out:
                await client.write_gatt_char(WRITE_UUID, chunk, response=True)
                link.sent(chunk)
        return link.log
    finally:
        if client.is_connected:
            await client.disconnect()


def run_bleak_sync(name_or_address: str, process, timeout: float = 20.0) -> LinkLog:
    return asyncio.run(run_bleak(name_or_address, process, timeout))


# --- measurement --------------------------------------------------------------------------


def count_exchanges(trace, conn: int) -> dict:
    """ATT traffic of one connection from the virtual air's trace.

    Counts writes (requests) and indications, the value bytes each way, and every
    ATT PDU (MTU exchange, write responses and confirmations included).
    """
    out = {"indications": 0, "writes": 0, "car_to_phone_bytes": 0, "phone_to_car_bytes": 0,
           "att_pdus": 0, "att_bytes": 0}
    for r in trace:
        if r.conn != conn:
            continue
        out["att_pdus"] += 1
        out["att_bytes"] += len(r.pdu)
        if r.pdu[0] == ATT_INDICATION:
            out["indications"] += 1
            out["car_to_phone_bytes"] += len(r.pdu) - 3
        elif r.pdu[0] == ATT_WRITE_REQ and r.sender == air.CENTRAL:
            out["writes"] += 1
            out["phone_to_car_bytes"] += len(r.pdu) - 3
    return out


# --- the carkey phone (commands, shares, Kpersistent cache) over the virtual air --------


def visit_car(phone, address, name: str, number: int = 1, mtu: int = PHONE_MTU, timeout: float = 5.0,
              addr: bytes | None = None):
    """One visit of a carkey_host.phone.Phone to the car advertising `name`.

    Returns (Transaction, LinkLog); the phone's Kpersistent cache is saved, so the
    next visit can be fast.
    """
    from .phone import Transaction

    phone.transaction = txn = Transaction(number)
    device = phone.device
    device.last_reader_status = device.last_control_flow = None
    try:
        central, write_handle, _ = connect_air(address, name, mtu, timeout, addr=addr)
        try:
            log = serve_air(central, write_handle, device.process)
            log.mtu = central.mtu
        finally:
            central.close()
        txn.dropped = log.dropped
        txn.error = log.error
    finally:
        txn.reader_status = device.last_reader_status
        txn.control_flow = device.last_control_flow
        device.reset()
        phone._pending = []
        phone.keydir.save_kpersistent_cache(device.kpersistent_cache)
        phone.settle_share(txn)
    return txn, log
