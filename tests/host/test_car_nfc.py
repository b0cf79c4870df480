"""The car over NFC: the firmware ECU polls a PN532 (its byte-exact stand-in on a pty) and
serves phones and NTAG 424 DNA cards presented to the antenna, one after another.

The firmware runs in the MicroPython Unix port (carkey_host.vcar) with the real PN532
driver over the virtual board's pty UART; phones are the simulated phone on the
stand-in's antenna, cards the emulated NTAG 424 DNA provisioned by the host tools.

Run: .venv/bin/pytest -q tests/host/test_car_nfc.py
"""

import os

import pytest

from carkey_host import envelope as env
from carkey_host import ntag424
from carkey_host.keydir import KeyDir
from carkey_host.phone import Phone
from carkey_host.pn532_sim import PhoneTarget, Pn532Sim
from carkey_host.vcar import VirtualCar

UNLOCK, LOCK, DRIVE = env.COMMANDS["unlock"], env.COMMANDS["lock"], env.COMMANDS["drive"]
OK, NOT_ENTITLED, KEY_REVOKED, AUTH_FAILED = 0x00, 0x01, 0x07, 0x80


@pytest.fixture
def car(tmp_path):
    car = VirtualCar(tmp_path / "car")
    ident = car.init()
    owner = KeyDir(tmp_path / "owner")
    car.owner_pub = owner.init()
    owner.trust(bytes.fromhex(ident["group_id"]), bytes.fromhex(ident["reader_public_key"]))
    car.enroll(car.owner_pub, "owner")
    car.owner = owner
    car.master = os.urandom(16)
    car.set_card_master_key(car.master)
    return car


def taps(car, targets, place="door"):
    """Present each target in turn: it stays until the car has finished with it, is
    lifted, and the next one comes once the reader has seen an empty field."""
    pending = list(targets)
    with Pn532Sim() as sim:
        sim.place(pending.pop(0))

        def next_one(txn):
            sim.remove()
            if pending:
                empty = sim.empty_polls
                sim.wait_for(lambda s: s.empty_polls > empty)
                sim.place(pending.pop(0))

        txns, _ = car.nfc(sim.path, len(targets), place, on_txn=next_one)
    return txns


def card(car, uid=None, role="driver", enroll=True, **kw):
    uid = uid or bytes.fromhex("04") + os.urandom(6)
    emulated = ntag424.EmulatedCard(uid, **kw)
    ntag424.provision(ntag424.CardLink(emulated), car.master, uid)
    emulated.reset()
    if enroll:
        car.enroll_card(uid, role)
    return emulated


def test_phone_standard_then_fast_over_nfc(car):
    phone = Phone(car.owner)
    target = PhoneTarget(phone)
    txns = taps(car, [target, target])
    assert [(t.kind, t.granted, t.results) for t in txns] == [
        ("standard", True, [(UNLOCK, OK)]), ("fast", True, [(UNLOCK, OK)])]
    log = car.log()[-2:]
    assert [(r["transport"], r["kind"], r["command"], r["result"]) for r in log] == [
        (1, 0, UNLOCK, OK), (1, 1, UNLOCK, OK)]


def test_card_taps_toggle_the_lock_at_the_door(car):
    c = card(car)
    txns = taps(car, [c, c, c])
    # The virtual car starts locked: unlock, lock, unlock.
    assert [t.results for t in txns] == [[(UNLOCK, OK)], [(LOCK, OK)], [(UNLOCK, OK)]]
    assert all(t.kind == "card" and t.granted for t in txns)
    slot = [k for k in car.keys()["keys"] if k["kind"] == "card"][0]["slot"]
    assert [r["slot"] for r in car.log()[-3:]] == [slot] * 3


def test_card_in_the_cabin_enables_driving_only_for_drivers(car):
    driver, guest = card(car, role="driver"), card(car, role="guest")
    txns = taps(car, [driver, guest], place="cabin")
    assert txns[0].results == [(DRIVE, OK)] and txns[0].state[4:] == "1e"  # 30 minutes
    assert txns[1].results == [(DRIVE, NOT_ENTITLED)] and not txns[1].granted


def test_cloned_unknown_and_foreign_cards_are_refused(car):
    genuine = card(car, uid=bytes.fromhex("04a1b2c3d4e5f6"))
    # A clone: the genuine card's keys copied onto a chip whose authenticated UID is its own.
    clone = ntag424.EmulatedCard(genuine.uid, keys=genuine.keys, real_uid=bytes.fromhex("04000000000001"))
    unknown = card(car, enroll=False)  # provisioned for this car, never enrolled
    foreign = ntag424.EmulatedCard(bytes.fromhex("04112233445566"))  # factory keys
    car.enroll_card(foreign.uid, "driver")
    before = car.keys()
    txns = taps(car, [clone, unknown, foreign])
    assert [t.error for t in txns] == [AUTH_FAILED, None, AUTH_FAILED]
    assert txns[1].results == [(UNLOCK, KEY_REVOKED)]
    assert not any(t.granted for t in txns)
    assert car.keys() == before


def test_phone_and_card_one_after_another(car):
    c = card(car)
    phone = PhoneTarget(Phone(car.owner, commands=[(LOCK, b"")]))
    txns = taps(car, [c, phone])
    assert txns[0].results == [(UNLOCK, OK)] and txns[0].kind == "card"
    assert txns[1].results == [(LOCK, OK)] and txns[1].kind == "standard"
