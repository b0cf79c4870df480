"""`carkey air …`: the virtual air hub and the simulated phone visiting the firmware car over BLE.

Run: .venv/bin/pytest -q tests/host/test_ble_cli.py
"""

from types import SimpleNamespace

import pytest

from carkey_host.ble_car import CarProcess, ReaderKeys, build_car
from carkey_host.cli import main
from carkey_host.keydir import KeyDir
from carkey_host.virtual_air import VirtualAir


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    return build_car(tmp_path_factory.mktemp("ble-mpy"))


@pytest.mark.parametrize("argv, message", [
    (["--air", "nowhere"], "--air wants HOST:PORT"),
    (["--mtu", "22"], "--mtu must be 23..517"),
    (["--name", "my-car"], "--name looks like carkey-XXXXXXXX"),
    (["--visits", "0"], "--visits must be 1 or more"),
    (["--command", "fly"], "unknown command 'fly'"),
])
def test_phone_bad_arguments(tmp_path, capsys, argv, message):
    base = {"--keys": str(tmp_path), "--name": "carkey-00000000"}
    for flag, value in zip(argv[::2], argv[1::2]):
        base[flag] = value
    args = [x for kv in base.items() for x in kv]
    assert main(["air", "phone", *args]) == 2
    assert message in capsys.readouterr().err


def test_phone_no_car_on_the_air(tmp_path, capsys):
    main(["phone", "init", "--keys", str(tmp_path)])
    with VirtualAir() as air:
        code = main(["air", "phone", "--keys", str(tmp_path), "--air", "%s:%d" % air.address,
                     "--name", "carkey-00000000"])
    assert code == 1
    assert "no car advertising as 'carkey-00000000'" in capsys.readouterr().err


def test_air_serve_runs_and_stops(capsys):
    assert main(["air", "serve", "--listen", "127.0.0.1:0", "--seconds", "0.2"]) == 0
    assert "virtual air on 127.0.0.1:" in capsys.readouterr().out


def test_phone_visits_the_car_twice(tmp_path, capsys, build):
    keys = ReaderKeys()
    main(["phone", "init", "--keys", str(tmp_path)])
    main(["phone", "trust", "--keys", str(tmp_path), "--group-id", keys.group_id.hex(),
          "--reader-public-key", keys.public_key.hex()])
    credential = SimpleNamespace(credential_public_key=KeyDir(tmp_path).public_key())
    with VirtualAir() as air:
        car = CarProcess(build, air, keys, [credential], 2, exchange=["e103c00101"])
        try:
            code = main(["air", "phone", "--keys", str(tmp_path), "--air", "%s:%d" % air.address,
                         "--name", keys.name, "--visits", "2", "--command", "unlock"])
            first, second = car.transaction(), car.transaction()
        finally:
            car.kill()
    out = capsys.readouterr().out
    assert code == 0, out
    assert "visit 1: granted" in out and "visit 2: granted" in out
    assert (first["kind"], second["kind"]) == ("standard", "fast")  # the phone kept its Kpersistent
    assert first["replies"] == second["replies"] == ["e103c20102"]  # the unlock request reached the car
