"""The virtual board's host devices: `carkey vboard --pn532 PTY` reaches the host's pty, and a
radio task that dies is reported on the host, not only on the board's REPL.

The README's path, on the virtual board: the PN532 stand-in on a host pty link, the board
given that link, the firmware deployed, the car provisioned over USB, the owner's phone
tapped on the antenna. Then a board whose PN532 pty does not exist, run as `carkey vboard`.

Run: .venv/bin/pytest -q tests/host/test_vboard_devices.py
"""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from carkey_host import deploy, owner
from carkey_host.errors import Refused
from carkey_host.keydir import KeyDir
from carkey_host.phone import Phone
from carkey_host.pn532_sim import PhoneTarget, Pn532Sim
from carkey_host.usb_car import UsbCar
from carkey_host.vboard import VirtualBoard


def test_pn532_link_given_as_a_host_path_reaches_the_host_and_a_tap_is_granted(tmp_path):
    keys = KeyDir(tmp_path / "owner")
    keys.init()
    link = tmp_path / "carkey-nfc"
    reports = []
    with Pn532Sim(link=str(link)) as sim, \
            VirtualBoard(tmp_path / "board", env={"CARKEY_PN532": str(link)}, on_report=reports.append) as board:
        deploy.deploy(board.port, "virtual", timeout=60)  # generous: a loaded test machine
        owner.provision(UsbCar(board.port, timeout=60), keys)
        taps = []
        done = threading.Event()

        def ended(txn):
            taps.append(txn)
            done.set()

        sim.place(PhoneTarget(Phone(keys), on_end=ended))
        assert done.wait(60), f"no tap reached the board; it reported {list(reports)}"
        assert taps[0].control_flow is not None and taps[0].control_flow[0] == 1, taps[0]
        assert list(reports) == []
        # The board's own refusal travels back as one (exit 3), not as a failure.
        with pytest.raises(Refused, match="already provisioned"):
            owner.provision(UsbCar(board.port, timeout=60), keys)


def test_cli_vboard_reports_a_missing_pn532_pty_and_the_nfc_task_that_died(tmp_path):
    link = tmp_path / "board-link"
    missing = tmp_path / "no-nfc-sim-here"
    proc = subprocess.Popen([sys.executable, "-m", "carkey_host.cli", "vboard", "--dir", tmp_path / "board",
                             "--link", link, "--pn532", os.path.relpath(missing)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "virtual board on" in proc.stdout.readline()
        lines = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
        reader.start()
        deploy.deploy(str(link), "virtual", timeout=60)  # the application starts: its NFC task cannot open the pty
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any("task nfc stopped" in line for line in lines):
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        reader.join(10)
    text = "".join(lines)
    assert f"carkey: board: cannot open {missing} (CARKEY_PN532) on the host: No such file or directory" in text
    assert f"carkey: board: task nfc stopped: OSError: [Errno 2] ENOENT: CARKEY_PN532={missing} could not be opened" in text
    assert proc.returncode == 0
