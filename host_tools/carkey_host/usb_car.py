"""A car on its USB serial port: the owner's operations as firmware-side admin calls.

`UsbCar(port)` offers what carkey_host.vcar.VirtualCar offers the owner's tools
(identity, provision, submit): each call interrupts the application through the
raw REPL, runs one function of carkey.ecu.admin on the board, and soft-resets so
the application starts again. Only provision works without a signature, and only
in factory state; everything else is an owner-signed document the firmware checks
(docs/PROTOCOL.md §9), so the host tools stay the same if the REPL is closed later.
"""

import json

from .errors import CarkeyError, Refused

STATE_DIR = "/state"
_MARK = "CARKEY-RESULT "

# Runs on the board. {call} is an expression over `admin`, `state` and `now`.
_PROGRAM = """
import json
from carkey.ecu import admin
from carkey.clock import Clock
state = {state!r}
try:
    now = Clock(state).now()
    result = {call}
    print({mark!r} + json.dumps({{"ok": True, "result": result}}))
except Exception as e:
    print({mark!r} + json.dumps({{"ok": False, "error": "%s: %s" % (type(e).__name__, e),
                                  "refused": isinstance(e, admin.AdminError)}}))
"""

# First boot draws the reader's private key: on an ESP32 os.urandom is truly random
# only with a radio on, so the radio comes up first.
_RADIO_ON = "(__import__('bluetooth').BLE().active(True) if __import__('sys').platform == 'esp32' else None)"


class UsbCar:
    def __init__(self, port, timeout=10, state_dir=STATE_DIR):
        self.port = port
        self.timeout = timeout
        self.state_dir = state_dir

    def _call(self, call):
        from .deploy import Board

        board = Board(self.port, self.timeout)
        try:
            output = board.exec(_PROGRAM.format(state=self.state_dir, call=call, mark=_MARK)).decode()
            board.soft_reset()  # the application starts again
        finally:
            board.close()
        for line in output.splitlines():
            if line.startswith(_MARK):
                answer = json.loads(line[len(_MARK):])
                break
        else:
            raise CarkeyError(f"the board on {self.port} gave no answer: {output.strip()[-300:]!r}")
        if not answer["ok"]:
            error = answer["error"]
            message = (error.split(": ", 1)[-1] if error.startswith(("AdminError", "NotProvisioned"))
                       else f"the board failed: {error}")
            raise (Refused if answer.get("refused") else CarkeyError)(message)
        return answer["result"]

    def identity(self) -> dict:
        return self._call("admin.identity(state)")

    def provision(self, owner_public_key: bytes, unix_time: int = 0) -> dict:
        return self._call(f"({_RADIO_ON}, admin.provision(state, bytes.fromhex({owner_public_key.hex()!r}), "
                          f"{int(unix_time)}))[1]")

    def submit(self, document: bytes) -> dict:
        return self._call(f"admin.submit(state, bytes.fromhex({document.hex()!r}), now)")
