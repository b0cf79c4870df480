# carkey — the key fob's hardware layer: which platform a board names, and the ESP32 fob's calls into machine/esp32.
# SPDX-License-Identifier: MIT
#
# The board descriptions decide the platform (PLATFORM, default carkey.hw.fob_platform).
# The ESP32 fob's Platform runs here against stand-ins for stock MicroPython's
# `machine`, `esp32` and `bluetooth` that answer as the ESP32 port does: on an
# ESP32-C3 Pin.irq takes wake=machine.DEEPSLEEP; on a classic ESP32 it refuses it
# (ValueError) and EXT0 is the wake source; deepsleep() never returns.
#
# Run: .venv/bin/pytest -q tests/firmware/test_fob_platform.py

import os
import sys

import unittest
from scratch import remove_tree, scratch_dir

import esp32_c3_fob
import virtual_fob
from carkey.fob import app as fobapp
from carkey.hw import fob_platform


class _Slept(Exception):
    # machine.deepsleep() does not return: the chip resets on wake.
    pass


class _Machine:
    # The parts of the ESP32 port's `machine` the fob platform uses; calls are recorded.
    DEEPSLEEP = 4
    DEEPSLEEP_RESET = 4
    PWRON_RESET = 1

    def __init__(self, c3=True, reset=1, uv=1950000, level=1):
        self.calls = []
        self.c3 = c3
        self.reset = reset
        machine = self

        class Pin:
            IN = 1
            PULL_UP = 2
            WAKE_LOW = 4
            WAKE_HIGH = 5

            def __init__(self, gpio, mode=None, pull=None):
                self.gpio = gpio
                machine.calls.append(("Pin", gpio, mode, pull))

            def irq(self, trigger=None, wake=None):
                if wake is not None and not machine.c3:
                    raise ValueError("bad wake value")  # classic ESP32: EXT0 through esp32
                machine.calls.append(("irq", self.gpio, trigger, wake))

            def value(self):
                return level

        class ADC:
            ATTN_11DB = 3

            def __init__(self, pin, atten=None):
                machine.calls.append(("ADC", pin.gpio, atten))

            def read_uv(self):
                return uv

        self.Pin = Pin
        self.ADC = ADC

    def reset_cause(self):
        return self.reset

    def deepsleep(self, ms=None):
        self.calls.append(("deepsleep", ms))
        raise _Slept()


class _Esp32:
    WAKEUP_ALL_LOW = False
    WAKEUP_ANY_HIGH = True

    def __init__(self):
        self.calls = []

    def wake_on_ext0(self, pin, level):
        self.calls.append(("ext0", pin.gpio, level))


class _Bluetooth:
    class BLE:
        pass


class TestBoardNamesPlatform(unittest.TestCase):
    def test_esp32_fob_takes_the_default(self):
        self.assertFalse(hasattr(esp32_c3_fob, "PLATFORM"))
        self.assertIsInstance(fob_platform.for_board(esp32_c3_fob), fob_platform.Platform)

    def test_virtual_fob_takes_the_virtual_board(self):
        from virtual_hw.fob_platform import VirtualFobPlatform

        self.assertIsInstance(fob_platform.for_board(virtual_fob), VirtualFobPlatform)

    def test_application_takes_the_boards_platform(self):
        from virtual_hw.fob_platform import VirtualFobPlatform

        here = os.getcwd()
        d = scratch_dir()
        os.chdir(d)  # the virtual fob's pins are files in the board's directory (here ".")
        try:
            app = fobapp.FobApp(virtual_fob, None, d)
            self.assertIsInstance(app.platform, VirtualFobPlatform)
            app.led.value(1)
            with open("gpio.log") as f:
                self.assertTrue(f.read().endswith(" led 1\n"))
        finally:
            os.chdir(here)
            remove_tree(d)


class TestEsp32FobPlatform(unittest.TestCase):
    def setUp(self):
        self.saved = {name: sys.modules.get(name) for name in ("machine", "esp32", "bluetooth")}

    def tearDown(self):
        for name, mod in self.saved.items():
            if mod is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = mod

    def use(self, machine, esp32=None):
        sys.modules["machine"] = machine
        sys.modules["esp32"] = esp32 or _Esp32()
        return fob_platform.Platform()

    def test_c3_sleeps_with_the_button_as_gpio_wake_source(self):
        machine = _Machine(c3=True)
        esp32 = _Esp32()
        with self.assertRaises(_Slept):
            self.use(machine, esp32).deep_sleep(3, True)
        Pin = machine.Pin
        self.assertEqual(machine.calls, [("Pin", 3, Pin.IN, Pin.PULL_UP), ("irq", 3, Pin.WAKE_LOW, machine.DEEPSLEEP),
                                         ("deepsleep", None)])
        self.assertEqual(esp32.calls, [])

    def test_classic_esp32_falls_back_to_ext0(self):
        machine = _Machine(c3=False)
        esp32 = _Esp32()
        with self.assertRaises(_Slept):
            self.use(machine, esp32).deep_sleep(3, False)
        self.assertEqual(esp32.calls, [("ext0", 3, esp32.WAKEUP_ANY_HIGH)])
        self.assertEqual(machine.calls[0], ("Pin", 3, machine.Pin.IN, None))
        self.assertEqual(machine.calls[-1], ("deepsleep", None))

    def test_stuck_button_sleeps_on_a_timer_only(self):
        machine = _Machine()
        with self.assertRaises(_Slept):
            self.use(machine).deep_sleep(3, True, 60000)
        self.assertEqual(machine.calls, [("deepsleep", 60000)])

    def test_woken_by_button_is_a_deep_sleep_reset(self):
        self.assertTrue(self.use(_Machine(reset=_Machine.DEEPSLEEP_RESET)).woken_by_button())
        self.assertFalse(self.use(_Machine(reset=_Machine.PWRON_RESET)).woken_by_button())

    def test_battery_through_the_divider(self):
        machine = _Machine(uv=1950000)
        platform = self.use(machine)
        self.assertEqual(platform.battery_mv(esp32_c3_fob.BATTERY), 3900)  # 1.95 V at the pin, 1:1 divider
        self.assertEqual(machine.calls[:2], [("Pin", 1, None, None), ("ADC", 1, machine.ADC.ATTN_11DB)])
        self.assertIsNone(platform.battery_mv(None))

    def test_radio_is_the_boards_ble(self):
        sys.modules["bluetooth"] = _Bluetooth
        self.assertIsInstance(fob_platform.Platform().ble(), _Bluetooth.BLE)

    def test_safe_boot_reads_the_boot_button(self):
        sys.modules["machine"] = _Machine(level=0)
        self.assertTrue(fobapp.safe_boot(esp32_c3_fob))
        sys.modules["machine"] = _Machine(level=1)
        self.assertFalse(fobapp.safe_boot(esp32_c3_fob))
        self.assertFalse(fobapp.safe_boot(virtual_fob))  # names no SAFE_BOOT_PIN


if __name__ == "__main__":
    unittest.main()
