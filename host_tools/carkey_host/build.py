"""Compile the firmware tree to MicroPython bytecode (.mpy) with mpy-cross.

Boards run .mpy files: they import without the compiler's heap cost, which is what
`make bench` measures and what `carkey deploy` copies.
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


def compile_file(source, out, source_name, march=None):
    """One .py -> .mpy; `source_name` is the file name tracebacks will show."""
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [paths.mpy_cross_executable(), "-o", str(out), "-s", str(source_name)]
    if march:
        cmd.append(f"-march={march}")
    proc = subprocess.run(cmd + [str(source)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"mpy-cross failed on {source_name}:\n{proc.stderr.strip()}")
    return out


def compile_firmware(dest, root=None, march=None):
    """Compile every firmware module into `dest`, mirroring the tree; returns the .mpy paths.

    Files are rebuilt only when the source is newer than the existing .mpy, and a
    .mpy whose source is gone is removed so it cannot mask a missing module.
    """
    root = Path(root or paths.FIRMWARE_DIR)
    dest = Path(dest)
    outputs = []
    # .mpy files made by another mpy-cross (CARKEY_MPY_CROSS) or for another
    # architecture are not reused: the stamp names the compiler that made them.
    stamp = dest / ".mpy-cross"
    made_by = f"{paths.mpy_cross_executable()} {march or ''}\n"
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
        compile_file(source, out, rel, march)
    if not stamp.exists() or stamp.read_text() != made_by:
        # Atomically: a build running beside this one must never read a half-written
        # stamp (it would take it for another compiler's and delete every .mpy).
        dest.mkdir(parents=True, exist_ok=True)
        tmp = stamp.with_name(f".mpy-cross.{os.getpid()}.{threading.get_ident()}")
        tmp.write_text(made_by)
        os.replace(tmp, stamp)
    return outputs
