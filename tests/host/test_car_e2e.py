"""The car end to end: the firmware ECU (MicroPython Unix port, state directory) against the simulated phone.

Every test runs the real firmware process through carkey_host.vcar.VirtualCar and the
CPython Phone (carkey_host.phone, independent of the firmware) over TCP. Covers first
unlock then fast, shares with entitlements and schedules, revocation, suspension,
unknown keys, tampered / replayed / reordered / truncated messages (refused, nothing
stored), a phone refusing a wrong reader, kill -9 during key-store writes, lockout,
and the `carkey reader` CLI contract.

Run: .venv/bin/pytest -q tests/host/test_car_e2e.py
"""

import binascii
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from carkey_host import documents
from carkey_host import envelope as env
from carkey_host.documents import Window
from carkey_host.errors import CarkeyError
from carkey_host.keydir import KeyDir
from carkey_host.phone import Phone
from carkey_host.tcp_link import ThreadedServer
from carkey_host.vcar import VirtualCar
from carkey_cli import carkey as _carkey

UNLOCK = env.COMMANDS["unlock"]
DRIVE = env.COMMANDS["drive"]
OK, NOT_ENTITLED, OUTSIDE_SCHEDULE, KEY_SUSPENDED, KEY_REVOKED, LOCKED_OUT = 0x00, 0x01, 0x03, 0x06, 0x07, 0x08
AUTH_FAILED, PROTOCOL_ERROR, LINK_LOST = 0x80, 0x81, 0x82


class PhoneServer(ThreadedServer):
    """Serves one Phone over TCP in a thread; tamper(c_apdu, r_apdu, n) may rewrite an
    answer (n: the connection number) or return None to drop the link."""

    def __init__(self, phone, framing="lp", tamper=None):
        self.phone = phone
        self.tamper = tamper
        self.transactions = []
        self.answers = []  # (connection, c_apdu, r_apdu) as sent
        super().__init__(self._one, framing)

    def _one(self, link, n):
        self.transactions.append(self.phone.handle_connection(_Tap(link, self, n), n))


class _Tap:
    def __init__(self, link, server, number):
        self._link = link
        self._server = server
        self._number = number
        self._last = None

    def receive(self):
        self._last = self._link.receive()
        return self._last

    def send(self, r_apdu):
        if self._server.tamper is not None:
            r_apdu = self._server.tamper(self._last, r_apdu, self._number)
            if r_apdu is None:
                self._link.sock.close()
                raise OSError("dropped by the test")
        self._server.answers.append((self._number, self._last, r_apdu))
        self._link.send(r_apdu)


@pytest.fixture
def world(tmp_path):
    """A provisioned car with an owner phone that trusts it."""
    car = VirtualCar(tmp_path / "car")
    ident = car.init()
    owner = KeyDir(tmp_path / "owner")
    owner_pub = owner.init()
    owner.trust(bytes.fromhex(ident["group_id"]), bytes.fromhex(ident["reader_public_key"]))
    car.enroll(owner_pub, "owner")
    servers = []

    class World:
        pass

    w = World()
    w.car, w.ident, w.owner, w.owner_pub, w.tmp = car, ident, owner, owner_pub, tmp_path
    w.group_id = bytes.fromhex(ident["group_id"])

    def phone(keydir, commands=(), revocations=()):
        return Phone(keydir, commands=commands, revocations=revocations)

    def run(keydir_or_phone, sequence, framing="lp", tamper=None, commands=()):
        p = keydir_or_phone if isinstance(keydir_or_phone, Phone) else phone(keydir_or_phone, commands)
        server = PhoneServer(p, framing, tamper)
        servers.append(server)
        txns, pulses = car.connect("127.0.0.1", server.port, framing, sequence)
        server.close()
        return txns, server

    def friend(name, trusted=True):
        kd = KeyDir(tmp_path / name)
        pub = kd.init()
        if trusted:
            kd.trust(w.group_id, bytes.fromhex(ident["reader_public_key"]))
        return kd, pub

    w.phone, w.run, w.friend = phone, run, friend
    yield w
    for s in servers:
        s.close()


def state_files(car):
    """Bytes of the persistent key-store and lockout records (what a refusal must not change)."""
    out = {}
    for name in sorted(os.listdir(car.state_dir)):
        if name.startswith(("keys.", "lockout.", "identity.")):
            out[name] = (car.state_dir / name).read_bytes()
    return out


def without_lockout(files):
    return {k: v for k, v in files.items() if not k.startswith("lockout")}


# --- the owner's own key -----------------------------------------------------------


@pytest.mark.parametrize("framing", ["raw", "lp"])
def test_first_unlock_is_standard_then_fast(world, framing):
    txns, server = world.run(world.owner, ["standard", "fast", "fast"], framing)
    assert [t.kind for t in txns] == ["standard", "fast", "fast"]
    assert all(t.granted and t.results == [(UNLOCK, OK)] for t in txns)
    # The phone asked nothing: one EXCHANGE, the outcome in CONTROL FLOW (PROTOCOL.md §4).
    assert all(t.results == [] for t in server.transactions)
    assert all(t.control_flow == (1, 0) for t in server.transactions)
    (key,) = world.car.keys()["keys"]
    assert key["role"] == "owner" and key["uses"] == 3 and key["fast_ready"]
    log = [(r["kind"], r["command"], r["result"]) for r in world.car.log()]
    assert log[-3:] == [(0, UNLOCK, OK), (1, UNLOCK, OK), (1, UNLOCK, OK)]


def test_unlock_moves_the_lock_and_state_reaches_the_phone(world):
    txns, server = world.run(world.owner, ["standard"], commands=[(env.COMMANDS["lock"], b"")])
    assert txns[0].results == [(env.COMMANDS["lock"], OK)]
    txns, server = world.run(world.owner, ["fast"], commands=[(UNLOCK, b""), (env.COMMANDS["status"], b"")])
    (first, status) = server.transactions[0].results
    assert first.ok and not first.state.locked and status.ok
    assert txns[0].state[:2] == "00"  # unlocked, all doors shut


def test_profile_reaches_the_car_bus_after_an_unlock(world):
    world.car.enroll(world.owner_pub, "owner", profile=b"seat=3;mirror=left;radio=88.5 FM")
    world.run(world.owner, ["standard"], commands=[(env.COMMANDS["lock"], b"")])
    assert not (world.car.state_dir / "carbus.log").exists() or \
        (world.car.state_dir / "carbus.log").read_bytes() == b""  # a lock sends no profile
    world.run(world.owner, ["fast"])
    (line,) = (world.car.state_dir / "carbus.log").read_bytes().splitlines()
    slot = documents.key_slot(world.owner_pub).hex().upper()
    body = f"CK1 PROFILE seq=0 slot={slot} seat=3 mirror=left radio=88.5%20FM ".encode()
    assert line == body + b"*%04X" % binascii.crc_hqx(body, 0xFFFF)  # CRC-16/CCITT-FALSE


def test_bad_profile_is_refused_at_enrolment(world):
    with pytest.raises(CarkeyError, match="profile"):
        world.car.enroll(world.owner_pub, "owner", profile=b"seat")
    assert world.car.keys()["keys"][0]["role"] == "owner"


def test_drive_enable_needs_a_standard_transaction(world):
    # The phone asking for drive sends no cryptogram: the reader must run AUTH1.
    txns, _ = world.run(world.owner, ["standard"])
    txns, server = world.run(world.owner, ["fast"], commands=[(DRIVE, bytes([30]))])
    assert txns[0].kind == "fallback" and txns[0].results == [(DRIVE, OK)]
    assert server.transactions[0].results[0].state.drive_minutes == 30


def test_unknown_key_is_refused_and_not_stored(world):
    stranger, _ = world.friend("stranger")
    before = state_files(world.car)
    txns, server = world.run(stranger, ["standard"])
    assert not txns[0].granted and txns[0].results == [(UNLOCK, KEY_REVOKED)]
    assert server.transactions[0].control_flow == (0, 0)
    assert state_files(world.car) == before


def test_phone_refuses_a_wrong_reader(world):
    other = VirtualCar(world.tmp / "other-car")
    other.init()
    server = PhoneServer(world.phone(world.owner))
    txns, _ = other.connect("127.0.0.1", server.port, "lp", ["standard"])
    server.close()
    assert not txns[0].granted and txns[0].kind is None and txns[0].error == LINK_LOST
    assert server.transactions[0].dropped


# --- sharing ------------------------------------------------------------------------


def share(world, friend_kd, friend_pub, role, **kw):
    serial = kw.pop("serial", int(time.time()))
    doc = documents.make_share(world.owner.private_key(), world.group_id, friend_pub, role, serial=serial, **kw)
    friend_kd.add_share_document(world.group_id, doc)
    return doc


def test_friend_share_guest_unlocks_but_cannot_drive(world):
    kd, pub = world.friend("guest")
    now = int(time.time())
    share(world, kd, pub, "guest", valid_from=now - 60, valid_until=now + 3600)
    world.car.set_clock(now)
    txns, server = world.run(kd, ["standard"])
    assert txns[0].granted and txns[0].results == [(UNLOCK, OK)]
    assert server.transactions[0].documents == [(env.SHARE_TAG, OK)]
    assert kd.share_documents() == {}  # delivered: not presented again
    txns, server = world.run(kd, ["fast"], commands=[(DRIVE, bytes([10]))])
    assert txns[0].results == [(DRIVE, NOT_ENTITLED)] and not txns[0].granted
    keys = {k["public_key"]: k for k in world.car.keys()["keys"]}
    assert keys[pub.hex()]["role"] == "guest"


def test_friend_driver_drives_inside_schedule_only(world):
    now = int(time.time())
    kd, pub = world.friend("driver")
    weekday = time.gmtime(now).tm_wday
    minute = time.gmtime(now).tm_hour * 60 + time.gmtime(now).tm_min
    # A window that excludes now (two hours later, same day or next), then one that contains it.
    start = (minute + 120) % 1440
    outside = Window(1 << weekday, start, (start + 30) % 1440 or 1440)
    share(world, kd, pub, "driver", serial=now, schedule=[outside], valid_from=now - 60)
    world.car.set_clock(now)
    txns, server = world.run(kd, ["standard"], commands=[(DRIVE, bytes([20]))])
    assert txns[0].results == [(DRIVE, OUTSIDE_SCHEDULE)]
    assert server.transactions[0].documents == [(env.SHARE_TAG, OK)]
    # The owner issues a newer share with a window around now: it replaces the record.
    inside = Window(0x7F, 0, 1440)
    share(world, kd, pub, "driver", serial=now + 1, schedule=[inside], valid_from=now - 60)
    txns, server = world.run(kd, ["standard"], commands=[(DRIVE, bytes([20]))])
    assert txns[0].granted and txns[0].results == [(DRIVE, OK)]


def test_forged_and_replayed_shares_are_refused(world):
    kd, pub = world.friend("friend")
    doc = bytearray(share(world, kd, pub, "guest"))
    doc[-70] ^= 1  # inside the owner's signature
    kd.add_share_document(world.group_id, bytes(doc))
    before = state_files(world.car)
    txns, server = world.run(kd, ["standard"])
    assert txns[0].results == [(UNLOCK, 0x0B)]
    assert server.transactions[0].documents == [(env.SHARE_TAG, 0x0B)]
    assert state_files(world.car) == before
    # An older serial than the one the car accepted cannot come back.
    serial = int(time.time())
    share(world, kd, pub, "guest", serial=serial)
    assert world.run(kd, ["standard"])[0][0].granted
    share(world, kd, pub, "driver", serial=serial - 5)
    txns, server = world.run(kd, ["standard"])
    assert txns[0].results == [(UNLOCK, 0x0E)]  # superseded: the phone drops it for good
    assert server.transactions[0].documents == [(env.SHARE_TAG, 0x0E)] and kd.share_documents() == {}


def test_revoke_suspend_resume(world):
    kd, pub = world.friend("friend")
    share(world, kd, pub, "guest")
    assert world.run(kd, ["standard"])[0][0].granted
    slot = documents.key_slot(pub)
    owner_key = world.owner.private_key()
    serial = int(time.time()) + 10

    def deliver(action, serial):
        doc = documents.make_revocation(owner_key, world.group_id, slot, serial=serial, action=action)
        txns, server = world.run(world.phone(world.owner, revocations=[doc]), ["fast"])
        assert server.transactions[0].documents == [(env.REVOCATION_TAG, OK)]
        return txns

    deliver("suspend", serial)
    assert world.run(kd, ["fast"])[0][0].results == [(UNLOCK, KEY_SUSPENDED)]
    deliver("resume", serial + 1)
    assert world.run(kd, ["fast"])[0][0].granted
    deliver("revoke", serial + 2)
    txns, _ = world.run(kd, ["standard"])
    assert txns[0].results == [(UNLOCK, KEY_REVOKED)]
    assert slot.hex() in world.car.keys()["revoked_slots"]
    # Revocation is permanent: a fresh share for the revoked key is refused too.
    share(world, kd, pub, "guest", serial=serial + 3)
    assert world.run(kd, ["standard"])[0][0].results == [(UNLOCK, KEY_REVOKED)]


# --- hostile links ----------------------------------------------------------------------

INS_AUTH1, INS_EXCHANGE = 0x81, 0xC9


def _ins(c_apdu):
    return c_apdu[1]


@pytest.mark.parametrize("what", ["flip-auth1", "truncate-auth1", "flip-exchange", "truncate-exchange"])
def test_tampered_answers_are_refused_and_change_nothing(world, what):
    world.run(world.owner, ["standard"])  # the car now has a Kpersistent to lose, if it were careless
    before = state_files(world.car)
    target = INS_AUTH1 if "auth1" in what else INS_EXCHANGE

    def tamper(c, r, n):
        if _ins(c) != target:
            return r
        if what.startswith("flip"):
            return r[:5] + bytes([r[5] ^ 0x40]) + r[6:]
        return r[: len(r) // 2] + r[-2:]

    txns, server = world.run(world.owner, ["standard"], tamper=tamper)
    assert not txns[0].granted
    assert txns[0].error in (AUTH_FAILED, PROTOCOL_ERROR)
    if target == INS_AUTH1:
        assert txns[0].results == []  # no command ran
    after = state_files(world.car)
    # Nothing but the lockout record may change, and it does only for a failed authentication.
    assert without_lockout(after) == without_lockout(before)
    assert (after != before) == (txns[0].error == AUTH_FAILED)
    if target == INS_AUTH1:
        # Nothing proved an enrolled key: a stranger's refusal, counted in the strangers' ring.
        (tally,) = world.car.stranger_log()
        assert (tally["result"], tally["count"]) == (txns[0].error, 1)
    else:
        assert world.car.log()[-1]["result"] in (AUTH_FAILED, PROTOCOL_ERROR)


def test_replayed_and_reordered_answers_are_refused(world):
    txns, first = world.run(world.owner, ["standard"])
    recorded = {_ins(c): r for _, c, r in first.answers}
    before = state_files(world.car)

    def replay(c, r, n):
        # Yesterday's EXCHANGE answer under today's keys.
        return recorded[INS_EXCHANGE] if _ins(c) == INS_EXCHANGE else r

    txns, _ = world.run(world.owner, ["standard"], tamper=replay)
    assert not txns[0].granted and txns[0].error == AUTH_FAILED

    def reorder(c, r, n):
        # The AUTH1 answer handed back where an EXCHANGE answer belongs.
        return recorded[INS_AUTH1] if _ins(c) == INS_EXCHANGE else r

    txns, _ = world.run(world.owner, ["standard"], tamper=reorder)
    assert not txns[0].granted and txns[0].error == AUTH_FAILED
    assert without_lockout(state_files(world.car)) == without_lockout(before)


def test_five_failed_auth1_answers_lock_out_strangers_not_the_owner(world):
    world.run(world.owner, ["standard"])

    def tamper(c, r, n):
        if n <= 5 and _ins(c) == INS_AUTH1:
            return r[:5] + bytes([r[5] ^ 1]) + r[6:]
        return r

    # An AUTH1 answer that does not open proves no key: five strangers' failures.
    txns, _ = world.run(world.owner, ["standard"] * 6, tamper=tamper)
    assert [t.error for t in txns[:5]] == [AUTH_FAILED] * 5
    # The strangers are locked out, and the owner's phone, which proves its key, is served.
    assert txns[5].kind == "standard" and txns[5].granted and txns[5].results == [(UNLOCK, OK)]


def test_five_failures_after_authentication_lock_out_that_key(world):
    world.run(world.owner, ["standard"])

    def tamper(c, r, n):
        if n <= 5 and _ins(c) == INS_EXCHANGE:
            return r[:5] + bytes([r[5] ^ 1]) + r[6:]
        return r

    txns, _ = world.run(world.owner, ["standard"] * 6, tamper=tamper)
    assert [t.error for t in txns[:5]] == [AUTH_FAILED] * 5
    assert txns[5].kind == "standard" and txns[5].results == [(UNLOCK, LOCKED_OUT)]
    assert not txns[5].granted


# --- power and process faults --------------------------------------------------------------


def test_kill_9_during_key_store_writes_leaves_an_intact_store(world):
    """The reader process is killed at random moments while it commits after every tap."""
    import random

    rng = random.Random(1234)
    phone = world.phone(world.owner)
    server = PhoneServer(phone, "lp")
    try:
        uses = [0]
        for _ in range(6):
            assert _kill_later(world.car, server.port, rng.uniform(0.3, 0.8)) == -signal.SIGKILL
            keys = world.car.keys()["keys"]  # loads: an intact copy exists
            assert [k["public_key"] for k in keys] == [world.owner_pub.hex()]
            assert keys[0]["uses"] >= uses[-1]  # nothing committed was lost
            uses.append(keys[0]["uses"])
        assert uses[-1] > 0  # the kills did land while taps were being committed
        txns, _ = world.car.connect("127.0.0.1", server.port, "lp", ["standard", "fast"])
        assert all(t.granted for t in txns)
    finally:
        server.close()


def _kill_later(car, port, delay):
    from carkey_host import runner

    firmware = runner.Firmware("vcar", env=runner.environment("compiled", virtual_board=True))
    firmware.send("connect", state=str(car.state_dir), host="127.0.0.1", port=port, framing="lp",
                  sequence=["fast"] * 200)
    time.sleep(delay)
    firmware.proc.send_signal(signal.SIGKILL)
    firmware.proc.wait()
    return firmware.proc.returncode


# --- the CLI contract --------------------------------------------------------------------


@pytest.mark.parametrize("framing", ["raw", "lp"])
def test_cli_contract(tmp_path, framing):
    import json

    state, keys = tmp_path / "car", tmp_path / "phone"
    _carkey("reader", "init", "--state", state)
    ident = json.loads(_carkey("reader", "identity", "--state", state, "--json").stdout)
    assert set(ident) == {"reader_public_key", "group_id", "sub_id"}
    assert len(bytes.fromhex(ident["reader_public_key"])) == 65 and len(bytes.fromhex(ident["group_id"])) == 16
    _carkey("phone", "init", "--keys", keys)
    _carkey("phone", "trust", "--keys", keys, "--reader-public-key", ident["reader_public_key"],
            "--group-id", ident["group_id"])
    # Not enrolled yet: the transaction runs and is refused (exit 3).
    serve = subprocess.Popen([sys.executable, "-m", "carkey_host.cli", "phone", "serve", "--keys", keys,
                              "--tcp", "127.0.0.1:0", "--framing", framing], stdout=subprocess.PIPE, text=True)
    try:
        port = int(re.search(r":(\d+) ", serve.stdout.readline()).group(1))
        refused = _carkey("reader", "connect", "--state", state, "--tcp", f"127.0.0.1:{port}", "--framing", framing,
                          "--sequence", "standard", check=False)
        assert refused.returncode == 3 and re.fullmatch(r"txn 1 kind=standard result=refused ms=[0-9.]+\n", refused.stdout)
        _carkey("reader", "enroll", "--state", state, "--credential", keys / "credential.pub.pem", "--role", "owner")
        done = _carkey("reader", "connect", "--state", state, "--tcp", f"127.0.0.1:{port}", "--framing", framing,
                       "--sequence", "standard,fast,fast")
        lines = done.stdout.splitlines()
        assert [re.fullmatch(r"txn (\d) kind=(\w+) result=(\w+) ms=[0-9.]+", l).groups() for l in lines] == [
            ("1", "standard", "granted"), ("2", "fast", "granted"), ("3", "fast", "granted")]
    finally:
        serve.terminate()
        serve.wait(10)


def test_cli_errors(tmp_path):
    assert _carkey("reader", "identity", "--state", tmp_path / "none", check=False).returncode == 1
    _carkey("reader", "init", "--state", tmp_path / "car")
    again = _carkey("reader", "init", "--state", tmp_path / "car", check=False)
    assert again.returncode == 3 and "already holds a reader identity" in again.stderr
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    r = _carkey("reader", "enroll", "--state", tmp_path / "car", "--credential", bad, "--role", "owner", check=False)
    assert r.returncode == 1 and "not a PEM public key" in r.stderr
    r = _carkey("reader", "connect", "--state", tmp_path / "car", "--tcp", "127.0.0.1:1", "--sequence", "slow",
                check=False)
    assert r.returncode == 2 and "--sequence" in r.stderr
    r = _carkey("reader", "enroll", "--state", tmp_path / "car", "--credential", bad, "--role", "king", check=False)
    assert r.returncode == 2


def test_owner_log_shows_the_strangers_tallies(world):
    from carkey_cli import carkey

    def tamper(c, r, n):
        return r[:5] + bytes([r[5] ^ 0x40]) + r[6:] if _ins(c) == INS_AUTH1 else r

    world.run(world.owner, ["standard"], tamper=tamper)  # nothing proved: a stranger's refusal
    text = carkey("log", "--state", world.car.state_dir, "--keys", world.owner.path).stdout
    assert "strangers" in text and "authentication failed ×1" in text, text
    lines = carkey("log", "--state", world.car.state_dir, "--keys", world.owner.path, "--json").stdout.splitlines()
    (tally,) = [json.loads(line) for line in lines if json.loads(line).get("ring") == "strangers"]
    assert (tally["result"], tally["count"]) == (AUTH_FAILED, 1)
