"""Compile the firmware tree to MicroPython bytecode (.mpy) with mpy-cross.

Boards run .mpy files: they import without the compiler's heap cost, which is what
`make bench` measures and what `carkey deploy` copies.

The firmware is compiled with `-O3` (FIRMWARE_OPT) everywhere it runs: deploy, the
virtual board, the benchmark, the app-heap scan and the firmware tests. That level drops
the line-number table from the bytecode (about 7 % less code in the heap; a traceback
names the file and the function, with the line of its `def`) and removes `assert`
statements, which is why the firmware has none: a check that must hold is an explicit
`if ...: raise` (tests/host/test_firmware_build.py). Code that is not the firmware (the tests' fakes, which do
use `assert`) is compiled at -O0.
"""

import os
import subprocess
import threading
from pathlib import Path

from . import paths


class BuildError(RuntimeError):
    pass


def firmware_sources(root=None):
    root = Path(root or paths.FIRMWARE_DIR)
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


# mpy-cross optimisation level of every firmware build (see the module docstring).
FIRMWARE_OPT = 3


def compile_file(source, out, source_name, march=None, opt=0):
    """One .py -> .mpy; `source_name` is the file name tracebacks will show."""
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [paths.mpy_cross_executable(), f"-O{opt}", "-o", str(out), "-s", str(source_name)]
    if march:
        cmd.append(f"-march={march}")
    proc = subprocess.run(cmd + [str(source)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"mpy-cross failed on {source_name}:\n{proc.stderr.strip()}")
    return out


def compile_firmware(dest, root=None, march=None, opt=FIRMWARE_OPT):
    """Compile every firmware module into `dest`, mirroring the tree; returns the .mpy paths.
    `opt` stays FIRMWARE_OPT for the firmware; a tree that relies on `assert` passes 0.

    Files are rebuilt only when the source is newer than the existing .mpy, and a
    .mpy whose source is gone is removed so it cannot mask a missing module.
    """
    root = Path(root or paths.FIRMWARE_DIR)
    dest = Path(dest)
    outputs = []
    # .mpy files made by another mpy-cross (CARKEY_MPY_CROSS), for another architecture
    # or at another level are not reused: the stamp names the compiler and its flags.
    stamp = dest / ".mpy-cross"
    made_by = f"{paths.mpy_cross_executable()} {march or ''} -O{opt}\n"
    if dest.exists() and (not stamp.exists() or stamp.read_text() != made_by):
        for old in dest.rglob("*.mpy"):
            old.unlink()
    if dest.exists():
        for stale in dest.rglob("*.mpy"):
            if not (root / stale.relative_to(dest)).with_suffix(".py").exists():
                stale.unlink()
    for source in firmware_sources(root):
        rel = source.relative_to(root)
        out = dest / rel.with_suffix(".mpy")
        outputs.append(out)
        if out.exists() and out.stat().st_mtime >= source.stat().st_mtime:
            continue
        compile_file(source, out, rel, march, opt)
    if not stamp.exists() or stamp.read_text() != made_by:
        # Atomically: a build running beside this one must never read a half-written
        # stamp (it would take it for another compiler's and delete every .mpy).
        dest.mkdir(parents=True, exist_ok=True)
        tmp = stamp.with_name(f".mpy-cross.{os.getpid()}.{threading.get_ident()}")
        tmp.write_text(made_by)
        os.replace(tmp, stamp)
    return outputs
