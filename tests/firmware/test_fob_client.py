# carkey — the fob's envelope (request, battery, results) read by the car's own envelope parser.
# SPDX-License-Identifier: MIT
#
# Run: .venv/bin/pytest -q tests/firmware/test_fob_client.py

import unittest

from carkey.ecu import envelope
from carkey.ecu import codes
from carkey.fob.client import COMMANDS, NO_RESULT, Request

HELLO = bytes(envelope.hello(b"\x01\x00\x00"))


class TestFobEnvelope(unittest.TestCase):
    def test_command_ids_are_the_cars(self):
        # The fob spells its three commands out rather than load the car's codes.
        self.assertEqual(COMMANDS, {"lock": codes.CMD_LOCK, "unlock": codes.CMD_UNLOCK, "trunk": codes.CMD_TRUNK})

    def test_request_after_hello_only(self):
        req = Request(0x02)
        self.assertEqual(req.on_exchange(b"\x97\x02\x01\x01"), b"")  # no carkey hello: ask for nothing
        out = req.on_exchange(HELLO)
        parsed = envelope.parse(out)
        self.assertEqual((parsed.carkey, parsed.command, parsed.argument, parsed.battery_mv), (True, 0x02, b"", None))
        self.assertEqual(req.car_state, b"\x01\x00\x00")
        self.assertEqual(req.on_exchange(HELLO), b"")  # one request per press

    def test_hello_before_the_gesture_waits_for_the_command(self):
        # The visit starts before the gesture is known: the answer to the hello waits.
        import asyncio

        from carkey.protocol.errors import DropLink

        async def run(then):
            req = Request(battery_mv=3900)
            pending = req.on_exchange(HELLO)
            self.assertFalse(isinstance(pending, (bytes, bytearray)))
            task = asyncio.create_task(pending)
            await asyncio.sleep_ms(20)
            self.assertFalse(task.done())  # still no gesture
            then(req)
            return await task

        out = asyncio.run(run(lambda req: req.set_command(0x04)))
        self.assertEqual(envelope.parse(out).command, 0x04)
        with self.assertRaises(DropLink):  # no gesture after all: the fob hangs up
            asyncio.run(run(lambda req: req.cancel()))

    def test_battery_rides_before_the_request(self):
        out = Request(0x01, battery_mv=3912).on_exchange(HELLO)
        parsed = envelope.parse(out)
        self.assertEqual((parsed.command, parsed.battery_mv), (0x01, 3912))

    def test_result_for_our_command(self):
        req = Request(0x04)
        req.on_exchange(HELLO)
        self.assertEqual(req.result, NO_RESULT)
        answer = bytes(envelope.result(0x04, 0x07, b"\x01\x00\x00", False))
        self.assertEqual(req.on_exchange(answer), b"")
        self.assertEqual(req.result, 0x07)

    def test_share_document_first_and_its_verdict(self):
        doc = b"\xe2\x81\x90" + b"\x11" * 0x90  # long enough for a two-byte length
        req = Request(0x02, battery_mv=3700, share=doc)
        parsed = envelope.parse(req.on_exchange(HELLO))
        self.assertEqual((parsed.share, parsed.battery_mv, parsed.command), (doc, 3700, 0x02))
        answer = bytes(envelope.result(0x02, 0x00, b"\x00\x00\x00", True, [(0xE2, 0x00)]))
        req.on_exchange(answer)
        self.assertEqual((req.share_result, req.result), (0, 0))

    def test_car_refuses_malformed_battery(self):
        for inner in (b"\xc7\x01\x0f", b"\xc2\x01\x02\xc7\x02\x0f\xa0", b"\xc7\x02\x0f\xa0\xc7\x02\x0f\xa0"):
            with self.assertRaises(envelope.EnvelopeError):
                envelope.parse(b"\xe1" + bytes((len(inner),)) + inner)


if __name__ == "__main__":
    unittest.main()
