# carkey — a provisioned car in one MicroPython process for the fuzz and power-cut campaigns: state directory, door rig, owner.
# SPDX-License-Identifier: MIT
#
# provision() goes through the public entry points a bench would use (admin.provision,
# then Car on the state directory); the door sits on plain pins and a tick clock the
# campaign advances, so its duty limits never refuse a command for being too frequent.

import asyncio

from carkey.ecu import admin
from carkey.ecu.car import Car
from carkey.ecu.door import DoorController
from carkey.hw.pins import Input, Output

OUTPUTS = ("lock", "unlock", "unlock_driver", "trunk", "drive_enable", "horn", "lights", "led", "buzzer")
INPUTS = ("door_driver", "door_passenger", "door_rear_left", "door_rear_right", "door_trunk", "lock_feedback",
          "ignition")
TAP_SPACING_MS = 120000
NOW = 1767225600  # 2026-01-01T00:00:00Z: the campaigns' wall clock


class _Pin:
    def __init__(self):
        self.level = 0

    def value(self, v=None):
        if v is None:
            return self.level
        self.level = v


class Ticks:
    def __init__(self):
        self.now = 0

    def __call__(self):
        return self.now


class FixedClock:
    """Stands in for carkey.clock.Clock where a campaign must not depend on the host's time."""

    def __init__(self, now=NOW):
        self._now = now

    def now(self):
        return self._now

    def trusted(self):
        return True

    def trusted_now(self):
        return self._now


def door():
    ticks = Ticks()
    d = DoorController({r: Output(_Pin()) for r in OUTPUTS}, {r: Input(_Pin()) for r in INPUTS}, clock=ticks)
    return d, ticks


def provision(dir, owner_pub, unix_time=NOW):
    """A factory-fresh state directory made into a car with its first owner."""
    return admin.provision(dir, owner_pub, unix_time)


class CarRig:
    def __init__(self, dir, **car_args):
        self.dir = dir
        self.build(**car_args)

    def build(self, **car_args):
        """A Car over the state directory (again: as after a reboot), on a fresh door."""
        self.door, self.ticks = door()
        self.car = Car(self.dir, self.door, **car_args)
        return self.car

    def tap(self, link, transport=3, fast=None):
        # Taps a couple of minutes apart on the door's clock: pulses end, duty windows renew.
        self.ticks.now += TAP_SPACING_MS
        self.door.tick()
        outcome = asyncio.run(self.car.handle(link, transport, fast))
        self.car.settle()
        return outcome
