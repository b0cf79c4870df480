# carkey — fuzz surface "apdu": damaged device answers at every step of a tap, through the whole ECU.
# SPDX-License-Identifier: MIT
#
# A provisioned car (carkey.ecu.car.Car on a host directory) taps the MicroPython
# user device of tests/mpy/device_sim.py. The reader's ephemeral key and nonce and
# the device's ephemeral key are fixed, so every answer is the same from run to
# run and a corpus entry (scenario, step, answer) replays exactly. Per case one
# answer is damaged: an R-APDU at a chosen step (bytes, status word, a replayed
# earlier answer, or silence), or an envelope message before it is sealed.
# Checked: Car.handle returns an Outcome and never raises; a stranger is never
# granted; the key store's authority (keys, roles, states, validity, serial
# floors, revocations) never changes; a tap sends a bounded number of APDUs.

import time

from carkey import storage
from carkey.crypto import p256
from carkey.ecu import codes
from carkey.ecu.car import IDENTITY_RECORD
from carkey.ecu.keystore import KeyStore
from carkey.protocol.identity import ReaderIdentity

import campaign_rig
import device_sim
from fuzzlib import SWS, mutate

_MAX_APDUS = 48
DEADLINE_MS = 5000

# (name, credential: "owner"/"stranger", fast, replies)
SCENARIOS = (
    ("owner-std", "owner", False, "unlock"),
    ("owner-fast", "owner", True, "unlock"),
    ("owner-multi", "owner", False, "multi"),
    ("owner-revocations", "owner", True, "revocations"),
    ("stranger-share", "stranger", False, "share"),
    ("stranger-fast", "stranger", True, "unlock"),
)


def _req(command, arg=b""):
    body = bytes((command,)) + arg
    inner = b"\xc2" + bytes((len(body),)) + body
    return b"\xe1" + bytes((len(inner),)) + inner


def _replies(kind, rng, group):
    if kind == "unlock":
        return [_req(codes.CMD_UNLOCK)]
    if kind == "multi":
        return [_req(codes.CMD_UNLOCK), _req(codes.CMD_STATUS), _req(codes.CMD_DRIVE_ENABLE, b"\x1e"),
                _req(codes.CMD_LOCK), _req(codes.CMD_TRUNK)]
    if kind == "revocations":
        # Revocations of the owner itself signed by nobody: must all be refused.
        doc = b"\xe3\x10" + bytes(range(16))
        inner = b"\xc5" + bytes((len(doc),)) + doc
        inner = inner * 2 + b"\xc2\x01\x02"
        return [b"\xe1" + bytes((len(inner),)) + inner]
    # A share the stranger signed itself, naming itself an owner.
    doc = b"\xe2\x14\x80\x01\x01\x81\x10" + group[:16]
    inner = b"\xc3" + bytes((len(doc),)) + doc + b"\xc2\x01\x02"
    return [b"\xe1" + bytes((len(inner),)) + inner]


def authority(dir):
    """What only an owner may change, as one comparable value, read from flash."""
    store = KeyStore(dir)
    out = []
    for c in store:
        out.append((c.pub, c.role, c.status, c.entitlements, c.not_before, c.not_after, bytes(c.schedule),
                    c.use_limit, c.serial_floor, bytes(c.profile)))
    out.sort()
    return repr(out) + repr(sorted(store.revoked_slots()))


class World:
    def __init__(self, dir, rng):
        self.dir = dir
        priv = rng.bytes(32)
        ident = ReaderIdentity.from_private(priv, rng.bytes(16), rng.bytes(16))
        storage.save(dir, IDENTITY_RECORD, ident.to_bytes())
        self.owner = device_sim.Credential(*_keypair(rng))
        self.stranger = device_sim.Credential(*_keypair(rng))
        self.eph = {"owner": _keypair(rng), "stranger": _keypair(rng)}
        campaign_rig.provision(dir, self.owner.pub)
        self.clock = campaign_rig.FixedClock()
        self.rig = campaign_rig.CarRig(dir, clock=self.clock)
        self.ident = self.rig.car.identity
        self.reader_eph = _keypair(rng) + (rng.bytes(16),)
        n = p256.precompute_nonce()
        self.nonce = (n.r, n._kinv)
        self.kpersistent = None
        self.authority = authority(dir)
        # One honest standard tap: the car and the device then share a Kpersistent.
        link = self.link("owner", (), None)
        out = self.tap(link, False)
        if not out.granted:
            raise AssertionError("honest first tap refused: %r" % out)
        self.kpersistent = link.new_kpersistent
        self.plain_kp = self.kpersistent

    def link(self, who, replies, mutate_fn):
        cred = self.owner if who == "owner" else self.stranger
        kp = self.kpersistent if who == "owner" else None
        return device_sim.DeviceLink(cred, self.ident.public_key, kp, replies, mutate_fn, self.eph[who])

    def tap(self, link, fast):
        pool = self.rig.car.reader.pool
        pool.clear()
        pool.add_ephemeral(*self.reader_eph)
        pool.add_nonce(p256.Nonce(*self.nonce))
        self.clock._now += 13  # failures now and then close enough to lock out
        return self.rig.tap(link, 3, fast)


def _keypair(rng):
    while True:
        priv = rng.bytes(32)
        try:
            return priv, p256.public_key(priv)
        except ValueError:
            pass


class _Mutator:
    def __init__(self, rng, step, mode):
        self.rng = rng
        self.step = step
        self.mode = mode  # 0 bytes, 1 status word, 2 replay, 3 silence, 4 given answer
        self.given = None
        self.answers = []
        self.used = None

    def __call__(self, step, capdu, answer):
        if step != self.step:
            if answer is not None:
                self.answers.append(answer)
            return answer
        rng = self.rng
        if self.mode == 4:
            out = self.given
        elif self.mode == 3:
            out = None
        elif self.mode == 2 and self.answers:
            out = rng.choice(self.answers)
        elif self.mode == 1 and answer is not None:
            out = answer[:-2] + rng.choice(SWS)
        else:
            out = mutate(rng, answer or b"")
        self.used = out
        return out


def encode_entry(scenario, step, answer):
    return bytes((scenario, step)) + (b"\x01" + answer if answer is not None else b"\x00")


def run_case(world, rng, report, case, entry=None):
    if entry is not None:
        sc, step = entry[0], entry[1]
        mut = _Mutator(rng, step, 4)
        mut.given = entry[3:] if entry[2] else None
        plain_at = -1
    elif world.pool and rng.chance(1, 4):
        # A recorded answer that once reached a new outcome, damaged again at its step.
        base = rng.choice(world.pool)
        sc, step = base[0] % len(SCENARIOS), base[1]
        mut = _Mutator(rng, step, 4)
        mut.given = mutate(rng, base[3:]) if len(base) > 2 and base[2] else None
        plain_at = -1
    else:
        sc = rng.below(len(SCENARIOS))
        plain_at = rng.below(3) if rng.chance(1, 4) else -1
        step = rng.below(9) if plain_at < 0 else -1
        mut = _Mutator(rng, step, rng.below(4))
    name, who, fast, kind = SCENARIOS[sc]
    replies = _replies(kind, rng, world.ident.group_id)
    if plain_at >= 0 and plain_at < len(replies):
        replies[plain_at] = mutate(rng, replies[plain_at])
    link = world.link(who, replies, mut)
    t0 = time.ticks_ms()
    try:
        out = world.tap(link, fast)
    except Exception as e:  # Car.handle must turn everything a device sends into an Outcome
        report.violation(case, "%s step %d: %s raised %r" % (name, step, "handle", e),
                         encode_entry(sc, step, mut.used))
        report.outcome("%s|raised" % name)
        return
    ms = time.ticks_diff(time.ticks_ms(), t0)
    report.timed(ms)
    data = encode_entry(sc, step, mut.used) if mut.used is not None or mode_silent(mut) else None
    if ms > DEADLINE_MS:
        report.violation(case, "%s took %d ms" % (name, ms), data or b"")
    if link.step > _MAX_APDUS:
        report.violation(case, "%s sent %d APDUs" % (name, link.step), data or b"")
    if who == "stranger" and (out.granted or any(code == codes.OK for _, code in out.results)):
        report.violation(case, "stranger granted: %r" % out, data or b"")
    now = authority(world.dir)
    if now != world.authority:
        report.violation(case, "key store authority changed without an owner signature", data or b"")
        world.authority = now
    where = ("plain%d" % plain_at) if plain_at >= 0 else ("step%d" % step)
    result = "err%02x" % out.error if out.error is not None else ",".join("%02x" % c for _, c in out.results)
    report.outcome("%s|%s|%s|%s|%s" % (name, where, out.kind, "granted" if out.granted else "refused", result), data)


def mode_silent(mut):
    return mut.mode == 3 and mut.step >= 0


def final_check(world, report):
    # After the campaign the owner still gets in, standard then fast.
    world.clock._now += 86400
    for fast in (False, True):
        out = world.tap(world.link("owner", [_req(codes.CMD_UNLOCK)], None), fast)
        if not out.granted:
            report.violation(-1, "owner refused after the campaign (fast=%s): %r" % (fast, out))
