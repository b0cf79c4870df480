# carkey — door controller and GPIO layer: exact pin timelines, relock rules, drive-enable, duty limits.
# SPDX-License-Identifier: MIT
#
# Runs inside MicroPython on a virtual clock; nothing sleeps. It runs with the default
# heap: this file's own tables and timelines do not fit 64 KiB beside the controller,
# so the 64 KiB check runs the controller alone (tests/host/test_boards.py).
#   .venv/bin/pytest -q tests/firmware/test_door.py
#   MICROPYPATH=firmware:tests/mpy:tests/firmware:boards .venv/bin/micropython tests/firmware/test_door.py

import gc
import time

import unittest

import esp32_devkitc  # noqa: E402
import virtual  # noqa: E402
from fakepins import FakePins, VirtualClock  # noqa: E402
from fakeuart import uart_factory  # noqa: E402

from carkey.ecu import codes  # noqa: E402
from carkey.ecu.carbus import CarBus  # noqa: E402
from carkey.ecu.door import DoorConfig, DoorConfigError, DoorController  # noqa: E402
from carkey.hw.pins import Board, BoardError  # noqa: E402

LOCKED = 1
OPEN = 1


def only(timeline, *roles):
    return [e for e in timeline if e[1] in roles]


class Rig:
    """A door controller on the virtual board with fake pins and a virtual clock."""

    def __init__(self, config=None, board=virtual, start=0, on_relock=None, before=None, uart_factory=None):
        self.clock = VirtualClock(start)
        self.pins = FakePins(self.clock)
        self.board = Board(board, pin_factory=self.pins, uart_factory=uart_factory)
        if before:
            before(self)
        self.door = DoorController(self.board.outputs, self.board.inputs, config, self.clock, on_relock)

    def run_to(self, ms, step=10):
        while self.clock.ms < ms:
            self.clock.advance(min(step, ms - self.clock.ms))
            self.door.tick()

    def at(self, ms):
        """Run to `ms`, then return the timeline from there on (for entries a command makes)."""
        self.run_to(ms)
        return ms


class TestLockedState(unittest.TestCase):
    # What a card's toggle reads: the direction a running motor drives, else the feedback.
    def test_feedback_when_no_motor_runs(self):
        rig = Rig()
        self.assertFalse(rig.door.locked)
        rig.pins.set("lock_feedback", LOCKED)
        self.assertTrue(rig.door.locked)

    def test_running_motor_wins_over_stale_feedback(self):
        rig = Rig()
        rig.door.lock()
        self.assertTrue(rig.door.locked)  # feedback still says unlocked
        rig.run_to(1000)
        self.assertFalse(rig.door.locked)  # the fake lock never moved: feedback rules again
        rig.pins.set("lock_feedback", LOCKED)
        rig.door.unlock()
        self.assertFalse(rig.door.locked)
        rig.door.lock()  # reverses during the unlock pulse: waits out the dead time
        self.assertTrue(rig.door.locked)


class TestBoot(unittest.TestCase):
    def test_outputs_start_inactive_then_safe_state_reasserts_each(self):
        rig = Rig()
        created = [(0, role, 0) for role in sorted(virtual.OUTPUTS)]
        safe = [
            (0, role, 0)
            for role in ("lock", "unlock", "unlock_driver", "trunk", "horn", "lights", "led", "buzzer", "drive_enable")
        ]
        self.assertEqual(rig.pins.timeline, created + safe)

    def test_relay_left_on_before_construction_is_turned_off(self):
        # A relay driven on when the firmware restarts (watchdog reset mid-pulse).
        def glitch(rig):
            for role in ("unlock", "drive_enable", "horn"):
                rig.board.outputs[role].on()
            rig.pins.clear()

        rig = Rig(before=glitch)
        for role in ("unlock", "drive_enable", "horn"):
            self.assertEqual(rig.pins.level(role), 0)
        self.assertEqual(only(rig.pins.timeline, "unlock", "drive_enable"), [(0, "unlock", 0), (0, "drive_enable", 0)])

    def test_reset_mid_pulse_ends_the_pulse_and_moves_nothing_else(self):
        rig = Rig()
        rig.pins.clear()
        self.assertEqual(rig.door.unlock(), codes.OK)
        rig.run_to(100)
        # The watchdog fires: the firmware starts again on the same wiring.
        board = Board(virtual, pin_factory=rig.pins)
        door = DoorController(board.outputs, board.inputs, None, rig.clock)
        for _ in range(500):
            rig.clock.advance(10)
            door.tick()
        self.assertEqual(only(rig.pins.timeline, "unlock")[:2], [(0, "unlock", 1), (100, "unlock", 0)])
        self.assertEqual([e for e in rig.pins.timeline if e[2] == 1], [(0, "unlock", 1)])

    def test_boot_with_ignition_on_keeps_drive_enable_off_and_lock_untouched(self):
        # No grant survives a reset, even while driving (the brown-out case).
        def driving(rig):
            rig.pins.set("ignition", 1)
            rig.pins.set("door_driver", OPEN)

        rig = Rig(before=driving)
        rig.pins.clear()
        rig.run_to(120000, step=100)
        self.assertEqual(rig.pins.timeline, [])
        self.assertEqual(rig.door.car_state(), bytes((0, 0x01, 0)))
        self.assertFalse(rig.door.drive_enabled)

    def test_missing_role_is_a_config_error(self):
        board = dict(BOARD="partial", OUTPUTS={"lock": (1, False)}, INPUTS={})
        rig_pins = FakePins(VirtualClock())
        b = Board(board, pin_factory=rig_pins)
        with self.assertRaises(DoorConfigError):
            DoorController(b.outputs, b.inputs)


class TestCommands(unittest.TestCase):
    def setUp(self):
        self.rig = Rig()
        self.rig.pins.clear()

    def test_lock_is_one_300_ms_pulse(self):
        self.assertEqual(self.rig.door.lock(), codes.OK)
        self.rig.run_to(2000)
        self.assertEqual(self.rig.pins.timeline, [(0, "lock", 1), (300, "lock", 0)])

    def test_unlock_is_one_300_ms_pulse(self):
        self.rig.run_to(50)
        self.assertEqual(self.rig.door.unlock(), codes.OK)
        self.rig.run_to(2000)
        self.assertEqual(self.rig.pins.timeline, [(50, "unlock", 1), (350, "unlock", 0)])

    def test_unlock_driver_pulses_its_own_relay(self):
        self.assertEqual(self.rig.door.unlock_driver(), codes.OK)
        self.rig.run_to(2000)
        self.assertEqual(self.rig.pins.timeline, [(0, "unlock_driver", 1), (300, "unlock_driver", 0)])

    def test_trunk_is_one_500_ms_pulse(self):
        self.assertEqual(self.rig.door.trunk(), codes.OK)
        self.rig.run_to(2000)
        self.assertEqual(self.rig.pins.timeline, [(0, "trunk", 1), (500, "trunk", 0)])

    def test_locate_chirps_the_horn_twice_and_flashes_the_lights_twice(self):
        self.assertEqual(self.rig.door.locate(), codes.OK)
        self.rig.run_to(2000)
        self.assertEqual(
            self.rig.pins.timeline,
            [
                (0, "horn", 1),
                (0, "lights", 1),
                (80, "horn", 0),
                (250, "horn", 1),
                (330, "horn", 0),
                (400, "lights", 0),
                (600, "lights", 1),
                (1000, "lights", 0),
            ],
        )

    def test_pulse_lengths_are_configurable(self):
        rig = Rig(DoorConfig(pulse_ms=120, trunk_ms=800))
        rig.pins.clear()
        rig.door.lock()
        rig.door.trunk()
        rig.run_to(2000)
        self.assertEqual(rig.pins.timeline, [(0, "lock", 1), (0, "trunk", 1), (120, "lock", 0), (800, "trunk", 0)])

    def test_lock_during_unlock_cuts_it_and_waits_the_dead_time(self):
        self.rig.door.unlock()
        self.rig.run_to(100)
        self.assertEqual(self.rig.door.lock(), codes.OK)
        self.rig.run_to(2000)
        self.assertEqual(
            self.rig.pins.timeline, [(0, "unlock", 1), (100, "unlock", 0), (150, "lock", 1), (450, "lock", 0)]
        )

    def test_repeating_a_running_command_does_not_stretch_the_pulse(self):
        self.rig.door.unlock()
        self.rig.run_to(200)
        self.assertEqual(self.rig.door.unlock(), codes.OK)
        self.rig.run_to(2000)
        self.assertEqual(self.rig.pins.timeline, [(0, "unlock", 1), (300, "unlock", 0)])

    def test_status_moves_nothing(self):
        self.assertEqual(self.rig.door.status(), codes.OK)
        self.rig.run_to(1000)
        self.assertEqual(self.rig.pins.timeline, [])

    def test_execute_dispatches_and_checks_arguments(self):
        door = self.rig.door
        self.assertEqual(door.execute(codes.CMD_LOCK, b"\x00"), codes.BAD_REQUEST)
        self.assertEqual(door.execute(codes.CMD_DRIVE_ENABLE), codes.BAD_REQUEST)
        self.assertEqual(door.execute(codes.CMD_DRIVE_ENABLE, b"\x00"), codes.BAD_REQUEST)
        self.assertEqual(door.execute(codes.CMD_DRIVE_ENABLE, b"\xf1"), codes.BAD_REQUEST)
        self.assertEqual(door.execute(codes.CMD_DRIVE_ENABLE, b"\x05\x00"), codes.BAD_REQUEST)
        self.assertEqual(door.execute(0x08), codes.BAD_REQUEST)
        self.assertEqual(door.execute(0x00), codes.BAD_REQUEST)
        self.assertEqual(self.rig.pins.timeline, [])
        self.assertEqual(door.execute(codes.CMD_TRUNK), codes.OK)
        self.assertEqual(door.execute(codes.CMD_DRIVE_ENABLE, b"\xf0"), codes.OK)
        self.assertEqual(door.execute(codes.CMD_STATUS), codes.OK)
        self.assertEqual(self.rig.pins.timeline, [(0, "trunk", 1), (0, "drive_enable", 1)])
        self.assertEqual(door.car_state()[2], 240)

    def test_driver_door_without_its_relay_is_a_hardware_fault(self):
        rig = Rig(board=esp32_devkitc)
        rig.pins.clear()
        self.assertEqual(rig.door.unlock_driver(), codes.HARDWARE_FAULT)
        self.assertEqual(rig.door.execute(codes.CMD_UNLOCK_DRIVER), codes.HARDWARE_FAULT)
        rig.run_to(1000)
        self.assertEqual(rig.pins.timeline, [])

    def test_pulse_across_the_ticks_wrap_around(self):
        rig = Rig(start=time.ticks_add(0, -150))
        rig.pins.clear()
        rig.door.lock()
        rig.door.locate()
        rig.run_to(2000)
        self.assertEqual(only(rig.pins.timeline, "lock"), [(0, "lock", 1), (300, "lock", 0)])
        self.assertEqual(len(only(rig.pins.timeline, "horn", "lights")), 8)
        self.assertEqual(rig.pins.timeline[-1], (1000, "lights", 0))

    def test_run_task_ticks_on_its_own(self):
        import asyncio

        rig = self.rig
        calls = []

        class Done(Exception):
            pass

        async def fake_sleep(ms):
            calls.append(ms)
            if len(calls) == 40:
                raise Done()
            rig.clock.advance(ms)

        rig.door.lock()
        with self.assertRaises(Done):
            asyncio.run(rig.door.run(10, fake_sleep))
        self.assertEqual(calls, [10] * 40)
        self.assertEqual(rig.pins.timeline, [(0, "lock", 1), (300, "lock", 0)])


class TestDutyCycle(unittest.TestCase):
    def setUp(self):
        self.rig = Rig(DoorConfig(duty_pulses=3, duty_window_s=10, relock_s=0))
        self.rig.pins.clear()

    def test_fourth_motor_pulse_in_the_window_is_refused_until_the_first_ages_out(self):
        door, rig = self.rig.door, self.rig
        self.assertEqual(door.lock(), codes.OK)
        rig.run_to(1000)
        self.assertEqual(door.unlock(), codes.OK)
        rig.run_to(2000)
        self.assertEqual(door.lock(), codes.OK)
        rig.run_to(9990)
        mark = len(rig.pins.timeline)
        self.assertEqual(door.unlock(), codes.HARDWARE_FAULT)
        self.assertEqual(door.unlock_driver(), codes.HARDWARE_FAULT)
        rig.run_to(10000)
        self.assertEqual(rig.pins.timeline[mark:], [])
        self.assertEqual(door.unlock(), codes.OK)  # the pulse at 0 no longer counts
        rig.run_to(10500)
        self.assertEqual(door.lock(), codes.HARDWARE_FAULT)  # 1000, 2000, 10000 still count
        rig.run_to(11000)
        self.assertEqual(door.lock(), codes.OK)
        rig.run_to(12000)
        self.assertEqual(
            rig.pins.timeline[mark:], [(10000, "unlock", 1), (10300, "unlock", 0), (11000, "lock", 1), (11300, "lock", 0)]
        )

    def test_refused_command_leaves_the_running_pulse_alone(self):
        door, rig = self.rig.door, self.rig
        door.lock()
        rig.run_to(400)
        door.lock()
        rig.run_to(800)
        self.assertEqual(door.unlock(), codes.OK)
        rig.run_to(900)
        self.assertEqual(door.lock(), codes.HARDWARE_FAULT)
        rig.run_to(2000)
        self.assertEqual(
            rig.pins.timeline,
            [(0, "lock", 1), (300, "lock", 0), (400, "lock", 1), (700, "lock", 0), (800, "unlock", 1), (1100, "unlock", 0)],
        )

    def test_each_actuator_has_its_own_limit(self):
        door, rig = self.rig.door, self.rig
        for t in (0, 1000, 2000):
            rig.run_to(t)
            self.assertEqual(door.lock(), codes.OK)
        rig.run_to(3000)
        self.assertEqual(door.lock(), codes.HARDWARE_FAULT)
        for t in (3000, 4000, 5000):
            rig.run_to(t)
            self.assertEqual(door.trunk(), codes.OK)
            self.assertEqual(door.locate(), codes.OK)
        rig.run_to(6000)
        self.assertEqual(door.trunk(), codes.HARDWARE_FAULT)
        mark = len(rig.pins.timeline)
        self.assertEqual(door.locate(), codes.HARDWARE_FAULT)
        rig.run_to(7000)
        self.assertEqual(rig.pins.timeline[mark:], [])

    def test_limit_survives_days_without_use(self):
        door, rig = self.rig.door, self.rig
        for t in (0, 1000, 2000):
            rig.run_to(t)
            door.lock()
        rig.run_to(7 * 24 * 3600 * 1000, step=60000)
        self.assertEqual(door.lock(), codes.OK)


class TestAutoRelock(unittest.TestCase):
    def setUp(self):
        self.results = []
        self.rig = Rig(DoorConfig(relock_s=30), on_relock=self.results.append)
        self.rig.pins.clear()

    def unlock_at_0(self):
        self.assertEqual(self.rig.door.unlock(), codes.OK)

    def test_relocks_30_s_after_an_unlock_nobody_used(self):
        self.unlock_at_0()
        self.rig.run_to(29990)
        self.assertEqual(only(self.rig.pins.timeline, "lock"), [])
        self.assertTrue(self.rig.door.relock_pending)
        self.rig.run_to(40000)
        self.assertEqual(only(self.rig.pins.timeline, "lock"), [(30000, "lock", 1), (30300, "lock", 0)])
        self.assertEqual(self.results, [codes.OK])
        self.assertFalse(self.rig.door.relock_pending)

    def test_driver_door_unlock_also_relocks(self):
        self.rig.door.unlock_driver()
        self.rig.run_to(40000)
        self.assertEqual(only(self.rig.pins.timeline, "lock"), [(30000, "lock", 1), (30300, "lock", 0)])

    def test_no_relock_after_a_door_was_opened_and_closed(self):
        self.unlock_at_0()
        self.rig.run_to(5000)
        self.rig.pins.set("door_rear_right", OPEN)
        self.rig.run_to(6000)
        self.rig.pins.set("door_rear_right", 0)
        self.rig.run_to(60000)
        self.assertEqual(only(self.rig.pins.timeline, "lock"), [])
        self.assertEqual(self.results, [])

    def test_no_relock_after_the_trunk_was_opened(self):
        self.unlock_at_0()
        self.rig.run_to(29000)
        self.rig.pins.set("door_trunk", OPEN)
        self.rig.run_to(29010)
        self.rig.pins.set("door_trunk", 0)
        self.rig.run_to(60000)
        self.assertEqual(only(self.rig.pins.timeline, "lock"), [])

    def test_no_relock_when_a_door_is_open_at_the_unlock(self):
        self.rig.pins.set("door_passenger", OPEN)
        self.unlock_at_0()
        self.rig.run_to(10)
        self.rig.pins.set("door_passenger", 0)
        self.rig.run_to(60000)
        self.assertEqual(only(self.rig.pins.timeline, "lock"), [])

    def test_no_relock_after_the_ignition_was_on(self):
        self.unlock_at_0()
        self.rig.run_to(10000)
        self.rig.pins.set("ignition", 1)
        self.rig.run_to(10010)
        self.rig.pins.set("ignition", 0)
        self.rig.run_to(60000)
        self.assertEqual(only(self.rig.pins.timeline, "lock"), [])

    def test_no_relock_while_drive_enable_is_active(self):
        self.unlock_at_0()
        self.rig.run_to(1000)
        self.assertEqual(self.rig.door.drive_enable(1), codes.OK)
        self.rig.run_to(120000, step=100)
        self.assertEqual(only(self.rig.pins.timeline, "lock"), [])
        self.assertEqual(only(self.rig.pins.timeline, "drive_enable"), [(1000, "drive_enable", 1), (61000, "drive_enable", 0)])

    def test_no_relock_when_drive_enable_was_granted_first(self):
        self.rig.door.drive_enable(1)
        self.unlock_at_0()
        self.rig.run_to(120000, step=100)
        self.assertEqual(only(self.rig.pins.timeline, "lock"), [])

    def test_no_pulse_when_the_car_already_reports_locked(self):
        self.unlock_at_0()
        self.rig.run_to(20000)
        self.rig.pins.set("lock_feedback", LOCKED)
        self.rig.run_to(40000)
        self.assertEqual(only(self.rig.pins.timeline, "lock"), [])
        self.assertEqual(self.results, [codes.OK])

    def test_explicit_lock_cancels_the_relock(self):
        self.unlock_at_0()
        self.rig.run_to(1000)
        self.rig.door.lock()
        self.rig.run_to(60000)
        self.assertEqual(only(self.rig.pins.timeline, "lock"), [(1000, "lock", 1), (1300, "lock", 0)])
        self.assertEqual(self.results, [])

    def test_a_second_unlock_restarts_the_timer(self):
        self.unlock_at_0()
        self.rig.run_to(20000)
        self.rig.door.unlock()
        self.rig.run_to(49990)
        self.assertEqual(only(self.rig.pins.timeline, "lock"), [])
        self.rig.run_to(60000)
        self.assertEqual(only(self.rig.pins.timeline, "lock"), [(50000, "lock", 1), (50300, "lock", 0)])

    def test_relock_over_the_duty_limit_reports_a_fault(self):
        results = []
        rig = Rig(DoorConfig(relock_s=30, duty_pulses=2, duty_window_s=60), on_relock=results.append)
        rig.pins.clear()
        rig.door.lock()
        rig.run_to(1000)
        rig.door.unlock()
        rig.run_to(40000)
        self.assertEqual(results, [codes.HARDWARE_FAULT])
        self.assertEqual(only(rig.pins.timeline, "lock"), [(0, "lock", 1), (300, "lock", 0)])

    def test_relock_can_be_turned_off(self):
        rig = Rig(DoorConfig(relock_s=0))
        rig.pins.clear()
        rig.door.unlock()
        self.assertFalse(rig.door.relock_pending)
        rig.run_to(700000, step=1000)
        self.assertEqual(only(rig.pins.timeline, "lock"), [])


class TestDriveEnable(unittest.TestCase):
    def setUp(self):
        self.rig = Rig(DoorConfig(relock_s=0))
        self.rig.pins.clear()

    def de(self):
        return only(self.rig.pins.timeline, "drive_enable")

    def test_unused_window_ends_on_time(self):
        self.assertEqual(self.rig.door.drive_enable(2), codes.OK)
        self.assertEqual(self.rig.door.car_state()[2], 2)
        self.rig.run_to(60000)
        self.assertEqual(self.rig.door.car_state()[2], 1)
        self.rig.run_to(200000)
        self.assertEqual(self.de(), [(0, "drive_enable", 1), (120000, "drive_enable", 0)])
        self.assertEqual(self.rig.door.car_state()[2], 0)

    def test_minutes_left_round_up(self):
        self.rig.door.drive_enable(10)
        self.rig.run_to(1)
        self.assertEqual(self.rig.door.car_state()[2], 10)
        self.rig.run_to(60000)
        self.assertEqual(self.rig.door.car_state()[2], 9)
        self.rig.run_to(540010)
        self.assertEqual(self.rig.door.car_state()[2], 1)

    def test_never_drops_while_the_ignition_is_on(self):
        self.rig.door.drive_enable(1)
        self.rig.run_to(10000)
        self.rig.pins.set("ignition", 1)
        self.rig.run_to(3 * 3600 * 1000, step=1000)
        self.assertEqual(self.de(), [(0, "drive_enable", 1)])
        self.assertEqual(self.rig.door.car_state()[2], 1)  # held past its window
        t = self.rig.clock.ms
        self.rig.pins.set("ignition", 0)  # first seen off by the tick at t + 10
        self.rig.run_to(t + 2000)
        self.assertTrue(self.rig.door.drive_enabled)
        self.rig.run_to(t + 5000)
        self.assertEqual(self.de(), [(0, "drive_enable", 1), (t + 2010, "drive_enable", 0)])

    def test_a_short_ignition_dip_while_cranking_does_not_drop_it(self):
        self.rig.door.drive_enable(1)
        self.rig.pins.set("ignition", 1)
        self.rig.run_to(70000)
        self.rig.pins.set("ignition", 0)
        self.rig.run_to(71990)
        self.rig.pins.set("ignition", 1)
        self.rig.run_to(200000, step=100)
        self.assertEqual(self.de(), [(0, "drive_enable", 1)])

    def test_the_trip_ending_inside_the_window_ends_the_grant(self):
        self.rig.door.drive_enable(60)
        self.rig.run_to(1000)
        self.rig.pins.set("ignition", 1)
        self.rig.run_to(600000, step=100)
        self.rig.pins.set("ignition", 0)  # first seen off by the tick at 600010
        self.rig.run_to(700000)
        self.assertEqual(self.de(), [(0, "drive_enable", 1), (602010, "drive_enable", 0)])

    def test_a_later_grant_extends_and_never_shortens(self):
        door = self.rig.door
        door.drive_enable(1)
        self.rig.run_to(30000)
        door.drive_enable(5)
        self.rig.run_to(60000)
        door.drive_enable(1)
        self.assertEqual(door.car_state()[2], 5)
        self.rig.run_to(400000, step=100)
        self.assertEqual(
            self.de(),
            [(0, "drive_enable", 1), (30000, "drive_enable", 1), (60000, "drive_enable", 1), (330000, "drive_enable", 0)],
        )

    def test_a_grant_while_held_past_its_window_starts_a_new_window(self):
        door = self.rig.door
        door.drive_enable(1)
        self.rig.pins.set("ignition", 1)
        self.rig.run_to(120000, step=100)
        self.assertEqual(door.car_state()[2], 1)
        door.drive_enable(3)
        self.assertEqual(door.car_state()[2], 3)

    def test_window_across_the_ticks_wrap_around(self):
        rig = Rig(DoorConfig(relock_s=0), start=time.ticks_add(0, -30000))
        rig.pins.clear()
        rig.door.drive_enable(1)
        rig.run_to(90000)
        self.assertEqual(only(rig.pins.timeline, "drive_enable"), [(0, "drive_enable", 1), (60000, "drive_enable", 0)])

    def test_safe_state_keeps_a_drive_enable_in_use_and_drops_an_unused_one(self):
        door = self.rig.door
        door.drive_enable(5)
        door.safe_state()
        self.assertFalse(door.drive_enabled)
        door.drive_enable(5)
        self.rig.pins.set("ignition", 1)
        self.rig.run_to(100)
        self.rig.pins.clear()
        door.safe_state()
        self.assertTrue(door.drive_enabled)
        self.assertEqual(self.de(), [])
        self.assertEqual(self.rig.pins.level("drive_enable"), 1)


class TestFeedbackAndState(unittest.TestCase):
    def setUp(self):
        self.rig = Rig()
        self.rig.pins.clear()

    def test_granted_pattern(self):
        self.rig.door.feedback(True)
        self.rig.run_to(2000)
        self.assertEqual(
            self.rig.pins.timeline, [(0, "led", 1), (0, "buzzer", 1), (80, "buzzer", 0), (600, "led", 0)]
        )

    def test_refused_pattern(self):
        self.rig.door.feedback(False)
        self.rig.run_to(2000)
        self.assertEqual(
            only(self.rig.pins.timeline, "led"),
            [(0, "led", 1), (100, "led", 0), (200, "led", 1), (300, "led", 0), (400, "led", 1), (500, "led", 0)],
        )
        self.assertEqual(
            only(self.rig.pins.timeline, "buzzer"),
            [(0, "buzzer", 1), (150, "buzzer", 0), (250, "buzzer", 1), (400, "buzzer", 0)],
        )

    def test_car_state_bytes(self):
        pins, door = self.rig.pins, self.rig.door
        self.assertEqual(door.car_state(), b"\x00\x00\x00")
        pins.set("lock_feedback", LOCKED)
        pins.set("door_driver", OPEN)
        pins.set("door_trunk", OPEN)
        self.assertEqual(door.car_state(), b"\x01\x11\x00")
        for bit, role in enumerate(("door_driver", "door_passenger", "door_rear_left", "door_rear_right", "door_trunk")):
            for r in ("door_driver", "door_trunk"):
                pins.set(r, 0)
            pins.set(role, OPEN)
            self.assertEqual(door.doors(), 1 << bit)
            pins.set(role, 0)

    def test_tick_allocates_nothing(self):
        class QuietPin:
            def __init__(self, level):
                self.level = level

            def value(self, v=None):
                if v is None:
                    return self.level
                self.level = v

        clock = VirtualClock()
        board = Board(virtual, pin_factory=lambda role, gpio, mode, pull, idle: QuietPin(idle))
        door = DoorController(board.outputs, board.inputs, DoorConfig(relock_s=1), clock)
        door.unlock()
        door.locate()
        door.trunk()
        door.feedback(False)
        door.drive_enable(1)
        board.inputs["ignition"]._pin.level = 1
        gc.collect()
        before = gc.mem_alloc()
        for _ in range(200):
            clock.advance(10)
            door.tick()
        board.inputs["ignition"]._pin.level = 0
        for _ in range(300):
            clock.advance(10)
            door.tick()
        after = gc.mem_alloc()
        self.assertFalse(door.drive_enabled)  # the ticks did the work being measured
        self.assertEqual(board.outputs["lights"].value(), 0)
        self.assertEqual(after - before, 0)


class TestPins(unittest.TestCase):
    ACTIVE_LOW = dict(
        BOARD="active_low",
        OUTPUTS={"lock": (5, True)},
        INPUTS={"door_driver": (6, True, "up")},
        BUSES={"carbus": {"type": "uart", "id": 2, "tx": 7}, "pn532": {"type": "i2c", "sda": 8, "scl": 9}},
    )

    def setUp(self):
        self.clock = VirtualClock()
        self.pins = FakePins(self.clock)

    def test_active_low_output_inverts_and_starts_high(self):
        board = Board(self.ACTIVE_LOW, pin_factory=self.pins)
        lock = board.outputs["lock"]
        self.assertEqual(lock.value(), 0)
        lock.on()
        self.assertEqual(lock.value(), 1)
        lock.value(0)
        self.assertEqual(self.pins.timeline, [(0, "lock", 1), (0, "lock", 0), (0, "lock", 1)])

    def test_active_low_input_with_pull_up(self):
        board = Board(self.ACTIVE_LOW, pin_factory=self.pins)
        door = board.inputs["door_driver"]
        self.assertEqual(self.pins.pins["door_driver"].pull, "up")
        self.assertEqual(door.value(), 0)
        self.pins.set("door_driver", 0)
        self.assertEqual(door.value(), 1)

    def test_active_low_relays_pulse_low(self):
        rig = Rig(board=esp32_devkitc)
        rig.pins.clear()
        rig.pins.set("door_driver", 1)  # closed: the optocoupler is dark
        rig.door.lock()
        rig.run_to(1000)
        self.assertEqual(rig.pins.timeline, [(0, "lock", 0), (300, "lock", 1)])
        self.assertEqual(rig.door.car_state(), b"\x00\x00\x00")

    def test_bad_specs_are_refused(self):
        with self.assertRaises(BoardError):
            Board(dict(OUTPUTS={}), pin_factory=self.pins)
        with self.assertRaises(BoardError):
            Board(dict(BOARD="x", OUTPUTS={"lock": (5,)}), pin_factory=self.pins)
        with self.assertRaises(BoardError):
            Board(dict(BOARD="x", INPUTS={"ignition": (5, True, "sideways")}), pin_factory=self.pins)

    def test_buses_and_uart(self):
        made = []
        board = Board(self.ACTIVE_LOW, pin_factory=self.pins, uart_factory=lambda name, spec: made.append((name, spec)) or "uart")
        self.assertEqual(board.uart("carbus"), "uart")
        self.assertEqual(made, [("carbus", {"type": "uart", "id": 2, "tx": 7})])
        self.assertEqual(board.bus("pn532")["scl"], 9)
        with self.assertRaises(BoardError):
            board.uart("pn532")
        with self.assertRaises(BoardError):
            board.bus("can")

    def test_every_board_file_builds(self):
        import esp32_c3_fob
        import esp32_s3

        for desc in (virtual, esp32_devkitc, esp32_s3, esp32_c3_fob):
            board = Board(desc, pin_factory=FakePins(self.clock))
            self.assertEqual(board.name, desc.BOARD)
            self.assertEqual(sorted(board.outputs), sorted(desc.OUTPUTS))
            self.assertEqual(sorted(board.inputs), sorted(desc.INPUTS))


class TestUnlockWithProfile(unittest.TestCase):
    """The ECU's sequence on the virtual board: unlock, then the key's profile on the car bus."""

    def test_unlock_then_profile_line(self):
        uarts = {}
        rig = Rig(uart_factory=uart_factory(uarts))
        bus = CarBus(rig.board.uart("carbus"))
        rig.pins.clear()
        self.assertEqual(rig.door.execute(codes.CMD_UNLOCK), codes.OK)
        line = b"CK1 PROFILE seq=0 slot=0123456789ABCDEF seat=2 mirror=1 *72B6\n"
        self.assertEqual(bus.emit_profile(b"\x01\x23\x45\x67\x89\xab\xcd\xef", b"seat=2;mirror=1"), len(line))
        rig.run_to(1000)
        uart, spec = uarts["carbus"]
        self.assertEqual(spec["baud"], 115200)
        self.assertEqual(uart.writes, [line])
        self.assertEqual(rig.pins.timeline, [(0, "unlock", 1), (300, "unlock", 0)])


if __name__ == "__main__":
    unittest.main()
