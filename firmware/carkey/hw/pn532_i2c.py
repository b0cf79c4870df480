# carkey — PN532 transport over I2C (address 0x24) with the ready byte and NACK re-reads.
# SPDX-License-Identifier: MIT
#
# A board passes machine.I2C(id, scl=.., sda=.., freq=400_000).

import asyncio
import time
from micropython import const

from carkey.hw.pn532 import MAX_FRAME, NACK, POLL_MS, FrameError, Pn532Timeout, find_start, frame_size

_ticks_ms = time.ticks_ms
_ticks_diff = time.ticks_diff

# I2C: the chip's 7-bit address; every read starts with the ready byte (bit 0).
I2C_ADDRESS = const(0x24)


class I2cTransport:
    """PN532 over I2C (up to 400 kHz, address 0x24) with its ready byte.

    Every read transaction starts with the ready byte; the frame follows. A first
    read of `peek` bytes covers ACKs and short answers; a longer answer is asked
    for again with a NACK (the chip then sends the same frame) and read whole.
    """

    def __init__(self, i2c, address=I2C_ADDRESS, peek=24):
        self._i2c = i2c
        self._addr = address
        self._buf = bytearray(1 + 1 + MAX_FRAME)  # ready byte, preamble, frame
        self._mv = memoryview(self._buf)
        self._peek = peek
        self._status = bytearray(1)

    def wake(self):
        # An I2C address match wakes the chip from power-down; a ready-byte read
        # is the cheapest such transaction.
        try:
            self._i2c.readfrom_into(self._addr, self._status)
        except OSError:
            pass

    def write(self, frame):
        try:
            self._i2c.writeto(self._addr, frame)
        except OSError:
            # The chip NAKs its address while busy or asleep: the caller's
            # ACK wait turns this into a timeout and recovery.
            pass

    def flush(self):
        pass

    async def _ready(self, deadline):
        st = self._status
        while True:
            try:
                self._i2c.readfrom_into(self._addr, st)
                if st[0] & 1:
                    return
            except OSError:
                pass
            if _ticks_diff(deadline, _ticks_ms()) <= 0:
                raise Pn532Timeout("PN532 not ready")
            await asyncio.sleep_ms(POLL_MS)

    async def receive(self, deadline):
        buf = self._buf
        want = self._peek
        for _ in range(2):
            await self._ready(deadline)
            try:
                self._i2c.readfrom_into(self._addr, self._mv[:want])
            except OSError:
                raise Pn532Timeout("PN532 I2C read failed") from None
            i = find_start(buf, 1, want)
            if i < 0:
                raise FrameError("no start code")
            size = frame_size(buf, i, want)
            if size and i + size <= want:
                return self._mv[i : i + size]
            if i + (size or 9) > len(buf):
                raise FrameError("frame too long")
            # Longer than the peek: the NACK makes the chip send it again.
            want = i + size if size else len(buf)
            self.write(NACK)
        raise FrameError("frame incomplete")
