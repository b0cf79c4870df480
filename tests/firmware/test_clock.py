# carkey — tests for carkey.clock: port epochs, calendar, trust floor, RTC setting, power cuts.
# SPDX-License-Identifier: MIT
#
# Run: .venv/bin/pytest -q tests/firmware/test_clock.py
#  or: MICROPYPATH=firmware:tests/mpy:tests/firmware .venv/bin/micropython tests/firmware/test_clock.py
#
# Both port epochs (1970: Unix port; 2000: ESP32 builds keeping the old epoch) are
# tested by injecting the epoch, a fake time source and a fake RTC.

import time

import unittest
from flashsim import FlashSim, power_cuts

from carkey import clock, storage

MOUNT = "/flash"
STATE = MOUNT + "/state"
LEAP_DAY = 1709210096  # 2024-02-29T12:34:56Z, a Thursday
HOUR = 3600


class Source:
    """Port-epoch seconds, as time.time() would return them."""

    def __init__(self, t=0):
        self.t = t

    def __call__(self):
        return self.t


class FakeRTC:
    """machine.RTC stand-in: keeps the calendar it is given and drives the source,
    counting from the port's epoch as the real RTC-backed time.time() does."""

    def __init__(self, source, epoch_year):
        self.source = source
        self.shift = clock.epoch_shift(epoch_year)
        self.set = []

    def datetime(self, dt):
        self.set.append(dt)
        y, mo, d, _, h, mi, s, _ = dt
        self.source.t = clock.unix_from_civil(y, mo, d, h, mi, s) - self.shift


class FlashTest(unittest.TestCase):
    def setUp(self):
        self.flash = FlashSim(block_count=32)
        self.flash.format()
        self.flash.mount(MOUNT)

    def tearDown(self):
        self.flash.umount()


class EpochTest(unittest.TestCase):
    def test_shifts(self):
        self.assertEqual(clock.epoch_shift(1970), 0)
        self.assertEqual(clock.epoch_shift(2000), 946684800)

    def test_unknown_epoch_refused(self):
        with self.assertRaises(clock.ClockError):
            clock.epoch_shift(1980)

    def test_port_shift_matches_this_port(self):
        self.assertEqual(clock.PORT_SHIFT, clock.epoch_shift(time.gmtime(0)[0]))

    def test_conversions_both_epochs(self):
        self.assertEqual(clock.unix_from_port(0, 0), 0)
        self.assertEqual(clock.unix_from_port(0, 946684800), 946684800)
        self.assertEqual(clock.unix_from_port(762525296, 946684800), LEAP_DAY)
        self.assertEqual(clock.port_from_unix(LEAP_DAY, 946684800), 762525296)
        self.assertEqual(clock.port_from_unix(LEAP_DAY, 0), LEAP_DAY)

    def test_float_port_time_is_truncated(self):
        self.assertEqual(clock.unix_from_port(1.75, 0), 1)


class CalendarTest(unittest.TestCase):
    KNOWN = (
        (0, (1970, 1, 1, 0, 0, 0, 3)),
        (946684799, (1999, 12, 31, 23, 59, 59, 4)),
        (951782400, (2000, 2, 29, 0, 0, 0, 1)),
        (LEAP_DAY, (2024, 2, 29, 12, 34, 56, 3)),
        (1735689599, (2024, 12, 31, 23, 59, 59, 1)),
        (4107542400, (2100, 3, 1, 0, 0, 0, 0)),
        (4294967295, (2106, 2, 7, 6, 28, 15, 6)),
    )

    def test_civil_known_dates(self):
        for unix, expected in self.KNOWN:
            self.assertEqual(clock.civil(unix), expected)

    def test_unix_from_civil_known_dates(self):
        for unix, c in self.KNOWN:
            self.assertEqual(clock.unix_from_civil(*c[:6]), unix)

    def test_civil_agrees_with_gmtime_of_unix_port(self):
        if time.gmtime(0)[0] != 1970:
            self.skipTest("needs a 1970-epoch port")
        t = 0
        while t < 4102444800:  # to 2100, steps of ~71 days and some hours
            g = time.gmtime(t)
            self.assertEqual(clock.civil(t), (g[0], g[1], g[2], g[3], g[4], g[5], g[6]), t)
            t += 6151337

    def test_weekday_and_minute_of_day(self):
        self.assertEqual(clock.weekday(LEAP_DAY), 3)
        self.assertEqual(clock.minute_of_day(LEAP_DAY), 12 * 60 + 34)
        monday = clock.unix_from_civil(2024, 3, 4)
        self.assertEqual(clock.weekday(monday), 0)
        self.assertEqual(clock.weekday(monday - 1), 6)
        self.assertEqual(clock.minute_of_day(monday - 1), 1439)
        self.assertEqual(clock.minute_of_day(monday), 0)


class TrustTest(FlashTest):
    def make(self, epoch_year=2000, t=0):
        self.source = Source(t)
        self.rtc = FakeRTC(self.source, epoch_year)
        return clock.Clock(STATE, self.source, self.rtc, epoch_year)

    def test_factory_clock_is_untrusted(self):
        c = self.make(t=LEAP_DAY - 946684800)
        self.assertEqual(c.now(), LEAP_DAY)
        self.assertEqual(c.floor, 0)
        self.assertFalse(c.trusted())
        self.assertIsNone(c.trusted_now())

    def test_set_time_through_rtc_epoch_2000(self):
        c = self.make(2000)
        c.set_time(LEAP_DAY)
        self.assertEqual(self.rtc.set, [(2024, 2, 29, 3, 12, 34, 56, 0)])
        self.assertEqual(self.source.t, LEAP_DAY - 946684800)
        self.assertEqual(c.now(), LEAP_DAY)
        self.assertTrue(c.trusted())
        self.assertEqual(c.trusted_now(), LEAP_DAY)
        self.assertEqual(c.floor, LEAP_DAY)

    def test_set_time_through_rtc_epoch_1970(self):
        c = self.make(1970)
        c.set_time(LEAP_DAY)
        self.assertEqual(self.rtc.set, [(2024, 2, 29, 3, 12, 34, 56, 0)])
        self.assertEqual(self.source.t, LEAP_DAY)
        self.assertEqual(c.now(), LEAP_DAY)

    def test_floor_survives_reboot(self):
        self.make().set_time(LEAP_DAY)
        self.source.t += 10
        again = clock.Clock(STATE, self.source, self.rtc, 2000)
        self.assertEqual(again.floor, LEAP_DAY)
        self.assertEqual(again.trusted_now(), LEAP_DAY + 10)

    def test_rtc_reset_to_epoch_is_untrusted(self):
        self.make().set_time(LEAP_DAY)
        self.source.t = 0  # power lost: the RTC restarts at 2000-01-01
        again = clock.Clock(STATE, self.source, self.rtc, 2000)
        self.assertEqual(again.now(), 946684800)
        self.assertFalse(again.trusted())
        self.assertIsNone(again.trusted_now())

    def test_reading_below_floor_is_untrusted(self):
        c = self.make()
        c.set_time(LEAP_DAY)
        self.source.t -= 1
        self.assertFalse(c.trusted())

    def test_checkpoint_raises_floor_hourly(self):
        c = self.make()
        c.set_time(LEAP_DAY)
        self.source.t += HOUR - 1
        self.assertFalse(c.checkpoint())
        self.assertEqual(c.floor, LEAP_DAY)
        self.source.t += 1
        self.assertTrue(c.checkpoint())
        self.assertEqual(c.floor, LEAP_DAY + HOUR)
        self.assertEqual(clock.Clock(STATE, self.source, self.rtc, 2000).floor, LEAP_DAY + HOUR)

    def test_checkpoint_needs_trust(self):
        c = self.make(t=LEAP_DAY)
        self.assertFalse(c.checkpoint())  # never set
        c.set_time(LEAP_DAY)
        self.source.t = 0
        self.assertFalse(c.checkpoint())  # below the floor
        self.assertEqual(c.floor, LEAP_DAY)

    def test_owner_can_move_clock_back(self):
        c = self.make()
        c.set_time(LEAP_DAY + 86400 * 365)
        c.set_time(LEAP_DAY)
        self.assertEqual(c.floor, LEAP_DAY)
        self.assertTrue(c.trusted())

    def test_out_of_range_time_refused(self):
        c = self.make()
        for bad in (0, -5, 0x100000000):
            with self.assertRaises(clock.ClockError):
                c.set_time(bad)
        self.assertEqual(self.rtc.set, [])
        self.assertEqual(c.floor, 0)

    def test_floor_record_bytes(self):
        self.make().set_time(LEAP_DAY)
        self.assertEqual(storage.load(STATE, "clock"), b"\x01" + LEAP_DAY.to_bytes(4, "big"))

    def test_corrupt_floor_boots_untrusted(self):
        self.make().set_time(LEAP_DAY)
        for suffix in (".a", ".b"):
            try:
                with open(STATE + "/clock" + suffix, "r+b") as f:
                    f.seek(22)
                    f.write(b"\x00")
            except OSError:
                pass  # only one copy exists after one save
        c = clock.Clock(STATE, self.source, self.rtc, 2000)
        self.assertEqual(c.floor, 0)
        self.assertFalse(c.trusted())
        c.set_time(LEAP_DAY + 5)
        self.assertEqual(clock.Clock(STATE, self.source, self.rtc, 2000).floor, LEAP_DAY + 5)


class NoRtcTest(FlashTest):
    def test_unix_port_keeps_an_offset(self):
        if clock._board_rtc() is not None:
            self.skipTest("this port has an RTC")
        source = Source(1000)
        c = clock.Clock(STATE, source, None, 1970)
        c.set_time(LEAP_DAY)
        self.assertEqual(c.now(), LEAP_DAY)
        source.t += 60
        self.assertEqual(c.now(), LEAP_DAY + 60)
        self.assertTrue(c.trusted())


class PowerCutTest(unittest.TestCase):
    def floors(self, **flash):
        source = Source(LEAP_DAY)

        def old():
            clock.Clock(STATE, source, None, 1970).set_time(LEAP_DAY)

        def new():
            source.t = LEAP_DAY + HOUR
            clock.Clock(STATE, source, None, 1970).checkpoint()

        return [clock.Clock(STATE, source, None, 1970).floor for _ in power_cuts(old, new, MOUNT, **flash)]

    def test_floor_write_on_littlefs(self):
        floors = self.floors(block_count=32)
        t = len(floors) // 2  # clean cuts 0..t, torn cuts 0..t-1
        self.assertEqual(floors, [LEAP_DAY] * t + [LEAP_DAY + HOUR] + [LEAP_DAY] * t)
        self.assertGreaterEqual(t, 2)

    def test_floor_write_on_fat(self):
        floors = self.floors(fs="fat")
        self.assertEqual(sorted(set(floors)), [LEAP_DAY, LEAP_DAY + HOUR])
        self.assertEqual(floors[len(floors) // 2], LEAP_DAY + HOUR)  # the uncut write
        self.assertGreaterEqual(len(floors), 9)


if __name__ == "__main__":
    unittest.main()
