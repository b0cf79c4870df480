# carkey — BLE proximity hint: RSSI samples to near/far with smoothing and hysteresis; passive entry, off by default.
# SPDX-License-Identifier: MIT
#
# Where RSSI comes from: MicroPython's `bluetooth` gives it only in scan results
# (_IRQ_SCAN_RESULT: addr_type, addr, adv_type, rssi, adv_data), not for an open
# connection, so the car scans for the phone's advertisements. RSSI is a hint,
# never an authentication: passive entry unlocks only after the same phone
# completes a granted transaction in that approach (PassiveEntry), and the door
# controller applies its own rules (it never locks a key inside). Pure logic: the caller feeds samples with its own clock.

import time
from micropython import const

UNKNOWN = const(0)
NEAR = const(1)
FAR = const(2)

ACTION_LOCK = const(0x01)  # the §4.1 command ids the door controller knows
ACTION_UNLOCK = const(0x02)

_SCALE = const(16)  # smoothed RSSI kept in 1/16 dBm, integers only


class Proximity:
    # Exponential smoothing (new = old + (sample − old) / weight) and two
    # thresholds: NEAR at or above near_dbm, FAR at or below far_dbm, no
    # change between them. No sample for lost_ms counts as FAR.

    def __init__(self, near_dbm=-65, far_dbm=-80, weight=4, lost_ms=3000, min_samples=3):
        if far_dbm >= near_dbm:
            raise ValueError("far_dbm must be below near_dbm")
        if weight < 1 or min_samples < 1:
            raise ValueError("weight and min_samples are at least 1")
        self.near = near_dbm * _SCALE
        self.far = far_dbm * _SCALE
        self.weight = weight
        self.lost_ms = lost_ms
        self.min_samples = min_samples
        self.reset()

    def reset(self):
        self.state = UNKNOWN
        self.count = 0
        self._smooth = 0
        self._last = None

    def rssi(self):
        # The smoothed value in dBm (None before the first sample).
        return None if not self.count else self._smooth / _SCALE

    def sample(self, rssi, now_ms):
        # Returns the new state when it changes, else None.
        if not -127 <= rssi <= 20:
            raise ValueError("RSSI %d outside -127..20 dBm" % rssi)
        v = rssi * _SCALE
        if self.count == 0:
            self._smooth = v
        else:
            self._smooth += (v - self._smooth) // self.weight
        self.count += 1
        self._last = now_ms
        if self.count < self.min_samples:
            return None
        new = self.state
        if self._smooth >= self.near:
            new = NEAR
        elif self._smooth <= self.far:
            new = FAR
        elif self.state == UNKNOWN:
            new = FAR  # between the thresholds at first sight: not near yet
        return self._set(new)

    def tick(self, now_ms, ticks_diff=None):
        # Call now and then: silence for lost_ms means the phone went away.
        if self._last is None:
            return None
        age = ticks_diff(now_ms, self._last) if ticks_diff else now_ms - self._last
        if age >= self.lost_ms:
            self.count = 0
            self._last = None
            return self._set(FAR)
        return None

    def _set(self, new):
        if new == self.state:
            return None
        self.state = new
        return new


class PassiveEntry:
    # Turns proximity changes into lock/unlock requests. Off unless enabled:
    # unlocking on approach is a convenience the owner opts into.
    #
    # RSSI only triggers: anyone can advertise the phone's address. An unlock also
    # needs cryptography from the phone itself: a granted transaction of the watched
    # key (fast is enough) in this approach, i.e. after the phone was last seen
    # away and at most approach_ms before it came near (or while it is near), and
    # only one unlock per approach. Right after the transaction that started the
    # watch nothing opens until the phone has been away once. Locking on walk-away
    # needs no proof (the door controller never locks a key inside).

    def __init__(self, proximity=None, enabled=False, lock_on_leave=True, approach_ms=30000):
        self.proximity = proximity if proximity is not None else Proximity()
        self.enabled = enabled
        self.lock_on_leave = lock_on_leave
        self.approach_ms = approach_ms
        self.reset()

    def reset(self):
        # A new phone watched: what came before belongs to another approach.
        self.proximity.reset()
        self._was_near = False
        self._away = False  # seen away since the watch began: an approach can start
        self._proof_at = None  # ticks of the phone's granted transaction in this approach
        self._done = False  # this approach has unlocked

    def _action(self, change, now_ms):
        if change == FAR:
            self._away = True
            self._proof_at = None
            self._done = False
            if self._was_near:
                self._was_near = False
                if self.enabled and self.lock_on_leave:
                    return ACTION_LOCK
            return None
        if change == NEAR:
            self._was_near = True
            return self._unlock(now_ms)
        return None

    def _unlock(self, now_ms):
        if not self.enabled or self._done or not self._was_near or self._proof_at is None:
            return None
        if time.ticks_diff(now_ms, self._proof_at) > self.approach_ms:
            return None  # a transaction from long before this approach proves nothing now
        self._done = True
        return ACTION_UNLOCK

    def transaction(self, now_ms):
        """The watched phone completed a granted transaction now: ACTION_UNLOCK if
        it is near in an approach that has not unlocked yet, else None."""
        if self._away:
            self._proof_at = now_ms
        return self._unlock(now_ms)

    def sample(self, rssi, now_ms):
        return self._action(self.proximity.sample(rssi, now_ms), now_ms)

    def tick(self, now_ms, ticks_diff=None):
        return self._action(self.proximity.tick(now_ms, ticks_diff), now_ms)
