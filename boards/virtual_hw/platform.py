# carkey — the virtual board's hardware for the ECU application: car body, PN532 pty, virtual radio.
# SPDX-License-Identifier: MIT
#
# carkey.ecu.app asks its platform for pins, UARTs, the PN532 and the radio; on
# the virtual board they come from here. Environment (set by whoever starts the
# board, e.g. `carkey vboard`):
#   CARKEY_PN532   path of the PN532 stand-in's pty (no NFC without it)
#   CARKEY_AIR     HOST:PORT of the virtual air (no BLE without it; read by bluetooth.py)
# The car body (lock, doors, ignition) persists in car_body.json in the board's
# flash directory, and the car-bus stream goes to carbus.log there.
# CARKEY_PN532 is a host path: on the virtual board the host opens it
# (virtual_hw/host.py). A task that dies (a radio whose device is gone) is printed
# on the board's console, as on an ESP32, and reported to the host as well.

import asyncio
import os

from virtual_hw import host
from virtual_hw.car_body import CarBody

_BODY = "car_body.json"


class _FileUART:
    # The car bus on the virtual board: every line appended to a file.
    def __init__(self, path):
        self._path = path

    def write(self, buf):
        with open(self._path, "ab") as f:
            return f.write(buf)


def _task_died(loop, context):
    loop.default_exception_handler(loop, context)
    coro = repr(getattr(context.get("future"), "coro", ""))
    name = coro.split("'")[1] if coro.count("'") >= 2 else "?"  # <generator object '_nfc' at ...>
    exc = context.get("exception")
    host.report("task %s stopped: %s: %s" % (name.lstrip("_"), type(exc).__name__, exc))


class VirtualPlatform:
    def task_failed(self, name, exc):
        # The Supervisor restarts the task; the host hears of every failure too.
        host.report("task %s stopped: %s: %s" % (name, type(exc).__name__, exc))

    def __init__(self, flash_dir="."):
        self.flash_dir = flash_dir
        self.body = CarBody.load(flash_dir + "/" + _BODY)
        asyncio.get_event_loop().set_exception_handler(_task_died)

    def save(self):
        self.body.save(self.flash_dir + "/" + _BODY)

    def pin_factory(self):
        return self.body.pin

    def uart_factory(self):
        flash_dir = self.flash_dir

        def make(name, spec):
            return _FileUART(flash_dir + "/" + name + ".log")

        return make

    def pn532(self, spec):
        path = host.device("CARKEY_PN532")
        if path is None:
            return None
        from carkey.hw.pn532 import Pn532
        from carkey.hw.pn532_hsu import UartTransport
        from virtual_hw.uart import PtyUART

        return Pn532(UartTransport(PtyUART(path)))

    def ble(self):
        if not os.getenv("CARKEY_AIR"):
            return None
        import bluetooth  # the virtual radio (boards/virtual_hw/bluetooth.py)

        return bluetooth.BLE()

    def console(self):
        # The board's USB console: what the host writes while the application runs
        # (the virtual board passes it to the program's stdin, as an ESP32 does).
        import sys

        return getattr(sys.stdin, "buffer", sys.stdin)

    def full_speed(self):
        return None  # the host's clock is what it is

    def watchdog(self):
        return None

    # The USB serial's interrupt character and the watchdog are the bridge's
    # (carkey_host.vboard): it owns the serial port and the board's power.
    def kbd_intr(self, char):
        host.bridge("watchdog 0")  # the application runs (and feeds it): no maintenance window
        host.bridge("kbd_intr %d" % char)

    def reset(self):
        raise SystemExit  # the bridge starts a fresh interpreter: boot.py, main.py

    def maintenance(self, watchdog, seconds):
        print("carkey: maintenance for %d s: REPL open, then reset" % seconds)
        host.bridge("watchdog %d" % (seconds * 1000))


Platform = VirtualPlatform  # the name carkey.hw.platform.for_board() looks for
