# carkey — card keys in the key store (identifier 00 || UID || zeros) and the card master key record.
# SPDX-License-Identifier: MIT
#
# Run: .venv/bin/pytest -q tests/firmware/test_keystore_cards.py
#  or: MICROPYPATH=firmware:tests/mpy:tests/firmware .venv/bin/micropython tests/firmware/test_keystore_cards.py

import hashlib
from binascii import unhexlify as h

import unittest
from scratch import remove_tree, scratch_dir

from carkey import storage
from carkey.ecu import cardkey
from carkey.ecu.keystore import Credential, KeyStore, KeyStoreError, card_identifier, key_slot

MPY_HEAPSIZE = "64k"

UID = h("04A1B2C3D4E5F6")
CARD = h("0004A1B2C3D4E5F6") + bytes(57)


def phone_pub(i):
    d = hashlib.sha256(bytes((i,))).digest()
    return b"\x04" + d + hashlib.sha256(d).digest()


class CardCredentialTest(unittest.TestCase):
    def test_identifier_layout(self):
        self.assertEqual(card_identifier(UID), CARD)

    def test_identifier_needs_seven_bytes(self):
        with self.assertRaises(KeyStoreError):
            card_identifier(UID[:4])

    def test_card_credential_fields(self):
        c = Credential(CARD, 3, 0x0006, use_limit=10)
        self.assertEqual((c.pub, c.card_uid, c.slot), (CARD, UID, hashlib.sha1(CARD).digest()[:8]))
        self.assertEqual((c.role, c.entitlements, c.use_limit), (3, 0x0006, 10))

    def test_phone_credential_has_no_card_uid(self):
        self.assertIsNone(Credential(phone_pub(1), 2, 0x7F).card_uid)

    def test_card_identifier_with_trailing_data_refused(self):
        bad = bytearray(CARD)
        bad[64] = 1
        with self.assertRaises(KeyStoreError):
            Credential(bytes(bad), 3, 0x06)

    def test_other_identifier_forms_refused(self):
        for bad in (b"\x02" + bytes(64), b"\x03" + bytes(64), CARD[:64], CARD + b"\x00", phone_pub(1)[:64]):
            with self.assertRaises(KeyStoreError):
                Credential(bad, 3, 0x06)

    def test_card_cannot_be_owner(self):
        with self.assertRaises(KeyStoreError) as cm:
            Credential(CARD, 1, 0x7F)
        self.assertIn("cannot be an owner", str(cm.exception))


class CardStoreTest(unittest.TestCase):
    def setUp(self):
        self.dir = scratch_dir()
        self.ks = KeyStore(self.dir)

    def tearDown(self):
        remove_tree(self.dir)

    def test_cards_and_phones_round_trip(self):
        self.ks.add(Credential(phone_pub(1), 1, 0x7F))
        self.ks.add(Credential(CARD, 4, 0x0055, not_before=1700000000, not_after=1800000000, schedule=h("1f01e00438")))
        self.ks.commit()
        again = KeyStore(self.dir)
        card = again.get(card_identifier(UID))
        self.assertEqual((card.card_uid, card.role, card.entitlements, card.schedule), (UID, 4, 0x55, h("1f01e00438")))
        self.assertEqual((card.not_before, card.not_after), (1700000000, 1800000000))
        self.assertIsNone(again.get(phone_pub(1)).card_uid)

    def test_card_revocation_is_permanent(self):
        c = self.ks.add(Credential(CARD, 3, 0x06))
        self.ks.set_status(key_slot(CARD), 2)
        self.assertEqual(c.status, 2)
        with self.assertRaises(KeyStoreError):
            self.ks.add(Credential(CARD, 3, 0x06))

    def test_malformed_card_identifier_in_file_refused(self):
        self.ks.add(Credential(CARD, 3, 0x06))
        self.ks.commit()
        body = bytearray(storage.load(self.dir, "keys"))
        body[5 + 64] = 1  # last identifier byte: no longer 00 || UID || zeros
        storage.save(self.dir, "keys", body)
        with self.assertRaises(KeyStoreError) as cm:
            KeyStore(self.dir)
        self.assertEqual(str(cm.exception), "keystore: malformed credential")

    def test_card_owner_in_file_refused(self):
        self.ks.add(Credential(CARD, 3, 0x06))
        self.ks.commit()
        body = bytearray(storage.load(self.dir, "keys"))
        body[5 + 65] = 1  # role byte: owner
        storage.save(self.dir, "keys", body)
        with self.assertRaises(KeyStoreError):
            KeyStore(self.dir)


class CardMasterKeyTest(unittest.TestCase):
    def setUp(self):
        self.dir = scratch_dir()

    def tearDown(self):
        remove_tree(self.dir)

    def test_none_before_creation(self):
        self.assertIsNone(cardkey.load(self.dir))

    def test_create_then_load(self):
        key = cardkey.create(self.dir)
        self.assertEqual(len(key), 16)
        self.assertEqual(cardkey.load(self.dir), key)
        self.assertEqual(storage.load(self.dir, "cardkey"), b"\x01" + bytes(key))

    def test_create_refuses_to_replace(self):
        key = cardkey.create(self.dir)
        with self.assertRaises(cardkey.CardKeyError):
            cardkey.create(self.dir)
        self.assertEqual(cardkey.load(self.dir), key)

    def test_restore(self):
        cardkey.create(self.dir)
        cardkey.restore(self.dir, bytes(range(16)))
        self.assertEqual(cardkey.load(self.dir), bytes(range(16)))

    def test_restore_refuses_bad_length(self):
        with self.assertRaises(cardkey.CardKeyError):
            cardkey.restore(self.dir, bytes(15))
        self.assertIsNone(cardkey.load(self.dir))

    def test_unknown_version_refused(self):
        storage.save(self.dir, "cardkey", b"\x02" + bytes(16))
        with self.assertRaises(cardkey.CardKeyError) as cm:
            cardkey.load(self.dir)
        self.assertEqual(str(cm.exception), "cardkey: unsupported format version 2")

    def test_bad_length_refused(self):
        storage.save(self.dir, "cardkey", b"\x01" + bytes(15))
        with self.assertRaises(cardkey.CardKeyError):
            cardkey.load(self.dir)


if __name__ == "__main__":
    unittest.main()
