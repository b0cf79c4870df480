# carkey — the crypto seam: a configured backend replaces a pure module for every caller.
# SPDX-License-Identifier: MIT
#   .venv/bin/pytest -q tests/firmware/test_crypto_seam.py

import sys

import unittest

MPY_HEAPSIZE = "64k"


class _FakeSecureElement:
    # Stands in for a hardware backend: same function names, recognisable answers.
    calls = []

    @staticmethod
    def sign(priv, digest, extra_entropy=None):
        _FakeSecureElement.calls.append(digest)
        return b"\x01" * 64


class TestSeam(unittest.TestCase):
    def tearDown(self):
        for name in ("carkey.crypto.p256", "fake_se"):
            sys.modules.pop(name, None)
        import carkey.crypto

        if hasattr(carkey.crypto, "p256"):
            delattr(carkey.crypto, "p256")

    def test_default_backend_is_the_pure_module(self):
        from carkey.crypto import p256

        self.assertTrue(hasattr(p256, "ecdh"))
        self.assertEqual(len(p256.public_key(b"\x00" * 31 + b"\x01")), 65)

    def test_installed_backend_serves_existing_import_statements(self):
        import carkey.crypto

        sys.modules["fake_se"] = _FakeSecureElement
        carkey.crypto.install({"p256": "fake_se"})
        from carkey.crypto import p256

        self.assertEqual(p256.sign(b"k" * 32, b"d" * 32), b"\x01" * 64)
        self.assertEqual(_FakeSecureElement.calls, [b"d" * 32])

    def test_unknown_interface_is_refused(self):
        import carkey.crypto

        with self.assertRaises(ValueError):
            carkey.crypto.install({"rsa": "fake_se"})


if __name__ == "__main__":
    unittest.main()
