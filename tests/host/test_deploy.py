"""`carkey deploy` against the virtual board: real mpremote transport, real serial REPL, real files.

One 64 KiB-heap virtual board serves the tests that build on each other (first deploy,
nothing to copy, one changed module, a corrupted file, a stale module, the firmware
signing on the board); boards with a tiny flash or a failing flash are their own.
The errors (missing, busy and silent ports) go through the CLI for their exit codes.

Run: .venv/bin/pytest -q tests/host/test_deploy.py
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import tty
from pathlib import Path

import pytest
import serial
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

from carkey_host import deploy as lib
from carkey_host import paths
from carkey_host.cli import main as carkey_main
from carkey_host.serialport import NoAnswer, PortBusy, PortMissing
from carkey_host.vboard import VirtualBoard

MPREMOTE = str(Path(sys.executable).with_name("mpremote"))


@pytest.fixture(scope="module")
def firmware(tmp_path_factory):
    """A private copy of the firmware tree, so a test may change a module."""
    root = tmp_path_factory.mktemp("fw")
    shutil.copytree(paths.FIRMWARE_DIR, root / "firmware", ignore=shutil.ignore_patterns("__pycache__"))
    return root / "firmware"


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    return tmp_path_factory.mktemp("build")


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    with VirtualBoard(tmp_path_factory.mktemp("flash"), heapsize="64k") as b:
        yield b


@pytest.fixture(scope="module")
def first(board, firmware, build):
    return lib.deploy(board.port, "virtual", firmware_dir=firmware, build_dir=build)


def run_deploy(board, firmware, build, **kw):
    return lib.deploy(board.port, "virtual", firmware_dir=firmware, build_dir=build, **kw)


def changed(report):
    return {f.dest: f.action for f in report.files if f.action != "unchanged"}


# --- the plan ---------------------------------------------------------------------------


def test_plan_puts_modules_in_lib_and_the_board_description_at_the_root(firmware, build):
    plan = lib.install_plan("esp32_s3", firmware_dir=firmware, build_dir=build)
    dests = [i.dest for i in plan]
    # A car gets every module but the key fob's (tests/host/test_fob_board.py: the fob's list)
    # and the benchmark's.
    sources = [p for p in sorted((firmware / "carkey").rglob("*.py"))
               if "fob" not in p.relative_to(firmware).parts
               and p.relative_to(firmware / "carkey").with_suffix(".mpy").as_posix() not in lib.BENCH_ONLY]
    assert not any(d.endswith(("/bench.mpy", "/bench_reader.mpy")) for d in dests)  # benchmark only
    assert dests[: len(sources)] == ["/lib/carkey/" + p.relative_to(firmware / "carkey").with_suffix(".mpy").as_posix()
                                      for p in sources]
    board_item = plan[len(sources)]
    assert board_item.dest == "/board.py"
    assert board_item.data == (paths.REPO_ROOT / "boards" / "esp32_s3.py").read_bytes()
    assert all(i.data[:2] == b"M\x06" for i in plan[: len(sources)])


def test_plan_installs_boot_and_main_when_the_firmware_has_them(tmp_path, firmware, build):
    fw = tmp_path / "fw"
    shutil.copytree(firmware, fw)
    (fw / "main.py").write_text("import carkey\n")
    plan = lib.install_plan("virtual", firmware_dir=fw, build_dir=tmp_path / "b")
    dests = [i.dest for i in plan]
    expected = [d for d in ("/boot.py", "/main.py") if (fw / d[1:]).exists()]
    assert dests[dests.index("/board.py") + 1 :] == expected
    assert plan[-1].data == b"import carkey\n"


def test_unknown_board_is_refused_with_the_choices():
    with pytest.raises(lib.CarkeyError, match="unknown board 'esp8266'; choose from esp32_devkitc, esp32_s3, "
                                              "esp32_c3_fob, virtual"):
        lib.install_plan("esp8266")


# --- deploying ----------------------------------------------------------------------------


def test_first_deploy_installs_every_file_byte_for_byte(board, first, firmware, build):
    plan = lib.install_plan("virtual", firmware_dir=firmware, build_dir=build)
    assert [f.dest for f in first.copied] == [i.dest for i in plan]
    assert all(f.action == "new" for f in first.files)
    for item in plan:
        assert (board.flash_dir / item.dest.lstrip("/")).read_bytes() == item.data, item.dest
    assert first.bytes_copied == sum(i.size for i in plan)


def test_second_deploy_copies_nothing(board, first, firmware, build):
    report = run_deploy(board, firmware, build)
    assert changed(report) == {}
    assert report.bytes_copied == 0


def test_changing_one_module_copies_one_file(board, first, firmware, build):
    clock = firmware / "carkey" / "clock.py"
    clock.write_text(clock.read_text() + "\n_DEPLOY_TEST = 1\n")
    report = run_deploy(board, firmware, build)
    assert changed(report) == {"/lib/carkey/clock.mpy": "updated"}
    assert (board.flash_dir / "lib/carkey/clock.mpy").read_bytes() == (build / "firmware" / "carkey" / "clock.mpy").read_bytes()


def test_corrupted_file_on_the_board_is_detected_and_replaced(board, first, firmware, build):
    target = board.flash_dir / "lib/carkey/crypto/aes.mpy"
    good = target.read_bytes()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0x01
    target.write_bytes(bytes(bad))
    report = run_deploy(board, firmware, build)
    assert changed(report) == {"/lib/carkey/crypto/aes.mpy": "replaced"}
    assert target.read_bytes() == good


def test_dry_run_reports_and_changes_nothing(board, first, firmware, build):
    target = board.flash_dir / "board.py"
    good = target.read_bytes()
    target.write_bytes(b"BOARD = 'tampered'\n")
    try:
        report = run_deploy(board, firmware, build, dry_run=True)
        assert changed(report) == {"/board.py": "updated"}
        assert report.bytes_copied == 0
        assert target.read_bytes() == b"BOARD = 'tampered'\n"
    finally:
        target.write_bytes(good)


def test_stale_module_under_lib_carkey_is_removed(board, first, firmware, build):
    stale = board.flash_dir / "lib/carkey/old_module.py"
    stale.write_text("SHADOW = 1\n")
    report = run_deploy(board, firmware, build)
    assert changed(report) == {"/lib/carkey/old_module.py": "removed"}
    assert not stale.exists()


def test_deployed_firmware_signs_on_the_board(board, first):
    key = ec.generate_private_key(ec.SECP256R1())
    priv = key.private_numbers().private_value.to_bytes(32, "big")
    digest = hashlib.sha256(b"deployed").digest()
    code = ("import gc\nfrom carkey.crypto import p256\nimport binascii\n"
            f"s = p256.sign({priv!r}, {digest!r})\nprint(binascii.hexlify(s).decode())\n"
            "gc.collect()\nprint(gc.mem_free() + gc.mem_alloc())")
    proc = subprocess.run([MPREMOTE, "connect", board.port, "exec", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sig_hex, heap = proc.stdout.split()
    assert int(heap) <= 64 * 1024  # the board really has the small heap
    sig = bytes.fromhex(sig_hex)
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    key.public_key().verify(der, digest, ec.ECDSA(Prehashed(hashes.SHA256())))


def test_reset_after_deploy_starts_the_new_main_py(tmp_path, firmware, build):
    fw = tmp_path / "fw"
    shutil.copytree(firmware, fw)
    (fw / "main.py").write_text("open('/started.txt', 'w').write('main ran')\n")
    with VirtualBoard(tmp_path / "flash") as b:
        boots = b.boots
        report = lib.deploy(b.port, "virtual", firmware_dir=fw, build_dir=tmp_path / "build")
        assert changed(report)["/main.py"] == "new"
        marker = b.flash_dir / "started.txt"
        deadline = time.monotonic() + 10
        # main.py runs in the board's own process: nothing to await from here. The file
        # exists from its open() on and holds the text only once the write is done.
        while (not marker.exists() or marker.read_text() != "main ran") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert marker.read_text() == "main ran"
        assert b.boots == boots + 2  # the deploy's soft reset into the raw REPL, then this one


def test_cli_json_reports_the_deploy(board, first, capsys):
    assert carkey_main(["deploy", "--port", board.port, "--board", "virtual", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["port"] == board.port and report["board"] == "virtual" and report["dry_run"] is False
    assert report["copied"] + report["unchanged"] == len(report["files"]) - report["removed"]
    assert report["free_bytes"] > 0


def test_cli_help_lists_boards_and_exit_codes(capsys):
    with pytest.raises(SystemExit) as e:
        carkey_main(["deploy", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "boards: esp32_devkitc, esp32_s3, esp32_c3_fob, virtual" in text
    assert "4 port missing, 5 port busy" in text


def test_cli_rejects_an_unknown_board(capsys):
    with pytest.raises(SystemExit) as e:
        carkey_main(["deploy", "--port", "/dev/null", "--board", "esp8266"])
    assert e.value.code == 2
    assert "invalid choice: 'esp8266'" in capsys.readouterr().err


# --- errors, with their exit codes ---------------------------------------------------------------


def test_missing_port_exits_4(tmp_path, capsys):
    port = str(tmp_path / "ttyUSB9")
    assert carkey_main(["deploy", "--port", port, "--board", "virtual"]) == 4
    assert capsys.readouterr().err.startswith(f"carkey: serial port {port} does not exist")
    with pytest.raises(PortMissing):
        lib.deploy(port, "virtual")


def test_busy_port_exits_5(board, capsys):
    holder = serial.Serial(board.port, exclusive=True)
    try:
        assert carkey_main(["deploy", "--port", board.port, "--board", "virtual"]) == 5
        assert f"carkey: serial port {board.port} is busy" in capsys.readouterr().err
        with pytest.raises(PortBusy):
            lib.deploy(board.port, "virtual")
    finally:
        holder.close()


def test_silent_port_exits_6_within_the_timeout(capsys):
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        started = time.monotonic()
        code = carkey_main(["deploy", "--port", os.ttyname(slave), "--board", "virtual", "--timeout", "1"])
        assert code == 6
        assert time.monotonic() - started < 10
        assert "no MicroPython REPL answered" in capsys.readouterr().err
    finally:
        os.close(master)
        os.close(slave)


def test_not_enough_space_exits_7_and_copies_nothing(tmp_path, firmware, build, capsys):
    with VirtualBoard(tmp_path / "flash", flash_bytes=48 * 1024) as small:
        with pytest.raises(lib.NotEnoughSpace, match="not enough space on the board: the firmware needs"):
            lib.deploy(small.port, "virtual", firmware_dir=firmware, build_dir=build)
        assert carkey_main(["deploy", "--port", small.port, "--board", "virtual"]) == 7
        assert os.listdir(small.flash_dir) == []


def test_flash_that_corrupts_writes_is_a_hash_mismatch_exit_8(tmp_path, firmware, build, capsys):
    flash = tmp_path / "flash"
    flash.mkdir()
    # A failing flash, simulated on the board: every file written comes back with its first byte
    # changed, and writes to /boot.py (which holds this simulation) are lost.
    (flash / "boot.py").write_text(
        "import builtins\n_open = builtins.open\n"
        "class _Bad:\n"
        "    def __init__(self, f):\n        self.f = f\n        self.first = True\n"
        "    def write(self, b):\n"
        "        if self.first and b:\n            b = b'X' + bytes(b)[1:]\n            self.first = False\n"
        "        return self.f.write(b) if self.f else len(b)\n"
        "    def close(self):\n        self.f and self.f.close()\n"
        "def _o(p, m='r', *a):\n"
        "    if 'w' not in m:\n        return _open(p, m, *a)\n"
        "    return _Bad(None if p.endswith('boot.py') else _open(p, m, *a))\n"
        "builtins.open = _o\n"
    )
    with VirtualBoard(flash) as failing:
        with pytest.raises(lib.HashMismatch, match=r"file\(s\) differ on the board after copying"):
            lib.deploy(failing.port, "virtual", firmware_dir=firmware, build_dir=build)
        assert carkey_main(["deploy", "--port", failing.port, "--board", "virtual"]) == 8


def test_a_lock_that_comes_back_for_a_moment_after_the_check_is_waited_for(monkeypatch):
    # The virtual board forks at a soft reset, and the child holds the port's lock until
    # it execs: the port can be free when checked and locked a moment later.
    import threading

    master, slave = os.openpty()
    tty.setraw(slave)
    port = os.ttyname(slave)
    holder = []
    released = threading.Event()

    def check_then_locked(p):
        holder.append(serial.Serial(p, exclusive=True))

        def release():
            time.sleep(0.3)
            holder[0].close()
            released.set()

        threading.Thread(target=release, daemon=True).start()

    monkeypatch.setattr(lib, "check_port", check_then_locked)
    try:
        with pytest.raises(NoAnswer) as e:
            lib.Board(port, timeout=1)
        assert released.is_set()
        assert "no MicroPython REPL answered" in str(e.value)  # opened, then nothing answered
    finally:
        if holder:
            holder[0].close()
        os.close(master)
        os.close(slave)


class _LockFlicker:
    """serial.Serial as the port's lock behaves while a forked process holds it for a
    moment: the exclusive opens numbered in `locked` find a real holder on the port."""

    def __init__(self, port, locked):
        self.real, self.port, self.locked, self.opens = serial.Serial, port, set(locked), 0

    def __call__(self, *args, **kwargs):
        if not kwargs.get("exclusive"):
            return self.real(*args, **kwargs)
        self.opens += 1
        if self.opens not in self.locked:
            return self.real(*args, **kwargs)
        holder = self.real(self.port, exclusive=True)
        try:
            return self.real(*args, **kwargs)
        finally:
            holder.close()


@pytest.mark.parametrize("locked", [{2}, {1, 2, 3}], ids=["locked-after-a-free-moment", "locked-at-first"])
def test_the_console_session_opens_a_port_whose_lock_flickers(monkeypatch, locked):
    # Provisioning right after a deploy met this: free when checked, locked when opened.
    from carkey_host.usb_car import ConsoleSession, UsbCar

    master, slave = os.openpty()
    tty.setraw(slave)
    port = os.ttyname(slave)
    flicker = _LockFlicker(port, locked)
    monkeypatch.setattr(serial, "Serial", flicker)
    monkeypatch.setattr(ConsoleSession, "ANSWER_S", 0.3)
    try:
        with pytest.raises(Exception) as e:
            ConsoleSession(UsbCar(port)).open()
        assert flicker.opens not in locked  # the open that stood found the port free
        assert not isinstance(e.value, PortBusy), e.value
        assert "cannot open" not in str(e.value), e.value  # opened; then nothing answered
    finally:
        os.close(master)
        os.close(slave)


def test_a_port_held_for_longer_than_the_grace_is_busy():
    from carkey_host.serialport import open_exclusive

    master, slave = os.openpty()
    port = os.ttyname(slave)
    holder = serial.Serial(port, exclusive=True)
    try:
        started = time.monotonic()
        with pytest.raises(PortBusy, match="is busy"):
            open_exclusive(port)
        assert time.monotonic() - started >= lib.BUSY_GRACE_S
    finally:
        holder.close()
        os.close(master)
        os.close(slave)
