# carkey — per-key verification tables beside the key store: built, found, damaged, used by verify.
# SPDX-License-Identifier: MIT
#
# Run: .venv/bin/pytest -q tests/firmware/test_keystore_tables.py

import os

import unittest
from scratch import remove_tree, scratch_dir

from carkey.crypto import p256
from carkey.ecu.keystore import Credential, KeyStore, card_identifier

DIGEST = b"\x42" * 32


class TestTables(unittest.TestCase):
    def setUp(self):
        self.dir = scratch_dir()
        self.priv, self.pub = p256.generate_keypair()
        self.ks = KeyStore(self.dir)
        self.phone = self.ks.add(Credential(self.pub, 1, 0x7F))
        self.card = self.ks.add(Credential(card_identifier(b"\x04\x01\x02\x03\x04\x05\x06"), 2, 0x03))
        _, other = p256.generate_keypair()
        self.suspended = self.ks.add(Credential(other, 2, 0x03, status=1))

    def tearDown(self):
        remove_tree(self.dir)

    def test_only_active_phone_keys_need_a_table(self):
        self.assertEqual([c.slot for c in self.ks.without_table()], [self.phone.slot])
        self.assertIsNone(self.ks.table(self.phone))
        self.assertIsNone(self.ks.table(self.card))

    def test_stored_table_is_found_and_verifies(self):
        table = p256.verify_table(self.pub)
        self.ks.store_table(self.phone, table)
        self.assertEqual(self.ks.without_table(), [])
        loaded = self.ks.table(self.phone)
        self.assertEqual(bytes(loaded), bytes(table))
        sig = p256.sign(self.priv, DIGEST)
        self.assertTrue(p256.verify(self.pub, DIGEST, sig, loaded))
        self.assertFalse(p256.verify(self.pub, b"\x43" * 32, sig, loaded))

    def test_damaged_table_is_no_table(self):
        self.ks.store_table(self.phone, p256.verify_table(self.pub))
        name = "%s/vt%s.a" % (self.dir, "".join("%02x" % b for b in self.phone.slot))
        with open(name, "r+b") as f:
            f.seek(100)
            f.write(b"\xff\xff")
        self.assertIsNone(self.ks.table(self.phone))  # the CRC catches it: verify runs without
        self.assertIn(name.rsplit("/", 1)[1], os.listdir(self.dir))


class TestTableBuffers(unittest.TestCase):
    # The car reads tables into one buffer and builds them in another, both made at
    # start-up: a tap never asks the heap for 4160 bytes in one piece.
    def setUp(self):
        self.dir = scratch_dir()
        self.priv, self.pub = p256.generate_keypair()
        self.buf = bytearray(p256.TABLE_LEN)
        self.ks = KeyStore(self.dir, table_buffer=self.buf)
        self.phone = self.ks.add(Credential(self.pub, 1, 0x7F))

    def tearDown(self):
        remove_tree(self.dir)

    def test_built_in_a_given_buffer_and_read_into_the_store_s(self):
        work = bytearray(p256.TABLE_LEN)
        table = p256.finish(p256.verify_table_steps(self.pub, work))
        self.assertIs(table, work)
        self.assertEqual(bytes(table), bytes(p256.verify_table(self.pub)))
        self.ks.store_table(self.phone, table)
        loaded = self.ks.table(self.phone)
        self.assertIs(loaded, self.buf)  # no new 4 KiB object
        self.assertEqual(bytes(loaded), bytes(work))
        self.assertTrue(p256.verify(self.pub, DIGEST, p256.sign(self.priv, DIGEST), loaded))

    def test_a_table_of_another_length_is_no_table(self):
        from carkey import storage

        storage.save(self.dir, "vt" + "".join("%02x" % b for b in self.phone.slot), bytes(100))
        self.assertIsNone(self.ks.table(self.phone))

    def test_a_buffer_of_the_wrong_size_is_refused(self):
        with self.assertRaises(ValueError):
            p256.verify_table_steps(self.pub, bytearray(100))


if __name__ == "__main__":
    unittest.main()
