# carkey — PN532 transport over HSU (UART, 115200 8N1) with the long-preamble wake-up.
# SPDX-License-Identifier: MIT
#
# A board passes machine.UART(id, baudrate=115200, tx=.., rx=.., timeout=0); the
# virtual board passes boards/virtual_hw/uart.PtyUART.

import asyncio
import time

from carkey.hw.pn532 import MAX_FRAME, POLL_MS, FrameError, Pn532Timeout, find_start, frame_size

_ticks_ms = time.ticks_ms
_ticks_diff = time.ticks_diff

# HSU wake-up (user manual §7.2.11 / §6.2.2): after power-down the chip needs a
# long preamble on RX before the first frame; 0x55 edges, then zeros.
_HSU_WAKE = b"\x55\x55" + bytes(14)


class UartTransport:
    """PN532 over HSU (115200 8N1): a machine.UART-like object with any/readinto/write.

    Bytes arrive in pieces; what follows a frame (an answer right behind its ACK)
    is kept for the next receive.
    """

    def __init__(self, uart, bufsize=MAX_FRAME + 32):
        self._uart = uart
        self._buf = bytearray(bufsize)
        self._mv = memoryview(self._buf)
        self._n = 0
        self._used = 0

    def wake(self):
        self._uart.write(_HSU_WAKE)

    def write(self, frame):
        self._uart.write(frame)

    def flush(self):
        # Drop whatever is buffered or pending: used before resynchronising.
        self._n = self._used = 0
        uart = self._uart
        while uart.any():
            if not uart.readinto(self._mv):
                break

    async def receive(self, deadline):
        buf = self._buf
        mv = self._mv
        if self._used:
            rest = self._n - self._used
            mv[:rest] = mv[self._used : self._n]  # memmove, no copy allocated
            self._n = rest
            self._used = 0
        while True:
            n = self._n
            i = find_start(buf, 0, n)
            if i < 0:
                # Keep a trailing 00 (it may start a start code); drop the rest.
                keep = 1 if n and buf[n - 1] == 0 else 0
                buf[0] = 0
                self._n = n = keep
            elif i:
                mv[: n - i] = mv[i:n]
                self._n = n = n - i
            if n:
                try:
                    size = frame_size(buf, 0, n)
                except FrameError:
                    self._used = 2  # skip this start code next time
                    raise
                if size > len(buf):
                    self._used = 2
                    raise FrameError("frame too long")
                if size and size <= n:
                    self._used = size
                    return mv[:size]
            got = 0
            if self._uart.any():
                got = self._uart.readinto(mv[n:]) or 0
            if got:
                self._n = n + got
                continue
            if _ticks_diff(deadline, _ticks_ms()) <= 0:
                raise Pn532Timeout("no frame from the PN532")
            await asyncio.sleep_ms(POLL_MS)
