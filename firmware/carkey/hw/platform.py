# carkey — the hardware layer of a real board: pins, UARTs, the PN532, the radio, the CPU clock, the watchdog.
# SPDX-License-Identifier: MIT
#
# The application reaches `machine`, `bluetooth` and the watchdog only through a
# Platform. A board description names its platform module (PLATFORM, default this
# one); the virtual board's (boards/virtual_hw/platform.py) has the same methods.

from micropython import const

_WDT_TIMEOUT_MS = const(8000)
_WDT_FEED_MS = const(1000)
_STALL_MS = const(5000)  # a heartbeat older than this: the loop is stuck, stop feeding
_CPU_HZ = const(240_000_000)  # stock ESP32 builds boot at 160 MHz; taps are CPU-bound

FEED_MS = _WDT_FEED_MS


class Platform:
    def pin_factory(self):
        from carkey.hw.pins import machine_pin

        return machine_pin

    def uart_factory(self):
        from carkey.hw.pins import machine_uart

        return machine_uart

    def pn532(self, spec):
        from carkey.hw.pn532_board import pn532_from_spec

        return pn532_from_spec(spec)

    def ble(self):
        try:
            import bluetooth
        except ImportError:
            return None
        return bluetooth.BLE()

    def console(self):
        """The USB console's input while the application runs (owner requests, docs/PROTOCOL.md §9)."""
        import sys

        return getattr(sys.stdin, "buffer", sys.stdin)

    def full_speed(self):
        """Run the CPU at 240 MHz (ESP32, ESP32-S3): the benchmark's estimates are for
        that clock. Returns the clock in Hz, or None where it cannot be set."""
        try:
            import machine

            machine.freq(_CPU_HZ)
            return machine.freq()
        except (ImportError, AttributeError, ValueError):
            return None  # the Unix port has no machine.freq; a C3 tops out at 160 MHz

    def kbd_intr(self, char):
        """-1: Ctrl-C on the USB serial is console data (installed mode); 3: it interrupts."""
        import micropython

        micropython.kbd_intr(char)

    def reset(self):
        import machine

        machine.reset()

    def maintenance(self, watchdog, seconds):
        """The owner's maintenance window: the REPL is open until the watchdog, fed
        `seconds` more, resets the board into the application."""
        print("carkey: maintenance for %d s: REPL open, then reset" % seconds)
        if watchdog is not None:
            watchdog.release(seconds * 1000)

    def watchdog(self):
        try:
            from machine import WDT, Timer
        except ImportError:
            return None  # the Unix port has no watchdog
        from carkey.hw import maintenance

        maintenance.end()  # the application runs: a maintenance window is over
        return Watchdog(WDT(timeout=_WDT_TIMEOUT_MS), Timer(0))


class Watchdog:
    """machine.WDT fed from a timer while the event loop's heartbeat is fresh, or
    for good once the application has handed the board back to the REPL."""

    def __init__(self, wdt, timer, clock=None):
        import time

        self._ticks = clock or time.ticks_ms
        self._diff = time.ticks_diff
        self._wdt = wdt
        self._timer = timer
        self.released = False
        self.beat()
        timer.init(period=_WDT_FEED_MS, callback=self._tick)

    def beat(self):
        self._last = self._ticks()

    def release(self, ms=0):
        """Feed for good (ms 0), or for `ms` only: then the watchdog resets the board,
        which ends a maintenance window (installed mode) whatever runs at the REPL."""
        self.released = True
        if ms:
            from carkey.hw import maintenance

            self._timer.deinit()
            maintenance.begin(self._wdt, self._timer, ms)  # kept across a soft reset

    def _tick(self, _timer):
        if self.released or self._diff(self._ticks(), self._last) < _STALL_MS:
            self._wdt.feed()


def safe_boot(board):
    """Whether the board's SAFE_BOOT_PIN (if it names one) is held low right now."""
    pin = getattr(board, "SAFE_BOOT_PIN", None)
    if pin is None:
        return False
    try:
        from machine import Pin
    except ImportError:
        return False
    return Pin(pin, Pin.IN, Pin.PULL_UP).value() == 0


def for_board(board):
    """The Platform the board description names (PLATFORM: a module with a Platform class)."""
    name = getattr(board, "PLATFORM", None)
    if name is None:
        return Platform()
    return __import__(name, None, None, ("Platform",)).Platform()
