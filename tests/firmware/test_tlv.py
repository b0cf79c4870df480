# carkey — strict BER-TLV: exact encodings, and every malformed form refused.
# SPDX-License-Identifier: MIT
#
# Run: .venv/bin/pytest -q tests/firmware/test_tlv.py
#  or: MICROPYPATH=firmware:tests/mpy:tests/firmware .venv/bin/micropython tests/firmware/test_tlv.py

import unittest

from carkey.protocol import tlv
from carkey.protocol.tlv import TlvError

MPY_HEAPSIZE = "64k"

h = bytes.fromhex


class TestEncode(unittest.TestCase):
    def test_short_length(self):
        self.assertEqual(tlv.encode(0x5C, b"\x01\x00"), h("5c020100"))
        self.assertEqual(tlv.encode(0x80, b""), h("8000"))
        self.assertEqual(tlv.encode(0x80, bytes(127))[:2], h("807f"))

    def test_81_and_82_lengths(self):
        self.assertEqual(tlv.encode(0x53, bytes(128))[:3], h("538180"))
        self.assertEqual(len(tlv.encode(0x53, bytes(128))), 131)
        self.assertEqual(tlv.encode(0x53, bytes(255))[:3], h("5381ff"))
        self.assertEqual(tlv.encode(0x53, bytes(256))[:4], h("53820100"))
        buf = bytearray(4)
        self.assertEqual(tlv.write_header(buf, 0, 0x53, 0xFFFF), 4)
        self.assertEqual(bytes(buf), h("5382ffff"))

    def test_two_byte_tag(self):
        self.assertEqual(tlv.encode(0x7F66, b"\x02"), h("7f660102"))
        self.assertEqual(tlv.encode(0x5F1F, b""), h("5f1f00"))

    def test_tag_00_is_allowed(self):
        # EXCHANGE answers end with 00 02 <status>.
        self.assertEqual(tlv.encode(0x00, b"\x00\x00"), h("00020000"))

    def test_bad_tags_refused(self):
        for tag in (0x1F, 0x7F, 0x7F05, 0x5F80, 0x4D1F, 0x10000, -1):
            with self.assertRaises(TlvError):
                tlv.encode(tag, b"")

    def test_value_too_long(self):
        with self.assertRaises(TlvError):
            tlv.write_header(bytearray(4), 0, 0x53, 0x10000)

    def test_write_into_buffer(self):
        buf = bytearray(12)
        end = tlv.write(buf, 2, 0x87, b"\xaa\xbb")
        end = tlv.write(buf, end, 0x7F66, b"\xcc")
        self.assertEqual(end, 10)
        self.assertEqual(bytes(buf), h("0000" + "8702aabb" + "7f6601cc" + "0000"))

    def test_round_trip_all_length_forms(self):
        for n in (0, 1, 127, 128, 200, 255, 256, 300, 1000):
            value = bytes(i & 0xFF for i in range(n))
            data = tlv.encode(0x9E, value)
            tag, start, end = tlv.read(data, 0)
            self.assertEqual((tag, end), (0x9E, len(data)))
            self.assertEqual(data[start:end], value)


class TestDecode(unittest.TestCase):
    def test_read_offsets(self):
        data = h("4c02abcd7f660103")
        self.assertEqual(tlv.read(data, 0), (0x4C, 2, 4))
        self.assertEqual(tlv.read(data, 4), (0x7F66, 7, 8))

    def test_iterate_covers_everything(self):
        data = h("4101004201025c020100")
        self.assertEqual(list(tlv.iterate(data)), [(0x41, 2, 3), (0x42, 5, 6), (0x5C, 8, 10)])
        self.assertEqual(list(tlv.iterate(b"")), [])

    def test_fields_are_views_not_copies(self):
        data = bytearray(h("86020102" "9d0103"))
        found = tlv.fields(data)
        self.assertTrue(isinstance(found[0x86], memoryview))
        self.assertEqual(bytes(found[0x86]), b"\x01\x02")
        data[2] = 0x55
        self.assertEqual(bytes(found[0x86]), b"\x55\x02")

    def test_fields_skips_unwanted_but_checks_them(self):
        data = h("8601aa" "b30401020304" "9d01bb")
        found = tlv.fields(data, (0x86, 0x9D))
        self.assertEqual(sorted(found), [0x86, 0x9D])
        with self.assertRaises(TlvError):
            tlv.fields(h("8601aa" "b305010203"), (0x86,))

    def test_repeated_tag_refused(self):
        with self.assertRaises(TlvError):
            tlv.fields(h("8601aa8601bb"))
        # ...but a repeated tag nobody asked for is not a conflict.
        self.assertEqual(bytes(tlv.fields(h("8601aab300b300"), (0x86,))[0x86]), b"\xaa")

    def test_get_checks_presence_and_length(self):
        found = tlv.fields(h("8602aabb"))
        self.assertEqual(bytes(tlv.get(found, 0x86, 2)), b"\xaa\xbb")
        with self.assertRaises(TlvError):
            tlv.get(found, 0x86, 65)
        with self.assertRaises(TlvError):
            tlv.get(found, 0x9D)

    def test_malformed_inputs_refused(self):
        bad = (
            "",  # nothing where an object must be
            "86",  # no length
            "8603aabb",  # value truncated
            "1f",  # two-byte tag cut short
            "7f",  # same
            "1f1e00",  # tag number < 31 in the two-byte form
            "7f810100",  # three-byte tag
            "8681",  # 81 without its byte
            "86817f" + "00" * 127,  # 81 for a length that fits the short form
            "868200ff" + "00" * 255,  # 82 for a length that fits 81
            "868201",  # 82 cut short
            "868301000000",  # 83 form unsupported
            "8680",  # indefinite length
            "86ff",  # reserved form
        )
        for text in bad:
            with self.assertRaises(TlvError):
                tlv.read(h(text), 0)

    def test_trailing_bytes_refused(self):
        with self.assertRaises(TlvError):
            list(tlv.iterate(h("860100" "86")))
        with self.assertRaises(TlvError):
            tlv.fields(h("860100" "8602aa"))

    def test_accepts_memoryview_input(self):
        mv = memoryview(h("ff" "860100"))[1:]
        self.assertEqual(tlv.read(mv, 0), (0x86, 2, 3))

    def test_error_is_a_value_error(self):
        self.assertTrue(issubclass(TlvError, ValueError))


if __name__ == "__main__":
    unittest.main()
