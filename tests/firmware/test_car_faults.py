# carkey — every tap ends as a logged outcome: full lists, failed commits and reader faults.
# SPDX-License-Identifier: MIT
#
# The firmware Car with in-process devices (tests/mpy/mpy_device.py). A full key store
# or revocation list has a documented answer (docs/PROTOCOL.md §5, §6: result 0D),
# nothing changes in RAM unless its commit lands, and no exception leaves Car.handle.
#
# Run: .venv/bin/pytest -q tests/firmware/test_car_faults.py

import unittest

from car_rig import CarRig
from carkey import storage
from carkey.crypto import p256
from carkey.ecu import codes, documents
from carkey.ecu.keystore import MAX_CREDENTIALS, MAX_REVOKED, Credential, KeyStore, key_slot
from carkey.protocol import tlv

UNLOCK = codes.CMD_UNLOCK


class FaultTest(unittest.TestCase):
    def setUp(self):
        self.rig = CarRig("faults")
        self.owner_priv = self.rig.owner.priv
        self.serial = 100

    def tearDown(self):
        self.rig.close()

    def share_for(self, device):
        self.serial += 1
        body = documents.share_body(self.rig.identity.group_id, device.pub, codes.ROLE_GUEST, 0x6F, 0, 0, b"", 0,
                                    self.serial)
        return documents.sign(documents.SHARE_TAG, body, self.owner_priv, self.rig.owner.pub)

    def revocation(self, slot, action=codes.ACTION_REVOKE):
        self.serial += 1
        body = documents.revocation_body(self.rig.identity.group_id, slot, self.serial, action)
        return documents.sign(documents.REVOCATION_TAG, body, self.owner_priv, self.rig.owner.pub)

    def fill_keys(self):
        keys = self.rig.car.keys
        while len(keys) < MAX_CREDENTIALS:
            keys.add(Credential(p256.generate_keypair()[1], codes.ROLE_GUEST, 0x6F))
        keys.commit()

    def test_a_valid_share_with_the_key_store_full_is_refused_and_logged(self):
        self.fill_keys()
        friend = self.rig.device()
        friend.envelope = tlv.encode(0xC3, self.share_for(friend))
        before = storage.load(self.rig.dir, "keys")
        out = self.rig.tap(friend)
        self.assertFalse(out.granted)
        self.assertEqual(out.results, [(UNLOCK, codes.NO_ROOM)])
        self.assertEqual(friend.results[0][:2], bytes((UNLOCK, codes.NO_ROOM)))
        self.assertEqual(storage.load(self.rig.dir, "keys"), before)  # nothing changed
        self.assertEqual(len(self.rig.car.keys), MAX_CREDENTIALS)
        # The owner still acts, and the next taps are served as always.
        self.assertTrue(self.rig.tap(self.rig.owner).granted)

    def fill_revocations(self):
        keys = self.rig.car.keys
        for i in range(MAX_REVOKED):
            keys.set_status(bytes((0xEE, i)) + bytes(6), codes.STATUS_REVOKED)
        keys.commit()

    def test_with_128_revocations_the_owner_still_revokes_an_enrolled_key(self):
        friend = self.rig.device()
        self.rig.car.keys.add(Credential(friend.pub, codes.ROLE_DRIVER, codes.ENT_ALL))
        self.fill_revocations()
        self.rig.owner.envelope = tlv.encode(0xC5, self.revocation(key_slot(friend.pub)))
        out = self.rig.tap(self.rig.owner)
        self.assertTrue(out.granted, out)
        self.assertEqual(self.rig.owner.documents, [bytes((documents.REVOCATION_TAG, codes.OK))])
        # The record carries the revocation: the friend is refused, after a reboot too.
        self.assertEqual(self.rig.tap(friend).results, [(UNLOCK, codes.KEY_REVOKED)])
        self.rig.build()
        self.assertEqual(self.rig.tap(friend).results, [(UNLOCK, codes.KEY_REVOKED)])
        self.assertEqual(KeyStore(self.rig.dir).get(friend.pub).status, codes.STATUS_REVOKED)

    def test_a_refused_revocation_raises_no_floor_in_ram(self):
        self.fill_revocations()
        owner = self.rig.car.keys.get(self.rig.owner.pub)
        floor = owner.serial_floor
        self.rig.owner.envelope = tlv.encode(0xC5, self.revocation(b"\x01" * 8))  # never enrolled: needs a list entry
        out = self.rig.tap(self.rig.owner)
        self.assertEqual(self.rig.owner.documents, [bytes((documents.REVOCATION_TAG, codes.NO_ROOM))])
        self.assertTrue(out.granted)  # the owner's own command is not held up by the refusal
        self.assertEqual(self.rig.car.keys.get(self.rig.owner.pub).serial_floor, floor)
        self.assertEqual(KeyStore(self.rig.dir).get(self.rig.owner.pub).serial_floor, floor)
        self.assertFalse(self.rig.car.keys.is_revoked(b"\x01" * 8))
        # The owner can still act: suspend a friend with the next serial.
        friend = self.rig.device()
        self.rig.car.keys.add(Credential(friend.pub, codes.ROLE_DRIVER, codes.ENT_ALL))
        self.rig.car.keys.commit()
        self.rig.owner.envelope = tlv.encode(0xC5, self.revocation(key_slot(friend.pub), codes.ACTION_SUSPEND))
        self.assertTrue(self.rig.tap(self.rig.owner).granted)
        self.assertEqual(self.rig.tap(friend).results, [(UNLOCK, codes.KEY_SUSPENDED)])

    def test_a_fault_inside_the_reader_ends_as_a_logged_refusal(self):
        car = self.rig.car
        real = car.door.execute

        def broken(command, argument=b""):
            raise OSError(5)  # EIO: e.g. a relay driver on a failing bus

        car.door.execute = broken
        out = self.rig.tap(self.rig.owner)
        car.door.execute = real
        self.assertFalse(out.granted)
        self.assertEqual(out.error, codes.READER_FAULT)
        self.assertEqual(list(car.log.records())[-1][6], codes.READER_FAULT)
        self.assertTrue(self.rig.tap(self.rig.owner).granted)

    def test_a_failed_commit_leaves_ram_as_on_flash(self):
        self.fill_keys()
        keys = self.rig.car.keys
        friend = self.rig.device()
        keys.remove(list(keys)[-1].slot)
        keys.commit()
        friend.envelope = tlv.encode(0xC3, self.share_for(friend))
        real = storage.save_with

        def failing(*args):
            raise OSError(28)  # ENOSPC

        storage.save_with = failing
        try:
            out = self.rig.tap(friend)
        finally:
            storage.save_with = real
        self.assertFalse(out.granted)
        self.assertIsNone(keys.get(friend.pub))  # RAM holds what flash holds
        self.assertEqual(len(keys), MAX_CREDENTIALS - 1)

    def test_a_fault_during_passive_entry_is_logged_not_raised(self):
        car = self.rig.car

        def broken(command, argument=b""):
            raise OSError(5)

        car.door.execute = broken
        code = car.passive(UNLOCK, self.rig.owner.pub, 2)
        car.settle()
        self.assertEqual(code, codes.READER_FAULT)
        self.assertEqual(list(car.log.records())[-1][6], codes.READER_FAULT)
