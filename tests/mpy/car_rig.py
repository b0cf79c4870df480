# carkey — a whole firmware Car for tests in one MicroPython process: state dir, door, clock, owner device.
# SPDX-License-Identifier: MIT
#
# CarRig() is the campaigns' rig (campaign_rig.CarRig: door on plain fake pins, taps a
# couple of minutes apart) on a fresh state directory under /tmp with a reader
# identity, an enrolled owner device, and a clock the test moves (rig.now).
# rig.tap(device) runs Car.handle then Car.settle as the application does.

import os
from binascii import hexlify

import campaign_rig
from carkey.crypto import p256
from carkey.clock import Clock
from carkey.ecu import codes
from carkey.ecu.car import create_identity
from carkey.ecu.keystore import Credential
from mpy_device import Device

T0 = campaign_rig.NOW


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


class CarRig(campaign_rig.CarRig):
    def __init__(self, name="rig", **car_args):
        self.now = T0
        dir = fresh_dir(name)
        self.identity = create_identity(dir)
        priv, pub = p256.generate_keypair()
        self.owner = self.device(priv, pub)
        super().__init__(dir, **car_args)
        self.car.keys.add(Credential(pub, codes.ROLE_OWNER, codes.ENT_ALL))
        self.car.keys.commit()

    def build(self, **car_args):
        """A Car over the state directory, as after a reboot, on the test's clock."""
        car_args.setdefault("clock", Clock(self.dir, source=lambda: self.now, epoch_year=1970))
        return super().build(**car_args)

    def device(self, priv=None, pub=None, **kw):
        if priv is None:
            priv, pub = p256.generate_keypair()
        d = Device(priv, pub, **kw)
        d.reader_pub = self.identity.public_key
        return d

    def close(self):
        rmtree(self.dir)
