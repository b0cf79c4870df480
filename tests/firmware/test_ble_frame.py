# carkey — tests for carkey.hw.ble_frame: length prefix, MTU−3 chunks, reassembly and refused frames.
# SPDX-License-Identifier: MIT
#
# Run: pytest -q tests/firmware/test_ble_frame.py (inside MicroPython, 64 KiB heap)

import unittest
from carkey.hw.ble_frame import FrameError, Reassembler, chunk_size, encode

MPY_HEAPSIZE = "64k"


def feed_all(r, data, step):
    done = False
    for i in range(0, len(data), step):
        done = r.feed(data[i : i + step])
    return done


class TestEncode(unittest.TestCase):
    def test_prefix_and_bytes(self):
        buf = bytearray(10)
        self.assertEqual(encode(buf, b"\x00\xa4\x04\x00", 8), 6)
        self.assertEqual(bytes(buf[:6]), b"\x00\x04\x00\xa4\x04\x00")

    def test_length_300_is_big_endian(self):
        buf = bytearray(302)
        encode(buf, bytes(300), 300)
        self.assertEqual(bytes(buf[:2]), b"\x01\x2c")

    def test_empty_and_oversize_refused(self):
        buf = bytearray(20)
        with self.assertRaises(ValueError):
            encode(buf, b"", 10)
        with self.assertRaises(ValueError):
            encode(buf, bytes(11), 10)

    def test_chunk_size_is_mtu_minus_3(self):
        self.assertEqual(chunk_size(23), 20)
        self.assertEqual(chunk_size(247), 244)
        self.assertEqual(chunk_size(517), 514)
        with self.assertRaises(ValueError):
            chunk_size(22)
        with self.assertRaises(ValueError):
            chunk_size(518)


class TestReassembler(unittest.TestCase):
    def test_whole_frame_in_20_byte_chunks(self):
        r = Reassembler(512)
        apdu = bytes(range(256)) + bytes(range(47))
        frame = bytes((len(apdu) >> 8, len(apdu) & 0xFF)) + apdu
        self.assertTrue(feed_all(r, frame, 20))
        self.assertEqual(bytes(r.payload()), apdu)

    def test_header_split_across_chunks(self):
        r = Reassembler(512)
        self.assertFalse(r.feed(b"\x00"))
        self.assertFalse(r.feed(b"\x03\x90"))
        self.assertTrue(r.feed(b"\x00\x01"))
        self.assertEqual(bytes(r.payload()), b"\x90\x00\x01")

    def test_not_complete_until_last_byte(self):
        r = Reassembler(512)
        self.assertFalse(r.feed(b"\x00\x05\x01\x02"))
        self.assertTrue(r.started())
        self.assertFalse(r.complete())
        with self.assertRaises(FrameError):
            r.payload()

    def test_short_frame_named(self):
        r = Reassembler(512)
        r.feed(b"\x00\x05\x01\x02")
        try:
            r.payload()
        except FrameError as e:
            self.assertEqual(str(e), "frame short: 4 of 7 bytes")

    def test_zero_length_refused(self):
        r = Reassembler(512)
        with self.assertRaises(FrameError):
            r.feed(b"\x00\x00")

    def test_oversize_refused_before_buffering(self):
        r = Reassembler(512)
        try:
            r.feed(b"\x02\x01" + bytes(18))
            self.fail("accepted a 513-byte frame")
        except FrameError as e:
            self.assertEqual(str(e), "frame length 513 outside 1..512")

    def test_bytes_past_end_refused_in_first_chunk(self):
        r = Reassembler(512)
        with self.assertRaises(FrameError):
            r.feed(b"\x00\x01\x90\x00")

    def test_bytes_past_end_refused_in_later_chunk(self):
        r = Reassembler(512)
        r.feed(b"\x00\x03\x90")
        try:
            r.feed(b"\x00\x01\x02")
            self.fail("accepted trailing bytes")
        except FrameError as e:
            self.assertEqual(str(e), "1 bytes past the end of a 5-byte frame")

    def test_empty_chunk_refused(self):
        with self.assertRaises(FrameError):
            Reassembler(512).feed(b"")

    def test_reset_reuses_the_buffer(self):
        r = Reassembler(16)
        r.feed(b"\x00\x02\xaa\xbb")
        first = r.payload()
        r.reset()
        r.feed(b"\x00\x01\xcc")
        self.assertEqual(bytes(r.payload()), b"\xcc")
        self.assertEqual(bytes(first), b"\xcc\xbb")  # a view into one buffer: copy before reset
