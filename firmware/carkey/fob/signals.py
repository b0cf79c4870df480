# carkey — what the fob shows: LED and buzzer patterns for each outcome of a press.
# SPDX-License-Identifier: MIT
#
# A pattern is a tuple of durations in ms, alternately on and off, starting on.
# One LED (and an optional buzzer, which beeps with the LED only where a pattern
# says so) has to tell apart (docs/FOB.md):
#   granted            one long glow
#   refused            2, 3, 4 or 5 short blinks: key unknown or revoked/suspended,
#                      outside its time window, locked out, anything else
#   car not found      three slow blinks
#   working            nothing (a transaction is under a second)
#   battery low        two flickers after any of the above
# outcome_pattern() maps a press's outcome to (name, pattern, beep).

from micropython import const

GRANTED = "granted"
REFUSED_KEY = "refused-key"
REFUSED_TIME = "refused-time"
LOCKED_OUT = "locked-out"
REFUSED = "refused"
CAR_NOT_FOUND = "car-not-found"
BATTERY_LOW = "battery-low"

PATTERNS = {
    GRANTED: (600,),
    REFUSED_KEY: (120, 120, 120),
    REFUSED_TIME: (120, 120, 120, 120, 120),
    LOCKED_OUT: (120, 120, 120, 120, 120, 120, 120),
    REFUSED: (120, 120, 120, 120, 120, 120, 120, 120, 120),
    CAR_NOT_FOUND: (400, 400, 400, 400, 400),
    BATTERY_LOW: (40, 160, 40),
}
_BATTERY_PAUSE_MS = const(500)

# Car result codes (docs/PROTOCOL.md §4.2) grouped as the LED tells them.
_KEY_CODES = (0x01, 0x06, 0x07)  # not entitled, suspended, revoked or unknown
_TIME_CODES = (0x02, 0x03, 0x09)  # validity window, schedule, clock untrusted
_LOCKED_OUT = const(0x08)


def for_result(granted, result):
    # The signal name for a finished transaction (result: the car's code or None).
    if granted:
        return GRANTED
    if result in _KEY_CODES:
        return REFUSED_KEY
    if result in _TIME_CODES:
        return REFUSED_TIME
    if result == _LOCKED_OUT:
        return LOCKED_OUT
    return REFUSED


def timeline(name, battery_low=False):
    # [(start ms, level)] of the LED for a signal, ending at level 0.
    out = []
    t = 0
    for i, ms in enumerate(PATTERNS[name]):
        out.append((t, 1 - (i & 1)))
        t += ms
    out.append((t, 0))
    if battery_low and name != BATTERY_LOW:
        t += _BATTERY_PAUSE_MS
        for i, ms in enumerate(PATTERNS[BATTERY_LOW]):
            out.append((t, 1 - (i & 1)))
            t += ms
        out.append((t, 0))
    return out


async def show(name, led, buzzer=None, battery_low=False, sleep_ms=None):
    # Plays a signal on the LED (and the buzzer with it, for refusals and "not found").
    if sleep_ms is None:
        import asyncio

        sleep_ms = asyncio.sleep_ms
    beep = buzzer is not None and name != GRANTED
    t = 0
    for start, level in timeline(name, battery_low):
        if start > t:
            await sleep_ms(start - t)
            t = start
        led.value(level)
        if beep:
            buzzer.value(level)
    led.value(0)
    if buzzer is not None:
        buzzer.value(0)
