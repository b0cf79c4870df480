# carkey — reader end of the TCP link (docs/PROTOCOL.md §2): raw or length-prefixed APDUs.
# SPDX-License-Identifier: MIT
#
# The same asyncio streams code runs on the Unix port and on ESP32 Wi-Fi. The
# reader is the client; the user device listens. Commands go out of, and answers
# come into, buffers made once per link; each answer is copied out once.

import asyncio
from micropython import const

from carkey.protocol.errors import LinkError, LinkTimeout, ProtocolError

RAW = "raw"  # one APDU per write, lock-step; an answer is whatever one read returns
LP = "lp"  # every APDU prefixed by its length, 2 bytes big-endian, 1..65535

# The longest answer accepted: a short R-APDU is at most 258 bytes (longer ones
# come in 61xx parts). A little slack for devices that send a few bytes more.
_MAX_ANSWER = const(512)
_MAX_COMMAND = const(261)  # header 4 + Lc + 255 data + Le


class TcpLink:
    def __init__(self, stream, framing=LP):
        if framing != RAW and framing != LP:
            raise ValueError("framing is 'raw' or 'lp'")
        self._stream = stream
        self.framing = framing
        self._buf = bytearray(_MAX_ANSWER)
        self._mv = memoryview(self._buf)
        self._head = bytearray(2)
        # Length prefix and APDU leave in one write: two small segments would
        # meet Nagle and delayed ACK and cost ~40 ms per command.
        self._out = bytearray(2 + _MAX_COMMAND)
        self._out_mv = memoryview(self._out)

    @classmethod
    async def connect(cls, host, port, framing=LP, timeout_ms=3000):
        try:
            stream, _ = await asyncio.wait_for_ms(asyncio.open_connection(host, port), timeout_ms)
        except asyncio.TimeoutError:
            raise LinkTimeout("connect timed out") from None
        except OSError as e:
            raise LinkError("connect failed: %s" % e) from None
        return cls(stream, framing)

    async def transceive(self, capdu, timeout_ms):
        # One C-APDU out, its R-APDU back (fresh bytes). A timeout or a dropped
        # connection closes the link: a late answer must never pair with the
        # next command.
        stream = self._stream
        if stream is None:
            raise LinkError("link closed")
        n = len(capdu)
        if not 0 < n <= _MAX_COMMAND:
            raise ValueError("C-APDU length out of range")
        try:
            if self.framing == LP:
                out = self._out
                out[0] = n >> 8
                out[1] = n & 0xFF
                out[2 : 2 + n] = capdu
                stream.write(self._out_mv[: 2 + n])
            else:
                stream.write(capdu)
            await stream.drain()
            n = await asyncio.wait_for_ms(self._receive(stream), timeout_ms)
        except asyncio.TimeoutError:
            await self.close()
            raise LinkTimeout("no answer within %d ms" % timeout_ms) from None
        except OSError as e:
            await self.close()
            raise LinkError("link failed: %s" % e) from None
        except ProtocolError:
            await self.close()
            raise
        return bytes(self._mv[:n])

    async def _receive(self, stream):
        mv = self._mv
        if self.framing == RAW:
            n = await stream.readinto(mv)
            if not n:
                raise OSError("closed by peer")
            if n == len(mv):
                raise ProtocolError("answer too long")
            return n
        await self._fill(stream, memoryview(self._head))
        n = (self._head[0] << 8) | self._head[1]
        if n == 0 or n > _MAX_ANSWER:
            raise ProtocolError("bad frame length %d" % n)
        await self._fill(stream, mv[:n])
        return n

    @staticmethod
    async def _fill(stream, view):
        got = 0
        want = len(view)
        while got < want:
            k = await stream.readinto(view[got:])
            if not k:
                raise OSError("closed by peer")
            got += k

    async def close(self):
        stream = self._stream
        if stream is None:
            return
        self._stream = None
        try:
            stream.close()
            await stream.wait_closed()
        except OSError:
            pass
