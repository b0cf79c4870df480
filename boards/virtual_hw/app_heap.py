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
