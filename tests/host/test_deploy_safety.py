"""`carkey deploy` leaves no damage: a Ctrl-C mid-copy keeps the old firmware whole, a dry run
changes nothing, and the board's application runs again after every deploy.

The board is the virtual board (real mpremote transport, real serial REPL, real files); its
main.py is a stand-in application that counts its starts and writes a heartbeat, so a test
can see whether an application runs on the board.

Run: .venv/bin/pytest -q tests/host/test_deploy_safety.py
"""

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from carkey_host import deploy as lib
from carkey_host import paths
from carkey_host.vboard import VirtualBoard

APP = """\
import time
with open('/starts.txt', 'a') as f:
    f.write('s')
n = 0
while True:
    n += 1
    with open('/beat.txt', 'w') as f:
        f.write(str(n))
    time.sleep_ms(20)
"""


@pytest.fixture
def firmware(tmp_path):
    fw = tmp_path / "fw"
    shutil.copytree(paths.FIRMWARE_DIR, fw, ignore=shutil.ignore_patterns("__pycache__"))
    (fw / "main.py").write_text(APP)
    return fw


def starts(board):
    path = board.flash_dir / "starts.txt"
    return len(path.read_text()) if path.exists() else 0


def app_runs(board, within=10.0):
    """True once the heartbeat moves twice, i.e. main.py is running now."""
    beat = board.flash_dir / "beat.txt"
    seen = set()
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            seen.add(beat.read_text())
        except OSError:
            pass
        if len(seen) >= 3:
            return True
        time.sleep(0.02)
    return False


def change_every_module(fw):
    for py in (fw / "carkey").rglob("*.py"):
        py.write_text(py.read_text() + "\n_REDEPLOYED = 1\n")


@pytest.fixture
def deployed(tmp_path, firmware):
    """A board running the stand-in application after a first, complete deploy."""
    with VirtualBoard(tmp_path / "flash") as board:
        lib.deploy(board.port, "virtual", firmware_dir=firmware, build_dir=tmp_path / "build")
        assert app_runs(board)
        yield board


def snapshot(board):
    root = board.flash_dir / "lib"
    return {p.relative_to(board.flash_dir).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_ctrl_c_mid_copy_keeps_the_old_module_and_the_application_starts(deployed, firmware, tmp_path):
    before = snapshot(deployed)
    p256 = firmware / "carkey" / "crypto" / "p256.py"
    p256.write_text(p256.read_text() + "\n_REDEPLOYED = 1\n")
    count = starts(deployed)

    def ctrl_c_inside_p256(event, dest=None, done=0, size=0, **info):
        if event == "chunk" and dest == "/lib/carkey/crypto/p256.mpy" and done < size:
            raise KeyboardInterrupt

    with pytest.raises(lib.DeployInterrupted) as e:
        lib.deploy(deployed.port, "virtual", firmware_dir=firmware, build_dir=tmp_path / "build",
                   progress=ctrl_c_inside_p256)
    message = str(e.value)
    assert "while copying /lib/carkey/crypto/p256.mpy (0 of 1 files copied)" in message
    assert "the board keeps its previous firmware" in message
    assert "its application was started again" in message
    assert f"run `carkey deploy --port {deployed.port} --board virtual` again" in message
    assert e.value.exit_code == 130
    assert snapshot(deployed) == before  # the good module, whole; no staged copy left behind
    assert app_runs(deployed) and starts(deployed) == count + 1
    # The next deploy finishes the job.
    report = lib.deploy(deployed.port, "virtual", firmware_dir=firmware, build_dir=tmp_path / "build")
    assert {f.dest: f.action for f in report.copied} == {"/lib/carkey/crypto/p256.mpy": "updated"}


def test_sigint_to_the_cli_mid_copy_says_what_happened_and_leaves_no_truncated_module(deployed, firmware,
                                                                                       tmp_path):
    before = snapshot(deployed)
    change_every_module(firmware)
    lib.install_plan("virtual", firmware_dir=firmware, build_dir=paths.BUILD_DIR / "deploy")  # compiled up front
    count = starts(deployed)
    started = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "carkey_host.cli", "deploy", "--port", deployed.port,
                             "--board", "virtual"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, CARKEY_FIRMWARE=str(firmware)))
    lib_dir = deployed.flash_dir / "lib"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if any(p.stat().st_mtime > started for p in lib_dir.rglob("*") if p.is_file()):
            break  # the copy has begun
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert err.startswith("carkey: deploy interrupted (Ctrl-C) while copying /lib/carkey/"), err
    assert f"run `carkey deploy --port {deployed.port} --board virtual` again" in err
    assert snapshot(deployed) == before
    assert app_runs(deployed) and starts(deployed) == count + 1


def test_copies_an_interrupted_deploy_left_behind_are_removed_by_the_next(deployed, firmware, tmp_path):
    flash = deployed.flash_dir
    (flash / "board.py.tmp").write_bytes(b"BOARD = 'half")
    (flash / "lib/carkey/clock.mpy.tmp").write_bytes(b"M\x06")
    report = lib.deploy(deployed.port, "virtual", firmware_dir=firmware, build_dir=tmp_path / "build")
    assert report.copied == [] and report.removed == []  # nothing of the firmware's changed
    assert not (flash / "board.py.tmp").exists() and not (flash / "lib/carkey/clock.mpy.tmp").exists()


def test_dry_run_changes_nothing_and_the_application_runs_again(deployed, firmware, tmp_path):
    change_every_module(firmware)
    before = snapshot(deployed)
    count = starts(deployed)
    report = lib.deploy(deployed.port, "virtual", dry_run=True, firmware_dir=firmware, build_dir=tmp_path / "build")
    assert report.copied and report.bytes_copied == 0 and report.restarted
    assert snapshot(deployed) == before
    assert app_runs(deployed) and starts(deployed) == count + 1


def test_every_deploy_restarts_the_application_unless_asked_not_to(deployed, firmware, tmp_path):
    count = starts(deployed)
    report = lib.deploy(deployed.port, "virtual", firmware_dir=firmware, build_dir=tmp_path / "build")
    assert report.copied == [] and report.restarted
    assert app_runs(deployed) and starts(deployed) == count + 1
    report = lib.deploy(deployed.port, "virtual", restart=False, firmware_dir=firmware, build_dir=tmp_path / "build")
    assert not report.restarted
    assert not app_runs(deployed, within=1.0) and starts(deployed) == count + 1
