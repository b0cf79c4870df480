# carkey — the car ECU application: every task on one asyncio loop (radios, door, idle work, watchdog).
# SPDX-License-Identifier: MIT
#
# main.py calls run(). The hardware comes from the platform the board description
# names (carkey.hw.platform on a real board); the CPU is raised to 240 MHz at start
# (stock ESP32 builds boot at 160 MHz; docs/PERFORMANCE.md's estimates are for 240).
# The order of start-up matters for safety and for secrets:
#   1. the door controller is built first, so every relay is at its safe level
#      before anything slow happens (the board's pull resistors hold them until then);
#   2. the radios come up before a first boot makes the reader identity, because
#      an ESP32's os.urandom is truly random only with a radio on;
#   3. the watchdog starts last, once the loop runs. A hardware timer feeds it
#      while the loop's heartbeat is fresh: a stalled loop (a crypto step that
#      never yields) resets the board, and the door controller puts every output
#      back to safe on the way up. An ESP32 watchdog cannot be stopped, so when
#      the application is interrupted (Ctrl-C from the USB REPL, e.g. to deploy)
#      the timer goes on feeding it: the REPL must not reset under the user.
# Each tap runs to its end before the next on the same radio; a failure anywhere in
# a tap is logged by the Car and never stops a radio's task.

import asyncio
from micropython import const

from carkey.ecu import codes
from carkey.ecu.auditlog import TRANSPORT_BLE, TRANSPORT_NFC

STATE_DIR = "/state"
_IDLE_MS = const(500)
_CHECKPOINT_MS = const(60000)


# Rarely used modules: loaded when needed, dropped after, so their code does not
# stay on the heap between taps.
_ADMIN = "carkey.ecu.admin"
# Loaded by a tap that carried a share or revocation, or by a card tap.
_ON_DEMAND = ("carkey.ecu.documents", "carkey.ecu.cardkey", "carkey.protocol.ntag424")


def drop(name):
    """Forget module `name` (if loaded) so the collector can free its code."""
    import sys

    if name in sys.modules:
        del sys.modules[name]
        package, _, attr = name.rpartition(".")
        parent = sys.modules.get(package)
        if parent is not None and hasattr(parent, attr):
            delattr(parent, attr)
        import gc

        gc.collect()


class App:
    def __init__(self, board, platform=None, state_dir=STATE_DIR, place="door", passive_entry=False):
        from carkey.ecu import assembly

        if platform is None:
            from carkey.hw.platform import for_board

            platform = for_board(board)
        self.platform = platform
        # Safe outputs first.
        self.board, self.door = assembly.door(board, self.platform.pin_factory(), self.platform.uart_factory())
        self.state_dir = state_dir
        self.place = place
        self.car = None
        self.taps = 0
        self.stop = asyncio.Event()
        # One tap at a time across every radio: a tap owns the key store, the
        # precompute pool, the lockout and the door until it ends. A phone that
        # waits simply gets its first command later (the reader speaks first).
        self._tap_lock = asyncio.Lock()
        self.watchdog = None
        # Passive entry (unlock on approach, lock on walk-away) is the owner's opt-in.
        self.passive_entry = passive_entry
        self._watch = None
        self._watched_pub = None

    def _start_car(self):
        from carkey import storage
        from carkey.ecu import assembly
        from carkey.ecu.car import IDENTITY_RECORD

        if storage.load(self.state_dir, IDENTITY_RECORD) is None:
            from carkey.ecu import admin

            admin.init(self.state_dir)  # first boot, with the radio already on
            drop(_ADMIN)
        self.car = assembly.car(self.state_dir, self.board, self.door, self.place)

    async def _tap(self, link, transport, card_uid=None):
        async with self._tap_lock:
            self.taps += 1
            outcome = await self.car.handle(link, transport, card_uid=card_uid)
            self.car.settle()  # the tap's audit records and usage, right after its answer
            for name in _ON_DEMAND:
                drop(name)
            return outcome

    async def _nfc(self):
        from carkey.hw.nfc_link import poll

        pn532 = self.platform.pn532(self.board.bus("pn532"))
        if pn532 is None:
            return  # no reader front end on this (virtual) board

        async def on_target(link, target):
            await self._tap(link, TRANSPORT_NFC, bytes(target.uid))

        await poll(pn532, on_target, stop=self.stop)

    async def _ble(self, server):
        async def on_phone(link):
            outcome = await self._tap(link, TRANSPORT_BLE)
            if outcome.error == codes.AUTH_FAILED:
                await link.close()  # no second try on this connection (docs/PROTOCOL.md §2b)
            elif outcome.granted and self._watch is not None:
                self._watched_pub = outcome.credential_pub
                self._watch.watch(link.addr)

        await server.serve(on_phone)

    async def _on_proximity(self, action):
        # ACTION_LOCK / ACTION_UNLOCK are the §4.1 command ids.
        async with self._tap_lock:
            self.car.passive(action, self._watched_pub, TRANSPORT_BLE)
            self.car.settle()

    async def _idle(self):
        # Precompute ephemeral keys and nonces between taps (the pool pauses itself
        # whenever a tap holds it) and the verification tables of new keys; raise
        # the clock floor now and then.
        import time

        last = time.ticks_ms()
        while not self.stop.is_set():
            await self.car.reader.pool.fill()
            await self.car.prepare_tables()  # sliced: a tap that arrives meanwhile runs between slices
            if time.ticks_diff(time.ticks_ms(), last) > _CHECKPOINT_MS:
                self.car.clock.checkpoint()
                last = time.ticks_ms()
            await asyncio.sleep_ms(_IDLE_MS)

    async def _heartbeat(self, watchdog):
        from carkey.hw.platform import FEED_MS

        while not self.stop.is_set():
            watchdog.beat()
            await asyncio.sleep_ms(FEED_MS)

    async def run(self):
        tasks = [asyncio.create_task(self.door.run())]
        self.platform.full_speed()  # 240 MHz: stock builds boot at 160
        ble = self.platform.ble()
        if ble is not None:
            ble.active(True)  # the radio on before a first boot draws the identity
        self._start_car()
        if "pn532" in self.board.buses:
            tasks.append(asyncio.create_task(self._nfc()))
        if ble is not None:
            from carkey.hw.ble_gatt import BleServer, device_name

            server = BleServer(device_name(self.car.identity.group_id), ble)
            server.start()
            tasks.append(asyncio.create_task(self._ble(server)))
            if self.passive_entry:
                from carkey.ecu.proximity import PassiveEntry, Proximity
                from carkey.hw.ble_watch import ProximityWatch

                self._watch = ProximityWatch(server, PassiveEntry(Proximity(), enabled=True))
                tasks.append(asyncio.create_task(self._watch.run(self._on_proximity)))
        tasks.append(asyncio.create_task(self._idle()))
        self.watchdog = self.platform.watchdog()
        if self.watchdog is not None:
            tasks.append(asyncio.create_task(self._heartbeat(self.watchdog)))
        await self.stop.wait()
        for t in tasks:
            t.cancel()
        self.door.safe_state()


def safe_boot(board):
    from carkey.hw.platform import safe_boot

    return safe_boot(board)


def run(board=None, platform=None, state_dir=STATE_DIR, passive_entry=None):
    if board is None:
        import board  # the board description deploy installed as /board.py
    if passive_entry is None:
        passive_entry = bool(getattr(board, "PASSIVE_ENTRY", False))
    app = App(board, platform, state_dir, passive_entry=passive_entry)
    try:
        asyncio.run(app.run())
    finally:
        # Interrupted or stopped: outputs safe, and the REPL keeps the board alive.
        app.door.safe_state()
        if app.watchdog is not None:
            app.watchdog.release()
