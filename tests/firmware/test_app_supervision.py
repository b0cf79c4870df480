# carkey — the application's radio tasks are supervised, and the watchdog is fed only while all are alive.
# SPDX-License-Identifier: MIT
#
# The whole ECU application (carkey.ecu.app.App) on the virtual board description,
# with a platform whose PN532 fails as a bug would (not a Pn532Error the poll loop
# expects) and a watchdog on a fake WDT whose clock the test moves.
#
# Run: .venv/bin/pytest -q tests/firmware/test_app_supervision.py

import asyncio
import unittest

import virtual
from car_rig import fresh_dir, rmtree
from carkey.ecu.app import App
from carkey.hw.platform import Watchdog
from carkey.ecu.supervisor import Supervisor


class FakeWDT:
    def __init__(self):
        self.feeds = 0

    def feed(self):
        self.feeds += 1


class FakeTimer:
    def init(self, period, callback):
        self.callback = callback


class Ticks:
    def __init__(self):
        self.ms = 0

    def __call__(self):
        return self.ms


class BrokenPn532:
    # Fails `fail` times on begin(), then answers "no target" for ever.
    def __init__(self, platform):
        self.platform = platform

    async def begin(self):
        self.platform.begins += 1
        if self.platform.begins <= self.platform.fail:
            raise RuntimeError("driver bug")

    async def recover(self):
        await self.begin()

    async def list_target(self, timeout_ms):
        await asyncio.sleep_ms(5)
        return None


class TestPlatform:
    def __init__(self, fail):
        from virtual_hw.platform import VirtualPlatform

        self.virtual = VirtualPlatform(fresh_dir("appsup"))
        self.fail = fail
        self.begins = 0
        self.ticks = Ticks()
        self.wdt = FakeWDT()
        self.timer = FakeTimer()

    def pin_factory(self):
        return self.virtual.pin_factory()

    def uart_factory(self):
        return self.virtual.uart_factory()

    def pn532(self, spec):
        return BrokenPn532(self)

    def ble(self):
        return None

    def full_speed(self):
        return None

    def watchdog(self):
        return Watchdog(self.wdt, self.timer, self.ticks)


async def _run_for(app, ms):
    task = asyncio.create_task(app.run())
    for _ in range(ms // 10):
        await asyncio.sleep_ms(10)
    app.stop.set()
    await task


class AppSupervisionTest(unittest.TestCase):
    def setUp(self):
        self.dirs = []

    def tearDown(self):
        for d in self.dirs:
            rmtree(d)

    def app(self, fail):
        platform = TestPlatform(fail)
        state = fresh_dir("appstate")
        self.dirs += [platform.virtual.flash_dir, state]
        app = App(virtual, platform, state)
        app.supervisor = Supervisor(max_restarts=3, window_ms=60000, pause_ms=20)
        return app, platform

    def test_a_failing_nfc_task_is_restarted(self):
        app, platform = self.app(fail=2)
        asyncio.run(_run_for(app, 600))
        self.assertTrue(platform.begins >= 3, platform.begins)  # failed twice, then polled on
        self.assertTrue(app.supervisor.alive())

    def test_a_task_that_keeps_failing_is_given_up(self):
        app, platform = self.app(fail=1000)
        asyncio.run(_run_for(app, 600))
        self.assertEqual(app.supervisor.dead, "nfc")
        self.assertEqual(platform.begins, 4)  # the first run and three restarts


class Beats:
    def __init__(self):
        self.n = 0

    def beat(self):
        self.n += 1


class HeartbeatTest(unittest.TestCase):
    def test_the_heartbeat_stops_when_a_task_is_dead(self):
        sup = Supervisor(max_restarts=1, pause_ms=1)
        beats = Beats()
        stop = asyncio.Event()

        async def failing():
            await asyncio.sleep_ms(30)
            raise RuntimeError("bug")

        async def main():
            hb = asyncio.create_task(sup.heartbeat(beats, 5, stop))
            await asyncio.sleep_ms(20)
            alive_beats = beats.n
            sup.start("radio", failing)
            await asyncio.sleep_ms(120)  # fails, restarts, fails again: given up
            dead_at = beats.n
            await asyncio.sleep_ms(50)
            stop.set()
            await hb
            return alive_beats, dead_at, beats.n

        alive_beats, dead_at, end = asyncio.run(main())
        self.assertTrue(alive_beats >= 2, alive_beats)
        self.assertEqual(sup.dead, "radio")
        self.assertEqual(end, dead_at)  # no beat since: the watchdog will reset the board

    def test_a_task_that_returns_is_done_not_dead(self):
        sup = Supervisor()

        async def nothing():
            return

        async def main():
            await sup.start("nfc", nothing)

        asyncio.run(main())
        self.assertTrue(sup.alive())
