# carkey — a key-store record that passes its CRC but whose body is not one this firmware wrote.
# SPDX-License-Identifier: MIT
#
# Found by the state surface of the fuzz campaign (docs/TESTING.md): a header that
# claims 65,535 revoked slots made the loader allocate 512 KiB before looking at the
# record's length (MemoryError at boot), and a counter name that is not UTF-8 raised
# UnicodeError. Both must be KeyStoreError, the loader's documented answer, and a
# damaged count must never cost more memory than the record's own length.
#
# Run: .venv/bin/pytest -q tests/firmware/test_keystore_damaged.py

import struct

import unittest
from scratch import remove_tree, scratch_dir

from carkey import storage
from carkey.ecu.keystore import KeyStore, KeyStoreError

MPY_HEAPSIZE = "64k"


class DamagedBody(unittest.TestCase):
    def setUp(self):
        self.dir = scratch_dir()

    def tearDown(self):
        remove_tree(self.dir)

    def load(self, body):
        storage.save(self.dir, "keys", body)
        with self.assertRaises(KeyStoreError):
            KeyStore(self.dir)

    def test_huge_revoked_count_is_refused_without_allocating(self):
        self.load(struct.pack(">BBHB", 1, 0, 0xFFFF, 0) + bytes(16))

    def test_revoked_count_past_the_record(self):
        self.load(struct.pack(">BBHB", 1, 0, 3, 0) + bytes(16))

    def test_counter_name_past_the_record(self):
        self.load(struct.pack(">BBHB", 1, 0, 0, 1) + b"\xff" + b"ab")

    def test_counter_name_not_utf8(self):
        self.load(struct.pack(">BBHB", 1, 0, 0, 1) + b"\x02\xff\xfe" + bytes(4))

    def test_many_credentials_claimed_in_a_short_record(self):
        self.load(struct.pack(">BBHB", 1, 255, 0, 0) + bytes(10))

    def test_well_formed_empty_store_still_loads(self):
        storage.save(self.dir, "keys", struct.pack(">BBHB", 1, 0, 0, 1) + b"\x03abc" + struct.pack(">I", 7))
        store = KeyStore(self.dir)
        self.assertEqual(len(store), 0)
        self.assertEqual(store.counter("abc"), 7)


if __name__ == "__main__":
    unittest.main()
