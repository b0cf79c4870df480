"""pytest wiring for carkey.

Firmware tests (tests/firmware/test_*.py) are not imported by CPython: each file
runs inside the MicroPython Unix port through tests/mpy/mpy_runner.py, and every
test method becomes its own pytest item with MicroPython's traceback on failure.
A module-level `MPY_HEAPSIZE = "64k"` runs that file with `micropython -X heapsize=64k`.
"""

import ast
import json
import subprocess
from pathlib import Path

import pytest

from carkey_host import paths
from carkey_host.build import BuildError, compile_file, compile_firmware
from carkey_host.mpy_bridge import MicroPython, micropython_env

TESTS_DIR = Path(__file__).resolve().parent
FIRMWARE_TESTS = TESTS_DIR / "firmware"
MPY_SUPPORT = TESTS_DIR / "mpy"
RUNNER = MPY_SUPPORT / "mpy_runner.py"
MODULE_TIMEOUT_S = 600


def mpy_command(heapsize=None):
    cmd = [paths.micropython_executable()]
    if heapsize:
        cmd += ["-X", f"heapsize={heapsize}"]
    return cmd


# Firmware, fakes and test modules run as boards run code: compiled to .mpy first,
# so a 64 KiB heap is not spent on compiling source (tracebacks keep file and line).
TEST_MPY = paths.BUILD_DIR / "test-mpy"
FIRMWARE_MPY = TEST_MPY / "firmware"
SUPPORT_MPY = TEST_MPY / "support"
TESTS_MPY = TEST_MPY / "tests"


def firmware_test_env():
    return micropython_env(
        extra_paths=[SUPPORT_MPY, MPY_SUPPORT, FIRMWARE_TESTS, paths.REPO_ROOT / "boards"], firmware_dir=FIRMWARE_MPY
    )


def pytest_sessionstart(session):
    compile_firmware(FIRMWARE_MPY)
    compile_firmware(SUPPORT_MPY, root=MPY_SUPPORT)


class MicroPythonTestFailure(Exception):
    def __init__(self, outcome, message, traceback):
        super().__init__(message)
        self.outcome = outcome
        self.message = message
        self.traceback = traceback


def _module_heapsize(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "MPY_HEAPSIZE" for t in node.targets
        ):
            return ast.literal_eval(node.value)
    return None


class MicroPythonFile(pytest.File):
    def collect(self):
        self.heapsize = _module_heapsize(self.path)
        try:
            compiled = compile_file(self.path, TESTS_MPY / (self.path.stem + ".mpy"), self.path.relative_to(paths.REPO_ROOT))
        except BuildError as e:
            raise self.CollectError(str(e)) from None
        # The runner imports by module name from this directory: it finds the .mpy.
        self.module_path = str(compiled.with_suffix(".py"))
        proc = subprocess.run(
            mpy_command(self.heapsize) + [str(RUNNER), "--list", self.module_path],
            capture_output=True,
            text=True,
            env=firmware_test_env(),
            cwd=paths.REPO_ROOT,
            timeout=MODULE_TIMEOUT_S,
        )
        if proc.returncode != 0:
            raise self.CollectError(
                f"MicroPython could not import {self.path.name}:\n{proc.stdout}{proc.stderr}"
            )
        self._results = None
        for test_id in proc.stdout.split():
            yield MicroPythonItem.from_parent(self, name=test_id.replace(".", "::"), test_id=test_id)

    def results(self, session):
        """Run every selected test of this file in one MicroPython process, once."""
        if self._results is None:
            selected = [item.test_id for item in session.items if item.parent is self]
            proc = subprocess.run(
                mpy_command(self.heapsize) + [str(RUNNER), "--json", self.module_path, *selected],
                capture_output=True,
                text=True,
                env=firmware_test_env(),
                cwd=paths.REPO_ROOT,
                timeout=MODULE_TIMEOUT_S,
            )
            self._results = {}
            for line in proc.stdout.splitlines():
                if line.startswith("{"):
                    record = json.loads(line)
                    self._results[record["id"]] = record
            self._tail = (proc.stdout[-3000:] + proc.stderr[-3000:]).strip()
            self._returncode = proc.returncode
        return self._results


class MicroPythonItem(pytest.Item):
    def __init__(self, *, test_id, **kwargs):
        super().__init__(**kwargs)
        self.test_id = test_id

    def runtest(self):
        results = self.parent.results(self.session)
        record = results.get(self.test_id)
        if record is None:
            raise MicroPythonTestFailure(
                "crash",
                f"MicroPython exited ({self.parent._returncode}) before reporting {self.test_id}",
                self.parent._tail,
            )
        if record["outcome"] == "skipped":
            raise pytest.skip.Exception(record["message"], _use_item_location=True)
        if record["outcome"] != "passed":
            raise MicroPythonTestFailure(record["outcome"], record["message"], record["traceback"])

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, MicroPythonTestFailure):
            e = excinfo.value
            heap = f" (heapsize={self.parent.heapsize})" if self.parent.heapsize else ""
            return f"MicroPython {e.outcome}{heap}: {e.message}\n{e.traceback}"
        return super().repr_failure(excinfo)

    def reportinfo(self):
        # A line number (0: the file) is required when pytest reports a skip at the item.
        return self.path, 0, f"{self.path.name}::{self.test_id} [micropython]"


def pytest_pycollect_makemodule(module_path, parent):
    if module_path.parent == FIRMWARE_TESTS and module_path.name.startswith("test_"):
        return MicroPythonFile.from_parent(parent, path=module_path)
    return None


@pytest.fixture(scope="session")
def mpy():
    """A MicroPython process (default heap) serving calls into the firmware package."""
    with MicroPython() as bridge:
        yield bridge


@pytest.fixture(scope="session")
def mpy_64k():
    """A MicroPython process with the 64 KiB heap of a small ESP32 build."""
    with MicroPython(heapsize="64k") as bridge:
        yield bridge
