# carkey — fuzz surface "pn532": the byte stream a PN532 sends back over HSU, damaged, through the real driver.
# SPDX-License-Identifier: MIT
#
# carkey.hw.pn532.Pn532 over carkey.hw.pn532_hsu.UartTransport, on a UART stand-in
# that hands out the chip's bytes in pieces of 1..32 as the HSU does, answers a
# host NACK by sending the answer again and an abort (ACK) by dropping it. Each
# case runs one command (InListPassiveTarget, InDataExchange, InRelease or
# GetFirmwareVersion via begin()) and answers it with an ACK and a frame that may
# be damaged: bytes, checksums that still add up around junk payloads, a lost
# ACK, garbage before the start code, extended frames, or silence.
# Checked: a clean answer gives the clean result; otherwise only Pn532Error and
# its subclasses (Pn532Timeout, TargetLost, FrameError) or a result; no other
# exception; the driver never takes much longer than its timeout.

import asyncio
import time

from carkey.hw import pn532
from carkey.hw.pn532_hsu import UartTransport

from fake_pn532_bus import ACK, make_frame
from fuzzlib import mutate

_ACK_MS = 4
_TIMEOUT_MS = 12
_SLACK_MS = 2000  # scheduling slack: a hang is a wait that does not end, not a descheduled process
_TARGET = b"\x01\x01\x00\x04\x20\x04\x08\x11\x22\x33\x05\x78\x80\x70\x02"


class FuzzUart:
    def __init__(self, rng):
        self.rng = rng
        self.script = []  # answers (bytes) for the host's next commands, in order
        self.pending = b""
        self.last = b""
        self.writes = 0

    def write(self, data):
        data = bytes(data)
        self.writes += 1
        if data[:1] == b"\x55":
            return len(data)  # wake-up
        if data == ACK:
            self.pending = b""
            return len(data)
        if data == pn532.NACK:
            self.pending += self.last
            return len(data)
        if self.script:
            self.last = self.script.pop(0)
            self.pending += self.last
        return len(data)

    def any(self):
        return len(self.pending)

    def readinto(self, mv):
        n = min(len(mv), len(self.pending), 1 + self.rng.below(32))
        mv[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n


class World:
    def __init__(self, dir, rng):
        pass


def _answer(cmd, data):
    return make_frame(bytes((0xD5, cmd + 1)) + data)


def _damage(rng, clean, cmd):
    how = rng.choice(("clean", "clean", "bytes", "payload", "no-ack", "silent", "garbage", "extended", "error"))
    if how == "clean":
        return how, ACK + clean
    if how == "bytes":
        return how, mutate(rng, ACK + clean)
    if how == "payload":
        # Checksums right, contents wrong: reaches the command's own parsing.
        body = clean[5:-2]
        return how, ACK + make_frame(mutate(rng, body))
    if how == "no-ack":
        return how, clean
    if how == "silent":
        return how, b""
    if how == "garbage":
        return how, rng.bytes(1 + rng.below(40)) + ACK + clean
    if how == "extended":
        body = clean[5:-2]
        n = len(body)
        head = bytes((0, 0, 0xFF, 0xFF, 0xFF, n >> 8, n & 0xFF, (-(n >> 8) - n) & 0xFF))
        return how, ACK + head + body + bytes(((-sum(body)) & 0xFF, 0))
    return how, ACK + b"\x00\x00\xff\x01\xff\x7f\x81\x00"  # the chip's syntax-error frame


async def _case(rng, report, case, entry):
    uart = FuzzUart(rng)
    chip = pn532.Pn532(UartTransport(uart), ack_timeout_ms=_ACK_MS)
    op = rng.below(4)
    if op == 0:
        cmd, clean_data = 0x4A, _TARGET
    elif op == 1:
        rapdu = rng.bytes(2 + rng.below(250))
        cmd, clean_data = 0x40, b"\x00" + rapdu
    elif op == 2:
        cmd, clean_data = 0x52, b"\x00"
    else:
        cmd, clean_data = 0x02, b"\x32\x01\x06\x07"
    clean = _answer(cmd, clean_data)
    if entry is not None:
        how, stream = "corpus", entry
    else:
        how, stream = _damage(rng, clean, cmd)
    if op == 3:
        # begin(): SAMConfiguration, GetFirmwareVersion, two RFConfigurations; the damage hits one of them.
        answers = [ACK + _answer(0x14, b""), ACK + clean, ACK + _answer(0x32, b""), ACK + _answer(0x32, b"")]
        answers[1] = stream
        uart.script = answers
    else:
        uart.script = [stream]
    out = bytearray(300)
    t0 = time.ticks_ms()
    try:
        if op == 0:
            t = await chip.list_target(_TIMEOUT_MS)
            got = "target" if t is not None and t.uid == bytes(_TARGET[6:10]) else ("none" if t is None else "other")
        elif op == 1:
            n = await chip.exchange(1, rng.bytes(1 + rng.below(262)), out, _TIMEOUT_MS)  # one part: one answer
            got = bytes(out[:n])
            want = clean_data[1:]
        elif op == 2:
            await chip.release(1, _TIMEOUT_MS)
            got = want = "released"
        else:
            fw = await chip.begin(_TIMEOUT_MS)
            got = fw
            want = (0x32, 0x01, 0x06, 0x07)
        if op == 0:
            want = "target"
        result = "ok" if got == want else "other result"
    except pn532.Pn532Timeout:
        result = "Pn532Timeout"
    except pn532.TargetLost:
        result = "TargetLost"
    except pn532.FrameError:
        result = "FrameError"
    except pn532.Pn532Error:
        result = "Pn532Error"
    except Exception as e:
        report.violation(case, "cmd %02X (%s) raised %r" % (cmd, how, e), stream)
        result = "raised"
    ms = time.ticks_diff(time.ticks_ms(), t0)
    report.timed(ms)
    limit = (4 if op == 3 else 1) * (_TIMEOUT_MS + _ACK_MS) + _SLACK_MS
    if ms > limit:
        report.violation(case, "cmd %02X (%s) took %d ms" % (cmd, how, ms), stream)
    if how == "clean" and result != "ok":
        report.violation(case, "clean answer to %02X gave %s" % (cmd, result), stream)
    report.outcome("%02x|%s|%s" % (cmd, how, result), stream)


def run_case(world, rng, report, case, entry=None):
    asyncio.run(_case(rng, report, case, entry))


def final_check(world, report):
    pass
