# carkey — the reader's own transactions for the benchmark: recorded once against a live device, replayed.
# SPDX-License-Identifier: MIT
#
# A benchmark needs the same tap again and again, but a real device answers with
# fresh randomness. So record() runs the real ECU (carkey.ecu.car) once against a
# live user device with a fixed reader ephemeral key and signing nonce, and keeps
# every APDU pair; replay() then runs the very same ECU code on a link that checks
# each command against the recording and returns the recorded answer. Because the
# reader's inputs are fixed, every byte it sends must match: a replay that drifts
# raises instead of measuring something else.
#
# The timed work is exactly a tap after idle precomputation: Car.handle() with the
# ephemeral key and nonce already in the pool, SELECT to CONTROL FLOW. Car.settle()
# (the audit record and key-store commit that follow the tap) is measured apart.

import asyncio
import os

from carkey import storage
from carkey.crypto import p256
from carkey.ecu import assembly
from carkey.ecu.car import IDENTITY_RECORD
from carkey.protocol.errors import LinkError
from carkey.protocol.identity import ReaderIdentity

_OUTPUTS = ("lock", "unlock", "unlock_driver", "trunk", "drive_enable", "horn", "lights", "led", "buzzer")
_INPUTS = ("door_driver", "door_passenger", "door_rear_left", "door_rear_right", "door_trunk", "lock_feedback", "ignition")
_TAP_SPACING_MS = 120000  # taps a couple of minutes apart: pulses end, duty windows renew


class _Pin:
    def __init__(self, role=None, gpio=None, mode=None, pull=None, idle_level=0):
        self.level = idle_level

    def value(self, v=None):
        if v is None:
            return self.level
        self.level = v


class _Ticks:
    # The door's clock: advanced between taps instead of waiting.
    def __init__(self):
        self.now = 0

    def __call__(self):
        return self.now


def _isdir(path):
    try:
        return os.stat(path)[0] & 0x4000 != 0
    except OSError:
        return False


class ReplayMismatch(AssertionError):
    pass


class _Recording:
    def __init__(self, link):
        self._link = link
        self.pairs = []

    async def transceive(self, capdu, timeout_ms):
        rapdu = await self._link.transceive(capdu, timeout_ms)
        self.pairs.append((bytes(capdu).hex(), bytes(rapdu).hex()))
        return rapdu


class _Replay:
    def __init__(self, pairs):
        self._pairs = pairs
        self._i = 0

    async def transceive(self, capdu, timeout_ms):
        if self._i == len(self._pairs):
            raise LinkError("recording exhausted")
        want, answer = self._pairs[self._i]
        self._i += 1
        if bytes(capdu) != want:
            raise ReplayMismatch("command %d differs from the recording" % self._i)
        return answer


class Bench:
    """A car over a fresh state directory, set up from a fixture (see record())."""

    def __init__(self, dir, fixture):
        self.fixture = fixture
        for name in ("identity", "keys", "lockout", "clock"):
            storage.remove(dir, name)
        for name in os.listdir(dir) if _isdir(dir) else ():
            if name.startswith("vt"):
                os.remove(dir + "/" + name)
        storage.save(dir, IDENTITY_RECORD, bytes.fromhex(fixture["identity"]))
        self.ticks = _Ticks()
        # Every role, active high, no car bus: pins that only hold their level.
        desc = {"BOARD": "bench", "OUTPUTS": {}, "INPUTS": {}, "BUSES": {}}
        for i, role in enumerate(_OUTPUTS):
            desc["OUTPUTS"][role] = (i, False)
        for i, role in enumerate(_INPUTS):
            desc["INPUTS"][role] = (32 + i, False, None)
        board, door = assembly.door(desc, _Pin, clock=self.ticks)
        self.car = assembly.car(dir, board, door)
        from carkey.ecu.keystore import Credential

        self.car.keys.add(Credential(bytes.fromhex(fixture["owner"]), 1, 0x7F))
        self.car.keys.commit()
        asyncio.run(self.car.prepare_tables())  # built while the board idles after enrolment
        self._eph = (bytes.fromhex(fixture["eph_priv"]), bytes.fromhex(fixture["eph_pub"]),
                     bytes.fromhex(fixture["txid"]))
        self._nonce = (int(fixture["nonce_r"], 16), int(fixture["nonce_kinv"], 16))

    def _arm(self):
        # What the idle loop would have left in the pool: the fixed key and nonce.
        pool = self.car.reader.pool
        pool.clear()
        pool.add_ephemeral(*self._eph)
        pool.add_nonce(p256.Nonce(*self._nonce))
        self.ticks.now += _TAP_SPACING_MS
        self.car.door.tick()

    def tap(self, link, fast):
        self._arm()
        return asyncio.run(self.car.handle(link, 3, fast))

    def replay(self, kind):
        pairs = [(bytes.fromhex(c), bytes.fromhex(r)) for c, r in self.fixture[kind]]
        outcome = self.tap(_Replay(pairs), kind == "fast")
        if not outcome.granted or outcome.kind != kind:
            raise ReplayMismatch("replayed %s tap ended %r" % (kind, outcome))
        return outcome


def new_fixture(owner_pub):
    ident = ReaderIdentity.generate()
    eph_priv, eph_pub = p256.generate_keypair()
    nonce = p256.precompute_nonce()
    return {
        "identity": ident.to_bytes().hex(),
        "owner": owner_pub,
        "eph_priv": eph_priv.hex(),
        "eph_pub": eph_pub.hex(),
        "txid": os.urandom(16).hex(),
        "nonce_r": "%x" % nonce.r,
        "nonce_kinv": "%x" % nonce._kinv,
    }


async def _record_tap(bench, host, port, framing, fast):
    from carkey.hw.link_tcp import TcpLink

    link = await TcpLink.connect(host, port, framing)
    rec = _Recording(link)
    try:
        bench._arm()
        outcome = await bench.car.handle(rec, 3, fast)
        bench.car.settle()
    finally:
        await link.close()
    return outcome, rec.pairs


def record(dir, fixture, host, port, framing="lp"):
    """The fixture with a standard then a fast tap recorded against the device at
    host:port, which holds the fixture's owner credential and trusts its reader."""
    bench = Bench(dir, fixture)
    for kind in ("standard", "fast"):
        outcome, pairs = asyncio.run(_record_tap(bench, host, port, framing, kind == "fast"))
        if not outcome.granted or outcome.kind != kind:
            raise AssertionError("recording the %s tap failed: %r" % (kind, outcome))
        fixture[kind] = pairs
    return fixture

