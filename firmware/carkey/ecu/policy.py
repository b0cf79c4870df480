# carkey — access policy: may this key run this command now? Role defaults, schedules, lockout.
# SPDX-License-Identifier: MIT
#
# Pure decisions (docs/PROTOCOL.md §7): nothing here persists or actuates. Times are
# Unix seconds (1970 epoch, UTC) supplied by the caller, whatever the port's epoch.

import struct
from micropython import const

from carkey.clock import minute_of_day, weekday
from carkey.ecu import codes

_MINUTES_PER_DAY = const(1440)
_WINDOW_LEN = const(5)

# Lockout (§7): _FAIL_LIMIT failures within _FAIL_SPAN_S seconds lock the reader for
# 2^k seconds, k = lockouts in a row, capped at 2^_MAX_K.
_FAIL_LIMIT = const(5)
_FAIL_SPAN_S = const(60)
_MAX_K = const(10)
_FORGET_S = const(86400)  # a day without a lockout: the next one starts again at 2 s
# k, number of remembered failures, locked-until, the last _FAIL_LIMIT - 1 failure times.
_LOCKOUT_FMT = ">BBIIIII"
LOCKOUT_STATE_LEN = const(22)

# Role defaults (§7) as entitlement bitmaps (codes.ENT_*).
_ROLE_DEFAULTS = {
    codes.ROLE_OWNER: codes.ENT_ALL,
    codes.ROLE_DRIVER: codes.ENT_ALL,
    codes.ROLE_GUEST: codes.ENT_GUEST,
    codes.ROLE_VALET: codes.ENT_VALET,
}


def default_entitlements(role):
    """The entitlement bitmap a role allows at most; 0 for an unknown role."""
    return _ROLE_DEFAULTS.get(role, 0)


def entitlement_bit(command):
    return 1 << (command - 1)


def valid_request(command, arg):
    """A known command id with the argument §4.1 gives it (drive-enable: minutes 1..240)."""
    if command < codes.CMD_FIRST or command > codes.CMD_LAST:
        return False
    if command == codes.CMD_DRIVE_ENABLE:
        return len(arg) == 1 and codes.DRIVE_MINUTES_MIN <= arg[0] <= codes.DRIVE_MINUTES_MAX
    return len(arg) == 0


def counts_as_use(command):
    """Whether a granted command consumes one use of a use-limited key (status does not)."""
    return command != codes.CMD_STATUS


def valid_schedule(schedule):
    """A weekly schedule: 1..codes.MAX_WINDOWS windows of [days 1][start 2][end 2].

    days: bitmap, bit 0 Monday .. bit 6 Sunday, at least one bit, bit 7 clear.
    start: minute of the day 0..1439; end: 1..1440, exclusive, end != start.
    end < start wraps midnight: the window runs from start on a named day to end on
    the next day.
    """
    n = len(schedule)
    if n == 0 or n % _WINDOW_LEN or n // _WINDOW_LEN > codes.MAX_WINDOWS:
        return False
    for i in range(0, n, _WINDOW_LEN):
        days = schedule[i]
        start = (schedule[i + 1] << 8) | schedule[i + 2]
        end = (schedule[i + 3] << 8) | schedule[i + 4]
        if days == 0 or days & 0x80:
            return False
        if start >= _MINUTES_PER_DAY or end == 0 or end > _MINUTES_PER_DAY or start == end:
            return False
    return True


def in_schedule(schedule, now):
    """Whether Unix time `now` falls in a window of a (valid) weekly schedule."""
    day = weekday(now)  # Monday = 0 = bit 0 of a day bitmap
    yesterday = (day + 6) % 7
    minute = minute_of_day(now)
    for i in range(0, len(schedule), _WINDOW_LEN):
        days = schedule[i]
        start = (schedule[i + 1] << 8) | schedule[i + 2]
        end = (schedule[i + 3] << 8) | schedule[i + 4]
        if start < end:
            if days >> day & 1 and start <= minute < end:
                return True
        else:
            # Wrapping window: the evening part belongs to a named day, the morning
            # part to the day after one.
            if days >> day & 1 and minute >= start:
                return True
            if days >> yesterday & 1 and minute < end:
                return True
    return False


def time_limited(cred):
    """Whether the key depends on the clock: a start, an end or a schedule."""
    return bool(cred.not_before or cred.not_after or cred.schedule)


def check(cred, command, arg, kind, now, clock_trusted, lockout):
    """Result code (§4.2) for `cred` running `command` with `arg` now.

    cred: a key store credential, or None for an unknown key. kind: codes.KIND_STANDARD or
    codes.KIND_FAST. lockout: a Lockout, or None where no lockout applies (USB admin).
    Order (§7): lockout, request shape, status, clock and validity window, schedule,
    use limit, entitlement, transaction kind.
    """
    if lockout is not None and lockout.locked(now):
        return codes.LOCKED_OUT
    if not valid_request(command, arg):
        return codes.BAD_REQUEST
    if cred is None:
        return codes.KEY_REVOKED
    if cred.status == codes.STATUS_SUSPENDED:
        return codes.KEY_SUSPENDED
    if cred.status != codes.STATUS_ACTIVE:
        return codes.KEY_REVOKED
    if time_limited(cred):
        if not clock_trusted:
            return codes.CLOCK_UNTRUSTED
        if now < cred.not_before or (cred.not_after and now >= cred.not_after):
            return codes.OUTSIDE_VALIDITY
        if cred.schedule and not in_schedule(cred.schedule, now):
            return codes.OUTSIDE_SCHEDULE
    if cred.use_limit and cred.uses >= cred.use_limit:
        return codes.USE_LIMIT_REACHED
    # The role table bounds the stored bitmap too, so a damaged or hand-edited record
    # cannot give a guest drive-enable.
    if not cred.entitlements & default_entitlements(cred.role) & entitlement_bit(command):
        return codes.NOT_ENTITLED
    if command == codes.CMD_DRIVE_ENABLE and kind != codes.KIND_STANDARD:
        return codes.NEEDS_STANDARD
    return codes.OK


class Lockout:
    """Failed-authentication lockout (§7), persisted as LOCKOUT_STATE_LEN bytes.

    Times are seconds from the caller's clock. A clock that steps back never extends
    a lockout beyond its own length and forgets failures that now lie in the future.
    """

    def __init__(self, state=None):
        self.k = 0
        self.until = 0
        self._fails = []
        if state is not None:
            self._load(state)

    def _load(self, state):
        if len(state) != LOCKOUT_STATE_LEN:
            raise ValueError("lockout state length")
        k, n, until, f0, f1, f2, f3 = struct.unpack(_LOCKOUT_FMT, state)
        if k > _MAX_K or n > _FAIL_LIMIT - 1:
            raise ValueError("lockout state value")
        self.k = k
        self.until = until
        self._fails = [f0, f1, f2, f3][:n]

    def to_bytes(self):
        fails = self._fails + [0] * (_FAIL_LIMIT - 1 - len(self._fails))
        return struct.pack(_LOCKOUT_FMT, self.k, len(self._fails), self.until, *fails)

    def duration(self):
        """Length in seconds of the current (or last) lockout: 2^k."""
        return 1 << self.k

    def remaining(self, now):
        """Seconds until new transactions are allowed again; 0 when not locked."""
        if self.until <= now:
            return 0
        if self.until - now > self.duration():
            self.until = now + self.duration()
        return self.until - now

    def locked(self, now):
        return self.remaining(now) > 0

    def failure(self, now):
        """Record a failed authentication; True if it starts a lockout."""
        if self.locked(now):
            return False
        if self.k and now - self.until >= _FORGET_S:
            self.k = 0
        fails = [t for t in self._fails if now - _FAIL_SPAN_S <= t <= now]
        if len(fails) >= _FAIL_LIMIT - 1:
            if self.k < _MAX_K:
                self.k += 1
            self.until = now + self.duration()
            self._fails = []
            return True
        fails.append(now)
        self._fails = fails
        return False

    def granted_standard(self):
        """A granted standard transaction: forget failures and lockouts in a row."""
        self.k = 0
        self.until = 0
        self._fails = []
