"""A car on its USB serial port: the owner's operations as firmware-side admin calls.

`UsbCar(port)` offers what carkey_host.vcar.VirtualCar offers the owner's tools
(identity, provision, submit, admin_session). Two ways in:

- the running application's console (firmware carkey.ecu.console): request lines
  `#carkey challenge` / `#carkey submit HEX` answered by one `CARKEY-RESULT` line,
  with the application running on: nothing restarts, taps go on between requests;
- when the application does not answer (a board at its REPL, older firmware, or
  provisioning): the raw REPL, which interrupts the application, runs one function of
  carkey.ecu.admin, and soft-resets so the application starts again.

Only provision works without a signature, and only in factory state; everything else
is an owner-signed document the firmware checks (docs/PROTOCOL.md §9).
"""

import time

from . import board_call
from .errors import CarkeyError, Refused
from .serialport import NoAnswer
from .wire import RESULT_MARK

STATE_DIR = "/state"
STARTUP_S = 60  # an application starting after a reset answers its console within this

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

        # {call} is an expression over `admin`, `state` and `now`.
        program = board_call.program("from carkey.ecu import admin\nfrom carkey.clock import Clock", call,
                                     self.state_dir, prelude="    now = Clock(state).now()\n",
                                     refused="admin.AdminError")
        if board is not None:  # inside a session: the application stays interrupted until it ends
            return self._answer(board.exec(program).decode())
        board = Board(self.port, self.timeout)
        try:
            output = board.exec(program).decode()
            board.soft_reset()  # the application starts again
        finally:
            board.close()
        return self._answer(output)

    def _answer(self, output):
        answer = board_call.answer(output, f"board on {self.port}")
        if not answer["ok"]:
            error = answer["error"]
            message = (error.split(": ", 1)[-1] if error.startswith(("AdminError", "NotProvisioned"))
                       else f"the board failed: {error}")
            raise (Refused if answer.get("refused") else CarkeyError)(message)
        return answer["result"]

    def identity(self) -> dict:
        try:
            with ConsoleSession(self) as session:
                return session.identity
        except AppNotAnswering:
            return self._call("admin.identity(state)")

    def provision(self, owner_public_key: bytes, unix_time: int = 0) -> dict:
        try:
            with ConsoleSession(self) as session:
                if session.identity.get("installed"):
                    raise Refused("already provisioned: changes now need a request signed by an owner")
        except AppNotAnswering:
            pass  # a factory board's application may not answer yet: the raw REPL will
        result = self._call(f"({_RADIO_ON}, admin.provision(state, bytes.fromhex({owner_public_key.hex()!r}), "
                            f"{int(unix_time)}))[1]")
        self._wait_for_console()
        return result

    def _wait_for_console(self, timeout=STARTUP_S):
        # Provisioning installed the car: once it restarts, only its application's
        # console answers (no REPL to fall back to), so the owner's next command waits for it.
        deadline = time.monotonic() + timeout
        while True:
            try:
                ConsoleSession(self).open().close()
                return
            except (AppNotAnswering, CarkeyError):  # not up yet, or the port not yet let go of
                time.sleep(0.2)
                if time.monotonic() > deadline:
                    raise NoAnswer(f"the car on {self.port} is provisioned, but its application did not answer "
                                   f"on its console within {timeout} s: press reset and try `carkey car info`") from None

    def submit(self, document: bytes) -> dict:
        try:
            console = ConsoleSession(self).open()
        except AppNotAnswering:
            return self._call(f"admin.submit(state, bytes.fromhex({document.hex()!r}), now)")
        try:
            return console.submit(document)
        finally:
            console.close()

    def admin_session(self):
        """The running application's console if it answers, else the raw REPL."""
        return _Either(self)


class AppNotAnswering(Exception):
    """The application did not answer on the console: use the raw REPL."""


class _Either:
    def __init__(self, car):
        self.car = car

    def __enter__(self):
        try:
            self.session = ConsoleSession(self.car).open()
        except AppNotAnswering:
            self.session = ReplSession(self.car)
            return self.session.__enter__()
        return self.session

    def __exit__(self, *exc):
        return self.session.__exit__(*exc)


class ConsoleSession:
    """An admin session with the running application over its console (no interrupt,
    no reset). open() raises AppNotAnswering when nothing answers as the application."""

    ANSWER_S = 5.0  # the application may be in a tap (a few seconds on an ESP32) before it answers

    def __init__(self, car: UsbCar):
        self.car = car
        self.port = None

    def open(self):
        from .serialport import open_exclusive

        self.port = open_exclusive(self.car.port, timeout=0.05)
        try:
            first = self._request("challenge", self.ANSWER_S)
        except BaseException:
            self.close()
            raise
        self.challenge = bytes.fromhex(first.pop("challenge"))
        self.identity = first
        return self

    def __enter__(self):
        return self.open() if self.port is None else self

    def _request(self, request: str, timeout: float) -> dict:
        import os

        token = os.urandom(4).hex()  # an answer to an earlier, abandoned request is not this one's
        mark = f"{RESULT_MARK}{token} "
        self.port.reset_input_buffer()
        self.port.write(f"#carkey {token} {request}\r\n".encode())
        deadline = time.monotonic() + timeout
        buf = b""
        while time.monotonic() < deadline:
            buf += self.port.read(self.port.in_waiting or 1)
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                text = raw.decode(errors="replace").strip()
                if text.startswith(mark):
                    return self.car._answer(RESULT_MARK + text[len(mark):])
                if text.startswith(">>>") or "raw REPL" in text:
                    raise AppNotAnswering()  # a REPL took the line (a comment there): no application
            if buf.startswith((b">>> ", b">")) and len(buf) <= 4:
                raise AppNotAnswering()  # a prompt waits for input
        raise AppNotAnswering()

    def submit(self, document: bytes) -> dict:
        try:
            return self._request(f"submit {document.hex()}", self.car.timeout)
        except AppNotAnswering:
            raise CarkeyError(f"the car's application on {self.car.port} stopped answering") from None

    def close(self):
        if self.port is not None:
            self.port.close()
            self.port = None

    def __exit__(self, *exc):
        self.close()


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
