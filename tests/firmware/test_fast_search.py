# carkey — the fast-cryptogram search does the same work whichever cached key matches.
# SPDX-License-Identifier: MIT
#
# Who is tapping must not leak through timing: the reader tries every cached
# Kpersistent the same way and runs one full GCM check whatever the match. The test
# counts AES key schedules and HKDF expansions (the work) during whole fast taps of
# the first and of the last key in the search order; timing itself belongs to
# `make bench`, not to a test.
#
# Run: .venv/bin/pytest -q tests/firmware/test_fast_search.py

import unittest

from car_rig import CarRig
from carkey.crypto import aes, kdf
from carkey.ecu import codes
from carkey.ecu.keystore import Credential

_KEYS = 15


class Counter:
    def __init__(self, module, name):
        self.module, self.name = module, name
        self.real = getattr(module, name)
        self.calls = 0

        def counted(*args):
            self.calls += 1
            return self.real(*args)

        setattr(module, name, counted)

    def restore(self):
        setattr(self.module, self.name, self.real)


class FastSearchTest(unittest.TestCase):
    def setUp(self):
        self.rig = CarRig("fastsearch")
        self.devices = [self.rig.owner]
        for _ in range(_KEYS - 1):
            d = self.rig.device()
            self.rig.car.keys.add(Credential(d.pub, codes.ROLE_DRIVER, codes.ENT_ALL))
            self.devices.append(d)
        self.rig.car.keys.commit()
        for d in self.devices:  # a standard tap each: both ends now hold a Kpersistent
            self.assertTrue(self.rig.tap(d, fast=False).granted)

    def tearDown(self):
        self.rig.close()

    def work(self, device):
        counters = [Counter(aes, "cipher"), Counter(kdf, "hkdf_expand")]
        try:
            out = self.rig.tap(device)
        finally:
            for c in counters:
                c.restore()
        self.assertEqual((out.kind, out.granted), ("fast", True))
        return [c.calls for c in counters]

    def test_first_and_last_candidate_cost_the_same(self):
        order = [c.pub for c in self.rig.car.keys.fast_candidates()]
        self.assertEqual(len(order), _KEYS)
        first = [d for d in self.devices if d.pub == order[0]][0]
        last = [d for d in self.devices if d.pub == order[-1]][0]
        w_first = self.work(first)
        # The first key moved to the front again; the last is still last.
        self.assertEqual([c.pub for c in self.rig.car.keys.fast_candidates()][-1], last.pub)
        w_last = self.work(last)
        self.assertEqual(w_first, w_last)
