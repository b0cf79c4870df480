"""The ECU application (firmware/main.py → carkey.ecu.app) on the virtual board.

The whole application runs in the MicroPython Unix port as a board would run it:
first boot makes the reader identity, the owner is provisioned while it is stopped
(as over USB, where the REPL interrupts main and a soft reset restarts it), then the
application polls the PN532 stand-in and a phone on the antenna unlocks the car.

Run: .venv/bin/pytest -q tests/host/test_app.py
"""

import time

import pytest

from carkey_host.keydir import KeyDir
from carkey_host.phone import Phone
from carkey_host.pn532_sim import PhoneTarget, Pn532Sim
from carkey_host.ble_phone import device_name, visit_car
from carkey_host.vcar import RunningCar, VirtualCar
from carkey_host.virtual_air import VirtualAir

def wait_until(predicate, what, timeout=20):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def flash(tmp_path):
    return tmp_path / "flash"


def test_first_boot_provision_and_unlock_over_nfc(flash, tmp_path):
    flash.mkdir()
    state = flash / "state"
    # First boot: the application makes the reader identity itself.
    board = RunningCar(flash)
    wait_until(lambda: (state / "identity.a").exists(), "the first-boot identity")
    out = board.stop()
    car = VirtualCar(state)
    ident = car.identity()
    # Provisioning (the application is stopped, as the USB REPL stops it).
    phone_keys = KeyDir(tmp_path / "phone")
    owner = phone_keys.init()
    phone_keys.trust(bytes.fromhex(ident["group_id"]), bytes.fromhex(ident["reader_public_key"]))
    car.provision(owner, int(time.time()))
    # The application again, now with the PN532 stand-in and the phone on the antenna.
    ended = []
    with Pn532Sim() as sim:
        sim.place(PhoneTarget(Phone(phone_keys), on_end=ended.append))
        board = RunningCar(flash, sim.path)
        try:
            wait_until(lambda: len(ended) == 1, "the first tap")
            sim.remove()
            empty = sim.empty_polls
            sim.wait_for(lambda s: s.empty_polls > empty)
            sim.place(PhoneTarget(Phone(phone_keys), on_end=ended.append))
            wait_until(lambda: len(ended) == 2, "the second tap")
            wait_until(lambda: len([r for r in car.log() if r["command"] == 0x02]) == 2, "the audit records")
        finally:
            out += board.stop()
    assert [t.control_flow for t in ended] == [(1, 0), (1, 0)], out
    taps = [(r["transport"], r["kind"], r["result"]) for r in car.log() if r["command"] == 0x02]
    assert taps == [(1, 0, 0), (1, 1, 0)]  # NFC, standard then fast, both granted
    assert "Traceback" not in out, out


def test_unlock_over_ble_then_nfc_on_one_running_car(flash, tmp_path):
    flash.mkdir()
    state = flash / "state"
    car = VirtualCar(state)
    phone_keys = KeyDir(tmp_path / "phone")
    owner = phone_keys.init()
    ident = car.provision(owner, int(time.time()))
    phone_keys.trust(bytes.fromhex(ident["group_id"]), bytes.fromhex(ident["reader_public_key"]))
    name = device_name(bytes.fromhex(ident["group_id"]))
    ended = []
    with VirtualAir(port=0) as air, Pn532Sim() as sim:
        board = RunningCar(flash, sim.path, air.address)
        try:
            phone = Phone(phone_keys)
            first, _ = visit_car(phone, air.address, name, 1)
            second, _ = visit_car(phone, air.address, name, 2)
            sim.place(PhoneTarget(Phone(phone_keys, commands=[(0x01, b"")]), on_end=ended.append))
            wait_until(lambda: len(ended) == 1, "the NFC tap")
            wait_until(lambda: any(r["transport"] == 1 for r in car.log()), "the NFC audit record")
        finally:
            out = board.stop()
    assert first.control_flow == (1, 0) and second.control_flow == (1, 0), out
    assert first.results == []  # it asked nothing: one EXCHANGE, the outcome in CONTROL FLOW (PROTOCOL.md §4)
    assert ended[0].control_flow == (1, 0) and ended[0].results[0].command == 0x01
    taps = [(r["transport"], r["kind"], r["command"], r["result"]) for r in car.log() if r["command"] in (1, 2)]
    assert taps == [(2, 0, 2, 0), (2, 1, 2, 0), (1, 1, 1, 0)]  # BLE standard, BLE fast, NFC fast lock
    assert "Traceback" not in out, out


def test_passive_entry_needs_the_phone_itself_not_its_address(flash, tmp_path):
    """RSSI only triggers: a node advertising the owner's phone's address gets nothing,
    the real phone (which completes a transaction in that approach) gets hands-free entry."""
    from carkey_host.ble_phone import AirCentral

    flash.mkdir()
    car = VirtualCar(flash / "state")
    keys = KeyDir(tmp_path / "phone")
    ident = car.provision(keys.init(), int(time.time()))
    keys.trust(bytes.fromhex(ident["group_id"]), bytes.fromhex(ident["reader_public_key"]))
    name = device_name(bytes.fromhex(ident["group_id"]))
    phone_addr = bytes.fromhex("5eed0000a1c1")
    level = {"dbm": -95}
    passive = []

    def passive_records():
        passive[:] = [(r["command"], r["result"]) for r in car.log() if r["kind"] == 4]
        return passive

    with VirtualAir(port=0) as air:
        air.rssi = lambda advertiser, scanner: level["dbm"]
        with RunningCar(flash, air=air.address, passive_entry=True) as board:
            txn, _ = visit_car(Phone(keys, commands=[(0x01, b"")]), air.address, name, 1, addr=phone_addr)
            assert txn.control_flow == (1, 0)  # the owner locked the car and walked away
            # A spoofing node advertises the owner's phone's address, loud, after the owner left.
            spoof = AirCentral(air.address, addr=phone_addr)
            try:
                spoof.beacon(b"\x02\x01\x06")
                time.sleep(4)  # far: the car sees the phone away
                level["dbm"] = -50
                time.sleep(8)  # near for seconds: without the phone's own transaction, nothing opens
                assert passive_records() == []
                level["dbm"] = -95
                time.sleep(5)  # (the spoof walking off may lock the car: locking needs no proof)
            finally:
                spoof.close()
            before = list(passive_records())
            assert (0x02, 0) not in before
            # The real phone walks up: its advertisements trigger, its own fast transaction
            # (a status request, in the background) proves it, and the car unlocks.
            beacon = AirCentral(air.address, addr=phone_addr)
            try:
                beacon.beacon(b"\x02\x01\x06")
                level["dbm"] = -50
                txn, _ = visit_car(Phone(keys, commands=[(0x07, b"")]), air.address, name, 2, addr=phone_addr)
                assert txn.control_flow == (1, 0)
                board.wait_for(lambda: passive_records() == before + [(0x02, 0)], "the passive unlock")
                level["dbm"] = -95  # walking away
                board.wait_for(lambda: passive_records() == before + [(0x02, 0), (0x01, 0)], "the passive lock")
            finally:
                beacon.close()
    assert passive[len(before):] == [(0x02, 0), (0x01, 0)]
