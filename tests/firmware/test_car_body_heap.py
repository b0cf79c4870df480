# carkey — the virtual car body holds a fixed heap however long the virtual board runs.
# SPDX-License-Identifier: MIT
#
# Its timeline of output changes was a list that grew to TIMELINE_LIMIT tuples: about
# 20 KiB of the stand-in's heap charged to the application over its first ~30 taps,
# and a 4 KiB list reallocation that a soak at a tight heap met as a MemoryError in the
# door task (carkey_host.soak).
#
# Run: .venv/bin/pytest -q tests/firmware/test_car_body_heap.py

import gc
import unittest

from virtual_hw.car_body import TIMELINE_LIMIT, CarBody


class CarBodyHeapTest(unittest.TestCase):
    def test_timeline_holds_a_fixed_heap(self):
        ticks = [0]
        body = CarBody(clock=lambda: ticks[0])
        lock = body.pin("lock", 1, "out", None, 0)
        unlock = body.pin("unlock", 2, "out", None, 0)
        gc.collect()
        before = gc.mem_alloc()
        for i in range(4 * TIMELINE_LIMIT):
            ticks[0] = 1000 * i
            (lock if i % 2 else unlock).value(i % 4 < 2)
        gc.collect()
        self.assertLess(gc.mem_alloc() - before, 512)

    def test_timeline_keeps_the_newest_changes_in_order(self):
        ticks = [0]
        body = CarBody(clock=lambda: ticks[0])
        unlock = body.pin("unlock", 2, "out", None, 0)
        for i in range(TIMELINE_LIMIT + 10):
            ticks[0] = 100 * i
            unlock.value(1 if i % 2 == 0 else 0)
        line = body.timeline
        self.assertEqual(len(line), TIMELINE_LIMIT)
        self.assertEqual(line[-1], (100 * (TIMELINE_LIMIT + 9), "unlock", 0))
        self.assertEqual(line[0], (1000, "unlock", 1))
        self.assertEqual(body.pulses()[-1], ("unlock", 100))
        self.assertFalse(body.locked)


if __name__ == "__main__":
    unittest.main()
