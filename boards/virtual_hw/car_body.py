# carkey — the virtual board's car: lock, doors and ignition behind the board's pins.
# SPDX-License-Identifier: MIT
#
# CarBody.pin is a carkey.hw.pins pin factory. Output changes are kept in a
# timeline (ticks_ms, role, level), the newest TIMELINE_LIMIT of them, so a run can
# show what the relays did (a virtual board runs for hours), in a ring made at start:
# the stand-in's heap stays the same however long the board runs, so it never shows
# up in the application's heap curve (carkey_host.soak); the lock
# follows the lock and unlock motor outputs as a real door lock does, and the
# doors and ignition are set by whoever plays the driver. save()/load() keep the
# body between runs of the Unix-port car, as a parked car keeps its state.

import json
import time
from array import array

TIMELINE_LIMIT = 256

_DOOR_BITS = {"door_driver": 0, "door_passenger": 1, "door_rear_left": 2, "door_rear_right": 3, "door_trunk": 4}


class _OutputPin:
    def __init__(self, body, role, level):
        self._body = body
        self._role = role
        self._level = level

    def value(self, v=None):
        if v is None:
            return self._level
        v = 1 if v else 0
        if v != self._level:
            self._level = v
            self._body.output_changed(self._role, v)


class _InputPin:
    def __init__(self, body, role):
        self._body = body
        self._role = role

    def value(self):
        return self._body.input_level(self._role)


class CarBody:
    def __init__(self, locked=True, doors=0, ignition=False, clock=time.ticks_ms):
        self.locked = locked
        self.doors = doors
        self.ignition = ignition
        self._clock = clock
        self._ticks = array("i", bytes(4 * TIMELINE_LIMIT))
        self._what = bytearray(TIMELINE_LIMIT)  # role index << 1 | level
        self._roles = []
        self._next = 0  # changes so far; the ring's newest entry is _next - 1

    def pin(self, role, gpio, mode, pull, idle_level):
        if mode == "out":
            return _OutputPin(self, role, idle_level)
        return _InputPin(self, role)

    @property
    def timeline(self):
        """[(ticks_ms, role, level)] of the newest TIMELINE_LIMIT output changes, oldest first."""
        n = min(self._next, TIMELINE_LIMIT)
        out = []
        for k in range(self._next - n, self._next):
            i = k % TIMELINE_LIMIT
            out.append((self._ticks[i], self._roles[self._what[i] >> 1], self._what[i] & 1))
        return out

    def output_changed(self, role, level):
        if role not in self._roles:
            self._roles.append(role)
        i = self._next % TIMELINE_LIMIT
        self._ticks[i] = self._clock()
        self._what[i] = self._roles.index(role) << 1 | (1 if level else 0)
        self._next += 1
        if level and role == "lock":
            self.locked = True
        elif level and role in ("unlock", "unlock_driver"):
            self.locked = False

    def input_level(self, role):
        if role == "lock_feedback":
            return 1 if self.locked else 0
        if role == "ignition":
            return 1 if self.ignition else 0
        return (self.doors >> _DOOR_BITS[role]) & 1

    def pulses(self):
        """[(role, ms)] of every completed active period in the timeline."""
        out = []
        started = {}
        for t, role, level in self.timeline:
            if level:
                started[role] = t
            elif role in started:
                out.append((role, time.ticks_diff(t, started.pop(role))))
        return out

    @classmethod
    def load(cls, path):
        try:
            with open(path) as f:
                s = json.load(f)
        except (OSError, ValueError):
            return cls()
        return cls(bool(s.get("locked", True)), int(s.get("doors", 0)) & 0x1F, bool(s.get("ignition", False)))

    def save(self, path):
        with open(path, "w") as f:
            json.dump({"locked": self.locked, "doors": self.doors, "ignition": self.ignition}, f)
