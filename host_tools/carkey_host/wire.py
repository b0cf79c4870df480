"""The car's wire numbers and names, read from the firmware's own definitions.

firmware/carkey/ecu/codes.py (command ids, results, roles, key states, admin operations,
audit events, limits) and the transports and kinds of firmware/carkey/ecu/auditlog.py are
the one definition of each number; the host loads those MicroPython files unchanged,
with a stand-in for `micropython.const`, so it never spells a number the car defines.
Role names are the `ROLES` table of firmware/carkey/ecu/admin.py (the names its admin
interface answers with), read from its source: that module needs the whole firmware.
What only the host shows (a result's text, a command's CLI name) is keyed by these.
"""

import ast
import importlib.util
import sys
import types

from . import paths


def _load(name, relpath):
    """A firmware module that needs nothing from MicroPython but const(), loaded in CPython."""
    shim = types.ModuleType("micropython")
    shim.const = lambda value: value
    saved = sys.modules.get("micropython")
    sys.modules["micropython"] = shim
    try:
        spec = importlib.util.spec_from_file_location(f"{__name__}.{name}", paths.FIRMWARE_DIR / relpath)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        if saved is None:
            del sys.modules["micropython"]
        else:
            sys.modules["micropython"] = saved
    return module


codes = _load("codes", "carkey/ecu/codes.py")
_auditlog = _load("auditlog", "carkey/ecu/auditlog.py")
# What starts the line a board's answer is on (its console, and the raw-REPL programs the host runs).
RESULT_MARK = _load("console", "carkey/ecu/console.py").MARK


def _named(module, prefix):
    """{value: lower-case name} of the module's PREFIX_NAME constants."""
    return {getattr(module, n): n[len(prefix):].lower() for n in dir(module) if n.startswith(prefix)}


def _admin_roles():
    """firmware ecu/admin.py's `ROLES = {"name": codes.ROLE_X, ...}`, resolved against codes."""
    path = paths.FIRMWARE_DIR / "carkey" / "ecu" / "admin.py"
    tree = ast.parse(path.read_text(), filename=str(path))
    table = next(node.value for node in tree.body if isinstance(node, ast.Assign)
                 and [getattr(t, "id", None) for t in node.targets] == ["ROLES"])
    return {key.value: getattr(codes, value.attr) for key, value in zip(table.keys, table.values)}


# Roles: name -> number and back (docs/PROTOCOL.md §7).
ROLES = _admin_roles()
ROLE_NAMES = {role: name for name, role in ROLES.items()}
ROLE_DEFAULTS = {codes.ROLE_OWNER: codes.ENT_ALL, codes.ROLE_DRIVER: codes.ENT_ALL,
                 codes.ROLE_GUEST: codes.ENT_GUEST, codes.ROLE_VALET: codes.ENT_VALET}
# Audit log transports and transaction kinds (docs/STORAGE.md §4).
TRANSPORTS = _named(_auditlog, "TRANSPORT_")
KINDS = _named(_auditlog, "KIND_")
