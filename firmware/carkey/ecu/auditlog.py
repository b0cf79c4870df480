# carkey — append-only audit log: fixed-size checksummed records in a ring of segment files.
# SPDX-License-Identifier: MIT
#
# Records are 32 bytes (docs/STORAGE.md). The ring has segments × per_segment slots
# spread over the files `dir/audit.0` … `audit.<segments-1>`; record seq always goes to
# slot (seq - 1) mod capacity, written in place, so each append overwrites exactly
# the oldest record and nothing else. Small files keep that cheap on littlefs, where
# rewriting the middle of a file copies everything after it.
#
# Nothing is kept in memory but the head: after a reboot the highest intact sequence
# number is the head. A torn or corrupt record fails its CRC and is skipped; a record
# whose sequence number does not fit its slot (left from another geometry) too.
#
# Strangers (devices that proved no enrolled key) get their own small ring through
# StrangerLog: their refusals are counted in RAM and written as one record per
# interval and reason, so no number of strangers can evict an enrolled key's record.

import os
import struct
from binascii import crc32
from micropython import const

# Transports; 0 is the car itself (auto-relock).
TRANSPORT_CAR = const(0)
TRANSPORT_NFC = const(1)
TRANSPORT_BLE = const(2)
TRANSPORT_TCP = const(3)
TRANSPORT_USB = const(4)

# Transaction kinds; standard and fast match the AUTH0 transaction type byte.
KIND_STANDARD = const(0)
KIND_FAST = const(1)
KIND_FALLBACK = const(2)  # fast requested, no cached key matched, finished through AUTH1
KIND_ADMIN = const(3)  # owner-signed request over USB
KIND_PASSIVE = const(4)  # passive entry: a phone that authenticated came near or went away

RECORD_SIZE = const(32)
EXPORT_MAGIC = b"CKAL"
EXPORT_HEAD = ">4sBBHI"  # magic, format version, record size, reserved, record count
EXPORT_HEAD_SIZE = const(12)

_MARK = const(0xA1)  # first byte of every record: record format 1
_RECORD = ">BBBBII8sBI3xI"  # mark, transport, kind, command, seq, time, slot, result, count, crc
_SEQ_AT = const(4)
_CRC_AT = const(28)
_FORMAT_VERSION = const(1)
_NO_SLOT = bytes(8)


def _sync():
    # ESP32 builds have os.sync(); on the Unix port closing is all there is.
    sync = getattr(os, "sync", None)
    if sync is not None:
        sync()


class AuditLog:
    """Audit log in dir: a ring of segments × per_segment records."""

    def __init__(self, dir, segments=4, per_segment=128, name="audit"):
        if segments < 1 or per_segment < 1:
            raise ValueError("audit log geometry")
        self._dir = dir
        self._name = name
        self._segments = segments
        self._per_segment = per_segment
        self._capacity = segments * per_segment
        self._buf = bytearray(RECORD_SIZE)
        try:
            os.mkdir(dir)
        except OSError:
            pass  # exists; any other problem surfaces at open()
        self._seq = self._recover()

    @property
    def seq(self):
        """Sequence number of the newest intact record (0 = empty log)."""
        return self._seq

    def capacity(self):
        return self._capacity

    def _path(self, segment):
        return "%s/%s.%d" % (self._dir, self._name, segment)

    def _seq_of(self, buf, slot):
        """Sequence number of an intact record that belongs in slot, else 0."""
        if buf[0] != _MARK:
            return 0
        if crc32(memoryview(buf)[:_CRC_AT]) != struct.unpack_from(">I", buf, _CRC_AT)[0]:
            return 0
        seq = struct.unpack_from(">I", buf, _SEQ_AT)[0]
        return seq if seq and (seq - 1) % self._capacity == slot else 0

    def _recover(self):
        head = 0
        buf = self._buf
        for segment in range(self._segments):
            try:
                f = open(self._path(segment), "rb")
            except OSError:
                continue
            with f:
                first = segment * self._per_segment
                for slot in range(first, first + self._per_segment):
                    if f.readinto(buf) != RECORD_SIZE:
                        break
                    seq = self._seq_of(buf, slot)
                    if seq > head:
                        head = seq
        return head

    def append(self, when, slot, transport, kind, command, result, count=0):
        """Write one record (when: Unix seconds; slot: 8-byte key slot or None;
        count: events a coalesced record stands for, 0 for one event);
        returns its sequence number."""
        seq = self._seq + 1
        buf = self._buf
        struct.pack_into(_RECORD, buf, 0, _MARK, transport, kind, command, seq, when, slot or _NO_SLOT, result,
                         count, 0)
        struct.pack_into(">I", buf, _CRC_AT, crc32(memoryview(buf)[:_CRC_AT]))
        segment, index = divmod((seq - 1) % self._capacity, self._per_segment)
        path = self._path(segment)
        try:
            f = open(path, "r+b")
        except OSError:
            f = open(path, "wb")
        with f:
            f.seek(index * RECORD_SIZE)
            f.write(buf)
            f.flush()
        _sync()
        self._seq = seq
        return seq

    def _ordered(self, since_seq):
        """Intact records newer than since_seq, oldest first: (seq, reused buffer)."""
        first = max(since_seq + 1, self._seq - self._capacity + 1, 1)
        buf = bytearray(RECORD_SIZE)
        f = None
        open_segment = -1
        try:
            for seq in range(first, self._seq + 1):
                slot = (seq - 1) % self._capacity
                segment, index = divmod(slot, self._per_segment)
                if segment != open_segment:
                    if f is not None:
                        f.close()
                    f = None
                    open_segment = segment
                    try:
                        f = open(self._path(segment), "rb")
                    except OSError:
                        pass
                if f is None:
                    continue
                f.seek(index * RECORD_SIZE)
                if f.readinto(buf) == RECORD_SIZE and self._seq_of(buf, slot) == seq:
                    yield seq, buf
        finally:
            if f is not None:
                f.close()

    def records(self, since_seq=0):
        """Yield (seq, time, slot, transport, kind, command, result), oldest first."""
        for _, buf in self._ordered(since_seq):
            _, transport, kind, command, seq, when, slot, result, _, _ = struct.unpack(_RECORD, buf)
            yield seq, when, slot, transport, kind, command, result

    def counted(self, since_seq=0):
        """Like records(), each with the count of events it stands for (at least 1)."""
        for _, buf in self._ordered(since_seq):
            _, transport, kind, command, seq, when, slot, result, count, _ = struct.unpack(_RECORD, buf)
            yield seq, when, slot, transport, kind, command, result, count or 1

    def export(self, since_seq=0, limit=128):
        """Up to limit records newer than since_seq, as a bytearray for host tools:
        a 12-byte header then the raw 32-byte records, oldest first (docs/STORAGE.md).
        Page through a long log by passing the last exported sequence number."""
        n = 0
        records = self._ordered(since_seq)
        for _ in records:
            n += 1
            if n == limit:
                break
        records.close()  # closes its file now, not at garbage collection
        out = bytearray(EXPORT_HEAD_SIZE + n * RECORD_SIZE)
        struct.pack_into(EXPORT_HEAD, out, 0, EXPORT_MAGIC, _FORMAT_VERSION, RECORD_SIZE, 0, n)
        pos = EXPORT_HEAD_SIZE
        records = self._ordered(since_seq)
        for _, buf in records:
            if pos == len(out):
                break
            out[pos : pos + RECORD_SIZE] = buf
            pos += RECORD_SIZE
        records.close()
        return out


STRANGERS_NAME = "strangers"
INTERVAL_S = const(600)
_MAX_REASONS = const(8)


class StrangerLog:
    """Strangers' refusals, coalesced: for each interval of INTERVAL_S seconds, one
    record per (transport, kind, command or event, result) with the number of events,
    in a ring of its own (files strangers.0 ...). Counts wait in RAM (at most
    _MAX_REASONS of them) until their interval ends; a power cut loses at most the
    current interval's counts, never an enrolled key's record."""

    def __init__(self, dir, slots=64):
        self.ring = AuditLog(dir, 1, slots, STRANGERS_NAME)
        self._start = 0
        self._counts = {}  # transport << 24 | kind << 16 | command << 8 | result -> events

    def note(self, when, transport, kind, command, result):
        start = when - when % INTERVAL_S
        reason = transport << 24 | kind << 16 | command << 8 | result
        if self._counts and (start != self._start or (reason not in self._counts
                                                      and len(self._counts) == _MAX_REASONS)):
            self.flush()
        self._start = start
        self._counts[reason] = self._counts.get(reason, 0) + 1

    def due(self, now):
        """Whether counts of an interval that has ended are waiting."""
        return bool(self._counts) and now - now % INTERVAL_S != self._start

    def flush(self):
        """Write the waiting counts, one record per reason, stamped with the interval's start."""
        for reason, n in self._counts.items():
            self.ring.append(self._start, None, reason >> 24, (reason >> 16) & 0xFF, (reason >> 8) & 0xFF,
                             reason & 0xFF, n)
        self._counts = {}

    def records(self, since_seq=0):
        """(seq, interval start, slot (zeros), transport, kind, command, result, count), oldest first."""
        return self.ring.counted(since_seq)
