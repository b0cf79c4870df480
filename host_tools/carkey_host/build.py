"""Compile the firmware tree to MicroPython bytecode (.mpy) with mpy-cross.

Boards run .mpy files: they import without the compiler's heap cost, which is what
`make bench` measures and what `carkey deploy` copies.
"""

import subprocess
from pathlib import Path

from . import paths


class BuildError(RuntimeError):
    pass


def firmware_sources(root=None):
    root = Path(root or paths.FIRMWARE_DIR)
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def compile_firmware(dest, root=None, march=None):
    """Compile every firmware module into `dest`, mirroring the tree; returns the .mpy paths.

    Files are rebuilt only when the source is newer than the existing .mpy.
    """
    root = Path(root or paths.FIRMWARE_DIR)
    dest = Path(dest)
    outputs = []
    for source in firmware_sources(root):
        rel = source.relative_to(root)
        out = dest / rel.with_suffix(".mpy")
        outputs.append(out)
        if out.exists() and out.stat().st_mtime >= source.stat().st_mtime:
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        cmd = [paths.mpy_cross_executable(), "-o", str(out), "-s", str(rel)]
        if march:
            cmd.append(f"-march={march}")
        proc = subprocess.run(cmd + [str(source)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise BuildError(f"mpy-cross failed on {rel}:\n{proc.stderr.strip()}")
    return outputs
