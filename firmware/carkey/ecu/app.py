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
# a tap is logged by the Car and never stops a radio's task. The tasks run under a
# Supervisor (carkey.ecu.supervisor): one that fails is restarted, one that keeps
# failing is given up and the heartbeat stops, so the watchdog resets the board
# rather than leave a half-working car.

import asyncio
import time
from micropython import const

from carkey.ecu import codes
from carkey.ecu.auditlog import TRANSPORT_BLE, TRANSPORT_NFC
from carkey.ecu.supervisor import Supervisor

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
        self.supervisor = Supervisor(report=getattr(platform, "task_failed", None))
        # Passive entry (unlock on approach, lock on walk-away) is the owner's opt-in.
        self.passive_entry = passive_entry
        self._watch = None
        self._watched_pub = None
        self.maintenance_s = 0  # an owner-signed maintenance request: hand the board back this long

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
                if outcome.credential_pub == self._watched_pub:
                    # The watched phone proved itself again: the proof an approach needs.
                    self._watch.follow(link.addr)
                    action = self._watch.entry.transaction(time.ticks_ms())
                    if action is not None:
                        await self._on_proximity(action)
                else:
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
                self.car.flush_log(ended_only=True)  # strangers' counts of an ended interval
                last = time.ticks_ms()
            await asyncio.sleep_ms(_IDLE_MS)

    async def _console(self, stream, out=None):
        # Owner requests on the USB console, one at a time and never during a tap; a
        # change to keys or clock reaches the running car at once. out: where answers
        # go (the console's own output, sys.stdout; a test reads them elsewhere).
        import sys

        from carkey.ecu import console

        async def handle(line):
            # admin is loaded by the first request, not at start-up (its session lives there).
            from carkey.ecu import admin

            async with self._tap_lock:
                car = self.car
                changes = console.changes_keys(line)
                answered = console.answer(self.state_dir, line, car.clock.now(), out or sys.stdout, car.clock, car.log,
                                          car.keys)
                if answered and changes:
                    try:
                        car.keys.load()  # exactly what was committed, whatever happened in between
                    except (OSError, ValueError):
                        pass  # unreadable now: the store in RAM holds the change submit committed
                seconds = admin.take_maintenance()
                if seconds:
                    self.maintenance_s = seconds  # the answer is out: stop, run() opens the REPL
                    self.stop.set()

        await console.serve(stream, handle)

    async def _heartbeat(self, watchdog):
        from carkey.hw.platform import FEED_MS

        await self.supervisor.heartbeat(watchdog, FEED_MS, self.stop)

    async def run(self):
        start = self.supervisor.start
        tasks = [start("door", self.door.run)]
        self.platform.full_speed()  # 240 MHz: stock builds boot at 160
        ble = self.platform.ble()
        if ble is not None:
            ble.active(True)  # the radio on before a first boot draws the identity
        self._start_car()
        if "pn532" in self.board.buses:
            tasks.append(start("nfc", self._nfc))
        if ble is not None:
            from carkey.hw.ble_gatt import BleServer, device_name

            server = BleServer(device_name(self.car.identity.group_id), ble)
            server.start()
            tasks.append(start("ble", lambda: self._ble(server)))
            if self.passive_entry:
                from carkey.ecu.proximity import PassiveEntry, Proximity
                from carkey.hw.ble_watch import ProximityWatch

                self._watch = ProximityWatch(server, PassiveEntry(Proximity(), enabled=True))
                tasks.append(start("proximity", lambda: self._watch.run(self._on_proximity)))
        tasks.append(start("idle", self._idle))
        stream = self.platform.console() if hasattr(self.platform, "console") else None
        if stream is not None:
            tasks.append(start("console", lambda: self._console(stream)))
        self.watchdog = self.platform.watchdog()
        if self.watchdog is not None:
            tasks.append(asyncio.create_task(self._heartbeat(self.watchdog)))
        await self.stop.wait()
        for t in tasks:
            t.cancel()
        self.door.safe_state()
        self.car.flush_log()


def safe_boot(board):
    from carkey.hw.platform import safe_boot

    return safe_boot(board)


def run(board=None, platform=None, state_dir=STATE_DIR, passive_entry=None):
    if board is None:
        import board  # the board description deploy installed as /board.py
    if passive_entry is None:
        passive_entry = bool(getattr(board, "PASSIVE_ENTRY", False))
    from carkey.ecu import admin

    if platform is None:
        from carkey.hw.platform import for_board

        platform = for_board(board)
    installed = admin.installed(state_dir)
    del admin
    drop(_ADMIN)  # the admin code is loaded again only when the console needs it
    platform.kbd_intr(-1 if installed else 3)  # installed: the REPL stays closed (docs/SECURITY.md)
    app = None
    try:
        app = App(board, platform, state_dir, passive_entry=passive_entry)
        asyncio.run(app.run())
    except BaseException as e:  # noqa: B036 - installed, nothing may reach the REPL
        if not installed:
            raise
        print("carkey: application failed (%s): resetting" % type(e).__name__)
    finally:
        # Interrupted or stopped: outputs safe, and the REPL keeps the board alive.
        if app is not None:
            app.door.safe_state()
            if app.maintenance_s:
                platform.kbd_intr(3)
                platform.maintenance(app.watchdog, app.maintenance_s)
            elif app.watchdog is not None and not installed:
                app.watchdog.release()
    if installed and not (app and app.maintenance_s):
        platform.reset()  # never back to the REPL: the application starts again
