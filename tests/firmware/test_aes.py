# carkey — AES-GCM and AES-CMAC in firmware/carkey/crypto/aes.py against published vectors.
# SPDX-License-Identifier: MIT
#
# Covers the GCM spec's test cases (AES-128/256, with and without AAD), the Aliro
# known-answer vectors (secure channel, cryptogram), RFC 4493 and SP 800-38B
# CMAC, NXP AN12196 session keys, rejection of bad tags and bad input.
#   .venv/bin/pytest -q tests/firmware/test_aes.py
#   MICROPYPATH=firmware:tests/mpy .venv/bin/micropython -X heapsize=64k tests/firmware/test_aes.py

import hashlib
from binascii import hexlify, unhexlify

import unittest

from carkey.crypto import aes

# Compiling this file and aes.py from source takes about 100 KiB; the
# operations themselves run in 64 KiB (tests/host/test_aes_cross.py checks that
# through a 64 KiB bridge).
MPY_HEAPSIZE = "128k"


def h(text):
    return unhexlify(text.replace(" ", ""))


# The GCM spec (McGrew & Viega, "The Galois/Counter Mode of Operation"), test
# cases 1-4 (AES-128) and 13-16 (AES-256); 5, 6, 11, 12, 17, 18 use IVs other
# than 96 bits, which carkey does not accept.
_K3 = "feffe9928665731c6d6a8f9467308308"
_IV3 = "cafebabefacedbaddecaf888"
_P3 = (
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255"
)
_A4 = "feedfacedeadbeeffeedfacedeadbeefabaddad2"
GCM_SPEC = (
    # (case, key, iv, plaintext, aad, ciphertext, tag)
    (1, "00" * 16, "00" * 12, "", "", "", "58e2fccefa7e3061367f1d57a4e7455a"),
    (2, "00" * 16, "00" * 12, "00" * 16, "", "0388dace60b6a392f328c2b971b2fe78", "ab6e47d42cec13bdf53a67b21257bddf"),
    (
        3, _K3, _IV3, _P3, "",
        "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
        "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
        "4d5c2af327cd64a62cf35abd2ba6fab4",
    ),
    (
        4, _K3, _IV3, _P3[:120], _A4,
        "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
        "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
        "5bc94fbc3221a5db94fae95ae7121a47",
    ),
    (13, "00" * 32, "00" * 12, "", "", "", "530f8afbc74536b9a963b4f1c4cb738b"),
    (14, "00" * 32, "00" * 12, "00" * 16, "", "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919"),
    (
        15, _K3 * 2, _IV3, _P3, "",
        "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
        "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
        "b094dac5d93471bdec1a502270e3cc6c",
    ),
    (
        16, _K3 * 2, _IV3, _P3[:120], _A4,
        "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
        "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
        "76fc6ece0f4e1768cddf8853bb2d551b",
    ),
)

# /work/shared/vectors/aliro-expedited-kat.json, transaction 1 (standard):
# auth1_response_encryption, exchange_command_encryption, exchange_response_encryption.
AUTH1_RESPONSE = (
    "1dc7e859b98390aea668feb95ccdc47598ca1685dd6cd3358e37c5a59a6a0b5d",  # SKDevice
    "000000000000000100000001",
    "5a410469a859d0ce90e0d440c91414579cad27781ebe580a58e3189ace37fdd4b9891b35d2dbf4b3"
    "03228197962400b0f630007933cbbec6c5ea0563ee48d3de6f7dfe9e40d5dd8b9d457e5b5d6a80e9"
    "46db63fb95bb748b806b732be7a80f347081c9b7472a946eeb0e22f755c631373919df7a22010e10"
    "e329bd64c7b8ff9e2497e2b6585e021c30",
    "ec3a85438c268e9752eb95c1a833f361959663274caeb912eca489e5e3dc4eddac22bc77657e0e67"
    "268816e0ac8581334764397d325fd13fa631ad814c9f513d886545b183a6bb616f464e19f9acdcae"
    "fd0e95036651fc7ede215a0abdcfd61efb808ea424e878c70fff1e3d9dac1171892876b8082ebb53"
    "0d9ddd3fe700efd71bee6a2fd8d33628db",
    "dc481a8dbc2937add2a858a0dc971741",
)
EXCHANGE = (
    # (key, iv, plaintext, ciphertext, tag)
    (  # transaction 1, reader -> device, SKReader
        "6e7ca8bf15ded11790f2c34b673e3c1c3c13eb73e972e95a471df5963fb82991",
        "000000000000000000000001", "97020101", "59f0a0a6", "81c0af3def352726b83a23e520f19450",
    ),
    (  # transaction 1, device -> reader, SKDevice, counter 2
        "1dc7e859b98390aea668feb95ccdc47598ca1685dd6cd3358e37c5a59a6a0b5d",
        "000000000000000100000002", "00020000", "2e8f7b56", "19ca28ecffa62e333a0d12d70e2f2621",
    ),
    (  # transaction 2 (fast), reader -> device, SKReader
        "f2938d3325eb72991efcd79cd5b6bcc729198ae592fb4742464d43ce32e9a4ef",
        "000000000000000000000001", "97020101", "f1f468b2", "9c5fa564f8d1d37f47b1639d0395664a",
    ),
)
# Same file, transaction 2: cryptogram (AUTH0 response tag 9D) under CryptogramSK.
CRYPTOGRAM_SK = "8532f16f80a857b9d052f75c79a419b6864516d1b0a4f405d2dd07893fdf9ded"
CRYPTOGRAM_PLAIN = "5e021c30911400000000000000000000000000000000000000009214" + "00" * 20
CRYPTOGRAM = (
    "27d9489958910534843c15c7c72ec60fc63f6b4a0e778194e0cc58609270b5de"
    "729558d3e89dd09c6ef6f03d821b8fe6f740924833682f99b14555076cd86d98"
)

# RFC 4493 section 4 (AES-128) and NIST SP 800-38B appendix D.3 (AES-256): the
# same four messages, prefixes of one 64-byte string.
CMAC_MSG = (
    "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
    "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710"
)
CMAC_128 = "2b7e151628aed2a6abf7158809cf4f3c"
CMAC_256 = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4"
CMAC_CASES = (
    (CMAC_128, 0, "bb1d6929e95937287fa37d129b756746"),
    (CMAC_128, 16, "070a16b46b4d4144f79bdd9dd04a287c"),
    (CMAC_128, 40, "dfa66747de9ae63030ca32611497c827"),
    (CMAC_128, 64, "51f0bebf7e3b9d92fc49741779363cfe"),
    (CMAC_256, 0, "028962f61b7bf89efc6b551f4667d983"),
    (CMAC_256, 16, "28a7023f452e8f82bd4bf28d8c37c35c"),
    (CMAC_256, 40, "aaf3d8f1de5640c232f5b169b9c911e6"),
    (CMAC_256, 64, "e1992190549f6ed5696a2c056c315410"),
)

# Messages longer than one cryptolib call (240 bytes with E(J0), then 256 a
# chunk): SHA-256 of ciphertext || tag, from the Python cryptography package,
# for key = bytes(range(32)), iv = bytes(range(12)), plaintext[i] = i * 7 mod 256,
# aad[i] = i * 3 mod 256 (aad length 300, or 0).
LONG = (
    # (plaintext length, aad length, sha256 of ciphertext || tag)
    (239, 0, "7389453a71735c7d860e6529e106521d2046fb862d33e6ed22269a5c02eb0c74"),
    (240, 0, "2e3b80df807570dd0a589e5ed64fabda2a2e6c1c13813e04aaa140daea7904c6"),
    (241, 300, "04cdb237157409e92fc3fbd9e25a39557f36307ac3a5922eafc0c873d35f8f51"),
    (256, 0, "97ed6f5820976939cbd16b6f309de4cc29d6dd8cecfb324abdc59f09272db025"),
    (257, 300, "1440ee6a1f84617dc7fd824089d836a6b480f6b7bea4ca6b6f245502e910dbf1"),
    (497, 0, "5bedb8304527fc1996009713688c8366de051fb94068732ecc48a736c795093b"),
    (1000, 300, "be6f9cc409e4ff92b4db910285960fdc6e16b38c11cb7bf6c835a0ab0914b50f"),
)


def pattern(n, step):
    return bytes(i * step & 0xFF for i in range(n))


class TestGcmSpecVectors(unittest.TestCase):
    def test_encrypt(self):
        for case, key, iv, pt, aad, ct, tag in GCM_SPEC:
            out = aes.gcm_encrypt(h(key), h(iv), h(pt), h(aad))
            self.assertEqual(hexlify(out).decode(), ct + tag, "test case %d" % case)

    def test_decrypt(self):
        for case, key, iv, pt, aad, ct, tag in GCM_SPEC:
            self.assertEqual(aes.gcm_decrypt(h(key), h(iv), h(ct + tag), h(aad)), h(pt), "test case %d" % case)

    def test_reused_key_object_matches(self):
        for case, key, iv, pt, aad, ct, tag in GCM_SPEC:
            gcm = aes.Gcm(h(key))
            self.assertEqual(gcm.encrypt(h(iv), h(pt), h(aad)), h(ct + tag), "test case %d" % case)
            self.assertEqual(gcm.decrypt(h(iv), h(ct + tag), h(aad)), h(pt), "test case %d" % case)
            self.assertEqual(gcm.encrypt(h(iv), h(pt), h(aad)), h(ct + tag), "second use, case %d" % case)

    def test_default_aad_is_empty(self):
        case, key, iv, pt, aad, ct, tag = GCM_SPEC[2]
        self.assertEqual(aes.gcm_encrypt(h(key), h(iv), h(pt)), h(ct + tag))
        self.assertEqual(aes.gcm_decrypt(h(key), h(iv), h(ct + tag)), h(pt))

    def test_bytearray_and_memoryview_inputs(self):
        case, key, iv, pt, aad, ct, tag = GCM_SPEC[3]
        out = aes.gcm_encrypt(bytearray(h(key)), memoryview(h(iv)), bytearray(h(pt)), memoryview(h(aad)))
        self.assertEqual(out, h(ct + tag))
        self.assertEqual(aes.gcm_decrypt(memoryview(h(key)), bytearray(h(iv)), memoryview(out), bytearray(h(aad))), h(pt))


class TestGcmAliroVectors(unittest.TestCase):
    def test_auth1_response(self):
        key, iv, pt, ct, tag = AUTH1_RESPONSE
        self.assertEqual(aes.gcm_encrypt(h(key), h(iv), h(pt)), h(ct + tag))
        self.assertEqual(aes.gcm_decrypt(h(key), h(iv), h(ct + tag)), h(pt))

    def test_exchange_messages(self):
        for key, iv, pt, ct, tag in EXCHANGE:
            self.assertEqual(aes.gcm_encrypt(h(key), h(iv), h(pt)), h(ct + tag))
            self.assertEqual(aes.gcm_decrypt(h(key), h(iv), h(ct + tag)), h(pt))

    def test_secure_channel_key_object_over_successive_counters(self):
        # Transaction 1's SKDevice sealed the AUTH1 response (counter 1) and the
        # EXCHANGE response (counter 2): one Gcm serves both.
        key, iv, pt, ct, tag = AUTH1_RESPONSE
        gcm = aes.Gcm(h(key))
        self.assertEqual(gcm.decrypt(h(iv), h(ct + tag)), h(pt))
        _, iv2, pt2, ct2, tag2 = EXCHANGE[1]
        self.assertEqual(gcm.encrypt(h(iv2), h(pt2)), h(ct2 + tag2))

    def test_cryptogram_opens(self):
        self.assertEqual(aes.gcm_decrypt(h(CRYPTOGRAM_SK), bytes(12), h(CRYPTOGRAM)), h(CRYPTOGRAM_PLAIN))

    def test_cryptogram_seals(self):
        self.assertEqual(aes.gcm_encrypt(h(CRYPTOGRAM_SK), bytes(12), h(CRYPTOGRAM_PLAIN)), h(CRYPTOGRAM))

    def test_cryptogram_first_block_unverified_shows_fixed_tags(self):
        # How the reader picks a cached key: CTR-decrypt one block, look for 5E 02 and 91 14.
        head = aes.gcm_decrypt_unverified(h(CRYPTOGRAM_SK), bytes(12), h(CRYPTOGRAM)[:16])
        self.assertEqual(head, h(CRYPTOGRAM_PLAIN)[:16])
        self.assertEqual(head[0:2], b"\x5e\x02")
        self.assertEqual(head[4:6], b"\x91\x14")

    def test_cryptogram_under_wrong_key_is_rejected(self):
        wrong = bytearray(h(CRYPTOGRAM_SK))
        wrong[31] ^= 1
        with self.assertRaises(ValueError):
            aes.gcm_decrypt(bytes(wrong), bytes(12), h(CRYPTOGRAM))
        head = aes.gcm_decrypt_unverified(bytes(wrong), bytes(12), h(CRYPTOGRAM)[:16])
        self.assertNotEqual(head[0:2], b"\x5e\x02")


class TestGcmUnverified(unittest.TestCase):
    def test_every_prefix_length_matches_plaintext(self):
        case, key, iv, pt, aad, ct, tag = GCM_SPEC[2]
        gcm = aes.Gcm(h(key))
        for n in (0, 1, 15, 16, 17, 33, 64):
            self.assertEqual(aes.gcm_decrypt_unverified(h(key), h(iv), h(ct)[:n]), h(pt)[:n], "prefix %d" % n)
            self.assertEqual(gcm.decrypt_unverified(h(iv), h(ct)[:n]), h(pt)[:n], "prefix %d" % n)

    def test_long_input_matches_plaintext(self):
        key, iv = bytes(range(32)), bytes(range(12))
        pt = pattern(1000, 7)
        sealed = aes.gcm_encrypt(key, iv, pt)
        self.assertEqual(aes.gcm_decrypt_unverified(key, iv, sealed[:-16]), pt)

    def test_rejects_bad_iv(self):
        with self.assertRaises(ValueError):
            aes.gcm_decrypt_unverified(bytes(32), bytes(16), bytes(16))


class TestGcmLongMessages(unittest.TestCase):
    def test_chunk_boundaries_known_answers(self):
        key, iv = bytes(range(32)), bytes(range(12))
        for n, naad, digest in LONG:
            aad = pattern(naad, 3)
            sealed = aes.gcm_encrypt(key, iv, pattern(n, 7), aad)
            self.assertEqual(len(sealed), n + 16)
            self.assertEqual(hexlify(hashlib.sha256(sealed).digest()).decode(), digest, "length %d" % n)

    def test_chunk_boundaries_round_trip(self):
        key, iv = bytes(range(16)), bytes(range(12))
        gcm = aes.Gcm(key)
        for n, naad, _ in LONG:
            pt, aad = pattern(n, 7), pattern(naad, 3)
            self.assertEqual(gcm.decrypt(iv, gcm.encrypt(iv, pt, aad), aad), pt, "length %d" % n)


class TestGcmRejects(unittest.TestCase):
    def setUp(self):
        case, key, iv, pt, aad, ct, tag = GCM_SPEC[3]
        self.key, self.iv, self.aad = h(key), h(iv), h(aad)
        self.sealed = h(ct + tag)

    def open(self, data, aad=None):
        return aes.gcm_decrypt(self.key, self.iv, data, self.aad if aad is None else aad)

    def test_every_flipped_bit_position_class_is_rejected(self):
        # First and last ciphertext byte, first and last tag byte, low and high bits.
        for i in (0, 59, 60, 75):
            for bit in (0x01, 0x80):
                data = bytearray(self.sealed)
                data[i] ^= bit
                with self.assertRaises(ValueError) as ctx:
                    self.open(bytes(data))
                self.assertEqual(ctx.exception.args, ("GCM tag mismatch",))

    def test_changed_aad_is_rejected(self):
        for aad in (b"", self.aad[:-1], self.aad + b"\x00", b"\x01" + self.aad[1:]):
            with self.assertRaises(ValueError) as ctx:
                self.open(self.sealed, aad)
            self.assertEqual(ctx.exception.args, ("GCM tag mismatch",))

    def test_wrong_iv_is_rejected(self):
        iv = bytearray(self.iv)
        iv[11] ^= 1
        with self.assertRaises(ValueError):
            aes.gcm_decrypt(self.key, bytes(iv), self.sealed, self.aad)

    def test_truncated_data_is_rejected(self):
        for n in (0, 1, 15):
            with self.assertRaises(ValueError) as ctx:
                self.open(self.sealed[:n])
            self.assertEqual(ctx.exception.args, ("GCM data shorter than the tag",))
        with self.assertRaises(ValueError):
            self.open(self.sealed[:16])
        with self.assertRaises(ValueError):
            self.open(self.sealed[:-1])

    def test_bare_tag_of_empty_message_opens(self):
        case, key, iv, pt, aad, ct, tag = GCM_SPEC[0]
        self.assertEqual(aes.gcm_decrypt(h(key), h(iv), h(tag)), b"")

    def test_key_object_rejects_and_stays_usable(self):
        gcm = aes.Gcm(self.key)
        data = bytearray(self.sealed)
        data[5] ^= 0x10
        with self.assertRaises(ValueError):
            gcm.decrypt(self.iv, bytes(data), self.aad)
        self.assertEqual(gcm.decrypt(self.iv, self.sealed, self.aad), h(_P3[:120]))


class TestBadInput(unittest.TestCase):
    def test_key_lengths(self):
        for n in (0, 15, 17, 24, 31, 33, 64):
            with self.assertRaises(ValueError) as ctx:
                aes.gcm_encrypt(bytes(n), bytes(12), b"")
            self.assertEqual(ctx.exception.args, ("AES key must be 16 or 32 bytes",))
            with self.assertRaises(ValueError):
                aes.Gcm(bytes(n))
            with self.assertRaises(ValueError):
                aes.gcm_decrypt_unverified(bytes(n), bytes(12), b"")
            with self.assertRaises(ValueError):
                aes.cmac(bytes(n), b"")

    def test_iv_lengths(self):
        gcm = aes.Gcm(bytes(16))
        for n in (0, 8, 11, 13, 16, 60):
            with self.assertRaises(ValueError) as ctx:
                aes.gcm_encrypt(bytes(16), bytes(n), b"abc")
            self.assertEqual(ctx.exception.args, ("GCM IV must be 12 bytes",))
            with self.assertRaises(ValueError):
                aes.gcm_decrypt(bytes(16), bytes(n), bytes(20))
            with self.assertRaises(ValueError):
                gcm.encrypt(bytes(n), b"abc")
            with self.assertRaises(ValueError):
                gcm.decrypt(bytes(n), bytes(20))

    def test_wrong_types(self):
        key, iv = bytes(16), bytes(12)
        calls = (
            lambda: aes.gcm_encrypt("k" * 16, iv, b""),
            lambda: aes.gcm_encrypt(key, "i" * 12, b""),
            lambda: aes.gcm_encrypt(key, iv, "plaintext"),
            lambda: aes.gcm_encrypt(key, iv, b"", None),
            lambda: aes.gcm_encrypt(key, iv, [1, 2, 3]),
            lambda: aes.gcm_decrypt(key, iv, "x" * 32),
            lambda: aes.gcm_decrypt(key, 12, bytes(32)),
            lambda: aes.gcm_decrypt(key, iv, bytes(32), "aad"),
            lambda: aes.gcm_decrypt_unverified(key, iv, 5),
            lambda: aes.Gcm(None),
            lambda: aes.cmac("k" * 16, b""),
            lambda: aes.cmac(key, "message"),
            lambda: aes.Cmac(key).mac(None),
        )
        for i, call in enumerate(calls):
            with self.assertRaises(ValueError) as ctx:
                call()
            self.assertIn("must be", ctx.exception.args[0], "call %d" % i)


class TestCmac(unittest.TestCase):
    def test_rfc4493_and_sp800_38b_examples(self):
        for key, n, tag in CMAC_CASES:
            self.assertEqual(hexlify(aes.cmac(h(key), h(CMAC_MSG)[:n])).decode(), tag, "%d-bit key, %d bytes" % (len(key) * 4, n))

    def test_key_object_matches_and_is_reusable(self):
        for key in (CMAC_128, CMAC_256):
            mac = aes.Cmac(h(key))
            for k, n, tag in CMAC_CASES:
                if k == key:
                    self.assertEqual(mac.mac(h(CMAC_MSG)[:n]), h(tag))

    def test_lengths_around_block_boundaries_differ(self):
        # Padding: a 15- or 17-byte message never collides with its 16-byte neighbour.
        key = h(CMAC_128)
        tags = [aes.cmac(key, h(CMAC_MSG)[:n]) for n in (15, 16, 17, 31, 32, 33)]
        self.assertEqual(len(set(tags)), 6)
        self.assertEqual(aes.cmac(key, bytearray(h(CMAC_MSG)[:40])), h(CMAC_CASES[2][2]))

    def test_an12196_session_keys(self):
        # NXP AN12196 worked example of AuthenticateEV2First (key 0): SesAuthENC
        # and SesAuthMAC are CMAC(K, SV1) and CMAC(K, SV2).
        rnd_a = h("13C5DB8A5930439FC3DEF9A4C675360F")
        rnd_b = h("B9E2FC789B64BF237CCCAA20EC7E6E48")
        ctx = rnd_a[0:2] + bytes(rnd_a[2 + i] ^ rnd_b[i] for i in range(6)) + rnd_b[6:16] + rnd_a[8:16]
        key = bytes(16)
        self.assertEqual(aes.cmac(key, h("A55A00010080") + ctx), h("1309C877509E5A215007FF0ED19CA564"))
        self.assertEqual(aes.cmac(key, h("5AA500010080") + ctx), h("4C6626F5E72EA694202139295C7A7FC7"))


class _StockCryptolib:
    # cryptolib as on stock ESP32 firmware: ECB (1) and CBC (2) only. Records
    # the modes asked for.

    def __init__(self, real):
        self.real = real
        self.modes = set()

    def aes(self, key, mode, *iv):
        self.modes.add(mode)
        if mode not in (1, 2):
            raise ValueError("mode")
        return self.real.aes(key, mode, *iv)


class TestStockCryptolib(unittest.TestCase):
    def test_needs_only_ecb_and_cbc(self):
        real = aes.cryptolib
        stock = _StockCryptolib(real)
        aes.cryptolib = stock
        try:
            self.assertEqual(aes.gcm_decrypt(h(CRYPTOGRAM_SK), bytes(12), h(CRYPTOGRAM)), h(CRYPTOGRAM_PLAIN))
            head = aes.gcm_decrypt_unverified(h(CRYPTOGRAM_SK), bytes(12), h(CRYPTOGRAM)[:16])
            self.assertEqual(head, h(CRYPTOGRAM_PLAIN)[:16])
            self.assertEqual(stock.modes, {1})
            self.assertEqual(aes.cmac(h(CMAC_128), h(CMAC_MSG)), h(CMAC_CASES[3][2]))
            self.assertEqual(stock.modes, {1, 2})
        finally:
            aes.cryptolib = real


if __name__ == "__main__":
    unittest.main()
