"""`carkey log --follow` on the virtual board: it reads the log without rewriting it.

The follow runs as one admin session over the running application's console: the
application is never interrupted or restarted (the board's boot count stays put, and
the phone unlocks while the log is followed), new records arrive incrementally, and
the whole session adds one audit record however many polls it makes.

Run: .venv/bin/pytest -q tests/host/test_log_follow.py
"""

import json
import signal
import subprocess
import sys
import threading
import time

from carkey_host.vboard import VirtualBoard
from carkey_host.virtual_air import VirtualAir
from carkey_cli import carkey

EVENT_ADMIN = 0xE4


def _unlock(owner, endpoint, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        r = carkey("phone", "unlock", "--keys", owner, "--air", endpoint, check=False)
        if r.returncode == 0 or time.monotonic() > deadline:
            return r
        time.sleep(0.2)


def test_follow_reads_incrementally_without_restarting_the_app(tmp_path):
    owner = tmp_path / "owner"
    carkey("phone", "init", "--keys", owner)
    with VirtualAir(port=0) as air:
        endpoint = "%s:%d" % air.address
        with VirtualBoard(tmp_path / "flash", tmp_path / "ttyCARKEY", env={"CARKEY_AIR": endpoint}) as board:
            port = tmp_path / "ttyCARKEY"
            carkey("deploy", "--port", port, "--board", "virtual")
            carkey("provision", "--port", port, "--keys", owner)
            assert _unlock(owner, endpoint).returncode == 0  # the application is up
            boots = board.boots
            before = [json.loads(line) for line in
                      carkey("log", "--port", port, "--keys", owner, "--json").stdout.splitlines()]
            follow = subprocess.Popen([sys.executable, "-m", "carkey_host.cli", "log", "--port", str(port),
                                       "--keys", str(owner), "--json", "--follow", "--interval", "0.2",
                                       "--since", str(before[-1]["seq"])],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            lines = []
            reader = threading.Thread(target=lambda: lines.extend(follow.stdout), daemon=True)
            reader.start()
            try:
                time.sleep(1.5)  # several polls with nothing new
                for _ in range(2):
                    r = carkey("phone", "unlock", "--keys", owner, "--air", endpoint, check=False)
                    assert r.returncode == 0, r.stdout + r.stderr  # taps go on while the log is followed
                deadline = time.monotonic() + 20
                while [json.loads(line)["command"] for line in lines].count(2) < 2 and time.monotonic() < deadline:
                    time.sleep(0.1)
            finally:
                follow.send_signal(signal.SIGINT)
                follow.wait(10)
                reader.join(5)
            assert follow.returncode == 0, follow.stderr.read()
            assert board.boots == boots  # never interrupted, never restarted
            after = [json.loads(line) for line in
                     carkey("log", "--port", port, "--keys", owner, "--json", "--since", before[-1]["seq"]).stdout
                     .splitlines()]
    followed = [json.loads(line) for line in lines]
    seqs = [r["seq"] for r in followed]
    assert seqs == sorted(set(seqs)) and seqs[0] > before[-1]["seq"]  # each record once, in order
    assert [r["command"] for r in followed if r["command"] != EVENT_ADMIN] == [2, 2]
    # The follow session (however many polls) and the last `carkey log`: one admin record each.
    assert [r["command"] for r in after].count(EVENT_ADMIN) == 2
