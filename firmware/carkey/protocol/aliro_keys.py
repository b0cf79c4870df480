# carkey — Aliro expedited-phase key schedule: Kdh, HKDF salts and splits, Kpersistent, signed data.
# SPDX-License-Identifier: MIT
#
# Both ends compute the same values from what SELECT and AUTH0 carried, so the
# reader and the key fob share this module. A Transcript lays the salt out once
# in one buffer; the 12-byte label and the trailing credential X are rewritten in
# place for each derivation instead of concatenating ~170-byte strings.

import hashlib
from micropython import const

from carkey.crypto import kdf

AID = b"\xa0\x00\x00\x09\x09\xac\xce\x55\x01"  # Aliro expedited phase (SELECT by name)

LABEL_VOLATILE = b"Volatile****"
LABEL_VOLATILE_FAST = b"VolatileFast"
LABEL_PERSISTENT = b"Persistent**"

USAGE_READER = b"\x41\x5d\x95\x69"  # 93 04 value when the reader signs
USAGE_DEVICE = b"\x4e\x88\x7b\x4c"  # 93 04 value when the user device signs

PROTOCOL_VERSION = b"\x01\x00"
# SELECT answer's proprietary object as carkey's devices and the NXP device send it:
# A5 [80 02 0000 application type][5C 02 0100 supported versions].
DEFAULT_PROPRIETARY = b"\xa5\x08\x80\x02\x00\x00\x5c\x02\x01\x00"

KEY_LEN = const(32)
_INTERFACE_NFC = const(0x5E)  # NFC interface byte; carkey's GATT link carries it unchanged
_SPLIT = const(160)  # five 32-byte keys from one HKDF
_FAST_CHANNEL = const(64)  # SKReader and SKDevice of the fast split

# Salt layout: reader key X | label | reader id | 5E | 5C 02 version | reader eph X |
# transaction id | flag (AUTH0 41 || 42 values) | A5 object [| credential key X]
_S_LABEL = const(32)
_S_RID = const(44)
_S_IFACE = const(76)
_S_VERSION = const(77)
_S_EPH = const(81)
_S_TXID = const(113)
_S_FLAG = const(129)
_S_A5 = const(131)

# Signed data: 4D 20 reader id | 86 20 device eph X | 87 20 reader eph X | 4C 10 txid | 93 04 usage
_D_RID = const(2)
_D_DEV = const(36)
_D_EPH = const(70)
_D_TXID = const(104)
_D_USAGE = const(122)
_D_LEN = const(126)


def key_slot(public_key):
    # carkey's own choice (the Aliro derivation is not public): SHA-1 of the 65-byte point, first 8 bytes.
    return hashlib.sha1(public_key).digest()[:8]


def kdh(shared_x, transaction_id):
    # ANSI X9.63 KDF (SHA-256) over the ECDH X coordinate, SharedInfo = transaction id.
    return kdf.x963_kdf_sha256(shared_x, transaction_id, KEY_LEN)


def _split(okm):
    return okm[0:32], okm[32:64], okm[64:96], okm[96:128], okm[128:160]


class Transcript:
    # What both ends know once AUTH0 is answered; the device's ephemeral key is set
    # when it arrives (set_device_ephemeral), everything else at construction.

    def __init__(self, reader_public_key, reader_identifier, reader_ephemeral_public_key,
                 transaction_id, flag, proprietary=DEFAULT_PROPRIETARY, version=PROTOCOL_VERSION):
        if len(reader_identifier) != 32 or len(transaction_id) != 16 or len(flag) != 2:
            raise ValueError("reader id 32, transaction id 16, flag 2 bytes")
        if len(reader_public_key) != 65 or len(reader_ephemeral_public_key) != 65:
            raise ValueError("public keys are 65-byte points")
        a5_end = _S_A5 + len(proprietary)
        s = bytearray(a5_end + KEY_LEN)
        s[0:32] = reader_public_key[1:33]
        s[_S_RID:_S_IFACE] = reader_identifier
        s[_S_IFACE] = _INTERFACE_NFC
        s[_S_VERSION] = 0x5C
        s[_S_VERSION + 1] = 2
        s[_S_VERSION + 2 : _S_EPH] = version
        s[_S_EPH:_S_TXID] = reader_ephemeral_public_key[1:33]
        s[_S_TXID:_S_FLAG] = transaction_id
        s[_S_FLAG:_S_A5] = flag
        s[_S_A5:a5_end] = proprietary
        self._salt = s
        self._salt_mv = memoryview(s)
        self._a5_end = a5_end
        d = bytearray(_D_LEN)
        d[0] = 0x4D
        d[1] = 32
        d[_D_RID:34] = reader_identifier
        d[34] = 0x86
        d[35] = 32
        d[68] = 0x87
        d[69] = 32
        d[_D_EPH:102] = reader_ephemeral_public_key[1:33]
        d[102] = 0x4C
        d[103] = 16
        d[_D_TXID:120] = transaction_id
        d[120] = 0x93
        d[121] = 4
        self._signed = d
        self.info = None  # device ephemeral X: the HKDF info (no vendor extensions)

    def set_device_ephemeral(self, device_ephemeral_public_key):
        if len(device_ephemeral_public_key) != 65:
            raise ValueError("device ephemeral key is a 65-byte point")
        self.info = bytes(device_ephemeral_public_key[1:33])
        self._signed[_D_DEV:68] = self.info

    def salt(self, label, credential_public_key=None):
        # The salt for label, as a view into the shared buffer (valid until the next call).
        s = self._salt
        s[_S_LABEL:_S_RID] = label
        if label == LABEL_VOLATILE:
            return self._salt_mv[: self._a5_end]
        if credential_public_key is None:
            raise ValueError("this salt needs the credential public key")
        s[self._a5_end :] = credential_public_key[1:33]
        return self._salt_mv

    def signed_data(self, usage):
        self._signed[_D_USAGE:] = usage
        return self._signed

    def digest(self, usage):
        return hashlib.sha256(self.signed_data(usage)).digest()

    # --- derivations -------------------------------------------------------------

    def volatile_keys(self, kdh_value):
        # Standard: SKReader, SKDevice, StepUpSK, BleSK, URSK.
        prk = kdf.hkdf_extract(self.salt(LABEL_VOLATILE), kdh_value)
        return _split(kdf.hkdf_expand(prk, self.info, _SPLIT))

    def kpersistent(self, kdh_value, credential_public_key):
        prk = kdf.hkdf_extract(self.salt(LABEL_PERSISTENT, credential_public_key), kdh_value)
        return kdf.hkdf_expand(prk, self.info, KEY_LEN)

    def fast_prk(self, kpersistent, credential_public_key):
        # HKDF-Extract for VolatileFast: needs no device input, so it can run before
        # the AUTH0 answer arrives.
        return kdf.hkdf_extract(self.salt(LABEL_VOLATILE_FAST, credential_public_key), kpersistent)

    def cryptogram_sk(self, fast_prk):
        # The first 32 bytes of the VolatileFast expansion (T(1) does not depend on L).
        return kdf.hkdf_expand(fast_prk, self.info, KEY_LEN)

    def fast_keys(self, fast_prk):
        # Fast: CryptogramSK, SKReader, SKDevice, BleSK, URSK.
        return _split(kdf.hkdf_expand(fast_prk, self.info, _SPLIT))

    def fast_channel_keys(self, fast_prk, cryptogram_sk):
        # (SKReader, SKDevice) of fast_keys, all a reader's channel needs: T(2) and T(3)
        # of the expansion whose T(1) is cryptogram_sk (HKDF's T(i) do not depend on L),
        # two HMAC blocks instead of five.
        okm = kdf.hkdf_expand(fast_prk, self.info, _FAST_CHANNEL, cryptogram_sk, 2)
        return okm[0:32], okm[32:64]
