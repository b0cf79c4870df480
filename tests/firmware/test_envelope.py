# carkey — the carkey envelope in EXCHANGE: exact hello/result bytes, strict request parsing.
# SPDX-License-Identifier: MIT
#
# Run: .venv/bin/pytest -q tests/firmware/test_envelope.py

import unittest

from carkey.ecu import envelope
from carkey.ecu.envelope import EnvelopeError
from carkey.protocol import tlv

MPY_HEAPSIZE = "64k"

h = bytes.fromhex
STATE = h("010000")


class TestBuild(unittest.TestCase):
    def test_hello(self):
        self.assertEqual(bytes(envelope.hello(STATE)), h("e108c00101c103010000"))

    def test_result_granted_and_refused(self):
        self.assertEqual(bytes(envelope.result(2, 0, h("000000"), True)), h("97020101e107c40502" + "00" + "000000"))
        self.assertEqual(bytes(envelope.result(5, 1, STATE, False)), h("97020100e107c40505" + "01" + "010000"))

    def test_result_with_document_results(self):
        out = bytes(envelope.result(2, 0, STATE, True, [(0xE2, 0), (0xE3, 0x0B)]))
        self.assertEqual(out, h("97020101e10fc602e200c602e30bc4050200010000"))
        # Well-formed all the way down.
        tags = [t for t, _, _ in tlv.iterate(out)]
        self.assertEqual(tags, [0x97, 0xE1])


class TestParse(unittest.TestCase):
    def test_no_envelope_is_no_request(self):
        req = envelope.parse(b"")
        self.assertFalse(req.carkey)
        self.assertIsNone(req.command)
        # Other top-level objects (an Aliro device's own) are skipped.
        req = envelope.parse(h("5f2001aa"))
        self.assertFalse(req.carkey)

    def test_command_with_argument(self):
        req = envelope.parse(h("e104c2020510"))
        self.assertTrue(req.carkey)
        self.assertEqual((req.command, req.argument), (5, b"\x10"))

    def test_documents_then_command(self):
        share = tlv.encode(0xE2, bytes(300))
        rev = tlv.encode(0xE3, bytes(10))
        body = tlv.encode(0xC3, share) + tlv.encode(0xC5, rev) + tlv.encode(0xC5, rev) + h("c20102")
        req = envelope.parse(tlv.encode(0xE1, body))
        self.assertEqual(req.share, share)
        self.assertEqual(req.revocations, [rev, rev])
        self.assertEqual(req.command, 2)

    def test_envelope_without_command(self):
        req = envelope.parse(tlv.encode(0xE1, tlv.encode(0xC5, b"\xe3\x00")))
        self.assertTrue(req.carkey)
        self.assertIsNone(req.command)

    def test_order_and_tags_are_strict(self):
        for body in (
            h("c20102") + tlv.encode(0xC3, b"x"),  # share after the request
            h("c20102") + h("c20101"),  # two requests
            tlv.encode(0xC5, b"x") + tlv.encode(0xC3, b"x"),  # share after a revocation
            tlv.encode(0xC3, b"x") + tlv.encode(0xC3, b"x"),  # two shares
            h("c70100"),  # unknown tag
            h("c200"),  # empty request
            h("c20a") + bytes(10),  # argument over 8 bytes
        ):
            with self.assertRaises(EnvelopeError):
                envelope.parse(tlv.encode(0xE1, body))

    def test_two_envelopes(self):
        with self.assertRaises(EnvelopeError):
            envelope.parse(h("e103c20102e103c20102"))

    def test_revocation_limit(self):
        rev = tlv.encode(0xC5, b"\xe3\x00")
        envelope.parse(tlv.encode(0xE1, rev * envelope.MAX_REVOCATIONS))
        with self.assertRaises(EnvelopeError):
            envelope.parse(tlv.encode(0xE1, rev * (envelope.MAX_REVOCATIONS + 1)))

    def test_malformed_tlv(self):
        for data in (h("e1"), h("e105c20102"), h("e103c202"), h("e181") ):
            with self.assertRaises(tlv.TlvError):
                envelope.parse(data)


if __name__ == "__main__":
    unittest.main()
