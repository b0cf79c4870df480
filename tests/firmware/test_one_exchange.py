# carkey — a device that asks nothing gets one EXCHANGE, then CONTROL FLOW (docs/PROTOCOL.md §4).
# SPDX-License-Identifier: MIT
#
# The reader's hello is the only EXCHANGE when the device's answer carries no
# request and no document: the default action runs under the same policy and the
# outcome arrives in CONTROL FLOW. A request or a document still gets its result
# message, as before.
#
# Run: .venv/bin/pytest -q tests/firmware/test_one_exchange.py

import unittest

from car_rig import CarRig
from carkey.ecu import codes
from carkey.protocol import tlv


class Recorder:
    """The device's link, recording the instruction byte of every command."""

    def __init__(self, device):
        self.device = device
        self.ins = []

    async def transceive(self, capdu, timeout_ms):
        self.ins.append(bytes(capdu)[1])
        return await self.device.transceive(capdu, timeout_ms)


class OneExchangeTest(unittest.TestCase):
    def setUp(self):
        self.rig = CarRig("oneexchange")

    def tearDown(self):
        self.rig.close()

    def tap(self, device, fast=None):
        link = Recorder(device)
        return self.rig.tap(link, fast=fast), link.ins

    def test_asking_nothing_takes_one_exchange_standard_and_fast(self):
        owner = self.rig.owner
        for kind in ("standard", "fast"):
            out, ins = self.tap(owner)
            self.assertEqual((out.kind, out.granted), (kind, True))
            self.assertEqual(out.results, [(codes.CMD_UNLOCK, codes.OK)])  # the default action ran
            want = [0xA4, 0x80, 0x81, 0xC9, 0x3C] if kind == "standard" else [0xA4, 0x80, 0xC9, 0x3C]
            self.assertEqual(ins, want)
            self.assertEqual(owner.control_flow, 1)
            self.assertEqual(owner.results, [])  # no result message: CONTROL FLOW tells it

    def test_a_request_still_gets_its_result(self):
        d = self.rig.device(self.rig.owner.priv, self.rig.owner.pub, requests=[(codes.CMD_LOCK, b"")])
        out, ins = self.tap(d)
        self.assertTrue(out.granted)
        self.assertEqual(ins, [0xA4, 0x80, 0x81, 0xC9, 0xC9, 0x3C])
        self.assertEqual(len(d.results), 1)
        self.assertEqual(d.results[0][0:2], bytes((codes.CMD_LOCK, codes.OK)))

    def test_a_document_without_a_request_still_gets_its_result(self):
        # A share document that is not one: judged (refused), and the device is told so.
        junk_share = tlv.encode(0xC3, b"\xe2\x01\x00")
        d = self.rig.device(self.rig.owner.priv, self.rig.owner.pub, envelope=junk_share)
        out, ins = self.tap(d)
        self.assertEqual(ins.count(0xC9), 2)
        self.assertEqual(len(d.documents), 1)
        self.assertEqual(d.documents[0][0], 0xE2)
        self.assertEqual(len(d.results), 1)


if __name__ == "__main__":
    unittest.main()
