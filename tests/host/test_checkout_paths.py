"""Heap-bounded firmware tests pass wherever the checkout is: at a 4- and a 120-character path.

The harness once kept the checkout's absolute path on the MicroPython heap (sys.path,
module file names, fakes compiled from source), so 64 KiB tests passed or failed with the
length of that path. These run every firmware test file that sets MPY_HEAPSIZE from copies
of the tree at both lengths. `make test-paths` goes further: whole clones, whole `make test`.

Run: .venv/bin/pytest -q tests/host/test_checkout_paths.py
"""

import shutil
import tempfile
from pathlib import Path

import pytest
from checkout_copy import copy_checkout, outcome_counts, run_pytest
from conftest import FIRMWARE_TESTS, _module_heapsize

HEAP_BOUNDED = sorted(p.name for p in FIRMWARE_TESTS.glob("test_*.py") if _module_heapsize(p))


def _short_root():
    """A fresh directory whose absolute path is 4 characters long (/ckX), or a skip saying why not."""
    last_error = None
    for c in "0123456789abcdefghijklmnopqrstuvwxyz":
        root = Path("/ck" + c)
        try:
            root.mkdir()
        except FileExistsError:
            continue  # another run's, or something else's: never touch it
        except OSError as e:
            last_error = e
            break
        return root
    pytest.skip(f"cannot create a 4-character directory in / ({last_error or 'every /ckX is taken'})")


def _run_heap_bounded_at(root):
    assert HEAP_BOUNDED, "no firmware test file sets MPY_HEAPSIZE"
    copy_checkout(root, firmware_tests=HEAP_BOUNDED)
    proc = run_pytest(root, *(f"tests/firmware/{name}" for name in HEAP_BOUNDED))
    out = proc.stdout[-6000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, f"at {root} ({len(str(root))} characters):\n{out}"
    counts = outcome_counts(proc.stdout)
    assert set(counts) == {"passed"} and counts["passed"] > 100, out


def test_heap_bounded_firmware_tests_pass_at_a_4_character_path():
    root = _short_root()
    try:
        assert len(str(root)) == 4
        _run_heap_bounded_at(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_heap_bounded_firmware_tests_pass_at_a_120_character_path(tmp_path):
    base = tmp_path if len(str(tmp_path)) < 100 else Path(tempfile.mkdtemp(prefix="ck", dir="/tmp"))
    try:
        root = base / ("c" * (120 - len(str(base)) - 1))
        assert len(str(root)) == 120
        _run_heap_bounded_at(root)
    finally:
        if base != tmp_path:
            shutil.rmtree(base, ignore_errors=True)
