"""The share file: what an owner hands a friend, so `carkey phone import-share` is the friend's one step.

docs/PROTOCOL.md §5a. A JSON object with hex fields: the car's identity (advertised name,
reader group id, reader public key), the share document the car judges (§5), and the
owner's signature binding the two, made with the key that signed the document:

    {"carkey_share": 1,
     "car": {"name": "carkey-1a2b3c4d", "group_id": HEX16, "reader_public_key": HEX65},
     "document": HEX,             # the E2 share document, exactly as the car receives it
     "car_signature": HEX64}      # ECDSA P-256 r || s, by the document's owner key (5A)

car_signature covers SHA-256("carkey/share-file/v1" ‖ 00 ‖ group id (16) ‖ reader public
key (65) ‖ name length (1) ‖ name (UTF-8) ‖ SHA-256(document) (32)). The group id must be
the document's own (inside its signature), so nobody can pair a valid share with another
car's identity without the owner's key.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from . import documents

FORMAT = 1
CONTEXT = b"carkey/share-file/v1\x00"
MAX_NAME = 32


class ShareFileError(ValueError):
    """Not a share file, or one whose parts do not belong together."""


def signed_data(group_id: bytes, reader_public_key: bytes, name: str, document: bytes) -> bytes:
    raw_name = name.encode()
    return (CONTEXT + group_id + reader_public_key + bytes([len(raw_name)]) + raw_name
            + hashlib.sha256(document).digest())


@dataclass(frozen=True)
class ShareFile:
    name: str
    group_id: bytes
    reader_public_key: bytes
    document: bytes
    car_signature: bytes
    share: documents.Share

    def to_json(self) -> str:
        return json.dumps({
            "carkey_share": FORMAT,
            "car": {"name": self.name, "group_id": self.group_id.hex(),
                    "reader_public_key": self.reader_public_key.hex()},
            "document": self.document.hex(),
            "car_signature": self.car_signature.hex(),
        }, indent=2) + "\n"


def make(owner_key, document: bytes, group_id: bytes, reader_public_key: bytes, name: str) -> ShareFile:
    """Wrap a share document with the car's identity, signed by the owner key that signed it."""
    share = documents.parse_share(document)
    if share.group_id != group_id:
        raise ShareFileError("the share document is bound to another car")
    _check_identity(group_id, reader_public_key, name)
    signature = _sign(owner_key, signed_data(group_id, reader_public_key, name, document))
    return ShareFile(name, group_id, reader_public_key, document, signature, share)


def _sign(owner_key, data: bytes) -> bytes:
    # The same ECDSA P-256 / SHA-256 raw r || s as the documents, over this file's context.
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    r, s = decode_dss_signature(documents._private_key(owner_key).sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _verify(owner_pub: bytes, data: bytes, signature: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    if len(signature) != 64:
        return False
    try:
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), owner_pub)
        der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
        key.verify(der, data, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


def _check_identity(group_id: bytes, reader_public_key: bytes, name: str):
    if len(group_id) != 16:
        raise ShareFileError("car.group_id: 16 bytes expected")
    if len(reader_public_key) != 65 or reader_public_key[0] != 0x04:
        raise ShareFileError("car.reader_public_key: 65 bytes 04 || X || Y expected")
    if not isinstance(name, str) or not 0 < len(name.encode()) <= MAX_NAME or not name.isprintable():
        raise ShareFileError(f"car.name: 1..{MAX_NAME} printable characters expected")


def _hex(obj, key, what):
    value = obj.get(key)
    if not isinstance(value, str):
        raise ShareFileError(f"{what}: missing")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise ShareFileError(f"{what}: not hexadecimal") from None


def parse(data: bytes) -> ShareFile:
    """A share file whose document is well formed and whose two signatures verify."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ShareFileError("not a JSON share file") from None
    if not isinstance(obj, dict) or "carkey_share" not in obj:
        raise ShareFileError("not a carkey share file (no \"carkey_share\" field)")
    if obj["carkey_share"] != FORMAT:
        raise ShareFileError(f"share file format {obj['carkey_share']!r} is not supported (this tool reads {FORMAT})")
    car = obj.get("car")
    if not isinstance(car, dict):
        raise ShareFileError("car: missing")
    group_id = _hex(car, "group_id", "car.group_id")
    reader_public_key = _hex(car, "reader_public_key", "car.reader_public_key")
    name = car.get("name")
    _check_identity(group_id, reader_public_key, name)
    document = _hex(obj, "document", "document")
    signature = _hex(obj, "car_signature", "car_signature")
    try:
        share = documents.parse_share(document)
    except documents.DocumentError as e:
        raise ShareFileError(f"document: not a share document ({e})") from None
    if share.group_id != group_id:
        raise ShareFileError("the share document is bound to another car than the file names")
    if not share.verify():
        raise ShareFileError("the share document's signature does not verify")
    if not _verify(share.owner_pub, signed_data(group_id, reader_public_key, name, document), signature):
        raise ShareFileError("car_signature does not verify: the car's identity was not signed by the sharing owner")
    return ShareFile(name, group_id, reader_public_key, document, signature, share)
