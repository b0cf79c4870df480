"""pytest wiring for carkey.

Firmware tests (tests/firmware/test_*.py) are not imported by CPython: each file
runs inside the MicroPython Unix port through tests/mpy/mpy_runner.py, and every
test method becomes its own pytest item with MicroPython's traceback on failure.
A module-level `MPY_HEAPSIZE = "64k"` runs that file with `micropython -X heapsize=64k`.

What the harness puts on that heap must not depend on where the checkout is: the
runner starts as `micropython -m mpy_runner` from the repository root with a
MICROPYPATH of relative folders, so every path string (sys.path, module __file__,
argv) is the same at any checkout path, and every module (runner, fakes, firmware,
the test file) loads precompiled instead of being compiled on the heap under test.
"""

import ast
import json
import os
import subprocess
from pathlib import Path

import pytest

from carkey_host import paths
from carkey_host.build import BuildError, compile_file, compile_firmware
from carkey_host import runner

TESTS_DIR = Path(__file__).resolve().parent
FIRMWARE_TESTS = TESTS_DIR / "firmware"
MPY_SUPPORT = TESTS_DIR / "mpy"
MODULE_TIMEOUT_S = 600


def mpy_command(heapsize=None):
    return runner.command(heapsize=heapsize)


# Firmware, fakes and test modules run as boards run code: compiled to .mpy first,
# so a 64 KiB heap is not spent on compiling source. The firmware is compiled as it is
# deployed (-O3: tracebacks name file and function, and the
# line of its def); fakes and test
# modules at -O0 (their asserts stay, tracebacks keep the line).
TEST_MPY = paths.BUILD_DIR / "test-mpy"
FIRMWARE_MPY = TEST_MPY / "firmware"
SUPPORT_MPY = TEST_MPY / "support"
TESTS_MPY = TEST_MPY / "tests"


def _repo_relative(path):
    return Path(path).relative_to(paths.REPO_ROOT).as_posix()


def firmware_test_env():
    env = runner.environment()
    env["MICROPYPATH"] = os.pathsep.join(
        [".frozen"]
        + [_repo_relative(p) for p in (FIRMWARE_MPY, SUPPORT_MPY, MPY_SUPPORT, FIRMWARE_TESTS, paths.REPO_ROOT / "boards")]
    )
    return env


def runner_command(heapsize, mode, module_path, *test_ids):
    """argv running tests/mpy/mpy_runner.py in `mode` ("--list" or "--json"); run it with
    cwd=REPO_ROOT and env=firmware_test_env(). `module_path` is best repository-relative."""
    return mpy_command(heapsize) + ["-m", "mpy_runner", mode, str(module_path), *test_ids]


def run_firmware_module(heapsize, mode, module_path, *test_ids):
    return subprocess.run(
        runner_command(heapsize, mode, module_path, *test_ids),
        capture_output=True,
        text=True,
        env=firmware_test_env(),
        cwd=paths.REPO_ROOT,
        timeout=MODULE_TIMEOUT_S,
    )


def pytest_sessionstart(session):
    compile_firmware(FIRMWARE_MPY)
    compile_firmware(SUPPORT_MPY, root=MPY_SUPPORT, opt=0)  # the fakes' asserts must stay


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


def _test_lines(path):
    """{"Class.method": 0-based line of its def} for the test methods of a file (best effort)."""
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except SyntaxError:
        return {}
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}

    def methods(cls, seen=()):
        # Own defs win over ones inherited from a base class of the same file.
        found = {}
        for base in reversed(cls.bases):
            if isinstance(base, ast.Name) and base.id in classes and base.id not in seen:
                found.update(methods(classes[base.id], seen + (cls.name,)))
        for item in cls.body:
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found[item.name] = item.lineno - 1
        return found

    return {f"{name}.{meth}": line for name, cls in classes.items() for meth, line in methods(cls).items()}


# The runner's --list output starts with this when the module raised unittest.SkipTest at import.
SKIP_PREFIX = "#skip "


class MicroPythonFile(pytest.File):
    def collect(self):
        self.heapsize = _module_heapsize(self.path)
        try:
            compiled = compile_file(self.path, TESTS_MPY / (self.path.stem + ".mpy"), self.path.relative_to(paths.REPO_ROOT))
        except BuildError as e:
            raise self.CollectError(str(e)) from None
        # The runner imports by module name from this directory: it finds the .mpy.
        self.module_path = _repo_relative(compiled.with_suffix(".py"))
        proc = run_firmware_module(self.heapsize, "--list", self.module_path)
        lines = proc.stdout.splitlines()
        if proc.returncode == 0 and lines and lines[0].startswith(SKIP_PREFIX):
            # unittest.SkipTest raised while importing the module: the whole file is skipped.
            reason = lines[0][len(SKIP_PREFIX):] or "skipped at import"
            raise pytest.skip.Exception(f"{self.path.name}: {reason}", allow_module_level=True)
        if proc.returncode != 0:
            raise self.CollectError(
                f"MicroPython could not import {self.path.name}:\n{proc.stdout}{proc.stderr}"
            )
        self._results = None
        self._lines = _test_lines(self.path)
        for test_id in proc.stdout.split():
            yield MicroPythonItem.from_parent(self, name=test_id.replace(".", "::"), test_id=test_id)

    def results(self, session):
        """Run every selected test of this file in one MicroPython process, once."""
        if self._results is None:
            selected = [item.test_id for item in session.items if item.parent is self]
            proc = run_firmware_module(self.heapsize, "--json", self.module_path, *selected)
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
        # A line number, never None: pytest places skips at the item's location and
        # fails with an INTERNALERROR when the line is missing.
        return self.path, self.parent._lines.get(self.test_id, 0), f"{self.path.name}::{self.test_id} [micropython]"


def pytest_pycollect_makemodule(module_path, parent):
    if module_path.parent == FIRMWARE_TESTS and module_path.name.startswith("test_"):
        return MicroPythonFile.from_parent(parent, path=module_path)
    return None


@pytest.fixture(scope="session")
def mpy():
    """A MicroPython process (default heap) serving calls into the firmware package."""
    with runner.Firmware() as bridge:
        yield bridge


@pytest.fixture(scope="session")
def mpy_64k():
    """A MicroPython process with the 64 KiB heap of a small ESP32 build."""
    with runner.Firmware(heapsize="64k") as bridge:
        yield bridge
