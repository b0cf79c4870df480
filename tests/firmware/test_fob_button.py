# carkey — the fob's button and LED patterns against recorded pin timelines.
# SPDX-License-Identifier: MIT
#
# Each timeline is the raw pin level as a scope would record it (bounce
# included), sampled every 5 ms as the fob's loop samples it.
#
# Run: .venv/bin/pytest -q tests/firmware/test_fob_button.py

import asyncio

import unittest

from carkey.fob import signals
from carkey.fob.button import DOUBLE, LONG, SHORT, STUCK, Button

_STEP = 5


def replay(button, edges, end, busy=()):
    # edges: [(ms, level)]; busy: [(from ms, to ms)] of a transaction. -> [(ms, gesture)]
    out = []
    level = button._raw
    i = 0
    for t in range(0, end + 1, _STEP):
        while i < len(edges) and edges[i][0] <= t:
            level = edges[i][1]
            i += 1
        for start, stop in busy:
            if t == start:
                button.set_busy(True)
            if t == stop:
                button.set_busy(False)
        g = button.update(t, level)
        if g is not None:
            out.append((t, g))
    return out


def bouncy(t, level, bounces=4):
    # A contact that chatters for a few ms before it settles.
    edges = []
    for k in range(bounces):
        edges.append((t + k, level if k % 2 == 0 else 1 - level))
    edges.append((t + bounces, level))
    return edges


class TestGestures(unittest.TestCase):
    def test_clean_short_press(self):
        got = replay(Button(), [(100, 1), (250, 0)], 2000)
        self.assertEqual([g for _, g in got], [SHORT])
        self.assertTrue(600 <= got[0][0] <= 640)  # release + double window

    def test_bounce_is_one_press(self):
        edges = bouncy(100, 1) + bouncy(260, 0)
        self.assertEqual([g for _, g in replay(Button(), edges, 2000)], [SHORT])

    def test_glitch_shorter_than_debounce_is_nothing(self):
        self.assertEqual(replay(Button(), [(100, 1), (115, 0)], 2000), [])

    def test_long_press_reported_while_held(self):
        got = replay(Button(), bouncy(100, 1) + [(2000, 0)], 3000)
        self.assertEqual([g for _, g in got], [LONG])
        self.assertTrue(900 <= got[0][0] < 1000)

    def test_double_press(self):
        edges = bouncy(100, 1) + bouncy(200, 0) + bouncy(400, 1) + bouncy(500, 0)
        got = replay(Button(), edges, 2000)
        self.assertEqual([g for _, g in got], [DOUBLE])
        self.assertTrue(got[0][0] < 500)  # on the second press, not after a wait

    def test_two_presses_further_apart_are_two_shorts(self):
        edges = [(100, 1), (200, 0), (900, 1), (1000, 0)]
        self.assertEqual([g for _, g in replay(Button(), edges, 3000)], [SHORT, SHORT])

    def test_press_during_transaction_is_swallowed(self):
        edges = [(100, 1), (200, 0),  # the press that starts the transaction
                 (800, 1), (900, 0),  # pressed again while it runs
                 (1150, 1), (1300, 0),  # began during it, released after
                 (2000, 1), (2100, 0)]  # a new press once idle
        got = replay(Button(), edges, 3500, busy=[(600, 1200)])
        self.assertEqual([g for _, g in got], [SHORT, SHORT])
        self.assertTrue(got[1][0] > 2100)

    def test_held_at_cold_boot_does_nothing_until_released(self):
        b = Button(pressed_at_boot=True, now_ms=0)
        got = replay(b, [(0, 1), (3000, 0), (4000, 1), (4100, 0)], 5000)
        self.assertEqual([g for _, g in got], [SHORT])
        self.assertTrue(got[0][0] > 4100)

    def test_woken_by_the_button_counts_that_press(self):
        self.assertEqual([g for _, g in replay(Button(pressed_at_boot=True, woken_by_button=True),
                                               [(0, 1), (150, 0)], 1500)], [SHORT])
        self.assertEqual([g for _, g in replay(Button(pressed_at_boot=True, woken_by_button=True),
                                               [(0, 1), (1500, 0)], 2000)], [LONG])

    def test_tap_over_before_boot_still_counts(self):
        # The tap that woke the fob ended while it booted: short, or double with a second.
        got = replay(Button(pressed_at_boot=False, woken_by_button=True), [], 1000)
        self.assertEqual([g for _, g in got], [SHORT])
        got = replay(Button(pressed_at_boot=False, woken_by_button=True), [(100, 1), (180, 0)], 1000)
        self.assertEqual([g for _, g in got], [DOUBLE])
        b = Button(pressed_at_boot=False, woken_by_button=True)
        self.assertTrue(b.started())  # the app starts finding the car at once

    def test_stuck_button(self):
        got = replay(Button(), [(100, 1)], 12000)
        self.assertEqual([g for _, g in got], [LONG, STUCK])
        b = Button()
        replay(b, [(100, 1)], 12000)
        self.assertFalse(b.idle())

    def test_timing_is_configurable(self):
        got = replay(Button({"long_ms": 300}), [(100, 1), (600, 0)], 1500)
        self.assertEqual([g for _, g in got], [LONG])
        with self.assertRaises(ValueError):
            Button({"longest_ms": 3})

    def test_idle_after_gesture(self):
        b = Button()
        replay(b, [(100, 1), (200, 0)], 1000)
        self.assertTrue(b.idle())


class _Led:
    def __init__(self, clock):
        self.clock = clock
        self.log = []

    def value(self, v=None):
        self.log.append((self.clock[0], v))


class TestSignals(unittest.TestCase):
    def play(self, name, battery_low=False, buzzer=True):
        clock = [0]

        async def sleep_ms(ms):
            clock[0] += ms

        led = _Led(clock)
        buz = _Led(clock) if buzzer else None
        asyncio.run(signals.show(name, led, buz, battery_low, sleep_ms))
        return led.log, buz.log if buz else None

    def test_every_outcome_has_a_distinct_pattern(self):
        names = [signals.GRANTED, signals.REFUSED_KEY, signals.REFUSED_TIME, signals.LOCKED_OUT,
                 signals.REFUSED, signals.CAR_NOT_FOUND]
        shapes = [tuple(signals.timeline(n)) for n in names]
        self.assertEqual(len(set(shapes)), len(names))

    def test_results_map_to_reasons(self):
        self.assertEqual(signals.for_result(True, 0), signals.GRANTED)
        self.assertEqual(signals.for_result(False, 0x07), signals.REFUSED_KEY)
        self.assertEqual(signals.for_result(False, 0x06), signals.REFUSED_KEY)
        self.assertEqual(signals.for_result(False, 0x03), signals.REFUSED_TIME)
        self.assertEqual(signals.for_result(False, 0x08), signals.LOCKED_OUT)
        self.assertEqual(signals.for_result(False, None), signals.REFUSED)

    def test_granted_glows_without_beep(self):
        led, buz = self.play(signals.GRANTED)
        self.assertEqual(led[0], (0, 1))
        self.assertEqual(led[-1][1], 0)
        self.assertTrue(all(v == 0 for _, v in buz))

    def test_refusal_blinks_and_beeps(self):
        led, buz = self.play(signals.REFUSED_KEY)
        self.assertEqual([v for _, v in led if v == 1], [1, 1])
        self.assertEqual([v for _, v in buz if v == 1], [1, 1])

    def test_battery_low_follows(self):
        led, _ = self.play(signals.GRANTED, battery_low=True)
        ons = [t for t, v in led if v == 1]
        self.assertEqual(len(ons), 3)  # glow, then two flickers
        self.assertTrue(ons[1] >= 600 + 500)
        self.assertEqual(led[-1][1], 0)


if __name__ == "__main__":
    unittest.main()
