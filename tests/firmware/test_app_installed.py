# carkey — an installed car never returns to the REPL: Ctrl-C off while it runs, a failure resets the board.
# SPDX-License-Identifier: MIT
#
# carkey.ecu.app.run on the virtual board description with a platform that records
# what it is asked (interrupt character, reset) and whose radio fails at start-up.
#
# Run: .venv/bin/pytest -q tests/firmware/test_app_installed.py

import unittest

import virtual
from car_rig import RadioFreePlatform, fresh_dir, rmtree
from carkey.crypto import p256
from carkey.ecu import admin, app


class Reset(Exception):
    pass


class RecordingPlatform(RadioFreePlatform):
    def __init__(self):
        super().__init__(fresh_dir("appinst"))
        self.intr = []
        self.resets = 0

    def ble(self):
        raise RuntimeError("radio bug")  # out of App.run, before any task is supervised

    def kbd_intr(self, char):
        self.intr.append(char)

    def reset(self):
        self.resets += 1
        raise Reset()  # machine.reset() does not return either


class InstalledRunTest(unittest.TestCase):
    def setUp(self):
        self.state = fresh_dir("appinststate")
        self.platform = RecordingPlatform()

    def tearDown(self):
        rmtree(self.state)
        rmtree(self.platform.virtual.flash_dir)

    def test_factory_state_keeps_ctrl_c_and_raises(self):
        with self.assertRaises(RuntimeError):
            app.run(virtual, self.platform, self.state)
        self.assertEqual((self.platform.intr, self.platform.resets), ([3], 0))

    def test_installed_turns_ctrl_c_off_and_resets_on_a_failure(self):
        admin.provision(self.state, p256.generate_keypair()[1], 1_750_000_000)
        with self.assertRaises(Reset):
            app.run(virtual, self.platform, self.state)
        self.assertEqual((self.platform.intr, self.platform.resets), ([-1], 1))


if __name__ == "__main__":
    unittest.main()
