"""The phone key page's protocol core (web/, under Node) against the firmware car on the virtual air.

The car is the whole ECU application on the virtual board; the page's code reaches it
through `carkey phone web --air`'s WebSocket tunnel and its navigator.bluetooth
stand-in (web/lib/air_bluetooth.js), exactly as the page in a browser does. A key
made by the page is enrolled with `carkey keys add`; then standard, fast, a share
presented on first use, drive-enable, and a car the page does not trust. (The browser test
compares tap times with the simulated phone.)
Also runs the Node unit tests (node --test web/test/).

Run: .venv/bin/pytest -q tests/host/test_web_key.py
"""

import hashlib
import json
import subprocess
import time

import pytest

from carkey_host import owner as owner_ops
from carkey_host import paths
from carkey_host.ble_phone import device_name
from carkey_host.keydir import KeyDir
from carkey_host.vcar import RunningCar, VirtualCar
from carkey_host.virtual_air import VirtualAir
from carkey_host.web_server import RunningWebServer
from carkey_cli import carkey
from web_key import KeyDriver, node_or_skip


@pytest.fixture(scope="module")
def node_cmd():
    return node_or_skip()


def test_node_unit_tests(node_cmd):
    tests = sorted(str(p) for p in (paths.REPO_ROOT / "web" / "test").glob("*.test.mjs"))
    proc = subprocess.run(node_cmd + ["--test", *tests], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "# fail 0" in proc.stdout


def _tap(driver, ws, group_id, command, **kw):
    answer = driver.call(op="tap", air=ws, group_id=group_id, command=command, **kw)
    assert "error" not in answer, answer
    assert answer["linkError"] is None, answer  # the car ended the link; nothing was cut short
    return answer


def test_page_key_on_the_firmware_car(tmp_path, node_cmd):
    owner = tmp_path / "owner"
    carkey("phone", "init", "--keys", owner)
    state = tmp_path / "flash" / "state"
    ident = owner_ops.provision(VirtualCar(state), KeyDir(owner))
    group_id = ident["group_id"]
    identity_json = json.dumps({"group_id": group_id, "reader_public_key": ident["reader_public_key"]})

    with KeyDriver(node_cmd) as page, KeyDriver(node_cmd) as friend:
        made = page.call(op="init")
        assert made["pem"].startswith("-----BEGIN PUBLIC KEY-----")
        (tmp_path / "page.pub.pem").write_text(made["pem"])
        # The owner enrolls the page's key as a user does.
        out = carkey("keys", "add", "--state", state, "--keys", owner, "--credential", tmp_path / "page.pub.pem",
                     "--role", "driver").stdout
        assert "enrolled key slot" in out
        car = page.call(op="import", data=identity_json.encode().hex())
        assert car == {"group_id": group_id, "name": device_name(bytes.fromhex(group_id)), "has_reader_key": True,
                       "has_share": False}

        # A friend's page gets a share file from the owner (no contact with the car).
        fmade = friend.call(op="init")
        (tmp_path / "friend.pub.pem").write_text(fmade["pem"])
        carkey("keys", "share", "--keys", owner, "--credential", tmp_path / "friend.pub.pem", "--role", "guest",
               "--out", tmp_path / "friend.share")
        share_file = (tmp_path / "friend.share").read_bytes()
        imported = friend.call(op="import", data=share_file.hex())
        assert imported["has_share"] and imported["group_id"] == group_id, imported
        if not imported["has_reader_key"]:
            # A bare share document names no reader key: the page cannot tap until it has the car's identity.
            answer = friend.call(op="tap", air="ws://127.0.0.1:1/air", group_id=group_id, command="unlock")
            assert "import the car's identity" in answer["error"], answer
            assert friend.call(op="import", data=identity_json.encode().hex())["has_share"]  # the share stays
        # Cross-check: the document the host tools signed verifies under WebCrypto; one flipped bit does not.
        from carkey_host import documents

        document = share_file if share_file[:1] == b"\xe2" else bytes.fromhex(json.loads(share_file)["document"])
        assert documents.parse_share(document).friend_pub.hex() == fmade["public_key"]
        assert friend.call(op="verify_share", data=document.hex()) == {"valid": True}
        tampered = bytearray(document)
        tampered[-70] ^= 1  # inside the owner's signature
        assert friend.call(op="verify_share", data=tampered.hex()) == {"valid": False}

        with VirtualAir(port=0) as air, RunningWebServer(air=air.address) as web, \
                RunningCar(tmp_path / "flash", air=air.address):
            ws = web.url.replace("http://", "ws://") + "/air"
            deadline = time.monotonic() + 30
            while True:  # the car's application needs a moment to bring its radio up
                first = page.call(op="tap", air=ws, group_id=group_id, command="unlock")
                if "error" not in first or time.monotonic() > deadline:
                    break
                time.sleep(0.3)
            assert "error" not in first and first["linkError"] is None, first
            assert (first["granted"], first["kind"], first["words"]) == (True, "standard", "unlock: ok"), first
            assert first["state"]["locked"] is False and first["stateWords"].startswith("unlocked")
            assert first["chunk"] > 20  # it learnt the MTU from the car's indications

            lock = _tap(page, ws, group_id, "lock")
            assert (lock["granted"], lock["kind"], lock["words"]) == (True, "fast", "lock: ok"), lock
            assert lock["state"]["locked"] is True

            drive = _tap(page, ws, group_id, "drive", minutes=15)
            # Drive-enable needs a standard transaction: the page sends no cryptogram, the car falls back.
            assert (drive["granted"], drive["kind"]) == (True, "fallback"), drive
            assert drive["state"]["driveMinutes"] == 15

            status = _tap(page, ws, group_id, "status")
            assert status["granted"] and status["kind"] == "fast" and "drive enabled" in status["stateWords"]

            shared = _tap(friend, ws, group_id, "unlock")
            # The car asks every phone for a fast transaction; the friend has no Kpersistent yet: AUTH1 follows.
            assert (shared["granted"], shared["shareAccepted"], shared["kind"]) == (True, True, "fallback"), shared
            assert shared["documents"] == [[0xE2, 0]]
            again = _tap(friend, ws, group_id, "trunk")
            assert (again["granted"], again["kind"], again["documents"]) == (True, "fast", []), again
            refused = _tap(friend, ws, group_id, "drive", minutes=5)  # a guest never drives
            assert not refused["granted"] and refused["words"] == "refused: not entitled", refused

    log = carkey("log", "--state", state, "--keys", owner).stdout
    page_slot = _slot(made["public_key"])
    friend_slot = _slot(fmade["public_key"])
    assert f"ble/standard key {page_slot}" in log and f"ble/fast     key {page_slot}" in log, log
    assert f"key {friend_slot}" in log and "trunk" in log


def _slot(public_key_hex):
    """carkey's key slot as the audit log prints it: SHA-1 of the public key, first 8 bytes."""
    return hashlib.sha1(bytes.fromhex(public_key_hex)).hexdigest()[:16]


def test_page_refuses_a_car_it_does_not_trust(tmp_path, node_cmd):
    """A car with the trusted group id and name but another reader key: the page refuses it."""
    owner = tmp_path / "owner"
    carkey("phone", "init", "--keys", owner)
    state = tmp_path / "flash" / "state"
    ident = owner_ops.provision(VirtualCar(state), KeyDir(owner))
    with KeyDriver(node_cmd) as page:
        made = page.call(op="init")
        (tmp_path / "page.pub.pem").write_text(made["pem"])
        carkey("keys", "add", "--state", state, "--keys", owner, "--credential", tmp_path / "page.pub.pem",
               "--role", "driver")
        # The page trusts the same group id under another reader key (an impostor's).
        other = KeyDir(tmp_path / "other").init()
        page.call(op="import", data=json.dumps({"group_id": ident["group_id"], "reader_public_key": other.hex()})
                  .encode().hex())
        with VirtualAir(port=0) as air, RunningWebServer(air=air.address) as web, \
                RunningCar(tmp_path / "flash", air=air.address):
            ws = web.url.replace("http://", "ws://") + "/air"
            deadline = time.monotonic() + 30
            while True:
                tap = page.call(op="tap", air=ws, group_id=ident["group_id"], command="unlock")
                if "error" not in tap or time.monotonic() > deadline:
                    break
                time.sleep(0.3)
    assert "error" not in tap, tap
    # Its AUTH1 signature does not verify under the key the page holds: the page answers 6982, nothing opens.
    assert not tap["granted"] and not tap["results"], json.dumps(tap)
    assert tap["words"] == "refused: the car did not prove it is the car this phone trusts", json.dumps(tap)
