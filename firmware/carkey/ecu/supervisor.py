# carkey — keeps the application's tasks running: restarts a failed one, and knows when one is dead.
# SPDX-License-Identifier: MIT
#
# A radio task that dies (a bug, a bus error nobody expected) would leave a
# half-working car: NFC gone while BLE still answers, or the other way round. The
# Supervisor restarts a task that raised, after a pause; a task that keeps failing
# (more than max_restarts times within window_ms) is given up, alive() turns False,
# and the heartbeat stops, so the watchdog resets the board and it starts whole. A
# task that returns on its own (stop, or no such hardware on this board) is done,
# not dead.

import asyncio
import sys
import time
from micropython import const

_MAX_RESTARTS = const(5)
_WINDOW_MS = const(60000)
_PAUSE_MS = const(1000)


class Supervisor:
    def __init__(self, max_restarts=_MAX_RESTARTS, window_ms=_WINDOW_MS, pause_ms=_PAUSE_MS, ticks=time.ticks_ms,
                 report=None):
        self.max_restarts = max_restarts
        self._report = report  # report(name, exc): where a board shows a failed task beyond its console
        self.window_ms = window_ms
        self.pause_ms = pause_ms
        self._ticks = ticks
        self.dead = None  # the name of a task given up
        self.restarts = 0

    def start(self, name, run):
        """Run the coroutine function `run` as a supervised task; returns the Task."""
        return asyncio.create_task(self._keep(name, run))

    def alive(self):
        return self.dead is None

    async def _keep(self, name, run):
        failures = []  # ticks of recent failures
        while True:
            try:
                await run()
                return
            except Exception as e:  # CancelledError is not an Exception: a stopping app ends it
                now = self._ticks()
                failures = [t for t in failures if time.ticks_diff(now, t) < self.window_ms]
                failures.append(now)
                self.restarts += 1
                sys.stdout.write("carkey: task %s failed: %r\n" % (name, e))
                if self._report is not None:
                    self._report(name, e)
                if len(failures) > self.max_restarts:
                    self.dead = name
                    return
            await asyncio.sleep_ms(self.pause_ms)

    async def heartbeat(self, watchdog, period_ms, stop):
        """Beat the watchdog every period_ms while every task is alive."""
        while not stop.is_set():
            if self.dead is None:
                watchdog.beat()
            await asyncio.sleep_ms(period_ms)
