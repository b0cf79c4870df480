# carkey — BLE GATT framing: one APDU as a 2-byte big-endian length and its bytes, in chunks of MTU−3.
# SPDX-License-Identifier: MIT
#
# docs/PROTOCOL.md §2b. A GATT write or indication carries at most MTU−3 value
# bytes (3 bytes of ATT header), so an APDU frame goes out as consecutive
# chunks and comes back the same way. A frame is [len hi][len lo][APDU]; a
# chunk never carries bytes of two frames. The Reassembler copies chunks into
# one buffer made once per link, so receiving allocates nothing.

from micropython import const

from carkey.protocol.errors import ProtocolError

MIN_MTU = const(23)  # ATT default MTU, before any exchange
MAX_MTU = const(517)  # largest ATT MTU
_HEADER = const(2)


class FrameError(ProtocolError):
    pass


def chunk_size(mtu):
    # Value bytes per write or indication at this ATT MTU.
    if not MIN_MTU <= mtu <= MAX_MTU:
        raise ValueError("ATT MTU %d outside 23..517" % mtu)
    return mtu - 3


def encode(buf, payload, limit):
    # Writes the frame of `payload` into `buf`; returns the frame length.
    n = len(payload)
    if not 0 < n <= limit:
        raise ValueError("APDU length %d outside 1..%d" % (n, limit))
    if len(buf) < _HEADER + n:
        raise ValueError("frame buffer too small")
    buf[0] = n >> 8
    buf[1] = n & 0xFF
    buf[_HEADER : _HEADER + n] = payload
    return _HEADER + n


class Reassembler:
    # Collects the chunks of one frame of at most `limit` APDU bytes.
    def __init__(self, limit):
        self.limit = limit
        self._buf = bytearray(_HEADER + limit)
        self._mv = memoryview(self._buf)
        self.reset()

    def reset(self):
        self.got = 0  # frame bytes so far, header included
        self.want = 0  # whole frame length once the header is in, else 0

    def started(self):
        return self.got > 0

    def complete(self):
        return self.want and self.got == self.want

    def feed(self, chunk):
        # One write's value. True once the frame is whole. A FrameError leaves
        # the frame unusable until reset(): the caller drops the link.
        k = len(chunk)
        if k == 0:
            raise FrameError("empty chunk")
        if self.want and self.got + k > self.want:
            raise FrameError("%d bytes past the end of a %d-byte frame" % (self.got + k - self.want, self.want))
        got = self.got
        if got < _HEADER:
            # The header itself may be split (an MTU of 23 never does that, but
            # a peer may write one byte at a time).
            take = min(_HEADER - got, k)
            self._buf[got : got + take] = chunk[:take]
            got += take
            if got == _HEADER:
                n = (self._buf[0] << 8) | self._buf[1]
                if n == 0 or n > self.limit:
                    self.got = got
                    raise FrameError("frame length %d outside 1..%d" % (n, self.limit))
                self.want = _HEADER + n
                if got + k - take > self.want:
                    raise FrameError("%d bytes past the end of a %d-byte frame" % (got + k - take - self.want, self.want))
            self._buf[got : got + k - take] = chunk[take:]
            self.got = got + k - take
        else:
            self._buf[got : got + k] = chunk
            self.got = got + k
        return bool(self.want) and self.got == self.want

    def payload(self):
        # The APDU of a complete frame, as a view into the link's buffer.
        if not self.complete():
            raise FrameError("frame short: %d of %d bytes" % (self.got, self.want or _HEADER))
        return self._mv[_HEADER : self.want]
