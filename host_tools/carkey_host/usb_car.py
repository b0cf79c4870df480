"""A car on its USB serial port: the owner's operations as firmware-side admin calls.

`UsbCar(port)` offers what carkey_host.vcar.VirtualCar offers the owner's tools
(identity, provision, submit): each call interrupts the application through the
raw REPL, runs one function of carkey.ecu.admin on the board, and soft-resets so
the application starts again. Only provision works without a signature, and only
in factory state; everything else is an owner-signed document the firmware checks
(docs/PROTOCOL.md §9), so the host tools stay the same if the REPL is closed later.
"""

import json

from .errors import CarkeyError

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
    print({mark!r} + json.dumps({{"ok": False, "error": "%s: %s" % (type(e).__name__, e)}}))
"""

# First boot draws the reader's private key: on an ESP32 os.urandom is truly random
# only with a radio on, so the radio comes up first.
_RADIO_ON = "(__import__('bluetooth').BLE().active(True) if __import__('sys').platform == 'esp32' else None)"


class UsbCar:
    def __init__(self, port, timeout=10, state_dir=STATE_DIR):
        self.port = port
        self.timeout = timeout
        self.state_dir = state_dir

    def _call(self, call, board=None):
        from .deploy import Board

        if board is not None:  # inside a session: the application stays interrupted until it ends
            return self._answer(board.exec(_PROGRAM.format(state=self.state_dir, call=call, mark=_MARK)).decode())
        board = Board(self.port, self.timeout)
        try:
            output = board.exec(_PROGRAM.format(state=self.state_dir, call=call, mark=_MARK)).decode()
            board.soft_reset()  # the application starts again
        finally:
            board.close()
        return self._answer(output)

    def _answer(self, output):
        for line in output.splitlines():
            if line.startswith(_MARK):
                answer = json.loads(line[len(_MARK):])
                break
        else:
            raise CarkeyError(f"the board on {self.port} gave no answer: {output.strip()[-300:]!r}")
        if not answer["ok"]:
            raise CarkeyError(answer["error"].split(": ", 1)[-1] if answer["error"].startswith(
                ("AdminError", "NotProvisioned")) else f"the board failed: {answer['error']}")
        return answer["result"]

    def identity(self) -> dict:
        return self._call("admin.identity(state)")

    def provision(self, owner_public_key: bytes, unix_time: int = 0) -> dict:
        return self._call(f"({_RADIO_ON}, admin.provision(state, bytes.fromhex({owner_public_key.hex()!r}), "
                          f"{int(unix_time)}))[1]")

    def submit(self, document: bytes) -> dict:
        return self._call(f"admin.submit(state, bytes.fromhex({document.hex()!r}), now)")

    def admin_session(self) -> "ReplSession":
        return ReplSession(self)


class ReplSession:
    """An admin session through the raw REPL: the application is interrupted once, the
    challenge lives in the board's RAM for the session, and one soft reset at the end
    starts the application again."""

    def __init__(self, car: UsbCar):
        self.car = car

    def __enter__(self):
        from .deploy import Board

        self.board = Board(self.car.port, self.car.timeout)
        try:
            first = self.car._call("admin.challenge(state)", self.board)
        except BaseException:
            self.board.close()
            raise
        self.challenge = bytes.fromhex(first.pop("challenge"))
        self.identity = first
        return self

    def submit(self, document: bytes) -> dict:
        return self.car._call(f"admin.submit(state, bytes.fromhex({document.hex()!r}), now)", self.board)

    def __exit__(self, *exc):
        try:
            self.board.soft_reset()  # the application starts again
        finally:
            self.board.close()
