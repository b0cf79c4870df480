# carkey — the reader's idle-precomputed signing nonces are hedged with its private key.
# SPDX-License-Identifier: MIT
#
# With randomness that repeats (an ESP32 before its radio is on, a broken RNG), a
# nonce from os.urandom alone would be the same on every reader, and anyone could
# compute it. Hedged, k also depends on the reader's private key.
#
# Run: .venv/bin/pytest -q tests/firmware/test_nonce_hedge.py

import asyncio
import hashlib
import unittest

from carkey.crypto import p256
from carkey.protocol.identity import ReaderIdentity
from carkey.protocol.reader import Reader


class _StuckRandom:
    # os as p256 sees it, with an RNG that always says the same thing.
    @staticmethod
    def urandom(n):
        return b"\x5a" * n


class NonceHedgeTest(unittest.TestCase):
    def setUp(self):
        self.real_os = p256.os
        self.a = ReaderIdentity.generate()
        self.b = ReaderIdentity.generate()

    def tearDown(self):
        p256.os = self.real_os

    def nonce_r(self, identity):
        return asyncio.run(Reader(identity).pool.take_nonce()).r

    def test_stuck_randomness_still_gives_each_reader_its_own_nonce(self):
        p256.os = _StuckRandom
        self.assertNotEqual(self.nonce_r(self.a), self.nonce_r(self.b))

    def test_idle_fill_hedges_too_and_signatures_verify(self):
        p256.os = _StuckRandom
        readers = (Reader(self.a), Reader(self.b))
        for r in readers:
            r.pool.fill_now()
        p256.os = self.real_os
        nonces = [asyncio.run(r.pool.take_nonce()) for r in readers]
        self.assertNotEqual(nonces[0].r, nonces[1].r)
        digest = hashlib.sha256(b"signed data").digest()
        for ident, nonce in zip((self.a, self.b), nonces):
            self.assertTrue(p256.verify(ident.public_key, digest, ident.sign_with_nonce(digest, nonce)))
