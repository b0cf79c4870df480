"""The virtual fob: the key fob firmware running in the MicroPython Unix port over a state directory.

Each call starts the firmware-side server (carkey_host.runner) with the virtual fob's
handler (boards/virtual_hw/vfob.py) and the compiled firmware on its path, and sends
it one request; the state directory is the fob's flash (credential, trusted cars, Kpersistent, counters) and only firmware
touches it. `serve` keeps the process running: it answers readers over TCP, one
transaction per connection, as `carkey phone serve` does.
"""

import json
import socket
from dataclasses import dataclass
from pathlib import Path

from . import runner
from .errors import CarkeyError
from .keydir import parse_hex


@dataclass
class FobConnection:
    """One reader connection as the fob saw it."""

    number: int
    how: str  # closed (the reader hung up), dropped (reader not trusted), timeout, link error ...
    kind: str | None  # standard, fast; None when no authentication happened
    granted: bool
    result: int | None  # the car's result code for the fob's command
    new_kpersistent: bool

    def line(self) -> str:
        if self.how == "dropped":
            return f"connection {self.number}: dropped the link (reader not trusted)"
        what = "granted" if self.granted else "refused"
        return f"connection {self.number}: kind={self.kind or 'none'} {what} ({self.how})"


def free_port(host="127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class VirtualFob:
    def __init__(self, state_dir, heapsize=None, timeout_s=60):
        self.state_dir = Path(state_dir)
        self.heapsize = heapsize
        self.timeout_s = timeout_s

    def _start(self, env_extra=None):
        # The process of the last request: `serve` runs until its connections are served
        # or it is stopped (self.process.terminate()).
        env = runner.environment("compiled", virtual_board=True)
        env.update(env_extra or {})
        try:
            return runner.Firmware("vfob", heapsize=self.heapsize, env=env)
        except runner.RunnerError as e:
            raise CarkeyError(str(e)) from None

    def _run(self, request, env_extra=None, on_event=None):
        fob = self._start(env_extra)
        self.process = fob.proc
        return fob.serve_one("the virtual fob", self.timeout_s, on_event=on_event, **dict(request, state=str(self.state_dir)))

    def _require_state(self):
        if not self.state_dir.is_dir():
            raise CarkeyError(f"{self.state_dir}: no such state directory (run `carkey fob init --state DIR`)")

    # --- operations -------------------------------------------------------------------

    def init(self) -> bytes:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        return bytes.fromhex(self._run({"op": "init"})["credential_public_key"])

    def identity(self) -> dict:
        self._require_state()
        return self._run({"op": "identity"})

    def trust(self, group_id: bytes, reader_public_key: bytes) -> None:
        self._require_state()
        self._run({"op": "trust", "group_id": bytes(group_id).hex(), "reader_public_key": bytes(reader_public_key).hex()})

    def serve(self, host, port, framing, connections=None, command=0x02, on_listening=None, on_connection=None):
        """Answer readers until `connections` were served (None: until stopped).
        Port 0 picks a free port; on_listening((host, port)) once it listens."""
        self._require_state()
        if port == 0:
            port = free_port(host)

        def line(obj):
            if "listening" in obj:
                if on_listening:
                    on_listening(tuple(obj["listening"]))
            elif "connection" in obj and on_connection:
                on_connection(FobConnection(obj["connection"], obj["how"], obj["kind"], obj["granted"],
                                            obj["result"], obj["new_kpersistent"]))

        return self._run({"op": "serve", "host": host, "port": port, "framing": framing,
                          "connections": connections, "command": command}, on_event=line)

    def import_share(self, group_id: bytes, reader_public_key: bytes, document: bytes) -> None:
        """Trust the car and present this owner-signed share document at the next press."""
        self._require_state()
        self._run({"op": "import_share", "group_id": group_id.hex(), "reader_public_key": reader_public_key.hex(),
                   "document": document.hex()})

    def press(self, command: str, air) -> dict:
        """One press on the fob, its radio on the virtual air at `air` ((host, port)):
        what the fob saw ({"outcome", "kind", "granted", "result", "signal", ...})."""
        self._require_state()
        return self._run({"op": "press", "command": command}, {"CARKEY_AIR": "%s:%d" % tuple(air)})

    def led_timeline(self) -> list:
        """[(ticks_ms, role, level)] of every LED and buzzer write so far."""
        try:
            lines = (self.state_dir / "gpio.log").read_text().splitlines()
        except FileNotFoundError:
            return []
        return [(int(t), role, int(v)) for t, role, v in (ln.split() for ln in lines)]


def parse_trust(group_id: str, reader_public_key: str):
    return parse_hex(group_id, 16, "--group-id"), parse_hex(reader_public_key, 65, "--reader-public-key")


def provision(fob, car, owner_keys, role="driver", name=None) -> dict:
    """Make the fob a key of the car: the fob makes its credential (if it has none),
    the owner's key signs the share document that enrolls it (delivered to the car
    over USB), and the fob learns the car it trusts. `fob` is a UsbFob, `car` a UsbCar
    (or VirtualCar); `name` labels the fob in the owner's directory (fobs.json)."""
    from . import owner as owner_ops

    fob_pub = bytes.fromhex(fob.identity()["credential_public_key"])
    key = owner_ops.add_key(car, owner_keys, fob_pub, role)
    ident = car.identity()
    fob.trust(bytes.fromhex(ident["group_id"]), bytes.fromhex(ident["reader_public_key"]))
    label = {"slot": key["slot"], "name": name or f"fob {key['slot'][:8]}", "public_key": fob_pub.hex(),
             "group_id": ident["group_id"], "role": key["role"]}
    path = owner_keys.path / "fobs.json"
    try:
        fobs = [f for f in json.loads(path.read_text()) if f.get("slot") != key["slot"]]
    except (FileNotFoundError, ValueError):
        fobs = []
    fobs.append(label)
    path.write_text(json.dumps(fobs, indent=1) + "\n")
    return label
