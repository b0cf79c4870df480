# carkey — the owner's maintenance window on an ESP32: the watchdog fed until it ends, across soft resets.
# SPDX-License-Identifier: MIT
#
# An installed car hands its REPL back for a time the owner signed (docs/PROTOCOL.md §9);
# then the watchdog, no longer fed, resets the board into the application. mpremote
# and deploy soft-reset the board, and a soft reset stops every machine.Timer, so the
# window's end is kept in RTC memory (it survives a soft reset) and boot.py calls
# resume() to feed on until then. Any other reset (the watchdog's own, power-on)
# ends the window. ticks_ms runs on across a soft reset.

import time

_MARK = b"carkey-maint"


def begin(wdt, timer, ms):
    """Feed `wdt` from `timer` for `ms` more, and remember the end for resume()."""
    import machine

    end = time.ticks_add(time.ticks_ms(), ms)
    machine.RTC().memory(_MARK + end.to_bytes(4, "big"))
    _feed_until(wdt, timer, end)


def resume(wdt_timeout_ms):
    """In boot.py: after a soft reset inside a window, feed a watchdog until its end."""
    import machine

    rtc = machine.RTC()
    mem = rtc.memory()
    if not mem.startswith(_MARK):
        return
    end = int.from_bytes(mem[len(_MARK):len(_MARK) + 4], "big")
    if machine.reset_cause() != machine.SOFT_RESET or time.ticks_diff(end, time.ticks_ms()) <= 0:
        rtc.memory(b"")  # a hard reset ended the window
        return
    _feed_until(machine.WDT(timeout=wdt_timeout_ms), machine.Timer(0), end)


def end():
    """The application runs again: no window."""
    import machine

    machine.RTC().memory(b"")


def _feed_until(wdt, timer, end):
    def tick(_t):
        if time.ticks_diff(end, time.ticks_ms()) > 0:
            wdt.feed()

    timer.init(period=1000, callback=tick)
