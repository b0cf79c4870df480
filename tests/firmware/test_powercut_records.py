# carkey — power cuts at every flash operation of a car's life, for every record kind it keeps.
# SPDX-License-Identifier: MIT
#
# Run: .venv/bin/pytest -q tests/firmware/test_powercut_records.py   (short: a sample of cut points)
#      make powercut                                                  (long: every cut point, clean and torn)
#
# A car's life runs on littlefs over the simulated NOR flash of tests/mpy/flashsim.py
# through the public entry points only: the identity record, admin.enroll,
# admin.set_clock, owner-signed documents through admin.submit, taps through
# Car.handle + Car.settle (standard, fast, a use-limited key, strangers failing
# AUTH1), Clock.checkpoint. That writes every record kind the car keeps: identity,
# key store (with Kpersistent, use counters, serial floors), lockout, clock floor,
# audit log. The key fob's state is not on this branch and is not covered here.
#
# An uncut run records every state each record was committed in (storage.save_with
# is observed, not changed) and the flash image and audit log after each step.
# Then, for each step and each operation k of it, the step runs again from the image
# before it with the power failing after k operations (and, torn, with operation
# k + 1 landing half-way); the flash is mounted again as after a reboot and:
#   - every record loads (no StorageError) and holds a state committed by the steps
#     before the cut or by the step it cut: nothing committed is lost, nothing rolls
#     back (use counters, serial floors, clock floor, lockout), nothing is invented;
#   - the audit log keeps every record of earlier steps, gains only a prefix of the
#     cut step's records, and its next sequence number is above all of them;
#   - the car boots (Car on the state directory) once the identity was committed.

import gc
import os

import unittest
from flashsim import FlashSim
from scratch import remove_tree, scratch_dir

from carkey import storage
from carkey.clock import Clock
from carkey.crypto import p256
from carkey.ecu import admin, codes, documents
from carkey.ecu.auditlog import AuditLog
from carkey.ecu.car import IDENTITY_RECORD, Car
from carkey.protocol.identity import ReaderIdentity

import campaign_rig
import device_sim

MPY_HEAPSIZE = "32m"  # a few flash images in RAM at a time (those of the step boundaries live in host files)

LONG = os.getenv("CARKEY_POWERCUT") == "long"
SHORT_POINTS = 60  # cut points sampled by the short version (clean and torn together)
MOUNT = "/pcflash"
DIR = MOUNT + "/state"
NOW = campaign_rig.NOW
_SUFFIXES = (".a", ".b", ".t")


def _key(seed):
    # A fixed key pair, so every run writes the same bytes.
    d = bytes((seed,)) * 31 + b"\x01"
    return d, p256.public_key(d)


OWNER = _key(0x11)
FRIEND = _key(0x22)
STRANGER = _key(0x33)
READER = ReaderIdentity.from_private(_key(0x44)[0], bytes(range(16)), bytes(range(16, 32)))
EPH = {"owner": _key(0x55), "friend": _key(0x66), "stranger": _key(0x77)}
READER_EPH = _key(0x88) + (bytes(range(100, 116)),)


class Phones:
    """What the devices remember between taps (their Kpersistent for this car)."""

    def __init__(self):
        self.kp = {}


def _clock(t):
    return Clock(DIR, source=lambda: t)


def _tap(who, phones, t, command=codes.CMD_UNLOCK, fast=None, break_auth1=False):
    rig = campaign_rig.CarRig(DIR, clock=_clock(t))
    pool = rig.car.reader.pool
    pool.clear()
    pool.add_ephemeral(*READER_EPH)
    pool.add_nonce(p256.Nonce(*NONCE))
    key = {"owner": OWNER, "friend": FRIEND, "stranger": STRANGER}[who]
    cred = device_sim.Credential(*key)
    mutate = _break_auth1 if break_auth1 else None
    req = b"\xe1\x03\xc2\x01" + bytes((command,))
    link = device_sim.DeviceLink(cred, READER.public_key, phones.kp.get(who), [req], mutate, EPH[who])
    out = rig.tap(link, 3, fast)
    if link.new_kpersistent is not None and out.granted:
        phones.kp[who] = link.new_kpersistent
    return out


def _break_auth1(step, capdu, answer):
    if capdu[1] == 0x81 and answer:
        return bytes((answer[0] ^ 1,)) + answer[1:]
    return answer


def _submit(doc, t):
    out = admin.submit(DIR, doc, t)
    if out["result"] != codes.OK:
        raise AssertionError("document refused: %r" % out)


def _sign(tag, body):
    return documents.sign(tag, body, OWNER[0], OWNER[1])


def _admin_request(group, operation, argument):
    # The first request of a new admin session (PROTOCOL §9): the car's challenge is in
    # RAM, so a step re-run after a cut opens its own.
    challenge = bytes.fromhex(admin.challenge(DIR)["challenge"])
    return _sign(documents.ADMIN_TAG, documents.admin_body(group, 1, operation, argument, challenge))


def _slot(pub):
    import hashlib

    return hashlib.sha1(pub).digest()[:8]


def life(phones):
    """(name, action) steps; each builds what it needs from flash, as after a reboot."""
    g = READER.group_id
    share = documents.share_body(g, FRIEND[1], codes.ROLE_DRIVER, 0x07, 0, 0, b"", 3, 1)
    suspend = documents.revocation_body(g, _slot(FRIEND[1]), 3, codes.ACTION_SUSPEND)
    resume = documents.revocation_body(g, _slot(FRIEND[1]), 4, codes.ACTION_RESUME)
    revoke = documents.revocation_body(g, _slot(FRIEND[1]), 6, codes.ACTION_REVOKE)
    t = NOW + 8000
    steps = [
        # Factory setup first: the unsigned bench operations are for a car without an owner.
        ("identity", lambda: storage.save(DIR, IDENTITY_RECORD, READER.to_bytes())),
        ("set clock", lambda: admin.set_clock(DIR, NOW)),
        ("card master key", lambda: admin.set_card_master_key(DIR, bytes(range(16)))),
        ("enroll a card", lambda: admin.enroll_card(DIR, bytes(range(1, 8)), codes.ROLE_DRIVER, when=NOW + 5)),
        ("enroll owner", lambda: admin.enroll(DIR, OWNER[1], codes.ROLE_OWNER, when=NOW)),
        ("share to a friend (3 uses)", lambda: _submit(_sign(documents.SHARE_TAG, share), NOW + 10)),
        ("owner standard tap: Kpersistent", lambda: _expect(_tap("owner", phones, NOW + 20, fast=False), True)),
        ("owner fast tap: uses", lambda: _expect(_tap("owner", phones, NOW + 30, fast=True), True)),
        ("friend tap: a limited use", lambda: _expect(_tap("friend", phones, NOW + 40, fast=False), True)),
        ("friend fast tap: another use", lambda: _expect(_tap("friend", phones, NOW + 45, fast=True), True)),
    ]
    # Five failures inside a minute: the lockout starts.
    for j in range(5):
        steps.append(("stranger fails AUTH1 (%d)" % (j + 1),
                      lambda j=j: _tap("stranger", phones, NOW + 50 + j, fast=False, break_auth1=True)))
    steps += [
        ("owner request: set clock", lambda: _submit(_admin_request(g, codes.ADMIN_SET_CLOCK, (NOW + 600).to_bytes(4, "big")), NOW + 60)),
        ("clock checkpoint", lambda: _clock(NOW + 600 + 7200).checkpoint()),
        ("owner suspends the friend", lambda: _submit(_sign(documents.REVOCATION_TAG, suspend), NOW + 70)),
        ("owner standard tap: lockout cleared", lambda: _expect(_tap("owner", phones, t, fast=False), True)),
        ("suspended friend refused", lambda: _expect(_tap("friend", phones, t + 10, fast=False), False)),
        ("owner resumes the friend", lambda: _submit(_sign(documents.REVOCATION_TAG, resume), t + 20)),
        ("friend's last use", lambda: _expect(_tap("friend", phones, t + 30, fast=True), True)),
        ("friend past the use limit", lambda: _expect(_tap("friend", phones, t + 40, fast=False), False)),
        ("owner exports the log", lambda: _submit(_admin_request(g, codes.ADMIN_EXPORT_LOG, bytes(4)), t + 50)),
        ("owner revokes the friend", lambda: _submit(_sign(documents.REVOCATION_TAG, revoke), t + 60)),
    ]
    for j in range(4):
        steps.append(("owner tap %d" % (j + 1),
                      lambda j=j: _expect(_tap("owner", phones, t + 100 + j, fast=bool(j & 1)), True)))
    return steps


def _expect(out, granted):
    if out.granted != granted:
        raise AssertionError("tap %r, expected granted=%s" % (out, granted))


def _records():
    """{record name: body} of every record in the state directory (None: no intact copy)."""
    out = {}
    try:
        names = os.listdir(DIR)
    except OSError:
        return out
    for name in names:
        for suffix in _SUFFIXES:
            if name.endswith(suffix):
                base = name[: -len(suffix)]
                if base not in out:
                    out[base] = storage.load(DIR, base)
    return out


def _log():
    try:
        return [tuple(r.values()) for r in admin.log(DIR)]
    except OSError:
        return []


class _Observer:
    """Every body each record was committed with, in order (read back after each save)."""

    def __init__(self):
        self.history = {}
        self._orig = storage.save_with

    def __enter__(self):
        orig = self._orig
        history = self.history

        def save_with(dir, name, length, write_body):
            gen = orig(dir, name, length, write_body)
            history.setdefault(name, []).append(storage.load(dir, name))
            return gen

        storage.save_with = save_with
        return self

    def __exit__(self, *exc):
        storage.save_with = self._orig

    def marks(self):
        return {name: len(h) for name, h in self.history.items()}


def _umount():
    try:
        import vfs

        vfs.umount(MOUNT)
    except OSError:
        pass


class PowerCutLife(unittest.TestCase):
    GEOMETRY = (512, 256)  # block size, block count: 128 KiB

    @classmethod
    def setUpClass(cls):
        global NONCE
        n = p256.precompute_nonce()
        NONCE = (n.r, n._kinv)
        _umount()
        cls.uncut()

    @classmethod
    def tearDownClass(cls):
        for image in cls.images or ():
            image.close()
        cls.images = None
        remove_tree(cls.tmp)

    @classmethod
    def uncut(cls):
        cls.tmp = scratch_dir()
        gc.collect()
        base = FlashSim(block_size=cls.GEOMETRY[0], block_count=cls.GEOMETRY[1])
        base.format()
        base.mount(MOUNT)
        os.mkdir(DIR)
        base.umount()
        phones = Phones()
        steps = life(phones)
        cls.images = [base.clone(cls.tmp + "/step0")]  # flash before step i (host files)
        cls.phones = [dict(phones.kp)]
        cls.marks = [{}]  # per record: committed states before step i
        cls.logs = [[]]
        cls.ops = []
        cls.names = [name for name, _ in steps]
        with _Observer() as obs:
            sim = base.clone()
            for name, action in steps:
                sim.mount(MOUNT)
                start = sim.ops
                action()
                cls.ops.append(sim.ops - start)
                cls.marks.append(obs.marks())
                cls.logs.append(_log())
                sim.umount()
                cls.images.append(sim.clone(cls.tmp + "/step%d" % len(cls.images)))
                cls.phones.append(dict(phones.kp))
        cls.history = obs.history
        cls.steps = steps

    def test_life_writes_every_record_kind(self):
        for name in ("identity", "keys", "clock"):
            self.assertIn(name, self.history, name)
        # The lockout's record is the car's business (its name and form may change);
        # what the failures write is covered whatever it is called.
        self.assertTrue(set(self.history) - {"identity", "keys", "clock"}, "failed taps wrote no record")
        self.assertGreaterEqual(len(self.history["keys"]), 8)  # enroll, share, Kpersistent, uses, floors, suspend
        self.assertGreaterEqual(len(self.history["clock"]), 3)  # set, owner request, checkpoint
        self.assertGreaterEqual(len(self.logs[-1]), 12)
        self.assertGreaterEqual(sum(self.ops), 200)  # flash operations of the whole life: each one a cut point

    def points(self):
        """(step, k, torn) of the cut points this run covers."""
        every = [(i, k, torn) for torn in (False, True) for i, n in enumerate(self.ops) for k in range(n - torn)]
        if LONG:
            return every
        stride = max(1, len(every) // SHORT_POINTS)
        return every[stride // 2 :: stride]

    def test_cut_at_every_operation(self):
        points = self.points()
        if LONG:
            self.assertGreaterEqual(len(points), 400)
        checked = 0
        for i, k, torn in points:
            self.cut(i, k, torn)
            checked += 1
        self.assertEqual(checked, len(points))
        print("power cuts, %d-byte blocks: %d cut points over %d steps, %d flash operations in the uncut life" % (
            self.GEOMETRY[0], checked, len(self.ops), sum(self.ops)))

    def cut(self, i, k, torn):
        where = "step %d (%s), cut after %d of %d ops%s" % (i, self.names[i], k, self.ops[i], ", torn" if torn else "")
        gc.collect()  # the last run's image: a whole flash must fit in one piece
        sim = self.images[i].clone()
        sim.mount(MOUNT)
        phones = Phones()
        phones.kp = dict(self.phones[i])
        action = life(phones)[i][1]
        sim.cut_after(k, torn)
        try:
            action()
        except Exception:
            if not sim.is_cut():
                raise
        self.assertTrue(sim.is_cut(), where)
        sim.umount()
        sim.power_on()
        sim.mount(MOUNT)
        try:
            self.check(i, where)
        finally:
            sim.umount()

    def check(self, i, where):
        before, after = self.marks[i], self.marks[i + 1]
        try:
            records = _records()
        except storage.StorageError as e:
            raise AssertionError("%s: %s" % (where, e))
        for name in set(records) | set(after):
            hist = self.history.get(name, [])
            lo, hi = before.get(name, 0), after.get(name, 0)
            allowed = hist[max(lo - 1, 0) : hi]
            if lo == 0:
                allowed = [None] + allowed  # never committed before this step
            self.assertIn(records.get(name), allowed, "%s: record %s holds a state outside %d..%d" % (
                where, name, lo, hi))
        log = _log()
        old, new = self.logs[i], self.logs[i + 1]
        self.assertEqual(log[: len(old)], old, where + ": audit records of earlier steps lost")
        self.assertEqual(log, new[: len(log)], where + ": audit log holds records nobody wrote")
        seq = AuditLog(DIR).append(NOW + 9999, None, 0, 0, 0, 0)
        self.assertGreater(seq, len(log), where + ": audit sequence number reused")
        if "identity" in records and records["identity"] is not None:
            door, _ = campaign_rig.door()
            Car(DIR, door, clock=_clock(NOW + 9999))


class PowerCutLife4k(PowerCutLife):
    # An ESP32's flash: 4 KiB erase blocks (the partition littlefs gets on a board).
    GEOMETRY = (4096, 64)


class PowerCutLife256(PowerCutLife):
    # Small blocks: more, shorter operations, so cuts land between more of littlefs's steps.
    GEOMETRY = (256, 512)


if __name__ == "__main__":
    unittest.main()
