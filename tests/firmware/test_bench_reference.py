# carkey — the benchmark's reference workload computes pi, and every measurement pairs with it.
# SPDX-License-Identifier: MIT
#
# Run: .venv/bin/pytest -q tests/firmware/test_bench_reference.py

import unittest

from carkey import bench

MPY_HEAPSIZE = "64k"

# The first 65 digits of pi (the reference's published time is for exactly 65).
PI_65 = "31415926535897932384626433832795028841971693993751058209749445923"


class TestReference(unittest.TestCase):
    def test_65_digits_of_pi(self):
        digits = bench.pi_digits(bench.REF_DIGITS)
        self.assertEqual(bench.REF_DIGITS, 65)
        self.assertEqual("".join(str(d) for d in digits), PI_65)

    def test_prefixes(self):
        self.assertEqual(bench.pi_digits(1), [3])
        self.assertEqual(bench.pi_digits(10), [3, 1, 4, 1, 5, 9, 2, 6, 5, 3])

    def test_every_measurement_is_paired_with_the_reference(self):
        r = bench.measure("hkdf", 5)
        self.assertEqual(r["runs"], 5)
        self.assertTrue(r["ref_median_us"] > 0)
        self.assertTrue(0 < r["ratio_min"] <= r["ratio_q1"] <= r["ratio_median"] <= r["ratio_q3"] <= r["ratio_max"])
        # hkdf is far cheaper than 65 digits of pi: a ratio near 1 would mean the pair is wrong.
        self.assertTrue(r["ratio_median"] < 0.5)


if __name__ == "__main__":
    unittest.main()
