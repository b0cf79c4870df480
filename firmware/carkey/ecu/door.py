# carkey — door controller: lock motor, trunk, horn and lights pulses, drive-enable, auto-relock, feedback.
# SPDX-License-Identifier: MIT
#
# Nothing here blocks. A command checks its limits, starts a pulse and returns a
# docs/PROTOCOL.md §4.2 result at once; tick() (run() calls it every few ms) ends
# pulses, reads the car's inputs, expires drive-enable and fires the auto-relock.
# tick() allocates nothing, so it may run as often as the event loop likes.
#
# Outputs are safety-relevant; the rules, in one place:
# - Start-up: the constructor calls safe_state(): every actuator relay, LED and
#   buzzer off, drive-enable off, and no lock or unlock pulse, so the lock state
#   stays whatever the car has. A watchdog reset or a brown-out restarts the
#   firmware, so this is also the state after either; until the firmware runs,
#   the board's pull resistors hold the relays off (boards/README.md).
#   Drive-enable is therefore off after any reset, even while driving: no grant
#   survives a reboot, so a thief cannot get one by cutting the ECU's power with
#   the ignition forced on. Wire it as a start permit, not as a run-time cut-off.
# - Lock, unlock and driver unlock move the same door motors: only one of them
#   is energised at a time, with a dead time between directions, and they share
#   one duty-cycle limit. Trunk, horn and lights each have their own. A command
#   over the limit is refused with 0C and moves nothing.
# - Drive-enable never drops while the ignition is on (DriveEnable below).
# - Auto-relock never locks someone in (DoorController._relock_tick).

from micropython import const

from carkey.ecu.codes import (
    BAD_REQUEST,
    CMD_DRIVE_ENABLE,
    CMD_LOCATE,
    CMD_LOCK,
    CMD_STATUS,
    CMD_TRUNK,
    CMD_UNLOCK,
    CMD_UNLOCK_DRIVER,
    DRIVE_MINUTES_MAX,
    DRIVE_MINUTES_MIN,
    HARDWARE_FAULT,
    OK,
)
from carkey.hw.pins import ticks_add, ticks_diff, ticks_ms

_MINUTE_MS = const(60000)
# Cutting one motor direction and energising the other at once would short an
# H-bridge wiring and slam the motor; 50 ms lets the first relay's contacts open.
_DEAD_TIME_MS = const(50)

# Patterns are alternating on/off durations in ms, starting with "on".
_HORN = (80, 170, 80)  # two chirps: findable without a full alarm blast
_LIGHTS = (400, 200, 400)
_GRANTED_LED = (600,)
_GRANTED_BUZZER = (80,)
_REFUSED_LED = (100, 100, 100, 100, 100)
_REFUSED_BUZZER = (150, 100, 150)

# Input roles in the bit order of the car state's door bitmap (§4).
DOOR_ROLES = ("door_driver", "door_passenger", "door_rear_left", "door_rear_right", "door_trunk")


class DoorConfigError(ValueError):
    """A door setting is out of range or the board lacks a required role."""


def _check(name, value, low, high):
    if not low <= value <= high:
        raise DoorConfigError("%s=%d outside %d..%d" % (name, value, low, high))


class DoorConfig:
    """Owner-tunable timings. relock_s=0 turns auto-relock off."""

    def __init__(
        self, pulse_ms=300, trunk_ms=500, relock_s=30, duty_pulses=6, duty_window_s=60, ignition_off_ms=2000
    ):
        # The upper bounds keep a misconfiguration from stalling a motor for long.
        _check("pulse_ms", pulse_ms, 50, 2000)
        _check("trunk_ms", trunk_ms, 50, 2000)
        _check("relock_s", relock_s, 0, 600)
        _check("duty_pulses", duty_pulses, 1, 32)
        _check("duty_window_s", duty_window_s, 1, 3600)
        _check("ignition_off_ms", ignition_off_ms, 0, 10000)
        self.pulse_ms = pulse_ms
        self.trunk_ms = trunk_ms
        self.relock_s = relock_s
        self.duty_pulses = duty_pulses
        self.duty_window_s = duty_window_s
        self.ignition_off_ms = ignition_off_ms


class DutyLimit:
    """At most `count` pulses in any sliding `window_ms`, so a motor cannot overheat.

    A pulse counts from its start until window_ms later. expire() runs on every
    tick so no start time stays around long enough to be misread after the ticks
    counter wraps.
    """

    def __init__(self, count, window_ms):
        self._starts = [0] * count
        self._count = count
        self._window = window_ms
        self._head = 0
        self._used = 0

    def expire(self, now):
        while self._used and ticks_diff(now, self._starts[self._head]) >= self._window:
            self._head = (self._head + 1) % self._count
            self._used -= 1

    def available(self, now):
        self.expire(now)
        return self._used < self._count

    def take(self, now):
        if not self.available(now):
            return False
        self._starts[(self._head + self._used) % self._count] = now
        self._used += 1
        return True


class Pulser:
    """Plays an on/off pattern on one output, optionally under a duty-cycle limit.

    Each phase lasts at least its length: the next one is timed from the tick that
    started it, so a late tick stretches a phase and never shortens a gap.
    """

    def __init__(self, output, limit=None):
        self.limit = limit
        self.busy = False
        self._out = output
        self._pattern = None
        self._step = 0  # running phase; -1 while a start delay runs
        self._due = 0

    def fire(self, now, pattern, delay_ms=0):
        if self.limit is not None and not self.limit.take(now):
            return False
        self._pattern = pattern
        self.busy = True
        if delay_ms:
            self._step = -1
            self._due = ticks_add(now, delay_ms)
        else:
            self._step = 0
            self._due = ticks_add(now, pattern[0])
            self._out.on()
        return True

    def stop(self):
        self.busy = False
        self._out.off()

    def tick(self, now):
        if self.limit is not None:
            self.limit.expire(now)
        if not self.busy or ticks_diff(now, self._due) < 0:
            return
        step = self._step + 1
        if step >= len(self._pattern):
            self.stop()
            return
        self._step = step
        self._due = ticks_add(now, self._pattern[step])
        self._out.value((step & 1) ^ 1)


class DriveEnable:
    """The drive-enable output and its window.

    grant(now, minutes) turns it on with a window ending minutes later; a grant
    while it is on only ever moves the end later. It turns off at the first tick
    where the ignition has read off without a break for `ignition_off_ms` (cranking
    can dip the ignition line) and either
      - the ignition was on at some time since the grant: the trip is over, one
        grant is one trip; or
      - the window has ended: the grant was never used.
    So it never drops while the ignition is on, however long after the window;
    minutes_left() then reports 1.
    """

    def __init__(self, output, ignition_off_ms):
        self.active = False
        self.in_use = False
        self._out = output
        self._grace = ignition_off_ms
        self._end = 0
        self._overtime = False
        self._off_seen = False
        self._off_since = 0

    def grant(self, now, minutes):
        end = ticks_add(now, minutes * _MINUTE_MS)
        if not self.active:
            self.active = True
            self.in_use = False
            self._off_seen = False
            self._overtime = False
            self._end = end
        elif self._overtime or ticks_diff(end, self._end) > 0:
            self._overtime = False
            self._end = end
        self._out.on()

    def drop(self):
        self.active = False
        self.in_use = False
        self._out.off()

    def tick(self, now, ignition):
        if not self.active:
            return
        if not self._overtime and ticks_diff(now, self._end) >= 0:
            # Latched, so the window end is never misread after the ticks counter wraps.
            self._overtime = True
        if ignition:
            self.in_use = True
            self._off_seen = False
            return
        if not self._off_seen:
            self._off_seen = True
            self._off_since = now
        if ticks_diff(now, self._off_since) >= self._grace and (self.in_use or self._overtime):
            self.drop()

    def minutes_left(self, now):
        if not self.active:
            return 0
        if self._overtime:
            return 1
        left = ticks_diff(self._end, now)
        if left <= 0:
            return 1
        return (left + _MINUTE_MS - 1) // _MINUTE_MS


class DoorController:
    """The car's outputs behind the §4.1 commands.

    outputs: role -> Output (carkey.hw.pins); needs lock, unlock, trunk,
    drive_enable, horn, lights; unlock_driver, led and buzzer are optional.
    inputs: role -> Input; needs the five DOOR_ROLES, lock_feedback (1 = locked)
    and ignition (1 = on). clock: ticks_ms-style callable. on_relock(result) is
    called when the auto-relock fires (OK or HARDWARE_FAULT), e.g.
    to write the audit log.
    """

    def __init__(self, outputs, inputs, config=None, clock=ticks_ms, on_relock=None):
        cfg = config or DoorConfig()
        self._clock = clock
        self._on_relock = on_relock
        self._relock_ms = cfg.relock_s * 1000
        self._pulse = (cfg.pulse_ms,)
        self._trunk_pulse = (cfg.trunk_ms,)
        window_ms = cfg.duty_window_s * 1000
        self._motor_limit = DutyLimit(cfg.duty_pulses, window_ms)
        try:
            self._lock = Pulser(outputs["lock"], self._motor_limit)
            self._unlock = Pulser(outputs["unlock"], self._motor_limit)
            self._trunk = Pulser(outputs["trunk"], DutyLimit(cfg.duty_pulses, window_ms))
            self._horn = Pulser(outputs["horn"], DutyLimit(cfg.duty_pulses, window_ms))
            self._lights = Pulser(outputs["lights"], DutyLimit(cfg.duty_pulses, window_ms))
            self._drive = DriveEnable(outputs["drive_enable"], cfg.ignition_off_ms)
            self._doors = tuple(inputs[role] for role in DOOR_ROLES)
            self._lock_state = inputs["lock_feedback"]
            self._ignition = inputs["ignition"]
        except KeyError as e:
            raise DoorConfigError("board has no %s" % e.args[0])
        self._unlock_driver = None
        if "unlock_driver" in outputs:
            self._unlock_driver = Pulser(outputs["unlock_driver"], self._motor_limit)
        self._led = Pulser(outputs["led"]) if "led" in outputs else None
        self._buzzer = Pulser(outputs["buzzer"]) if "buzzer" in outputs else None
        motors = [self._lock, self._unlock]
        if self._unlock_driver:
            motors.append(self._unlock_driver)
        self._motors = tuple(motors)
        pulsers = motors + [self._trunk, self._horn, self._lights]
        for p in (self._led, self._buzzer):
            if p:
                pulsers.append(p)
        self._pulsers = tuple(pulsers)
        self._relock_armed = False
        self._relock_due = 0
        self.safe_state()

    def safe_state(self):
        """Every actuator, LED and buzzer off; drive-enable off unless in use; no relock pending.

        Runs at construction, where nothing is in use yet. Called later (e.g. after
        an internal error) it keeps a drive-enable that is in use, so it is safe
        to call while the car is moving.
        """
        for p in self._pulsers:
            p.stop()
        if not self._drive.in_use:
            self._drive.drop()
        self._relock_armed = False

    # Commands: each returns a §4.2 result code.

    def lock(self):
        self._relock_armed = False
        return self._move(self._lock, self._clock())

    def unlock(self):
        return self._unlock_with(self._unlock)

    def unlock_driver(self):
        if self._unlock_driver is None:
            return HARDWARE_FAULT
        return self._unlock_with(self._unlock_driver)

    def trunk(self):
        if self._trunk.busy or self._trunk.fire(self._clock(), self._trunk_pulse):
            return OK
        return HARDWARE_FAULT

    def drive_enable(self, minutes):
        if not DRIVE_MINUTES_MIN <= minutes <= DRIVE_MINUTES_MAX:
            return BAD_REQUEST
        self._drive.grant(self._clock(), minutes)
        self._relock_armed = False
        return OK

    def locate(self):
        now = self._clock()
        # Both or neither: half a locate pattern would only confuse.
        if not (self._horn.limit.available(now) and self._lights.limit.available(now)):
            return HARDWARE_FAULT
        self._horn.fire(now, _HORN)
        self._lights.fire(now, _LIGHTS)
        return OK

    def status(self):
        return OK

    def execute(self, command, argument=b""):
        """Run one §4.1 command (already allowed by policy); returns its §4.2 result."""
        if command == CMD_DRIVE_ENABLE:
            if len(argument) != 1:
                return BAD_REQUEST
            return self.drive_enable(argument[0])
        if argument:
            return BAD_REQUEST
        if command == CMD_LOCK:
            return self.lock()
        if command == CMD_UNLOCK:
            return self.unlock()
        if command == CMD_UNLOCK_DRIVER:
            return self.unlock_driver()
        if command == CMD_TRUNK:
            return self.trunk()
        if command == CMD_LOCATE:
            return self.locate()
        if command == CMD_STATUS:
            return self.status()
        return BAD_REQUEST

    def feedback(self, granted):
        """Show a granted (one long blink, one beep) or refused (three blinks, two beeps) pattern."""
        now = self._clock()
        if self._led:
            self._led.fire(now, _GRANTED_LED if granted else _REFUSED_LED)
        if self._buzzer:
            self._buzzer.fire(now, _GRANTED_BUZZER if granted else _REFUSED_BUZZER)

    # State.

    def doors(self):
        """The §4 door bitmap: bit 0 driver ... bit 4 trunk, 1 = open."""
        bits = 0
        for i in range(len(DOOR_ROLES)):
            if self._doors[i].value():
                bits |= 1 << i
        return bits

    def car_state(self):
        """The 3-byte §4 car state: lock state, door bitmap, drive-enable minutes left."""
        return bytes((self._lock_state.value(), self.doors(), self._drive.minutes_left(self._clock())))

    @property
    def drive_enabled(self):
        return self._drive.active

    @property
    def locked(self):
        """Whether the car is locked or being locked: while a motor runs (or waits out
        its dead time) the direction it drives counts, not the feedback still
        showing where it started."""
        if self._lock.busy:
            return True
        for motor in self._motors:
            if motor.busy:
                return False
        return bool(self._lock_state.value())

    @property
    def busy(self):
        """An actuator, LED or buzzer pulse is under way."""
        for p in self._pulsers:
            if p.busy:
                return True
        return False

    @property
    def relock_pending(self):
        return self._relock_armed

    # Time.

    def tick(self, now=None):
        if now is None:
            now = self._clock()
        for p in self._pulsers:
            p.tick(now)
        ignition = self._ignition.value()
        self._drive.tick(now, ignition)
        if self._relock_armed:
            self._relock_tick(now, ignition)

    async def run(self, period_ms=10, sleep_ms=None):
        """Tick forever; sleep_ms defaults to asyncio.sleep_ms."""
        if sleep_ms is None:
            import asyncio

            sleep_ms = asyncio.sleep_ms
        while True:
            self.tick()
            await sleep_ms(period_ms)

    # Internals.

    def _move(self, motor, now):
        if motor.busy:
            return OK  # already moving that way
        if not self._motor_limit.available(now):
            return HARDWARE_FAULT
        delay = 0
        for other in self._motors:
            if other.busy:
                other.stop()
                delay = _DEAD_TIME_MS
        motor.fire(now, self._pulse, delay)
        return OK

    def _unlock_with(self, motor):
        now = self._clock()
        result = self._move(motor, now)
        if result == OK and self._relock_ms:
            self._relock_armed = True
            self._relock_due = ticks_add(now, self._relock_ms)
        return result

    def _relock_tick(self, now, ignition):
        # The car cannot see a phone left inside, so anything showing someone at
        # or in the car since the unlock cancels the relock for good: an open door
        # (or trunk), the ignition, or drive-enable (granted to drive off).
        if ignition or self._drive.active or self.doors():
            self._relock_armed = False
            return
        if ticks_diff(now, self._relock_due) < 0:
            return
        self._relock_armed = False
        if self._lock_state.value():
            result = OK  # locked by other means meanwhile
        else:
            result = self._move(self._lock, now)
        if self._on_relock is not None:
            self._on_relock(result)
