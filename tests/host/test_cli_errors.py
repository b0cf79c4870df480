"""The `carkey` command tells the truth: exit codes from the README's table, JSON errors
under --json, slots that name no key refused, shares that could never be used refused.

Each command runs as a user runs it (the CLI in a subprocess) against the virtual car.

Run: .venv/bin/pytest -q tests/host/test_cli_errors.py
"""

import json
import os
import re

import pytest

from carkey_cli import carkey
from carkey_host import owner
from carkey_host.errors import UsageError


@pytest.fixture(scope="module")
def car(tmp_path_factory):
    root = tmp_path_factory.mktemp("car")
    state, owner, friend = root / "car", root / "owner", root / "friend"
    carkey("phone", "init", "--keys", owner)
    carkey("provision", "--state", state, "--keys", owner)
    carkey("phone", "init", "--keys", friend)
    out = carkey("keys", "add", "--state", state, "--keys", owner, "--credential", friend / "credential.pub.pem",
                 "--role", "guest").stdout
    slot = re.search(r"slot ([0-9a-f]{16})", out).group(1)
    return state, owner, friend, slot


def keys(state, owner):
    return json.loads(carkey("keys", "list", "--state", state, "--keys", owner, "--json").stdout)


# --- keys revoke --slot ---------------------------------------------------------------


def test_revoking_a_slot_no_key_has_is_refused_and_changes_nothing(car):
    state, owner, _, slot = car
    unknown = "00" * 8 if not slot.startswith("00") else "ff" * 8
    r = carkey("keys", "revoke", "--state", state, "--keys", owner, "--slot", unknown, check=False)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "revoked" not in r.stdout
    assert r.stderr.startswith(f"carkey: no key in this car has slot {unknown}")
    assert keys(state, owner)["revoked_slots"] == []


def test_an_ambiguous_or_short_slot_prefix_is_refused(car):
    state, owner, _, slot = car
    owner_slot = next(k["slot"] for k in keys(state, owner)["keys"] if k["role"] == "owner")
    common = os.path.commonprefix([slot, owner_slot])
    if len(common) >= 4:
        r = carkey("keys", "suspend", "--state", state, "--keys", owner, "--slot", common, check=False)
        assert r.returncode == 2 and "ambiguous" in r.stderr
    r = carkey("keys", "suspend", "--state", state, "--keys", owner, "--slot", slot[:3], check=False)
    assert r.returncode == 2 and "4 to 16 hex digits" in r.stderr
    assert {k["slot"]: k["status"] for k in keys(state, owner)["keys"]}[slot] == "active"


def test_slot_prefixes_resolve_only_when_one_key_matches():
    listing = {"keys": [{"slot": "abcd000000000001"}, {"slot": "abcd000000000002"}, {"slot": "1234567890abcdef"}]}
    with pytest.raises(UsageError, match="slot abcd is ambiguous: abcd000000000001, abcd000000000002"):
        owner.find_slot(listing, "abcd")
    assert owner.find_slot(listing, "ABCD000000000002") == bytes.fromhex("abcd000000000002")
    assert owner.find_slot(listing, "1234") == bytes.fromhex("1234567890abcdef")
    for bad in ("12", "xyz123", "1234567890abcdef0"):
        with pytest.raises(UsageError, match="4 to 16 hex digits"):
            owner.find_slot(listing, bad)


def test_a_unique_prefix_names_its_key(car):
    state, owner, _, slot = car
    out = carkey("keys", "suspend", "--state", state, "--keys", owner, "--slot", slot[:6].upper()).stdout
    assert f"key {slot} suspended" in out
    carkey("keys", "resume", "--state", state, "--keys", owner, "--slot", slot)
    assert {k["slot"]: k["status"] for k in keys(state, owner)["keys"]}[slot] == "active"


def test_keys_list_shows_every_slot_in_full_on_a_narrow_terminal(car):
    state, owner, _, slot = car
    env = dict(os.environ, COLUMNS="60")
    out = carkey("keys", "list", "--state", state, "--keys", owner, env=env).stdout
    assert slot in out, out


# --- exit codes and --json errors --------------------------------------------------------


def test_provisioning_twice_is_refused_by_the_car_exit_3(car):
    state, owner, _, _ = car
    r = carkey("provision", "--state", state, "--keys", owner, check=False)
    assert r.returncode == 3 and "already provisioned" in r.stderr


@pytest.mark.parametrize("option, value", [("--schedule", "someday"), ("--valid-until", "tomorrow"),
                                           ("--valid-from", "2026-13-01")])
def test_bad_share_arguments_are_bad_usage_exit_2(car, tmp_path, option, value):
    state, owner, friend, _ = car
    r = carkey("keys", "share", "--keys", owner, "--credential", friend / "credential.pub.pem", "--role", "guest",
               option, value, "--out", tmp_path / "x.share", check=False)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.startswith("carkey: ") and not (tmp_path / "x.share").exists()


def test_a_share_whose_window_has_ended_is_refused(car, tmp_path):
    state, owner, friend, _ = car
    r = carkey("keys", "share", "--keys", owner, "--credential", friend / "credential.pub.pem", "--role", "guest",
               "--valid-until", "2020-01-01T00:00", "--out", tmp_path / "old.share", check=False)
    assert r.returncode == 2 and "window ended at 2020-01-01 00:00 UTC" in r.stderr
    assert not (tmp_path / "old.share").exists()


def test_json_errors_are_json_on_stdout_with_the_same_exit_code(car):
    state, owner, _, _ = car
    r = carkey("keys", "list", "--keys", owner, "--json", check=False)
    assert r.returncode == 2
    assert json.loads(r.stdout) == {"error": "say which car: --port P (a board) or --state DIR (the virtual car)",
                                    "exit_code": 2}
    r = carkey("keys", "add", "--state", state, "--keys", owner, "--credential", owner / "credential.pub.pem",
               "--role", "guest", "--json", check=False)
    assert r.returncode == 3
    answer = json.loads(r.stdout)
    assert answer["exit_code"] == 3 and answer["error"].startswith("the car refused")
    r = carkey("deploy", "--port", state / "no-such-port", "--board", "virtual", "--json", check=False)
    assert r.returncode == 4 and json.loads(r.stdout)["exit_code"] == 4


def test_argparse_usage_errors_under_json_are_json_too():
    r = carkey("keys", "list", "--json", check=False)
    assert r.returncode == 2
    answer = json.loads(r.stdout)
    assert answer["exit_code"] == 2 and "--keys" in answer["error"]
