"""Every firmware file compiles with mpy-cross: bytecode .mpy is what goes to the boards."""

import subprocess

import pytest

from carkey_host import paths

FIRMWARE_FILES = sorted(paths.FIRMWARE_DIR.rglob("*.py"))


@pytest.mark.parametrize("source", FIRMWARE_FILES, ids=lambda p: str(p.relative_to(paths.FIRMWARE_DIR)))
def test_compiles_with_mpy_cross(source, tmp_path):
    out = tmp_path / (source.stem + ".mpy")
    proc = subprocess.run(
        [paths.mpy_cross_executable(), "-o", str(out), str(source)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    header = out.read_bytes()[:2]
    assert header == b"M\x06", f"unexpected .mpy header {header!r}"
