# carkey — the whole ECU application on the virtual board's stand-ins under any board's config, reporting its heap.
# SPDX-License-Identifier: MIT
#
# Usage (boards/ and boards/virtual_hw on the path, CARKEY_PN532 and CARKEY_AIR set):
#   micropython -X heapsize=N -c "import app_heap; app_heap.run('esp32_devkitc', STATE_DIR)"
#
# The board's own description decides what the application brings up: its PN532
# transport module, cards, passive entry, the car bus. Only the hardware is the
# virtual board's (pins on the car body, the PN532 stand-in on a pty, the virtual
# air), and outputs and inputs are wired active-high as on the virtual board so the
# car body reads them the same on every config. The PN532 stand-in speaks HSU: a
# board whose PN532 sits on I2C or SPI imports its own transport too, so its figure
# also carries the HSU transport (a little more than the board needs, never less).
# One JSON line per event on stdout:
#   {"heap": "resident", "alloc": N, "free": N, "modules": [...]}   start-up done, idle, after gc.collect()
#   qstr pool: n_pool=N, n_qstr=N, n_str_data_bytes=N, n_total_bytes=N   (micropython.qstr_info(), right after)
#   {"tap": T, "granted": B, "kind": K, "left_loaded": [...]}   after each tap (T: 1 NFC, 2 BLE)
#   {"tables": "skipped"}                         a verification table did not fit the heap
#   {"fragmented": {...}}   run(..., fragment=True): the free heap was cut into ~1 KiB holes
#                           after start-up (_fragment), before the first tap

import asyncio
import gc
import json
from micropython import const

from carkey.ecu import app


def _desc(name):
    hw = __import__(name)
    desc = {"BOARD": hw.BOARD, "CHIP": hw.CHIP, "KIND": hw.KIND, "BUSES": hw.BUSES,
            "PASSIVE_ENTRY": getattr(hw, "PASSIVE_ENTRY", False)}
    desc["OUTPUTS"] = {role: (spec[0], False) for role, spec in hw.OUTPUTS.items()}
    desc["INPUTS"] = {role: (spec[0], False, spec[2]) for role, spec in hw.INPUTS.items()}
    return desc


def _print(obj):
    print(json.dumps(obj))


class _Platform:
    # The virtual board's hardware, with the board's own PN532 transport imported.
    def __init__(self):
        from virtual_hw.platform import VirtualPlatform

        self._v = VirtualPlatform()

    def __getattr__(self, name):
        return getattr(self._v, name)

    def pn532(self, spec):
        kind = spec.get("type")
        if kind == "i2c":
            import carkey.hw.pn532_i2c  # noqa: F401  (its heap counts)
        elif kind == "spi":
            import carkey.hw.pn532_spi  # noqa: F401
        return self._v.pn532(spec)


class _App(app.App):
    async def _tap(self, link, transport, card_uid=None):
        import sys

        outcome = await app.App._tap(self, link, transport, card_uid)
        # Which on-demand modules the tap left loaded (they should be dropped after it).
        left = [m for m in ("carkey.ecu.documents", "carkey.ecu.admin", "carkey.ecu.cardkey", "carkey.protocol.ntag424")
                if m in sys.modules]
        _print({"tap": transport, "granted": outcome.granted, "kind": outcome.kind, "left_loaded": left})
        return outcome


async def _resident(a, fragment):
    # Start-up is done when the car is up, the idle loop has filled the precompute
    # pool and built every missing verification table; then the heap is what stays.
    while a.car is None:
        await asyncio.sleep_ms(50)
    pool = a.car.reader.pool
    full = (pool.ephemeral_target, pool.nonce_target)
    while a.car._tables_fit and (a.car.keys.without_table() or pool.counts() != full):
        await asyncio.sleep_ms(50)
    if a.car._tables_fit:
        await asyncio.sleep_ms(200)
        gc.collect()
        import sys

        _print({"heap": "resident", "alloc": gc.mem_alloc(), "free": gc.mem_free(), "modules": list(sys.modules)})
        # The interpreter's string pool (names of everything loaded) is part of that
        # heap: one "qstr pool: ..." line says how much.
        import micropython

        micropython.qstr_info()
        if fragment:
            _print({"fragmented": _fragment()})
    while a.car._tables_fit:
        await asyncio.sleep_ms(100)
    _print({"tables": "skipped"})


_UNIT = const(124)  # None slots of one hole: a 16 + 124 * 8 = 1008-byte tuple (63 blocks on this port)
_PROBE = const(140)  # a 1136-byte tuple: must fit nowhere once the heap is cut into holes
_kept = None


def _fragment():
    # Cut the free heap into holes of about 1 KiB: fill every free block with
    # 1008-byte tuples (one allocation each), fill the crumbs with small tuples until
    # nothing is left, then free every other 1008-byte tuple. The probe shows that an
    # allocation a little over 1 KiB then fits nowhere, while the holes add up to
    # plenty of free heap; a tap that needs one allocation over ~1 KiB fails here.
    global _kept
    gc.collect()
    n = gc.mem_free() // (16 + 8 * _UNIT) + 1
    units = [None] * n  # made before the holes, never freed
    try:
        for i in range(n):
            units[i] = (None,) * _UNIT
    except MemoryError:
        pass
    crumbs = None
    try:
        while True:
            crumbs = (crumbs,)
    except MemoryError:
        pass
    for i in range(0, n, 2):
        units[i] = None
    _kept = (units, crumbs)
    gc.collect()
    free = gc.mem_free()
    try:
        probe = (None,) * _PROBE
        fit = True
    except MemoryError:
        fit = False
    probe = None  # noqa: F841
    gc.collect()
    return {"free": free, "holes": n // 2, "probe_bytes": 16 + 8 * _PROBE, "probe_fit": fit}


def run(board_name, state_dir, fragment=False):
    desc = _desc(board_name)
    a = _App(desc, _Platform(), state_dir, passive_entry=bool(desc["PASSIVE_ENTRY"]))

    async def main():
        asyncio.create_task(_resident(a, fragment))
        await a.run()

    try:
        asyncio.run(main())
    finally:
        a.door.safe_state()


# --- soak (carkey_host.soak): many taps, the heap every N of them, tap compute time ---
#   {"tap": T, "granted": B, "kind": K, "error": E, "results": [[cmd, code]...],
#    "tap_us": N, "wait_us": N}                   after each tap
#   {"heap": "soak", "taps": N, "alloc": N, "free": N, "restarts": N, "dead": name or None,
#    "max_beat_gap_ms": N, "task_failures": [...]}   every N taps, once the car idles again

# A board's watchdog resets it when nothing fed it for _WDT_TIMEOUT_MS (8 s); the
# timer of carkey.hw.platform stops feeding once the heartbeat is older than
# _STALL_MS (5 s) and fed last at most _WDT_FEED_MS (1 s) before that. So a heartbeat
# gap of 5 + 8 - 1 = 12 s is the shortest that resets a board.
WATCHDOG_RESET_GAP_MS = 12000


class _Watchdog:
    # What the heartbeat does to a board's watchdog, recorded: the longest gap between beats.
    def __init__(self):
        import time

        self.last = time.ticks_ms()
        self.max_gap = 0
        self.released = False

    def beat(self):
        import time

        now = time.ticks_ms()
        gap = time.ticks_diff(now, self.last)
        if gap > self.max_gap:
            self.max_gap = gap
        self.last = now

    def release(self, ms=0):
        self.released = True


class _TimedLink:
    # The radio's link with the time the car waits on it (the phone, card or stand-in
    # answering) counted apart, so tap_us is the car's own work.
    def __init__(self, link):
        self._link = link
        self.wait_us = 0

    def __getattr__(self, name):
        return getattr(self._link, name)

    async def transceive(self, capdu, timeout_ms):
        import time

        t = time.ticks_us()
        try:
            return await self._link.transceive(capdu, timeout_ms)
        finally:
            self.wait_us += time.ticks_diff(time.ticks_us(), t)


class _SoakPlatform(_Platform):
    def __init__(self):
        _Platform.__init__(self)
        self.wd = _Watchdog()
        self.failures = []

    def watchdog(self):
        return self.wd

    def task_failed(self, name, exc):
        self.failures.append("%s: %s: %s" % (name, type(exc).__name__, exc))


class _SoakApp(app.App):
    every = 100

    async def _tap(self, link, transport, card_uid=None):
        import time

        timed = _TimedLink(link)
        t = time.ticks_us()
        outcome = await app.App._tap(self, timed, transport, card_uid)
        total = time.ticks_diff(time.ticks_us(), t)
        _print({"tap": transport, "granted": outcome.granted, "kind": outcome.kind, "error": outcome.error,
                "results": outcome.results, "tap_us": total - timed.wait_us, "wait_us": timed.wait_us})
        if not self.taps % self.every:
            asyncio.create_task(_soak_heap(self, self.taps))
        return outcome


async def _idle_again(a, timeout_ms=60000):
    # The car idles again: precompute pool full, every verification table built.
    import time

    pool = a.car.reader.pool
    full = (pool.ephemeral_target, pool.nonce_target)
    t = time.ticks_ms()
    while a.car._tables_fit and (a.car.keys.without_table() or pool.counts() != full):
        if time.ticks_diff(time.ticks_ms(), t) > timeout_ms:
            return False
        await asyncio.sleep_ms(20)
    return True


async def _soak_heap(a, taps):
    idle = await _idle_again(a)
    gc.collect()
    _print({"heap": "soak", "taps": taps, "alloc": gc.mem_alloc(), "free": gc.mem_free(), "idle": idle,
            "restarts": a.supervisor.restarts, "dead": a.supervisor.dead, "max_beat_gap_ms": a.platform.wd.max_gap,
            "task_failures": a.platform.failures[:5]})


def soak(board_name, state_dir, every=100):
    """The whole application as run() starts it, for a soak: tap events with compute
    time, and the heap after every `every` taps."""
    desc = _desc(board_name)
    _SoakApp.every = every
    platform = _SoakPlatform()
    a = _SoakApp(desc, platform, state_dir, passive_entry=bool(desc["PASSIVE_ENTRY"]))
    # Taps come far faster than a person's, and the door motor's duty limit (6 pulses a
    # minute) would refuse most of them: the door's clock runs a minute ahead per tap,
    # as if the taps were a minute apart (pulses, relock and drive-enable still run on it).
    import time

    a.door._clock = lambda: time.ticks_add(time.ticks_ms(), a.taps * 60000)

    async def main():
        asyncio.create_task(_resident(a, False))
        await a.run()

    try:
        asyncio.run(main())
    finally:
        a.door.safe_state()
