# carkey — the fob application's loop: gestures become presses, presses during one are swallowed, sleep.
# SPDX-License-Identifier: MIT
#
# The loop runs on the real clock with a scripted button; the BLE visit is
# replaced by a recorder (the visit itself is tested on the virtual air,
# tests/host/test_fob_air.py).
#
# Run: .venv/bin/pytest -q tests/firmware/test_fob_app.py

import asyncio
import time

import unittest
from scratch import remove_tree, scratch_dir

from carkey.fob import app as fobapp


class Board:
    BOARD = "test_fob"
    CHIP = "virtual"
    KIND = "fob"
    OUTPUTS = {"led": (4, False), "buzzer": (5, False)}
    INPUTS = {"button": (3, False, None)}
    BUSES = {}
    BUTTON_TIMING = {"debounce_ms": 20, "long_ms": 300, "double_ms": 150, "stuck_ms": 1500}


class _Pin:
    def __init__(self, script=None):
        self.script = script  # [(ms since start, level)]
        self.start = time.ticks_ms()
        self.level = 0

    def value(self, v=None):
        if v is not None:
            self.level = v
            return None
        if self.script is None:
            return self.level
        t = time.ticks_diff(time.ticks_ms(), self.start)
        level = 0
        for at, lv in self.script:
            if at <= t:
                level = lv
        return level


class _Radio:
    # Only switched on: the first start makes the credential with the radio up.
    on = False

    def active(self, on=None):
        if on is not None:
            _Radio.on = bool(on)
        return _Radio.on


class Platform:
    def __init__(self, script, woken=False):
        self.button = _Pin(script)
        self.woken = woken
        self.slept = None

    def pin_factory(self):
        def make(role, gpio, mode, pull, idle):
            return self.button if role == "button" else _Pin()

        return make

    def ble(self):
        return _Radio()

    def woken_by_button(self):
        return self.woken

    def battery_mv(self, spec):
        return None

    def deep_sleep(self, gpio, active_low, timer_ms=None):
        self.slept = (gpio, timer_ms)


class TestLoop(unittest.TestCase):
    def setUp(self):
        self.dir = scratch_dir()

    def tearDown(self):
        remove_tree(self.dir)

    def run_app(self, script, press_ms=400, woken=False, actions=None):
        platform = Platform(script, woken)
        board = Board
        if actions:
            board = type("B", (Board,), {"BUTTON_ACTIONS": actions})
        app = fobapp.FobApp(board, platform, self.dir)
        presses = []

        async def fake_press(command, visit=None):
            presses.append((time.ticks_diff(time.ticks_ms(), platform.button.start), command))
            await asyncio.sleep_ms(press_ms)
            p = fobapp.Press(command)
            p.granted = True
            return p

        app.press = fake_press
        # The script's clock starts with the loop, not with the constructor (which
        # may take longer than a gesture on a loaded machine).
        platform.button.start = time.ticks_ms()
        asyncio.run(app.run(idle_sleep_ms=400))
        return presses, platform

    def test_gestures_become_commands_and_the_fob_sleeps(self):
        presses, platform = self.run_app([(50, 1), (120, 0)])
        self.assertEqual([c for _, c in presses], ["unlock"])
        self.assertEqual(platform.slept, (3, None))  # woken by the button next time
        presses, _ = self.run_app([(50, 1), (500, 0)])
        self.assertEqual([c for _, c in presses], ["lock"])
        presses, _ = self.run_app([(50, 1), (100, 0), (170, 1), (220, 0)])
        self.assertEqual([c for _, c in presses], ["trunk"])

    def test_press_during_a_visit_is_swallowed(self):
        # The visit runs from ~270 ms to ~670 ms; the press at 400 ms sends nothing.
        presses, _ = self.run_app([(50, 1), (100, 0), (400, 1), (450, 0)])
        self.assertEqual(len(presses), 1)

    def test_actions_are_configurable(self):
        presses, _ = self.run_app([(50, 1), (120, 0)], actions={"short": "lock"})
        self.assertEqual([c for _, c in presses], ["lock"])
        with self.assertRaises(ValueError):
            fobapp.FobApp(type("B", (Board,), {"BUTTON_ACTIONS": {"short": "launch"}}), Platform([]), self.dir)

    def test_woken_by_the_button_the_press_counts(self):
        presses, _ = self.run_app([(0, 1), (60, 0)], woken=True)
        self.assertEqual([c for _, c in presses], ["unlock"])

    def test_gesture_timers_count_from_when_the_application_loaded(self):
        # A tap that woke the fob was over before the application loaded: its
        # double-press window (150 ms here) counts from then, not from after the imports.
        def first_press_ms(started_ago_ms):
            platform = Platform([], woken=True)
            app = fobapp.FobApp(Board, platform, self.dir)
            seen = []

            async def fake_press(command, visit=None):
                seen.append(time.ticks_diff(time.ticks_ms(), platform.button.start))
                return fobapp.Press(command)

            app.press = fake_press
            started = None if started_ago_ms is None else time.ticks_add(time.ticks_ms(), -started_ago_ms)
            asyncio.run(app.run(idle_sleep_ms=200, started_ms=started))
            return seen[0]

        self.assertGreaterEqual(first_press_ms(None), 150)
        self.assertLess(first_press_ms(120), 100)

    def test_stuck_button_sleeps_on_a_timer(self):
        presses, platform = self.run_app([(0, 1)])
        self.assertEqual(presses, [])  # held since a cold boot: never a command
        self.assertEqual(platform.slept, (3, fobapp.STUCK_SLEEP_MS))

    def test_pins_in_their_logical_sense(self):
        # An active-low button reads 1 when pulled to ground; an active-low LED is driven low to light.
        made = {}

        class Raw(_Pin):
            pass

        class Wired(Platform):
            def pin_factory(self):
                def make(role, gpio, mode, pull, idle):
                    made[role] = (gpio, mode, pull, idle)
                    pin = Raw()
                    pin.level = idle
                    return pin

                return make

        board = type("B", (Board,), {"OUTPUTS": {"led": (4, True)}, "INPUTS": {"button": (3, True, "up")}})
        app = fobapp.FobApp(board, Wired([]), self.dir)
        self.assertEqual(made, {"led": (4, "out", None, 1), "button": (3, "in", "up", 1)})
        self.assertIsNone(app.buzzer)
        self.assertEqual(app.button_pin.value(), 0)  # idle: high through the pull-up
        app.button_pin._pin.level = 0
        self.assertEqual(app.button_pin.value(), 1)
        app.led.value(1)
        self.assertEqual((app.led.value(), app.led._pin.level), (1, 0))
        with self.assertRaises(ValueError):
            fobapp.FobApp(type("B", (Board,), {"INPUTS": {}}), Wired([]), self.dir)

    def test_kept_between_presses_in_retained_memory(self):
        # The car's address and handles, and the next ephemeral key, in RTC memory:
        # the key is erased from it before it can be used, so it is never used twice.
        class Rtc:
            data = None

            def retained(self):
                return self.data

            def retain(self, data):
                self.data = bytes(data)

        rtc = Rtc()
        kept = fobapp._Kept(rtc)
        gid = b"\x11" * 16
        self.assertIsNone(kept.car(gid))
        self.assertIsNone(kept.take_ephemeral())
        kept.set_car(gid, (1, b"\xc1\x02\x03\x04\x05\x06", 0x0102, 0x0304))
        pair = (b"\x07" * 32, b"\x04" + b"\x08" * 64)
        kept.keep_ephemeral(pair)
        again = fobapp._Kept(rtc)  # after a deep sleep
        self.assertEqual(again.car(gid), (1, b"\xc1\x02\x03\x04\x05\x06", 0x0102, 0x0304))
        self.assertIsNone(again.car(b"\x22" * 16))
        self.assertEqual(again.take_ephemeral(), pair)
        self.assertNotIn(pair[0], rtc.data)  # gone from RTC memory before use
        self.assertIsNone(fobapp._Kept(rtc).take_ephemeral())
        again.set_car(gid, None)
        self.assertIsNone(fobapp._Kept(rtc).car(gid))
        rtc.data = b"\xff" * 130  # RTC memory after power-on: whatever it holds
        self.assertIsNone(fobapp._Kept(rtc).car(b"\xff" * 16))
        self.assertIsNone(fobapp._Kept(rtc).take_ephemeral())

    def test_credential_made_on_first_start(self):
        app = fobapp.FobApp(Board, Platform([]), self.dir)
        self.assertFalse(app.state.has_credential())
        _Radio.on = False
        pub = app.ensure_credential()
        self.assertTrue(_Radio.on)  # the radio came up before the key was drawn
        self.assertEqual(len(pub), 65)
        self.assertEqual(app.ensure_credential(), pub)


if __name__ == "__main__":
    unittest.main()
