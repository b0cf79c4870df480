"""The firmware reader as a BLE GATT peripheral on the virtual air, simulated phones as centrals.

The car is host_tools/carkey_host/mpy/ble_reader.py in the MicroPython Unix port (firmware
compiled to .mpy) with the virtual board's `bluetooth`; phones are carkey_host.ble_phone
centrals around the independent CPython user device. Covers standard then fast,
a carkey command request, several phones at once up to the connection limit (one
more refused, then served once a slot frees), a phone walking away mid-transaction
(disconnect and timeout), the drop after an authentication failure, an untrusting
phone, the heap budget and the connect-to-unlock counts.

Run: .venv/bin/pytest -q tests/host/test_ble_e2e.py
"""

import threading

import time

import pytest

from carkey_host import ble_phone
from carkey_host.ble_car import CarProcess, ReaderKeys, ble_unlock_exchanges, build_car
from carkey_host.virtual_air import PERIPHERAL, VirtualAir

SELECT, AUTH0, AUTH1, EXCHANGE, CONTROL_FLOW = 0xA4, 0x80, 0x81, 0xC9, 0x3C
REMOTE_USER_TERMINATED = 0x13


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    return build_car(tmp_path_factory.mktemp("ble-mpy"))


@pytest.fixture
def air():
    with VirtualAir() as hub:
        yield hub


@pytest.fixture
def car(build, air):
    cars = []

    def start(keys, devices, transactions, **spec):
        c = CarProcess(build, air, keys, devices, transactions, **spec)
        cars.append(c)
        return c

    yield start
    for c in cars:
        c.kill()


def visit(air, car, device, **kw):
    device.reset()
    return ble_phone.phone_over_air(air.address, car.name, device.process, **kw)


def ins(log):
    return [c[1] for c in log.commands]


def test_standard_then_fast(air, car):
    keys = ReaderKeys()
    device = keys.device()
    c = car(keys, [device], 2)
    assert c.name == keys.name
    first = visit(air, c, device)
    r1 = c.transaction()
    second = visit(air, c, device)
    r2 = c.transaction()
    c.finish()
    assert (r1["kind"], r1["known"], r2["kind"], r2["known"]) == ("standard", True, "fast", True)
    assert ins(first) == [SELECT, AUTH0, AUTH1, EXCHANGE, CONTROL_FLOW]
    assert ins(second) == [SELECT, AUTH0, EXCHANGE, CONTROL_FLOW]
    assert first.mtu == r1["mtu"] == 247
    assert first.disconnect_reason == REMOTE_USER_TERMINATED  # the car hangs up after CONTROL FLOW
    assert device.last_control_flow == (1, 0)
    # What each side counted matches: every indication confirmed, every write seen
    # (the car also counts the phone's 2-byte "ready" write).
    assert (r1["indications"], r1["bytes_out"]) == (first.indications, first.bytes_in)
    assert (r1["writes"], r1["bytes_in"]) == (first.writes + 1, first.bytes_out + 2)


def test_small_mtu_splits_every_apdu(air, car):
    keys = ReaderKeys()
    device = keys.device()
    c = car(keys, [device], 1)
    log = visit(air, c, device, mtu=23)
    r = c.transaction()
    assert r["kind"] == "standard" and log.mtu == 23
    assert log.indications > len(log.commands) and log.writes > len(log.answers)
    frame_bytes = sum(2 + len(a) for a in log.answers)
    assert log.bytes_out == frame_bytes and log.writes == sum(-(-(2 + len(a)) // 20) for a in log.answers)


def test_command_request_reaches_the_car(air, car):
    keys = ReaderKeys()
    device = keys.device(handler=lambda items: [(0xE1, b"\xc2\x01\x02")])  # unlock
    c = car(keys, [device], 1, exchange=["e103c00101"])
    visit(air, c, device)
    assert c.transaction()["replies"] == ["e103c20102"]


def test_several_phones_at_once_limit_then_next(air, car):
    keys = ReaderKeys()
    devices = [keys.device() for _ in range(5)]
    c = car(keys, devices, 5, hold_until_full_ms=1500)
    logs = [None] * 4

    def run(i):
        logs[i] = visit(air, c, devices[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    assert air.wait_for(lambda: len(air.connections()) == 4, timeout=10)
    with pytest.raises(ble_phone.BleError, match="no car advertising"):
        ble_phone.connect_air(air.address, c.name, timeout=0.3)  # a fifth: the car is full
    for t in threads:
        t.join(30)
    records = [c.transaction() for _ in range(4)]
    # The first goes standard; the car then tries fast for the others (it holds one
    # Kpersistent), and each of them, with no cache of its own, falls back to AUTH1.
    assert sorted(r["kind"] for r in records) == ["fallback"] * 3 + ["standard"]
    assert all(r["known"] for r in records)
    assert len({r["conn"] for r in records}) == 4
    assert all(log.error is None and log.disconnect_reason == REMOTE_USER_TERMINATED for log in logs)
    fifth = visit(air, c, devices[4])  # a slot freed: the car advertises again
    fifth_record = c.transaction()
    assert fifth_record.get("kind") == "fallback" and fifth.error is None, (fifth_record, fifth)
    done = c.finish()
    assert done["refused"] == 0 and done["free"] == 4


def test_phone_walks_away_mid_transaction(air, car):
    keys = ReaderKeys()
    device = keys.device()
    c = car(keys, [device], 2)
    log = visit(air, c, device, leave_when=lambda lg, answered: lg.commands[-1][1] == AUTH1)
    assert log.walked_away and ins(log) == [SELECT, AUTH0, AUTH1]
    r = c.transaction()
    assert r["error"] == "LinkError" and "disconnected" in r["message"]
    again = visit(air, c, device)  # slot freed, advertising again
    assert c.transaction()["kind"] == "standard" and again.error is None
    assert c.finish()["free"] == 4


def test_walk_away_slower_than_reader_timeout(air, car):
    air.supervision_timeout_ms = 5000  # the link layer notices late: the reader's timeout fires first
    keys = ReaderKeys()
    device = keys.device()
    c = car(keys, [device], 1, timeout_ms=300)
    visit(air, c, device, leave_when=lambda lg, answered: lg.commands[-1][1] == AUTH0)
    r = c.transaction()
    assert r["error"] == "LinkTimeout" and "no answer within 300 ms" in r["message"]


def test_link_dropped_after_authentication_failure(air, car):
    keys = ReaderKeys()
    device = keys.device()
    c = car(keys, [device], 1)

    def tamper(capdu, rapdu):
        if capdu[1] == AUTH1:
            rapdu = bytearray(rapdu)
            rapdu[7] ^= 1
        return bytes(rapdu)

    log = visit(air, c, device, tamper=tamper)
    assert c.transaction()["error"] == "AuthenticationFailed"
    assert ins(log) == [SELECT, AUTH0, AUTH1, CONTROL_FLOW]
    assert log.commands[-1][5:8] == b"\x41\x01\x00"  # refused
    assert log.disconnect_reason == REMOTE_USER_TERMINATED


def test_untrusting_phone_drops_the_link(air, car):
    keys = ReaderKeys()
    device = keys.device(trusted=False)
    c = car(keys, [device], 1)
    log = visit(air, c, device)
    assert log.dropped and ins(log) == [SELECT, AUTH0, AUTH1]
    assert c.transaction()["error"] == "LinkError"


# The TCP reader needs 128k (tests/host/test_reader_e2e.py). The BLE car runs at
# 152k: on top of the reader come the virtual `bluetooth` (~13 KiB of module and
# objects here, plus asyncio's and the socket's share; a board's module is C and
# spends none) and the firmware's BLE link (~22 KiB with 4 slots, guarded by
# tests/firmware/test_ble_heap.py). This keeps a little margin over 152k.
HEAP_BUDGET = "160k"


def test_heap_budget(air, car):
    keys = ReaderKeys()
    device = keys.device()
    c = car(keys, [device], 3, heapsize=HEAP_BUDGET)
    records = []
    for _ in range(3):
        visit(air, c, device)
        records.append(c.transaction())
    assert [r.get("kind") for r in records] == ["standard", "fast", "fast"], records  # an error says which
    c.finish()


def test_ble_unlock_exchanges(build):
    result = ble_unlock_exchanges(build=build)
    std, fast = result["standard"], result["fast"]
    assert (std["apdus"], fast["apdus"]) == (5, 4)
    # At MTU 247 every APDU fits one chunk each way.
    assert (std["indications"], fast["indications"]) == (5, 4)
    # Writes: the CCCD subscription, the ready frame, one per answer.
    assert (std["writes"], fast["writes"]) == (7, 6)
    assert std["car_to_phone_bytes"] > fast["car_to_phone_bytes"]


def test_passive_entry_unlocks_on_approach_and_locks_on_walk_away(air, car):
    level = {"dbm": -95}
    air.rssi = lambda advertiser, scanner: level["dbm"]
    keys = ReaderKeys()
    device = keys.device()
    phone_addr = bytes.fromhex("5eed0000a1c1")
    c = car(keys, [device], 2, passive_entry={"interval_ms": 40, "lost_ms": 5000}, actions=2)
    visit(air, c, device, addr=phone_addr)
    assert c.transaction()["kind"] == "standard"
    beacon = ble_phone.AirCentral(air.address, addr=phone_addr)
    try:
        beacon.beacon(b"\x02\x01\x06")  # the phone keeps advertising after its visit
        time.sleep(0.5)  # far away
        level["dbm"] = -50  # walking up to the car: RSSI alone opens nothing...
        time.sleep(0.5)
        visit(air, c, device, addr=phone_addr)  # ...until the phone's own transaction
        record = c.record(10)  # reported while that transaction ends
        assert record["action"] == 2 and record["rssi"] >= -65  # unlock, near
        assert c.transaction()["kind"] in ("standard", "fast")
        level["dbm"] = -95  # walking away
        record = c.record(10)
        assert record["action"] == 1 and record["rssi"] <= -80  # lock, past the far threshold
        assert PERIPHERAL in air.scans  # the car scanned
    finally:
        beacon.close()
    c.finish()


def test_passive_entry_off_by_default(build, air):
    # Without the option the car never scans: no SCAN reaches the air.
    keys = ReaderKeys()
    device = keys.device()
    c = CarProcess(build, air, keys, [device], 1)
    try:
        visit(air, c, device)
        c.transaction()
        c.finish()
    finally:
        c.kill()
    assert PERIPHERAL not in air.scans
