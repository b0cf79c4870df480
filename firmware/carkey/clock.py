# carkey — Unix time whatever the port's epoch, a persisted "not earlier than" floor, RTC setting.
# SPDX-License-Identifier: MIT
#
# MicroPython counts seconds from 1970 on the Unix port and from 2000 on ESP32 builds
# that keep the old epoch; every conversion goes through epoch_shift(). Protocol
# times are Unix seconds, UTC.
#
# Trust: the ECU's RTC restarts at its epoch after a power loss, which would revive
# expired shares. The clock therefore keeps a persisted floor: the owner setting the
# time puts it there, and checkpoint() raises it while the clock is trusted. A
# reading below the floor, or no floor at all (never set), is untrusted.

import struct
import time
from micropython import const

from carkey import storage

_UNIX_2000 = const(946684800)  # 2000-01-01T00:00:00Z in Unix seconds
_DAY = const(86400)
_THURSDAY = const(3)  # 1970-01-01 was a Thursday; weekday 0 is Monday
_CHECKPOINT_S = const(3600)  # floor raised at most hourly: bounds flash wear
_RECORD = "clock"
_FORMAT = ">BI"  # body: format version, floor
_FORMAT_SIZE = const(5)
_FORMAT_VERSION = const(1)


class ClockError(ValueError):
    def __init__(self, reason):
        super().__init__("clock: " + reason)


def epoch_shift(epoch_year):
    """Seconds from the Unix epoch to a port epoch starting on 1 January of epoch_year."""
    if epoch_year == 1970:
        return 0
    if epoch_year == 2000:
        return _UNIX_2000
    raise ClockError("unsupported port epoch %d" % epoch_year)


PORT_SHIFT = epoch_shift(time.gmtime(0)[0])


def unix_from_port(port_seconds, shift=PORT_SHIFT):
    return int(port_seconds) + shift


def port_from_unix(unix, shift=PORT_SHIFT):
    return unix - shift


# -- calendar (proleptic Gregorian, UTC; H. Hinnant's days/civil algorithms) ----


def days_from_civil(year, month, day):
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def unix_from_civil(year, month, day, hour=0, minute=0, second=0):
    return days_from_civil(year, month, day) * _DAY + hour * 3600 + minute * 60 + second


def civil(unix):
    """(year, month, day, hour, minute, second, weekday) for Unix seconds; weekday 0 = Monday."""
    days, secs = divmod(unix, _DAY)
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (month <= 2)
    return (year, month, day, secs // 3600, secs // 60 % 60, secs % 60, (days + _THURSDAY) % 7)


def weekday(unix):
    """Day of the week for the weekly schedule: 0 = Monday … 6 = Sunday (UTC)."""
    return (unix // _DAY + _THURSDAY) % 7


def minute_of_day(unix):
    """Minutes since 00:00 UTC, 0..1439."""
    return unix % _DAY // 60


# -- the ECU clock --------------------------------------------------------------


def _board_rtc():
    try:
        from machine import RTC
    except ImportError:
        return None  # Unix port: no RTC, set_time keeps an offset instead
    return RTC()


class Clock:
    """The reader's clock. dir holds the persisted floor.

    source() returns port-epoch seconds (default time.time); rtc is an object with
    datetime(tuple) (default machine.RTC() where it exists); epoch_year overrides the
    port's epoch. Tests inject all three."""

    def __init__(self, dir, source=None, rtc=None, epoch_year=None):
        self._dir = dir
        self._source = source or time.time
        self._rtc = rtc if rtc is not None else _board_rtc()
        self._shift = PORT_SHIFT if epoch_year is None else epoch_shift(epoch_year)
        self._offset = 0
        self._floor = self._load_floor()

    def _load_floor(self):
        # An unreadable floor leaves the clock untrusted until the owner sets it:
        # time-limited keys are refused, everything else keeps working.
        try:
            body = storage.load(self._dir, _RECORD)
        except storage.StorageError:
            return 0
        if body is None or len(body) != _FORMAT_SIZE or body[0] != _FORMAT_VERSION:
            return 0
        return struct.unpack(_FORMAT, body)[1]

    def _store_floor(self, floor):
        storage.save(self._dir, _RECORD, struct.pack(_FORMAT, _FORMAT_VERSION, floor))
        self._floor = floor

    @property
    def floor(self):
        """Persisted "not earlier than" time, Unix seconds; 0 = never set."""
        return self._floor

    def now(self):
        """Current reading in Unix seconds (trusted or not)."""
        return unix_from_port(self._source(), self._shift) + self._offset

    def trusted(self):
        return self._floor != 0 and self.now() >= self._floor

    def trusted_now(self):
        """Unix seconds if the clock is trusted, else None: one reading for a decision."""
        now = self.now()
        if self._floor != 0 and now >= self._floor:
            return now
        return None

    def set_time(self, unix):
        """Owner sets the clock: the reading becomes unix and the floor moves to it,
        downwards too, so a clock once set too far ahead can be corrected."""
        if unix <= 0 or unix > 0xFFFFFFFF:
            raise ClockError("time out of range")
        if self._rtc is not None:
            y, mo, d, h, mi, s, wd = civil(unix)
            self._rtc.datetime((y, mo, d, wd, h, mi, s, 0))
            self._offset = 0
        else:
            self._offset = unix - unix_from_port(self._source(), self._shift)
        self._store_floor(unix)

    def checkpoint(self):
        """Raise the floor to now if trusted and the last raise is an hour old.
        Call it from the idle loop; returns True when the floor was written."""
        now = self.now()
        if self._floor != 0 and now >= self._floor + _CHECKPOINT_S:
            self._store_floor(now)
            return True
        return False
