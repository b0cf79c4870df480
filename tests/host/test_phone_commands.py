"""`carkey phone unlock|lock|drive|…` over BLE, against the whole ECU application on the virtual air.

Run: .venv/bin/pytest -q tests/host/test_phone_commands.py
"""

import time

import pytest

from carkey_host.keydir import KeyDir
from carkey_host.vcar import RunningCar, VirtualCar
from carkey_host.virtual_air import VirtualAir
from carkey_cli import carkey


@pytest.fixture
def running(tmp_path):
    flash, keys = tmp_path / "flash", KeyDir(tmp_path / "owner")
    owner = keys.init()
    ident = VirtualCar(flash / "state").provision(owner, int(time.time()))
    keys.trust(bytes.fromhex(ident["group_id"]), bytes.fromhex(ident["reader_public_key"]))
    with VirtualAir(port=0) as air, RunningCar(flash, air=air.address) as car:
        yield "%s:%d" % air.address, keys.path, car, tmp_path


def test_unlock_drive_lock_over_the_virtual_air(running):
    air, keys, car, _ = running
    r = carkey("phone", "unlock", "--keys", keys, "--air", air, check=False)
    assert r.returncode == 0 and r.stdout.startswith("unlock: ok (unlocked"), r.stdout + r.stderr
    r = carkey("phone", "drive", "--keys", keys, "--air", air, "--minutes", "10", check=False)
    assert r.returncode == 0 and "drive: ok" in r.stdout and "drive enabled 10 min" in r.stdout, r.stdout + r.stderr
    r = carkey("phone", "lock", "--keys", keys, "--air", air, check=False)
    assert r.returncode == 0 and r.stdout.startswith("lock: ok"), r.stdout + r.stderr


def test_unknown_phone_is_refused_with_exit_3(running):
    air, keys, car, tmp_path = running
    stranger = KeyDir(tmp_path / "stranger")
    stranger.init()
    for g, k in KeyDir(keys).trusted_readers().items():
        stranger.trust(g, k)
    r = carkey("phone", "unlock", "--keys", stranger.path, "--air", air, check=False)
    assert r.returncode == 3 and "key revoked or unknown" in r.stdout + r.stderr


def test_bad_arguments(running):
    air, keys, _, _ = running
    assert carkey("phone", "unlock", "--keys", keys, check=False).returncode == 2  # no radio named
    r = carkey("phone", "drive", "--keys", keys, "--air", air, "--minutes", "999", check=False)
    assert r.returncode == 2 and "1..240" in r.stderr
