# carkey — tests for carkey.ecu.proximity: smoothing, hysteresis, lost signal, passive entry off by default.
# SPDX-License-Identifier: MIT
#
# Run: pytest -q tests/firmware/test_proximity.py (inside MicroPython, 64 KiB heap)

import unittest
from carkey.ecu.proximity import ACTION_LOCK, ACTION_UNLOCK, FAR, NEAR, UNKNOWN, PassiveEntry, Proximity

MPY_HEAPSIZE = "64k"


def feed(p, samples, t0=0, step=100):
    changes = []
    for i, s in enumerate(samples):
        c = p.sample(s, t0 + i * step)
        if c is not None:
            changes.append((i, c))
    return changes


class TestProximity(unittest.TestCase):
    def test_needs_min_samples(self):
        p = Proximity(min_samples=3)
        self.assertEqual(feed(p, [-50, -50, -50]), [(2, NEAR)])

    def test_smoothing_ignores_one_spike(self):
        p = Proximity()
        feed(p, [-90, -90, -90])
        self.assertEqual(p.state, FAR)
        self.assertIsNone(p.sample(-40, 400))  # -90 + 50/4 = -77.5: still far
        self.assertEqual(p.rssi(), -77.5)

    def test_hysteresis_band_keeps_state(self):
        p = Proximity(near_dbm=-65, far_dbm=-80, weight=1)
        feed(p, [-60, -60, -60])
        self.assertEqual(p.state, NEAR)
        self.assertEqual(feed(p, [-70, -75, -79], t0=1000), [])
        self.assertEqual(p.state, NEAR)
        self.assertEqual(feed(p, [-80], t0=2000), [(0, FAR)])
        self.assertEqual(feed(p, [-70, -66], t0=3000), [])
        self.assertEqual(feed(p, [-65], t0=4000), [(0, NEAR)])

    def test_between_thresholds_at_first_is_far(self):
        p = Proximity(weight=1)
        self.assertEqual(feed(p, [-70, -70, -70]), [(2, FAR)])

    def test_silence_is_far(self):
        p = Proximity(lost_ms=3000)
        feed(p, [-50, -50, -50])
        self.assertIsNone(p.tick(2999 + 200))
        self.assertEqual(p.tick(3000 + 200), FAR)
        self.assertIsNone(p.tick(9000))

    def test_bad_input_refused(self):
        with self.assertRaises(ValueError):
            Proximity(near_dbm=-80, far_dbm=-65)
        with self.assertRaises(ValueError):
            Proximity().sample(50, 0)
        self.assertEqual(Proximity().state, UNKNOWN)


class TestPassiveEntry(unittest.TestCase):
    def test_off_by_default(self):
        pe = PassiveEntry()
        self.assertFalse(pe.enabled)
        actions = [pe.sample(-50, t * 100) for t in range(5)]
        self.assertEqual([a for a in actions if a is not None], [])

    def test_rssi_alone_never_unlocks(self):
        # A node advertising the phone's address, near for as long as it likes.
        pe = PassiveEntry(Proximity(weight=1), enabled=True)
        got = [pe.sample(s, i * 100) for i, s in enumerate([-90, -90, -90] + [-50] * 20)]
        self.assertEqual([a for a in got if a is not None], [])

    def test_unlock_on_approach_with_the_phones_transaction_lock_on_walk_away(self):
        pe = PassiveEntry(Proximity(weight=1), enabled=True)
        got = [pe.sample(s, i * 100) for i, s in enumerate([-90, -90, -90, -60])]
        self.assertEqual(got, [None, None, None, None])  # near, but no proof yet
        self.assertEqual(pe.transaction(500), ACTION_UNLOCK)  # the phone's own fast transaction
        self.assertEqual(pe.sample(-70, 600), None)
        self.assertEqual(pe.sample(-85, 700), ACTION_LOCK)

    def test_a_transaction_before_the_approach_counts_only_briefly(self):
        pe = PassiveEntry(Proximity(weight=1), enabled=True, approach_ms=5000)
        for i in range(3):
            pe.sample(-90, i * 100)
        self.assertIsNone(pe.transaction(1000))  # away: proof kept for this approach
        self.assertEqual(pe.sample(-50, 2000), ACTION_UNLOCK)
        pe.sample(-90, 3000)  # away again: the proof is spent
        self.assertIsNone(pe.transaction(4000))
        self.assertIsNone(pe.sample(-50, 10000))  # six seconds later: too old

    def test_once_per_approach_and_not_right_after_the_watch_began(self):
        pe = PassiveEntry(Proximity(weight=1), enabled=True)
        for i in range(3):
            pe.sample(-50, i * 100)
        self.assertIsNone(pe.transaction(300))  # never away since the watch began
        pe.sample(-90, 400)
        pe.sample(-50, 500)
        self.assertEqual(pe.transaction(600), ACTION_UNLOCK)
        self.assertIsNone(pe.transaction(700))  # e.g. a lock from the phone: no unlock behind it

    def test_first_sight_far_does_not_lock(self):
        pe = PassiveEntry(Proximity(weight=1), enabled=True)
        got = [pe.sample(-90, i * 100) for i in range(3)]
        self.assertEqual(got, [None, None, None])

    def test_lost_signal_locks_after_near(self):
        pe = PassiveEntry(Proximity(weight=1, lost_ms=1000), enabled=True)
        for i in range(3):
            pe.sample(-50, i * 100)
        self.assertEqual(pe.tick(1200), ACTION_LOCK)

    def test_lock_on_leave_can_be_off(self):
        pe = PassiveEntry(Proximity(weight=1), enabled=True, lock_on_leave=False)
        got = [pe.sample(s, i * 100) for i, s in enumerate([-50, -50, -50, -90])]
        self.assertEqual(got, [None, None, None, None])
