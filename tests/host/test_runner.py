"""carkey_host.runner: the one way the host runs firmware, and its one wire protocol.

Run: .venv/bin/pytest -q tests/host/test_runner.py
"""

import hashlib
import hmac
import os
import subprocess

import pytest

from carkey_host import paths, runner

PROBE_PATH = runner.paths.REPO_ROOT / "tests" / "mpy"


@pytest.fixture
def probe():
    with runner.Firmware("runner_probe", env=runner.environment(extra_paths=[PROBE_PATH])) as firmware:
        yield firmware


def test_events_stream_before_the_reply_and_prints_are_skipped(probe):
    events = []
    assert probe.request("count", on_event=events.append, n=3, data=b"\x00\xff") == {"counted": 3,
                                                                                        "echo": b"\x00\xff"}
    assert events == [{"n": 0, "raw": b"\x00"}, {"n": 1, "raw": b"\x01"}, {"n": 2, "raw": b"\x02"}]
    assert probe.heap()[1] > 0  # the same process answers the next request


def test_send_and_receive_in_steps(probe):
    probe.send("count", n=2, data="x")
    assert [probe.receive(30) for _ in range(3)] == [{"event": {"n": 0, "raw": b"\x00"}},
                                                     {"event": {"n": 1, "raw": b"\x01"}},
                                                     {"ok": {"counted": 2, "echo": "x"}}]


@pytest.mark.parametrize("op, expected, refused", [("refuse", True, True), ("bad", True, False),
                                                   ("fault", False, False)])
def test_errors_say_whose_they_are(probe, op, expected, refused):
    with pytest.raises(runner.MicroPythonError) as e:
        probe.request(op)
    assert (e.value.expected, e.value.refused) == (expected, refused)
    # The handler's own errors carry no traceback; a fault carries MicroPython's.
    assert ("Traceback" in e.value.traceback) == (not expected)
    assert probe.request("count", n=0, data=None) == {"counted": 0, "echo": None}  # still serving


def test_a_process_that_dies_is_a_runner_error_with_its_stderr(probe):
    with pytest.raises(runner.RunnerError, match="exited with 7: dying on purpose"):
        probe.request("die")


@pytest.mark.parametrize("op, error, message", [
    ("refuse", "Refused", "no, you may not"),
    ("bad", "CarkeyError", "that is not hex"),
    ("fault", "CarkeyError", "IndexError: "),
    ("die", "CarkeyError", "the probe crashed: dying on purpose"),
])
def test_serve_one_ends_the_server_and_says_what_failed_in_the_users_terms(op, error, message):
    # The virtual car's and fob's commands: one request, then the process is gone.
    from carkey_host.errors import CarkeyError

    firmware = runner.Firmware("runner_probe", env=runner.environment(extra_paths=[PROBE_PATH]))
    with pytest.raises(CarkeyError) as e:
        firmware.serve_one("the probe", 30, op=op)
    assert type(e.value).__name__ == error
    assert message in str(e.value)
    assert firmware.proc.poll() is not None


def test_serve_one_returns_the_answer_and_its_events():
    firmware = runner.Firmware("runner_probe", env=runner.environment(extra_paths=[PROBE_PATH]))
    events = []
    assert firmware.serve_one("the probe", 30, on_event=events.append, op="count", n=1, data="x") == {
        "counted": 1, "echo": "x"}
    assert events == [{"n": 0, "raw": b"\x00"}]
    assert firmware.proc.poll() is not None


def test_calls_into_the_firmware_package_need_no_handler():
    with runner.Firmware(heapsize="64k") as firmware:
        got = firmware.call("carkey.crypto.kdf", "hmac_sha256", b"key", b"\x00message")
        assert got == hmac.new(b"key", b"\x00message", hashlib.sha256).digest()
        assert firmware.heap()[0] + firmware.heap()[1] <= 64 * 1024


def test_launch_and_run_put_the_chosen_tree_on_the_path(tmp_path):
    (tmp_path / "where.py").write_text("import sys\nprint(sys.path[1:])\n")
    out = runner.run("-m", "where", env=runner.environment(None, extra_paths=[tmp_path]), timeout=30)
    assert out.stdout.strip() == repr([".frozen", str(tmp_path)])
    proc = runner.launch("-c", "import sys; print(sys.implementation.name)", heapsize="32k",
                         env=runner.environment(), stdout=subprocess.PIPE, text=True)
    assert proc.communicate(timeout=30)[0].strip() == "micropython"


def test_a_missing_interpreter_is_a_runner_error(monkeypatch, tmp_path):
    monkeypatch.setenv("CARKEY_MICROPYTHON", str(tmp_path / "nope"))
    with pytest.raises(runner.RunnerError, match="CARKEY_MICROPYTHON"):
        runner.run("-c", "pass")


def test_an_interrupted_request_stops_the_firmware_with_its_caller(tmp_path):
    # Ctrl-C while the virtual fob serves: the host returns at once and the fob process
    # is gone, rather than waiting out the fob's timeout for an exit it never makes.
    import os
    import signal
    import threading
    import time

    from carkey_host.vfob import VirtualFob

    fob = VirtualFob(tmp_path / "fob", timeout_s=60)
    fob.init()
    threading.Timer(2, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        fob.serve("127.0.0.1", 0, "lp")
    assert time.monotonic() - start < 20
    assert fob.process.poll() is not None


def test_the_server_keeps_little_of_the_heap_it_measures():
    # Heap budgets of firmware run through the server include the server itself: it must
    # stay small (measured 3.3 KiB on this 64-bit port: serve.mpy's module and one request).
    bare = runner.run("-c", "import gc; gc.collect(); print(gc.mem_alloc())", timeout=30)
    with runner.Firmware(heapsize="64k") as firmware:
        served = firmware.heap()[0]
    assert served - int(bare.stdout) <= 4 * 1024, (served, bare.stdout)


def test_folders_below_the_working_folder_are_named_relative_to_it():
    # Every module's __file__ stays in the heap: a tight-heap run from the repository
    # must not depend on how long the checkout's path is.
    env = runner.environment("compiled", virtual_board=True, relative_to=paths.REPO_ROOT)
    folders = env["MICROPYPATH"].split(os.pathsep)
    assert folders[:2] == [".frozen", "build/mpy"] and "boards" in folders
    assert str(paths.REPO_ROOT) not in env["MICROPYPATH"]
    outside = runner.environment("/opt/elsewhere", relative_to=paths.REPO_ROOT)["MICROPYPATH"]
    assert outside.split(os.pathsep)[1] == "/opt/elsewhere"
