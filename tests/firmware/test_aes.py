# carkey — AES-GCM and AES-CMAC in firmware/carkey/crypto/aes.py against published vectors.
# SPDX-License-Identifier: MIT
#
# Covers the GCM spec's test cases (AES-128/256, with and without AAD), the Aliro
# known-answer vectors (secure channel, cryptogram), RFC 4493 and SP 800-38B
# CMAC, NXP AN12196 session keys, rejection of bad tags and bad input.
#   .venv/bin/pytest -q tests/firmware/test_aes.py
#   MICROPYPATH=firmware:tests/mpy .venv/bin/micropython -X heapsize=64k tests/firmware/test_aes.py

import gc
import hashlib
from binascii import hexlify, unhexlify

import unittest

from carkey.crypto import aes

MPY_HEAPSIZE = "64k"


def h(text):
    return unhexlify(text)


def rows(text):
    # Test vectors are kept as text, one per line, fields split on spaces and
    # "-" for an empty field: one string object instead of dozens (each costs
    # a header on a 64 KiB heap), read a line at a time by the test that uses it.
    start = text.find("\n") + 1
    while start < len(text):
        end = text.find("\n", start)
        yield ["" if f == "-" else f for f in text[start:end].split()]
        start = end + 1


def row(text, label, skip=0):
    # The first line labelled `label` (or the skip-th after it).
    for fields in rows(text):
        if fields[0] == label:
            if not skip:
                return fields
            skip -= 1
    raise KeyError(label)


# The GCM spec (McGrew & Viega, "The Galois/Counter Mode of Operation"), test
# cases 1-4 (AES-128) and 13-16 (AES-256); 5, 6, 11, 12, 17, 18 use IVs other
# than 96 bits, which carkey does not accept.
# case key iv plaintext aad ciphertext tag
GCM_SPEC = """
1 00000000000000000000000000000000 000000000000000000000000 - - - 58e2fccefa7e3061367f1d57a4e7455a
2 00000000000000000000000000000000 000000000000000000000000 00000000000000000000000000000000 - 0388dace60b6a392f328c2b971b2fe78 ab6e47d42cec13bdf53a67b21257bddf
3 feffe9928665731c6d6a8f9467308308 cafebabefacedbaddecaf888 d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255 - 42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985 4d5c2af327cd64a62cf35abd2ba6fab4
4 feffe9928665731c6d6a8f9467308308 cafebabefacedbaddecaf888 d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39 feedfacedeadbeeffeedfacedeadbeefabaddad2 42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091 5bc94fbc3221a5db94fae95ae7121a47
13 0000000000000000000000000000000000000000000000000000000000000000 000000000000000000000000 - - - 530f8afbc74536b9a963b4f1c4cb738b
14 0000000000000000000000000000000000000000000000000000000000000000 000000000000000000000000 00000000000000000000000000000000 - cea7403d4d606b6e074ec5d3baf39d18 d0d1c8a799996bf0265b98b5d48ab919
15 feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308 cafebabefacedbaddecaf888 d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255 - 522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad b094dac5d93471bdec1a502270e3cc6c
16 feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308 cafebabefacedbaddecaf888 d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39 feedfacedeadbeeffeedfacedeadbeefabaddad2 522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662 76fc6ece0f4e1768cddf8853bb2d551b
"""

# tests/vectors/aliro-expedited-kat.json: transaction 1's
# auth1_response_encryption, exchange_command_encryption and
# exchange_response_encryption, transaction 2's exchange_command_encryption
# (fast_exchange_command) and cryptogram (AUTH0 response tag 9D, CryptogramSK).
# name key iv plaintext ciphertext tag
ALIRO = """
auth1_response 1dc7e859b98390aea668feb95ccdc47598ca1685dd6cd3358e37c5a59a6a0b5d 000000000000000100000001 5a410469a859d0ce90e0d440c91414579cad27781ebe580a58e3189ace37fdd4b9891b35d2dbf4b303228197962400b0f630007933cbbec6c5ea0563ee48d3de6f7dfe9e40d5dd8b9d457e5b5d6a80e946db63fb95bb748b806b732be7a80f347081c9b7472a946eeb0e22f755c631373919df7a22010e10e329bd64c7b8ff9e2497e2b6585e021c30 ec3a85438c268e9752eb95c1a833f361959663274caeb912eca489e5e3dc4eddac22bc77657e0e67268816e0ac8581334764397d325fd13fa631ad814c9f513d886545b183a6bb616f464e19f9acdcaefd0e95036651fc7ede215a0abdcfd61efb808ea424e878c70fff1e3d9dac1171892876b8082ebb530d9ddd3fe700efd71bee6a2fd8d33628db dc481a8dbc2937add2a858a0dc971741
exchange_command 6e7ca8bf15ded11790f2c34b673e3c1c3c13eb73e972e95a471df5963fb82991 000000000000000000000001 97020101 59f0a0a6 81c0af3def352726b83a23e520f19450
exchange_response 1dc7e859b98390aea668feb95ccdc47598ca1685dd6cd3358e37c5a59a6a0b5d 000000000000000100000002 00020000 2e8f7b56 19ca28ecffa62e333a0d12d70e2f2621
fast_exchange_command f2938d3325eb72991efcd79cd5b6bcc729198ae592fb4742464d43ce32e9a4ef 000000000000000000000001 97020101 f1f468b2 9c5fa564f8d1d37f47b1639d0395664a
cryptogram 8532f16f80a857b9d052f75c79a419b6864516d1b0a4f405d2dd07893fdf9ded 000000000000000000000000 5e021c309114000000000000000000000000000000000000000092140000000000000000000000000000000000000000 27d9489958910534843c15c7c72ec60fc63f6b4a0e778194e0cc58609270b5de729558d3e89dd09c6ef6f03d821b8fe6 f740924833682f99b14555076cd86d98
"""

# RFC 4493 section 4 (AES-128) and NIST SP 800-38B appendix D.3 (AES-256): the
# messages are prefixes of CMAC_MSG.
CMAC_MSG = "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710"
# source key message-length tag
CMAC = """
rfc4493 2b7e151628aed2a6abf7158809cf4f3c 0 bb1d6929e95937287fa37d129b756746
rfc4493 2b7e151628aed2a6abf7158809cf4f3c 16 070a16b46b4d4144f79bdd9dd04a287c
rfc4493 2b7e151628aed2a6abf7158809cf4f3c 40 dfa66747de9ae63030ca32611497c827
rfc4493 2b7e151628aed2a6abf7158809cf4f3c 64 51f0bebf7e3b9d92fc49741779363cfe
sp800-38b 603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4 0 028962f61b7bf89efc6b551f4667d983
sp800-38b 603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4 16 28a7023f452e8f82bd4bf28d8c37c35c
sp800-38b 603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4 40 aaf3d8f1de5640c232f5b169b9c911e6
sp800-38b 603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4 64 e1992190549f6ed5696a2c056c315410
"""

# Messages longer than one cryptolib call (240 bytes with E(J0), then 256 a
# chunk): SHA-256 of ciphertext || tag, from the Python cryptography package,
# for key = bytes(range(32)), iv = bytes(range(12)), plaintext[i] = i * 7 mod 256,
# aad[i] = i * 3 mod 256.
# plaintext-length aad-length sha256
LONG = """
239 0 7389453a71735c7d860e6529e106521d2046fb862d33e6ed22269a5c02eb0c74
240 0 2e3b80df807570dd0a589e5ed64fabda2a2e6c1c13813e04aaa140daea7904c6
241 300 04cdb237157409e92fc3fbd9e25a39557f36307ac3a5922eafc0c873d35f8f51
256 0 97ed6f5820976939cbd16b6f309de4cc29d6dd8cecfb324abdc59f09272db025
257 300 1440ee6a1f84617dc7fd824089d836a6b480f6b7bea4ca6b6f245502e910dbf1
497 0 5bedb8304527fc1996009713688c8366de051fb94068732ecc48a736c795093b
"""


def pattern(n, step):
    return bytes(i * step & 0xFF for i in range(n))


class Case(unittest.TestCase):
    def same(self, got, want, what=""):
        # Like assertEqual for byte strings, without building reprs of long values
        # unless they differ (a 64 KiB heap has no room to spare).
        if got == want:
            return
        i = 0
        while i < min(len(got), len(want)) and got[i] == want[i]:
            i += 1
        self.fail("%s: %d vs %d bytes, first difference at %d: %s vs %s" % (
            what, len(got), len(want), i, hexlify(got[i : i + 8]), hexlify(want[i : i + 8])))


class TestGcmSpecVectors(Case):
    def test_encrypt_and_decrypt(self):
        for case, key, iv, pt, aad, ct, tag in rows(GCM_SPEC):
            what = "test case " + case
            self.same(aes.gcm_encrypt(h(key), h(iv), h(pt), h(aad)), h(ct + tag), what)
            self.same(aes.gcm_decrypt(h(key), h(iv), h(ct + tag), h(aad)), h(pt), what)

    def test_reused_key_object_matches(self):
        for case, key, iv, pt, aad, ct, tag in rows(GCM_SPEC):
            gcm = aes.Gcm(h(key))
            what = "test case " + case
            self.same(gcm.encrypt(h(iv), h(pt), h(aad)), h(ct + tag), what)
            self.same(gcm.decrypt(h(iv), h(ct + tag), h(aad)), h(pt), what)
            self.same(gcm.encrypt(h(iv), h(pt), h(aad)), h(ct + tag), what + ", second use")

    def test_default_aad_is_empty(self):
        case, key, iv, pt, aad, ct, tag = row(GCM_SPEC, "3")
        self.same(aes.gcm_encrypt(h(key), h(iv), h(pt)), h(ct + tag))
        self.same(aes.gcm_decrypt(h(key), h(iv), h(ct + tag)), h(pt))

    def test_bytearray_and_memoryview_inputs(self):
        case, key, iv, pt, aad, ct, tag = row(GCM_SPEC, "4")
        out = aes.gcm_encrypt(bytearray(h(key)), memoryview(h(iv)), bytearray(h(pt)), memoryview(h(aad)))
        self.same(out, h(ct + tag))
        self.same(aes.gcm_decrypt(memoryview(h(key)), bytearray(h(iv)), memoryview(out), bytearray(h(aad))), h(pt))


class TestGcmAliroVectors(Case):
    def test_secure_channel_messages(self):
        for name, key, iv, pt, ct, tag in rows(ALIRO):
            self.same(aes.gcm_encrypt(h(key), h(iv), h(pt)), h(ct + tag), name)
            self.same(aes.gcm_decrypt(h(key), h(iv), h(ct + tag)), h(pt), name)

    def test_one_key_object_over_successive_counters(self):
        # Transaction 1's SKDevice sealed the AUTH1 response (counter 1) and the
        # EXCHANGE response (counter 2): one Gcm serves both.
        _, key, iv, pt, ct, tag = row(ALIRO, "auth1_response")
        gcm = aes.Gcm(h(key))
        self.same(gcm.decrypt(h(iv), h(ct + tag)), h(pt))
        _, key2, iv2, pt2, ct2, tag2 = row(ALIRO, "exchange_response")
        self.assertEqual(key2, key)
        self.same(gcm.encrypt(h(iv2), h(pt2)), h(ct2 + tag2))

    def test_cryptogram_first_block_unverified_shows_fixed_tags(self):
        # How the reader picks a cached key: CTR-decrypt one block, look for 5E 02 and 91 14.
        _, key, iv, pt, ct, tag = row(ALIRO, "cryptogram")
        head = aes.gcm_decrypt_unverified(h(key), h(iv), h(ct)[:16])
        self.same(head, h(pt)[:16])
        self.assertEqual(head[0:2], b"\x5e\x02")
        self.assertEqual(head[4:6], b"\x91\x14")

    def test_cryptogram_under_wrong_key_is_rejected(self):
        _, key, iv, pt, ct, tag = row(ALIRO, "cryptogram")
        wrong = bytearray(h(key))
        wrong[31] ^= 1
        with self.assertRaises(ValueError):
            aes.gcm_decrypt(bytes(wrong), h(iv), h(ct + tag))
        head = aes.gcm_decrypt_unverified(bytes(wrong), h(iv), h(ct)[:16])
        self.assertNotEqual(head[0:2], b"\x5e\x02")


class TestGcmUnverified(Case):
    def test_every_prefix_length_matches_plaintext(self):
        case, key, iv, pt, aad, ct, tag = row(GCM_SPEC, "3")
        for n in (0, 1, 15, 16, 17, 33, 64):
            self.same(aes.gcm_decrypt_unverified(h(key), h(iv), h(ct)[:n]), h(pt)[:n], "prefix %d" % n)

    def test_long_input_matches_plaintext(self):
        key, iv = bytes(range(32)), bytes(range(12))
        pt = pattern(600, 7)
        sealed = aes.gcm_encrypt(key, iv, pt)
        self.same(aes.gcm_decrypt_unverified(key, iv, sealed[:-16]), pt)

    def test_rejects_bad_iv(self):
        with self.assertRaises(ValueError):
            aes.gcm_decrypt_unverified(bytes(32), bytes(16), bytes(16))

    def test_first_block_gives_the_cryptogram_head_and_keeps_the_schedule(self):
        # The reader's cryptogram search: the first keystream block into its own buffer,
        # XORed with the ciphertext's first bytes; then the full check with the same
        # key schedule.
        _, key, iv, pt, ct, tag = row(ALIRO, "cryptogram")
        ecb = aes.cipher(h(key))
        block = bytearray(16)
        aes.first_block(ecb, h(iv), block)
        self.same(bytes(a ^ b for a, b in zip(block, h(ct)[:16])), h(pt)[:16])
        self.same(aes.Gcm(h(key), ecb).decrypt(h(iv), h(ct + tag)), h(pt))


class TestGcmLongMessages(Case):
    def test_chunk_boundaries_known_answers(self):
        key, iv = bytes(range(32)), bytes(range(12))
        for n, naad, digest in rows(LONG):
            n = int(n)
            sealed = aes.gcm_encrypt(key, iv, pattern(n, 7), pattern(int(naad), 3))
            self.assertEqual(len(sealed), n + 16)
            self.same(hashlib.sha256(sealed).digest(), h(digest), "length %d" % n)

    def test_chunk_boundaries_round_trip(self):
        key, iv = bytes(range(16)), bytes(range(12))
        gcm = aes.Gcm(key)
        for n, naad, _ in rows(LONG):
            pt, aad = pattern(int(n), 7), pattern(int(naad), 3)
            self.same(gcm.decrypt(iv, gcm.encrypt(iv, pt, aad), aad), pt, "length " + n)


class TestGcmRejects(Case):
    def setUp(self):
        case, key, iv, pt, aad, ct, tag = row(GCM_SPEC, "4")
        self.key, self.iv, self.aad = h(key), h(iv), h(aad)
        self.plaintext = h(pt)
        self.sealed = h(ct + tag)

    def reject(self, data, aad, message="GCM tag mismatch", iv=None):
        with self.assertRaises(ValueError) as ctx:
            aes.gcm_decrypt(self.key, iv or self.iv, data, aad)
        self.assertEqual(ctx.exception.args, (message,))

    def test_flipped_bits_are_rejected(self):
        # First and last ciphertext byte, first and last tag byte, low and high bits.
        for i in (0, 59, 60, 75):
            for bit in (0x01, 0x80):
                data = bytearray(self.sealed)
                data[i] ^= bit
                self.reject(bytes(data), self.aad)

    def test_changed_aad_is_rejected(self):
        for aad in (b"", self.aad[:-1], self.aad + b"\x00", b"\x01" + self.aad[1:]):
            self.reject(self.sealed, aad)

    def test_wrong_iv_is_rejected(self):
        iv = bytearray(self.iv)
        iv[11] ^= 1
        self.reject(self.sealed, self.aad, iv=bytes(iv))

    def test_truncated_data_is_rejected(self):
        for n in (0, 1, 15):
            self.reject(self.sealed[:n], self.aad, "GCM data shorter than the tag")
        self.reject(self.sealed[:16], self.aad)
        self.reject(self.sealed[:-1], self.aad)

    def test_bare_tag_of_empty_message_opens(self):
        case, key, iv, pt, aad, ct, tag = row(GCM_SPEC, "1")
        self.assertEqual(aes.gcm_decrypt(h(key), h(iv), h(tag)), b"")

    def test_key_object_rejects_and_stays_usable(self):
        gcm = aes.Gcm(self.key)
        data = bytearray(self.sealed)
        data[5] ^= 0x10
        with self.assertRaises(ValueError):
            gcm.decrypt(self.iv, bytes(data), self.aad)
        self.same(gcm.decrypt(self.iv, self.sealed, self.aad), self.plaintext)


class TestBadInput(Case):
    def raises(self, message, fn, *args):
        with self.assertRaises(ValueError) as ctx:
            fn(*args)
        self.assertEqual(ctx.exception.args, (message,))

    def test_key_lengths(self):
        message = "AES key must be 16 or 32 bytes"
        for n in (0, 15, 17, 24, 31, 33, 64):
            key = bytes(n)
            self.raises(message, aes.gcm_encrypt, key, bytes(12), b"")
            self.raises(message, aes.gcm_decrypt, key, bytes(12), bytes(16))
            self.raises(message, aes.gcm_decrypt_unverified, key, bytes(12), b"")
            self.raises(message, aes.Gcm, key)
            self.raises(message, aes.cmac, key, b"")
            self.raises(message, aes.Cmac, key)

    def test_iv_lengths(self):
        message = "GCM IV must be 12 bytes"
        gcm = aes.Gcm(bytes(16))
        for n in (0, 8, 11, 13, 16, 60):
            iv = bytes(n)
            self.raises(message, aes.gcm_encrypt, bytes(16), iv, b"abc")
            self.raises(message, aes.gcm_decrypt, bytes(16), iv, bytes(20))
            self.raises(message, gcm.encrypt, iv, b"abc")
            self.raises(message, gcm.decrypt, iv, bytes(20))
            self.raises(message, aes.gcm_decrypt_unverified, bytes(16), iv, b"abc")
            self.raises(message, aes.first_block, aes.cipher(bytes(16)), iv, bytearray(16))

    def test_wrong_types(self):
        key, iv = bytes(16), bytes(12)
        cases = (
            ("AES key must be bytes", aes.gcm_encrypt, ("k" * 16, iv, b"")),
            ("GCM IV must be bytes", aes.gcm_encrypt, (key, "i" * 12, b"")),
            ("plaintext must be bytes", aes.gcm_encrypt, (key, iv, "plaintext")),
            ("plaintext must be bytes", aes.gcm_encrypt, (key, iv, [1, 2, 3])),
            ("AAD must be bytes", aes.gcm_encrypt, (key, iv, b"", None)),
            ("GCM data must be bytes", aes.gcm_decrypt, (key, iv, "x" * 32)),
            ("GCM IV must be bytes", aes.gcm_decrypt, (key, 12, bytes(32))),
            ("AAD must be bytes", aes.gcm_decrypt, (key, iv, bytes(32), "aad")),
            ("ciphertext must be bytes", aes.gcm_decrypt_unverified, (key, iv, 5)),
            ("AES key must be bytes", aes.Gcm, (None,)),
            ("AES key must be bytes", aes.cmac, ("k" * 16, b"")),
            ("CMAC message must be bytes", aes.cmac, (key, "message")),
        )
        for message, fn, args in cases:
            self.raises(message, fn, *args)


class TestCmac(Case):
    def test_rfc4493_and_sp800_38b_examples(self):
        for source, key, n, tag in rows(CMAC):
            self.same(aes.cmac(h(key), h(CMAC_MSG)[: int(n)]), h(tag), source + ", " + n + " bytes")

    def test_key_object_matches_and_is_reusable(self):
        macs = {}
        for source, key, n, tag in rows(CMAC):
            mac = macs.get(key) or macs.setdefault(key, aes.Cmac(h(key)))
            self.same(mac.mac(h(CMAC_MSG)[: int(n)]), h(tag), source + ", " + n + " bytes")
        self.assertEqual(len(macs), 2)

    def test_lengths_around_block_boundaries_differ(self):
        # Padding: a 15- or 17-byte message never collides with its 16-byte neighbour.
        source, key, n, tag = row(CMAC, "rfc4493", 2)
        tags = [aes.cmac(h(key), h(CMAC_MSG)[:n]) for n in (15, 16, 17, 31, 32, 33)]
        self.assertEqual(len(set(tags)), 6)
        self.same(aes.cmac(h(key), bytearray(h(CMAC_MSG)[:40])), h(tag))

    def test_an12196_session_keys(self):
        # NXP AN12196 worked example of AuthenticateEV2First (key 0): SesAuthENC
        # and SesAuthMAC are CMAC(K, SV1) and CMAC(K, SV2).
        rnd_a = h("13c5db8a5930439fc3def9a4c675360f")
        rnd_b = h("b9e2fc789b64bf237cccaa20ec7e6e48")
        ctx = rnd_a[0:2] + bytes(rnd_a[2 + i] ^ rnd_b[i] for i in range(6)) + rnd_b[6:16] + rnd_a[8:16]
        key = bytes(16)
        self.same(aes.cmac(key, h("a55a00010080") + ctx), h("1309c877509e5a215007ff0ed19ca564"))
        self.same(aes.cmac(key, h("5aa500010080") + ctx), h("4c6626f5e72ea694202139295c7a7fc7"))


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


class TestStockCryptolib(Case):
    def test_needs_only_ecb_and_cbc(self):
        _, key, iv, pt, ct, tag = row(ALIRO, "cryptogram")
        source, cmac_key, n, cmac_tag = row(CMAC, "rfc4493", 3)
        real = aes.cryptolib
        stock = _StockCryptolib(real)
        aes.cryptolib = stock
        try:
            self.same(aes.gcm_decrypt(h(key), h(iv), h(ct + tag)), h(pt))
            self.same(aes.gcm_decrypt_unverified(h(key), h(iv), h(ct)[:16]), h(pt)[:16])
            self.assertEqual(stock.modes, {1})
            self.same(aes.cmac(h(cmac_key), h(CMAC_MSG)), h(cmac_tag))
            self.assertEqual(stock.modes, {1, 2})
        finally:
            aes.cryptolib = real


class TestGcmHeap(Case):
    # GHASH allocates nothing; a message allocates about its own output. On this
    # 64-bit port that shows no int grew past 2^62; tests/host/test_ghash_bounds.py
    # shows every one stays below 2^30, a 32-bit port's small ints.
    def _allocated(self, fn):
        fn()
        gc.collect()
        gc.disable()
        try:
            before = gc.mem_alloc()
            fn()
            return gc.mem_alloc() - before
        finally:
            gc.enable()

    def test_ghash_allocates_nothing(self):
        gcm = aes.Gcm(bytes(range(32)))
        data = bytes(range(256)) * 4
        self.assertEqual(self._allocated(lambda: aes._absorb(gcm._t, data, len(data))), 0)
        aad = data[:40]
        ej0 = bytes(16)
        self.assertEqual(self._allocated(lambda: aes._tag(gcm._t, aad, data, 1000, ej0, 0)), 0)

    def test_first_block_allocates_nothing(self):
        ecb = aes.cipher(bytes(range(32)))
        out = bytearray(16)
        iv = bytes(12)
        self.assertEqual(self._allocated(lambda: aes.first_block(ecb, iv, out)), 0)

    def test_message_allocates_little_more_than_its_output(self):
        gcm = aes.Gcm(bytes(range(32)))
        iv = bytes(12)
        msg = bytes(range(64))
        sealed = gcm.encrypt(iv, msg)
        # Output buffer and the bytes returned (80 bytes each, rounded to heap
        # blocks), the tag slice compared: far below the ~27 KB of the big-int GHASH.
        self.assertLess(self._allocated(lambda: gcm.encrypt(iv, msg)), 512)
        self.assertLess(self._allocated(lambda: gcm.decrypt(iv, sealed)), 512)


if __name__ == "__main__":
    unittest.main()
