# carkey — strangers against the whole firmware Car: lockouts, the audit log, what they cannot take from keys.
# SPDX-License-Identifier: MIT
#
# A real reader (carkey.ecu.car.Car) and real devices (tests/mpy/mpy_device.py) in
# one MicroPython process: every tap runs the expedited phase with real crypto on
# both ends. docs/SECURITY.md names these tests.
#
# Run: .venv/bin/pytest -q tests/firmware/test_car_strangers.py

import unittest

from car_rig import CarRig
from carkey import storage
from carkey.crypto import p256
from carkey.ecu import codes
from carkey.ecu.auditlog import StrangerLog
from carkey.ecu.keystore import Credential, key_slot
from carkey.ecu.lockouts import MAX_KEYS, Lockouts
from carkey.ecu.policy import Lockout
from carkey.protocol import tlv
from mpy_device import Stranger

UNLOCK = codes.CMD_UNLOCK


class StrangerLockoutTest(unittest.TestCase):
    def setUp(self):
        self.rig = CarRig("strangers")

    def tearDown(self):
        self.rig.close()

    def test_a_thousand_stranger_failures_never_lock_out_the_owner(self):
        rig = self.rig
        first = rig.tap(rig.owner)  # the owner's phone has a Kpersistent from now on
        self.assertTrue(first.granted)
        failed = locked = 0
        stranger = Stranger()
        for i in range(1000):
            rig.now += 1 if i % 50 else 2000  # bursts, with pauses longer than a lockout
            out = rig.tap(stranger)
            self.assertFalse(out.granted)
            if out.error == codes.AUTH_FAILED:
                failed += 1
            elif out.error == codes.LOCKED_OUT:
                locked += 1
            else:
                self.fail("stranger tap ended %r" % out)
        # The strangers really were counted and locked out: brute force is slowed.
        self.assertTrue(failed >= 100, (failed, locked))
        self.assertTrue(locked >= 500, (failed, locked))
        self.assertTrue(rig.car.lockouts.strangers.locked(rig.now))
        # ... and yet the owner's phone is served at once, standard and fast.
        std = rig.tap(rig.owner, fast=False)
        self.assertEqual((std.kind, std.granted, std.results), ("standard", True, [(UNLOCK, codes.OK)]))
        fast = rig.tap(rig.owner)
        self.assertEqual((fast.kind, fast.granted, fast.results), ("fast", True, [(UNLOCK, codes.OK)]))
        # A reboot keeps the strangers' lockout (persisted) and still serves the owner.
        rig.build()
        self.assertTrue(rig.car.lockouts.strangers.locked(rig.now))
        self.assertEqual(rig.tap(Stranger()).error, codes.LOCKED_OUT)
        self.assertTrue(rig.tap(rig.owner, fast=False).granted)

    def test_an_unknown_key_is_refused_unverified_during_the_strangers_lockout(self):
        rig = self.rig
        for _ in range(5):
            self.assertEqual(rig.tap(Stranger()).error, codes.AUTH_FAILED)
        # A device with a real key the car does not know: before the lockout it would
        # get its signature checked and a KEY_REVOKED; during it, nothing but 08.
        other = rig.device()
        real, verified = p256.verify_steps, []

        def counted(*args):
            verified.append(1)
            return real(*args)

        p256.verify_steps = counted
        try:
            out = rig.tap(other)
        finally:
            p256.verify_steps = real
        self.assertEqual((out.error, out.results), (codes.LOCKED_OUT, []))
        self.assertEqual(verified, [])  # refused before any signature check
        self.assertEqual(other.control_flow, 0)
        rig.now += 3  # the first lockout lasts 2 s
        self.assertEqual(rig.tap(other).results, [(UNLOCK, codes.KEY_REVOKED)])

    def test_failures_after_a_key_proved_itself_count_against_that_key_only(self):
        rig = self.rig
        self.assertTrue(rig.tap(rig.owner).granted)
        friend = rig.device()
        rig.car.keys.add(Credential(friend.pub, codes.ROLE_DRIVER, codes.ENT_ALL))
        rig.car.keys.commit()
        rig.owner.tamper_exchange = True  # the owner's key authenticates, then its EXCHANGE does not
        for _ in range(5):
            self.assertEqual(rig.tap(rig.owner).error, codes.AUTH_FAILED)
        rig.owner.tamper_exchange = False
        self.assertFalse(rig.car.lockouts.strangers_locked(rig.now))
        self.assertEqual(rig.tap(rig.owner).results, [(UNLOCK, codes.LOCKED_OUT)])
        self.assertEqual(rig.tap(friend).results, [(UNLOCK, codes.OK)])  # another key: untouched
        rig.build()  # persisted across a reboot
        self.assertEqual(rig.tap(rig.owner).results, [(UNLOCK, codes.LOCKED_OUT)])
        rig.now += 3
        out = rig.tap(rig.owner, fast=False)
        self.assertTrue(out.granted)  # and a granted standard tap forgets it
        self.assertIsNone(rig.car.lockouts.key(key_slot(rig.owner.pub)))


class LockoutsRecordTest(unittest.TestCase):
    def setUp(self):
        from car_rig import fresh_dir

        self.dir = fresh_dir("lockouts")

    def tearDown(self):
        from car_rig import rmtree

        rmtree(self.dir)

    def test_state_is_bounded_and_survives_a_reload(self):
        locks = Lockouts(self.dir)
        slots = [bytes((i,)) * 8 for i in range(MAX_KEYS + 3)]
        for t, slot in enumerate(slots):
            for i in range(5):
                locks.key_failure(slot, 1000 + t * 10 + i)
        self.assertEqual(len(locks._keys), MAX_KEYS)
        again = Lockouts(self.dir)
        self.assertEqual([s for s, _ in again._keys], [s for s, _ in locks._keys])
        self.assertTrue(storage.load(self.dir, "lockout") is not None)
        self.assertTrue(len(storage.load(self.dir, "lockout")) <= 2 + 22 + MAX_KEYS * 30)

    def test_a_format_1_record_becomes_the_strangers_lockout(self):
        old = Lockout()
        for t in range(5):
            old.failure(100 + t)
        storage.save(self.dir, "lockout", old.to_bytes())
        locks = Lockouts(self.dir)
        self.assertTrue(locks.strangers_locked(105))
        self.assertIsNone(locks.key(bytes(8)))

    def test_a_damaged_record_starts_clean(self):
        storage.save(self.dir, "lockout", b"\x02" + bytes(30))
        locks = Lockouts(self.dir)
        self.assertFalse(locks.strangers_locked(0))


def _junk_envelope():
    # What a stranger can send after authenticating its own unknown key: a junk share
    # document, four junk revocations and a status request (six audit events).
    body = tlv.encode(0xC3, b"\xe2\x03junk")
    for i in range(4):
        body += tlv.encode(0xC5, b"\xe3\x02x" + bytes((i,)))
    return body + tlv.encode(0xC2, bytes((codes.CMD_STATUS,)))


class StrangerAuditTest(unittest.TestCase):
    def setUp(self):
        self.rig = CarRig("audit")

    def tearDown(self):
        self.rig.close()

    def owner_records(self):
        mine = key_slot(self.rig.owner.pub)
        return [r for r in self.rig.car.log.records() if r[2] == mine]

    def test_strangers_through_the_car_never_evict_the_owners_records(self):
        rig = self.rig
        owner_taps = 0
        stranger_events = 0
        for i in range(100):
            rig.now += 7
            if i % 10 == 0:
                self.assertTrue(rig.tap(rig.owner).granted)
                owner_taps += 1
            device = rig.device(envelope=_junk_envelope())
            out = rig.tap(device)
            self.assertFalse(out.granted)
            self.assertEqual(device.results[0][:2], bytes((codes.CMD_STATUS, codes.DOCUMENT_REFUSED)))
            stranger_events += 6
            self.assertEqual(rig.tap(Stranger()).error, codes.AUTH_FAILED)
            stranger_events += 1
            rig.now += 61  # no strangers' lockout in this test: every tap is judged
        records = self.owner_records()
        self.assertEqual(len(records), owner_taps)
        self.assertTrue(all(r[5] == UNLOCK and r[6] == codes.OK for r in records))
        # Every stranger event is still accounted for, coalesced per interval and reason.
        rig.car.flush_log()
        tallies = list(rig.car.strangers.records())
        self.assertEqual(sum(t[-1] for t in tallies), stranger_events)
        self.assertTrue(len(tallies) < 100, len(tallies))
        reasons = set((t[5], t[6]) for t in tallies)
        self.assertTrue((codes.EVENT_SHARE, codes.DOCUMENT_REFUSED) in reasons, reasons)
        self.assertTrue((codes.EVENT_TRANSACTION, codes.AUTH_FAILED) in reasons, reasons)
        self.assertTrue((codes.CMD_STATUS, codes.DOCUMENT_REFUSED) in reasons, reasons)

    def test_ten_thousand_stranger_events_leave_every_owner_record(self):
        # The Car's own sorting (settle) at the audit-log level, without radio work.
        rig = self.rig
        car = rig.car
        mine = key_slot(rig.owner.pub)
        reasons = ((0, codes.EVENT_TRANSACTION, codes.AUTH_FAILED), (0, codes.CMD_STATUS, codes.KEY_REVOKED),
                   (0, codes.EVENT_SHARE, codes.DOCUMENT_REFUSED))
        owner = 0
        for i in range(10000):
            rig.now += 1
            if i % 100 == 0:
                car._note(rig.now, mine, 1, 1, UNLOCK, codes.OK)
                owner += 1
            kind, command, result = reasons[i % 3]
            car._note(rig.now, bytes(8) if i & 1 else None, 2, kind, command, result)
            car.settle()
        car.flush_log()
        self.assertEqual(len(self.owner_records()), owner)
        tallies = list(car.strangers.records())
        self.assertEqual(sum(t[-1] for t in tallies), 10000)
        self.assertTrue(len(tallies) <= 3 * (10000 // 600 + 2), len(tallies))
        # Records survive a reboot: the ring is on flash.
        self.assertEqual(sum(t[-1] for t in StrangerLog(rig.dir).records()), 10000)


class LockoutsPowerCutTest(unittest.TestCase):
    def test_a_power_cut_leaves_the_old_or_the_new_lockout_state(self):
        from flashsim import power_cuts

        mount = "/flash"
        dir = mount + "/state"
        slot = b"\x42" * 8

        def prepare():
            import os

            os.mkdir(dir)
            locks = Lockouts(dir)
            for t in range(4):
                locks.stranger_failure(100 + t)
                locks.key_failure(slot, 100 + t)

        def action():
            locks = Lockouts(dir)
            locks.stranger_failure(104)  # the fifth: both start a lockout
            locks.key_failure(slot, 104)

        seen = set()
        for k, torn in power_cuts(prepare, action, mount):
            locks = Lockouts(dir)
            state = (locks.strangers_locked(104), locks.key(slot) is not None and locks.key(slot).locked(104))
            self.assertTrue(state in ((False, False), (True, False), (True, True)), (k, torn, state))
            self.assertIsNotNone(locks.key(slot))  # the key's four failures never vanish
            seen.add(state)
        self.assertEqual(seen, {(False, False), (True, False), (True, True)})
