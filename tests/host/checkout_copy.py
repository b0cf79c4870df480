"""A copy of the checkout somewhere else, and pytest run inside it, for tests of the test harness.

The copy holds what the firmware tests need (firmware/, boards/, host_tools/, pyproject.toml
and tests/ without the test files, which the caller picks); its pytest imports `carkey_host`
from the copy, so the copy's own location is the repository root it runs from.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from carkey_host import paths

_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis", ".pytest_cache")


def copy_checkout(dest, firmware_tests=()):
    """Copy the tree into `dest` (created, or an empty directory) with only the named tests/firmware files."""
    src = paths.REPO_ROOT
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise FileExistsError(f"{dest} is not empty")
    for name in ("firmware", "boards", "host_tools"):
        shutil.copytree(src / name, dest / name, ignore=_SKIP)
    shutil.copy2(src / "pyproject.toml", dest / "pyproject.toml")
    tests = dest / "tests"
    tests.mkdir()
    shutil.copy2(src / "tests" / "conftest.py", tests / "conftest.py")
    for name in ("mpy", "vectors"):
        shutil.copytree(src / "tests" / name, tests / name, ignore=_SKIP)
    (tests / "firmware").mkdir()
    for name in firmware_tests:
        shutil.copy2(src / "tests" / "firmware" / name, tests / "firmware" / name)
    return dest


def run_pytest(root, *args, timeout=600):
    """`pytest -q -rA ARGS` in the copy at `root`, importing carkey_host from the copy."""
    env = dict(os.environ)
    env.pop("CARKEY_FIRMWARE", None)
    env.pop("PYTEST_ADDOPTS", None)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(root) / "host_tools"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", *map(str, args)],
        cwd=root, env=env, capture_output=True, text=True, timeout=timeout,
    )


def outcome_counts(output):
    """{"passed": n, "failed": n, ...} from pytest's closing line."""
    last = output.strip().splitlines()[-1] if output.strip() else ""
    return {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed)", last)}
