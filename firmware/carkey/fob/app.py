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

import asyncio
import time

from carkey.fob import signals
from carkey.fob.button import STUCK, Button
from carkey.fob.client import COMMANDS
from carkey.fob.state import FobState, FobStateError
from carkey.hw.fob_platform import for_board, safe_boot  # noqa: F401 (main.py calls app.safe_boot, as on the car)

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
        self.ms = 0

    def to_dict(self):
        return {"command": self.command, "outcome": self.outcome, "kind": self.kind, "granted": self.granted,
                "result": self.result, "signal": self.signal, "battery_mv": self.battery_mv, "ms": self.ms}


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
        # Finds and connects to the car (carkey.hw.ble_central.FobLink.open) before
        # the gesture is known: (link, device, task), or None with no car to visit.
        cars = self.state.cars()
        if not cars:
            return None
        from carkey.hw.ble_central import FobLink
        from carkey.fob.device import UserDevice
        from carkey.hw.ble_ids import device_name

        device = UserDevice(self.state)
        link = FobLink(self.radio(), self.deadlines)
        return link, device, asyncio.create_task(self._open(link, device, device_name(cars[0][0])))

    @staticmethod
    async def _open(link, device, name):
        # The task never ends in an exception the loop would report as never retrieved.
        from carkey.hw.ble_central import VisitError

        try:
            await link.open(device, name)
            return None
        except VisitError as e:
            return e

    async def press(self, command_name, visit=None):
        # One press: the visit (started early, or now), then the LED. Returns a Press.
        from carkey.hw.ble_central import DONE, VisitError
        from carkey.fob.client import Request

        press = Press(command_name)
        start = time.ticks_ms()
        press.battery_mv = self.platform.battery_mv(self.battery)
        if visit is None:
            visit = self.start_visit()
        if visit is None:
            press.outcome = "no-car"
            press.signal = signals.REFUSED
        else:
            link, device, opening = visit
            group_id = self.state.cars()[0][0]
            req = Request(COMMANDS[command_name], battery_mv=press.battery_mv, share=self.state.share(group_id))
            device.on_exchange = req.on_exchange
            try:
                err = await opening
                if err is not None:
                    raise err
                press.outcome = await link.run(device)
            except VisitError as e:
                press.outcome = e.outcome
            finally:
                txn = device.txn
                await link.close(device)
            if txn is not None:
                press.kind = txn.kind
                press.granted = press.outcome == DONE and txn.control_flow is not None and txn.control_flow[0] == 1
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
        await signals.show(press.signal, self.led, self.buzzer, low)
        return press

    @staticmethod
    async def _drop(visit):
        link, device, opening = visit
        await opening
        await link.close(device)

    async def run(self, idle_sleep_ms=IDLE_SLEEP_MS, on_press=None):
        # The fob's life between two deep sleeps. Returns after asking for sleep
        # (on a board deep sleep never returns; the virtual board records it).
        self.ensure_credential()
        button = Button(getattr(self.desc, "BUTTON_TIMING", None), pressed_at_boot=self.button_pin.value(),
                        woken_by_button=self.platform.woken_by_button(), now_ms=time.ticks_ms())
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


# --- over USB (carkey fob provision / press): the host runs these through the REPL ---


def identity(board, platform=None, state_dir=STATE_DIR):
    # The credential public key (made now, radio on, if the fob has none) and the cars it trusts.
    app = FobApp(board, platform, state_dir)
    pub = app.ensure_credential()
    return {"credential_public_key": pub.hex(),
            "cars": [{"group_id": g.hex(), "reader_public_key": k.hex()} for g, k in app.state.cars()]}


def trust(board, group_id_hex, reader_key_hex, state_dir=STATE_DIR):
    FobState(state_dir).trust(bytes.fromhex(group_id_hex), bytes.fromhex(reader_key_hex))
    return {"group_id": group_id_hex}


def import_share(board, group_id_hex, reader_key_hex, document_hex, state_dir=STATE_DIR):
    # A share document instead of an enrolment: the fob trusts that car and presents
    # the document at its next press.
    state = FobState(state_dir)
    group_id = bytes.fromhex(group_id_hex)
    state.trust(group_id, bytes.fromhex(reader_key_hex))
    state.set_share(group_id, bytes.fromhex(document_hex))
    return {"group_id": group_id_hex}


def press_once(board, command_name, platform=None, state_dir=STATE_DIR):
    # One press without the button: the same visit and the same signal as a
    # button gesture gives.
    if command_name not in COMMANDS:
        raise FobStateError("unknown command %s" % command_name)
    app = FobApp(board, platform, state_dir)
    app.ensure_credential()
    return asyncio.run(app.press(command_name)).to_dict()


def run(board, platform=None, state_dir=STATE_DIR):
    asyncio.run(FobApp(board, platform, state_dir).run())
