# carkey — the fob's button: debounced levels in, gestures out (short, long, double, stuck).
# SPDX-License-Identifier: MIT
#
# Button.update(now_ms, pressed) is called every few milliseconds with the raw
# pin level (1 = pressed, whatever the wiring: carkey.hw.pins.Input) and returns a
# gesture when one completes, else None. Nothing here reads a clock or a pin, so
# tests replay recorded pin timelines.
#
# - Debounce: a level counts once it has held for `debounce_ms`; its time is
#   the first edge of the run, so bounce does not shorten a press.
# - Short: released before `long_ms`, and no second press within `double_ms`.
# - Long: held `long_ms`: reported at once (the user need not let go).
# - Double: a second press within `double_ms` of the first release: reported
#   when the second press lands.
# - Stuck: held `stuck_ms`: reported once; the app then sleeps on a timer rather
#   than on the button, which would wake it again at once.
# - A transaction in progress (set_busy(True)) swallows every press, including
#   one that began during it and ends after: a nervous second press never sends
#   a second command.
# - At boot: woken by the button (deep sleep), the press in progress is the
#   user's and counts from boot, and a tap already over by then (boot takes a
#   few hundred ms) counts as released at boot; any other boot with the button
#   held (a stuck key, someone holding it through a reset) waits for a release.

from micropython import const
from time import ticks_diff

SHORT = "short"
LONG = "long"
DOUBLE = "double"
STUCK = "stuck"

_IDLE = const(0)
_DOWN = const(1)  # first press, under way
_GAP = const(2)  # first press released: a second may follow
_IGNORE = const(3)  # pressed, but already reported or not ours: wait for the release

DEFAULT_TIMING = {"debounce_ms": 30, "long_ms": 800, "double_ms": 350, "stuck_ms": 10000}


class Button:
    def __init__(self, timing=None, pressed_at_boot=False, woken_by_button=False, now_ms=0):
        t = dict(DEFAULT_TIMING)
        if timing:
            for k in timing:
                if k not in t:
                    raise ValueError("unknown button timing %s" % k)
                t[k] = int(timing[k])
        self.debounce_ms = t["debounce_ms"]
        self.long_ms = t["long_ms"]
        self.double_ms = t["double_ms"]
        self.stuck_ms = t["stuck_ms"]
        self.busy = False
        self._stable = 1 if pressed_at_boot else 0
        self._raw = self._stable
        self._raw_since = now_ms
        self._since = now_ms  # when the stable level began
        self._stuck_told = False
        if pressed_at_boot:
            self._state = _DOWN if woken_by_button else _IGNORE
        elif woken_by_button:
            # A quick tap that woke the fob was over before the application ran:
            # it counts as a press released now (a second press makes it double).
            self._state = _GAP
        else:
            self._state = _IDLE

    def pressed(self):
        return self._stable == 1

    def started(self):
        # A press of ours is under way or just ended (a gesture is coming): the
        # app starts finding the car now rather than after the gesture.
        return not self.busy and (self._state == _DOWN or self._state == _GAP)

    def set_busy(self, busy):
        self.busy = bool(busy)
        if self._state != _IGNORE:
            self._state = _IGNORE if self._stable else _IDLE

    def update(self, now_ms, pressed):
        # Feed one sample; returns SHORT, LONG, DOUBLE, STUCK or None.
        level = 1 if pressed else 0
        if level != self._raw:
            self._raw = level
            self._raw_since = now_ms
        elif level != self._stable and ticks_diff(now_ms, self._raw_since) >= self.debounce_ms:
            self._stable = level
            self._since = self._raw_since
            self._stuck_told = False
            gesture = self._edge(level)
            if gesture is not None:
                return gesture
        return self._timers(now_ms)

    def _edge(self, down):
        state = self._state
        if self.busy:
            self._state = _IGNORE if down else _IDLE
            return None
        if down:
            if state == _IDLE:
                self._state = _DOWN
            elif state == _GAP:
                self._state = _IGNORE
                return DOUBLE
            return None
        # released
        if state == _DOWN:
            self._state = _GAP
        elif state == _IGNORE:
            self._state = _IDLE
        return None

    def _timers(self, now_ms):
        held = ticks_diff(now_ms, self._since)
        if self._stable and held >= self.stuck_ms and not self._stuck_told:
            self._stuck_told = True
            self._state = _IGNORE
            return None if self.busy else STUCK
        if self.busy:
            return None
        if self._state == _DOWN and held >= self.long_ms:
            self._state = _IGNORE
            return LONG
        if self._state == _GAP and held >= self.double_ms:
            self._state = _IDLE
            return SHORT
        return None

    def idle(self):
        # Nothing under way: the app may go to sleep.
        return self._state == _IDLE and not self._stable and self._raw == 0
