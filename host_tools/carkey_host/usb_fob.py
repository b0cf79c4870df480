"""A key fob on its USB serial port: identity, trust and a press as firmware-side calls.

`UsbFob(port)` interrupts the fob application through the raw REPL, runs one function
of carkey.fob.app or carkey.fob.provision on the board and soft-resets so the application starts again, as
carkey_host.usb_car does for the car. A real fob sleeps between presses and its USB
goes with it: wake it with the button (or hold it in safe boot) first.
"""

from . import board_call
from .errors import CarkeyError

STATE_DIR = "/state"


class UsbFob:
    def __init__(self, port, timeout=30, state_dir=STATE_DIR):
        self.port = port
        self.timeout = timeout
        self.state_dir = state_dir

    def _call(self, call):
        from .deploy import Board

        board = Board(self.port, self.timeout)
        try:
            program = board_call.program("import board\nfrom carkey.fob import app, provision", call, self.state_dir)
            out, err = board.run(program, self.timeout)
            output = (out + err).decode(errors="replace")
            board.soft_reset()  # the application starts again
        finally:
            board.close()
        answer = board_call.answer(output, f"fob on {self.port}")
        if not answer["ok"]:
            raise CarkeyError(f"the fob failed: {answer['error']}")
        return answer["result"]

    def identity(self) -> dict:
        return self._call("provision.identity(board, state_dir=state)")

    def trust(self, group_id: bytes, reader_public_key: bytes) -> dict:
        return self._call(f"provision.trust_car(board, {group_id.hex()!r}, {reader_public_key.hex()!r}, state)")

    def import_share(self, group_id: bytes, reader_public_key: bytes, document: bytes) -> dict:
        return self._call(f"provision.import_share(board, {group_id.hex()!r}, {reader_public_key.hex()!r}, "
                          f"{document.hex()!r}, state)")

    def press(self, command: str) -> dict:
        return self._call(f"app.press_once(board, {command!r}, state_dir=state)")
