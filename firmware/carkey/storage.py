# carkey — power-cut-safe record files: two checksummed copies, the newest intact one wins.
# SPDX-License-Identifier: MIT
#
# A record `name` in directory `dir` lives in `dir/name.a` and `dir/name.b`. Each copy
# is a 20-byte header (docs/STORAGE.md) followed by the body. A save rewrites the copy
# that did not win the last load, so the winner stays untouched until the new copy is
# complete; a power cut at any instant leaves at least one intact copy. The very first
# save goes through `name.t` and a rename, so a torn first write reads as "no state
# yet" and any later state where no copy is intact is reported as corruption.

import os
import struct
from binascii import crc32
from micropython import const

MAGIC = b"CKST"
VERSION = const(1)
HEADER = ">4sHHIII"  # magic, format version, reserved (0), generation, body length, CRC32
HEADER_SIZE = const(20)
_CRC_OFFSET = const(16)  # the CRC covers the header before it, then the body
_CHUNK = const(128)  # read buffer for streaming CRC checks
_HALF = const(0x80000000)  # generations compare modulo 2**32
_MASK = const(0xFFFFFFFF)
_SUFFIXES = (".a", ".b")


class StorageError(ValueError):
    """Copies of a record exist but none of them is intact."""

    def __init__(self, name, reason):
        super().__init__("record %s: %s" % (name, reason))


def _sync():
    # ESP32 builds have os.sync(); the Unix port does not, and closing already
    # hands the data to the host OS there.
    sync = getattr(os, "sync", None)
    if sync is not None:
        sync()


def _path(dir, name, suffix):
    return dir + "/" + name + suffix


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def newer(a, b):
    """True if generation a was written after generation b (wrap-around safe)."""
    return a != b and ((a - b) & _MASK) < _HALF


def _check(path):
    """Generation of an intact copy; None if missing or damaged; -1 - version for
    a copy in a format version this firmware does not know."""
    try:
        f = open(path, "rb")
    except OSError:
        return None
    with f:
        head = f.read(HEADER_SIZE)
        if len(head) != HEADER_SIZE:
            return None
        magic, version, _, gen, length, crc = struct.unpack(HEADER, head)
        if magic != MAGIC:
            return None
        if version != VERSION:
            return -1 - version
        # Stream the body so a corrupt length field can never cause a large allocation.
        calc = crc32(memoryview(head)[:_CRC_OFFSET])
        buf = bytearray(_CHUNK)
        left = length
        while left:
            n = f.readinto(buf)
            if not n:
                return None
            if n > left:
                return None  # longer than its header says: not a copy we wrote
            calc = crc32(memoryview(buf)[:n], calc)
            left -= n
        if f.read(1) or calc != crc:
            return None
    return gen


def _scan(dir, name):
    """(winner index or None, winner generation, any copy file present, unknown version)."""
    best = None
    best_gen = 0
    present = False
    unknown = None
    for i in range(2):
        path = _path(dir, name, _SUFFIXES[i])
        gen = _check(path)
        if gen is None:
            present = present or _exists(path)
            continue
        present = True
        if gen < 0:
            unknown = -1 - gen
        elif best is None or newer(gen, best_gen):
            best, best_gen = i, gen
    return best, best_gen, present, unknown


def load(dir, name):
    """Body of the newest intact copy, None if the record was never saved.

    Raises StorageError when copies exist but none is intact."""
    return load_with(dir, name, _read_all)


def _read_all(f, length):
    return f.read(length)


def load_with(dir, name, read_body):
    """Stream the newest intact copy: returns read_body(file, length) with the file
    positioned at the body, or None if the record was never saved. Lets a caller
    parse a large record piece by piece instead of holding it whole in RAM.

    Raises StorageError when copies exist but none is intact."""
    best, _, present, unknown = _scan(dir, name)
    if best is None:
        if unknown is not None:
            raise StorageError(name, "unsupported format version %d" % unknown)
        if present:
            raise StorageError(name, "no intact copy")
        return None
    with open(_path(dir, name, _SUFFIXES[best]), "rb") as f:
        length = struct.unpack(HEADER, f.read(HEADER_SIZE))[4]
        return read_body(f, length)


class _Sink:
    """Where a body goes: checksum only (first pass) or checksum and file (second)."""

    def __init__(self, f, crc):
        self._f = f
        self.crc = crc
        self.length = 0

    def write(self, buf):
        self.crc = crc32(buf, self.crc)
        self.length += len(buf)
        if self._f is not None:
            self._f.write(buf)


def _write(path, gen, length, write_body):
    head = bytearray(HEADER_SIZE)
    struct.pack_into(HEADER, head, 0, MAGIC, VERSION, 0, gen, length, 0)
    # Checksum pass first, so the header goes out complete, ahead of the body.
    sink = _Sink(None, crc32(memoryview(head)[:_CRC_OFFSET]))
    write_body(sink)
    if sink.length != length:
        raise ValueError("body is %d bytes, declared %d" % (sink.length, length))
    struct.pack_into(">I", head, _CRC_OFFSET, sink.crc)
    with open(path, "wb") as f:
        f.write(head)
        write_body(_Sink(f, 0))
        f.flush()
    _sync()


def save(dir, name, body):
    """Store body (bytes-like) as the new state of record name; returns its generation."""
    return save_with(dir, name, len(body), lambda out: out.write(body))


def save_with(dir, name, length, write_body):
    """Store a body of length bytes produced by write_body(out), which calls
    out.write(chunk). It runs twice (checksum pass, then write pass) and must
    produce the same bytes both times; a large record never has to sit whole
    in RAM. Returns the new generation."""
    try:
        os.mkdir(dir)
    except OSError:
        pass  # exists; any other problem surfaces at open()
    best, best_gen, present, _ = _scan(dir, name)
    if best is not None:
        gen = (best_gen + 1) & _MASK
        _write(_path(dir, name, _SUFFIXES[1 - best]), gen, length, write_body)
        return gen
    if present:
        # Already corrupt: overwrite in place, nothing intact is left to protect.
        _write(_path(dir, name, _SUFFIXES[0]), 1, length, write_body)
        return 1
    tmp = _path(dir, name, ".t")
    _write(tmp, 1, length, write_body)
    os.rename(tmp, _path(dir, name, _SUFFIXES[0]))
    _sync()
    return 1


def exists(dir, name):
    """Whether any copy of record name is on flash (intact or not: load() tells)."""
    return _exists(_path(dir, name, ".a")) or _exists(_path(dir, name, ".b"))


def remove(dir, name):
    """Delete every copy of record name (factory reset)."""
    for suffix in (".a", ".b", ".t"):
        try:
            os.remove(_path(dir, name, suffix))
        except OSError:
            pass
