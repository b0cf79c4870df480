# carkey — HMAC-SHA256, HKDF and X9.63 KDF (firmware/carkey/crypto/kdf.py) and ct.equal.
# SPDX-License-Identifier: MIT
#
# Published vectors (RFC 4231, RFC 5869, ANSI X9.63 via NIST CAVS) and the Aliro
# known-answer file's key schedule.
#   .venv/bin/pytest -q tests/firmware/test_kdf.py
#   MICROPYPATH=firmware:tests/mpy .venv/bin/micropython tests/firmware/test_kdf.py

from binascii import unhexlify

import unittest

from carkey.crypto import kdf
from carkey.crypto.ct import equal

MPY_HEAPSIZE = "64k"


def h(text):
    return unhexlify(text)


# RFC 4231 test cases 1, 2, 6 and 7 (6 and 7: keys longer than the block).
HMAC_CASES = (
    ("0b" * 20, "4869205468657265", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    ("4a656665", "7768617420646f2079612077616e7420666f72206e6f7468696e673f",
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    ("aa" * 131,
     "54657374205573696e67204c6172676572205468616e20426c6f636b2d53697a65204b6579202d2048617368204b6579204669727374",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
    ("aa" * 131,
     "5468697320697320612074657374207573696e672061206c6172676572207468616e20626c6f636b2d73697a65206b657920616e642061"
     "206c6172676572207468616e20626c6f636b2d73697a6520646174612e20546865206b6579206e6565647320746f20626520686173686564"
     "206265666f7265206265696e6720757365642062792074686520484d414320616c676f726974686d2e",
     "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
)

# RFC 5869 appendix A.1-A.3: (ikm, salt, info, length, prk, okm).
HKDF_CASES = (
    ("0b" * 22, "000102030405060708090a0b0c", "f0f1f2f3f4f5f6f7f8f9", 42,
     "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
     "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"),
    ("".join("%02x" % i for i in range(0x00, 0x50)),
     "".join("%02x" % i for i in range(0x60, 0xB0)),
     "".join("%02x" % i for i in range(0xB0, 0x100)), 82,
     "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
     "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09da3275600c2f0"
     "9b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87"),
    ("0b" * 22, "", "", 42,
     "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
     "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"),
)

# ANSI X9.63 KDF, SHA-256, from the CAVS file ansx963_2001.txt (COUNT = 0 of
# each SHA-256 group): (Z, SharedInfo, key data).
X963_CASES = (
    ("96c05619d56c328ab95fe84b18264b08725b85e33fd34f08", "", "443024c3dae66b95e6f5670601558f71"),
    ("22518b10e70f2a3f243810ae3254139efbee04aa57c7af7d", "75eef81aa3041e33b80971203d2c0c52",
     "c498af77161cc59f2962b9a713e2b215152d139766ce34a776df11866a69bf2e52a13d9c7c6fc878c50c5ea0bc7b00e0"
     "da2447cfd874f6cf92f30d0097111485500c90c3af8b487872d04685d14c8d1dc8d7fa08beb0ce0ababc11f0bd496269"
     "142d43525a78e5bc79a17f59676a5706dc54d54d4d1f0bd7e386128ec26afc21"),
)

# tests/vectors/aliro-expedited-kat.json, transaction 1: kdh_x963,
# hkdf_volatile, hkdf_persistent, stepup_keys_hkdf; transaction 2: hkdf_volatile_fast.
KAT_Z = "f729b3b088b38ad02a68635bed39005b8c35ab3d8f25dd2ff0ce3f23b0c78f0e"
KAT_TXN_ID = "dd2bfe3497711014b2150313162bfb64"
KAT_KDH = "070d60c38addbff1cbe9b0a5beb82690deb70291a33e65c24c6678c715bad12c"
KAT_INFO = "9ff9e05b9a50264cd8d1c88a249fa29563ca306af00134e079e0d94926f38ea6"
# The salts share everything but the 12-byte word and the credential key X.
_SALT_HEAD = "a103154c2115843e3c8493818cc10ae1e6e72215fd90df3cd0c57db87c582fd9"
_SALT_TAIL = (
    "00113344667799aa00113344667799aa113344667799aa00113344667799aa005e5c020100"
    "82815a2dca0cfdb82807f2826b92b7c7f520e67bda4be074d54884d1956444e1"
    "dd2bfe3497711014b2150313162bfb640002a508800200005c020100"
)
_CREDENTIAL_X = "69a859d0ce90e0d440c91414579cad27781ebe580a58e3189ace37fdd4b9891b"
KAT_SALT_VOLATILE = _SALT_HEAD + "566f6c6174696c652a2a2a2a" + _SALT_TAIL
KAT_SALT_PERSISTENT = _SALT_HEAD + "50657273697374656e742a2a" + _SALT_TAIL + _CREDENTIAL_X
KAT_OKM_VOLATILE = (
    "6e7ca8bf15ded11790f2c34b673e3c1c3c13eb73e972e95a471df5963fb82991"  # SKReader
    "1dc7e859b98390aea668feb95ccdc47598ca1685dd6cd3358e37c5a59a6a0b5d"  # SKDevice
    "3d046de3b0e18dacf4c9a9799e9e0cb32a301d065f9596063b5fd096e9ba0a3a"  # StepUpSK
    "647738c5636518006776862230203e4464967ff8512085ccf6f5d88489712491"  # BleSK
    "9cb706b15d2891440243c7765a9c5c8abefd4f799a3668680cd41fa062adbff1"  # URSK
)
KAT_KPERSISTENT = "c6a2104832cdca9abfa69a4e04d45e8c1357fe0feba5548262d27d10d893f298"
KAT_STEPUP = (  # info, okm; salt empty, ikm = StepUpSK
    ("534b526561646572", "abacec136c1d74dab5179dc40e94b9162a75a4dfd0f44acec2912b7a914aae1d"),
    ("534b446576696365", "d32db255d30f798b553bed10e84e1bcf0149f583c94cd86180e51491836fff0e"),
)
KAT_FAST_SALT = (
    _SALT_HEAD + "566f6c6174696c6546617374"
    "00113344667799aa00113344667799aa113344667799aa00113344667799aa005e5c020100"
    "3b854b3a5e3efd9422a41ef15e693793ad3e27b085a80b873c16215a565fb799"
    "9b83b76726f6c1391eea8b1dfaaa86f30102a508800200005c020100" + _CREDENTIAL_X
)
KAT_FAST_INFO = "b5667e492d3c2d7ba77c7f80cbd2cb1f57df7fe5a95f3a57105c6154cbff9dac"
KAT_FAST_OKM = (
    "8532f16f80a857b9d052f75c79a419b6864516d1b0a4f405d2dd07893fdf9ded"  # CryptogramSK
    "f2938d3325eb72991efcd79cd5b6bcc729198ae592fb4742464d43ce32e9a4ef"  # SKReader
    "14a03a4339d992b1f0afd4fe2cf2fca2325104e6d20e6c8bd169fd4efc8e960a"  # SKDevice
    "6638ee3ea768531e7cc68804c9a6e8d7463ef8a3a3c04a09215be385418e9e54"  # BleSK
    "017094add69ce75dd38efb30f18852448a8102fb641554ddc86072e2c4187957"  # URSK
)


class TestHmac(unittest.TestCase):
    def test_rfc4231(self):
        for i, (key, msg, mac) in enumerate(HMAC_CASES):
            self.assertEqual(kdf.hmac_sha256(h(key), h(msg)), h(mac), "case %d" % i)

    def test_key_of_exactly_one_block_is_not_hashed(self):
        # A 64-byte key is used as is; hashing it first would give the second MAC
        # (both from Python's hmac module).
        key = bytes(range(64))
        mac = kdf.hmac_sha256(key, b"abc")
        self.assertEqual(mac, h("6ab541b4869dca71c4ca11d8bb1b02533b789a557583161429292c7404bc21f6"))
        self.assertNotEqual(mac, h("0ff76b409c010db3a437f75c4cb80f0d8b19aecc2431088ceb09ec825f160987"))


class TestHkdf(unittest.TestCase):
    def test_rfc5869_extract_and_expand(self):
        for i, (ikm, salt, info, length, prk, okm) in enumerate(HKDF_CASES):
            self.assertEqual(kdf.hkdf_extract(h(salt), h(ikm)), h(prk), "case %d" % (i + 1))
            self.assertEqual(kdf.hkdf_expand(h(prk), h(info), length), h(okm), "case %d" % (i + 1))

    def test_rfc5869_one_call(self):
        for i, (ikm, salt, info, length, prk, okm) in enumerate(HKDF_CASES):
            self.assertEqual(kdf.hkdf_sha256(h(ikm), h(salt), h(info), length), h(okm), "case %d" % (i + 1))

    def test_output_is_a_prefix_of_longer_output(self):
        ikm, salt, info = b"\x0b" * 22, b"salt", b"info"
        full = kdf.hkdf_sha256(ikm, salt, info, 100)
        for n in (0, 1, 31, 32, 33, 64, 99):
            self.assertEqual(kdf.hkdf_sha256(ikm, salt, info, n), full[:n])

    def test_length_limit(self):
        # RFC 5869 allows 255 blocks; the full 8160 bytes would not fit this heap.
        prk = bytes(32)
        self.assertEqual(len(kdf.hkdf_expand(prk, b"", 1000)), 1000)
        with self.assertRaises(ValueError):
            kdf.hkdf_expand(prk, b"", 255 * 32 + 1)


class TestX963(unittest.TestCase):
    def test_cavs_sha256(self):
        for z, info, key_data in X963_CASES:
            self.assertEqual(kdf.x963_kdf_sha256(h(z), h(info), len(key_data) // 2), h(key_data))

    def test_output_is_a_prefix_of_longer_output(self):
        z, info = h(X963_CASES[1][0]), h(X963_CASES[1][1])
        self.assertEqual(kdf.x963_kdf_sha256(z, info, 33), h(X963_CASES[1][2])[:33])


class TestAliroKeySchedule(unittest.TestCase):
    def test_kdh(self):
        self.assertEqual(kdf.x963_kdf_sha256(h(KAT_Z), h(KAT_TXN_ID), 32), h(KAT_KDH))

    def test_volatile_keys(self):
        self.assertEqual(kdf.hkdf_sha256(h(KAT_KDH), h(KAT_SALT_VOLATILE), h(KAT_INFO), 160), h(KAT_OKM_VOLATILE))

    def test_kpersistent(self):
        self.assertEqual(kdf.hkdf_sha256(h(KAT_KDH), h(KAT_SALT_PERSISTENT), h(KAT_INFO), 32), h(KAT_KPERSISTENT))

    def test_step_up_keys(self):
        step_up_sk = h(KAT_OKM_VOLATILE)[64:96]
        for info, okm in KAT_STEPUP:
            self.assertEqual(kdf.hkdf_sha256(step_up_sk, b"", h(info), 32), h(okm))

    def test_volatile_fast_keys(self):
        okm = kdf.hkdf_sha256(h(KAT_KPERSISTENT), h(KAT_FAST_SALT), h(KAT_FAST_INFO), 160)
        self.assertEqual(okm, h(KAT_FAST_OKM))

    def test_extract_once_then_expand(self):
        # The reader extracts per cached key while idle and expands on the tap.
        prk = kdf.hkdf_extract(h(KAT_FAST_SALT), h(KAT_KPERSISTENT))
        self.assertEqual(kdf.hkdf_expand(prk, h(KAT_FAST_INFO), 32), h(KAT_FAST_OKM)[:32])

    def test_expansion_continued_from_its_first_block(self):
        # The fast reader holds T(1) (CryptogramSK) and continues with T(2), T(3).
        prk = kdf.hkdf_extract(h(KAT_FAST_SALT), h(KAT_KPERSISTENT))
        okm = h(KAT_FAST_OKM)
        self.assertEqual(kdf.hkdf_expand(prk, h(KAT_FAST_INFO), 64, okm[:32], 2), okm[32:96])
        self.assertEqual(kdf.hkdf_expand(prk, h(KAT_FAST_INFO), 128, okm[32:64], 3), okm[64:160] + kdf.hkdf_expand(prk, h(KAT_FAST_INFO), 192)[160:])
        for block, counter in ((b"", 2), (okm[:32], 1), (okm[:31], 2), (okm[:32], 0)):
            with self.assertRaises(ValueError):
                kdf.hkdf_expand(prk, h(KAT_FAST_INFO), 32, block, counter)
        with self.assertRaises(ValueError):
            kdf.hkdf_expand(prk, b"", 2 * 32, bytes(32), 255)
        self.assertEqual(len(kdf.hkdf_expand(prk, b"", 32, bytes(32), 255)), 32)


class TestEqual(unittest.TestCase):
    def test_equal_values(self):
        self.assertTrue(equal(b"", b""))
        self.assertTrue(equal(bytes(range(16)), bytes(range(16))))
        self.assertTrue(equal(bytearray(b"tag"), b"tag"))
        self.assertTrue(equal(memoryview(b"xtag")[1:], b"tag"))

    def test_any_differing_byte_or_bit(self):
        base = bytes(range(16))
        for i in (0, 7, 15):
            for bit in (0x01, 0x80):
                other = bytearray(base)
                other[i] ^= bit
                self.assertFalse(equal(base, bytes(other)), "byte %d bit %x" % (i, bit))

    def test_different_lengths(self):
        self.assertFalse(equal(b"tag", b"tag\x00"))
        self.assertFalse(equal(b"", b"\x00"))
        self.assertFalse(equal(bytes(16), bytes(15)))


if __name__ == "__main__":
    unittest.main()
