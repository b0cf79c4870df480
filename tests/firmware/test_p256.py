# carkey — MicroPython tests of carkey.crypto.p256 (vectors, hostile input, nonces, tables, slicing).
# SPDX-License-Identifier: MIT
#
# Published vectors, hostile inputs, round trips, single-use nonces, per-credential
# tables and the sliced (*_steps) generators.
#
# Run: .venv/bin/pytest tests/firmware/test_p256.py, or directly:
#   MICROPYPATH=firmware:tests/mpy .venv/bin/micropython -X heapsize=192k tests/firmware/test_p256.py
#
# The heap is 192 KiB because this run compiles p256.py (about 88 KiB of compiler
# heap on the 64-bit Unix port) and this file from source; the 64 KiB budget of a
# board, which imports compiled .mpy files, is checked by
# tests/host/test_p256_cross.py::test_runs_in_64k_heap_as_mpy.

import hashlib
import unittest
from binascii import hexlify, unhexlify

from carkey.crypto import p256

MPY_HEAPSIZE = "192k"

N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF

G_HEX = (
    "046b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296"
    "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5"
)
# Multiples of G, checked with the `cryptography` package.
MULTIPLES = (
    (2, "7cf27b188d034f7e8a52380304b51ac3c08969e277f21b35a60b48fc47669978"
        "07775510db8ed040293d9ac69f7430dbba7dade63ce982299e04b79d227873d1"),
    (3, "5ecbe4d1a6330a44c8f7ef951d4bf165e6c6b721efada985fb41661bc6e7fd6c"
        "8734640c4998ff7e374b06ce1a64a2ecd82ab036384fb83d9a79b127a27d5032"),
    (N - 1, "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296"
            "b01cbd1c01e58065711814b583f061e9d431cca994cea1313449bf97c840ae0a"),
    (N - 2, "7cf27b188d034f7e8a52380304b51ac3c08969e277f21b35a60b48fc47669978"
            "f888aaee24712fc0d6c26539608bcf244582521ac3167dd661fb4862dd878c2e"),
)

# RFC 6979 appendix A.2.5: P-256 key and the SHA-256 signatures of "sample" and "test".
RFC_PRIV = "c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721"
RFC_PUB = (
    "0460fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6"
    "7903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299"
)
RFC_SIGS = (
    (b"sample", "efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716"
                "f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8"),
    (b"test", "f1abb023518351cd71d881567b1ea663ed3efcf6c5132b354f28d3b0b7d38367"
              "019f4113742a2b14bd25926b49c649155f267e60d3814b4c0cc84250e46f0083"),
)

# From tests/vectors/aliro-expedited-kat.json, transaction 1 (standard) and "common".
KAT_READER_PRIV = "b402dded91e47e0dc3ebe5ef54f75c39ffc406bce6c6322038d031b213085fb1"
KAT_READER_PUB = (
    "04a103154c2115843e3c8493818cc10ae1e6e72215fd90df3cd0c57db87c582fd9"
    "c7290290ce3a487aefac2e029f5bcf0b1347280431a3e67b7102e08693c753d7"
)
KAT_CRED_PRIV = "75c98e5e1e81ee1c5a1fc85d353d4bf45eb1bb542913f7601e2be43c66aa9059"
KAT_CRED_PUB = (
    "0469a859d0ce90e0d440c91414579cad27781ebe580a58e3189ace37fdd4b9891b"
    "35d2dbf4b303228197962400b0f630007933cbbec6c5ea0563ee48d3de6f7dfe"
)
KAT_READER_EPH_PRIV = "0a531ebcfb169d07a6d88b79ce547f5812c0c09a5a3eaf869a754e3f4ba65271"
KAT_READER_EPH_PUB = (
    "0482815a2dca0cfdb82807f2826b92b7c7f520e67bda4be074d54884d1956444e1"
    "6c4bd836af7474d7adabfb270c8306863ffdaa2e29fb6a7aa30feb25a5c0fb3a"
)
KAT_UD_EPH_PRIV = "cd2b65dde785fec72ff13b6ebb4bc8fbd2ae77d8003bdda899530676103fe4f7"
KAT_UD_EPH_PUB = (
    "049ff9e05b9a50264cd8d1c88a249fa29563ca306af00134e079e0d94926f38ea6"
    "68379c69bfb9a90919b1cded22e75b4fccdc44ef7a1c9aeab7e0a4d7d733bf65"
)
KAT_SHARED_X = "f729b3b088b38ad02a68635bed39005b8c35ab3d8f25dd2ff0ce3f23b0c78f0e"
# The signed data differs only in the usage bytes: 415d9569 reader, 4e887b4c user device.
KAT_SIGNED_PREFIX = (
    "4d2000113344667799aa00113344667799aa113344667799aa00113344667799aa00"
    "86209ff9e05b9a50264cd8d1c88a249fa29563ca306af00134e079e0d94926f38ea6"
    "872082815a2dca0cfdb82807f2826b92b7c7f520e67bda4be074d54884d1956444e1"
    "4c10dd2bfe3497711014b2150313162bfb649304"
)
KAT_READER_SIG = (
    "eb1bf8508a617c644caa406ee29a0e5885274289415d2a45333db2b7ec4a1405"
    "31cc097d75989bb4ef438abfd413c764b330509d7db832d8fd4b4071b39e8411"
)
KAT_UD_SIG = (
    "d5dd8b9d457e5b5d6a80e946db63fb95bb748b806b732be7a80f347081c9b747"
    "2a946eeb0e22f755c631373919df7a22010e10e329bd64c7b8ff9e2497e2b658"
)

# A signature whose R has x = n + 3 (so r = 3), made by choosing R and solving for the
# public key; accepted by `cryptography`.
BIG_X_PUB = (
    "0456e7d7bde51e3f378a04d64e76e604e2ae39d46f3fb01a8c837c9909059dbca8"
    "7c261c9a6b746e0ddff22fa531b1f40ff713c9a6b7873749cc08dc731aeb6fde"
)
BIG_X_SIG = (
    "0000000000000000000000000000000000000000000000000000000000000003"
    "043a718774c572bd8a25adbeb1bfcd5c0256ae11cecf9f9c3f925d0e52beaf89"
)
BIG_X_DIGEST = "d70386fde33a50395b4f47c87c6cb4b64d85603d4def74c3ed131c7498a43609"

# The curve point with x = 0; written with x + p it is the same point, unreduced.
X0_Y = "66485c780e2f83d72433bd5d84a06bb6541c2af31dae871728bf856a174f93f4"


def h(text):
    return unhexlify(text)


def scalar(k):
    return k.to_bytes(32, "big")


def run_counting(steps):
    # Drive a *_steps generator like an event loop would; return (result, slices).
    slices = 0
    try:
        while True:
            next(steps)
            slices += 1
    except StopIteration as done:
        return done.value, slices


class TestKnownAnswers(unittest.TestCase):
    def test_public_key_of_one_is_g(self):
        self.assertEqual(p256.public_key(scalar(1)), h(G_HEX))

    def test_public_keys_of_small_and_large_scalars(self):
        for k, xy in MULTIPLES:
            self.assertEqual(p256.public_key(scalar(k)), b"\x04" + h(xy))

    def test_rfc6979_public_key(self):
        self.assertEqual(p256.public_key(h(RFC_PRIV)), h(RFC_PUB))

    def test_rfc6979_signatures(self):
        for msg, sig in RFC_SIGS:
            digest = hashlib.sha256(msg).digest()
            self.assertEqual(hexlify(p256.sign(h(RFC_PRIV), digest)).decode(), sig)
            self.assertTrue(p256.verify(h(RFC_PUB), digest, h(sig)))

    def test_kat_long_term_public_keys(self):
        self.assertEqual(p256.public_key(h(KAT_READER_PRIV)), h(KAT_READER_PUB))
        self.assertEqual(p256.public_key(h(KAT_CRED_PRIV)), h(KAT_CRED_PUB))

    def test_kat_ephemeral_public_keys(self):
        self.assertEqual(p256.public_key(h(KAT_READER_EPH_PRIV)), h(KAT_READER_EPH_PUB))
        self.assertEqual(p256.public_key(h(KAT_UD_EPH_PRIV)), h(KAT_UD_EPH_PUB))

    def test_kat_ecdh_both_directions(self):
        self.assertEqual(p256.ecdh(h(KAT_READER_EPH_PRIV), h(KAT_UD_EPH_PUB)), h(KAT_SHARED_X))
        self.assertEqual(p256.ecdh(h(KAT_UD_EPH_PRIV), h(KAT_READER_EPH_PUB)), h(KAT_SHARED_X))

    def test_kat_reader_signature(self):
        digest = hashlib.sha256(h(KAT_SIGNED_PREFIX + "415d9569")).digest()
        self.assertEqual(p256.sign(h(KAT_READER_PRIV), digest), h(KAT_READER_SIG))
        self.assertTrue(p256.verify(h(KAT_READER_PUB), digest, h(KAT_READER_SIG)))

    def test_kat_user_device_signature(self):
        digest = hashlib.sha256(h(KAT_SIGNED_PREFIX + "4e887b4c")).digest()
        self.assertEqual(p256.sign(h(KAT_CRED_PRIV), digest), h(KAT_UD_SIG))
        self.assertTrue(p256.verify(h(KAT_CRED_PUB), digest, h(KAT_UD_SIG)))

    def test_ecdh_with_g_is_public_key_x(self):
        for k, xy in MULTIPLES:
            self.assertEqual(p256.ecdh(scalar(k), h(G_HEX)), h(xy)[:32])

    def test_ecdh_of_small_scalars_with_peer_key(self):
        # k·Q for k = 1 and k = n - 1 both have x(Q).
        pub = h(KAT_CRED_PUB)
        self.assertEqual(p256.ecdh(scalar(1), pub), pub[1:33])
        self.assertEqual(p256.ecdh(scalar(N - 1), pub), pub[1:33])

    def test_point_with_x_zero_is_valid(self):
        pub = b"\x04" + bytes(32) + h(X0_Y)
        self.assertTrue(p256.is_valid_public_key(pub))
        self.assertEqual(len(p256.ecdh(h(RFC_PRIV), pub)), 32)


class TestHostileInputs(unittest.TestCase):
    def setUp(self):
        self.priv = h(RFC_PRIV)
        self.pub = h(RFC_PUB)
        self.digest = hashlib.sha256(b"sample").digest()
        self.sig = h(RFC_SIGS[0][1])

    def bad_points(self):
        pub = self.pub
        off_curve = pub[:64] + bytes([pub[64] ^ 1])
        return (
            off_curve,
            b"\x00",  # SEC1 encoding of the point at infinity
            b"\x04" + bytes(64),  # (0, 0) is not on the curve
            b"\x02" + pub[1:],
            b"\x03" + pub[1:],
            b"\x05" + pub[1:],
            pub[:33],
            pub[:64],
            pub + b"\x00",
            b"\x04" + scalar(P) + h(X0_Y),  # the x = 0 point with x written as p
            b"\x04" + pub[1:33] + scalar(P),
            bytearray(b"\x04" + b"\xff" * 64),
            "04" + "00" * 64,
            None,
            1,
        )

    def test_ecdh_rejects_bad_points(self):
        for pub in self.bad_points():
            with self.assertRaises(ValueError):
                p256.ecdh(self.priv, pub)
            with self.assertRaises(ValueError):
                p256.ecdh_steps(self.priv, pub)

    def test_is_valid_public_key(self):
        self.assertTrue(p256.is_valid_public_key(self.pub))
        for pub in self.bad_points():
            self.assertFalse(p256.is_valid_public_key(pub))

    def test_private_key_range_and_type(self):
        bad = (scalar(0), scalar(N), scalar(N + 1), b"\xff" * 32, self.priv[1:], self.priv + b"\x00", None, 5, RFC_PRIV)
        for priv in bad:
            with self.assertRaises(ValueError):
                p256.ecdh(priv, self.pub)
            with self.assertRaises(ValueError):
                p256.public_key(priv)
            with self.assertRaises(ValueError):
                p256.sign(priv, self.digest)
            with self.assertRaises(ValueError):
                p256.sign_with_nonce(priv, self.digest, p256.precompute_nonce())

    def test_sign_rejects_bad_digest_and_entropy(self):
        for digest in (self.digest[:31], self.digest + b"\x00", b"", None, "x" * 32):
            with self.assertRaises(ValueError):
                p256.sign(self.priv, digest)
        with self.assertRaises(ValueError):
            p256.sign(self.priv, self.digest, extra_entropy=12)

    def test_verify_rejects_r_and_s_out_of_range(self):
        r, s = self.sig[:32], self.sig[32:]
        for sig in (bytes(32) + s, r + bytes(32), scalar(N) + s, r + scalar(N), scalar(N + 1) + s,
                    b"\xff" * 32 + s, r + b"\xff" * 32, bytes(64)):
            self.assertFalse(p256.verify(self.pub, self.digest, sig))

    def test_large_x_of_r(self):
        # x(R) = n + 3 >= n: r = 3 is valid and r + n, the unreduced x, is not.
        self.assertTrue(p256.verify(h(BIG_X_PUB), h(BIG_X_DIGEST), h(BIG_X_SIG)))
        self.assertTrue(p256.verify(h(BIG_X_PUB), h(BIG_X_DIGEST), h(BIG_X_SIG), p256.verify_table(h(BIG_X_PUB))))
        self.assertFalse(p256.verify(h(BIG_X_PUB), h(BIG_X_DIGEST), scalar(N + 3) + h(BIG_X_SIG)[32:]))

    def test_verify_rejects_bad_lengths_and_types(self):
        for sig in (self.sig[:63], self.sig + b"\x00", b"", None, 7, hexlify(self.sig)):
            self.assertFalse(p256.verify(self.pub, self.digest, sig))
        for digest in (self.digest[:31], self.digest + b"\x00", None, "abc"):
            self.assertFalse(p256.verify(self.pub, digest, self.sig))

    def test_verify_rejects_bad_public_keys(self):
        for pub in self.bad_points():
            self.assertFalse(p256.verify(pub, self.digest, self.sig))

    def test_verify_rejects_tampering(self):
        self.assertTrue(p256.verify(self.pub, self.digest, self.sig))
        for i in (0, 31, 32, 63):
            sig = bytearray(self.sig)
            sig[i] ^= 0x10
            self.assertFalse(p256.verify(self.pub, self.digest, bytes(sig)))
        self.assertFalse(p256.verify(self.pub, hashlib.sha256(b"samplf").digest(), self.sig))
        self.assertFalse(p256.verify(h(KAT_CRED_PUB), self.digest, self.sig))

    def test_verify_accepts_negated_s(self):
        # ECDSA itself accepts (r, n - s); callers needing unique signatures must check s.
        s = int.from_bytes(self.sig[32:], "big")
        self.assertTrue(p256.verify(self.pub, self.digest, self.sig[:32] + scalar(N - s)))

    def test_verify_steps_never_raises(self):
        gen = p256.verify_steps(None, None, None, table=1)
        self.assertEqual(run_counting(gen), (False, 0))


class TestRoundTrips(unittest.TestCase):
    def test_generated_keys(self):
        for _ in range(3):
            priv, pub = p256.generate_keypair()
            self.assertEqual(len(priv), 32)
            self.assertTrue(0 < int.from_bytes(priv, "big") < N)
            self.assertEqual(p256.public_key(priv), pub)
            self.assertTrue(p256.is_valid_public_key(pub))

    def test_ecdh_agrees(self):
        a_priv, a_pub = p256.generate_keypair()
        b_priv, b_pub = p256.generate_keypair()
        self.assertEqual(p256.ecdh(a_priv, b_pub), p256.ecdh(b_priv, a_pub))

    def test_sign_verify(self):
        priv, pub = p256.generate_keypair()
        digest = hashlib.sha256(b"unlock").digest()
        sig = p256.sign(priv, digest)
        self.assertEqual(len(sig), 64)
        self.assertEqual(p256.sign(priv, digest), sig)
        self.assertTrue(p256.verify(pub, digest, sig))
        self.assertFalse(p256.verify(pub, hashlib.sha256(b"lock").digest(), sig))

    def test_hedged_signatures_differ_and_verify(self):
        priv, pub = h(RFC_PRIV), h(RFC_PUB)
        digest = hashlib.sha256(b"sample").digest()
        a = p256.sign(priv, digest, extra_entropy=b"\x01" * 32)
        b = p256.sign(priv, digest, extra_entropy=b"\x02" * 32)
        self.assertNotEqual(a, h(RFC_SIGS[0][1]))
        self.assertNotEqual(a, b)
        self.assertEqual(p256.sign(priv, digest, extra_entropy=b"\x01" * 32), a)
        self.assertTrue(p256.verify(pub, digest, a))
        self.assertTrue(p256.verify(pub, digest, b))

    def test_empty_extra_entropy_is_plain_rfc6979(self):
        digest = hashlib.sha256(b"test").digest()
        self.assertEqual(p256.sign(h(RFC_PRIV), digest, extra_entropy=b""), h(RFC_SIGS[1][1]))

    def test_digest_zero_and_all_ones(self):
        priv, pub = p256.generate_keypair()
        for digest in (bytes(32), b"\xff" * 32, scalar(N)):
            self.assertTrue(p256.verify(pub, digest, p256.sign(priv, digest)))


class TestNonces(unittest.TestCase):
    def test_sign_with_nonce_verifies(self):
        priv, pub = h(KAT_READER_PRIV), h(KAT_READER_PUB)
        digest = hashlib.sha256(b"auth1").digest()
        nonce = p256.precompute_nonce()
        self.assertTrue(nonce.ready())
        r = nonce.r
        sig = p256.sign_with_nonce(priv, digest, nonce)
        self.assertEqual(int.from_bytes(sig[:32], "big"), r)
        self.assertTrue(p256.verify(pub, digest, sig))

    def test_nonce_is_single_use(self):
        priv = h(KAT_READER_PRIV)
        digest = hashlib.sha256(b"auth1").digest()
        nonce = p256.precompute_nonce()
        p256.sign_with_nonce(priv, digest, nonce)
        self.assertFalse(nonce.ready())
        self.assertEqual(nonce.r, 0)
        with self.assertRaises(ValueError):
            p256.sign_with_nonce(priv, digest, nonce)

    def test_wiped_nonce_is_refused(self):
        nonce = p256.precompute_nonce()
        nonce.wipe()
        with self.assertRaises(ValueError):
            p256.sign_with_nonce(h(KAT_READER_PRIV), bytes(32), nonce)

    def test_bad_input_leaves_nonce_usable(self):
        nonce = p256.precompute_nonce()
        with self.assertRaises(ValueError):
            p256.sign_with_nonce(h(KAT_READER_PRIV), b"short", nonce)
        self.assertTrue(nonce.ready())

    def test_nonces_differ(self):
        self.assertNotEqual(p256.precompute_nonce().r, p256.precompute_nonce().r)


class TestTables(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pub = h(KAT_CRED_PUB)
        cls.table = p256.verify_table(cls.pub)

    def test_table_of_g_is_the_generated_comb(self):
        table = p256.verify_table(h(G_HEX))
        self.assertEqual(len(table), 4160)
        # assertTrue: a failing assertEqual would print two 4 KiB reprs.
        self.assertTrue(table[:64] == h(G_HEX)[1:])
        self.assertTrue(table[64:] == p256.G_COMB)

    def test_table_layout(self):
        self.assertEqual(len(self.table), 4160)
        self.assertTrue(self.table[:64] == self.pub[1:])
        # Every entry is a curve point.
        for o in range(64, 4160, 64):
            self.assertTrue(p256.is_valid_public_key(b"\x04" + bytes(self.table[o : o + 64])))

    def test_verify_with_table(self):
        digest = hashlib.sha256(h(KAT_SIGNED_PREFIX + "4e887b4c")).digest()
        self.assertTrue(p256.verify(self.pub, digest, h(KAT_UD_SIG), self.table))
        self.assertFalse(p256.verify(self.pub, bytes(32), h(KAT_UD_SIG), self.table))
        s = int.from_bytes(h(KAT_UD_SIG)[32:], "big")
        self.assertTrue(p256.verify(self.pub, digest, h(KAT_UD_SIG)[:32] + scalar(N - s), self.table))

    def test_table_round_trips_with_many_signatures(self):
        priv = h(KAT_CRED_PRIV)
        for i in range(4):
            digest = hashlib.sha256(bytes([i])).digest()
            sig = p256.sign(priv, digest)
            self.assertTrue(p256.verify(self.pub, digest, sig, self.table))
            self.assertTrue(p256.verify(self.pub, digest, sig, bytes(self.table)))

    def test_table_of_other_key_is_refused(self):
        digest = hashlib.sha256(h(KAT_SIGNED_PREFIX + "4e887b4c")).digest()
        other = p256.verify_table(h(KAT_READER_PUB))
        self.assertFalse(p256.verify(self.pub, digest, h(KAT_UD_SIG), other))
        self.assertFalse(p256.verify(self.pub, digest, h(KAT_UD_SIG), self.table[:-1]))
        self.assertFalse(p256.verify(self.pub, digest, h(KAT_UD_SIG), "table"))

    def test_table_rejects_bad_key(self):
        with self.assertRaises(ValueError):
            p256.verify_table(h(KAT_CRED_PUB)[:64] + b"\x00")


class TestSlicing(unittest.TestCase):
    def test_ecdh_steps(self):
        x, slices = run_counting(p256.ecdh_steps(h(KAT_READER_EPH_PRIV), h(KAT_UD_EPH_PUB)))
        self.assertEqual(x, h(KAT_SHARED_X))
        self.assertTrue(slices >= 50)

    def test_verify_steps(self):
        digest = hashlib.sha256(b"sample").digest()
        ok, slices = run_counting(p256.verify_steps(h(RFC_PUB), digest, h(RFC_SIGS[0][1])))
        self.assertTrue(ok)
        self.assertTrue(slices >= 50)
        bad, _ = run_counting(p256.verify_steps(h(RFC_PUB), bytes(32), h(RFC_SIGS[0][1])))
        self.assertFalse(bad)

    def test_verify_steps_with_table(self):
        pub = h(KAT_CRED_PUB)
        table = p256.verify_table(pub)
        digest = hashlib.sha256(h(KAT_SIGNED_PREFIX + "4e887b4c")).digest()
        ok, slices = run_counting(p256.verify_steps(pub, digest, h(KAT_UD_SIG), table))
        self.assertTrue(ok)
        self.assertTrue(slices >= 40)

    def test_sign_and_key_steps(self):
        digest = hashlib.sha256(b"test").digest()
        sig, slices = run_counting(p256.sign_steps(h(RFC_PRIV), digest))
        self.assertEqual(sig, h(RFC_SIGS[1][1]))
        self.assertTrue(slices >= 20)
        pub, _ = run_counting(p256.public_key_steps(h(RFC_PRIV)))
        self.assertEqual(pub, h(RFC_PUB))
        (priv, pub), _ = run_counting(p256.keypair_steps())
        self.assertEqual(p256.public_key(priv), pub)
        nonce, _ = run_counting(p256.precompute_nonce_steps())
        self.assertTrue(nonce.ready())

    def test_verify_table_steps(self):
        table, slices = run_counting(p256.verify_table_steps(h(KAT_CRED_PUB)))
        self.assertTrue(table == p256.verify_table(h(KAT_CRED_PUB)))
        self.assertTrue(slices >= 10)

    def test_steps_compose_with_yield_from(self):
        def agree(a_priv, b_pub):
            x = yield from p256.ecdh_steps(a_priv, b_pub)
            return x

        self.assertEqual(p256.finish(agree(h(KAT_UD_EPH_PRIV), h(KAT_READER_EPH_PUB))), h(KAT_SHARED_X))

    def test_bad_arguments_raise_before_any_work(self):
        with self.assertRaises(ValueError):
            p256.sign_steps(scalar(0), bytes(32))
        with self.assertRaises(ValueError):
            p256.public_key_steps(b"")
        with self.assertRaises(ValueError):
            p256.verify_table_steps(b"\x04")


if __name__ == "__main__":
    unittest.main()
