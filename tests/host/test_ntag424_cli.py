"""`carkey card …`: master key files and a provisioning dry run against the emulated card.

Run: .venv/bin/pytest -q tests/host/test_ntag424_cli.py
"""

import os
import stat
import subprocess
import sys

import pytest

from carkey_host import ntag424 as n
from carkey_host.cli import main

UID = "04a1b2c3d4e5f6"
MASTER = bytes(range(16))


@pytest.fixture
def master_file(tmp_path):
    path = tmp_path / "master"
    n.new_master_key_file(path, MASTER)
    return path


def test_new_master_key_file_is_private_and_prints_only_its_check_value(tmp_path, capsys):
    path = tmp_path / "m"
    assert main(["card", "new-master-key", "--out", str(path)]) == 0
    key = n.read_master_key(path)
    out = capsys.readouterr().out
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert f"check value: {n.key_check_value(key).hex()}" in out
    assert key.hex() not in out


def test_new_master_key_never_overwrites(master_file, capsys):
    assert main(["card", "new-master-key", "--out", str(master_file)]) == 1
    assert "exists" in capsys.readouterr().err
    assert n.read_master_key(master_file) == MASTER


def test_provision_emulated_prints_check_values_not_keys(master_file, capsys):
    assert main(["card", "provision", "--uid", UID, "--master-key-file", str(master_file), "--emulated"]) == 0
    out = capsys.readouterr().out
    ckey = n.card_key(MASTER, bytes.fromhex(UID), 2)
    akey = n.card_key(MASTER, bytes.fromhex(UID), 0)
    assert out == (
        f"card {UID} provisioned (emulated card)\n"
        f"card key (key 2) check value: {n.key_check_value(ckey).hex()}\n"
        f"admin key (key 0) check value: {n.key_check_value(akey).hex()}\n"
    )
    assert ckey.hex() not in out and MASTER.hex() not in out


def test_provision_of_a_card_with_another_real_uid_is_refused(master_file, capsys):
    code = main(["card", "provision", "--uid", UID, "--master-key-file", str(master_file), "--emulated",
                 "--emulated-real-uid", "04a1b2c3d4e5f7"])
    assert code == 3
    assert capsys.readouterr().err == f"carkey: card UID 04a1b2c3d4e5f7 differs from the anticollision UID {UID}\n"


def test_provision_without_emulated_is_a_clear_error(master_file, capsys):
    assert main(["card", "provision", "--uid", UID, "--master-key-file", str(master_file)]) == 1
    assert "use --emulated" in capsys.readouterr().err


@pytest.mark.parametrize(
    "uid, error",
    [("04a1", "--uid: expected 7 bytes, got 2"), ("zz" * 7, "--uid: not hexadecimal")],
)
def test_bad_uid(master_file, capsys, uid, error):
    assert main(["card", "provision", "--uid", uid, "--master-key-file", str(master_file), "--emulated"]) == 2  # bad usage
    assert error in capsys.readouterr().err


@pytest.mark.parametrize(
    "content, error",
    [("00" * 15, "15 bytes, expected 16"), ("not hex", "not hexadecimal")],
)
def test_bad_master_key_file(tmp_path, capsys, content, error):
    path = tmp_path / "m"
    path.write_text(content)
    assert main(["card", "key-check", "--uid", UID, "--master-key-file", str(path)]) == 1
    assert error in capsys.readouterr().err


def test_missing_master_key_file(tmp_path, capsys):
    assert main(["card", "key-check", "--uid", UID, "--master-key-file", str(tmp_path / "none")]) == 1
    assert "cannot read card master key file" in capsys.readouterr().err


def test_key_check(master_file, capsys):
    assert main(["card", "key-check", "--uid", UID, "--master-key-file", str(master_file)]) == 0
    assert capsys.readouterr().out == n.key_check_value(n.card_key(MASTER, bytes.fromhex(UID))).hex() + "\n"


def test_console_script(master_file):
    carkey = os.path.join(os.path.dirname(sys.executable), "carkey")
    proc = subprocess.run([carkey, "card", "provision", "--uid", UID, "--master-key-file", str(master_file), "--emulated"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith(f"card {UID} provisioned"), proc.stderr
