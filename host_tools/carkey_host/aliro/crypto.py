"""The Aliro expedited-phase key schedule, signatures and cryptogram, on `cryptography`.

Both sides of a transaction compute the same values from a `Transcript` (what SELECT
and AUTH0 carried), so a reader and a user device can share this module.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.x963kdf import X963KDF

from . import tlv

CURVE = ec.SECP256R1()

LABEL_VOLATILE = b"Volatile****"
LABEL_VOLATILE_FAST = b"VolatileFast"
LABEL_PERSISTENT = b"Persistent**"

USAGE_READER = bytes.fromhex("415D9569")
USAGE_DEVICE = bytes.fromhex("4E887B4C")

INTERFACE_NFC = 0x5E  # carkey's GATT transport carries the NFC bytes, this byte included
PROTOCOL_VERSION = bytes.fromhex("0100")
TAG_PROPRIETARY = 0xA5

CRYPTOGRAM_IV = bytes(12)
TIMESTAMP_LEN = 20
KEY_LEN = 32
SIGNATURE_LEN = 64
PUBLIC_KEY_LEN = 65


class InvalidPublicKey(ValueError):
    """Bytes that are not an uncompressed point on P-256."""


class CryptogramError(ValueError):
    """A cryptogram that does not open under the given CryptogramSK."""


# --- keys -----------------------------------------------------------------------


def generate_private_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(CURVE)


def private_key_from_bytes(scalar: bytes) -> ec.EllipticCurvePrivateKey:
    if len(scalar) != 32:
        raise ValueError("a P-256 private key is 32 bytes")
    return ec.derive_private_key(int.from_bytes(scalar, "big"), CURVE)


def private_key_to_bytes(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_numbers().private_value.to_bytes(32, "big")


def public_key_bytes(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> bytes:
    """The 65-byte uncompressed point 04 || X || Y."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        key = key.public_key()
    numbers = key.public_numbers()
    return b"\x04" + numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")


def public_key_from_bytes(point: bytes) -> ec.EllipticCurvePublicKey:
    """Load an uncompressed point, refusing anything not on the curve."""
    point = bytes(point)
    if len(point) != PUBLIC_KEY_LEN or point[0] != 0x04:
        raise InvalidPublicKey("expected a 65-byte uncompressed P-256 point")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(CURVE, point)
    except ValueError as exc:
        raise InvalidPublicKey("point is not on P-256") from exc


def x_of(point: bytes) -> bytes:
    """X coordinate (32 bytes) of a 65-byte uncompressed point."""
    if len(point) != PUBLIC_KEY_LEN:
        raise InvalidPublicKey("expected a 65-byte uncompressed P-256 point")
    return bytes(point[1:33])


def key_slot(public_key: bytes) -> bytes:
    """carkey's 8-byte key slot: SHA-1 of the 65-byte public key, first 8 bytes.

    The derivation in Aliro itself is not public; this is carkey's own choice.
    """
    return hashlib.sha1(bytes(public_key)).digest()[:8]


# --- key agreement and derivation ---------------------------------------------------


def ecdh_shared_x(private_key: ec.EllipticCurvePrivateKey, peer_public_key: bytes) -> bytes:
    """Z: the X coordinate of private * peer, 32 bytes."""
    return private_key.exchange(ec.ECDH(), public_key_from_bytes(peer_public_key))


def derive_kdh(shared_x: bytes, transaction_id: bytes) -> bytes:
    """ANSI X9.63 KDF (SHA-256) over Z with the transaction id as SharedInfo."""
    return X963KDF(algorithm=hashes.SHA256(), length=KEY_LEN, sharedinfo=transaction_id).derive(
        shared_x
    )


def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def proprietary_tlv(
    application_type: bytes = b"\x00\x00",
    versions: tuple[bytes, ...] = (PROTOCOL_VERSION,),
    extra: bytes = b"",
) -> bytes:
    """The SELECT answer's A5 object: 80 type, 5C supported versions, then e.g. 7F66, B3.

    The whole object (tag and length included) enters every HKDF salt, so a device
    must put exactly these bytes both in its SELECT answer and in its salts.
    """
    body = tlv.encode(0x80, application_type) + tlv.encode(0x5C, b"".join(versions)) + extra
    return tlv.encode(TAG_PROPRIETARY, body)


@dataclass(frozen=True)
class Transcript:
    """What both sides know once AUTH0 is answered: the inputs of every salt and info."""

    reader_group_public_key: bytes  # reader long-term key, 65 bytes
    reader_identifier: bytes  # group id (16) || sub id (16)
    reader_ephemeral_public_key: bytes  # 65 bytes
    device_ephemeral_public_key: bytes  # 65 bytes
    transaction_id: bytes  # 16 bytes
    flag: bytes  # AUTH0 tag 41 value || tag 42 value
    proprietary_tlv: bytes  # the A5 object from the SELECT answer
    credential_public_key: bytes | None = None  # long-term, for Persistent**/VolatileFast
    protocol_version: bytes = PROTOCOL_VERSION
    interface_byte: int = INTERFACE_NFC
    info_extension: bytes = b""  # vendor extension data appended to info

    def salt(self, label: bytes) -> bytes:
        if len(label) != 12:
            raise ValueError("salt label is 12 bytes")
        salt = (
            x_of(self.reader_group_public_key)
            + label
            + self.reader_identifier
            + bytes([self.interface_byte])
            + tlv.encode(0x5C, self.protocol_version)
            + x_of(self.reader_ephemeral_public_key)
            + self.transaction_id
            + self.flag
            + self.proprietary_tlv
        )
        if label in (LABEL_VOLATILE_FAST, LABEL_PERSISTENT):
            # Long-term credential key X, as both sides of the NXP implementation use it.
            if self.credential_public_key is None:
                raise ValueError(f"{label.decode()} salt needs the credential public key")
            salt += x_of(self.credential_public_key)
        return salt

    def info(self) -> bytes:
        return x_of(self.device_ephemeral_public_key) + self.info_extension


@dataclass(frozen=True)
class SessionKeys:
    sk_reader: bytes
    sk_device: bytes
    ble_sk: bytes
    ursk: bytes
    step_up_sk: bytes | None = None  # standard transactions only
    cryptogram_sk: bytes | None = None  # fast transactions only

    def __repr__(self) -> str:
        # Keys never end up in logs or assertion messages by accident.
        return "SessionKeys(<secret>)"


def _split(okm: bytes) -> list[bytes]:
    return [okm[i : i + KEY_LEN] for i in range(0, len(okm), KEY_LEN)]


def derive_standard_keys(kdh: bytes, transcript: Transcript) -> SessionKeys:
    okm = hkdf_sha256(kdh, transcript.salt(LABEL_VOLATILE), transcript.info(), 5 * KEY_LEN)
    sk_reader, sk_device, step_up, ble, ursk = _split(okm)
    return SessionKeys(sk_reader, sk_device, ble, ursk, step_up_sk=step_up)


def derive_kpersistent(kdh: bytes, transcript: Transcript) -> bytes:
    return hkdf_sha256(kdh, transcript.salt(LABEL_PERSISTENT), transcript.info(), KEY_LEN)


def derive_fast_keys(kpersistent: bytes, transcript: Transcript) -> SessionKeys:
    okm = hkdf_sha256(kpersistent, transcript.salt(LABEL_VOLATILE_FAST), transcript.info(), 5 * KEY_LEN)
    cryptogram_sk, sk_reader, sk_device, ble, ursk = _split(okm)
    return SessionKeys(sk_reader, sk_device, ble, ursk, cryptogram_sk=cryptogram_sk)


def derive_step_up_keys(step_up_sk: bytes) -> tuple[bytes, bytes]:
    """(StepUpSKReader, StepUpSKDevice): HKDF with an empty salt, info 'SKReader'/'SKDevice'."""
    return (
        hkdf_sha256(step_up_sk, b"", b"SKReader", KEY_LEN),
        hkdf_sha256(step_up_sk, b"", b"SKDevice", KEY_LEN),
    )


# --- signatures -----------------------------------------------------------------


def signed_data(transcript: Transcript, usage: bytes) -> bytes:
    """4D reader id || 86 device eph X || 87 reader eph X || 4C transaction id || 93 usage."""
    return tlv.encode_all(
        [
            (0x4D, transcript.reader_identifier),
            (0x86, x_of(transcript.device_ephemeral_public_key)),
            (0x87, x_of(transcript.reader_ephemeral_public_key)),
            (0x4C, transcript.transaction_id),
            (0x93, usage),
        ]
    )


def sign(private_key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """ECDSA P-256/SHA-256 with RFC 6979 nonces, as raw r || s (64 bytes)."""
    der = private_key.sign(data, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def verify(public_key: bytes, data: bytes, signature: bytes) -> bool:
    """True only for a valid raw r || s signature by the 65-byte ``public_key``."""
    if len(signature) != SIGNATURE_LEN:
        return False
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    try:
        public_key_from_bytes(public_key).verify(
            encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256())
        )
    except InvalidSignature:
        return False
    return True


# --- cryptogram (fast transactions) -----------------------------------------------------


def cryptogram_plaintext(
    signaling_bitmap: bytes,
    credential_timestamp: bytes = bytes(TIMESTAMP_LEN),
    revocation_timestamp: bytes = bytes(TIMESTAMP_LEN),
) -> bytes:
    """5E bitmap || 91 credential timestamp || 92 revocation timestamp (48 bytes).

    Zero timestamps mean no access or revocation document is held.
    """
    if len(signaling_bitmap) != 2:
        raise ValueError("signaling bitmap is 2 bytes")
    if len(credential_timestamp) != TIMESTAMP_LEN or len(revocation_timestamp) != TIMESTAMP_LEN:
        raise ValueError("timestamps are 20 bytes")
    return tlv.encode_all(
        [(0x5E, signaling_bitmap), (0x91, credential_timestamp), (0x92, revocation_timestamp)]
    )


def seal_cryptogram(cryptogram_sk: bytes, plaintext: bytes) -> bytes:
    """AES-256-GCM under CryptogramSK, zero IV, no AAD: ciphertext || tag."""
    return AESGCM(cryptogram_sk).encrypt(CRYPTOGRAM_IV, plaintext, None)


def open_cryptogram(cryptogram_sk: bytes, cryptogram: bytes) -> bytes:
    try:
        return AESGCM(cryptogram_sk).decrypt(CRYPTOGRAM_IV, bytes(cryptogram), None)
    except InvalidTag as exc:
        raise CryptogramError("cryptogram does not open under this key") from exc
