# carkey — a whole firmware Car for tests in one MicroPython process: state dir, door, clock, owner device.
# SPDX-License-Identifier: MIT
#
# CarRig() makes a fresh state directory under /tmp with a reader identity and an
# enrolled owner, a door controller on plain fake pins, and a clock the test moves
# (rig.now). rig.tap(device) runs Car.handle then Car.settle as the application does.

import asyncio
import os
from binascii import hexlify

from carkey.crypto import p256
from carkey.clock import Clock
from carkey.ecu import codes
from carkey.ecu.car import Car, create_identity
from carkey.ecu.door import DoorController
from carkey.ecu.keystore import Credential
from carkey.hw.pins import Input, Output
from mpy_device import Device

_OUTPUTS = ("lock", "unlock", "unlock_driver", "trunk", "drive_enable", "horn", "lights", "led", "buzzer")
_INPUTS = ("door_driver", "door_passenger", "door_rear_left", "door_rear_right", "door_trunk", "lock_feedback",
           "ignition")
T0 = 1767225600  # 2026-01-01T00:00:00Z


class _Pin:
    def __init__(self):
        self.level = 0

    def value(self, v=None):
        if v is None:
            return self.level
        self.level = v


def rmtree(path):
    try:
        names = os.listdir(path)
    except OSError:
        return
    for name in names:
        p = path + "/" + name
        if os.stat(p)[0] & 0x4000:
            rmtree(p)
        else:
            os.remove(p)
    os.rmdir(path)


def fresh_dir(name):
    path = "%s/carkey-%s-%s" % (os.getenv("TMPDIR") or "/tmp", name, hexlify(os.urandom(6)).decode())
    rmtree(path)
    os.mkdir(path)
    return path


class RadioFreePlatform:
    """The virtual board's pins and UARTs for ecu.app.App, with no radios, no
    watchdog and no clock change: the application's own logic, run in a test."""

    def __init__(self, flash):
        from virtual_hw.platform import VirtualPlatform

        self.virtual = VirtualPlatform(flash)

    def pin_factory(self):
        return self.virtual.pin_factory()

    def uart_factory(self):
        return self.virtual.uart_factory()

    def pn532(self, spec):
        return None

    def ble(self):
        return None

    def full_speed(self):
        return None

    def watchdog(self):
        return None


class CarRig:
    def __init__(self, name="rig", **car_args):
        self.dir = fresh_dir(name)
        self.now = T0
        self.ticks = 0
        self.identity = create_identity(self.dir)
        priv, pub = p256.generate_keypair()
        self.owner = self.device(priv, pub)
        self.build(**car_args)
        self.car.keys.add(Credential(pub, codes.ROLE_OWNER, codes.ENT_ALL))
        self.car.keys.commit()

    def build(self, **car_args):
        """A Car over the state directory, as after a reboot."""
        outputs = {role: Output(_Pin()) for role in _OUTPUTS}
        inputs = {role: Input(_Pin()) for role in _INPUTS}
        self.door = DoorController(outputs, inputs, clock=self._ticks)
        clock = Clock(self.dir, source=lambda: self.now, epoch_year=1970)
        self.car = Car(self.dir, self.door, clock=clock, **car_args)
        return self.car

    def _ticks(self):
        return self.ticks

    def device(self, priv=None, pub=None, **kw):
        if priv is None:
            priv, pub = p256.generate_keypair()
        d = Device(priv, pub, **kw)
        d.reader_pub = self.identity.public_key
        return d

    def tap(self, link, transport=3, fast=None):
        # Taps a couple of minutes apart on the door's clock: pulses end, duty windows renew.
        self.ticks += 120000
        self.door.tick()
        outcome = asyncio.run(self.car.handle(link, transport, fast))
        self.car.settle()
        return outcome

    def close(self):
        rmtree(self.dir)
