# carkey — tests for carkey.ecu.documents: share and revocation parsing, signatures, acceptance.
# SPDX-License-Identifier: MIT
#
# Every acceptance rule of docs/PROTOCOL.md §5 and §6 and every refusal code, against
# the real key store kept in memory (tests/mpy/fakekeystore.py).
# Run: .venv/bin/pytest -q tests/firmware/test_documents.py
#  or: MICROPYPATH=firmware:tests/mpy:tests/firmware .venv/bin/micropython tests/firmware/test_documents.py

import hashlib
import unittest

from carkey.crypto import p256
from carkey.ecu import documents as d
from carkey.ecu import policy
from carkey.ecu.codes import (
    ACTION_RESUME,
    ACTION_REVOKE,
    ACTION_SUSPEND,
    CLOCK_UNTRUSTED,
    CMD_DRIVE_ENABLE,
    CMD_UNLOCK,
    DOCUMENT_REFUSED,
    DOCUMENT_SUPERSEDED,
    KEY_REVOKED,
    KEY_SUSPENDED,
    KIND_STANDARD,
    NOT_ENTITLED,
    OK,
    OUTSIDE_VALIDITY,
    ROLE_DRIVER,
    ROLE_GUEST,
    ROLE_OWNER,
    ROLE_VALET,
    STATUS_ACTIVE,
    STATUS_REVOKED,
    STATUS_SUSPENDED,
)
from carkey.ecu.documents import DocumentError, apply_revocation, apply_share
from carkey.ecu.keystore import Credential, key_slot
from carkey.protocol import tlv
from fakekeystore import memory_store, owner

GROUP = bytes(range(0x10, 0x20))
NOW = 1750000000
FROM = NOW - 3600
UNTIL = NOW + 86400
WORKDAYS = b"\x1f\x01\xe0\x03\xfc"  # Monday..Friday 08:00-17:00


def keypair(label):
    priv = hashlib.sha256(label).digest()
    return priv, p256.public_key(priv)


OWNER_PRIV, OWNER_PUB = keypair(b"owner")
OWNER2_PRIV, OWNER2_PUB = keypair(b"second owner")
FRIEND_PRIV, FRIEND_PUB = keypair(b"friend")
OTHER_PRIV, OTHER_PUB = keypair(b"stranger")


def body(**kw):
    f = {
        "group_id": GROUP,
        "friend_pub": FRIEND_PUB,
        "role": ROLE_GUEST,
        "entitlements": 0x23,
        "valid_from": FROM,
        "valid_until": UNTIL,
        "schedule": b"",
        "use_limit": 10,
        "serial": 100,
        "delegation": 0,
    }
    f.update(kw)
    return d.share_body(
        f["group_id"], f["friend_pub"], f["role"], f["entitlements"], f["valid_from"], f["valid_until"], f["schedule"], f["use_limit"], f["serial"], f["delegation"]
    )


def share(priv=OWNER_PRIV, pub=OWNER_PUB, **kw):
    return d.sign(d.SHARE_TAG, body(**kw), priv, pub)


def rbody(target=None, serial=200, action=ACTION_REVOKE, group_id=GROUP):
    return d.revocation_body(group_id, key_slot(FRIEND_PUB) if target is None else target, serial, action)


def revocation(priv=OWNER_PRIV, pub=OWNER_PUB, **kw):
    return d.sign(d.REVOCATION_TAG, rbody(**kw), priv, pub)


def store(*extra, floor=50):
    return memory_store([owner(OWNER_PUB, floor), owner(OWNER2_PUB)] + list(extra))


def friend_record(role=ROLE_GUEST, status=STATUS_ACTIVE, serial_floor=100):
    return Credential(FRIEND_PUB, role, policy.default_entitlements(role), status=status, serial_floor=serial_floor)


class EncodingTest(unittest.TestCase):
    def test_revocation_body_bytes(self):
        self.assertEqual(
            d.revocation_body(GROUP, b"\xaa" * 8, 0x01020304, ACTION_SUSPEND),
            bytes.fromhex("800101" + "8110" + GROUP.hex() + "8b08" + "aa" * 8 + "890401020304" + "8c0102"),
        )

    def test_share_body_bytes(self):
        b = body(schedule=WORKDAYS, serial=0x0A0B0C0D)
        expected = (
            "800101" + "8110" + GROUP.hex() + "8241" + FRIEND_PUB.hex() + "830103" + "84020023"
            + "8504" + FROM.to_bytes(4, "big").hex() + "8604" + UNTIL.to_bytes(4, "big").hex()
            + "8705" + WORKDAYS.hex() + "8802000a" + "89040a0b0c0d" + "8a0100"
        )
        self.assertEqual(b, bytes.fromhex(expected))
        self.assertEqual(len(body()), 120)

    def test_document_layout(self):
        doc = share()
        self.assertEqual(len(doc), 3 + 120 + 66 + 67)
        self.assertEqual(doc[:3], b"\xe2\x81\xfd")
        self.assertEqual(doc[3:123], body())
        self.assertEqual(doc[123:125], b"\x9e\x40")
        self.assertEqual(doc[189:191], b"\x5a\x41")
        self.assertEqual(doc[191:], OWNER_PUB)
        self.assertEqual(share(schedule=WORKDAYS)[:4], b"\xe2\x82\x01\x04")
        rev = revocation()
        self.assertEqual(rev[:3], b"\xe3\x81\xad")
        self.assertEqual(len(rev), 3 + 0xAD)

    def test_signed_digests(self):
        b = body()
        self.assertEqual(d.digest(d.SHARE_TAG, b), hashlib.sha256(b"carkey/share/v1\x00" + b).digest())
        self.assertEqual(d.digest(d.REVOCATION_TAG, b), hashlib.sha256(b"carkey/revoke/v1\x00" + b).digest())

    def test_signature_verifies(self):
        doc = share()
        sig = doc[125:189]
        self.assertTrue(p256.verify(OWNER_PUB, hashlib.sha256(b"carkey/share/v1\x00" + body()).digest(), sig))


class ParseShareTest(unittest.TestCase):
    def test_fields(self):
        f = d.parse_share(share(schedule=WORKDAYS))
        self.assertEqual(f["group_id"], GROUP)
        self.assertEqual(f["friend_pub"], FRIEND_PUB)
        self.assertEqual(f["role"], ROLE_GUEST)
        self.assertEqual(f["entitlements"], 0x23)
        self.assertEqual(f["valid_from"], FROM)
        self.assertEqual(f["valid_until"], UNTIL)
        self.assertEqual(f["schedule"], WORKDAYS)
        self.assertEqual(f["use_limit"], 10)
        self.assertEqual(f["serial"], 100)
        self.assertEqual(f["delegation"], 0)
        self.assertEqual(f["body"], body(schedule=WORKDAYS))
        self.assertEqual(f["owner"], OWNER_PUB)
        self.assertEqual(len(f["signature"]), 64)

    def test_no_schedule(self):
        self.assertEqual(d.parse_share(share())["schedule"], b"")

    def reason(self, doc):
        with self.assertRaises(DocumentError) as ctx:
            d.parse_share(doc)
        return str(ctx.exception)

    def test_every_truncation(self):
        doc = share(schedule=WORKDAYS)
        for n in range(len(doc)):
            with self.assertRaises(DocumentError):
                d.parse_share(doc[:n])

    def test_trailing_byte(self):
        self.assertEqual(self.reason(share() + b"\x00"), "trailing bytes")

    def test_extra_field_inside(self):
        doc = share()
        inner = doc[3:] + b"\x01\x00"
        self.assertEqual(self.reason(tlv.encode(0xE2, inner)), "trailing bytes")

    def test_not_a_share(self):
        self.assertEqual(self.reason(revocation()), "not a share document")
        self.assertEqual(self.reason(b""), "not a share document")

    def test_wrong_version(self):
        b = bytearray(body())
        b[2] = 2
        self.assertEqual(self.reason(d.assemble(d.SHARE_TAG, bytes(b), bytes(64), OWNER_PUB)), "unsupported version")

    def test_unknown_roles(self):
        for role in (0, 5, 0xFF):
            self.assertEqual(self.reason(share(role=role)), "unknown role")

    def test_empty_window(self):
        self.assertEqual(self.reason(share(valid_from=NOW, valid_until=NOW)), "empty validity window")
        self.assertEqual(self.reason(share(valid_from=NOW, valid_until=NOW - 1)), "empty validity window")

    def test_bad_schedule(self):
        self.assertEqual(self.reason(share(schedule=b"\x00\x00\x00\x00\x3c")), "bad schedule")
        self.assertEqual(self.reason(share(schedule=WORKDAYS[:4])), "bad schedule")

    def test_fields_out_of_order(self):
        b = body()
        until_at = b.index(b"\x86\x04")
        swapped = b[: until_at - 6] + b[until_at : until_at + 6] + b[until_at - 6 : until_at] + b[until_at + 6 :]
        self.assertEqual(self.reason(d.assemble(d.SHARE_TAG, swapped, bytes(64), OWNER_PUB)), "expected tag 85, found 86")

    def test_missing_delegation(self):
        b = body()[:-3]
        self.assertEqual(self.reason(d.assemble(d.SHARE_TAG, b, bytes(64), OWNER_PUB)), "expected tag 8A, found 9E")

    def test_wrong_field_length(self):
        b = body(entitlements=0x23)
        at = b.index(b"\x84\x02")
        longer = b[:at] + b"\x84\x03\x00" + b[at + 2 :]
        self.assertEqual(self.reason(d.assemble(d.SHARE_TAG, longer, bytes(64), OWNER_PUB)), "tag 84 length 3, expected 2")

    def test_length_not_shortest(self):
        b = body()
        long_form = b[:3] + b"\x81\x81\x10" + b[5:]
        self.assertEqual(self.reason(d.assemble(d.SHARE_TAG, long_form, bytes(64), OWNER_PUB)), "overlong length")
        doc = share()
        self.assertEqual(self.reason(b"\xe2\x83\x00\x00\xfd" + doc[3:]), "unsupported length form")
        self.assertEqual(self.reason(b"\xe2\x82\x00\xfd" + doc[3:]), "overlong length")
        self.assertEqual(self.reason(tlv.encode(0xE2, b"\x80\x01\x01")[:1] + b"\x82\x00\x03\x80\x01\x01"), "overlong length")

    def test_compressed_keys_refused(self):
        self.assertEqual(self.reason(share(friend_pub=b"\x02" + FRIEND_PUB[1:])), "tag 82 not an uncompressed public key")
        doc = share()
        self.assertEqual(self.reason(doc[:191] + b"\x03" + doc[192:]), "tag 5A not an uncompressed public key")

    def test_short_signature(self):
        b = body()
        self.assertEqual(self.reason(d.assemble(d.SHARE_TAG, b, bytes(63), OWNER_PUB)), "tag 9E length 63, expected 64")


class AcceptShareTest(unittest.TestCase):
    def accept(self, doc=None, ks=None, group=GROUP, friend=FRIEND_PUB, now=NOW, trusted=True):
        return d.accept_share(share() if doc is None else doc, store() if ks is None else ks, group, friend, now, trusted)

    def refused(self, doc=None, reason=None, code=DOCUMENT_REFUSED, **kw):
        got, detail = self.accept(doc, **kw)
        self.assertEqual((got, detail), (code, reason))

    def test_accepted(self):
        code, detail = self.accept(share(schedule=WORKDAYS))
        self.assertEqual(code, OK)
        self.assertEqual(detail["owner"], OWNER_PUB)
        self.assertEqual(
            detail["credential"],
            {
                "pub": FRIEND_PUB,
                "role": ROLE_GUEST,
                "entitlements": 0x23,
                "not_before": FROM,
                "not_after": UNTIL,
                "schedule": WORKDAYS,
                "use_limit": 10,
                "serial_floor": 100,
            },
        )

    def test_record_fits_the_key_store(self):
        ks = store()
        code, detail = self.accept(ks=ks)
        self.assertEqual(code, OK)
        cred = apply_share(ks, detail)
        self.assertIs(ks.find(FRIEND_PUB), cred)
        self.assertEqual(cred.slot, key_slot(FRIEND_PUB))
        self.assertEqual((cred.status, cred.uses), (STATUS_ACTIVE, 0))
        self.assertEqual(ks.find(OWNER_PUB).serial_floor, 50)

    def test_second_owner_may_share(self):
        self.assertEqual(self.accept(share(OWNER2_PRIV, OWNER2_PUB, serial=1))[0], OK)

    def test_wrong_group(self):
        self.refused(share(group_id=b"\x00" * 16), "other reader group")
        self.refused(share(), "other reader group", group=b"\x00" * 16)

    def test_signer_not_enrolled(self):
        self.refused(share(OTHER_PRIV, OTHER_PUB), "signer is not an active owner")

    def test_signer_not_an_owner(self):
        ks = memory_store([Credential(OTHER_PUB, ROLE_DRIVER, 0x7F)])
        self.refused(share(OTHER_PRIV, OTHER_PUB), "signer is not an active owner", ks=ks)

    def test_signer_suspended(self):
        ks = memory_store([owner(OWNER_PUB, 0, STATUS_SUSPENDED)])
        self.refused(share(), "signer is not an active owner", ks=ks)

    def test_friend_key_must_be_the_presenting_credential(self):
        self.refused(share(), "friend key is not the presenting credential", friend=OTHER_PUB)

    def test_owner_role_never_shared(self):
        self.refused(share(role=ROLE_OWNER, entitlements=0x7F), "owner role cannot be shared")

    def test_delegation_refused(self):
        for value in (1, 0xFF):
            self.refused(share(delegation=value), "delegation not allowed")

    def test_entitlements_within_role(self):
        self.refused(share(entitlements=0x6F | 0x10), "entitlements exceed the role")
        self.refused(share(role=ROLE_VALET, entitlements=0x08), "entitlements exceed the role")
        self.refused(share(role=ROLE_DRIVER, entitlements=0x0100), "entitlements exceed the role")
        self.assertEqual(self.accept(share(role=ROLE_VALET, entitlements=0x55))[0], OK)
        self.assertEqual(self.accept(share(entitlements=0))[0], OK)

    def test_owner_floor_does_not_cancel_shares(self):
        # The owner's own floor (raised by whatever it did before) says nothing about a
        # share for another key: documents about one key never cancel another's.
        self.assertEqual(self.accept(share(serial=50))[0], OK)
        self.assertEqual(self.accept(share(serial=1))[0], OK)

    def test_serial_must_exceed_the_friend_record(self):
        ks = store(friend_record(serial_floor=100))
        self.refused(share(serial=100), "serial not above the key's floor", code=DOCUMENT_SUPERSEDED, ks=ks)
        self.refused(share(serial=99), "serial not above the key's floor", code=DOCUMENT_SUPERSEDED, ks=ks)
        self.assertEqual(self.accept(share(serial=101), ks=ks)[0], OK)

    def test_owner_cannot_be_demoted(self):
        self.refused(share(friend_pub=OWNER2_PUB), "friend key is an owner", friend=OWNER2_PUB)

    def test_forged_signature(self):
        doc = bytearray(share())
        doc[150] ^= 0x01
        self.refused(bytes(doc), "bad signature")

    def test_tampered_body(self):
        doc = bytearray(share(entitlements=0x01))
        at = bytes(doc).index(b"\x84\x02\x00\x01") + 3
        doc[at] = 0x23
        self.refused(bytes(doc), "bad signature")

    def test_signed_by_another_key(self):
        b = body()
        sig = p256.sign(OTHER_PRIV, d.digest(d.SHARE_TAG, b))
        self.refused(d.assemble(d.SHARE_TAG, b, sig, OWNER_PUB), "bad signature")

    def test_revocation_context_is_not_a_share(self):
        b = body()
        sig = p256.sign(OWNER_PRIV, d.digest(d.REVOCATION_TAG, b))
        self.refused(d.assemble(d.SHARE_TAG, b, sig, OWNER_PUB), "bad signature")

    def test_no_context_is_not_a_share(self):
        b = body()
        sig = p256.sign(OWNER_PRIV, hashlib.sha256(b).digest())
        self.refused(d.assemble(d.SHARE_TAG, b, sig, OWNER_PUB), "bad signature")

    def test_aliro_auth1_signature_is_not_a_share(self):
        # The owner's device signs AUTH1 data in every transaction (usage 4E887B4C);
        # such a signature must never pass as a share document.
        auth1 = (
            b"\x4d\x20" + GROUP + bytes(16) + b"\x86\x20" + bytes(range(32)) + b"\x87\x20" + bytes(range(32, 64))
            + b"\x4c\x10" + bytes(16) + b"\x93\x04\x4e\x88\x7b\x4c"
        )
        sig = p256.sign(OWNER_PRIV, hashlib.sha256(auth1).digest())
        self.refused(d.assemble(d.SHARE_TAG, body(), sig, OWNER_PUB), "bad signature")

    def test_expired(self):
        self.refused(share(), "outside the validity window", code=OUTSIDE_VALIDITY, now=UNTIL)
        self.assertEqual(self.accept(now=UNTIL - 1)[0], OK)

    def test_not_yet_valid(self):
        self.refused(share(), "outside the validity window", code=OUTSIDE_VALIDITY, now=FROM - 1)
        self.assertEqual(self.accept(now=FROM)[0], OK)

    def test_untrusted_clock(self):
        self.refused(share(), "clock not trusted", code=CLOCK_UNTRUSTED, trusted=False)
        self.refused(share(valid_until=0), "clock not trusted", code=CLOCK_UNTRUSTED, trusted=False)

    def test_untimed_share_needs_no_clock(self):
        self.assertEqual(self.accept(share(valid_from=0, valid_until=0), now=5, trusted=False)[0], OK)

    def test_signature_checked_before_the_clock(self):
        doc = bytearray(share())
        doc[150] ^= 0x01
        self.refused(bytes(doc), "bad signature", trusted=False)

    def test_revoked_friend(self):
        ks = memory_store([owner(OWNER_PUB)], [key_slot(FRIEND_PUB)])
        self.refused(share(), "friend key revoked", code=KEY_REVOKED, ks=ks)
        ks = store(friend_record(status=STATUS_REVOKED, serial_floor=1))
        self.refused(share(), "friend key revoked", code=KEY_REVOKED, ks=ks)

    def test_sliced(self):
        steps = d.accept_share_steps(share(), store(), GROUP, FRIEND_PUB, NOW, True)
        slices = 0
        try:
            while True:
                next(steps)
                slices += 1
        except StopIteration as done:
            result = done.value
        self.assertGreater(slices, 10)
        self.assertEqual(result, self.accept())

    def test_cheap_refusals_do_no_verification(self):
        steps = d.accept_share_steps(share(), store(), GROUP, OTHER_PUB, NOW, True)
        with self.assertRaises(StopIteration):
            next(steps)

    def test_malformed_raises(self):
        with self.assertRaises(DocumentError):
            self.accept(share()[:-1])


class AcceptRevocationTest(unittest.TestCase):
    def accept(self, doc=None, ks=None, group=GROUP):
        return d.accept_revocation(revocation() if doc is None else doc, store() if ks is None else ks, group)

    def refused(self, doc=None, reason=None, code=DOCUMENT_REFUSED, **kw):
        self.assertEqual(self.accept(doc, **kw), (code, reason))

    def test_parse(self):
        f = d.parse_revocation(revocation(action=ACTION_SUSPEND, serial=7))
        self.assertEqual(
            (f["group_id"], f["target"], f["serial"], f["action"], f["owner"], f["body"]),
            (GROUP, key_slot(FRIEND_PUB), 7, ACTION_SUSPEND, OWNER_PUB, rbody(action=ACTION_SUSPEND, serial=7)),
        )

    def test_revoke_enrolled_key(self):
        ks = store(friend_record())
        code, detail = self.accept(ks=ks)
        self.assertEqual(code, OK)
        self.assertEqual(detail, {"target": key_slot(FRIEND_PUB), "action": ACTION_REVOKE, "owner": OWNER_PUB, "serial": 200, "known": True})

    def test_revoke_key_never_seen(self):
        code, detail = self.accept()
        self.assertEqual((code, detail["known"]), (OK, False))

    def test_revoke_another_owner(self):
        self.assertEqual(self.accept(revocation(target=key_slot(OWNER2_PUB)))[0], OK)

    def test_owner_cannot_revoke_itself(self):
        self.refused(revocation(target=key_slot(OWNER_PUB)), "an owner cannot revoke itself")

    def test_suspend_and_resume_need_an_enrolled_key(self):
        self.refused(revocation(action=ACTION_SUSPEND), "target key unknown")
        self.refused(revocation(action=ACTION_RESUME), "target key unknown")
        ks = store(friend_record())
        self.assertEqual(self.accept(revocation(action=ACTION_SUSPEND), ks=ks)[0], OK)
        self.assertEqual(self.accept(revocation(action=ACTION_RESUME), ks=ks)[0], OK)

    def test_revocation_is_permanent(self):
        ks = store(friend_record(status=STATUS_REVOKED))
        self.refused(revocation(action=ACTION_RESUME), "target key revoked", code=KEY_REVOKED, ks=ks)
        self.refused(revocation(action=ACTION_SUSPEND), "target key revoked", code=KEY_REVOKED, ks=ks)
        # Revoking again changes nothing and says so: a replayed revocation is refused.
        self.refused(revocation(action=ACTION_REVOKE), "already revoked", code=KEY_REVOKED, ks=ks)

    def test_serial_floors(self):
        self.assertEqual(self.accept(revocation(serial=50))[0], OK)  # the owner's floor plays no part
        ks = store(friend_record(serial_floor=300))
        self.refused(revocation(serial=300), "serial not above the key's floor", code=DOCUMENT_SUPERSEDED, ks=ks)
        self.assertEqual(self.accept(revocation(serial=301), ks=ks)[0], OK)

    def test_wrong_group(self):
        self.refused(revocation(group_id=bytes(16)), "other reader group")

    def test_signer_not_an_owner(self):
        ks = memory_store([owner(OWNER_PUB), Credential(OTHER_PUB, ROLE_DRIVER, 0x7F)])
        self.refused(revocation(OTHER_PRIV, OTHER_PUB), "signer is not an active owner", ks=ks)

    def test_forged_signature(self):
        doc = bytearray(revocation())
        doc[60] ^= 0x80
        self.refused(bytes(doc), "bad signature")

    def test_share_context_is_not_a_revocation(self):
        b = rbody()
        sig = p256.sign(OWNER_PRIV, d.digest(d.SHARE_TAG, b))
        self.refused(d.assemble(d.REVOCATION_TAG, b, sig, OWNER_PUB), "bad signature")

    def test_malformed(self):
        doc = revocation()
        for bad in (doc[:-1], doc + b"\x00", share(), d.sign(d.REVOCATION_TAG, rbody(action=4), OWNER_PRIV, OWNER_PUB)):
            with self.assertRaises(DocumentError):
                d.parse_revocation(bad)
        with self.assertRaises(DocumentError) as ctx:
            d.parse_revocation(d.sign(d.REVOCATION_TAG, rbody(action=0), OWNER_PRIV, OWNER_PUB))
        self.assertEqual(str(ctx.exception), "unknown action")


class LifecycleTest(unittest.TestCase):
    """Share, use, replay, update, suspend, revoke: what the ECU does with each result."""

    def test_lifecycle(self):
        ks = store()
        code, detail = d.accept_share(share(serial=100), ks, GROUP, FRIEND_PUB, NOW, True)
        self.assertEqual(code, OK)
        cred = apply_share(ks, detail)
        self.assertEqual(policy.check(cred, CMD_UNLOCK, b"", KIND_STANDARD, NOW, True, None), OK)
        self.assertEqual(policy.check(cred, CMD_DRIVE_ENABLE, b"\x10", KIND_STANDARD, NOW, True, None), NOT_ENTITLED)

        # Presenting the same document again changes nothing.
        self.assertEqual(d.accept_share(share(serial=100), ks, GROUP, FRIEND_PUB, NOW, True)[0], DOCUMENT_SUPERSEDED)

        # A newer share updates the record; the older, wider one cannot come back.
        code, detail = d.accept_share(share(serial=120, entitlements=0x01), ks, GROUP, FRIEND_PUB, NOW, True)
        self.assertEqual(code, OK)
        cred = apply_share(ks, detail)
        self.assertEqual(policy.check(cred, CMD_UNLOCK, b"", KIND_STANDARD, NOW, True, None), NOT_ENTITLED)
        self.assertEqual(d.accept_share(share(serial=110), ks, GROUP, FRIEND_PUB, NOW, True)[1], "serial not above the key's floor")

        # Suspension holds against any share signed before it.
        code, detail = d.accept_revocation(revocation(serial=130, action=ACTION_SUSPEND), ks, GROUP)
        self.assertEqual(code, OK)
        apply_revocation(ks, detail)
        self.assertEqual(ks.find(OWNER_PUB).serial_floor, 50)  # the owner's floor stays: other shares live on
        self.assertEqual(ks.find(FRIEND_PUB).serial_floor, 130)
        self.assertEqual(policy.check(ks.find(FRIEND_PUB), CMD_UNLOCK, b"", KIND_STANDARD, NOW, True, None), KEY_SUSPENDED)
        self.assertEqual(d.accept_share(share(serial=125), ks, GROUP, FRIEND_PUB, NOW, True)[1], "serial not above the key's floor")
        # Replaying the suspension after a resume is refused too.
        code, detail = d.accept_revocation(revocation(serial=140, action=ACTION_RESUME), ks, GROUP)
        apply_revocation(ks, detail)
        self.assertEqual(ks.find(FRIEND_PUB).status, STATUS_ACTIVE)
        self.assertEqual(d.accept_revocation(revocation(serial=130, action=ACTION_SUSPEND), ks, GROUP)[0], DOCUMENT_SUPERSEDED)

        # Revocation is for good, even against a share signed after it.
        code, detail = d.accept_revocation(revocation(serial=150), ks, GROUP)
        apply_revocation(ks, detail)
        self.assertTrue(ks.is_revoked(key_slot(FRIEND_PUB)))
        self.assertEqual(policy.check(ks.find(FRIEND_PUB), CMD_UNLOCK, b"", KIND_STANDARD, NOW, True, None), KEY_REVOKED)
        self.assertEqual(d.accept_share(share(serial=160), ks, GROUP, FRIEND_PUB, NOW, True), (KEY_REVOKED, "friend key revoked"))

    def test_shares_presented_out_of_order(self):
        # Friends present their shares whenever they first use the car: a later
        # share presented first must not invalidate an earlier one.
        ks = store()
        code, detail = d.accept_share(share(serial=300, friend_pub=OTHER_PUB), ks, GROUP, OTHER_PUB, NOW, True)
        self.assertEqual(code, OK)
        apply_share(ks, detail)
        self.assertEqual(d.accept_share(share(serial=200), ks, GROUP, FRIEND_PUB, NOW, True)[0], OK)

    def test_revoking_a_share_never_presented(self):
        ks = store()
        apply_revocation(ks, d.accept_revocation(revocation(serial=150), ks, GROUP)[1])
        self.assertEqual(d.accept_share(share(serial=160), ks, GROUP, FRIEND_PUB, NOW, True), (KEY_REVOKED, "friend key revoked"))


if __name__ == "__main__":
    unittest.main()


class AcceptAdminTest(unittest.TestCase):
    """Admin requests run under the car's session challenge (§9), never a serial floor."""

    CHALLENGE = bytes(range(16))

    def req(self, number=1, challenge=None, op=0x03, arg=b""):
        b = d.admin_body(GROUP, number, op, arg, self.CHALLENGE if challenge is None else challenge)
        return d.sign(d.ADMIN_TAG, b, OWNER_PRIV, OWNER_PUB)

    def test_runs_once_in_its_session(self):
        ks = store()
        code, detail = d.accept_admin(self.req(1), ks, GROUP, self.CHALLENGE, 0)
        self.assertEqual((code, detail["serial"], detail["operation"]), (OK, 1, 0x03))
        self.assertEqual(d.accept_admin(self.req(1), ks, GROUP, self.CHALLENGE, 1),
                         (DOCUMENT_SUPERSEDED, "request number already used in this session"))
        self.assertEqual(d.accept_admin(self.req(2), ks, GROUP, self.CHALLENGE, 1)[0], OK)

    def test_other_or_no_session_refused(self):
        ks = store()
        reason = "not this session's challenge: ask the car for a new one"
        self.assertEqual(d.accept_admin(self.req(), ks, GROUP, None, 0), (DOCUMENT_REFUSED, reason))
        self.assertEqual(d.accept_admin(self.req(challenge=bytes(16)), ks, GROUP, self.CHALLENGE, 0),
                         (DOCUMENT_REFUSED, reason))

    def test_owner_floor_plays_no_part(self):
        ks = store()
        self.assertEqual(ks.find(OWNER_PUB).serial_floor, 50)
        self.assertEqual(d.accept_admin(self.req(1), ks, GROUP, self.CHALLENGE, 0)[0], OK)

    def test_challenge_is_16_bytes(self):
        with self.assertRaises(DocumentError):
            d.parse_admin(self.req(challenge=bytes(15)))
