# carkey — firmware BLE test support: plays the virtual air hub and its centrals against the stand-in `bluetooth`.
# SPDX-License-Identifier: MIT
#
# Hub() listens on a free local port and points boards/virtual_hw/bluetooth.AIR at
# it; once the firmware calls BLE().active(True), accept() takes the board's
# connection. recv() returns the next wire message (type byte + fields) the board
# sent, send() delivers one to it: the test speaks for the hub and every phone,
# byte for byte (docs/VIRTUAL-RADIO.md).

import asyncio
import os
import socket
import struct
import sys

# The virtual board's modules, as the virtual board's boot puts them on the path.
if "boards/virtual_hw" not in sys.path:
    sys.path.append("boards/virtual_hw")

import bluetooth  # noqa: E402

HELLO = 0x01
ADVERTISE = 0x02
ADV_STOP = 0x03
DISCONNECT = 0x06
DISCOVER = 0x07
TABLE = 0x08
ATT = 0x10
CONNECTED = 0x81
DISCONNECTED = 0x82


class Hub:
    def __init__(self):
        self._ls = socket.socket()
        self._ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        base = 20000 + (os.urandom(2)[0] << 7) % 30000
        for port in range(base, base + 200):
            try:
                self._ls.bind(socket.getaddrinfo("127.0.0.1", port)[0][-1])
                break
            except OSError:
                continue
        self._ls.listen(1)
        bluetooth.AIR = ("127.0.0.1", port)
        self._s = None
        self._buf = b""

    def accept(self):
        s, _ = self._ls.accept()
        s.setblocking(False)
        self._s = s
        self._reader = asyncio.StreamReader(s)

    async def _fill(self):
        data = await self._reader.read(2048)
        if not data:
            raise OSError("board closed the air")
        self._buf += data

    async def recv(self, timeout_ms=2000):
        # The next message from the board; None if none came within timeout_ms.
        while True:
            if len(self._buf) >= 2:
                n = (self._buf[0] << 8) | self._buf[1]
                if len(self._buf) >= 2 + n:
                    msg, self._buf = self._buf[2 : 2 + n], self._buf[2 + n :]
                    return msg
            try:
                await asyncio.wait_for_ms(self._fill(), timeout_ms)
            except asyncio.TimeoutError:
                return None

    async def expect(self, kind, timeout_ms=2000):
        msg = await self.recv(timeout_ms)
        if msg is None or msg[0] != kind:
            raise AssertionError("expected message %02x, got %s" % (kind, None if msg is None else bytes(msg).hex()))
        return msg

    def send(self, kind, payload=b""):
        self._s.write(struct.pack(">HB", len(payload) + 1, kind) + payload)

    def connect(self, conn, addr=b"\x11\x22\x33\x44\x55\xc6"):
        self.send(CONNECTED, struct.pack(">HB", conn, 1) + addr)

    def disconnect(self, conn, reason=0x08):
        self.send(DISCONNECTED, struct.pack(">HB", conn, reason))

    def att(self, conn, pdu):
        self.send(ATT, struct.pack(">H", conn) + pdu)

    async def expect_att(self, conn, timeout_ms=2000):
        # The next ATT PDU the board sent on `conn`.
        msg = await self.expect(ATT, timeout_ms)
        if (msg[1] << 8) | msg[2] != conn:
            raise AssertionError("ATT on connection %d, expected %d" % ((msg[1] << 8) | msg[2], conn))
        return bytes(msg[3:])

    def close(self):
        if self._s is not None:
            self._s.close()
        self._ls.close()
        bluetooth.AIR = None
