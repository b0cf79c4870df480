"""The key fob firmware against the car's whole application over the virtual BLE air.

Both sides are firmware in the Unix port: the ECU application (firmware main.py's
carkey.ecu.app) advertising on the virtual air, and the fob's application
(carkey.fob.app) as a BLE central on the same air. The fob's key is enrolled by an
owner-signed document, as `carkey fob provision` does. A press: standard first, fast
after; lock and trunk; revoked and suspended fobs refused; a car whose reader key the
fob does not trust refused; a fob that lost its Kpersistent falls back to standard;
a car out of range is "car not found".

Run: .venv/bin/pytest -q tests/host/test_fob_air.py
"""

import hashlib
import json
import time

import pytest

from carkey_host import owner as owner_ops
from carkey_host.aliro import crypto
from carkey_host.auditlog import BATTERY, format_record
from carkey_host.keydir import KeyDir
from carkey_host.vcar import RunningCar, VirtualCar
from carkey_host.vfob import VirtualFob
from carkey_host.virtual_air import VirtualAir


@pytest.fixture
def world(tmp_path):
    keys = KeyDir(tmp_path / "owner")
    keys.init()
    flash = tmp_path / "car"
    flash.mkdir()
    car = VirtualCar(flash / "state")
    ident = owner_ops.provision(car, keys)
    fob = VirtualFob(tmp_path / "fob")
    pub = fob.init()
    owner_ops.add_key(car, keys, pub, "driver")
    fob.trust(bytes.fromhex(ident["group_id"]), bytes.fromhex(ident["reader_public_key"]))
    with VirtualAir(port=0) as air:
        yield {"air": air, "car": car, "flash": flash, "fob": fob, "pub": pub, "keys": keys, "ident": ident}


def press(world, command="unlock"):
    return world["fob"].press(command, world["air"].address)


def running_car(world):
    return RunningCar(world["flash"], air=world["air"].address)


def first_press(world, command="unlock", timeout=20):
    # The car needs a moment to advertise after it starts.
    deadline = time.monotonic() + timeout
    while True:
        r = press(world, command)
        if r["outcome"] != "car-not-found" or time.monotonic() > deadline:
            return r
        time.sleep(0.2)


def test_press_standard_then_fast_lock_trunk(world):
    with running_car(world):
        first = first_press(world)
        rest = [press(world, c) for c in ("unlock", "lock", "trunk")]
    assert (first["outcome"], first["kind"], first["granted"], first["result"]) == ("done", "standard", True, 0)
    assert first["signal"] == "granted"
    assert [(r["command"], r["kind"], r["granted"]) for r in rest] == [
        ("unlock", "fast", True), ("lock", "fast", True), ("trunk", "fast", True)]
    log = world["car"].log()
    taps = [(r["kind"], r["command"], r["result"]) for r in log if r["transport"] == 2 and r["command"] != BATTERY]
    assert taps == [(0, 2, 0), (1, 2, 0), (1, 1, 0), (1, 4, 0)]  # ble: standard unlock, fast unlock/lock/trunk
    # Each press also told the car the fob's battery (3.9 V on the virtual board).
    battery = [r for r in log if r["command"] == BATTERY]
    assert len(battery) == 4 and all(r["result"] == 3900 // 20 for r in battery)
    assert "battery             3.90 V" in format_record(battery[0])
    leds = [(role, v) for _, role, v in world["fob"].led_timeline() if role == "led"]
    assert leds.count(("led", 1)) == 4  # one glow per granted press


@pytest.mark.parametrize("action, code", [("revoke", 0x07), ("suspend", 0x06)])
def test_revoked_or_suspended_fob_refused(world, action, code):
    with running_car(world):
        assert first_press(world)["granted"]
    slot = hashlib.sha1(world["pub"]).digest()[:8]
    owner_ops.change_key(world["car"], world["keys"], slot, action)
    with running_car(world):
        r = first_press(world)
    assert not r["granted"] and r["result"] == code and r["signal"] == "refused-key"
    on = [t for t, role, v in world["fob"].led_timeline() if role == "buzzer" and v == 1]
    assert len(on) == 2  # the refusal beeps twice (unknown, revoked or suspended key)


def test_car_with_an_untrusted_reader_key_is_refused(world):
    # The fob trusts the car's group with some other key: the car cannot sign for it.
    other = crypto.public_key_bytes(crypto.generate_private_key())
    world["fob"].trust(bytes.fromhex(world["ident"]["group_id"]), other)
    with running_car(world):
        r = first_press(world)
    assert not r["granted"] and r["kind"] is None
    assert not any(rec["transport"] == 2 and rec["result"] == 0 for rec in world["car"].log())


def test_fob_lost_kpersistent_falls_back_to_standard(world):
    with running_car(world):
        assert first_press(world)["kind"] == "standard"
        assert press(world)["kind"] == "fast"
        for f in world["fob"].state_dir.glob("fobkp.*"):
            f.unlink()  # the fob's Kpersistent is gone (a new fob image, a wiped record)
        again = press(world)
        after = press(world)
    assert (again["kind"], again["granted"]) == ("standard", True)
    assert (after["kind"], after["granted"]) == ("fast", True)
    kinds = [r["kind"] for r in world["car"].log() if r["transport"] == 2 and r["command"] != BATTERY]
    assert kinds == [0, 1, 2, 1]  # the car saw a fast request fall back to AUTH1


def test_known_car_connected_without_a_scan_and_a_stale_address_scanned_for(world):
    # After a visit the fob keeps the car's address and handles in RTC memory (the
    # virtual board's rtcmem file) and connects straight to it; an address that no
    # longer answers costs one direct attempt, then the fob scans and learns it again.
    rtcmem = world["fob"].state_dir / "rtcmem"
    with running_car(world):
        first = first_press(world)
        second = press(world)
        kept = bytearray(rtcmem.read_bytes())
        kept[22:28] = bytes.fromhex("c0ffee000001")  # the car moved to another address
        rtcmem.write_bytes(bytes(kept))
        moved = press(world)
        after = press(world)
    assert (first["granted"], first["direct"]) == (True, False)
    assert (second["granted"], second["kind"], second["direct"]) == (True, "fast", True)
    assert (moved["granted"], moved["direct"]) == (True, False)
    assert (after["granted"], after["direct"]) == (True, True)


def test_kept_handles_that_are_wrong_are_found_again(world):
    # Kept handles the car's table no longer has (a new car firmware): the car refuses
    # the subscription there, the fob discovers its handles on the same connection,
    # the press is granted and the right handles are kept again.
    rtcmem = world["fob"].state_dir / "rtcmem"
    with running_car(world):
        assert first_press(world)["granted"]
        right = rtcmem.read_bytes()[28:32]
        kept = bytearray(rtcmem.read_bytes())
        kept[28:32] = bytes.fromhex("00020004")  # inside the GAP service, not carkey's
        rtcmem.write_bytes(bytes(kept))
        presses = [press(world), press(world)]
    assert [(p["granted"], p["direct"]) for p in presses] == [(True, True), (True, True)]
    assert rtcmem.read_bytes()[28:32] == right


def test_car_out_of_range_is_car_not_found(world):
    start = time.monotonic()
    r = press(world)
    took = time.monotonic() - start
    assert r["outcome"] == "car-not-found" and r["signal"] == "car-not-found" and not r["granted"]
    assert took < 10  # bounded by the scan deadline (3 s) plus process start
    leds = [(role, v) for _, role, v in world["fob"].led_timeline() if role == "led" and v == 1]
    assert len(leds) == 3  # three slow blinks


@pytest.mark.parametrize("hold_s, command", [(0.15, 2), (1.2, 1)])
def test_button_press_runs_the_whole_application(world, hold_s, command):
    # The fob's main loop: the button (a file on the virtual board) goes down, the fob
    # connects to the car and the car runs the transaction up to its hello while the
    # gesture is told apart (a tap: unlock; held past 800 ms: lock, the car waiting
    # for the hello's answer meanwhile), glows, and goes to deep sleep woken by the button.
    import subprocess

    from carkey_host import runner

    fob_dir = world["fob"].state_dir
    env = runner.environment("compiled", virtual_board=True)
    env["CARKEY_AIR"] = "%s:%d" % world["air"].address
    code = ("import virtual_fob\nfrom carkey.fob import app\nfrom virtual_hw.fob_platform import VirtualFobPlatform\n"
            f"app.run(virtual_fob, VirtualFobPlatform({str(fob_dir)!r}), {str(fob_dir)!r})\n")
    with running_car(world):
        assert first_press(world)["granted"]  # the car is up and advertising
        (fob_dir / "gpio.log").unlink()
        button = fob_dir / "button"
        button.write_text("0")
        proc = runner.launch("-c", code, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(0.5)
        button.write_text("1")
        time.sleep(hold_s)
        button.write_text("0")
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert (fob_dir / "asleep").read_text() == '{"button": 3}'
    leds = [(role, v) for _, role, v in world["fob"].led_timeline() if role == "led"]
    assert leds[:2] == [("led", 1), ("led", 0)], leds  # one glow: granted
    taps = [(r["kind"], r["command"], r["result"]) for r in world["car"].log() if r["transport"] == 2]
    assert taps[-2:] == [(1, BATTERY, 3900 // 20), (1, command, 0)]  # the battery, then the fast command


def test_car_lost_kpersistent_falls_back_to_standard(world):
    # The car forgets the fob's Kpersistent (its own key store, through the firmware):
    # the fob's cryptogram matches nothing, AUTH1 runs, and the next press is fast again.

    from carkey_host import runner

    with running_car(world):
        assert first_press(world)["kind"] == "standard"
        assert press(world)["kind"] == "fast"
    forget = ("from carkey.ecu.keystore import KeyStore\n"
              f"ks = KeyStore({str(world['car'].state_dir)!r})\n"
              f"ks.set_kpersistent(bytes.fromhex({world['pub'].hex()!r}), None); ks.commit()\n")
    assert runner.run("-c", forget, env=runner.environment("compiled")).returncode == 0
    with running_car(world):
        again = first_press(world)
        after = press(world)
    assert (again["kind"], again["granted"]) == ("standard", True)
    assert (after["kind"], after["granted"]) == ("fast", True)
    kinds = [r["kind"] for r in world["car"].log() if r["transport"] == 2 and r["command"] != BATTERY]
    assert kinds == [0, 1, 0, 1]  # the car held no Kpersistent for the fob: it asked for a standard one


def test_fob_given_a_share_document_instead_of_an_enrolment(world, tmp_path):
    # A second fob, never enrolled: the owner signs a share document for it; the fob
    # presents it at its first press, the car enrolls it, and the fob stops presenting it.
    guest = VirtualFob(tmp_path / "guest")
    pub = guest.init()
    group = bytes.fromhex(world["ident"]["group_id"])
    doc = owner_ops.share(group, world["keys"], pub, "driver")
    guest.import_share(group, bytes.fromhex(world["ident"]["reader_public_key"]), doc)
    assert (guest.state_dir / "fobshare.a").exists()
    with running_car(world):
        first = first_press_of(guest, world)
        second = guest.press("lock", world["air"].address)
    assert first["granted"] and first["result"] == 0
    assert second["granted"] and second["kind"] == "fast"
    assert not any(guest.state_dir.glob("fobshare.*"))  # accepted: no longer presented
    log = world["car"].log()
    assert any(r["command"] == 0xE2 and r["result"] == 0 for r in log)  # the share, judged ok


def first_press_of(fob, world, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        r = fob.press("unlock", world["air"].address)
        if r["outcome"] != "car-not-found" or time.monotonic() > deadline:
            return r
        time.sleep(0.2)


_TWO_PRESSES = """
import asyncio, json, sys
import virtual_fob
from virtual_hw.fob_platform import VirtualFobPlatform
from carkey.fob import app
fob = app.FobApp(virtual_fob, VirtualFobPlatform({dir!r}), {dir!r})
out = []
for command in ("unlock", "lock"):
    press = asyncio.run(fob.press(command))
    out.append([press.kind, press.granted, "carkey.fob.device" in sys.modules, "carkey.crypto.aes" in sys.modules])
print(json.dumps(out))
"""


def test_transaction_code_dropped_after_a_visit_and_loaded_again_for_the_next(world):
    # A visit drops the user device's code when it ends (the LED, the next key and the
    # sleep need none of it); a second press in the same wake loads it again.
    from carkey_host import runner

    env = runner.environment("compiled", virtual_board=True)
    env["CARKEY_AIR"] = "%s:%d" % tuple(world["air"].address)
    with running_car(world):
        assert first_press(world)["granted"]
        proc = runner.run("-c", _TWO_PRESSES.format(dir=str(world["fob"].state_dir)), env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [["fast", True, False, False], ["fast", True, False, False]]
