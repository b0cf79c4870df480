"""The owner's commands (`carkey provision | keys | clock | log`) against the virtual car.

Each command runs as a user runs it (the `carkey` CLI in a subprocess) and the car is
the firmware in the MicroPython Unix port over its state directory; every change is a
document the owner's key signs and the firmware checks.

Run: .venv/bin/pytest -q tests/host/test_owner_cli.py
"""

import json
import re
import threading

import pytest

from carkey_host.keydir import KeyDir
from carkey_host.phone import Phone
from carkey_host.tcp_link import FramedSocket, listen
from carkey_host.vcar import VirtualCar
from carkey_cli import carkey


@pytest.fixture
def car(tmp_path):
    state, owner = tmp_path / "car", tmp_path / "owner"
    carkey("phone", "init", "--keys", owner)
    out = carkey("provision", "--state", state, "--keys", owner).stdout
    assert "car provisioned" in out
    return state, owner


def new_phone(state, keys):
    """A friend's phone that trusts the car (it is not enrolled)."""
    carkey("phone", "init", "--keys", keys)
    ident = VirtualCar(state).identity()
    carkey("phone", "trust", "--keys", keys, "--reader-public-key", ident["reader_public_key"],
           "--group-id", ident["group_id"])
    return keys


def tap(state, keydir, commands=()):
    """One TCP transaction of the phone in `keydir` with the virtual car."""
    phone = Phone(KeyDir(keydir), commands=commands)
    server = listen("127.0.0.1", 0)
    seen = []

    def serve():
        conn, _ = server.accept()
        with conn:
            seen.append(phone.handle_connection(FramedSocket(conn, "lp"), 1))

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    txns, _ = VirtualCar(state).connect("127.0.0.1", server.getsockname()[1], "lp", ["standard"])
    t.join(10)
    server.close()
    return txns[0], seen[0]


def test_provision_then_list_keys(car):
    state, owner = car
    listing = json.loads(carkey("keys", "list", "--state", state, "--keys", owner, "--json").stdout)
    assert [(k["role"], k["status"]) for k in listing["keys"]] == [("owner", "active")]
    again = carkey("provision", "--state", state, "--keys", owner, check=False)
    assert again.returncode == 3 and "already provisioned" in again.stderr
    assert tap(state, owner)[0].granted


def test_add_suspend_resume_revoke(car, tmp_path):
    state, owner = car
    friend = new_phone(state, tmp_path / "friend")
    pem = friend / "credential.pub.pem"
    out = carkey("keys", "add", "--state", state, "--keys", owner, "--credential", pem, "--role", "guest").stdout
    slot = re.search(r"slot ([0-9a-f]{16})", out).group(1)
    assert tap(state, friend)[0].granted
    carkey("keys", "suspend", "--state", state, "--keys", owner, "--slot", slot)
    assert tap(state, friend)[0].results == [(0x02, 0x06)]
    carkey("keys", "resume", "--state", state, "--keys", owner, "--credential", pem)
    assert tap(state, friend)[0].granted
    carkey("keys", "revoke", "--state", state, "--keys", owner, "--slot", slot)
    assert tap(state, friend)[0].results == [(0x02, 0x07)]
    listing = json.loads(carkey("keys", "list", "--state", state, "--keys", owner, "--json").stdout)
    assert slot in listing["revoked_slots"]


def test_share_by_file_then_tap(car, tmp_path):
    state, owner = car
    friend = new_phone(state, tmp_path / "friend")
    doc = tmp_path / "share.bin"
    carkey("keys", "share", "--keys", owner, "--credential", friend / "credential.pub.pem", "--role", "driver",
           "--schedule", "daily 00:00-24:00", "--out", doc)
    wrong = carkey("phone", "import-share", "--keys", owner, "--file", doc, check=False)
    assert wrong.returncode == 1 and "another key" in wrong.stderr
    carkey("phone", "import-share", "--keys", friend, "--file", doc)
    txn, seen = tap(state, friend, commands=[(0x05, bytes([15]))])
    assert txn.granted and txn.results == [(0x05, 0x00)] and seen.documents == [(0xE2, 0x00)]


def test_clock_and_log(car):
    state, owner = car
    assert "car clock set to 2030-01-02 03:04:05 UTC" in carkey(
        "clock", "set", "--state", state, "--keys", owner, "--time", "2030-01-02T03:04:05").stdout
    tap(state, owner)
    lines = carkey("log", "--state", state, "--keys", owner).stdout.splitlines()
    assert any(re.search(r"tcp/standard .* unlock +ok", line) for line in lines), lines
    records = [json.loads(line) for line in carkey("log", "--state", state, "--keys", owner, "--json").stdout.splitlines()]
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    newer = carkey("log", "--state", state, "--keys", owner, "--json", "--since", records[-2]["seq"]).stdout
    # Every export is itself a judged admin request, so the log has grown by then.
    assert json.loads(newer.splitlines()[0])["seq"] == records[-1]["seq"]


def test_owner_commands_refuse_clearly(car, tmp_path):
    state, owner = car
    stranger = tmp_path / "stranger"
    carkey("phone", "init", "--keys", stranger)
    r = carkey("keys", "list", "--state", state, "--keys", stranger, check=False)
    assert r.returncode == 1 and "not one" in r.stderr and "trusts" in r.stderr
    r = carkey("keys", "list", "--keys", owner, check=False)
    assert r.returncode == 2 and "--port P" in r.stderr
    r = carkey("keys", "add", "--state", state, "--keys", owner, "--credential", owner / "credential.pub.pem",
               "--role", "driver", "--schedule", "someday", check=False)
    assert r.returncode == 2 and "schedule" in r.stderr
    # Signed by an owner the car no longer knows as one: refused by the firmware (exit 3).
    kd = KeyDir(stranger)
    ident = VirtualCar(state).identity()
    kd.trust(bytes.fromhex(ident["group_id"]), bytes.fromhex(ident["reader_public_key"]))
    r = carkey("clock", "set", "--state", state, "--keys", stranger, check=False)
    assert r.returncode == 3 and "not an active owner" in r.stderr
