"""The firmware reader as a BLE car on the virtual air, and the `ble_unlock_exchanges` measurement.

`CarProcess` runs carkey_host/mpy/ble_reader.py in the MicroPython Unix port with
the virtual board's `bluetooth` (boards/virtual_hw), compiled to .mpy as a board
runs it: the firmware's carkey.hw.ble_gatt peripheral and carkey.protocol Reader,
unchanged, answering simulated phones (carkey_host.ble_phone) over
carkey_host.virtual_air. Each transaction comes back as one JSON record.
"""

import json
import queue
import subprocess
import threading
from pathlib import Path

from . import ble_phone, paths
from .build import compile_firmware
from .mpy_bridge import micropython_command, micropython_env
from .reader_keys import ReaderKeys  # noqa: F401 (re-exported: CarProcess takes one)
from .virtual_air import VirtualAir

CLIENT = paths.PACKAGE_DIR / "mpy" / "ble_reader.py"
VIRTUAL_HW = paths.REPO_ROOT / "boards" / "virtual_hw"
STATUS_GRANTED = "97020101"


def build_car(out: Path) -> Path:
    """Firmware and the virtual `bluetooth`, compiled to .mpy in `out`."""
    compile_firmware(out)
    src = VIRTUAL_HW / "bluetooth.py"
    subprocess.run([paths.mpy_cross_executable(), "-o", str(out / (src.stem + ".mpy")), str(src)], check=True)
    return out


class CarProcess:
    """The firmware car on the air. spec: see carkey_host/mpy/ble_reader.py."""

    def __init__(self, build: Path, air: VirtualAir, keys: ReaderKeys, devices, transactions, heapsize=None, **spec):
        spec.update(identity=keys.blob.hex(), transactions=transactions,
                    credentials=[{"pub": d.credential_public_key.hex(), "kpersistent": None} for d in devices])
        spec.setdefault("exchange", [STATUS_GRANTED])
        env = micropython_env(firmware_dir=build)
        env["CARKEY_AIR"] = "%s:%d" % tuple(air.address)
        self.proc = subprocess.Popen(micropython_command(CLIENT, heapsize=heapsize), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env, cwd=paths.REPO_ROOT, text=True)
        self.proc.stdin.write(json.dumps(spec))
        self.proc.stdin.close()
        self._lines = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.name = self._next(30)["ready"]

    def _pump(self):
        for line in self.proc.stdout:
            if line.startswith("{"):
                self._lines.put(json.loads(line))
        self._lines.put(None)

    def _next(self, timeout):
        try:
            record = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("the car said nothing for %s s" % timeout) from None
        if record is None:
            self.proc.wait(5)
            raise AssertionError("the car exited (%s): %s" % (self.proc.returncode, self.proc.stderr.read()[-3000:]))
        return record

    def record(self, timeout=30):
        """The next record of any kind (e.g. {"action": ..} of passive entry)."""
        return self._next(timeout)

    def transaction(self, timeout=30):
        """The next transaction record the car printed."""
        record = self._next(timeout)
        assert "done" not in record, record
        return record

    def finish(self, timeout=30):
        """The car's closing record, after its last transaction; the process has exited cleanly."""
        record = self._next(timeout)
        assert "done" in record, record
        assert self.proc.wait(timeout) == 0, self.proc.stderr.read()
        return record

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def ble_unlock_exchanges(mtu: int = ble_phone.PHONE_MTU, build: Path | None = None) -> dict:
    """Connect-to-unlock over BLE, counted from a real run on the virtual air.

    One phone visits the firmware car twice (a standard transaction, then a fast
    one). For each visit: ATT writes and indications, the value bytes each way, all
    ATT PDUs from the MTU exchange to the car's disconnect, at the given phone MTU.
    """
    build = build or build_car(paths.BUILD_DIR / "ble-mpy")
    keys = ReaderKeys()
    device = keys.device()
    out = {"mtu": mtu}
    with VirtualAir() as air:
        car = CarProcess(build, air, keys, [device], transactions=2)
        try:
            for kind in ("standard", "fast"):
                device.reset()
                before = len(air.att_trace())
                log = ble_phone.phone_over_air(air.address, car.name, device.process, mtu=mtu)
                record = car.transaction()
                if record.get("kind") != kind or log.error:
                    raise RuntimeError(f"{kind} visit failed: car {record}, phone {log.error}")
                trace = air.att_trace()[before:]
                counts = ble_phone.count_exchanges(trace, trace[0].conn)
                counts["apdus"] = len(log.commands)
                counts["car_ms"] = record["ms"]
                out[kind] = counts
            car.finish()
        finally:
            car.kill()
    return out
