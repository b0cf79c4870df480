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


# --- the one set of flags every firmware build uses (carkey_host.build.FIRMWARE_OPT) ---

def _asserts(source):
    import ast

    tree = ast.parse(source.read_text(), filename=str(source))
    return [n.lineno for n in ast.walk(tree)
            if isinstance(n, ast.Assert) or (isinstance(n, ast.Name) and n.id == "__debug__")]


@pytest.mark.parametrize("source", FIRMWARE_FILES, ids=lambda p: str(p.relative_to(paths.FIRMWARE_DIR)))
def test_firmware_has_no_assert(source):
    # The firmware ships at -O3, which removes `assert`: a check that must hold on the
    # board is an explicit `if ...: raise`, never an assert.
    assert _asserts(source) == []


def test_the_firmware_build_removes_asserts_and_line_numbers(tmp_path):
    from carkey_host.build import FIRMWARE_OPT, compile_firmware

    assert FIRMWARE_OPT == 3
    src = tmp_path / "src"
    src.mkdir()
    (src / "m.py").write_text("def f():\n    assert False, 'kept'\n    raise ValueError('x')\n")
    out = tmp_path / "out"
    compile_firmware(out, root=src)
    text = _run_f(out)
    assert "ValueError: x" in text and "kept" not in text  # the assert is gone
    assert 'm.py", line 1, in f' in text  # no line table: every error points at the def
    # At -O0 (the tests' fakes) both stay.
    low = tmp_path / "low"
    compile_firmware(low, root=src, opt=0)
    text = _run_f(low)
    assert "AssertionError: kept" in text and 'm.py", line 2, in f' in text


def _run_f(path):
    proc = subprocess.run([paths.micropython_executable(), "-c", "import m\nm.f()"], capture_output=True, text=True,
                          env={"MICROPYPATH": str(path)})
    return proc.stdout + proc.stderr


def test_deploy_the_virtual_board_and_the_benchmark_build_alike(tmp_path):
    # What `carkey deploy` copies and what the virtual board, the benchmark and the
    # app-heap scan import are compiled by one compiler with one set of flags.
    from carkey_host import bench, build, deploy, runner

    plan = deploy.install_plan("esp32_devkitc", build_dir=tmp_path / "deploy")
    assert any(i.dest.endswith(".mpy") for i in plan)
    built = runner.compiled_firmware()
    assert built == bench.MPY_DIR
    deployed = (tmp_path / "deploy" / "firmware" / ".mpy-cross").read_text()
    assert deployed == (built / ".mpy-cross").read_text()
    assert deployed.split()[-1] == f"-O{build.FIRMWARE_OPT}"
    checked = 0
    for item in plan:
        if item.dest.endswith(".mpy"):
            rel = item.dest[len(deploy.PACKAGE_DIR) + 1:]
            assert (built / "carkey" / rel).read_bytes() == item.data, rel
            checked += 1
    assert checked > 30
