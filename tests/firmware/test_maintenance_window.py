# carkey — the owner's maintenance window: the watchdog fed until its end, across a soft reset only.
# SPDX-License-Identifier: MIT
#
# Run: .venv/bin/pytest -q tests/firmware/test_maintenance_window.py

import sys
import time
import unittest

MPY_HEAPSIZE = "64k"

SOFT_RESET, WDT_RESET = 5, 3


class FakeMachine:
    # What carkey.hw.maintenance uses of an ESP32's machine module.
    SOFT_RESET = SOFT_RESET
    WDT_RESET = WDT_RESET

    def __init__(self):
        self.rtc_memory = b""
        self.cause = SOFT_RESET
        self.wdts = []
        self.timers = []
        machine = self

        class RTC:
            def memory(self, data=None):
                if data is None:
                    return machine.rtc_memory
                machine.rtc_memory = bytes(data)

        class WDT:
            def __init__(self, timeout):
                self.timeout = timeout
                self.feeds = 0
                machine.wdts.append(self)

            def feed(self):
                self.feeds += 1

        class Timer:
            def __init__(self, n):
                machine.timers.append(self)

            def init(self, period, callback):
                self.callback = callback

            def fire(self):
                self.callback(self)

        self.RTC, self.WDT, self.Timer = RTC, WDT, Timer

    def reset_cause(self):
        return self.cause


class MaintenanceWindowTest(unittest.TestCase):
    def setUp(self):
        self.machine = FakeMachine()
        sys.modules["machine"] = self.machine
        sys.modules.pop("carkey.hw.maintenance", None)
        from carkey.hw import maintenance

        self.m = maintenance

    def tearDown(self):
        sys.modules.pop("machine", None)

    def test_fed_until_the_end_then_starved(self):
        wdt = self.machine.WDT(8000)
        timer = self.machine.Timer(0)
        self.m.begin(wdt, timer, 150)
        timer.fire()
        self.assertEqual(wdt.feeds, 1)
        time.sleep_ms(200)
        timer.fire()
        self.assertEqual(wdt.feeds, 1)  # the window is over: the watchdog resets the board

    def test_a_soft_reset_inside_the_window_keeps_it(self):
        self.m.begin(self.machine.WDT(8000), self.machine.Timer(0), 150)
        self.m.resume(8000)  # boot.py after mpremote's soft reset
        wdt, timer = self.machine.wdts[-1], self.machine.timers[-1]
        self.assertEqual(wdt.timeout, 8000)
        timer.fire()
        self.assertEqual(wdt.feeds, 1)
        time.sleep_ms(200)
        timer.fire()
        self.assertEqual(wdt.feeds, 1)

    def test_a_hard_reset_ends_the_window(self):
        self.m.begin(self.machine.WDT(8000), self.machine.Timer(0), 60000)
        self.machine.cause = WDT_RESET
        wdts = len(self.machine.wdts)
        self.m.resume(8000)
        self.assertEqual(len(self.machine.wdts), wdts)  # nothing fed: the application starts
        self.assertEqual(self.machine.rtc_memory, b"")
        self.machine.cause = SOFT_RESET
        self.m.resume(8000)  # and the window does not come back
        self.assertEqual(len(self.machine.wdts), wdts)

    def test_the_application_ends_the_window(self):
        self.m.begin(self.machine.WDT(8000), self.machine.Timer(0), 60000)
        self.m.end()
        wdts = len(self.machine.wdts)
        self.m.resume(8000)
        self.assertEqual(len(self.machine.wdts), wdts)


if __name__ == "__main__":
    unittest.main()
