"""The MicroPython test harness itself: outcomes, tracebacks, heap size, the bridge.

A harness that could not report a failure would make every firmware test meaningless,
so these tests run a module with known outcomes and check each is reported as such.
"""

import json
import subprocess
from pathlib import Path

import pytest

from carkey_host import paths
from carkey_host.runner import Firmware, MicroPythonError
from conftest import mpy_command, run_firmware_module

DATA = Path(__file__).resolve().parent / "data"
SAMPLE = (DATA / "mpy_sample_tests.py").relative_to(paths.REPO_ROOT)


def run_sample(*extra, heapsize="64k", sample=SAMPLE):
    proc = run_firmware_module(heapsize, "--json", sample, *extra)
    return proc, {r["id"]: r for r in map(json.loads, proc.stdout.splitlines())}


def test_each_outcome_is_reported():
    proc, results = run_sample()
    outcomes = {k.split(".")[1]: v["outcome"] for k, v in results.items()}
    assert outcomes == {
        "test_passes": "passed",
        "test_fails": "failed",
        "test_errors": "error",
        "test_skips": "skipped",
        "test_raises_checked": "passed",
        "test_raises_missing": "failed",
    }
    assert proc.returncode == 1


def test_failure_shows_where_and_why():
    _, results = run_sample()
    failed = results["TestSample.test_fails"]
    assert failed["message"] == "b'\\x01' != b'\\x02'"
    assert f'File "{SAMPLE}", line 14, in test_fails' in failed["traceback"]
    assert "ValueError not raised" in results["TestSample.test_raises_missing"]["message"]
    assert "KeyError" in results["TestSample.test_errors"]["traceback"]


def test_selection_runs_only_named_tests():
    proc, results = run_sample("TestSample.test_passes")
    assert list(results) == ["TestSample.test_passes"]
    assert proc.returncode == 0


def test_runner_heap_holds_no_checkout_path():
    # What the runner keeps on the heap (sys.path, module __file__ names) must be the same
    # at any checkout path, and no harness module may be compiled from source on the heap
    # under test: heap-bounded tests once passed or failed with the checkout path's length.
    proc, results = run_sample(sample=(DATA / "mpy_where_loaded.py").relative_to(paths.REPO_ROOT))
    assert {k: (v["outcome"], v["message"]) for k, v in results.items()} == {
        "TestWhereLoaded.test_harness_modules_are_precompiled_and_relative": ("passed", ""),
        "TestWhereLoaded.test_search_path_is_relative": ("passed", ""),
    }, proc.stderr
    assert proc.returncode == 0


def test_heapsize_is_enforced():
    # 64 KiB cannot hold a 100 KB buffer; the default heap can.
    code = "b = bytearray(100000); print(len(b))"
    small = subprocess.run(mpy_command("64k") + ["-c", code], capture_output=True, text=True)
    assert "MemoryError" in small.stdout + small.stderr
    default = subprocess.run(mpy_command() + ["-c", code], capture_output=True, text=True)
    assert default.stdout.strip() == "100000"


def test_bridge_round_trips_values_and_errors():
    with Firmware(heapsize="64k") as mp:
        big = 2**255 + 19
        assert mp.call("carkey.crypto.kdf", "hmac_sha256", b"key", b"") == bytes.fromhex(
            "5d5d139563c95b5967b9bd9a8c9b233a9dedb45072794cd232dc1b74832607d0"
        )
        assert mp.call("carkey.crypto.ct", "equal", b"\x00" * 3, b"\x00" * 3) is True
        assert mp.call("carkey.crypto.ct", "equal", big.to_bytes(32, "big"), bytes(32)) is False
        with pytest.raises(MicroPythonError) as err:
            mp.call("carkey.crypto.kdf", "hkdf_expand", bytes(32), b"", 255 * 32 + 1)
        assert err.value.type == "ValueError"
        allocated, free = mp.heap()
        assert 0 < allocated and allocated + free <= 64 * 1024
