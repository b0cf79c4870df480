# carkey — tests for carkey.ecu.policy: role table, requests, schedules, decision order, lockout.
# SPDX-License-Identifier: MIT
#
# Run: .venv/bin/pytest -q tests/firmware/test_policy.py
#  or: MICROPYPATH=firmware:tests/mpy:tests/firmware .venv/bin/micropython tests/firmware/test_policy.py

import unittest

from carkey.ecu import policy
from carkey.ecu.codes import (
    BAD_REQUEST,
    CLOCK_UNTRUSTED,
    CMD_DRIVE_ENABLE,
    CMD_LOCATE,
    CMD_LOCK,
    CMD_STATUS,
    CMD_TRUNK,
    CMD_UNLOCK,
    CMD_UNLOCK_DRIVER,
    KEY_REVOKED,
    KEY_SUSPENDED,
    KIND_FAST,
    KIND_STANDARD,
    LOCKED_OUT,
    NEEDS_STANDARD,
    NOT_ENTITLED,
    OK,
    OUTSIDE_SCHEDULE,
    OUTSIDE_VALIDITY,
    ROLE_DRIVER,
    ROLE_GUEST,
    ROLE_OWNER,
    ROLE_VALET,
    STATUS_REVOKED,
    STATUS_SUSPENDED,
    USE_LIMIT_REACHED,
)
from carkey.ecu.policy import Lockout
from carkey.ecu.keystore import Credential

MONDAY = 1704067200  # 2024-01-01 00:00 UTC, a Monday
HOUR = 3600
DAY = 86400
PUB = b"\x04" + bytes(range(64))


def window(days, start, end):
    return bytes((days,)) + start.to_bytes(2, "big") + end.to_bytes(2, "big")


def key(role=ROLE_DRIVER, **kw):
    ent = kw.pop("entitlements", policy.default_entitlements(role))
    return Credential(PUB, role, ent, **kw)


class _Record:
    pass


def damaged(cred, **fields):
    # Values the key store refuses to hold, on a plain copy of a credential, to show
    # policy does not trust a record it is handed.
    rec = _Record()
    for name in ("pub", "slot", "role", "entitlements", "not_before", "not_after", "schedule", "use_limit", "uses", "status"):
        setattr(rec, name, getattr(cred, name))
    for name in fields:
        setattr(rec, name, fields[name])
    return rec


class RoleTableTest(unittest.TestCase):
    def test_defaults(self):
        self.assertEqual(policy.default_entitlements(ROLE_OWNER), 0x7F)
        self.assertEqual(policy.default_entitlements(ROLE_DRIVER), 0x7F)
        self.assertEqual(policy.default_entitlements(ROLE_GUEST), 0x6F)
        self.assertEqual(policy.default_entitlements(ROLE_VALET), 0x55)
        self.assertEqual(policy.default_entitlements(0), 0)
        self.assertEqual(policy.default_entitlements(5), 0)

    def test_guest_never_drives_valet_never_opens_trunk(self):
        guest = policy.default_entitlements(ROLE_GUEST)
        valet = policy.default_entitlements(ROLE_VALET)
        self.assertEqual(guest & policy.entitlement_bit(CMD_DRIVE_ENABLE), 0)
        self.assertEqual(valet & policy.entitlement_bit(CMD_TRUNK), 0)
        self.assertEqual(valet & policy.entitlement_bit(CMD_UNLOCK), 0)
        self.assertEqual(valet & policy.entitlement_bit(CMD_LOCATE), 0)

    def test_entitlement_bits(self):
        self.assertEqual([policy.entitlement_bit(c) for c in range(1, 8)], [1, 2, 4, 8, 16, 32, 64])


class RequestTest(unittest.TestCase):
    def test_commands_without_argument(self):
        for cmd in (CMD_LOCK, CMD_UNLOCK, CMD_UNLOCK_DRIVER, CMD_TRUNK, CMD_LOCATE, CMD_STATUS):
            self.assertTrue(policy.valid_request(cmd, b""))
            self.assertFalse(policy.valid_request(cmd, b"\x00"))

    def test_drive_enable_minutes(self):
        self.assertTrue(policy.valid_request(CMD_DRIVE_ENABLE, b"\x01"))
        self.assertTrue(policy.valid_request(CMD_DRIVE_ENABLE, b"\xf0"))
        self.assertFalse(policy.valid_request(CMD_DRIVE_ENABLE, b"\x00"))
        self.assertFalse(policy.valid_request(CMD_DRIVE_ENABLE, b"\xf1"))
        self.assertFalse(policy.valid_request(CMD_DRIVE_ENABLE, b""))
        self.assertFalse(policy.valid_request(CMD_DRIVE_ENABLE, b"\x00\x10"))

    def test_unknown_commands(self):
        self.assertFalse(policy.valid_request(0, b""))
        self.assertFalse(policy.valid_request(8, b""))
        self.assertFalse(policy.valid_request(0xFF, b""))

    def test_status_is_not_a_use(self):
        self.assertFalse(policy.counts_as_use(CMD_STATUS))
        self.assertTrue(policy.counts_as_use(CMD_UNLOCK))
        self.assertTrue(policy.counts_as_use(CMD_DRIVE_ENABLE))


class ScheduleTest(unittest.TestCase):
    WORKDAYS = window(0x1F, 8 * 60, 17 * 60)  # Monday..Friday 08:00-17:00
    FRIDAY_NIGHT = window(0x10, 22 * 60, 2 * 60)  # Friday 22:00 to Saturday 02:00

    def test_plain_window_edges(self):
        s = self.WORKDAYS
        self.assertTrue(policy.in_schedule(s, MONDAY + 8 * HOUR))
        self.assertFalse(policy.in_schedule(s, MONDAY + 8 * HOUR - 1))
        self.assertTrue(policy.in_schedule(s, MONDAY + 17 * HOUR - 1))
        self.assertFalse(policy.in_schedule(s, MONDAY + 17 * HOUR))
        self.assertTrue(policy.in_schedule(s, MONDAY + 4 * DAY + 12 * HOUR))  # Friday noon
        self.assertFalse(policy.in_schedule(s, MONDAY + 5 * DAY + 12 * HOUR))  # Saturday noon

    def test_window_wrapping_midnight(self):
        friday = MONDAY + 4 * DAY
        s = self.FRIDAY_NIGHT
        self.assertTrue(policy.in_schedule(s, friday + 22 * HOUR))
        self.assertTrue(policy.in_schedule(s, friday + 23 * HOUR + 59 * 60))
        self.assertTrue(policy.in_schedule(s, friday + DAY))  # Saturday 00:00
        self.assertTrue(policy.in_schedule(s, friday + DAY + 2 * HOUR - 1))
        self.assertFalse(policy.in_schedule(s, friday + DAY + 2 * HOUR))
        self.assertFalse(policy.in_schedule(s, friday + 22 * HOUR - 1))
        # The morning part belongs to the day after a named day only.
        self.assertFalse(policy.in_schedule(s, friday + HOUR))
        self.assertFalse(policy.in_schedule(s, friday + DAY + 23 * HOUR))

    def test_sunday_night_wraps_into_monday(self):
        s = window(0x40, 22 * 60, 6 * 60)
        self.assertTrue(policy.in_schedule(s, MONDAY + 5 * HOUR))
        self.assertFalse(policy.in_schedule(s, MONDAY + 23 * HOUR))
        self.assertTrue(policy.in_schedule(s, MONDAY - 2 * HOUR))  # Sunday 22:00

    def test_whole_day_window(self):
        saturday = MONDAY + 5 * DAY
        s = window(0x20, 0, 1440)
        self.assertTrue(policy.in_schedule(s, saturday))
        self.assertTrue(policy.in_schedule(s, saturday + DAY - 1))
        self.assertFalse(policy.in_schedule(s, saturday + DAY))
        self.assertFalse(policy.in_schedule(s, saturday - 1))

    def test_several_windows(self):
        s = window(0x01, 9 * 60, 10 * 60) + window(0x01, 15 * 60, 16 * 60)
        self.assertTrue(policy.in_schedule(s, MONDAY + 15 * HOUR + 30 * 60))
        self.assertFalse(policy.in_schedule(s, MONDAY + 12 * HOUR))

    def test_valid_schedules(self):
        self.assertTrue(policy.valid_schedule(self.WORKDAYS))
        self.assertTrue(policy.valid_schedule(self.FRIDAY_NIGHT))
        self.assertTrue(policy.valid_schedule(window(0x7F, 0, 1440) * 8))

    def test_invalid_schedules(self):
        bad = [
            b"",
            self.WORKDAYS[:4],
            self.WORKDAYS + b"\x00",
            window(0x7F, 0, 1440) * 9,
            window(0x00, 0, 60),
            window(0x81, 0, 60),
            window(0x01, 1440, 60),
            window(0x01, 0, 0),
            window(0x01, 0, 1441),
            window(0x01, 600, 600),
        ]
        for s in bad:
            self.assertFalse(policy.valid_schedule(s), s)


class CheckTest(unittest.TestCase):
    NOW = MONDAY + 12 * HOUR

    def check(self, cred, command=CMD_UNLOCK, arg=b"", kind=KIND_STANDARD, now=None, trusted=True, lockout=None):
        return policy.check(cred, command, arg, kind, self.NOW if now is None else now, trusted, lockout)

    def test_owner_may_do_everything(self):
        owner = key(ROLE_OWNER)
        for cmd in range(1, 8):
            arg = b"\x1e" if cmd == CMD_DRIVE_ENABLE else b""
            self.assertEqual(self.check(owner, cmd, arg), OK)

    def test_locked_out_before_anything(self):
        lock = Lockout()
        for i in range(5):
            lock.failure(self.NOW - 1)
        self.assertEqual(self.check(key(), lockout=lock), LOCKED_OUT)
        self.assertEqual(self.check(None, 0x55, lockout=lock), LOCKED_OUT)
        self.assertEqual(self.check(key(), now=self.NOW + 1, lockout=lock), OK)

    def test_bad_request(self):
        self.assertEqual(self.check(key(), 0x08), BAD_REQUEST)
        self.assertEqual(self.check(key(), CMD_DRIVE_ENABLE, b"\xf1"), BAD_REQUEST)
        self.assertEqual(self.check(key(), CMD_LOCK, b"\x01"), BAD_REQUEST)
        # The request is judged before the key.
        self.assertEqual(self.check(None, 0x08), BAD_REQUEST)

    def test_unknown_revoked_suspended(self):
        self.assertEqual(self.check(None), KEY_REVOKED)
        self.assertEqual(self.check(key(status=STATUS_REVOKED)), KEY_REVOKED)
        self.assertEqual(self.check(key(status=STATUS_SUSPENDED)), KEY_SUSPENDED)
        self.assertEqual(self.check(damaged(key(), status=7)), KEY_REVOKED)

    def test_validity_window(self):
        k = key(not_before=self.NOW, not_after=self.NOW + HOUR)
        self.assertEqual(self.check(k), OK)
        self.assertEqual(self.check(k, now=self.NOW - 1), OUTSIDE_VALIDITY)
        self.assertEqual(self.check(k, now=self.NOW + HOUR - 1), OK)
        self.assertEqual(self.check(k, now=self.NOW + HOUR), OUTSIDE_VALIDITY)

    def test_open_ended_window(self):
        k = key(not_before=self.NOW)
        self.assertEqual(self.check(k, now=self.NOW + 100 * DAY), OK)
        self.assertEqual(self.check(k, now=self.NOW - 1), OUTSIDE_VALIDITY)

    def test_untrusted_clock_refuses_time_limited_keys_only(self):
        self.assertEqual(self.check(key(not_after=self.NOW + HOUR), trusted=False), CLOCK_UNTRUSTED)
        self.assertEqual(self.check(key(not_before=1), trusted=False), CLOCK_UNTRUSTED)
        self.assertEqual(self.check(key(schedule=ScheduleTest.WORKDAYS), trusted=False), CLOCK_UNTRUSTED)
        self.assertEqual(self.check(key(ROLE_OWNER), trusted=False), OK)
        self.assertEqual(self.check(key(), trusted=False), OK)

    def test_schedule(self):
        k = key(schedule=ScheduleTest.WORKDAYS)
        self.assertEqual(self.check(k), OK)
        self.assertEqual(self.check(k, now=MONDAY + 5 * DAY + 12 * HOUR), OUTSIDE_SCHEDULE)

    def test_use_limit(self):
        self.assertEqual(self.check(key(use_limit=3, uses=2)), OK)
        self.assertEqual(self.check(key(use_limit=3, uses=3)), USE_LIMIT_REACHED)
        self.assertEqual(self.check(key(use_limit=0, uses=60000)), OK)

    def test_entitlement_bits(self):
        k = key(ROLE_DRIVER, entitlements=0x01)
        self.assertEqual(self.check(k, CMD_LOCK), OK)
        self.assertEqual(self.check(k, CMD_UNLOCK), NOT_ENTITLED)
        self.assertEqual(self.check(key(ROLE_VALET), CMD_TRUNK), NOT_ENTITLED)
        self.assertEqual(self.check(key(ROLE_VALET), CMD_UNLOCK_DRIVER), OK)

    def test_role_bounds_stored_bits(self):
        k = damaged(key(ROLE_GUEST), entitlements=0x7F)
        self.assertEqual(self.check(k, CMD_DRIVE_ENABLE, b"\x0a"), NOT_ENTITLED)
        self.assertEqual(self.check(damaged(key(), role=7)), NOT_ENTITLED)

    def test_drive_enable_needs_standard(self):
        k = key(ROLE_VALET)
        self.assertEqual(self.check(k, CMD_DRIVE_ENABLE, b"\x0a", KIND_FAST), NEEDS_STANDARD)
        self.assertEqual(self.check(k, CMD_DRIVE_ENABLE, b"\x0a", KIND_STANDARD), OK)
        self.assertEqual(self.check(k, CMD_LOCK, b"", KIND_FAST), OK)

    def test_order_status_before_window(self):
        k = key(status=STATUS_SUSPENDED, not_after=self.NOW - 1)
        self.assertEqual(self.check(k), KEY_SUSPENDED)

    def test_order_clock_before_use_limit(self):
        k = key(not_after=self.NOW + 1, use_limit=1, uses=1)
        self.assertEqual(self.check(k, trusted=False), CLOCK_UNTRUSTED)

    def test_order_window_before_schedule(self):
        k = key(not_after=self.NOW - 1, schedule=window(0x40, 0, 60))
        self.assertEqual(self.check(k), OUTSIDE_VALIDITY)

    def test_order_schedule_before_use_limit(self):
        k = key(schedule=window(0x40, 0, 60), use_limit=1, uses=1)
        self.assertEqual(self.check(k), OUTSIDE_SCHEDULE)

    def test_order_use_limit_before_entitlement(self):
        k = key(ROLE_GUEST, use_limit=1, uses=1)
        self.assertEqual(self.check(k, CMD_DRIVE_ENABLE, b"\x0a"), USE_LIMIT_REACHED)

    def test_order_entitlement_before_kind(self):
        k = key(ROLE_GUEST)
        self.assertEqual(self.check(k, CMD_DRIVE_ENABLE, b"\x0a", KIND_FAST), NOT_ENTITLED)


class LockoutTest(unittest.TestCase):
    T = 1_000_000

    def fail(self, lock, times):
        return [lock.failure(t) for t in times]

    def test_five_failures_in_a_minute_lock_for_two_seconds(self):
        lock = Lockout()
        self.assertEqual(self.fail(lock, [self.T, self.T + 10, self.T + 20, self.T + 30]), [False] * 4)
        self.assertFalse(lock.locked(self.T + 30))
        self.assertTrue(lock.failure(self.T + 60))
        self.assertEqual(lock.remaining(self.T + 60), 2)
        self.assertTrue(lock.locked(self.T + 61))
        self.assertFalse(lock.locked(self.T + 62))

    def test_failures_spread_over_more_than_a_minute(self):
        lock = Lockout()
        self.assertEqual(self.fail(lock, [self.T, self.T + 15, self.T + 30, self.T + 45, self.T + 61]), [False] * 5)
        self.assertTrue(lock.failure(self.T + 62))

    def test_lockouts_in_a_row_double_up_to_1024_s(self):
        lock = Lockout()
        t = self.T
        seen = []
        for _ in range(12):
            self.fail(lock, [t] * 5)
            seen.append(lock.remaining(t))
            t += lock.duration()
        self.assertEqual(seen, [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 1024, 1024])

    def test_granted_standard_resets(self):
        lock = Lockout()
        self.fail(lock, [self.T] * 5)
        self.fail(lock, [self.T + 2] * 5)
        self.assertEqual(lock.remaining(self.T + 2), 4)
        lock.granted_standard()
        self.assertFalse(lock.locked(self.T + 3))
        self.fail(lock, [self.T + 3] * 4)
        lock.granted_standard()
        self.assertFalse(lock.failure(self.T + 3))
        self.fail(lock, [self.T + 4] * 4)
        self.assertEqual(lock.remaining(self.T + 4), 2)

    def test_failures_while_locked_do_not_extend(self):
        lock = Lockout()
        self.fail(lock, [self.T] * 5)
        self.assertEqual(self.fail(lock, [self.T + 1] * 10), [False] * 10)
        self.assertEqual(lock.remaining(self.T + 1), 1)
        self.assertEqual(lock.k, 1)

    def test_clock_stepping_back_never_lengthens(self):
        lock = Lockout()
        self.fail(lock, [self.T] * 5)
        self.assertEqual(lock.remaining(self.T - 5000), 2)
        self.assertFalse(lock.locked(self.T - 4998))

    def test_failures_in_the_future_are_forgotten(self):
        lock = Lockout()
        self.fail(lock, [self.T] * 4)
        self.assertFalse(lock.failure(self.T - 5000))
        self.assertFalse(lock.locked(self.T - 5000))

    def test_state_round_trip(self):
        lock = Lockout()
        self.fail(lock, [self.T] * 5)
        self.fail(lock, [self.T + 10, self.T + 11])
        state = lock.to_bytes()
        self.assertEqual(len(state), policy.LOCKOUT_STATE_LEN)
        self.assertEqual(
            state,
            bytes.fromhex("0102" + "000f4242" + "000f424a" + "000f424b" + "00000000" + "00000000"),
        )
        again = Lockout(state)
        self.assertEqual(again.k, 1)
        self.assertEqual(again.to_bytes(), state)
        self.assertEqual(self.fail(again, [self.T + 12, self.T + 13, self.T + 14]), [False, False, True])
        self.assertEqual(again.remaining(self.T + 14), 4)

    def test_empty_state(self):
        self.assertEqual(Lockout().to_bytes(), bytes(policy.LOCKOUT_STATE_LEN))
        self.assertFalse(Lockout(bytes(policy.LOCKOUT_STATE_LEN)).locked(0))

    def test_bad_state(self):
        with self.assertRaises(ValueError):
            Lockout(bytes(21))
        with self.assertRaises(ValueError):
            Lockout(b"\x0b" + bytes(21))
        with self.assertRaises(ValueError):
            Lockout(b"\x00\x05" + bytes(20))


if __name__ == "__main__":
    unittest.main()
