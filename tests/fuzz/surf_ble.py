# carkey — fuzz surface "ble": answer frames and chunkings a phone writes, through BleServer and BleLink.
# SPDX-License-Identifier: MIT
#
# The radio is an in-process stand-in with the interface of MicroPython's
# `bluetooth.BLE` (IRQ events, gatts_read/indicate, gap_disconnect): fast enough
# for many cases per second, unlike the socket-backed virtual board. Each case
# connects a phone at a random ATT MTU, sends one command and answers it with a
# frame cut into chunks of random sizes up to MTU−3, possibly damaged: a wrong
# length header, bytes past the end, an empty chunk, a stall, a disconnect, a
# failed indication, or writes before the phone is ready. A plain model of the
# framing (docs/PROTOCOL.md §2b) says what transceive must do.
# Checked: transceive returns exactly the answer the model expects or raises
# LinkError/LinkTimeout/FrameError where the model says it fails; no other
# exception; never longer than its deadline (plus scheduling slack).

import asyncio
import time

from carkey.hw import ble_gatt
from carkey.hw.ble_frame import FrameError
from carkey.protocol.errors import LinkError, LinkTimeout

from fuzzlib import mutate

_WRITE = 12
_INDICATE = 14
_CONN = 1
_TIMEOUT_MS = 40
_CHUNK_MS = 10
_SLACK_MS = 2000  # scheduling slack: a hang is a wait that does not end, not a descheduled process


class FakeBle:
    def __init__(self):
        self.handler = None
        self.value = b""
        self.plan = []  # chunks (bytes) or "disconnect" / "stall", delivered after the command's last indication
        self.ind_status = 0
        self.sent = 0
        self.total = 0

    def active(self, *a):
        return True

    def config(self, *a, **kw):
        return None

    def gatts_register_services(self, services):
        return ((_WRITE, _INDICATE),)

    def gatts_set_buffer(self, handle, n, append=False):
        pass

    def irq(self, handler):
        self.handler = handler

    def gap_advertise(self, *a, **kw):
        pass

    def gap_disconnect(self, conn):
        self.handler(2, (conn, 0, b"\x00" * 6))
        return True

    def gatts_read(self, handle):
        return self.value

    def gatts_indicate(self, conn, handle, data):
        self.sent += len(data)
        self.handler(20, (conn, handle, self.ind_status))
        if self.sent >= self.total:
            for item in self.plan:
                if item == "disconnect":
                    self.handler(2, (conn, 0, b"\x00" * 6))
                    return
                if item == "stall":
                    return
                self.write(item)

    def write(self, chunk):
        self.value = chunk
        self.handler(3, (_CONN, _WRITE))


class World:
    def __init__(self, dir, rng):
        pass


def _chunks(rng, frame, step):
    out = []
    pos = 0
    while pos < len(frame):
        n = 1 + rng.below(step) if rng.chance(1, 3) else step
        out.append(frame[pos : pos + n])
        pos += n
    return out


def _model(chunks, limit=512):
    """What the framing makes of these writes: ("ok", payload) or ("fail", reason)."""
    # Every write here lands while the command's answer is due (the stand-in delivers
    # them back to back), so one after the frame is complete spoils it too.
    data = b""
    want = None
    for c in chunks:
        if not c:
            return "fail", "empty"
        data += c
        if want is None and len(data) >= 2:
            n = (data[0] << 8) | data[1]
            if n == 0 or n > limit:
                return "fail", "length"
            want = 2 + n
        if want is not None and len(data) > want:
            return "fail", "past end"
    if want is not None and len(data) == want:
        return "ok", data[2:]
    return "fail", "stall"


async def _case(rng, report, case, entry):
    ble = FakeBle()
    mtu = rng.choice((23, 24, 27, 50, 100, 185, 247, 251, 512, 517))
    server = ble_gatt.BleServer("carkey-fuzz", ble=ble, mtu=247, chunk_timeout_ms=_CHUNK_MS)
    server.start()
    ble.handler(1, (_CONN, 0, b"\x11\x22\x33\x44\x55\x66"))
    agreed = min(mtu, 247)
    ble.handler(21, (_CONN, agreed))
    if rng.chance(1, 8):
        ble.write(rng.bytes(1 + rng.below(20)))  # stray writes before "ready" are dropped
    ble.write(b"\x00\x00")
    link = await server.accept()
    step = agreed - 3
    capdu = rng.bytes(5 + rng.below(256))
    ble.total = len(capdu) + 2
    if entry is not None:
        answer = entry
        frame = bytes(((len(answer) >> 8) & 0xFF, len(answer) & 0xFF)) + answer
        chunks = _chunks(rng, frame, step)
        how = "corpus"
    else:
        answer = rng.bytes(2 + rng.below(600 if rng.chance(1, 8) else 260))
        frame = bytes(((len(answer) >> 8) & 0xFF, len(answer) & 0xFF)) + answer
        how = rng.choice(("clean", "clean", "header", "past-end", "empty", "stall", "disconnect", "indication",
                          "mutate", "split-header"))
        if how == "header":
            frame = mutate(rng, frame[:2]) + frame[2:]
        elif how == "past-end":
            frame = frame + rng.bytes(1 + rng.below(30))
        elif how == "mutate":
            frame = mutate(rng, frame)
        chunks = _chunks(rng, frame, step)
        if how == "split-header":
            chunks = [frame[:1], frame[1:2]] + _chunks(rng, frame[2:], step)
        if how == "empty" and chunks:
            chunks.insert(rng.below(len(chunks) + 1), b"")
        if how in ("stall", "disconnect") and chunks:
            chunks = chunks[: rng.below(len(chunks))]
    chunks = [c[:step] for c in chunks]  # the stack refuses writes longer than MTU−3
    plan = list(chunks)
    if how == "disconnect":
        plan.append("disconnect")
    elif how == "stall":
        plan.append("stall")
    ble.plan = plan
    if how == "indication":
        ble.ind_status = 1 + rng.below(0x20)
    expect = _model(chunks)
    if how == "disconnect" and expect[0] != "ok":
        expect = ("fail", "disconnect")
    if how == "indication":
        expect = ("fail", "indication")
    t0 = time.ticks_ms()
    try:
        got = await link.transceive(capdu, _TIMEOUT_MS)
        result = ("ok", bytes(got))
    except LinkTimeout:
        result = ("fail", "timeout")
    except FrameError:
        result = ("fail", "frame")
    except LinkError:
        result = ("fail", "link")
    except Exception as e:
        report.violation(case, "transceive raised %r (%s)" % (e, how), frame)
        result = ("raised", repr(e))
    ms = time.ticks_diff(time.ticks_ms(), t0)
    report.timed(ms)
    if ms > _TIMEOUT_MS + _SLACK_MS:
        report.violation(case, "transceive took %d ms (%s)" % (ms, how), frame)
    if expect[0] == "ok" and result != expect:
        report.violation(case, "a well-formed answer came back as %r (%s)" % (result, how), frame)
    if expect[0] == "fail" and result[0] == "ok":
        report.violation(case, "a broken frame (%s) was returned as an answer (%s)" % (expect[1], how), frame)
    await link.close()
    report.outcome("%s|mtu%d|%s|%s" % (how, agreed, expect[1] if expect[0] == "fail" else "ok",
                                       result[1] if result[0] != "ok" else "answer"), answer)


def run_case(world, rng, report, case, entry=None):
    asyncio.run(_case(rng, report, case, entry))


def final_check(world, report):
    pass
