# carkey — a PN532 at the bus level for firmware tests: the chip model and its HSU UART.
# SPDX-License-Identifier: MIT
#
# FakeChip parses host frames (checking LEN/LCS/DCS), records each one, queues an
# ACK and the answer as the chip does, resends its last answer on a NACK and
# drops a pending answer when the host aborts with an ACK. `target` (capdu ->
# rapdu, or an int status byte) answers InDataExchange; `answers` can override
# any command with a payload (bytes after D5 CMD+1) or None (syntax-error frame).
# Faults: silent (no ACK, no answer), drop_ack, corrupt (damage the DCS of the
# next n answers), late (keep the answer back until poke()).
#
# FakeUart delivers those frames like the HSU: in small pieces. The I2C and SPI
# buses are in fake_pn532_buses.py. Its logs keep the newest fakelog.LIMIT entries;
# `counts` has how many frames of each command code the chip received in all.

from fakelog import keep

ACK = b"\x00\x00\xff\x00\xff\x00"
NACK = b"\x00\x00\xff\xff\x00\x00"
ERROR_FRAME = b"\x00\x00\xff\x01\xff\x7f\x81\x00"


def make_frame(payload):
    n = len(payload)
    if n > 255:
        head = bytes([0, 0, 0xFF, 0xFF, 0xFF, n >> 8, n & 0xFF, (-(n >> 8) - n) & 0xFF])
    else:
        head = bytes([0, 0, 0xFF, n, (-n) & 0xFF])
    return head + payload + bytes([(-sum(payload)) & 0xFF, 0])


def answer_frame(cmd, data):
    return make_frame(bytes([0xD5, cmd + 1]) + data)


class FakeChip:
    def __init__(self, target=None):
        self.frames = []  # host command frames, whole, as written
        self.commands = []  # (cmd, params)
        self.counts = {}  # cmd -> frames received, in all
        self.raw = []  # everything the host wrote, write by write
        self.out = []  # frames ready for the host
        self.target = target
        self.answers = {}
        self.log = True  # keep raw writes and whole frames (long runs turn this off)
        self.silent = False
        self.drop_ack = False
        self.corrupt = 0
        self.late = False
        self._late = None
        self.last = None
        self.nacks = 0
        self.aborts = 0
        self.wakes = 0
        self.chain = b""
        self.rest = b""
        self.targets = [b"\x01\x01\x00\x04\x20\x04\x08\x11\x22\x33\x05\x78\x80\x70\x02"]

    def host_write(self, data):
        data = bytes(data)
        if self.log:
            keep(self.raw, data)
        if data[:1] == b"\x55":  # HSU wake-up: 55 55 and zeros, a write of its own
            assert data == b"\x55\x55" + bytes(14), "wake-up preamble"
            self.wakes += 1
            self.silent = False
            return
        if data == ACK:
            self.aborts += 1
            self._late = None
            return
        if data == NACK:
            self.nacks += 1
            if self.last is not None:
                self._send(self.last)
            return
        assert data[:3] == b"\x00\x00\xff", "no preamble/start code: %s" % data.hex()
        if data[3] == 0xFF and data[4] == 0xFF:
            n = (data[5] << 8) | data[6]
            assert (data[5] + data[6] + data[7]) & 0xFF == 0, "bad LCS"
            start = 8
        else:
            n = data[3]
            assert (data[3] + data[4]) & 0xFF == 0, "bad LCS"
            start = 5
        payload = data[start : start + n]
        assert len(data) == start + n + 2, "frame length"
        assert (sum(payload) + data[start + n]) & 0xFF == 0, "bad DCS"
        assert data[-1] == 0, "postamble"
        assert payload[0] == 0xD4, "TFI"
        if self.log:
            keep(self.frames, data)
        cmd, params = payload[1], payload[2:]
        keep(self.commands, (cmd, params))
        self.counts[cmd] = self.counts.get(cmd, 0) + 1
        if self.silent:
            return
        if self.drop_ack:
            self.drop_ack = False
        else:
            self.out.append(ACK)
        answer = self._answer(cmd, params)
        if self.late:
            self.late = False
            self._late = answer
            return
        self._send(answer)

    def poke(self):
        # A late answer arrives now (unless the host aborted it).
        if self._late is not None:
            self._send(self._late)
            self._late = None

    def _send(self, frame):
        self.last = frame
        if self.corrupt:
            self.corrupt -= 1
            b = bytearray(frame)
            b[-2] ^= 0x01
            frame = bytes(b)
        self.out.append(frame)

    def _answer(self, cmd, params):
        if cmd in self.answers:
            a = self.answers[cmd]
            if callable(a):
                a = a(params)
            return ERROR_FRAME if a is None else answer_frame(cmd, a)
        if cmd == 0x02:
            return answer_frame(cmd, b"\x32\x01\x06\x07")
        if cmd in (0x14, 0x32, 0x08):
            return answer_frame(cmd, b"")
        if cmd == 0x42:
            return answer_frame(cmd, b"\x01")
        if cmd == 0x4A:
            return answer_frame(cmd, self.targets.pop(0) if self.targets else b"\x00")
        if cmd in (0x52, 0x44):
            return answer_frame(cmd, b"\x00")
        if cmd == 0x40:
            return answer_frame(cmd, self._exchange(params[0], params[1:]))
        return ERROR_FRAME

    def _exchange(self, tg, data):
        if tg & 0x40:
            self.chain += data
            return b"\x00"
        if not data and self.rest:
            part, self.rest = self.rest[:262], self.rest[262:]
            return bytes([0x40 if self.rest else 0]) + part
        capdu = self.chain + data
        self.chain = b""
        r = self.target(capdu) if self.target else b"\x90\x00"
        if isinstance(r, int):
            return bytes([r])
        part, self.rest = r[:262], r[262:]
        return bytes([0x40 if self.rest else 0]) + part


class FakeUart:
    """machine.UART over a FakeChip: answers come out `piece` bytes per read."""

    def __init__(self, chip, piece=3):
        self.chip = chip
        self.piece = piece
        self._rx = b""

    def write(self, data):
        self.chip.host_write(data)
        return len(data)

    def _pull(self):
        while self.chip.out:
            self._rx += self.chip.out.pop(0)

    def any(self):
        self._pull()
        return len(self._rx)

    def readinto(self, buf, nbytes=None):
        self._pull()
        n = min(len(buf), self.piece, len(self._rx))
        if nbytes is not None:
            n = min(n, nbytes)
        if not n:
            return None
        buf[:n] = self._rx[:n]
        self._rx = self._rx[n:]
        return n


SELECT = bytes.fromhex("00A4040009A000000909ACCE550100")  # the Aliro SELECT a reader sends first


def run(coro):
    import asyncio

    return asyncio.run(coro)


def uart_rig(target=None, piece=3):
    """A driver over HSU to a fake chip whose UART hands over `piece` bytes at a time."""
    from carkey.hw.pn532 import Pn532
    from carkey.hw.pn532_hsu import UartTransport

    chip = FakeChip(target)
    return chip, Pn532(UartTransport(FakeUart(chip, piece)), ack_timeout_ms=20)
