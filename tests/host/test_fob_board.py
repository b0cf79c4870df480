"""The key fob as a user meets it, with no hardware: `carkey deploy --board virtual_fob`,
`carkey fob provision`, `carkey fob press`, `carkey log` — the car and the fob each on a
virtual board (a pty speaking the ESP32 serial REPL), on one virtual BLE air.

Also what deploy installs per board: the fob gets its application and what it imports,
nothing of the car's; the car gets nothing of the fob's.

Run: .venv/bin/pytest -q tests/host/test_fob_board.py
"""

import json
import re
import time

from carkey_cli import carkey
from carkey_host import deploy, firmware_set, paths
from carkey_host.vboard import VirtualBoard
from carkey_host.virtual_air import VirtualAir

PACKAGE = paths.FIRMWARE_DIR / "carkey"


def _modules(board):
    return {i.dest[len("/lib/carkey/"):] for i in deploy.install_plan(board) if i.dest.startswith("/lib/carkey/")}


def test_fob_gets_its_application_and_nothing_of_the_car():
    for board in ("esp32_c3_fob", "virtual_fob"):
        mods = _modules(board)
        assert {"fob/app.mpy", "fob/device.mpy", "hw/ble_central.mpy", "hw/fob_platform.mpy", "fob/state.mpy",
                "crypto/p256.mpy"} <= mods
        # The car's platform (watchdog, PN532, UARTs) and GATT server stay off the fob.
        assert not {"ecu/app.mpy", "ecu/car.mpy", "ecu/keystore.mpy", "hw/pn532.mpy", "hw/platform.mpy",
                    "hw/ble_gatt.mpy", "bench.mpy", "fob/serve_tcp.mpy", "fob/bench.mpy"} & mods
        # Closed under imports: every carkey module a planned module imports is planned too.
        for rel in mods:
            for name in firmware_set._imports(PACKAGE / rel.replace(".mpy", ".py")):
                if name.startswith("carkey."):
                    target = firmware_set._module_file(PACKAGE, name)
                    if target is not None:
                        assert target.relative_to(PACKAGE).with_suffix(".mpy").as_posix() in mods, (rel, name)


def test_car_gets_nothing_of_the_fob():
    mods = _modules("virtual")
    assert "ecu/app.mpy" in mods and not any(m.startswith("fob/") for m in mods)


def _until_granted(cmd, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        r = carkey(*cmd, check=False)
        if r.returncode != 3 or "car-not-found" not in r.stderr or time.monotonic() > deadline:
            return r
        time.sleep(0.3)


def test_deploy_provision_press_log(tmp_path):
    owner = tmp_path / "owner"
    carkey("phone", "init", "--keys", owner)
    with VirtualAir(port=0) as air:
        env = {"CARKEY_AIR": "%s:%d" % air.address}
        car_port, fob_port = tmp_path / "ttyCAR", tmp_path / "ttyFOB"
        with VirtualBoard(tmp_path / "car", car_port, env=env), VirtualBoard(tmp_path / "fob", fob_port, env=env):
            carkey("deploy", "--port", car_port, "--board", "virtual")
            report = json.loads(carkey("deploy", "--port", fob_port, "--board", "virtual_fob", "--json").stdout)
            assert report["board"] == "virtual_fob"
            assert not any("/ecu/car" in f["path"] for f in report["files"])
            carkey("provision", "--port", car_port, "--keys", owner)
            out = carkey("fob", "provision", "--port", fob_port, "--car-port", car_port, "--keys", owner,
                         "--name", "spare fob").stdout
            assert "spare fob: enrolled as driver" in out
            fobs = json.loads((owner / "fobs.json").read_text())
            assert [f["name"] for f in fobs] == ["spare fob"]
            first = _until_granted(["fob", "press", "--port", fob_port, "unlock"])
            assert first.returncode == 0 and "granted" in first.stdout and "kind=standard" in first.stdout, \
                first.stdout + first.stderr
            second = carkey("fob", "press", "--port", fob_port, "lock")
            assert "kind=fast" in second.stdout
            log = carkey("log", "--port", car_port, "--keys", owner).stdout
    assert re.search(r"ble/standard key \w+ +unlock +ok", log), log
    assert re.search(r"ble/fast +key \w+ +lock +ok", log), log
    assert re.search(r"ble/\w+ +key \w+ +battery +3\.90 V", log), log  # the fob's battery, as the owner sees it
