"""A key directory on the host: a credential key pair, trusted readers, the Kpersistent cache.

Layout (directory 0700, secret files 0600):
  credential.pem        private key, PKCS#8 PEM (never printed)
  credential.pub.pem    public key, SubjectPublicKeyInfo PEM (what `carkey reader enroll` takes)
  trust.json            [{"group_id": hex16, "reader_public_key": hex65, "name": advertised name}, ...]
  kpersistent.json      the Kpersistent cache, per reader identifier (secret)
  shares.json           {group id hex: share document hex} received from owners
  serial.json           {"last": n}: the last serial this owner signed (documents, admin requests)
"""

import json
import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .aliro.kpersistent_cache import CacheFormatError, KpersistentCache
from .errors import CarkeyError, UsageError

CREDENTIAL = "credential.pem"
CREDENTIAL_PUB = "credential.pub.pem"
TRUST = "trust.json"
KPERSISTENT = "kpersistent.json"
SHARES = "shares.json"
SERIAL = "serial.json"


def _write_secret(path: Path, data: bytes):
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _write_public(path: Path, data: bytes):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def public_key_bytes(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def load_public_key_pem(path) -> bytes:
    """A SubjectPublicKeyInfo PEM file -> 65-byte uncompressed P-256 point."""
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except FileNotFoundError:
        raise CarkeyError(f"{path}: no such file") from None
    except ValueError as e:
        raise CarkeyError(f"{path}: not a PEM public key ({e})") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise CarkeyError(f"{path}: not a P-256 public key")
    return public_key_bytes(key)


def parse_hex(text: str, length: int, what: str) -> bytes:
    try:
        value = bytes.fromhex(text)
    except ValueError:
        raise UsageError(f"{what}: not hexadecimal: {text!r}") from None
    if len(value) != length:
        raise UsageError(f"{what}: expected {length} bytes, got {len(value)}")
    return value


class KeyDir:
    def __init__(self, path):
        self.path = Path(path)

    def _file(self, name):
        return self.path / name

    def init(self, force=False):
        """Create the directory and a new credential key pair; returns the public key (65 bytes)."""
        if self._file(CREDENTIAL).exists() and not force:
            raise CarkeyError(f"{self.path} already holds a credential (use --force to replace it)")
        self.path.mkdir(parents=True, exist_ok=True)
        os.chmod(self.path, 0o700)
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _write_secret(self._file(CREDENTIAL), pem)
        pub_pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        _write_public(self._file(CREDENTIAL_PUB), pub_pem)
        if not self._file(TRUST).exists():
            _write_public(self._file(TRUST), b"[]\n")
        return public_key_bytes(key.public_key())

    def private_key(self):
        path = self._file(CREDENTIAL)
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            raise CarkeyError(f"{self.path}: no credential; run `carkey phone init --keys {self.path}`") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise CarkeyError(f"{path}: permissions {oct(mode & 0o777)} are too open; run chmod 600 {path}")
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except ValueError as e:
            raise CarkeyError(f"{path}: not a PEM private key ({e})") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise CarkeyError(f"{path}: not a P-256 private key")
        return key

    def public_key(self) -> bytes:
        return public_key_bytes(self.private_key().public_key())

    def trusted_readers(self):
        """{group_id: reader_public_key} as bytes."""
        path = self._file(TRUST)
        if not path.exists():
            return {}
        try:
            entries = json.loads(path.read_text())
            return {bytes.fromhex(e["group_id"]): bytes.fromhex(e["reader_public_key"]) for e in entries}
        except (ValueError, KeyError, TypeError) as e:
            raise CarkeyError(f"{path}: damaged trust list ({e})") from None

    def trusted_cars(self) -> list[dict]:
        """[{"name", "group_id", "reader_public_key"}] (hex), the name as the car advertises it."""
        from .ble_phone import device_name

        names = self._names()
        return [{"name": names.get(g) or device_name(g), "group_id": g.hex(), "reader_public_key": k.hex()}
                for g, k in sorted(self.trusted_readers().items())]

    def _names(self):
        path = self._file(TRUST)
        if not path.exists():
            return {}
        return {bytes.fromhex(e["group_id"]): e["name"] for e in json.loads(path.read_text()) if e.get("name")}

    def trust(self, group_id: bytes, reader_public_key: bytes, name: str | None = None):
        if len(group_id) != 16 or len(reader_public_key) != 65 or reader_public_key[0] != 4:
            raise CarkeyError("a trusted reader needs a 16-byte group id and a 65-byte uncompressed public key")
        try:
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), reader_public_key)
        except ValueError:
            raise CarkeyError("reader public key is not a point on P-256") from None
        readers = self.trusted_readers()
        names = self._names()
        readers[group_id] = reader_public_key
        if name:
            names[group_id] = name
        entries = [dict({"group_id": g.hex(), "reader_public_key": k.hex()}, **({"name": names[g]} if g in names else {}))
                   for g, k in sorted(readers.items())]
        self.path.mkdir(parents=True, exist_ok=True)
        _write_public(self._file(TRUST), (json.dumps(entries, indent=2) + "\n").encode())

    def kpersistent_cache(self) -> KpersistentCache:
        path = self._file(KPERSISTENT)
        if not path.exists():
            return KpersistentCache()
        try:
            return KpersistentCache.load(path)
        except (CacheFormatError, ValueError) as e:
            raise CarkeyError(f"{path}: damaged Kpersistent cache ({e})") from None

    def save_kpersistent_cache(self, cache: KpersistentCache):
        cache.save(self._file(KPERSISTENT))

    def next_serial(self) -> int:
        """The serial for this owner's next signed document: above the last one and at
        least the Unix time (docs/PROTOCOL.md §5), recorded before it is used."""
        import time

        path = self._file(SERIAL)
        last = 0
        if path.exists():
            try:
                last = int(json.loads(path.read_text())["last"])
            except (ValueError, KeyError, TypeError) as e:
                raise CarkeyError(f"{path}: damaged serial record ({e})") from None
        serial = max(last + 1, int(time.time()))
        if serial > 0xFFFFFFFF:
            raise CarkeyError("document serials are exhausted (past 2106)")
        _write_public(path, (json.dumps({"last": serial}) + "\n").encode())
        return serial

    def share_documents(self):
        """{reader group id: share document} this device presents to readers it is not enrolled in."""
        path = self._file(SHARES)
        if not path.exists():
            return {}
        try:
            return {bytes.fromhex(g): bytes.fromhex(d) for g, d in json.loads(path.read_text()).items()}
        except (ValueError, AttributeError) as e:
            raise CarkeyError(f"{path}: damaged share list ({e})") from None

    def add_share_document(self, group_id: bytes, document: bytes):
        docs = self.share_documents()
        docs[group_id] = document
        self._save_shares(docs)

    def remove_share_document(self, group_id: bytes):
        """The reader accepted it: this device is enrolled there now and presents it no more."""
        docs = self.share_documents()
        if docs.pop(group_id, None) is not None:
            self._save_shares(docs)

    def _save_shares(self, docs):
        data = json.dumps({g.hex(): d.hex() for g, d in sorted(docs.items())}, indent=2) + "\n"
        _write_public(self._file(SHARES), data.encode())
