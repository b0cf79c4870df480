# carkey — the key fob application: wake on the button, visit the car over BLE, show the outcome, sleep.
# SPDX-License-Identifier: MIT
#
# firmware/main.py runs this on a board whose config says KIND = "fob". One loop
# samples the button every 5 ms (carkey.fob.button); a gesture becomes a command
# (BUTTON_ACTIONS in the board config, default short = unlock, long = lock,
# double = trunk) and a visit to the car the fob trusts (carkey.hw.ble_central)
# runs while the loop keeps sampling, so presses during it are swallowed. The
# LED (and buzzer) then shows the outcome (carkey.fob.signals). After
# IDLE_SLEEP_MS with nothing under way the fob goes to deep sleep, woken by the
# button (or, with the button stuck, by a timer).
#
# The hardware comes from the platform the board description names (PLATFORM):
# carkey.hw.fob_platform on an ESP32 fob, boards/virtual_hw/fob_platform.py on
# the virtual one.

import time

# When the application began to load. A button that woke the fob was pressed, and a
# tap already released, before this: the gesture's timers may count from here
# rather than from after the imports (run() below), which shortens nothing the user did.
_LOADED_MS = time.ticks_ms()

import asyncio  # noqa: E402
from micropython import const  # noqa: E402

from carkey.fob.button import STUCK, Button  # noqa: E402
from carkey.fob.client import COMMANDS, Request  # noqa: E402
from carkey.fob.state import FobState, FobStateError  # noqa: E402
from carkey.hw.fob_platform import for_board, safe_boot  # noqa: E402,F401 (main.py calls app.safe_boot, as on the car)

STATE_DIR = "/state"
DEFAULT_ACTIONS = {"short": "unlock", "long": "lock", "double": "trunk"}
IDLE_SLEEP_MS = 3000
STUCK_SLEEP_MS = 60000  # with the button held, a timer wakes the fob instead
_SAMPLE_MS = 5


class Press:
    """What one press did, as the fob saw it."""

    def __init__(self, command):
        self.command = command
        self.outcome = None  # carkey.hw.ble_central outcome: done, car-not-found, ...
        self.kind = None  # standard or fast
        self.granted = False
        self.result = None  # the car's result code for the command
        self.signal = None
        self.battery_mv = None
        self.direct = False  # connected straight to the car's known address (no scan)
        self.ms = 0

    def to_dict(self):
        return {"command": self.command, "outcome": self.outcome, "kind": self.kind, "granted": self.granted,
                "result": self.result, "signal": self.signal, "battery_mv": self.battery_mv, "direct": self.direct,
                "ms": self.ms}


class _Pin:
    # A pin in its logical sense (1 = active, whatever the wiring), as
    # carkey.hw.pins.Output/Input give the car: the fob's three pins do not need
    # that module. An output's level is cached, not read back from the pad.
    def __init__(self, pin, active_low, output):
        self._pin = pin
        self._invert = 1 if active_low else 0
        self._level = 0 if output else None  # None: an input, always read

    def value(self, v=None):
        if v is None:
            if self._level is None:
                return self._pin.value() ^ self._invert
            return self._level
        self._level = 1 if v else 0
        self._pin.value(self._level ^ self._invert)


def _pin(make, desc, kind, role):
    # The role's pin from the board description (OUTPUTS or INPUTS), through the platform's factory.
    specs = getattr(desc, kind, None) or {}
    spec = specs.get(role)
    if spec is None:
        if role == "buzzer":
            return None
        raise ValueError("board description has no %s %s" % (kind[:-1].lower(), role))
    gpio, active_low = spec[0], spec[1]
    if kind == "OUTPUTS":
        return _Pin(make(role, gpio, "out", None, 1 if active_low else 0), active_low, True)
    return _Pin(make(role, gpio, "in", spec[2], 1 if active_low else 0), active_low, False)


_KEPT_LEN = const(130)  # 5 + 16 + 1 + 6 + 2 + 2 + 1 + 32 + 65


class _Visit:
    # One visit under way: its link, the request the gesture completes, and what it came to.
    def __init__(self, link, request):
        self.link = link
        self.request = request
        self.kept = None
        self.task = None
        self.outcome = None  # carkey.hw.ble_central outcome: done, car-not-found, ...
        self.kind = None  # the transaction's: standard, fast, or None
        self.control_flow = None  # the car's CONTROL FLOW (S1, S2), or None
        self.spare = None  # an ephemeral key pair the device made ahead and never sent


# Code only a transaction runs (the user device and what it alone loads). A visit
# drops it when it ends: the LED, the next press's key and the sleep need none of
# it, so the rest of the wake does not hold it (docs/FOB.md). A second press in
# the same wake loads it again.
_TRANSACTION_MODULES = ("carkey.fob.device", "carkey.protocol.channel", "carkey.protocol.aliro_keys",
                        "carkey.protocol.tlv", "carkey.crypto.aes")


def _drop_modules(names):
    # Forget the modules (if loaded) so the collector can free their code.
    import sys

    for name in names:
        if name in sys.modules:
            del sys.modules[name]
            package, _, attr = name.rpartition(".")
            parent = sys.modules.get(package)
            if parent is not None and hasattr(parent, attr):
                delattr(parent, attr)


class _Kept:
    """What the fob keeps between presses in memory that survives deep sleep but not
    a power cut (the platform's retained(): RTC memory on an ESP32), never on flash:
      CKRT | format | group id 16 | addr type 1 | addr 6 | write handle 2 | indicate handle 2
           | has key 1 | ephemeral private 32 | ephemeral public 65
    The car's address and handles let the next visit connect straight away; the
    ephemeral key pair, made after a press, is the next press's. It is used at
    most once: take_ephemeral() erases it before the visit can use it (docs/FOB.md)."""

    def __init__(self, platform):
        self._platform = platform
        raw = platform.retained()
        if raw is not None and len(raw) == _KEPT_LEN and raw[:5] == b"CKRT\x01":
            self._raw = bytearray(raw)
        else:
            self._raw = bytearray(_KEPT_LEN)
            self._raw[:5] = b"CKRT\x01"

    def _save(self):
        self._platform.retain(self._raw)

    def car(self, group_id):
        # (addr type, addr, write handle, indicate handle) of this group's car, or None.
        r = self._raw
        if r[5:21] != group_id or not (r[28] | r[29] | r[30] | r[31]):
            return None
        return r[21], bytes(r[22:28]), (r[28] << 8) | r[29], (r[30] << 8) | r[31]

    def set_car(self, group_id, learned):
        r = self._raw
        old = bytes(r[5:32])
        if learned is None:
            r[5:32] = bytes(27)
        else:
            addr_type, addr, wh, ih = learned
            r[5:21] = group_id
            r[21] = addr_type
            r[22:28] = addr
            r[28:32] = bytes((wh >> 8, wh & 0xFF, ih >> 8, ih & 0xFF))
        if bytes(r[5:32]) != old:
            self._save()

    def take_ephemeral(self):
        r = self._raw
        if not r[32]:
            return None
        pair = bytes(r[33:65]), bytes(r[65:130])
        r[32:130] = bytes(98)
        self._save()  # erased before it can be used: never twice, whatever happens next
        return pair

    def keep_ephemeral(self, pair):
        r = self._raw
        r[32] = 1
        r[33:65] = pair[0]
        r[65:130] = pair[1]
        self._save()


class FobApp:
    def __init__(self, board, platform=None, state_dir=STATE_DIR):
        self.desc = board
        self.platform = for_board(board) if platform is None else platform
        make = self.platform.pin_factory()
        self.led = _pin(make, board, "OUTPUTS", "led")
        self.buzzer = _pin(make, board, "OUTPUTS", "buzzer")
        self.button_pin = _pin(make, board, "INPUTS", "button")
        actions = dict(DEFAULT_ACTIONS)
        actions.update(getattr(board, "BUTTON_ACTIONS", None) or {})
        for gesture, name in actions.items():
            if name not in COMMANDS:
                raise ValueError("button action %s: unknown command %s" % (gesture, name))
        self.actions = actions
        self.battery = getattr(board, "BATTERY", None)
        self.deadlines = getattr(board, "BLE_DEADLINES", None)
        self.state = FobState(state_dir)
        self._ble = None

    def radio(self):
        if self._ble is None:
            self._ble = self.platform.ble()
            self._ble.active(True)
        return self._ble

    def ensure_credential(self):
        # First boot: the radio comes up first (the RNG is truly random only then).
        if not self.state.has_credential():
            self.radio()
            self.state.create_credential()
        return self.state.public_key()

    def start_visit(self):
        # Starts the visit to the car the moment the button goes down, before the
        # gesture is known: a Visit, or None with no car to visit. The radio starts
        # first (a known car is connected to straight away, carkey.hw.ble_central);
        # the protocol code loads while it works; the car runs the transaction up
        # to its hello, whose answer waits for press() to say the command.
        cars = self.state.cars()
        if not cars:
            return None
        from carkey.hw.ble_central import FobLink
        from carkey.hw.ble_ids import device_name

        group_id = cars[0][0]
        kept = _Kept(self.platform)
        link = FobLink(self.radio(), self.deadlines)
        link.begin(device_name(group_id), kept.car(group_id))
        visit = _Visit(link, Request(battery_mv=self.platform.battery_mv(self.battery), share=self.state.share(group_id)))
        visit.task = asyncio.create_task(self._visit(visit, group_id, kept))
        return visit

    async def _visit(self, visit, group_id, kept):
        # Never ends in an exception the loop would report as never retrieved.
        from carkey.fob.device import UserDevice  # loads while the radio connects
        from carkey.hw.ble_central import VisitError

        link = visit.link
        visit.kept = kept
        device = UserDevice(self.state, on_exchange=visit.request.on_exchange, spare=kept.take_ephemeral())
        try:
            try:
                await link.open(device)
            except VisitError:
                kept.set_car(group_id, None)  # not reached: the next visit scans
                raise
            kept.set_car(group_id, link.learned())
            if visit.request.cancelled:
                raise VisitError("dropped", "no gesture")
            visit.outcome = await link.run(device)
        except VisitError as e:
            visit.outcome = e.outcome
        finally:
            txn = device.txn
            if txn is not None:
                visit.kind = txn.kind
                visit.control_flow = txn.control_flow
            await link.close(device)
            visit.spare = device.take_spare()
            txn = device = UserDevice = None  # noqa: F841 (nothing of the transaction's code stays reachable)
            _drop_modules(_TRANSACTION_MODULES)
        if visit.outcome != "done" and visit.outcome != "dropped":
            # Reached but not served (kept handles the car took but did not act on, a lost
            # link): the next visit scans and discovers rather than repeat it.
            kept.set_car(group_id, None)

    @staticmethod
    async def _keep_next_ephemeral(visit):
        # The next press's ephemeral key pair, made after this one's visit rather
        # than on the next one's critical path: the one made ahead and never sent,
        # or a new one.
        pair = visit.spare
        visit.spare = None
        if pair is None:
            from carkey.crypto import p256
            from carkey.steps import run_steps

            pair = await run_steps(p256.keypair_steps())
        visit.kept.keep_ephemeral(pair)

    async def press(self, command_name, visit=None):
        # One press: the visit (started early, or now) told its command, then the LED. Returns a Press.
        press = Press(command_name)
        start = time.ticks_ms()
        if visit is None:
            visit = self.start_visit()
        if visit is None:
            from carkey.fob import signals

            press.battery_mv = self.platform.battery_mv(self.battery)
            press.outcome = "no-car"
            press.signal = signals.REFUSED
        else:
            req = visit.request
            req.set_command(COMMANDS[command_name])
            press.battery_mv = req.battery_mv
            await visit.task
            visit.task = None  # a finished coroutine still points at what its frame held
            # The LED's code loads only now: after the transaction, whose standard AUTH1
            # is the heap's peak, and after the car acted, so it delays only the LED.
            from carkey.fob import signals

            press.outcome = visit.outcome
            press.direct = visit.link.direct
            cf = visit.control_flow
            press.kind = visit.kind
            press.granted = press.outcome == "done" and cf is not None and cf[0] == 1
            press.result = req.result if req.result >= 0 else None
            if press.outcome == "car-not-found" or press.outcome == "connect-failed":
                press.signal = signals.CAR_NOT_FOUND
            else:
                press.signal = signals.for_result(press.granted, press.result)
            if press.kind is not None:
                self.state.count(press.granted)
            if req.share is not None and req.share_result == 0:
                self.state.drop_share()  # enrolled now: the car keeps the key
        press.ms = time.ticks_diff(time.ticks_ms(), start)
        low = press.battery_mv is not None and press.battery_mv < self.battery.get("low_mv", 0)
        making = asyncio.create_task(self._keep_next_ephemeral(visit)) if visit is not None else None
        await signals.show(press.signal, self.led, self.buzzer, low)  # while the next key is made
        if making is not None:
            await making
        return press

    async def _drop(self, visit):
        # The button went down but made no gesture (or got stuck): ask for nothing.
        visit.request.cancel()
        await visit.task
        visit.task = None
        await self._keep_next_ephemeral(visit)

    async def run(self, idle_sleep_ms=IDLE_SLEEP_MS, on_press=None, started_ms=None):
        # The fob's life between two deep sleeps. Returns after asking for sleep
        # (on a board deep sleep never returns; the virtual board records it).
        self.ensure_credential()
        button = Button(getattr(self.desc, "BUTTON_TIMING", None), pressed_at_boot=self.button_pin.value(),
                        woken_by_button=self.platform.woken_by_button(),
                        now_ms=time.ticks_ms() if started_ms is None else started_ms)
        task = None
        visit = None  # a visit opened when the button went down, waiting for the gesture
        idle_since = time.ticks_ms()
        gpio, active_low, _ = self.desc.INPUTS["button"]
        while True:
            now = time.ticks_ms()
            gesture = button.update(now, self.button_pin.value())
            if gesture == STUCK:
                if visit is not None:
                    await self._drop(visit)
                self.platform.deep_sleep(gpio, active_low, STUCK_SLEEP_MS)
                return
            if visit is None and task is None and button.started():
                visit = self.start_visit()  # scan and connect while the gesture is told apart
            if gesture is not None and task is None:
                button.set_busy(True)
                task = asyncio.create_task(self.press(self.actions[gesture], visit))
                visit = None
            if task is not None and task.done():
                press = await task
                task = None
                button.set_busy(False)
                idle_since = time.ticks_ms()
                if on_press is not None:
                    on_press(press)
            if task is None and button.idle() and time.ticks_diff(now, idle_since) >= idle_sleep_ms:
                if visit is not None:
                    await self._drop(visit)  # the button went down but made no gesture
                self.platform.deep_sleep(gpio, active_low)
                return
            await asyncio.sleep_ms(_SAMPLE_MS)


# --- over USB (carkey fob press): the host runs this through the REPL. Provisioning's
# entry points (identity, trust, import_share) are carkey.fob.provision's: a press never loads them.


def press_once(board, command_name, platform=None, state_dir=STATE_DIR):
    # One press without the button: the same visit and the same signal as a
    # button gesture gives.
    if command_name not in COMMANDS:
        raise FobStateError("unknown command %s" % command_name)
    app = FobApp(board, platform, state_dir)
    app.ensure_credential()
    return asyncio.run(app.press(command_name)).to_dict()


def run(board, platform=None, state_dir=STATE_DIR):
    # main.py calls this right after importing the application: the button's state
    # at boot counts from when the application began to load.
    asyncio.run(FobApp(board, platform, state_dir).run(started_ms=_LOADED_MS))
