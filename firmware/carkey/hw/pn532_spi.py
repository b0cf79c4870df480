# carkey — PN532 transport over SPI (mode 0, LSB first) with the DW/SR/DR prefixes.
# SPDX-License-Identifier: MIT
#
# A board passes machine.SPI(id, baudrate=..., polarity=0, phase=0, firstbit=SPI.LSB)
# and the CS pin; SoftSPI (MSB first only) works with lsb_first=False.

import asyncio
import time
from micropython import const

from carkey.hw.pn532 import MAX_FRAME, POLL_MS, FrameError, Pn532Timeout, find_start, frame_size

_ticks_ms = time.ticks_ms
_ticks_diff = time.ticks_diff

# SPI prefixes; the chip clocks LSB first on the wire.
_SPI_DW = const(0x01)  # data write
_SPI_SR = const(0x02)  # status read: bit 0 = an answer is ready
_SPI_DR = const(0x03)  # data read


def _reverse_table():
    t = bytearray(256)
    for i in range(256):
        r = 0
        v = i
        for _ in range(8):
            r = (r << 1) | (v & 1)
            v >>= 1
        t[i] = r
    return bytes(t)


class SpiTransport:
    """PN532 over SPI (mode 0, up to 5 MHz, LSB first) with its DW/SR/DR prefixes.

    `cs` is an output pin (1 = idle). On a bus that can only shift MSB first
    (SoftSPI), pass lsb_first=False: bytes are then bit-reversed in software.
    """

    def __init__(self, spi, cs, lsb_first=True):
        self._spi = spi
        self._cs = cs
        self._rev = None if lsb_first else _reverse_table()
        self._buf = bytearray(MAX_FRAME + 8)
        self._mv = memoryview(self._buf)
        self._out = bytearray(1 + MAX_FRAME)
        self._one = bytearray(1)
        cs.value(1)

    def _fix(self, mv):
        rev = self._rev
        if rev is not None:
            for i in range(len(mv)):
                mv[i] = rev[mv[i]]

    def _prefix(self, code):
        one = self._one
        one[0] = code
        self._fix(one)
        self._spi.write(one)

    def wake(self):
        # CS low wakes the chip; it needs ~2 ms before it listens.
        self._cs.value(0)
        time.sleep_ms(2)
        self._cs.value(1)

    def write(self, frame):
        n = len(frame)
        out = self._out
        out[0] = _SPI_DW
        out[1 : 1 + n] = frame
        mv = memoryview(out)[: 1 + n]
        self._fix(mv)
        self._cs.value(0)
        try:
            self._spi.write(mv)
        finally:
            self._cs.value(1)

    def flush(self):
        pass

    def _read(self, mv):
        self._spi.readinto(mv)
        self._fix(mv)

    async def receive(self, deadline):
        one = self._one
        while True:
            self._cs.value(0)
            try:
                self._prefix(_SPI_SR)
                self._read(one)
            finally:
                self._cs.value(1)
            if one[0] & 1:
                break
            if _ticks_diff(deadline, _ticks_ms()) <= 0:
                raise Pn532Timeout("PN532 not ready")
            await asyncio.sleep_ms(POLL_MS)
        buf = self._buf
        mv = self._mv
        self._cs.value(0)
        try:
            self._prefix(_SPI_DR)
            # Preamble 00, start code 00 FF, then LEN LCS (or FF FF LENM LENL LCS).
            self._read(mv[:5])
            i = find_start(buf, 0, 5)
            if i < 0:
                raise FrameError("no start code")
            have = 5
            if i:  # no preamble: read the byte that completes the header
                self._read(mv[5:6])
                have = 6
            if buf[i + 2] == 0xFF and buf[i + 3] == 0xFF:
                self._read(mv[have : i + 7])
                have = i + 7
            size = frame_size(buf, i, have)
            if i + size > len(buf):
                raise FrameError("frame too long")
            if i + size > have:
                self._read(mv[have : i + size])
        finally:
            self._cs.value(1)
        return mv[i : i + size]
