"""`carkey flash`: image checks, the exact esptool calls per chip, and real esptool up to the serial boundary.

No ESP32 is needed: the esptool call lists are checked as data and through flash()
with a recording stand-in for esptool.cmds; then the real esptool runs against a pty
that stays silent or answers garbage, and must end in carkey's "no ESP32 bootloader
answered" error (exit 6) within a bounded time.

Run: .venv/bin/pytest -q tests/host/test_flash.py
"""

import os
import struct
import threading
import time
import tty

import pytest
import serial

from carkey_host import flash as lib
from carkey_host.cli import main as carkey_main
from carkey_host.errors import CarkeyError
from carkey_host.serialport import NoAnswer

CHIP_ID = {"esp32": 0, "esp32s3": 9, "esp32c3": 5, "esp32s2": 2}


def make_image(path, chip="esp32", size=8192, app=False):
    """An ESP image header (magic, segments, flash mode/size, entry, extended header with chip id)."""
    head = bytes([0xE9, 3, 2, 0x20]) + struct.pack("<I", 0x40080000)
    head += bytes([0xEE, 0, 0, 0]) + struct.pack("<H", CHIP_ID[chip]) + bytes(10)
    body = bytearray(size - len(head))
    if app:
        body[0x20 - len(head) : 0x24 - len(head)] = struct.pack("<I", 0xABCD5432)
    path.write_bytes(head + bytes(body))
    return path


@pytest.fixture
def pty_port():
    master, slave = os.openpty()
    tty.setraw(slave)
    yield master, os.ttyname(slave)
    os.close(master)
    os.close(slave)


class FakeEsp:
    def __init__(self, name):
        self.CHIP_NAME = name
        self._port = self

    def close(self):
        self.closed = True


class RecordingApi:
    """Stands in for esptool.cmds at the API boundary: records each call, answers like the ROM would."""

    def __init__(self, chip_name="ESP32"):
        self.calls = []
        self.esp = FakeEsp(chip_name)
        self.stub = FakeEsp(chip_name)

    def __getattr__(self, name):
        def call(*args, **kwargs):
            shown = tuple("ESP" if a is self.esp else "STUB" if a is self.stub else a for a in args)
            self.calls.append((name, shown, kwargs))
            if name == "connect_esp":
                return self.esp
            if name == "run_stub":
                return self.stub
            return None

        return call


# --- image checks ------------------------------------------------------------------------


def test_missing_image_is_refused(tmp_path):
    with pytest.raises(lib.FirmwareFileError, match="does not exist"):
        lib.check_image(tmp_path / "nope.bin")


def test_empty_image_is_refused(tmp_path):
    (tmp_path / "e.bin").write_bytes(b"")
    with pytest.raises(lib.FirmwareFileError, match="is empty"):
        lib.check_image(tmp_path / "e.bin")


def test_image_larger_than_any_flash_is_refused(tmp_path):
    big = make_image(tmp_path / "big.bin")
    with open(big, "r+b") as f:
        f.truncate(17 * 1024 * 1024)
    with pytest.raises(lib.FirmwareFileError, match="more than any ESP32 flash"):
        lib.check_image(big)


def test_file_without_the_esp_magic_is_refused(tmp_path):
    (tmp_path / "x.bin").write_bytes(b"\x7fELF" + bytes(100))
    with pytest.raises(lib.FirmwareFileError, match=r"first byte 0x7f, expected 0xe9"):
        lib.check_image(tmp_path / "x.bin")


def test_application_only_image_is_refused(tmp_path):
    with pytest.raises(lib.FirmwareFileError, match="application image .* use the full firmware .bin"):
        lib.check_image(make_image(tmp_path / "app.bin", app=True))


def test_image_for_another_chip_than_named_is_refused(tmp_path):
    with pytest.raises(lib.FirmwareFileError, match="is built for esp32s3, not esp32c3"):
        lib.check_image(make_image(tmp_path / "s3.bin", "esp32s3"), chip="esp32c3")


def test_image_for_an_unsupported_chip_is_refused(tmp_path):
    with pytest.raises(lib.FirmwareFileError, match="chip carkey does not support"):
        lib.check_image(make_image(tmp_path / "s2.bin", "esp32s2"))


def test_image_check_reads_the_chip_and_size(tmp_path):
    image = lib.check_image(make_image(tmp_path / "c3.bin", "esp32c3", size=4096))
    assert (image.size, image.chip) == (4096, "esp32c3")


# --- the esptool calls, as data --------------------------------------------------------------


@pytest.mark.parametrize("chip", ["auto", "esp32", "esp32s3", "esp32c3"])
def test_connect_call_resets_into_the_bootloader_at_rom_baud(chip):
    call = lib.connect_call("/dev/ttyUSB0", chip, attempts=3)
    assert call == lib.Call("connect_esp", (), {"port": "/dev/ttyUSB0", "chip": chip, "initial_baud": 115200,
                                                "before": "default-reset", "connect_attempts": 3},
                            uses_esp=False)


def test_connect_call_refuses_an_unknown_chip():
    with pytest.raises(CarkeyError, match="unknown chip 'esp8266'; choose from auto, esp32, esp32s3, esp32c3"):
        lib.connect_call("/dev/ttyUSB0", "esp8266")


@pytest.mark.parametrize("chip, offset", [("esp32", 0x1000), ("esp32s3", 0x0), ("esp32c3", 0x0)])
def test_flash_calls_write_at_the_chip_offset(tmp_path, chip, offset):
    image = lib.check_image(make_image(tmp_path / "fw.bin", chip))
    calls = lib.flash_calls(image, chip, baud=921600, erase=True)
    assert [(c.function, c.args, c.kwargs) for c in calls] == [
        ("run_stub", (), {}),
        ("change_baud", (921600,), {}),
        ("attach_flash", (), {}),
        ("erase_flash", (), {}),
        ("write_flash", ([(offset, str(image.path))],), {"flash_size": "keep"}),
        ("reset_chip", ("hard-reset",), {}),
    ]


def test_flash_calls_keep_the_rom_baud_and_skip_the_erase(tmp_path):
    image = lib.check_image(make_image(tmp_path / "fw.bin"))
    assert [c.function for c in lib.flash_calls(image, "esp32", baud=115200, erase=False)] == [
        "run_stub", "attach_flash", "write_flash", "reset_chip"]


def test_flash_runs_the_calls_in_order_on_the_stub(tmp_path, pty_port):
    _, port = pty_port
    fw = make_image(tmp_path / "fw.bin", "esp32s3")
    api = RecordingApi("ESP32-S3")
    steps = []
    result = lib.flash(port, fw, erase=True, baud=460800, api=api, progress=steps.append)
    assert api.calls == [
        ("connect_esp", (), {"port": port, "chip": "auto", "initial_baud": 115200, "before": "default-reset",
                             "connect_attempts": 4}),
        ("run_stub", ("ESP",), {}),
        ("change_baud", ("STUB", 460800), {}),
        ("attach_flash", ("STUB",), {}),
        ("erase_flash", ("STUB",), {}),
        ("write_flash", ("STUB", [(0, str(fw))]), {"flash_size": "keep"}),
        ("reset_chip", ("STUB", "hard-reset"), {}),
    ]
    assert steps == ["connect_esp", "run_stub", "change_baud", "attach_flash", "erase_flash", "write_flash",
                     "reset_chip"]
    assert result.as_dict() | {"seconds": 0} == {"port": port, "chip": "esp32s3", "offset": 0, "size": 8192,
                                                  "erased": True, "seconds": 0}


def test_detected_chip_must_match_the_image(tmp_path, pty_port):
    _, port = pty_port
    api = RecordingApi("ESP32-C3")
    with pytest.raises(lib.FirmwareFileError, match="is built for esp32, but the board is an esp32c3"):
        lib.flash(port, make_image(tmp_path / "fw.bin", "esp32"), api=api)
    assert [c[0] for c in api.calls] == ["connect_esp"]  # nothing written


def test_detected_chip_must_match_the_chip_named(tmp_path, pty_port):
    _, port = pty_port
    api = RecordingApi("ESP32")
    with pytest.raises(CarkeyError, match="--chip esp32s3 but the board on .* is an esp32"):
        lib.flash(port, make_image(tmp_path / "fw.bin", "esp32s3"), chip="esp32s3", api=api)


def test_unsupported_detected_chip_is_refused(tmp_path, pty_port):
    _, port = pty_port
    with pytest.raises(CarkeyError, match="found an ESP32-S2: carkey boards use esp32, esp32s3, esp32c3"):
        lib.flash(port, make_image(tmp_path / "fw.bin"), api=RecordingApi("ESP32-S2"))


# --- real esptool at the serial boundary ---------------------------------------------------------


@pytest.mark.parametrize("chip", ["auto", "esp32"])
def test_silent_port_is_no_bootloader_within_bounded_time(tmp_path, pty_port, chip):
    _, port = pty_port
    started = time.monotonic()
    with pytest.raises(NoAnswer, match=rf"no ESP32 bootloader answered on {port} \(hold BOOT") as e:
        lib.flash(port, make_image(tmp_path / "fw.bin"), chip=chip, attempts=2)
    assert time.monotonic() - started < 15
    assert e.value.exit_code == 6


def test_garbage_answers_are_no_bootloader(tmp_path, pty_port):
    master, port = pty_port
    stop = threading.Event()

    def chatter():
        # A board running some program: it prints text whatever it is sent.
        while not stop.is_set():
            try:
                os.write(master, b"Hello from main.py\r\n")
            except OSError:
                return
            stop.wait(0.01)

    t = threading.Thread(target=chatter, daemon=True)
    t.start()
    try:
        started = time.monotonic()
        with pytest.raises(NoAnswer, match="no ESP32 bootloader answered"):
            lib.flash(port, make_image(tmp_path / "fw.bin"), attempts=2)
        assert time.monotonic() - started < 15
    finally:
        stop.set()
        t.join()


def test_cli_silent_port_exits_6(tmp_path, pty_port, capsys):
    _, port = pty_port
    fw = make_image(tmp_path / "fw.bin")
    assert carkey_main(["flash", "--port", port, "--firmware", str(fw), "--connect-attempts", "1"]) == 6
    err = capsys.readouterr().err
    assert err.startswith(f"carkey: no ESP32 bootloader answered on {port}")


def test_cli_missing_port_exits_4(tmp_path, capsys):
    fw = make_image(tmp_path / "fw.bin")
    assert carkey_main(["flash", "--port", str(tmp_path / "ttyUSB7"), "--firmware", str(fw)]) == 4
    assert "does not exist" in capsys.readouterr().err


def test_cli_busy_port_exits_5(tmp_path, pty_port, capsys):
    _, port = pty_port
    holder = serial.Serial(port, exclusive=True)
    try:
        assert carkey_main(["flash", "--port", port, "--firmware", str(make_image(tmp_path / "fw.bin"))]) == 5
    finally:
        holder.close()
    assert "is busy" in capsys.readouterr().err


def test_cli_bad_image_exits_2_before_touching_the_port(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not firmware")
    assert carkey_main(["flash", "--port", str(tmp_path / "nope"), "--firmware", str(tmp_path / "notes.txt")]) == 2
    assert "is not an ESP32 firmware image" in capsys.readouterr().err


def test_cli_rejects_an_unknown_chip_and_baud(tmp_path, capsys):
    for extra in (["--chip", "esp8266"], ["--baud", "12345"]):
        with pytest.raises(SystemExit) as e:
            carkey_main(["flash", "--port", "/dev/null", "--firmware", "x.bin", *extra])
        assert e.value.code == 2
    assert "invalid choice: 'esp8266'" in capsys.readouterr().err


def test_cli_help_teaches_offsets_and_recovery(capsys):
    with pytest.raises(SystemExit):
        carkey_main(["flash", "--help"])
    text = capsys.readouterr().out
    assert "0x1000 on\nan ESP32 and at 0x0 on an S3 or C3" in text
    assert "hold BOOT, tap EN/RST" in text
