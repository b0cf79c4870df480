# carkey — tests for carkey.storage: A/B record files, corruption, generation wrap, power cuts.
# SPDX-License-Identifier: MIT
#
# Run: .venv/bin/pytest -q tests/firmware/test_storage.py
#  or: MICROPYPATH=firmware:tests/mpy:tests/firmware .venv/bin/micropython tests/firmware/test_storage.py
#
# Corruption tests use a host directory (VfsPosix); power-cut tests use littlefs and
# FAT on the simulated flash of tests/mpy/flashsim.py and cut at every operation.

import os
import struct
from binascii import crc32, unhexlify

import unittest
from scratch import remove_tree, scratch_dir
from flashsim import power_cuts

from carkey import storage

MOUNT = "/flash"
STATE = MOUNT + "/state"


def raw(path):
    with open(path, "rb") as f:
        return f.read()


def put(path, data):
    with open(path, "wb") as f:
        f.write(data)


def copy_bytes(gen, body, version=1):
    """A record copy built from the format in docs/STORAGE.md, independently of storage.py."""
    head = struct.pack(">4sHHII", b"CKST", version, 0, gen, len(body))
    return head + struct.pack(">I", crc32(body, crc32(head))) + body


class PosixTest(unittest.TestCase):
    def setUp(self):
        self.dir = scratch_dir()
        self.a = self.dir + "/rec.a"
        self.b = self.dir + "/rec.b"

    def tearDown(self):
        remove_tree(self.dir)

    def save3(self):
        for body in (b"one", b"two", b"three"):
            storage.save(self.dir, "rec", body)


class FormatTest(PosixTest):
    def test_missing_record_loads_none(self):
        self.assertIsNone(storage.load(self.dir, "rec"))

    def test_first_copy_bytes(self):
        self.assertEqual(storage.save(self.dir, "rec", b"hello"), 1)
        self.assertEqual(raw(self.a), copy_bytes(1, b"hello"))
        self.assertEqual(sorted(os.listdir(self.dir)), ["rec.a"])

    def test_example_in_docs(self):
        storage.save(self.dir, "rec", b"hello")
        self.assertEqual(
            raw(self.a), unhexlify("434b5354000100000000000100000005" + "4abea185" + "68656c6c6f")
        )

    def test_saves_alternate_copies_and_count_generations(self):
        self.assertEqual([storage.save(self.dir, "rec", b) for b in (b"x", b"yy", b"zzz")], [1, 2, 3])
        self.assertEqual(raw(self.a), copy_bytes(3, b"zzz"))
        self.assertEqual(raw(self.b), copy_bytes(2, b"yy"))
        self.assertEqual(storage.load(self.dir, "rec"), b"zzz")

    def test_empty_and_large_bodies_round_trip(self):
        storage.save(self.dir, "rec", b"")
        self.assertEqual(storage.load(self.dir, "rec"), b"")
        body = bytes(i & 0xFF for i in range(9000))
        storage.save(self.dir, "rec", bytearray(body))
        self.assertEqual(storage.load(self.dir, "rec"), body)

    def test_creates_missing_directory(self):
        sub = self.dir + "/sub"
        storage.save(sub, "rec", b"x")
        self.assertEqual(storage.load(sub, "rec"), b"x")
        remove_tree(sub)

    def test_save_with_streams_chunks(self):
        storage.save_with(self.dir, "rec", 6, lambda out: (out.write(b"abc"), out.write(memoryview(b"def"))))
        self.assertEqual(raw(self.a), copy_bytes(1, b"abcdef"))

    def test_save_with_wrong_length_writes_nothing(self):
        with self.assertRaises(ValueError):
            storage.save_with(self.dir, "rec", 5, lambda out: out.write(b"abc"))
        self.assertEqual(os.listdir(self.dir), [])

    def test_load_with_gets_file_at_body(self):
        storage.save(self.dir, "rec", b"0123456789")
        self.assertEqual(storage.load_with(self.dir, "rec", lambda f, n: (n, f.read(4))), (10, b"0123"))

    def test_remove_deletes_every_copy(self):
        self.save3()
        storage.remove(self.dir, "rec")
        self.assertEqual(os.listdir(self.dir), [])
        self.assertIsNone(storage.load(self.dir, "rec"))


class CorruptionTest(PosixTest):
    # After save3(): rec.a = gen 3 "three" (newest), rec.b = gen 2 "two".

    def flip(self, path, offset):
        data = bytearray(raw(path))
        data[offset] ^= 0x01
        put(path, data)

    def test_flipped_body_byte_falls_back_to_older_copy(self):
        self.save3()
        self.flip(self.a, 22)
        self.assertEqual(storage.load(self.dir, "rec"), b"two")

    def test_flipped_generation_falls_back(self):
        self.save3()
        self.flip(self.a, 11)
        self.assertEqual(storage.load(self.dir, "rec"), b"two")

    def test_flipped_crc_falls_back(self):
        self.save3()
        self.flip(self.a, 19)
        self.assertEqual(storage.load(self.dir, "rec"), b"two")

    def test_bad_magic_falls_back(self):
        self.save3()
        self.flip(self.a, 0)
        self.assertEqual(storage.load(self.dir, "rec"), b"two")

    def test_every_truncation_falls_back(self):
        self.save3()
        whole = raw(self.a)
        for n in range(len(whole)):
            put(self.a, whole[:n])
            self.assertEqual(storage.load(self.dir, "rec"), b"two", n)

    def test_trailing_bytes_fall_back(self):
        self.save3()
        put(self.a, raw(self.a) + b"\x00")
        self.assertEqual(storage.load(self.dir, "rec"), b"two")

    def test_corrupt_older_copy_is_ignored(self):
        self.save3()
        self.flip(self.b, 21)
        self.assertEqual(storage.load(self.dir, "rec"), b"three")

    def test_save_never_overwrites_the_only_intact_copy(self):
        self.save3()
        self.flip(self.a, 22)  # newest damaged: "two" in rec.b is the only intact state
        self.assertEqual(storage.save(self.dir, "rec", b"four"), 3)
        self.assertEqual(raw(self.b), copy_bytes(2, b"two"))
        self.assertEqual(raw(self.a), copy_bytes(3, b"four"))
        self.assertEqual(storage.load(self.dir, "rec"), b"four")

    def test_no_intact_copy_is_an_error(self):
        self.save3()
        self.flip(self.a, 22)
        self.flip(self.b, 22)
        with self.assertRaises(storage.StorageError) as ctx:
            storage.load(self.dir, "rec")
        self.assertEqual(str(ctx.exception), "record rec: no intact copy")

    def test_single_truncated_copy_is_an_error(self):
        storage.save(self.dir, "rec", b"only")
        put(self.a, b"")
        with self.assertRaises(storage.StorageError):
            storage.load(self.dir, "rec")

    def test_save_recovers_from_all_copies_corrupt(self):
        put(self.a, b"junk")
        put(self.b, b"junk")
        self.assertEqual(storage.save(self.dir, "rec", b"fresh"), 1)
        self.assertEqual(storage.load(self.dir, "rec"), b"fresh")

    def test_unknown_format_version_is_reported(self):
        put(self.a, copy_bytes(1, b"future", version=2))
        with self.assertRaises(storage.StorageError) as ctx:
            storage.load(self.dir, "rec")
        self.assertEqual(str(ctx.exception), "record rec: unsupported format version 2")

    def test_storage_error_is_a_value_error(self):
        self.assertTrue(issubclass(storage.StorageError, ValueError))

    def test_torn_first_save_reads_as_no_state(self):
        # A first save interrupted before its rename leaves only the temporary copy.
        put(self.dir + "/rec.t", copy_bytes(1, b"first")[:10])
        self.assertIsNone(storage.load(self.dir, "rec"))
        storage.save(self.dir, "rec", b"first")
        self.assertEqual(sorted(os.listdir(self.dir)), ["rec.a"])
        self.assertEqual(storage.load(self.dir, "rec"), b"first")


class GenerationTest(PosixTest):
    def test_newer_is_modulo_2_32(self):
        self.assertTrue(storage.newer(2, 1))
        self.assertFalse(storage.newer(1, 2))
        self.assertFalse(storage.newer(5, 5))
        self.assertTrue(storage.newer(0, 0xFFFFFFFF))
        self.assertFalse(storage.newer(0xFFFFFFFF, 0))
        self.assertTrue(storage.newer(0x7FFFFFFF, 0))

    def test_save_across_the_wrap(self):
        put(self.a, copy_bytes(0xFFFFFFFE, b"old"))
        put(self.b, copy_bytes(0xFFFFFFFF, b"newest"))
        self.assertEqual(storage.load(self.dir, "rec"), b"newest")
        self.assertEqual(storage.save(self.dir, "rec", b"wrapped"), 0)
        self.assertEqual(raw(self.a), copy_bytes(0, b"wrapped"))
        self.assertEqual(storage.load(self.dir, "rec"), b"wrapped")
        self.assertEqual(storage.save(self.dir, "rec", b"after"), 1)
        self.assertEqual(storage.load(self.dir, "rec"), b"after")


OLD = b"old state " * 100
NEW = b"new state " * 300  # spans many flash blocks


def old_state():
    storage.save(STATE, "rec", b"older state")
    storage.save(STATE, "rec", OLD)


def new_state():
    storage.save(STATE, "rec", NEW)


class PowerCutTest(unittest.TestCase):
    def matrix(self, prepare, old, **flash):
        """Cut at every operation of a save, clean and torn. Returns the cut points
        that loaded the new state and the operation count of the uncut save."""
        new_at = []
        points = 0
        total = 0
        for k, torn in power_cuts(prepare, new_state, MOUNT, **flash):
            body = storage.load(STATE, "rec")
            self.assertTrue(body == old or body == NEW, "cut after %d ops, torn=%s" % (k, torn))
            if body == NEW:
                new_at.append((k, torn))
            points += 1
            total = max(total, k)
        self.assertEqual(points, 2 * total + 1)  # clean 0..total, torn 0..total-1
        self.assertIn((total, False), new_at)  # the uncut save
        return new_at, total

    def test_littlefs_overwrite(self):
        new_at, total = self.matrix(old_state, OLD)
        # littlefs commits on close: every interrupted save keeps the old state.
        self.assertEqual(new_at, [(total, False)])
        self.assertGreaterEqual(total, 30)

    def test_littlefs_first_save(self):
        new_at, total = self.matrix(lambda: None, None)
        self.assertEqual(new_at, [(total, False)])
        self.assertGreaterEqual(total, 30)

    def test_fat_overwrite(self):
        # FAT writes in place: here the A/B copies are what keeps the old state.
        new_at, total = self.matrix(old_state, OLD, fs="fat")
        self.assertGreaterEqual(total, 10)

    def test_fat_first_save(self):
        new_at, total = self.matrix(lambda: None, None, fs="fat")
        self.assertGreaterEqual(total, 10)


if __name__ == "__main__":
    unittest.main()
