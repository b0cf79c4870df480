"""Installed mode on the virtual board: after `carkey provision` the USB REPL is closed.

Real mpremote against the virtual board gets no REPL and runs nothing (the USB
stranger's attack: enroll a key, print the reader's private key), while the owner's
`carkey` commands go on through the application's console. An owner-signed
maintenance request opens the REPL for a while (deploy works, the board comes back
installed); a forged or replayed one is refused, and the window ends by itself.

Run: .venv/bin/pytest -q tests/host/test_installed.py
"""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from carkey_host import documents
from carkey_host.aliro import crypto
from carkey_host.keydir import KeyDir
from carkey_host.usb_car import ConsoleSession, UsbCar
from carkey_host.vboard import VirtualBoard
from carkey_cli import carkey

MPREMOTE = str(Path(sys.executable).with_name("mpremote"))
OK, DOCUMENT_REFUSED = 0x00, 0x0B


def mpremote(port, *args, timeout=60):
    return subprocess.run([MPREMOTE, "connect", str(port), *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def car(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("installed")
    owner = tmp / "owner"
    carkey("phone", "init", "--keys", owner)
    with VirtualBoard(tmp / "flash", tmp / "ttyCARKEY") as board:
        port = tmp / "ttyCARKEY"
        carkey("deploy", "--port", port, "--board", "virtual")
        carkey("provision", "--port", port, "--keys", owner)
        board.owner, board.link, board.tmp = owner, port, tmp
        yield board


def wait_installed(car, timeout=20):
    # The application is up (and the REPL closed) once its console answers.
    deadline = time.monotonic() + timeout
    while True:
        r = carkey("keys", "list", "--port", car.link, "--keys", car.owner, "--json", check=False)
        if r.returncode == 0 or time.monotonic() > deadline:
            return r
        time.sleep(0.5)


def test_mpremote_gets_no_repl(car):
    assert wait_installed(car).returncode == 0
    r = mpremote(car.link, "exec", "print(6 * 7)")
    assert r.returncode != 0 and "42" not in r.stdout, r.stdout + r.stderr
    assert "raw repl" in (r.stdout + r.stderr).lower()
    r = mpremote(car.link, "exec", "print(open('/state/identity.a','rb').read().hex())")
    assert r.returncode != 0
    assert not any(len(w) >= 64 for w in r.stdout.split())  # no key material came out


def test_stranger_cannot_enroll_and_owner_commands_work(car):
    stranger = crypto.public_key_bytes(crypto.generate_private_key())
    r = mpremote(car.link, "exec", f"from carkey.ecu import admin; admin.enroll('/state', "
                                   f"bytes.fromhex('{stranger.hex()}'), 1)")
    assert r.returncode != 0
    boots = car.boots
    listing = json.loads(carkey("keys", "list", "--port", car.link, "--keys", car.owner, "--json").stdout)
    assert [k["public_key"] for k in listing["keys"]] == [crypto.public_key_bytes(KeyDir(car.owner).private_key()).hex()]
    carkey("clock", "set", "--port", car.link, "--keys", car.owner)
    assert "admin-request" in carkey("log", "--port", car.link, "--keys", car.owner).stdout
    assert car.boots == boots  # answered by the running application, never restarted


def _maintenance_doc(owner_key, session, number=1, seconds=600):
    group = bytes.fromhex(session.identity["group_id"])
    return documents.make_admin(owner_key, group, "maintenance", seconds.to_bytes(2, "big"),
                                challenge=session.challenge, number=number)


def test_forged_or_replayed_maintenance_is_refused(car):
    usb = UsbCar(str(car.link))
    owner_key = KeyDir(car.owner).private_key()
    with ConsoleSession(usb) as s:
        assert s.submit(_maintenance_doc(crypto.generate_private_key(), s))["result"] == DOCUMENT_REFUSED
        stale = _maintenance_doc(owner_key, s)  # signed, never sent in its own session
    with ConsoleSession(usb) as s:
        assert s.submit(stale)["result"] == DOCUMENT_REFUSED  # another session's challenge
        assert s.submit(_maintenance_doc(owner_key, s, number=1, seconds=3601))["result"] == 0x0A
        # The number 1 is spent (even by the bad argument): the same request again is superseded.
        assert s.submit(_maintenance_doc(owner_key, s, number=1))["result"] == 0x0E
    r = mpremote(car.link, "exec", "print(6 * 7)")
    assert r.returncode != 0 and "42" not in r.stdout


def test_signed_maintenance_opens_the_repl_for_a_while(car):
    r = carkey("maintenance", "--port", car.link, "--keys", car.owner, "--minutes", "1")
    assert r.returncode == 0, r.stderr
    r = mpremote(car.link, "exec", "print(6 * 7)")
    assert r.returncode == 0 and "42" in r.stdout, r.stdout + r.stderr
    carkey("deploy", "--port", car.link, "--board", "virtual")  # ends with a soft reset: installed again
    assert wait_installed(car).returncode == 0
    r = mpremote(car.link, "exec", "print(6 * 7)")
    assert r.returncode != 0 and "42" not in r.stdout


def test_maintenance_window_ends_by_itself(car):
    usb = UsbCar(str(car.link))
    owner_key = KeyDir(car.owner).private_key()
    with ConsoleSession(usb) as s:
        assert s.submit(_maintenance_doc(owner_key, s, seconds=3))["maintenance_s"] == 3
    r = mpremote(car.link, "exec", "print(6 * 7)")
    assert r.returncode == 0 and "42" in r.stdout  # a soft reset inside the window keeps it
    time.sleep(4)
    assert wait_installed(car).returncode == 0  # the watchdog reset the board into its application
    r = mpremote(car.link, "exec", "print(6 * 7)")
    assert r.returncode != 0 and "42" not in r.stdout


def test_deploy_on_an_installed_car_names_maintenance(car):
    r = carkey("deploy", "--port", car.link, "--board", "virtual", check=False, timeout=120)
    assert r.returncode != 0 and "carkey maintenance" in r.stderr


def test_an_application_that_does_not_load_never_opens_the_repl(tmp_path):
    # main.py imports the application before the application's own guard runs: a module
    # that does not load (a WROOM's heap, a damaged file) left an installed car at the
    # REPL, where mpremote ran code. Now it says why and resets, again and again.
    import serial

    owner = tmp_path / "owner"
    carkey("phone", "init", "--keys", owner)
    flash, link = tmp_path / "flash", tmp_path / "ttyCARKEY"
    with VirtualBoard(flash, link):
        carkey("deploy", "--port", link, "--board", "virtual")
        carkey("provision", "--port", link, "--keys", owner)
    # A heap too small for the car application, as on an ESP32-WROOM-32: the import fails.
    with VirtualBoard(flash, link, heapsize="96k") as board:
        seen = b""
        with serial.Serial(str(link), 115200, timeout=0.2) as port:
            deadline = time.monotonic() + 20
            while board.boots < 3 and time.monotonic() < deadline:
                seen += port.read(4096)
        assert board.boots >= 3, seen  # reset after reset, never stopped at a prompt
        assert b"carkey: application failed to start (MemoryError)" in seen, seen
        assert b"too little heap for the car application" in seen
        r = mpremote(link, "exec", "print(6 * 7)")
        assert r.returncode != 0 and "42" not in r.stdout, r.stdout + r.stderr
