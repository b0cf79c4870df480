# carkey — fuzz surface "state": the car's files on flash truncated, bit-flipped, swapped or mixed, then a boot.
# SPDX-License-Identifier: MIT
#
# Setup commits a history through the public entry points (provision, owner-signed
# shares and revocations, the clock, failed taps for the lockout record, the audit
# log) and remembers every key-store authority and clock floor it committed. Each
# case restores that state directory, damages one or two of its files (a record
# copy .a/.b, the audit segments), possibly swaps the A and B copies, replaces a
# copy with one from an earlier generation or re-seals a damaged body under a valid
# header and CRC, then boots the car: Car(dir, door),
# admin.keys, admin.log, Clock.floor; every 8th case a stranger then taps.
# Checked: the boot either works or fails with a documented error (StorageError,
# KeyStoreError and the other ValueErrors the loaders name, NotProvisioned);
# what it loads is a state that was committed (never a key, role or floor nobody
# wrote); the stranger is never granted.

import os
import time

from carkey import storage
from carkey.clock import Clock
from carkey.ecu import admin, codes, documents, policy
from carkey.ecu.car import IDENTITY_RECORD, Car, NotProvisioned, load_identity
from carkey.protocol.identity import ReaderIdentity

import campaign_rig
import device_sim
from fuzzlib import mutate
from surf_apdu import _keypair, authority


def _files(dir):
    out = {}
    for name in sorted(os.listdir(dir)):
        with open(dir + "/" + name, "rb") as f:
            out[name] = f.read()
    return out


class World:
    def __init__(self, dir, rng):
        self.dir = dir
        ident = ReaderIdentity.from_private(rng.bytes(32), rng.bytes(16), rng.bytes(16))
        storage.save(dir, IDENTITY_RECORD, ident.to_bytes())
        self.owner = _keypair(rng)
        self.stranger = device_sim.Credential(*_keypair(rng))
        self.authorities = set()
        self.floors = {0}
        self.generations = {}  # file name -> every content it had (older copies to swap in)
        # Both copies of the key store gone is the factory state: committed once, grants nothing.
        self.authorities.add(authority(dir))
        campaign_rig.provision(dir, self.owner[1])
        self._commit()
        ident = load_identity(dir)
        group = ident.group_id
        friends = [_keypair(rng)[1] for _ in range(3)]
        serial = 1
        for i, friend in enumerate(friends):
            body = documents.share_body(group, friend, codes.ROLE_DRIVER + i % 3, policy.default_entitlements(codes.ROLE_DRIVER + i % 3), 0, 0, b"", 3 * i, serial)
            self._submit(documents.sign(documents.SHARE_TAG, body, *self.owner))
            serial += 1
        import hashlib

        body = documents.revocation_body(group, hashlib.sha1(friends[0]).digest()[:8], serial, codes.ACTION_SUSPEND)
        self._submit(documents.sign(documents.REVOCATION_TAG, body, *self.owner))
        serial += 1
        challenge = bytes.fromhex(admin.challenge(dir)["challenge"])  # an admin session (PROTOCOL §9)
        for number, t in enumerate((campaign_rig.NOW + 100, campaign_rig.NOW + 7200), 1):
            body = documents.admin_body(group, number, codes.ADMIN_SET_CLOCK, t.to_bytes(4, "big"), challenge)
            self._submit(documents.sign(documents.ADMIN_TAG, body, *self.owner))
            serial += 1
        # Failed taps: a device whose AUTH1 answer does not authenticate (lockout record).
        self.clock = campaign_rig.FixedClock(campaign_rig.NOW + 7300)
        rig = campaign_rig.CarRig(dir, clock=self.clock)
        for _ in range(3):
            link = device_sim.DeviceLink(self.stranger, ident.public_key, mutate=_break_auth1)
            rig.tap(link)
            self._commit()
        self.ident = ident
        self.files = _files(dir)

    def _submit(self, doc):
        out = admin.submit(self.dir, doc, campaign_rig.NOW)
        if out["result"] != codes.OK:
            raise AssertionError("setup document refused: %r" % out)
        self._commit()

    def _commit(self):
        self.authorities.add(authority(self.dir))
        self.floors.add(Clock(self.dir).floor)
        for name, data in _files(self.dir).items():
            self.generations.setdefault(name, [])
            if data not in self.generations[name]:
                self.generations[name].append(data)

    def restore(self):
        for name in os.listdir(self.dir):
            if name not in self.files:
                os.remove(self.dir + "/" + name)
        for name, data in self.files.items():
            with open(self.dir + "/" + name, "wb") as f:
                f.write(data)


def _break_auth1(step, capdu, answer):
    if capdu[1] == 0x81 and answer:
        return bytes((answer[0] ^ 1,)) + answer[1:]
    return answer


_ALLOWED = (ValueError, NotProvisioned)  # StorageError, KeyStoreError, ClockError are ValueErrors


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def _foreign_intact(world, name, data):
    """A record copy with a valid header and CRC that the history never wrote (re-sealed)."""
    import struct
    from binascii import crc32

    if data in world.generations.get(name, ()) or len(data) < 20 or data[:4] != b"CKST":
        return False
    length, crc = struct.unpack(">II", data[12:20])
    return len(data) == 20 + length and crc32(data[20:], crc32(data[:16])) == crc


def _damage(world, rng):
    names = sorted(world.files)
    name = rng.choice(names)
    path = world.dir + "/" + name
    data = world.files[name]
    how = rng.below(7)
    if how == 6 and name.endswith((".a", ".b")):
        # Re-sealed: a damaged body under a correct header and CRC (a firmware bug or a
        # format from another version), so the record's own parser meets the damage.
        record = name[:-2]
        try:
            body = storage.load(world.dir, record)
        except storage.StorageError:
            body = None  # the case's first damage left no intact copy: damage it another way
        if body is not None:
            storage.save(world.dir, record, mutate(rng, body))
            for suffix in (".a", ".b"):
                copy = _read(world.dir + "/" + record + suffix)
                if copy != world.files.get(record + suffix):
                    return record + suffix, "re-sealed", copy
    if how == 0:
        new = data[: rng.below(len(data) + 1)]
        what = "truncated"
    elif how == 1:
        new = bytearray(data)
        for _ in range(1 + rng.below(3)):
            if new:
                new[rng.below(len(new))] ^= 1 << rng.below(8)
        new = bytes(new)
        what = "bit-flipped"
    elif how == 2 and (name.endswith(".a") or name.endswith(".b")):
        other = name[:-1] + ("b" if name.endswith(".a") else "a")
        if other in world.files:
            with open(world.dir + "/" + other, "wb") as f:
                f.write(data)
            new = world.files[other]
            what = "A/B swapped"
        else:
            new = b""
            what = "emptied"
    elif how == 3:
        older = world.generations.get(name, [data])
        new = rng.choice(older)
        what = "older generation"
    elif how == 4:
        try:
            os.remove(path)
        except OSError:
            pass  # the case's first damage removed it already
        return name, "removed", b""
    else:
        new = mutate(rng, data)
        what = "mutated"
    with open(path, "wb") as f:
        f.write(new)
    return name, what, new


def run_case(world, rng, report, case, entry=None):
    world.restore()
    if entry is not None:
        name = entry[1 : 1 + entry[0]].decode()
        if len(entry) == 1 + entry[0]:
            os.remove(world.dir + "/" + name)  # saved as removed
        else:
            with open(world.dir + "/" + name, "wb") as f:
                f.write(entry[1 + entry[0]:])
        damage = [(name, "corpus", entry[1 + entry[0]:])]
    else:
        damage = [_damage(world, rng) for _ in range(1 + rng.chance(1, 3))]
    name, what, data = damage[0]
    saved = bytes((len(name),)) + name.encode() + data
    kind = name.split(".")[0]
    t0 = time.ticks_ms()
    try:
        door, ticks = campaign_rig.door()
        car = Car(world.dir, door, clock=world.clock)
        keys = admin.keys(world.dir)
        admin.log(world.dir)
        floor = Clock(world.dir).floor
    except _ALLOWED as e:
        report.outcome("%s|%s|boot refused: %s" % (kind, what, type(e).__name__), saved)
        return
    except Exception as e:
        report.violation(case, "boot with %s %s raised %r" % (what, name, e), saved)
        report.outcome("%s|%s|raised" % (kind, what))
        return
    report.timed(time.ticks_diff(time.ticks_ms(), t0))
    # A re-sealed body carries a valid CRC: the firmware cannot tell it from a state it
    # wrote, so only the error types (above) and the stranger (below) are checked.
    resealed = any(d[1] == "re-sealed" or (d[1] == "corpus" and _foreign_intact(world, d[0], d[2])) for d in damage)
    if not resealed and authority(world.dir) not in world.authorities:
        report.violation(case, "key store loaded a state nobody committed (%s %s)" % (what, name), saved)
    if not resealed and floor not in world.floors:
        report.violation(case, "clock floor %d was never written (%s %s)" % (floor, what, name), saved)
    tapped = ""
    if case % 8 == 0:
        import asyncio

        link = device_sim.DeviceLink(world.stranger, car.identity.public_key)
        out = asyncio.run(car.handle(link, 3))
        car.settle()
        if out.granted:
            report.violation(case, "stranger granted after %s %s" % (what, name), saved)
        tapped = "|stranger refused"
    report.outcome("%s|%s|boot ok, %d keys%s" % (kind, what, len(keys["keys"]), tapped), saved)


def final_check(world, report):
    world.restore()
    door, _ = campaign_rig.door()
    Car(world.dir, door, clock=world.clock)
    if authority(world.dir) not in world.authorities:
        report.violation(-1, "undamaged state does not load")
