# carkey — a tap has a whole-transaction deadline, short for devices that proved no enrolled key.
# SPDX-License-Identifier: MIT
#
# The ECU application (carkey.ecu.app.App, its one-tap-at-a-time lock across radios)
# with a device on BLE that answers every command just under the reader's timeout
# and an owner's phone tapped on NFC meanwhile. Times are scaled down (a 300 ms
# command timeout instead of 3 s) so the test runs in about a second.
#
# Run: .venv/bin/pytest -q tests/firmware/test_tap_deadline.py

import asyncio
import time
import unittest

import virtual
from car_rig import RadioFreePlatform, fresh_dir, rmtree
from carkey.crypto import p256
from carkey.ecu import codes
from carkey.ecu.app import App
from carkey.ecu.auditlog import TRANSPORT_BLE, TRANSPORT_NFC
from carkey.ecu.keystore import Credential
from mpy_device import Device

_TIMEOUT_MS = 300
_STALL_MS = 280  # just under the timeout: never a timeout, always slow


class TapDeadlineTest(unittest.TestCase):
    def setUp(self):
        self.flash = fresh_dir("deadline-flash")
        self.state = fresh_dir("deadline-state")
        self.app = App(virtual, RadioFreePlatform(self.flash), self.state)
        self.app._start_car()
        car = self.app.car
        car.reader.timeout_ms = _TIMEOUT_MS
        car.stranger_deadline_ms = 600
        car.tap_deadline_ms = 2000
        priv, pub = p256.generate_keypair()
        car.keys.add(Credential(pub, codes.ROLE_OWNER, codes.ENT_ALL))
        car.keys.commit()
        self.owner = self.device(priv, pub)

    def tearDown(self):
        rmtree(self.flash)
        rmtree(self.state)

    def device(self, priv=None, pub=None, **kw):
        if priv is None:
            priv, pub = p256.generate_keypair()
        d = Device(priv, pub, **kw)
        d.reader_pub = self.app.car.identity.public_key
        return d

    def test_an_nfc_tap_is_served_while_a_stalling_ble_device_is_connected(self):
        # A key the car does not know, asking for status four times, every answer slow:
        # before a deadline it held the reader for its nine commands (about 2.5 s here).
        staller = self.device(requests=[(codes.CMD_STATUS, b"")] * 4)
        staller.stall_ms = _STALL_MS
        times = {}

        async def ble():
            out = await self.app._tap(staller, TRANSPORT_BLE)
            times["ble_end"] = time.ticks_ms()
            return out

        async def nfc():
            await asyncio.sleep_ms(50)  # the BLE device already holds the reader
            start = time.ticks_ms()
            out = await self.app._tap(self.owner, TRANSPORT_NFC)
            times["nfc"] = time.ticks_diff(time.ticks_ms(), start)
            return out

        async def main():
            return await asyncio.gather(ble(), nfc())

        ble_out, nfc_out = asyncio.run(main())
        self.assertTrue(nfc_out.granted)
        self.assertEqual(nfc_out.results, [(codes.CMD_UNLOCK, codes.OK)])
        self.assertEqual(ble_out.error, codes.LINK_LOST, (ble_out, times))  # cut at its deadline
        self.assertFalse(staller.closed)  # still connected: only its transaction ended
        self.assertTrue(times["nfc"] < 1500, times)

    def test_an_enrolled_key_gets_the_longer_deadline(self):
        self.owner.stall_ms = 100
        self.owner.requests = [(codes.CMD_STATUS, b"")] * 4
        out = asyncio.run(self.app._tap(self.owner, TRANSPORT_BLE))
        self.assertTrue(out.granted, out)  # about 1 s of slow answers, within 2 s
