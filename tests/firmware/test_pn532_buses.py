# carkey — PN532 driver over the I2C (ready byte, NACK re-read) and SPI (prefixes, bit order) fakes.
# SPDX-License-Identifier: MIT
#
# The real driver talks to tests/mpy/fake_pn532_bus.py, which checks every frame's
# LEN/LCS/DCS and answers as the chip does; expected frames are written out in hex.
#   .venv/bin/pytest -q tests/firmware/test_pn532_buses.py
#   MICROPYPATH=firmware:tests/mpy:tests/firmware:boards .venv/bin/micropython tests/firmware/test_pn532_buses.py


import unittest

from fake_pn532_bus import ACK, NACK, SELECT, FakeChip, run
from fake_pn532_buses import FakeI2C, FakeSPI

from carkey.hw.pn532 import Pn532, Pn532Timeout
from carkey.hw.pn532_i2c import I2cTransport
from carkey.hw.pn532_spi import SpiTransport

MPY_HEAPSIZE = "64k"

H = bytes.fromhex
GET_FW = H("0000ff02fed4022a00")


class FakeResetPin:
    def __init__(self, chip):
        self.chip = chip
        self.levels = []

    def value(self, v):
        self.levels.append(v)
        if not v:
            self.chip.silent = False  # RSTPDN low resets a hung chip


class TestI2c(unittest.TestCase):
    def test_get_firmware_version_transactions(self):
        chip = FakeChip()
        bus = FakeI2C(chip)
        pn = Pn532(I2cTransport(bus, peek=24), ack_timeout_ms=20)
        self.assertEqual(bytes(run(pn.call(0x02))), H("32010607"))
        self.assertEqual(bus.log[0], ("w", GET_FW))
        reads = [d for k, d in bus.log if k == "r" and len(d) > 1]
        self.assertEqual(reads[0][:7], b"\x01" + ACK)  # ready byte first, then the ACK
        self.assertEqual(reads[1][:14], b"\x01" + H("0000ff06fad50332010607e800"))

    def test_long_answer_is_read_again_after_a_nack(self):
        rapdu = bytes(range(100)) + H("9000")
        chip = FakeChip(lambda c: rapdu)
        bus = FakeI2C(chip)
        pn = Pn532(I2cTransport(bus, peek=24), ack_timeout_ms=20)
        out = bytearray(128)
        self.assertEqual(bytes(out[: run(pn.exchange(1, SELECT, out))]), rapdu)
        self.assertIn(("w", NACK), bus.log)
        self.assertEqual(chip.nacks, 1)

    def test_wrong_address_times_out(self):
        chip = FakeChip()
        pn = Pn532(I2cTransport(FakeI2C(chip), address=0x25), ack_timeout_ms=20)
        with self.assertRaises(Pn532Timeout):
            run(pn.call(0x02))


    def test_reset_pin_pulses_low_on_begin(self):
        chip = FakeChip()
        pin = FakeResetPin(chip)
        chip.silent = True
        pn = Pn532(I2cTransport(FakeI2C(chip)), reset=pin, ack_timeout_ms=20)
        run(pn.begin())
        self.assertEqual(pin.levels, [0, 1])


class TestSpi(unittest.TestCase):
    def _rig(self, lsb):
        chip = FakeChip()
        bus = FakeSPI(chip, lsb=lsb)
        return chip, bus, Pn532(SpiTransport(bus, bus.cs, lsb_first=lsb), ack_timeout_ms=20)

    def test_lsb_first_bus(self):
        chip, bus, pn = self._rig(True)
        self.assertEqual(bytes(run(pn.call(0x02))), H("32010607"))
        self.assertEqual(bus.wire[0], b"\x01" + GET_FW)  # DW prefix, then the frame
        self.assertEqual(bus.wire[1], b"\x02")  # SR (the chip answers 01: ready)
        self.assertEqual(bus.wire[2][:1], b"\x03")  # DR
        self.assertEqual(bus.mosi[: 1 + len(GET_FW)], b"\x01" + GET_FW)

    def test_msb_first_bus_gets_bit_reversed_bytes(self):
        chip, bus, pn = self._rig(False)
        self.assertEqual(bytes(run(pn.call(0x02))), H("32010607"))
        self.assertEqual(bus.wire[0], b"\x01" + GET_FW)  # what the chip read, LSB first
        # DW 01 reversed, preamble, start code 00 FF, LEN 02 and LCS FE reversed
        self.assertEqual(bus.mosi[:6], H("800000ff407f"))

    def test_corrupted_answer_is_nacked_over_spi(self):
        chip, bus, pn = self._rig(True)
        chip.corrupt = 1
        self.assertEqual(bytes(run(pn.call(0x02))), H("32010607"))
        self.assertEqual(chip.nacks, 1)


if __name__ == "__main__":
    unittest.main()
