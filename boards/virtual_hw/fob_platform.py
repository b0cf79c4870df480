# carkey — the virtual board's hardware for the key fob: button, LED and buzzer as files, the virtual air.
# SPDX-License-Identifier: MIT
#
# boards/virtual_fob.py names this module as its PLATFORM (a real fob's is
# carkey.hw.fob_platform). carkey.fob.app asks its platform for pins, the radio,
# the battery and deep sleep; on the virtual board they live in the board's flash
# directory:
#   button       "1" while the button is pressed (the test, or a person, writes it)
#   gpio.log     one line per output write: "<ticks_ms> <role> <level>" (the LED, the buzzer)
#   battery_mv   the cell voltage the ADC would read (default 3900)
#   asleep       written by deep sleep ({"button": gpio} or {"timer_ms": ms}); the next
#                start reads and removes it: that start was a wake from deep sleep
#   rtcmem       what the fob keeps in RTC memory between presses (its last car's
#                address and handles, the next ephemeral key): carkey.fob.app._Kept
# The radio is the virtual air as a central (CARKEY_AIR says where).

import json
import os
import time

_DEFAULT_BATTERY_MV = 3900


class _OutPin:
    def __init__(self, role, path, level):
        self._role = role
        self._path = path
        self._level = level

    def value(self, v=None):
        if v is None:
            return self._level
        self._level = 1 if v else 0
        with open(self._path, "a") as f:
            f.write("%d %s %d\n" % (time.ticks_ms(), self._role, self._level))


class _InPin:
    def __init__(self, path):
        self._path = path

    def value(self):
        try:
            with open(self._path) as f:
                return 1 if f.read(1) == "1" else 0
        except OSError:
            return 0


class VirtualFobPlatform:
    def __init__(self, flash_dir="."):
        self.flash_dir = flash_dir
        self.sleep_request = None

    def _file(self, name):
        return self.flash_dir + "/" + name

    def pin_factory(self):
        def make(role, gpio, mode, pull, idle_level):
            if mode == "out":
                return _OutPin(role, self._file("gpio.log"), idle_level)
            return _InPin(self._file(role))

        return make

    def ble(self):
        if not os.getenv("CARKEY_AIR"):
            raise OSError("no radio: CARKEY_AIR is not set")
        import bluetooth  # the virtual radio (boards/virtual_hw/bluetooth.py)

        bluetooth.AIR_ROLE = "central"
        return bluetooth.BLE()

    def woken_by_button(self):
        try:
            with open(self._file("asleep")) as f:
                why = json.loads(f.read())
            os.remove(self._file("asleep"))
        except (OSError, ValueError):
            return False
        return "button" in why

    def battery_mv(self, spec):
        if not spec:
            return None
        try:
            with open(self._file("battery_mv")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return _DEFAULT_BATTERY_MV

    def retained(self):
        # The RTC memory of a board: a file here ("rtcmem"), kept between presses.
        try:
            with open(self._file("rtcmem"), "rb") as f:
                return f.read()
        except OSError:
            return None

    def retain(self, data):
        with open(self._file("rtcmem"), "wb") as f:
            f.write(data)

    def deep_sleep(self, button_gpio, active_low, timer_ms=None):
        self.sleep_request = {"timer_ms": timer_ms} if timer_ms is not None else {"button": button_gpio}
        with open(self._file("asleep"), "w") as f:
            f.write(json.dumps(self.sleep_request))


Platform = VirtualFobPlatform  # the name carkey.hw.fob_platform.for_board() looks for
