"""A user device's bounded cache of Kpersistent keys, one per reader identifier.

Kpersistent lets a later fast transaction skip ECDH and signatures, so it is as
sensitive as a credential: the JSON file is written with mode 0600 and replaced
atomically. Least recently used entries go first when the cache is full.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from pathlib import Path
from typing import Mapping

READER_IDENTIFIER_LEN = 32
KEY_LEN = 32
FORMAT_VERSION = 1
DEFAULT_MAX_ENTRIES = 32


class CacheFormatError(ValueError):
    """A stored cache that does not have the expected shape."""


class KpersistentCache:
    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES):
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._entries: OrderedDict[bytes, bytes] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, reader_identifier: bytes) -> bool:
        return bytes(reader_identifier) in self._entries

    def __repr__(self) -> str:
        return f"KpersistentCache({len(self)} of {self.max_entries} entries)"

    def get(self, reader_identifier: bytes) -> bytes | None:
        reader_identifier = bytes(reader_identifier)
        key = self._entries.get(reader_identifier)
        if key is not None:
            self._entries.move_to_end(reader_identifier)
        return key

    def put(self, reader_identifier: bytes, kpersistent: bytes) -> None:
        reader_identifier, kpersistent = bytes(reader_identifier), bytes(kpersistent)
        if len(reader_identifier) != READER_IDENTIFIER_LEN or len(kpersistent) != KEY_LEN:
            raise ValueError("reader identifier and Kpersistent are 32 bytes each")
        self._entries[reader_identifier] = kpersistent
        self._entries.move_to_end(reader_identifier)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def remove(self, reader_identifier: bytes) -> None:
        self._entries.pop(bytes(reader_identifier), None)

    def clear(self) -> None:
        self._entries.clear()

    def items(self) -> list[tuple[bytes, bytes]]:
        """(reader identifier, Kpersistent) pairs, oldest first."""
        return list(self._entries.items())

    @classmethod
    def from_mapping(
        cls, mapping: Mapping[bytes, bytes], max_entries: int = DEFAULT_MAX_ENTRIES
    ) -> "KpersistentCache":
        """A cache filled from a plain {reader identifier: Kpersistent} mapping, in its order."""
        cache = cls(max_entries)
        for reader_identifier, kpersistent in mapping.items():
            cache.put(reader_identifier, kpersistent)
        return cache

    def to_dict(self) -> dict:
        """JSON-ready form, oldest entry first."""
        return {
            "format": FORMAT_VERSION,
            "max_entries": self.max_entries,
            "entries": [
                {"reader_identifier": rid.hex(), "kpersistent": key.hex()}
                for rid, key in self._entries.items()
            ],
        }

    @classmethod
    def from_dict(cls, data: dict) -> "KpersistentCache":
        try:
            if data["format"] != FORMAT_VERSION:
                raise CacheFormatError(f"unsupported cache format {data['format']!r}")
            cache = cls(int(data["max_entries"]))
            for entry in data["entries"]:
                cache.put(
                    bytes.fromhex(entry["reader_identifier"]), bytes.fromhex(entry["kpersistent"])
                )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, CacheFormatError):
                raise
            raise CacheFormatError(f"malformed Kpersistent cache: {exc}") from exc
        return cache

    def save(self, path: str | os.PathLike) -> None:
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self.to_dict(), f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike, max_entries: int = DEFAULT_MAX_ENTRIES) -> "KpersistentCache":
        """The cache stored at ``path``, or an empty one if there is no file yet."""
        path = Path(path)
        if not path.exists():
            return cls(max_entries)
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise CacheFormatError(f"{path}: not JSON") from exc
        return cls.from_dict(data)
