# carkey — fake GPIO for firmware tests: a virtual clock and a timeline of every pin write.
# SPDX-License-Identifier: MIT
#
# FakePins is a pin factory for carkey.hw.pins.Board. Every write to an output is
# recorded as (virtual ms, role, physical level), so a test can assert the exact
# shape of a pulse. Inputs hold a physical level the test sets with FakePins.set().
# Nothing here sleeps: time moves only when the test calls VirtualClock.advance().
# The timeline keeps the newest LOG_LIMIT entries.

import time

# Newest timeline entries kept, as fakelog.LIMIT (test_fake_logs checks they agree). Not
# imported from there: this file is also compiled alone onto a board-sized heap.
LOG_LIMIT = 32


def _keep(log, entry):
    log.append(entry)
    if len(log) > LOG_LIMIT:
        log.pop(0)


class VirtualClock:
    """A tick clock the test drives: calling it returns ticks_ms-style values.

    `ms` is the plain virtual time since the clock was made; the ticks it returns
    start at `start`, so a test can put the ticks wrap-around inside a pulse.
    """

    def __init__(self, start=0):
        self.ms = 0
        self._start = start

    def __call__(self):
        return time.ticks_add(self._start, self.ms)

    def advance(self, ms):
        self.ms += ms


class FakePin:
    def __init__(self, role, level, mode, pull, pins):
        self.role = role
        self.mode = mode
        self.pull = pull
        self._level = level
        self._pins = pins

    def value(self, v=None):
        if v is None:
            return self._level
        if self.mode != "out":
            raise AssertionError("write to input pin " + self.role)
        self._level = 1 if v else 0
        _keep(self._pins.timeline, (self._pins.clock.ms, self.role, self._level))

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)


class FakePins:
    """Pin factory recording a timeline; also the test's handle on input levels."""

    def __init__(self, clock):
        self.clock = clock
        self.timeline = []
        self.pins = {}

    def __call__(self, role, gpio, mode, pull, idle_level):
        pin = FakePin(role, idle_level, mode, pull, self)
        self.pins[role] = pin
        if mode == "out":
            # Creating an output drives it, as machine.Pin(..., value=) does.
            _keep(self.timeline, (self.clock.ms, role, idle_level))
        return pin

    def set(self, role, level):
        """Set the physical level of an input, as the car's wiring would."""
        pin = self.pins[role]
        if pin.mode != "in":
            raise AssertionError(role + " is not an input")
        pin._level = 1 if level else 0

    def level(self, role):
        return self.pins[role]._level

    def since(self, ms):
        return [entry for entry in self.timeline if entry[0] >= ms]

    def clear(self):
        self.timeline = []
