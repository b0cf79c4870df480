# carkey — tests for carkey.ecu.auditlog: record format, ring, torn and corrupt records, export,
# and power cuts at every flash operation of an append.
# SPDX-License-Identifier: MIT
#
# Run: .venv/bin/pytest -q tests/firmware/test_auditlog.py
#  or: MICROPYPATH=firmware:tests/mpy:tests/firmware .venv/bin/micropython tests/firmware/test_auditlog.py

import os
import struct
from binascii import crc32, hexlify, unhexlify

import unittest
from scratch import remove_tree, scratch_dir
from flashsim import power_cuts

from carkey.ecu import auditlog
from carkey.ecu.auditlog import AuditLog

MOUNT = "/flash"
LOG = MOUNT + "/log"
T0 = 1709210096
SLOT = b"\x11\x22\x33\x44\x55\x66\x77\x88"


def record_bytes(seq, when, slot, transport, kind, command, result):
    """A record built from the format in docs/STORAGE.md, independently of auditlog.py."""
    body = bytes((0xA1, transport, kind, command)) + struct.pack(">II", seq, when) + slot + bytes((result,)) + bytes(7)
    return body + struct.pack(">I", crc32(body))


def add(log, n, start=0):
    """Append n records whose fields follow from their index."""
    for i in range(start, start + n):
        log.append(T0 + i, SLOT, auditlog.TRANSPORT_NFC + i % 4, i % 4, 1 + i % 7, i % 13)


def expected(seq):
    i = seq - 1
    return (seq, T0 + i, SLOT, 1 + i % 4, i % 4, 1 + i % 7, i % 13)


class LogTest(unittest.TestCase):
    def setUp(self):
        self.dir = scratch_dir()

    def tearDown(self):
        remove_tree(self.dir)

    def log(self, segments=3, per_segment=4):
        return AuditLog(self.dir, segments, per_segment)

    def seqs(self, log, since=0):
        return [r[0] for r in log.records(since)]

    def raw(self, i):
        with open("%s/audit.%d" % (self.dir, i), "rb") as f:
            return f.read()

    def test_empty_log(self):
        log = self.log()
        self.assertEqual((log.seq, list(log.records())), (0, []))
        self.assertEqual(log.export(), b"CKAL\x01\x20\x00\x00\x00\x00\x00\x00")
        self.assertEqual(log.capacity(), 12)

    def test_append_numbers_and_reads_back(self):
        log = self.log()
        self.assertEqual(log.append(T0, SLOT, auditlog.TRANSPORT_BLE, auditlog.KIND_FAST, 2, 0), 1)
        self.assertEqual(log.append(T0 + 9, None, auditlog.TRANSPORT_USB, auditlog.KIND_ADMIN, 0x81, 11), 2)
        self.assertEqual(
            list(log.records()),
            [(1, T0, SLOT, 2, 1, 2, 0), (2, T0 + 9, bytes(8), 4, 3, 0x81, 11)],
        )

    def test_record_bytes(self):
        log = self.log()
        log.append(T0, SLOT, auditlog.TRANSPORT_TCP, auditlog.KIND_FALLBACK, 5, 9)
        self.assertEqual(self.raw(0), record_bytes(1, T0, SLOT, 3, 2, 5, 9))
        self.assertEqual(len(self.raw(0)), auditlog.RECORD_SIZE)

    def test_example_in_docs(self):
        log = self.log()
        log.append(T0, SLOT, auditlog.TRANSPORT_NFC, auditlog.KIND_FAST, 2, 0)
        self.assertEqual(
            self.raw(0),
            unhexlify("a1010102" + "00000001" + "65e079f0" + "1122334455667788" + "00" + "00" * 7 + "e6c7a312"),
        )

    def test_constants(self):
        self.assertEqual(
            (auditlog.TRANSPORT_NFC, auditlog.TRANSPORT_BLE, auditlog.TRANSPORT_TCP, auditlog.TRANSPORT_USB),
            (1, 2, 3, 4),
        )
        self.assertEqual(
            (auditlog.KIND_STANDARD, auditlog.KIND_FAST, auditlog.KIND_FALLBACK, auditlog.KIND_ADMIN), (0, 1, 2, 3)
        )

    def test_reopen_continues_sequence(self):
        add(self.log(), 6)
        log = self.log()
        self.assertEqual(log.seq, 6)
        add(log, 1, 6)
        self.assertEqual(list(log.records()), [expected(s) for s in range(1, 8)])
        self.assertEqual(len(self.raw(1)), 3 * 32)

    def test_ring_overwrites_oldest_record(self):
        log = self.log()
        add(log, 13)
        # slot 0 now holds 13; segment 0 = [13, 2, 3, 4], 1 = [5..8], 2 = [9..12]
        self.assertEqual(self.seqs(log), list(range(2, 14)))
        self.assertEqual(self.raw(0), b"".join(record_bytes(*expected(s)) for s in (13, 2, 3, 4)))
        self.assertEqual(self.seqs(self.log()), list(range(2, 14)))
        add(log, 4, 13)
        self.assertEqual(self.seqs(log), list(range(6, 18)))
        self.assertEqual(list(self.log().records()), [expected(s) for s in range(6, 18)])

    def test_since_seq(self):
        log = self.log()
        add(log, 10)
        self.assertEqual(self.seqs(log, 7), [8, 9, 10])
        self.assertEqual(self.seqs(log, 10), [])

    def test_torn_record_is_skipped_then_overwritten(self):
        log = self.log()
        add(log, 2)
        with open(self.dir + "/audit.0", "ab") as f:
            f.write(record_bytes(*expected(3))[:17])
        log = self.log()
        self.assertEqual((log.seq, self.seqs(log)), (2, [1, 2]))
        add(log, 1, 2)
        self.assertEqual(self.seqs(log), [1, 2, 3])
        self.assertEqual(self.raw(0), b"".join(record_bytes(*expected(s)) for s in (1, 2, 3)))
        self.assertEqual(self.seqs(self.log()), [1, 2, 3])

    def test_corrupt_record_is_skipped(self):
        log = self.log()
        add(log, 3)
        data = bytearray(self.raw(0))
        data[32 + 9] ^= 0x40  # record 2's time
        with open(self.dir + "/audit.0", "wb") as f:
            f.write(data)
        log = self.log()
        self.assertEqual(self.seqs(log), [1, 3])
        add(log, 1, 3)
        self.assertEqual(self.seqs(log), [1, 3, 4])
        self.assertEqual(self.raw(0)[96:], record_bytes(*expected(4)))

    def test_record_in_wrong_slot_is_ignored(self):
        log = self.log()
        add(log, 2)
        with open(self.dir + "/audit.0", "ab") as f:
            f.write(record_bytes(*expected(9)))  # intact, but seq 9 belongs in slot 8
        log = self.log()
        self.assertEqual((log.seq, self.seqs(log)), (2, [1, 2]))

    def test_corrupt_newest_record_rewinds_head(self):
        log = self.log()
        add(log, 3)
        data = bytearray(self.raw(0))
        data[64 + 31] ^= 0x01  # record 3's CRC
        with open(self.dir + "/audit.0", "wb") as f:
            f.write(data)
        log = self.log()
        self.assertEqual(log.seq, 2)
        self.assertEqual(log.append(T0, SLOT, 1, 0, 1, 0), 3)
        self.assertEqual(self.seqs(log), [1, 2, 3])

    def test_export_format_and_paging(self):
        log = self.log()
        add(log, 5)
        page = log.export(0, 2)
        self.assertEqual(
            page,
            b"CKAL\x01\x20\x00\x00\x00\x00\x00\x02" + record_bytes(*expected(1)) + record_bytes(*expected(2)),
        )
        page = log.export(2, 2)
        self.assertEqual(page[8:12], b"\x00\x00\x00\x02")
        self.assertEqual(page[12:], record_bytes(*expected(3)) + record_bytes(*expected(4)))
        page = log.export(4)
        self.assertEqual(page, b"CKAL\x01\x20\x00\x00\x00\x00\x00\x01" + record_bytes(*expected(5)))

    def test_bad_geometry(self):
        for segments, per_segment in ((0, 4), (2, 0)):
            with self.assertRaises(ValueError):
                AuditLog(self.dir, segments, per_segment)

    def test_single_file_ring(self):
        log = AuditLog(self.dir, 1, 3)
        add(log, 5)
        self.assertEqual(self.seqs(log), [3, 4, 5])
        self.assertEqual(os.listdir(self.dir), ["audit.0"])


# Power-cut geometry: segments of 40 records (1280 bytes: past littlefs's inline
# files, so an append rewrites data blocks as well as metadata).
SEGMENTS = 3
PER_SEGMENT = 40


class PowerCutTest(unittest.TestCase):
    def matrix(self, n, geometry=(SEGMENTS, PER_SEGMENT), **flash):
        """Cut at every operation of appending record n + 1 to a log of n records.
        Returns the distinct record lists seen after the cuts, with their counts."""

        def prepare():
            add(AuditLog(LOG, *geometry), n)

        def action():
            add(AuditLog(LOG, *geometry), 1, n)

        seen = {}
        for k, torn in power_cuts(prepare, action, MOUNT, **flash):
            log = AuditLog(LOG, *geometry)
            seqs = tuple(r[0] for r in log.records())
            self.assertEqual(log.seq, seqs[-1])
            self.assertEqual([r for r in log.records()], [expected(s) for s in seqs])
            # After the cut the log keeps working: the next append follows the head.
            self.assertEqual(log.append(T0, SLOT, 1, 0, 1, 0), seqs[-1] + 1)
            self.assertEqual([r[0] for r in log.records()][-1], seqs[-1] + 1)
            seen[seqs] = seen.get(seqs, 0) + 1
        return seen

    def test_append_on_littlefs(self):
        seen = self.matrix(45)
        old, new = tuple(range(1, 46)), tuple(range(1, 47))
        self.assertEqual(sorted(seen), [old, new])
        self.assertEqual(seen[new], 1)  # only the uncut append
        self.assertGreaterEqual(seen[old], 8)

    def test_append_that_recycles_on_littlefs(self):
        seen = self.matrix(120)
        old, new = tuple(range(1, 121)), tuple(range(2, 122))
        self.assertEqual(sorted(seen), [old, new])
        self.assertEqual(seen[new], 1)
        self.assertGreaterEqual(seen[old], 8)

    def test_append_with_esp32_geometry(self):
        # Default log (4 segments of 128 records) on 4 KiB littlefs blocks, wrapped.
        seen = self.matrix(600, (4, 128), block_size=4096, block_count=24)
        old, new = tuple(range(89, 601)), tuple(range(90, 602))
        self.assertEqual(sorted(seen), [old, new])
        self.assertEqual(seen[new], 1)
        self.assertGreaterEqual(seen[old], 4)

    def test_append_on_fat(self):
        seen = self.matrix(45, fs="fat")
        old, new = tuple(range(1, 46)), tuple(range(1, 47))
        self.assertEqual(sorted(seen), [old, new])
        self.assertGreaterEqual(sum(seen.values()), 5)

    def test_append_that_recycles_on_fat(self):
        seen = self.matrix(120, fs="fat")
        old, new = tuple(range(1, 121)), tuple(range(2, 122))
        self.assertEqual(sorted(seen), [old, new])
        self.assertGreaterEqual(sum(seen.values()), 3)


if __name__ == "__main__":
    unittest.main()


class StrangerLogTest(unittest.TestCase):
    def setUp(self):
        self.dir = "%s/carkey-strangers-%s" % (os.getenv("TMPDIR") or "/tmp", hexlify(os.urandom(6)).decode())
        os.mkdir(self.dir)

    def tearDown(self):
        for name in os.listdir(self.dir):
            os.remove(self.dir + "/" + name)
        os.rmdir(self.dir)

    def test_one_record_per_interval_and_reason(self):
        from carkey.ecu.auditlog import INTERVAL_S, StrangerLog

        log = StrangerLog(self.dir)
        t0 = 600000
        for i in range(50):
            log.note(t0 + i, 2, 0, 0x00, 0x80)
            log.note(t0 + i, 1, 0, 0x07, 0x07)
        self.assertEqual(list(log.records()), [])  # still counting
        self.assertFalse(log.due(t0 + INTERVAL_S - 1))
        self.assertTrue(log.due(t0 + INTERVAL_S))
        log.note(t0 + INTERVAL_S, 2, 0, 0x00, 0x80)  # the next interval writes the last one
        got = sorted((r[1], r[3], r[5], r[6], r[7]) for r in log.records())
        self.assertEqual(got, [(t0, 1, 0x07, 0x07, 50), (t0, 2, 0x00, 0x80, 50)])
        self.assertEqual(AuditLog(self.dir).seq, 0)  # the main ring is untouched

    def test_too_many_reasons_are_written_early_not_dropped(self):
        from carkey.ecu.auditlog import StrangerLog

        log = StrangerLog(self.dir)
        for result in range(20):
            log.note(1200, 2, 0, 0x00, result)
        log.flush()
        self.assertEqual(sorted(r[6] for r in log.records()), list(range(20)))
        self.assertEqual(sum(r[7] for r in log.records()), 20)
