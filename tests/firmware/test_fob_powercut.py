# carkey — power cuts on the key fob's flash: provisioning and a Kpersistent update, cut at every operation.
# SPDX-License-Identifier: MIT
#
# littlefs on the simulated NOR flash of tests/mpy/flashsim.py; each cut point is
# tried clean and torn. After any cut the fob must load (no damaged record), hold
# either the old or the new state, and provisioning run again must give a working fob.
#
# Run: .venv/bin/pytest -q tests/firmware/test_fob_powercut.py

import unittest
from flashsim import power_cuts
from scratch import remove_tree, scratch_dir

from carkey.crypto import p256
from carkey.fob.state import FobState

MPY_HEAPSIZE = "256k"
MOUNT = "/flash"
STATE = MOUNT + "/state"
GROUP = b"\x42" * 16
READER_PUB = p256.public_key(b"\x01" * 32)
RID = GROUP + b"\x07" * 16
OLD_KP = b"\x11" * 32
NEW_KP = b"\x22" * 32


def provision():
    # What `carkey fob provision` makes the fob do: its key (if none), then the car it trusts.
    st = FobState(STATE)
    if not st.has_credential():
        st.create_credential()
    st.trust(GROUP, READER_PUB)


class PowerCuts(unittest.TestCase):
    def setUp(self):
        self.dir = scratch_dir()
        self.images = self.dir + "/flash"  # the flash images live in host files, not in the heap

    def tearDown(self):
        remove_tree(self.dir)
    def test_provisioning(self):
        points = 0
        for k, torn in power_cuts(lambda: None, provision, MOUNT, path=self.images):
            st = FobState(STATE)
            cars = st.cars()  # never a damaged record
            self.assertIn(cars, ([], [(GROUP, READER_PUB)]))
            if cars:
                self.assertTrue(st.has_credential())
            provision()  # the owner runs it again: a working fob
            st = FobState(STATE)
            priv, pub = st.credential()
            self.assertEqual(p256.public_key(priv), pub)
            self.assertEqual(st.cars(), [(GROUP, READER_PUB)])
            points += 1
        self.assertGreater(points, 20)

    def test_kpersistent_update(self):
        keep = {}

        def prepare():
            st = FobState(STATE)
            keep["pub"] = st.create_credential()
            st.trust(GROUP, READER_PUB)
            st.set_kpersistent(RID, OLD_KP)

        def update():
            FobState(STATE).set_kpersistent(RID, NEW_KP)

        seen = set()
        for k, torn in power_cuts(prepare, update, MOUNT, path=self.images):
            st = FobState(STATE)
            kp = st.kpersistent(RID)
            self.assertIn(kp, (OLD_KP, NEW_KP), "cut after %d, torn=%s" % (k, torn))
            seen.add(kp)
            self.assertEqual(st.public_key(), keep["pub"])
            self.assertEqual(st.cars(), [(GROUP, READER_PUB)])
        self.assertEqual(seen, {OLD_KP, NEW_KP})


if __name__ == "__main__":
    unittest.main()
