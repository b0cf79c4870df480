# carkey — car-bus profile output: exact line bytes, escaping, checksum, profile validation.
# SPDX-License-Identifier: MIT
#
# Runs inside MicroPython with a 64 KiB heap, like a small ESP32 build.
#   .venv/bin/pytest -q tests/firmware/test_carbus.py
#   MICROPYPATH=firmware:tests/mpy:tests/firmware .venv/bin/micropython -X heapsize=64k tests/mpy/mpy_runner.py tests/firmware/test_carbus.py

import unittest
from fakeuart import FakeUART

from carkey.ecu.carbus import MAX_LINE, CarBus, CarBusError, ProfileError, crc16, profile_items

MPY_HEAPSIZE = "64k"

SLOT = b"\x01\x23\x45\x67\x89\xab\xcd\xef"


def unescape(value):
    out = bytearray()
    i = 0
    while i < len(value):
        if value[i] == 0x25:
            out.append(int(value[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(value[i])
            i += 1
    return bytes(out)


def decode(line):
    """The car side's view of a line (docs/CARBUS.md): checks framing and CRC, returns (event, fields)."""
    assert line.endswith(b"\n") and len(line) <= MAX_LINE
    star = line.rindex(b"*")
    assert line[star - 1] == 0x20 and len(line) - star == 6
    assert int(line[star + 1 : star + 5], 16) == crc16(line[:star])
    words = line[: star - 1].split(b" ")
    assert words[0] == b"CK1"
    fields = []
    for word in words[2:]:
        eq = word.index(b"=")
        fields.append((word[:eq], unescape(word[eq + 1 :])))
    return words[1], fields


class TestLine(unittest.TestCase):
    def setUp(self):
        self.uart = FakeUART()
        self.bus = CarBus(self.uart)

    def test_crc_is_ccitt_false(self):
        self.assertEqual(crc16(b"123456789"), 0x29B1)

    def test_profile_line_bytes(self):
        n = self.bus.emit_profile(SLOT, b"seat=3;mirror=2;climate=21.5;radio=FM 101.1")
        line = b"CK1 PROFILE seq=0 slot=0123456789ABCDEF seat=3 mirror=2 climate=21.5 radio=FM%20101.1 *FBA1\n"
        self.assertEqual(self.uart.writes, [line])
        self.assertEqual(n, len(line))

    def test_space_percent_and_star_in_values_are_escaped(self):
        self.bus.emit_profile(SLOT, b"note=100% *sure* a=b")
        self.assertEqual(
            self.uart.writes, [b"CK1 PROFILE seq=0 slot=0123456789ABCDEF note=100%25%20%2Asure%2A%20a=b *15D7\n"]
        )

    def test_decoding_gives_back_the_profile(self):
        profile = b"seat=3;radio=Radio 1;memo=50% = *half*;x="
        self.bus.emit_profile(SLOT, profile)
        event, fields = decode(self.uart.writes[0])
        self.assertEqual(event, b"PROFILE")
        self.assertEqual(fields[:2], [(b"seq", b"0"), (b"slot", b"0123456789ABCDEF")])
        self.assertEqual(fields[2:], profile_items(profile))
        self.assertEqual(fields[4], (b"memo", b"50% = *half*"))

    def test_sequence_counts_lines_and_wraps(self):
        self.bus.emit_profile(SLOT, b"seat=1")
        self.bus.seq = 65535
        self.bus.emit_profile(SLOT, b"seat=2")
        self.bus.emit_profile(SLOT, b"seat=3")
        self.assertEqual([decode(w)[1][0] for w in self.uart.writes], [(b"seq", b"0"), (b"seq", b"65535"), (b"seq", b"0")])

    def test_worst_case_line_fits_the_bound(self):
        profile = b"a=" + b" " * 126
        n = self.bus.emit_profile(SLOT, profile)
        self.assertEqual(n, len(b"CK1 PROFILE seq=0 slot=0123456789ABCDEF a=") + 3 * 126 + len(b" *XXXX\n"))
        self.assertLessEqual(n, MAX_LINE)
        self.assertEqual(decode(self.uart.writes[0])[1][2], (b"a", b" " * 126))

    def test_empty_profile_writes_nothing(self):
        self.assertEqual(self.bus.emit_profile(SLOT, b""), 0)
        self.assertEqual(self.uart.writes, [])
        self.assertEqual(self.bus.seq, 0)

    def test_slot_must_be_8_bytes(self):
        with self.assertRaises(ValueError):
            self.bus.emit_profile(SLOT[:7], b"seat=1")
        self.assertEqual(self.uart.writes, [])

    def test_short_write_is_an_error(self):
        bus = CarBus(FakeUART(accept=10))
        with self.assertRaises(CarBusError):
            bus.emit_profile(SLOT, b"seat=1")


class TestProfileEncoding(unittest.TestCase):
    BAD = (
        b"a=" + b"x" * 127,  # 129 bytes
        b"seat",  # no '='
        b"=3",  # empty key
        b"Seat=3",  # upper case
        b"3seat=3",  # starts with a digit
        b"seat-pos=3",  # '-' not allowed in keys
        b"abcdefghijklm=1",  # 13-byte key
        b"seat=3;",  # empty item
        b";seat=3",
        b"seat=3;;mirror=2",
        b"seat=3;seat=4",  # repeated key
        b"seq=1",  # reserved line fields
        b"slot=1",
        b"seat=\n",  # control byte
        b"seat=\x7f",
        b"seat=\xc3\xa9",  # not ASCII
        b";".join(b"k%d=1" % i for i in range(17)),  # 17 items
    )

    def test_valid_profiles(self):
        self.assertEqual(profile_items(b"seat=3"), [(b"seat", b"3")])
        self.assertEqual(
            profile_items(b"a=;b_2=x y;abcdefghijkl=~"), [(b"a", b""), (b"b_2", b"x y"), (b"abcdefghijkl", b"~")]
        )
        self.assertEqual(len(profile_items(b";".join(b"k%d=1" % i for i in range(16)))), 16)
        self.assertEqual(len(profile_items(b"a=" + b"x" * 126)), 1)

    def test_each_malformed_profile_is_refused_and_nothing_is_written(self):
        uart = FakeUART()
        bus = CarBus(uart)
        for profile in self.BAD:
            with self.assertRaises(ProfileError):
                profile_items(profile)
            with self.assertRaises(ProfileError):
                bus.emit_profile(SLOT, profile)
        self.assertEqual(uart.writes, [])
        self.assertEqual(bus.seq, 0)


if __name__ == "__main__":
    unittest.main()
