"""The import rules of docs/ARCHITECTURE.md, read from the source: who may import what.

Every firmware, board and host-library file is parsed (ast, no import is run) and each
import statement, at module level or inside a function, is checked against its layer's
rules. Known exceptions are listed by name below, each with the reason it exists; a
listed exception that no longer occurs fails too, so the list only shrinks.

Run: .venv/bin/pytest -q tests/host/test_architecture.py
"""

import ast
import sys

import pytest

from carkey_host import paths

ROOT = paths.REPO_ROOT
FIRMWARE = ROOT / "firmware"
BOARDS = ROOT / "boards"
HOST = ROOT / "host_tools" / "carkey_host"
TESTS = ROOT / "tests"

# Firmware layers (carkey package) and the layers each may import (docs/ARCHITECTURE.md).
# "link contract" is carkey.protocol.errors: the exceptions every link raises.
MAY_IMPORT = {
    "crypto": {"crypto"},
    "protocol": {"protocol", "link contract", "crypto", "util"},
    "hw": {"hw", "link contract"},
    "platform": {"platform", "util"},
    "util": set(),
    "roles": {"roles", "protocol", "link contract", "crypto", "hw", "platform", "util", "package"},
    "entry": {"roles", "protocol", "link contract", "crypto", "hw", "platform", "util", "package"},
    "package": set(),
}

# Modules of MicroPython itself (stock ESP32 build) that any firmware file may import.
MICROPYTHON_MODULES = {
    "micropython", "asyncio", "binascii", "gc", "json", "os", "struct", "sys", "time", "errno", "io",
    "select", "collections", "array", "hashlib", "random",
}
# Modules that only some layers may import: name -> layers (or files) allowed.
RESTRICTED_MODULES = {
    # The hardware: the hw layer, the application that wires it (ecu/app.py), the RTC in
    # clock.py, and main.py's reset of an installed car whose application did not start
    # (the hardware layer may be what did not load).
    "machine": {"hw", "carkey.ecu.app", "carkey.clock", "main"},
    "bluetooth": {"hw", "carkey.ecu.app"},
    "esp32": {"hw", "carkey.ecu.app"},
    "network": {"hw"},
    "socket": {"hw", "protocol"},
    # Block-cipher primitive: behind the crypto seam (carkey/crypto/__init__.py), so a board
    # can swap the backend for all callers.
    "cryptolib": {"crypto"},
    # The board's pin map and configuration: read by the application and the entry point; the
    # crypto seam reads carkey_config for its backends.
    "board": {"carkey.ecu.app", "main"},
    "carkey_config": {"carkey.crypto"},
}

# (file, imported module) pairs that break a rule today, each with why. Shrink this list;
# never grow it without a reason a reviewer accepts.
KNOWN_EXCEPTIONS = {
    # NTAG 424 session keys use cryptolib's ECB/CBC directly rather than carkey.crypto.aes,
    # so a board's replacement AES backend does not reach the card-key code.
    ("firmware/carkey/protocol/ntag424.py", "cryptolib"): "protocol bypasses the crypto seam",
}


def _rel(path):
    return path.relative_to(ROOT).as_posix()


def _module_name(path, root):
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_package(path):
    return path.name == "__init__.py"


def imports(path, module):
    """[(line, imported module)] of every import in the file, relative ones resolved.

    `from a.b import c` counts as a.b.c when that is a module of the tree, else a.b."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if _is_package(path) else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module
            for alias in node.names:
                found.append((node.lineno, name + "." + alias.name if _submodule(name + "." + alias.name) else name))
    return found


def _all_modules():
    names = set()
    for root in (FIRMWARE, HOST.parent):
        for p in root.rglob("*.py"):
            names.add(_module_name(p, root))
    return names


_MODULES = None


def _submodule(name):
    global _MODULES
    if _MODULES is None:
        _MODULES = _all_modules()
    return name in _MODULES


def firmware_layer(module):
    """The layer of a firmware module name (None: not part of the firmware tree)."""
    if module == "carkey.protocol.errors":
        return "link contract"
    if module == "carkey.steps":
        return "util"
    for prefix, layer in (("carkey.crypto", "crypto"), ("carkey.protocol", "protocol"), ("carkey.hw", "hw"),
                          ("carkey.ecu", "roles"), ("carkey.fob", "roles"), ("carkey.bench", "roles")):
        if module == prefix or module.startswith(prefix + ".") or module.startswith(prefix + "_"):
            return layer
    if module in ("carkey.storage", "carkey.clock"):
        return "platform"
    if module == "carkey":
        return "package"
    if module in ("main", "boot"):
        return "entry"
    return None


def _allowed_here(allowed, module, layer):
    return any(a == layer or a == module or module.startswith(a + ".") for a in allowed)


def firmware_violations():
    out = []
    for path in sorted(FIRMWARE.rglob("*.py")):
        module = _module_name(path, FIRMWARE)
        layer = firmware_layer(module)
        assert layer is not None, f"{_rel(path)}: no layer in docs/ARCHITECTURE.md; add it to firmware_layer()"
        if layer == "link contract":
            layer = "protocol"  # errors.py itself lives in the protocol package
        for line, name in imports(path, module):
            top = name.split(".")[0]
            target = firmware_layer(name)
            if target is not None:
                if target != "package" and target not in MAY_IMPORT[layer]:
                    out.append((_rel(path), line, name, f"{layer} may not import {target}"))
            elif top in RESTRICTED_MODULES:
                if not _allowed_here(RESTRICTED_MODULES[top], module, layer):
                    out.append((_rel(path), line, top, f"only {sorted(RESTRICTED_MODULES[top])} may import {top}"))
            elif top not in MICROPYTHON_MODULES:
                # virtual_hw, car_body, carkey_host, test fakes, CPython-only modules...
                out.append((_rel(path), line, name, "not a MicroPython module nor part of the firmware"))
    return out


BOARD_MODULES = {"micropython"}  # a board file is a pin map: constants only
VIRTUAL_HW_MAY_IMPORT = MICROPYTHON_MODULES | {"carkey", "virtual_hw", "car_body", "virtual", "virtual_fob", "socket", "termios",
                                                "bluetooth", "ble_central", "machine"}


def board_violations():
    out = []
    for path in sorted(BOARDS.glob("*.py")):
        for line, name in imports(path, path.stem):
            if name.split(".")[0] not in BOARD_MODULES:
                out.append((_rel(path), line, name, "a board file holds its pin map only"))
    for path in sorted((BOARDS / "virtual_hw").rglob("*.py")):
        module = "virtual_hw." + _module_name(path, BOARDS / "virtual_hw")
        for line, name in imports(path, module.removesuffix(".")):
            if name.split(".")[0] not in VIRTUAL_HW_MAY_IMPORT:
                out.append((_rel(path), line, name, "the virtual board runs firmware, not host code"))
    return out


def _names_tests_dir(tree):
    """Line numbers where code (not a docstring) names the tests/ directory."""
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    return [n.lineno for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings
            and (n.value == "tests" or n.value.startswith("tests/"))]


# Modules of the test tree (tests/mpy/unittest.py stands in for MicroPython's, not CPython's).
TEST_MODULES = ({p.stem for p in TESTS.rglob("*.py")} - {"unittest"}) | {"tests", "conftest"}


def host_violations():
    out = []
    for path in sorted(HOST.rglob("*.py")):
        rel = _rel(path)
        if path.parent.name == "mpy":
            continue  # MicroPython programs the host runs in the Unix port (they import firmware)
        module = _module_name(path, HOST.parent)
        in_cli = module.startswith("carkey_host.cli")
        tree = ast.parse(path.read_text(), filename=str(path))
        for line, name in imports(path, module):
            top = name.split(".")[0]
            if top in TEST_MODULES:
                out.append((rel, line, name, "the host library never imports test code"))
            if not in_cli and name.startswith("carkey_host.cli"):
                out.append((rel, line, name, "the library sits below the CLI"))
        for line in _names_tests_dir(tree):
            out.append((rel, line, "tests/", "the host library never reads files under tests/"))
    return out


# The one module that starts the MicroPython interpreter and knows how (docs/ARCHITECTURE.md,
# "How the host runs firmware"), and the one that finds the executable for it.
RUNNER = {"host_tools/carkey_host/runner.py", "host_tools/carkey_host/paths.py"}


def _launch_knowledge(tree):
    """[(line, what)] where code knows how to start the Unix port: the executable, its
    MICROPYPATH, its -X heapsize option."""
    found = []
    for n in ast.walk(tree):
        name = n.attr if isinstance(n, ast.Attribute) else n.id if isinstance(n, ast.Name) else None
        if name == "micropython_executable" or (isinstance(n, ast.alias) and n.name == "micropython_executable"):
            found.append((n.lineno, "micropython_executable"))
        elif isinstance(n, ast.Constant) and isinstance(n.value, str):
            if n.value == "MICROPYPATH":
                found.append((n.lineno, "MICROPYPATH"))
            elif n.value.startswith("heapsize="):
                found.append((n.lineno, "-X heapsize"))
    return found


def host_launch_violations():
    out = []
    for path in sorted(HOST.rglob("*.py")):
        rel = _rel(path)
        if rel in RUNNER or path.parent.name == "mpy":
            continue
        for line, what in _launch_knowledge(ast.parse(path.read_text(), filename=str(path))):
            out.append((rel, line, what, "only carkey_host.runner starts the MicroPython interpreter"))
    return out


def _check(violations, scope):
    found = {(f, name) for f, _, name, _ in violations}
    new = [v for v in violations if (v[0], v[2]) not in KNOWN_EXCEPTIONS]
    assert not new, "forbidden imports (docs/ARCHITECTURE.md):\n" + "\n".join(
        f"  {f}:{line}: {name}: {why}" for f, line, name, why in new)
    gone = [k for k in KNOWN_EXCEPTIONS if k[0].startswith(scope) and k not in found]
    assert not gone, f"fixed, so remove from KNOWN_EXCEPTIONS: {gone}"


def test_firmware_layers_import_only_downward():
    _check(firmware_violations(), "firmware/")


def test_board_files_are_pin_maps_and_the_virtual_board_is_firmware_side():
    _check(board_violations(), "boards/")


def test_host_library_stays_out_of_tests_and_below_the_cli():
    _check(host_violations(), "host_tools/")


def test_only_the_runner_starts_micropython():
    new = host_launch_violations()
    assert not new, "start MicroPython through carkey_host.runner (docs/ARCHITECTURE.md):\n" + "\n".join(
        f"  {f}:{line}: {name}" for f, line, name, _ in new)


# --- the checker itself: each rule catches what it is for -----------------------------------

@pytest.mark.parametrize("layer, source, target", [
    ("crypto", "carkey.crypto.aes", "carkey.protocol.tlv"),
    ("crypto", "carkey.crypto.kdf", "carkey.hw.pins"),
    ("crypto", "carkey.crypto.p256", "carkey.ecu.keystore"),
    ("protocol", "carkey.protocol.reader", "carkey.ecu.car"),
    ("protocol", "carkey.protocol.session", "carkey.hw.nfc_link"),
    ("hw", "carkey.hw.nfc_link", "carkey.protocol.reader"),
    ("hw", "carkey.hw.pins", "carkey.ecu.door"),
    ("platform", "carkey.storage", "carkey.ecu.keystore"),
])
def test_rules_refuse_upward_imports(layer, source, target):
    assert firmware_layer(source) == layer
    assert firmware_layer(target) not in MAY_IMPORT[layer]


def test_checker_sees_relative_lazy_and_from_imports(tmp_path, monkeypatch):
    fw = tmp_path / "firmware"
    (fw / "carkey" / "crypto").mkdir(parents=True)
    (fw / "carkey" / "__init__.py").write_text("")
    (fw / "carkey" / "crypto" / "__init__.py").write_text("")
    (fw / "carkey" / "crypto" / "bad.py").write_text(
        "from ..protocol import tlv\n"
        "def f():\n    import virtual_hw.platform\n    from carkey_host import paths\n"
        "import machine\nimport time\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "FIRMWARE", fw)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    found = {(name, line) for _, line, name, _ in firmware_violations()}
    assert found == {("carkey.protocol.tlv", 1), ("virtual_hw.platform", 3), ("carkey_host.paths", 4), ("machine", 5)}


def test_checker_finds_code_that_starts_micropython_itself():
    tree = ast.parse('from .paths import micropython_executable\n'
                     'cmd = [paths.micropython_executable(), "-X", f"heapsize={n}"]\n'
                     'env["MICROPYPATH"] = "firmware"\n'
                     'runner.launch("-c", code, heapsize=n)\n')
    assert sorted(_launch_knowledge(tree)) == [(1, "micropython_executable"), (2, "-X heapsize"),
                                               (2, "micropython_executable"), (3, "MICROPYPATH")]


def test_checker_finds_code_naming_the_tests_directory():
    tree = ast.parse('"""Docs may mention tests/mpy."""\nX = ROOT / "tests" / "mpy"\nY = "tests/data"\n')
    assert sorted(_names_tests_dir(tree)) == [2, 3]
