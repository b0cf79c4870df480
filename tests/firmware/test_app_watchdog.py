# carkey — the application's watchdog: fed while the loop beats, starved when it stalls, kept alive after Ctrl-C.
# SPDX-License-Identifier: MIT
#
# Run: .venv/bin/pytest -q tests/firmware/test_app_watchdog.py

import unittest

from carkey.hw.platform import Watchdog

MPY_HEAPSIZE = "64k"


class FakeWDT:
    def __init__(self):
        self.feeds = 0

    def feed(self):
        self.feeds += 1


class FakeTimer:
    def init(self, period, callback):
        self.period = period
        self.callback = callback

    def fire(self):
        self.callback(self)


class Clock:
    def __init__(self):
        self.ms = 0

    def __call__(self):
        return self.ms


class TestWatchdog(unittest.TestCase):
    def setUp(self):
        self.wdt, self.timer, self.clock = FakeWDT(), FakeTimer(), Clock()
        self.dog = Watchdog(self.wdt, self.timer, self.clock)

    def test_fed_every_second_while_the_loop_beats(self):
        self.assertEqual(self.timer.period, 1000)
        for _ in range(10):
            self.clock.ms += 1000
            self.dog.beat()
            self.timer.fire()
        self.assertEqual(self.wdt.feeds, 10)

    def test_a_stalled_loop_is_not_fed(self):
        self.clock.ms += 4999
        self.timer.fire()
        self.assertEqual(self.wdt.feeds, 1)
        self.clock.ms += 1
        self.timer.fire()  # 5 s without a heartbeat: the hardware will reset the board
        self.assertEqual(self.wdt.feeds, 1)

    def test_released_after_an_interrupt_keeps_the_repl_alive(self):
        self.clock.ms += 60000
        self.dog.release()
        self.timer.fire()
        self.timer.fire()
        self.assertEqual(self.wdt.feeds, 2)


if __name__ == "__main__":
    unittest.main()
