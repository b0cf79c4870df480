# carkey — tests for carkey.ecu.keystore: credentials, revocation, counters, file format,
# a full store in a 64 KiB heap, and power cuts at every flash operation of a commit.
# SPDX-License-Identifier: MIT
#
# Run: .venv/bin/pytest -q tests/firmware/test_keystore.py
#  or: MICROPYPATH=firmware:tests/mpy:tests/firmware .venv/bin/micropython tests/firmware/test_keystore.py
#
# The heap test runs the store in a child MicroPython with a 64 KiB heap and nothing
# else loaded: the test runner and this file would not leave room for 32 credentials
# on a 64-bit Unix port, which needs about 1.7 times the RAM of a 32-bit ESP32.

import gc
import hashlib
import os
import struct
from binascii import hexlify

import unittest
from scratch import remove_tree, scratch_dir
from flashsim import power_cuts

from carkey import storage
from carkey.ecu import keystore
from carkey.ecu.keystore import Credential, KeyStore, KeyStoreError

MOUNT = "/flash"
STATE = MOUNT + "/state"
T0 = 1709210096


def pub(i):
    h = hashlib.sha256(bytes((i,))).digest()
    return b"\x04" + h + hashlib.sha256(h).digest()


def kp(i):
    return hashlib.sha256(b"k" + bytes((i,))).digest()


def full(i):
    """A credential with every field set: Kpersistent, 128-byte profile, two windows."""
    return Credential(
        pub(i),
        1 if i == 0 else 2 + i % 3,
        0x7F - i % 8,
        not_before=T0 + i,
        not_after=T0 + 86400 + i,
        schedule=b"\x1f\x01\xe0\x04\x38\x60\x00\x00\x05\xa0",
        use_limit=i,
        uses=2 * i,
        kpersistent=kp(i),
        last_use=T0 - i,
        profile=bytes((i,)) * 128,
        serial_floor=i * 3,
    )


def fields(c):
    return (
        c.pub,
        c.slot,
        c.role,
        c.entitlements,
        c.not_before,
        c.not_after,
        c.schedule,
        c.use_limit,
        c.uses,
        c.status,
        c.kpersistent,
        c.last_use,
        c.profile,
        c.serial_floor,
    )


def fingerprint(ks):
    """Digest of everything a store holds, in order, through the public API."""
    h = hashlib.sha256()
    for c in ks:
        for v in fields(c):
            h.update(repr(v).encode())
    for slot in ks.revoked_slots():
        h.update(slot)
    for name in ("txn", "lockouts"):
        h.update(repr(ks.counter(name)).encode())
    return h.digest()


class CredentialTest(unittest.TestCase):
    def test_fields_round_trip(self):
        c = full(4)
        self.assertEqual(
            fields(c),
            (
                pub(4),
                hashlib.sha1(pub(4)).digest()[:8],
                3,
                0x7B,
                T0 + 4,
                T0 + 86404,
                b"\x1f\x01\xe0\x04\x38\x60\x00\x00\x05\xa0",
                4,
                8,
                0,
                kp(4),
                T0 - 4,
                b"\x04" * 128,
                12,
            ),
        )

    def test_defaults(self):
        c = Credential(pub(1), 3, 0x2B)
        self.assertEqual(
            fields(c)[2:], (3, 0x2B, 0, 0, b"", 0, 0, 0, None, 0, b"", 0)
        )

    def test_setters_keep_other_fields(self):
        c = full(2)
        c.kpersistent = None
        c.profile = b"seat=3"
        c.uses = 0xFFFFFFFF
        c.schedule = b""
        self.assertEqual(fields(c)[6:13], (b"", 2, 0xFFFFFFFF, 0, None, T0 - 2, b"seat=3"))
        c.kpersistent = kp(9)
        self.assertEqual((c.kpersistent, c.profile, c.not_after), (kp(9), b"seat=3", T0 + 86402))

    def test_bad_fields_refused(self):
        bad = (
            lambda: Credential(pub(1)[:64], 2, 0),
            lambda: Credential(b"\x02" + pub(1)[1:], 2, 0),
            lambda: Credential(pub(1), 0, 0),
            lambda: Credential(pub(1), 5, 0),
            lambda: Credential(pub(1), 2, 0x10000),
            lambda: Credential(pub(1), 2, 0, not_before=-1),
            lambda: Credential(pub(1), 2, 0, not_after=0x100000000),
            lambda: Credential(pub(1), 2, 0, schedule=bytes(7)),
            lambda: Credential(pub(1), 2, 0, use_limit=0x10000),
            lambda: Credential(pub(1), 2, 0, status=3),
            lambda: Credential(pub(1), 2, 0, kpersistent=bytes(31)),
            lambda: Credential(pub(1), 2, 0, profile=bytes(129)),
        )
        for make in bad:
            with self.assertRaises(KeyStoreError):
                make()

    def test_bad_assignment_refused_and_value_kept(self):
        c = full(1)
        with self.assertRaises(KeyStoreError) as ctx:
            c.role = 9
        self.assertEqual(str(ctx.exception), "keystore: bad credential field role")
        self.assertEqual(c.role, 3)

    def test_repr_hides_kpersistent(self):
        c = full(5)
        text = repr(c)
        self.assertEqual(
            text,
            "Credential(slot=%s role=4 status=0 entitlements=0x7a uses=10 kpersistent=set)"
            % hexlify(c.slot).decode(),
        )
        self.assertNotIn(hexlify(kp(5)).decode(), text)
        self.assertEqual(str(c), text)


class StoreTest(unittest.TestCase):
    def setUp(self):
        self.dir = scratch_dir()
        self.ks = KeyStore(self.dir)

    def tearDown(self):
        remove_tree(self.dir)

    def reloaded(self):
        return KeyStore(self.dir)

    def test_empty_store(self):
        self.assertEqual((len(self.ks), self.ks.owners(), self.ks.fast_candidates()), (0, [], []))
        self.assertEqual(os.listdir(self.dir), [])

    def test_lookups(self):
        a = self.ks.add(full(0))
        b = self.ks.add(full(1))
        self.assertIs(self.ks.get(pub(1)), b)
        self.assertIs(self.ks.find(pub(0)), a)
        self.assertIs(self.ks.by_slot(a.slot), a)
        self.assertIs(self.ks.find_slot(b.slot), b)
        self.assertIsNone(self.ks.get(pub(2)))
        self.assertIsNone(self.ks.by_slot(bytes(8)))
        self.assertEqual(self.ks.owners(), [a])

    def test_commit_and_reload_every_field_in_order(self):
        for i in range(4):
            self.ks.add(full(i))
        self.ks.add(Credential(pub(9), 4, 0x55))
        self.assertEqual(self.ks.commit(), 1)
        again = self.reloaded()
        self.assertEqual([fields(c) for c in again], [fields(c) for c in self.ks])

    def test_load_discards_uncommitted_changes(self):
        self.ks.add(full(0))
        self.ks.commit()
        self.ks.add(full(1))
        self.ks.get(pub(0)).uses = 99
        self.ks.load()
        self.assertEqual((len(self.ks), self.ks.get(pub(0)).uses), (1, 0))

    def test_replace_keeps_position(self):
        for i in range(3):
            self.ks.add(full(i))
        self.ks.add(Credential(pub(1), 3, 0x01))
        self.assertEqual([(c.pub, c.role) for c in self.ks], [(pub(0), 1), (pub(1), 3), (pub(2), 4)])

    def test_full_store_refuses_more(self):
        for i in range(keystore.MAX_CREDENTIALS):
            self.ks.add(Credential(pub(i), 2, 1))
        with self.assertRaises(KeyStoreError) as ctx:
            self.ks.add(Credential(pub(200), 2, 1))
        self.assertEqual(str(ctx.exception), "keystore: full")
        self.ks.add(Credential(pub(3), 3, 1))  # a replacement still fits
        self.assertEqual(len(self.ks), 32)

    def test_record_use_orders_fast_candidates(self):
        for i in range(4):
            self.ks.add(full(i))
        self.ks.set_kpersistent(pub(2), None)
        self.ks.record_use(pub(3), T0 + 50)
        c = self.ks.record_use(pub(1), T0 + 60)
        self.assertEqual((c.uses, c.last_use), (3, T0 + 60))
        self.assertEqual([c.pub for c in self.ks.fast_candidates()], [pub(1), pub(3), pub(0)])
        self.ks.commit()
        self.assertEqual([c.pub for c in self.reloaded().fast_candidates()], [pub(1), pub(3), pub(0)])

    def test_set_kpersistent(self):
        self.ks.add(Credential(pub(1), 2, 1))
        self.assertEqual(self.ks.fast_candidates(), [])
        self.ks.set_kpersistent(pub(1), kp(1))
        self.assertEqual([c.kpersistent for c in self.ks.fast_candidates()], [kp(1)])
        with self.assertRaises(KeyStoreError):
            self.ks.set_kpersistent(pub(1), bytes(16))
        with self.assertRaises(KeyStoreError) as ctx:
            self.ks.set_kpersistent(pub(2), kp(2))
        self.assertEqual(str(ctx.exception), "keystore: unknown credential")

    def test_suspend_and_resume(self):
        c = self.ks.add(full(1))
        self.assertIs(self.ks.set_status(c.slot, 1), c)
        self.assertEqual(c.status, 1)
        self.assertEqual(self.ks.fast_candidates(), [c])  # identified fast, then refused
        self.ks.set_status(c.slot, 0)
        self.assertEqual(c.status, 0)
        self.assertEqual(self.ks.revoked_slots(), [])

    def test_revoke_is_permanent_and_wipes_kpersistent(self):
        c = self.ks.add(full(1))
        old_record = c._r  # white box: the buffer that held the secret
        self.ks.set_status(c.slot, 2)
        self.assertEqual((c.status, c.kpersistent), (2, None))
        self.assertEqual(bytes(old_record[94:126]), bytes(32))
        self.assertEqual(self.ks.fast_candidates(), [])
        self.assertTrue(self.ks.is_revoked(c.slot))
        for status in (0, 1):
            with self.assertRaises(KeyStoreError):
                self.ks.set_status(c.slot, status)
        with self.assertRaises(KeyStoreError):
            self.ks.set_kpersistent(pub(1), kp(1))

    def test_revocation_outlives_the_record(self):
        c = self.ks.add(full(1))
        self.ks.set_status(c.slot, 2)
        self.assertIs(self.ks.remove(c.slot), c)
        self.assertIsNone(self.ks.get(pub(1)))
        with self.assertRaises(KeyStoreError) as ctx:
            self.ks.add(full(1))
        self.assertEqual(str(ctx.exception), "keystore: key slot revoked")
        self.ks.commit()
        again = self.reloaded()
        self.assertEqual(again.revoked_slots(), [c.slot])
        self.assertTrue(again.is_revoked(c.slot))

    def test_revoke_slot_never_enrolled(self):
        slot = keystore.key_slot(pub(7))
        self.assertIsNone(self.ks.set_status(slot, 2))
        self.ks.set_status(slot, 2)  # twice: listed once
        self.assertEqual(self.ks.revoked_slots(), [slot])
        with self.assertRaises(KeyStoreError):
            self.ks.set_status(keystore.key_slot(pub(8)), 1)  # suspend needs a record

    def test_revocation_list_is_bounded(self):
        for i in range(keystore.MAX_REVOKED):
            self.ks.set_status(struct.pack(">Q", i), 2)
        with self.assertRaises(KeyStoreError):
            self.ks.set_status(struct.pack(">Q", 999), 2)
        self.assertEqual(len(self.ks.revoked_slots()), keystore.MAX_REVOKED)

    def test_counters(self):
        self.assertEqual(self.ks.counter("txn"), 0)
        self.assertEqual(self.ks.bump("txn"), 1)
        self.assertEqual(self.ks.bump("txn", 4), 5)
        self.ks.set_counter("lockouts", 0xFFFFFFFF)
        with self.assertRaises(KeyStoreError):
            self.ks.bump("lockouts")
        self.ks.commit()
        again = self.reloaded()
        self.assertEqual((again.counter("txn"), again.counter("lockouts")), (5, 0xFFFFFFFF))

    def test_counter_count_is_bounded(self):
        for i in range(keystore.MAX_COUNTERS):
            self.ks.set_counter("c%d" % i, i)
        with self.assertRaises(KeyStoreError):
            self.ks.set_counter("one-more", 1)
        self.ks.set_counter("c0", 7)  # existing names can still change

    def test_body_format(self):
        c = Credential(pub(1), 2, 0x1F, 10, 20, b"\x1f\x00\x00\x05\xa0", 3, 1, 0, kp(1), 30, b"a=b", 40)
        self.ks.add(c)
        self.ks.set_status(b"ABCDEFGH", 2)
        self.ks.set_counter("txn", 258)
        self.ks.commit()
        expected = (
            b"\x01\x01\x00\x01\x01"  # version 1, 1 credential, 1 revoked slot, 1 counter
            + b"\x03txn\x00\x00\x01\x02"
            + b"ABCDEFGH"
            + pub(1)
            + struct.pack(">BBBHIIHIIIBB", 2, 0, 1, 0x1F, 10, 20, 3, 1, 30, 40, 5, 3)
            + kp(1)
            + b"\x1f\x00\x00\x05\xa0"
            + b"a=b"
        )
        self.assertEqual(storage.load(self.dir, "keys"), expected)

    def test_unknown_version_is_a_clear_error(self):
        storage.save(self.dir, "keys", b"\x02\x00\x00\x00\x00")
        with self.assertRaises(KeyStoreError) as ctx:
            self.reloaded()
        self.assertEqual(str(ctx.exception), "keystore: unsupported format version 2")

    def test_body_length_mismatch_is_an_error(self):
        storage.save(self.dir, "keys", b"\x01\x00\x00\x00\x00\x00")
        with self.assertRaises(KeyStoreError):
            self.reloaded()

    def test_all_copies_corrupt_is_a_storage_error(self):
        self.ks.add(full(1))
        self.ks.commit()
        with open(self.dir + "/keys.a", "r+b") as f:
            f.seek(30)
            f.write(b"\xff")
        with self.assertRaises(storage.StorageError):
            self.reloaded()


# Runs in the child: 32 full credentials enrolled, committed, reloaded, used, committed.
HEAP_SCRIPT = """
import gc, hashlib
from carkey.ecu.keystore import Credential, KeyStore
gc.collect()
base = gc.mem_alloc()
def pub(i):
    h = hashlib.sha256(bytes((i,))).digest()
    return b"\\x04" + h + hashlib.sha256(h).digest()
ks = KeyStore(%(dir)r)
for i in range(32):
    k = hashlib.sha256(b"k" + bytes((i,))).digest()
    ks.add(Credential(pub(i), 2, 0x7F, 1, 2, bytes(10), 3, 4, 0, k, 5, bytes((i,)) * 128, 6))
ks.commit()
ks = None
gc.collect()
before = gc.mem_alloc()
ks = KeyStore(%(dir)r)
gc.collect()
held = gc.mem_alloc() - before
ks.record_use(pub(31), 1000)
ks.commit()
ks = KeyStore(%(dir)r)
ok = len(ks) == 32 and len(ks.fast_candidates()) == 32 and ks.fast_candidates()[0].pub == pub(31)
gc.collect()
with open(%(out)r, "w") as f:
    f.write("%%d %%d %%d %%d" %% (ok, held, before - base, gc.mem_free()))
"""


class HeapTest(unittest.TestCase):
    """32 credentials, each with Kpersistent and a 128-byte profile, in a 64 KiB heap."""

    def setUp(self):
        self.dir = scratch_dir()

    def tearDown(self):
        remove_tree(self.dir)

    def test_thirty_two_full_credentials_in_64k(self):
        import sys

        script = self.dir + "/heap_script.py"
        out = self.dir + "/heap_result"
        with open(script, "w") as f:
            f.write(HEAP_SCRIPT % {"dir": self.dir + "/state", "out": out})
        status = os.system("%s -X heapsize=64k %s" % (sys.executable, script))
        self.assertEqual(status, 0)
        with open(out) as f:
            ok, held, code, free = [int(v) for v in f.read().split()]
        remove_tree(self.dir + "/state")
        self.assertEqual(ok, 1)
        # About 490 bytes per credential on a 64-bit Unix port; less on a 32-bit ESP32.
        self.assertLess(held, 18 * 1024)
        self.assertGreater(free, 16 * 1024)  # left for everything else, with 32 loaded


def enrol_32():
    ks = KeyStore(STATE)
    for i in range(32):
        ks.add(full(i))
    ks.set_counter("txn", 7)
    ks.commit()


def transaction_changes():
    # What a granted fast transaction, a revocation and a new Kpersistent change.
    ks = KeyStore(STATE)
    ks.record_use(pub(20), T0 + 100)
    ks.bump("txn")
    ks.set_kpersistent(pub(3), kp(77))
    ks.set_status(keystore.key_slot(pub(9)), 2)
    ks.commit()


class PowerCutTest(unittest.TestCase):
    def setUp(self):
        self.images = "%s/carkey-flash-%s" % (os.getenv("TMPDIR") or "/tmp", hexlify(os.urandom(6)).decode())

    def tearDown(self):
        for suffix in (".0", ".1"):
            try:
                os.remove(self.images + suffix)
            except OSError:
                pass

    def run_matrix(self, prepare, change, **flash):
        old = new = None
        seen = {}
        total = 0
        for k, torn in power_cuts(prepare, change, MOUNT, **flash):
            fp = fingerprint(KeyStore(STATE))  # never raises: some state is always intact
            if k == 0 and not torn:
                old = fp
            if not torn:
                total, new = k, fp  # the last clean point is the uncut commit
            seen[fp] = seen.get(fp, 0) + 1
        self.assertNotEqual(old, new)
        self.assertEqual(sorted(seen), sorted([old, new]))
        self.assertEqual(seen[old] + seen[new], 2 * total + 1)
        return total

    def test_commit_of_32_credentials(self):
        self.assertGreaterEqual(self.run_matrix(enrol_32, transaction_changes), 80)

    def test_first_commit(self):
        self.assertGreaterEqual(self.run_matrix(lambda: None, enrol_32), 80)

    def test_commit_on_fat(self):
        self.assertGreaterEqual(self.run_matrix(enrol_32, transaction_changes, fs="fat"), 30)

    def test_first_commit_on_fat(self):
        self.assertGreaterEqual(self.run_matrix(lambda: None, enrol_32, fs="fat"), 30)

    def test_commit_with_flash_in_host_files(self):
        # The same matrix with the images outside the heap, as 64 KiB tests need.
        self.assertGreaterEqual(self.run_matrix(enrol_32, transaction_changes, path=self.images), 80)


if __name__ == "__main__":
    unittest.main()
