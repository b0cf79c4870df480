"""One call into the firmware on a board over its raw REPL: the program that runs it, the answer it prints.

A car (carkey_host.usb_car) or a fob (carkey_host.usb_fob) on a serial port, real or the
virtual board, runs `program(...)`: it imports what the call needs, evaluates one
expression and prints one line `CARKEY-RESULT {json}` (the mark the car's console
answers with too, defined once in firmware carkey/ecu/console.py): {"ok": true,
"result": ...} or {"ok": false, "error": "Type: message", "refused": bool}. A board is
not the Unix port: this is the REPL protocol any ESP32 understands, so it does not go
through carkey_host.runner.
"""

import json

from .errors import CarkeyError
from .wire import RESULT_MARK

_PROGRAM = """
import json
{imports}
state = {state!r}
try:
{prelude}    result = {call}
    print({mark!r} + json.dumps({{"ok": True, "result": result}}))
except Exception as e:
    print({mark!r} + json.dumps({{"ok": False, "error": "%s: %s" % (type(e).__name__, e),
                                  "refused": isinstance(e, {refused})}}))
"""


def program(imports, call, state, prelude="", refused="()"):
    """The board-side program: `imports` (lines), then `call` (an expression over
    `state` and what `prelude`, indented lines, sets) answered on one marked line;
    `refused` names the exceptions that mean the firmware judged the request and said no."""
    return _PROGRAM.format(imports=imports, state=state, prelude=prelude, call=call, mark=RESULT_MARK,
                           refused=refused)


def answer(output, where):
    """The marked answer in a board's output (a dict, see above); CarkeyError if none."""
    for line in output.splitlines():
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK):])
    raise CarkeyError(f"the {where} gave no answer: {output.strip()[-300:]!r}")
