"""One definition of each wire number and name: firmware/carkey/ecu/codes.py (role names: ecu/admin.py).

The host loads the firmware's codes (carkey_host.wire) instead of copying them; what the
host adds (a result's text, a command's CLI name) is keyed by them and must cover every
code. The web page (web/lib/*.js, a browser module that cannot import Python) keeps its
own tables: they are parsed here and must agree with the host's. No other file spells
the role names as a table.

Run: .venv/bin/pytest -q tests/host/test_wire_truth.py
"""

import ast
import json
import re
import sys

import pytest

from carkey_host import auditlog, documents, envelope, paths, vcar, wire
from carkey_host import runner
from carkey_host.wire import codes

ROOT = paths.REPO_ROOT
CODES_PY = ROOT / "firmware" / "carkey" / "ecu" / "codes.py"
ADMIN_PY = ROOT / "firmware" / "carkey" / "ecu" / "admin.py"


def _section(title_start, next_title_start):
    """{NAME: value} of the constants between two comment headings of codes.py."""
    text = CODES_PY.read_text()
    part = text[text.index(title_start):text.index(next_title_start)]
    return {n: int(v, 0) for n, v in re.findall(r"^([A-Z_]+) = const\((0x[0-9A-Fa-f]+|\d+)\)", part, re.M)}


def test_the_host_loads_the_firmware_module_and_leaves_no_micropython_behind():
    assert codes.__file__ == str(paths.FIRMWARE_DIR / "carkey" / "ecu" / "codes.py")
    assert "micropython" not in sys.modules  # the const() stand-in was only there while loading


def test_every_result_code_has_one_host_name_and_0d_0e_keep_their_meaning():
    results = _section("# Command results", "# Roles")
    assert len(results) >= 15
    assert set(envelope.RESULTS) == set(results.values())
    assert (codes.NO_ROOM, codes.DOCUMENT_SUPERSEDED) == (0x0D, 0x0E)
    assert envelope.RESULTS[0x0D].startswith("no room") and envelope.RESULTS[0x0E].startswith("document superseded")


def test_every_command_has_one_host_name():
    commands = {n: v for n, v in _section("# Command ids", "DRIVE_MINUTES_MIN").items()
                if n not in ("CMD_FIRST", "CMD_LAST")}
    assert sorted(envelope.COMMANDS.values()) == sorted(commands.values())
    assert list(range(codes.CMD_FIRST, codes.CMD_LAST + 1)) == sorted(commands.values())


def test_audit_names_cover_every_event_failure_transport_and_kind():
    events = {v for n, v in vars(codes).items() if n.startswith("EVENT_")}
    assert set(auditlog.EVENTS) == events
    failures = {codes.AUTH_FAILED, codes.PROTOCOL_ERROR, codes.LINK_LOST, codes.READER_FAULT}
    assert set(auditlog.FAILURES) == failures
    assert not failures & set(envelope.RESULTS)  # a failure never reads as a command result
    assert wire.TRANSPORTS == {0: "car", 1: "nfc", 2: "ble", 3: "tcp", 4: "usb"}
    assert wire.KINDS == {0: "standard", 1: "fast", 2: "fallback", 3: "admin", 4: "passive"}


def test_roles_actions_and_operations_are_the_firmwares():
    roles = {n: v for n, v in vars(codes).items() if n.startswith("ROLE_")}
    assert documents.ROLES == {n[len("ROLE_"):].lower(): v for n, v in roles.items()}
    assert vcar.ROLES == tuple(documents.ROLES)
    assert documents.ACTIONS == {n[len("ACTION_"):].lower(): v for n, v in vars(codes).items() if n.startswith("ACTION_")}
    assert documents.ADMIN_OPERATIONS == {n[len("ADMIN_"):].lower().replace("_", "-"): v
                                          for n, v in vars(codes).items() if n.startswith("ADMIN_")}


def test_role_defaults_agree_with_the_firmware_policy_run_in_micropython():
    script = ("import json\nfrom carkey.ecu import codes, policy\n"
              "print(json.dumps({r: policy.default_entitlements(r) for r in range(codes.ROLE_OWNER, codes.ROLE_VALET + 1)}))")
    out = runner.run("-c", script, timeout=60)
    assert out.returncode == 0, out.stderr
    assert {int(k): v for k, v in json.loads(out.stdout).items()} == documents.ROLE_DEFAULTS


# --- the web page's copies ---------------------------------------------------------------

def js_table(source, name):
    """{key: value} of `const NAME = Object.freeze({...})` or `const NAME = {...}` in a JS module."""
    m = re.search(r"const " + name + r" = (?:Object\.freeze\()?\{(.*?)\}", source, re.S)
    assert m, f"no table {name}"
    table = {}
    for key, value in re.findall(r"('[^']*'|0x[0-9a-fA-F]+|\d+|[A-Za-z_-]+)\s*:\s*('[^']*'|0x[0-9a-fA-F]+|\d+)", m.group(1)):
        parse = lambda t: t[1:-1] if t.startswith("'") else int(t, 0) if t[0].isdigit() else t
        table[parse(key)] = parse(value)
    return table


def _short(text):
    """A result's name without the explanation the host may add in parentheses after it."""
    return re.sub(r" \([^)]*\)$", "", text)


def result_mismatches(js_results):
    return sorted(set(js_results) ^ set(envelope.RESULTS)) + sorted(
        code for code in set(js_results) & set(envelope.RESULTS)
        if _short(js_results[code]) != _short(envelope.RESULTS[code]))


def test_web_envelope_tables_agree_with_the_host():
    source = (ROOT / "web" / "lib" / "envelope.js").read_text()
    assert js_table(source, "COMMANDS") == envelope.COMMANDS
    assert result_mismatches(js_table(source, "RESULTS")) == []


def test_web_share_roles_agree_with_the_host():
    source = (ROOT / "web" / "lib" / "share.js").read_text()
    assert js_table(source, "ROLES") == documents.ROLE_NAMES


@pytest.mark.parametrize("edit", [
    ("0x0e: 'document superseded'", "0x0e: 'no room'"),  # a meaning moved
    ("0x0d: 'no room (key store or revocation list full)', ", ""),  # a code dropped
])
def test_the_web_check_catches_a_table_that_drifted(edit):
    source = (ROOT / "web" / "lib" / "envelope.js").read_text()
    assert edit[0] in source
    assert result_mismatches(js_table(source.replace(*edit), "RESULTS")) != []


# --- nothing else spells the role names as a table ----------------------------------------

def role_tables(path):
    """Lines of collection literals (dict, tuple, list, set) naming two or more roles."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set(wire.ROLES)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Dict, ast.Tuple, ast.List, ast.Set)):
            items = node.keys + node.values if isinstance(node, ast.Dict) else node.elts
            if len({i.value for i in items if isinstance(i, ast.Constant)} & names) >= 2:
                found.append(node.lineno)
    return found


def test_role_names_are_spelled_as_a_table_only_in_the_firmwares_admin():
    spelled = {}
    for root in (ROOT / "firmware", ROOT / "boards", ROOT / "host_tools"):
        for path in sorted(root.rglob("*.py")):
            if path != ADMIN_PY and role_tables(path):
                spelled[path.relative_to(ROOT).as_posix()] = role_tables(path)
    assert spelled == {}
    assert role_tables(ADMIN_PY)  # the check sees the one table there is


def test_web_drive_minutes_are_the_firmwares():
    source = (ROOT / "web" / "lib" / "envelope.js").read_text()
    m = re.search(r"argument\[0\] < (\d+) \|\| argument\[0\] > (\d+)\)\) throw new Error\('drive wants minutes (\d+)\.\.(\d+)'",
                  source)
    assert m, "the page's drive-minutes check moved; update this test"
    assert tuple(map(int, m.groups())) == (codes.DRIVE_MINUTES_MIN, codes.DRIVE_MINUTES_MAX) * 2


def test_the_fobs_button_commands_carry_the_hosts_names():
    """firmware/carkey/fob/client.py spells out the commands a button may send (a fob does not
    load the car's codes.py); their names and numbers are the host's, which are codes.py's."""
    tree = ast.parse((ROOT / "firmware" / "carkey" / "fob" / "client.py").read_text())
    table = next(n.value for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "COMMANDS")
    fob = {k.value: v.value for k, v in zip(table.keys, table.values)}
    assert fob and all(envelope.COMMANDS[name] == number for name, number in fob.items())
    assert fob == {"lock": codes.CMD_LOCK, "unlock": codes.CMD_UNLOCK, "trunk": codes.CMD_TRUNK}
