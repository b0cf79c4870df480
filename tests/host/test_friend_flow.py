"""The friend flow exactly as the tool's own words tell it, on the virtual board.

The owner provisions the car and shares it; the friend runs only what the commands
print: `carkey phone init`, `carkey phone import-share`, `carkey phone unlock --air`.
Owner commands in between (`keys list`, `log`) must not cancel a share not yet
presented; after `keys revoke` the friend is refused.

Run: .venv/bin/pytest -q tests/host/test_friend_flow.py
"""

import json
import re
import time

from carkey_host.vboard import VirtualBoard
from carkey_host.virtual_air import VirtualAir
from carkey_cli import carkey


def _until_up(args, timeout=20):
    """The first tap after a soft reset may come before the app advertises again."""
    deadline = time.monotonic() + timeout
    while True:
        r = carkey(*args, check=False)
        if r.returncode != 6 and "no car" not in r.stderr or time.monotonic() > deadline:
            return r
        time.sleep(0.2)


def _hinted(text, command):
    """The `carkey …` command line a hint prints, split into arguments."""
    m = re.search(r"`carkey (" + command + r"[^`]*)`", text)
    assert m, f"no hint for `carkey {command}` in:\n{text}"
    return m.group(1).split()


def test_share_import_unlock_revoke(tmp_path):
    owner, friend, friend2, friend3 = (tmp_path / n for n in ("owner", "friend", "friend2", "friend3"))
    carkey("phone", "init", "--keys", owner)
    init_out = carkey("phone", "init", "--keys", friend).stdout
    # A friend is told to hand the public key to the owner, not to enroll itself as owner.
    assert "--role owner" not in init_out and "credential.pub.pem" in init_out and "import-share" in init_out
    carkey("phone", "init", "--keys", friend2)
    carkey("phone", "init", "--keys", friend3)
    with VirtualAir(port=0) as air:
        endpoint = "%s:%d" % air.address
        with VirtualBoard(tmp_path / "flash", tmp_path / "ttyCARKEY", env={"CARKEY_AIR": endpoint}):
            port = tmp_path / "ttyCARKEY"
            carkey("deploy", "--port", port, "--board", "virtual")
            carkey("provision", "--port", port, "--keys", owner)
            info = json.loads(carkey("car", "info", "--port", port, "--json").stdout)
            assert set(info) >= {"name", "group_id", "reader_public_key"}
            assert info["name"] == "carkey-" + info["group_id"][:8]

            share = tmp_path / "friend.share"
            out = carkey("keys", "share", "--keys", owner, "--credential", friend / "credential.pub.pem",
                         "--role", "driver", "--out", share).stdout
            # The hint names the import step with the file; the friend's directory is theirs to fill in.
            args = _hinted(out, "phone import-share")
            args[args.index("--keys") + 1] = str(friend)
            imported = carkey(*args).stdout
            assert info["name"] in imported
            carkey("keys", "share", "--keys", owner, "--credential", friend2 / "credential.pub.pem",
                   "--role", "guest", "--out", tmp_path / "friend2.share")
            carkey("phone", "import-share", "--keys", friend2, "--file", tmp_path / "friend2.share")

            unlock = _hinted(imported, "phone unlock")
            assert "--air" in unlock or "--ble" in unlock
            r = _until_up(("phone", "unlock", "--keys", friend, "--air", endpoint))
            assert r.returncode == 0 and r.stdout.startswith("unlock: ok"), r.stdout + r.stderr

            # Owner commands that read must not cancel friend2's share, not yet presented.
            carkey("keys", "list", "--port", port, "--keys", owner)
            carkey("log", "--port", port, "--keys", owner)
            r = _until_up(("phone", "unlock", "--keys", friend2, "--air", endpoint))
            assert r.returncode == 0 and r.stdout.startswith("unlock: ok"), r.stdout + r.stderr

            carkey("keys", "revoke", "--port", port, "--keys", owner, "--credential", friend / "credential.pub.pem")
            r = _until_up(("phone", "unlock", "--keys", friend, "--air", endpoint))
            assert r.returncode == 3 and "revoked" in r.stdout + r.stderr, r.stdout + r.stderr

            # A share revoked before its first tap: the car says so, the phone drops it for good.
            carkey("keys", "share", "--keys", owner, "--credential", friend3 / "credential.pub.pem",
                   "--role", "guest", "--out", tmp_path / "friend3.share")
            carkey("phone", "import-share", "--keys", friend3, "--file", tmp_path / "friend3.share")
            assert len(carkey("phone", "shares", "--keys", friend3, "--json").stdout.splitlines()) == 1
            carkey("keys", "revoke", "--port", port, "--keys", owner, "--credential", friend3 / "credential.pub.pem")
            r = _until_up(("phone", "unlock", "--keys", friend3, "--air", endpoint))
            assert r.returncode == 3 and "removed from" in r.stdout, r.stdout + r.stderr
            assert carkey("phone", "shares", "--keys", friend3, "--json").stdout == ""
