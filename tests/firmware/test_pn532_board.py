# carkey — the PN532 built from each board's bus description, with a recording `machine`.
# SPDX-License-Identifier: MIT
#
#   .venv/bin/pytest -q tests/firmware/test_pn532_board.py
#   MICROPYPATH=firmware:tests/mpy:tests/firmware:boards .venv/bin/micropython tests/firmware/test_pn532_board.py

import unittest

import esp32_devkitc
import esp32_s3
import virtual

from carkey.hw.pn532_board import pn532_from_spec

MPY_HEAPSIZE = "64k"


class FakeMachine:
    """Records how each machine object was made."""

    def __init__(self):
        self.made = []
        machine = self

        class Pin:
            OUT = "out"

            def __init__(self, gpio, mode=None, value=None):
                machine.made.append(("Pin", gpio, mode, value))
                self.level = value

            def value(self, v=None):
                if v is None:
                    return self.level
                self.level = v

        class Bus:
            def __init__(self, kind, bus_id, **kw):
                machine.made.append((kind, bus_id, sorted((k, v if not isinstance(v, Pin) else "pin")
                                                          for k, v in kw.items())))

        class SPI(Bus):
            LSB = "lsb"

            def __init__(self, bus_id, **kw):
                super().__init__("SPI", bus_id, **kw)

        self.Pin = Pin
        self.SPI = SPI
        self.I2C = lambda bus_id, **kw: Bus("I2C", bus_id, **kw)
        self.UART = lambda bus_id, **kw: Bus("UART", bus_id, **kw)


class TestBoards(unittest.TestCase):
    def test_devkitc_uses_i2c_at_400k(self):
        m = FakeMachine()
        pn = pn532_from_spec(esp32_devkitc.BUSES["pn532"], m)
        self.assertEqual(type(pn._t).__name__, "I2cTransport")
        self.assertIn(("I2C", 0, [("freq", 400000), ("scl", "pin"), ("sda", "pin")]), m.made)

    def test_s3_uses_spi_lsb_first_mode_0_and_cs_idle_high(self):
        m = FakeMachine()
        pn = pn532_from_spec(esp32_s3.BUSES["pn532"], m)
        self.assertEqual(type(pn._t).__name__, "SpiTransport")
        self.assertIn(("SPI", 1, [("baudrate", 1000000), ("firstbit", "lsb"), ("miso", "pin"), ("mosi", "pin"),
                                  ("phase", 0), ("polarity", 0), ("sck", "pin")]), m.made)
        self.assertIn(("Pin", 10, "out", 1), m.made)

    def test_virtual_board_takes_the_given_uart(self):
        uart = object()
        pn = pn532_from_spec(virtual.BUSES["pn532"], uart=uart)
        self.assertIs(pn._t._uart, uart)

    def test_uart_from_machine_never_blocks(self):
        m = FakeMachine()
        pn532_from_spec(virtual.BUSES["pn532"], m)
        self.assertIn(("UART", 1, [("baudrate", 115200), ("rx", 21), ("rxbuf", 512), ("timeout", 0), ("tx", 20)]),
                      m.made)

    def test_reset_pin_starts_high(self):
        m = FakeMachine()
        spec = dict(esp32_devkitc.BUSES["pn532"], rst=4)
        pn = pn532_from_spec(spec, m)
        self.assertEqual(m.made[0], ("Pin", 4, "out", 1))
        self.assertIsNotNone(pn._reset)

    def test_unknown_bus_type_refused(self):
        with self.assertRaises(ValueError):
            pn532_from_spec({"type": "can"}, FakeMachine())


if __name__ == "__main__":
    unittest.main()
