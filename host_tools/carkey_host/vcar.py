"""The virtual car: the reader firmware running in the MicroPython Unix port over a state directory.

Each call starts the firmware-side server (carkey_host.runner) with the virtual car's
handler (boards/virtual_hw/vcar.py) and the compiled firmware on its path, sends one
request and collects its events and reply; an admin session keeps one process for its
requests. The state directory is the car's flash: identity, key store, clock floor,
lockout, audit log, the simulated car body. Nothing here touches those files: only
firmware does.
"""

import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import runner, wire
from .errors import CarkeyError, UsageError

SEQUENCE_KINDS = ("standard", "fast")
ROLES = tuple(wire.ROLES)


@dataclass
class Txn:
    """One transaction as the car saw it."""

    number: int
    kind: str | None  # standard, fast, fallback; None when authentication never finished
    granted: bool
    ms: float
    results: list = field(default_factory=list)  # [(command id, result code)]
    error: int | None = None  # audit result code of a failed transaction
    state: str | None = None  # car state, 3 bytes hex

    def line(self) -> str:
        return f"txn {self.number} kind={self.kind or 'none'} result={'granted' if self.granted else 'refused'} ms={self.ms:.1f}"


def _collector(txns, on_txn):
    """A line handler that turns the car's per-transaction JSON into Txn objects."""

    def line(obj):
        txn = Txn(obj["txn"], obj["kind"], obj["granted"], obj["ms"], [tuple(r) for r in obj["results"]],
                  obj.get("error"), obj.get("state"))
        txns.append(txn)
        if on_txn:
            on_txn(txn)

    return line


class VirtualCar:
    def __init__(self, state_dir, heapsize=None, timeout_s=120):
        self.state_dir = Path(state_dir)
        self.heapsize = heapsize
        self.timeout_s = timeout_s

    # --- plumbing -------------------------------------------------------------

    def _firmware(self):
        return runner.Firmware("vcar", heapsize=self.heapsize, env=runner.environment("compiled", virtual_board=True))

    def _run(self, request, on_line=None):
        request = dict(request, state=str(self.state_dir))
        try:
            car = self._firmware()
        except runner.RunnerError as e:
            raise CarkeyError(str(e)) from None
        return car.serve_one("the virtual car", self.timeout_s, on_event=on_line, **request)

    # --- operations -------------------------------------------------------------

    def init(self) -> dict:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        return self._run({"op": "init"})

    def identity(self) -> dict:
        self._require_state()
        return self._run({"op": "identity"})

    def enroll(self, public_key: bytes, role: str, entitlements=None, not_before=0, not_after=0, use_limit=0,
               profile: bytes = b"") -> dict:
        self._require_state()
        if role not in ROLES:
            raise UsageError(f"role must be one of {', '.join(ROLES)}")
        req = {"op": "enroll", "public_key": public_key.hex(), "role": role, "not_before": not_before,
               "not_after": not_after, "use_limit": use_limit, "profile": profile.hex()}
        if entitlements is not None:
            req["entitlements"] = entitlements
        return self._run(req)

    def keys(self) -> dict:
        self._require_state()
        return self._run({"op": "keys"})

    def log(self, since=0) -> list:
        self._require_state()
        return self._run({"op": "log", "since": since})["records"]

    def stranger_log(self) -> list:
        """Strangers' refusals, coalesced per interval and reason, each with its count (docs/STORAGE.md §4)."""
        return self._run({"op": "strangers"})["records"]

    def set_clock(self, unix: int) -> dict:
        self._require_state()
        return self._run({"op": "set_clock", "time": int(unix)})

    def provision(self, owner_public_key: bytes, unix_time: int = 0) -> dict:
        """Factory state: identity (if none), the first owner, the clock."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        return self._run({"op": "provision", "public_key": owner_public_key.hex(), "time": int(unix_time)})

    def submit(self, document: bytes) -> dict:
        """An owner-signed share, revocation or admin request, as over USB."""
        self._require_state()
        return self._run({"op": "submit", "document": document.hex()})

    def admin_session(self) -> "VcarSession":
        """An admin session (docs/PROTOCOL.md §9): one car process holds the challenge in
        its RAM until the session ends, as a board does."""
        self._require_state()
        return VcarSession(self)

    def connect(self, host, port, framing, sequence, on_txn=None) -> tuple[list, list]:
        """One connection per transaction; returns ([Txn], [(output role, ms) pulses])."""
        self._require_state()
        bad = [k for k in sequence if k not in SEQUENCE_KINDS]
        if not sequence or bad:
            raise UsageError(f"--sequence takes {' or '.join(SEQUENCE_KINDS)}, comma-separated"
                              + (f"; not {', '.join(bad)}" if bad else ""))
        txns = []
        done = self._run({"op": "connect", "host": host, "port": port, "framing": framing,
                          "sequence": list(sequence)}, _collector(txns, on_txn))
        return txns, [tuple(p) for p in done["pulses"]]

    def enroll_card(self, uid: bytes, role: str, entitlements=None) -> dict:
        self._require_state()
        if role not in ROLES or role == "owner":
            raise UsageError("a card's role is driver, guest or valet")
        req = {"op": "enroll_card", "uid": bytes(uid).hex(), "role": role}
        if entitlements is not None:
            req["entitlements"] = entitlements
        return self._run(req)

    def set_card_master_key(self, key: bytes) -> dict:
        self._require_state()
        return self._run({"op": "card_master_key", "key": bytes(key).hex()})

    def nfc(self, pty, taps, place="door", on_txn=None) -> tuple[list, list]:
        """Poll the PN532 at `pty` (the stand-in) until `taps` presentations were served."""
        self._require_state()
        txns = []
        done = self._run({"op": "nfc", "pty": str(pty), "taps": taps, "place": place}, _collector(txns, on_txn))
        return txns, [tuple(p) for p in done["pulses"]]

    def _require_state(self):
        if not self.state_dir.is_dir():
            raise CarkeyError(f"{self.state_dir}: no such state directory (run `carkey reader init --state DIR`)")


class VcarSession:
    """The car's side of an admin session with the virtual car: `challenge`, `identity`,
    `submit(document)`; a context manager (the session ends with it)."""

    def __init__(self, car: VirtualCar):
        self.car = car

    def __enter__(self):
        try:
            self.firmware = self.car._firmware()
        except runner.RunnerError as e:
            raise CarkeyError(str(e)) from None
        try:
            first = self._request("challenge")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        self.challenge = bytes.fromhex(first.pop("challenge"))
        self.identity = first
        return self

    def _request(self, op, **args) -> dict:
        # The challenge lives in this process's RAM, as on a board: it ends with the session.
        try:
            return self.firmware.request(op, state=str(self.car.state_dir), **args)
        except runner.MicroPythonError as e:
            raise CarkeyError(e.message if e.expected else f"{e.type}: {e.message}") from None
        except runner.RunnerError:
            raise CarkeyError(f"the virtual car crashed: {self.firmware.stderr().strip()[-300:]}") from None

    def submit(self, document: bytes) -> dict:
        return self._request("submit", document=document.hex())

    def __exit__(self, *exc):
        self.firmware.close(self.car.timeout_s)


_APP = "import virtual\nfrom carkey.ecu import app\napp.run(virtual, state_dir={state!r}, passive_entry={passive})\n"


class RunningCar:
    """The whole ECU application (firmware/main.py's carkey.ecu.app) on the virtual
    board, as a process: its flash is `flash_dir` (state in flash_dir/state), its
    radios the PN532 stand-in at `pn532` (a pty path) and the virtual air at `air`
    ((host, port)), each optional. Use as a context manager; stop() returns its output."""

    def __init__(self, flash_dir, pn532=None, air=None, heapsize=None, passive_entry=False):
        self.flash_dir = Path(flash_dir)
        self.flash_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir = self.flash_dir / "state"
        env = runner.environment("compiled", virtual_board=True)
        if pn532:
            env["CARKEY_PN532"] = str(pn532)
        if air:
            env["CARKEY_AIR"] = "%s:%d" % tuple(air)
        self.proc = runner.launch("-c", _APP.format(state=str(self.state_dir), passive=bool(passive_entry)),
                                  heapsize=heapsize, env=env, cwd=self.flash_dir, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def wait_for(self, predicate, what, timeout=30):
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.proc.poll() is not None:
                raise CarkeyError(f"the virtual car stopped while waiting for {what}:\n{self.stop()[-2000:]}")
            if time.monotonic() > deadline:
                raise CarkeyError(f"timed out waiting for {what}")
            time.sleep(0.02)

    def stop(self):
        runner.stop(self.proc)
        return self.proc.stdout.read() or ""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.output = self.stop()
