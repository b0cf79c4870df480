"""The whole path a user takes, with no hardware: virtual board up → `carkey deploy` →
`carkey provision` → the simulated phone unlocks over BLE → `carkey log` shows it.

Every step is the `carkey` CLI as a user types it; the board is the virtual board
(a pty speaking the ESP32 serial REPL, firmware main.py running the ECU application
on the virtual BLE air).

Run: .venv/bin/pytest -q tests/host/test_full_path.py
"""

import json
import re
import time

from carkey_host.vboard import VirtualBoard
from carkey_host.virtual_air import VirtualAir
from carkey_cli import carkey


def test_deploy_provision_unlock_log(tmp_path):
    owner = tmp_path / "owner"
    carkey("phone", "init", "--keys", owner)
    with VirtualAir(port=0) as air:
        endpoint = "%s:%d" % air.address
        with VirtualBoard(tmp_path / "flash", tmp_path / "ttyCARKEY", env={"CARKEY_AIR": endpoint}) as board:
            port = tmp_path / "ttyCARKEY"
            out = carkey("deploy", "--port", port, "--board", "virtual", "--json").stdout
            report = json.loads(out)
            assert report["board"] == "virtual" and report["copied"] > 20
            # First boot happens with the provisioning: the firmware makes the identity itself.
            out = carkey("provision", "--port", port, "--keys", owner).stdout
            assert "car provisioned" in out
            (trusted,) = json.loads((owner / "trust.json").read_text())  # the owner's phone now trusts this car
            # The application runs again after provisioning; the phone finds it by name.
            deadline = time.monotonic() + 20
            while True:
                r = carkey("phone", "unlock", "--keys", owner, "--air", endpoint, check=False)
                if r.returncode == 0 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert r.returncode == 0 and r.stdout.startswith("unlock: ok"), r.stdout + r.stderr
            assert carkey("phone", "lock", "--keys", owner, "--air", endpoint).stdout.startswith("lock: ok")
            log = carkey("log", "--port", port, "--keys", owner).stdout
            listing = json.loads(carkey("keys", "list", "--port", port, "--keys", owner, "--json").stdout)
            assert board.boots >= 3  # power-on, and the soft resets after deploy and provisioning
    assert re.search(r"ble/standard key \w+ +unlock +ok", log), log
    assert re.search(r"ble/fast +key \w+ +lock +ok", log), log
    assert [k["role"] for k in listing["keys"]] == ["owner"] and listing["keys"][0]["uses"] == 2
    assert listing["keys"][0]["public_key"] != trusted["reader_public_key"]
