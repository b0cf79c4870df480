# carkey — a firmware-style test module with known outcomes, used to test the test harness itself.
# SPDX-License-Identifier: MIT

import unittest

MPY_HEAPSIZE = "64k"


class TestSample(unittest.TestCase):
    def test_passes(self):
        self.assertEqual(bytes([1, 2]), b"\x01\x02")

    def test_fails(self):
        self.assertEqual(b"\x01", b"\x02")

    def test_errors(self):
        {}["missing"]

    def test_skips(self):
        self.skipTest("not on this port")

    def test_raises_checked(self):
        with self.assertRaises(ValueError):
            int("x")

    def test_raises_missing(self):
        with self.assertRaises(ValueError):
            pass


if __name__ == "__main__":
    unittest.main()
