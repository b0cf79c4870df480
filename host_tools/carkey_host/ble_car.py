"""The firmware reader as a BLE car on the virtual air, and the `ble_unlock_exchanges` measurement.

`CarProcess` runs carkey_host/mpy/ble_reader.py in the MicroPython Unix port
(through carkey_host.runner) with the virtual board's `bluetooth` (boards/virtual_hw),
compiled to .mpy as a board runs it: the firmware's carkey.hw.ble_gatt peripheral and carkey.protocol Reader,
unchanged, answering simulated phones (carkey_host.ble_phone) over
carkey_host.virtual_air. Each transaction comes back as one event.
"""

import subprocess
from pathlib import Path

from . import ble_phone, paths, runner
from .build import compile_firmware
from .reader_keys import ReaderKeys  # noqa: F401 (re-exported: CarProcess takes one)
from .virtual_air import VirtualAir

STATUS_GRANTED = "97020101"


def build_car(out: Path) -> Path:
    """Firmware and the virtual `bluetooth`, compiled to .mpy in `out`."""
    compile_firmware(out)
    src = runner.VIRTUAL_HW / "bluetooth.py"
    subprocess.run([paths.mpy_cross_executable(), "-o", str(out / (src.stem + ".mpy")), str(src)], check=True)
    return out


class CarProcess:
    """The firmware car on the air. spec: see carkey_host/mpy/ble_reader.py."""

    def __init__(self, build: Path, air: VirtualAir, keys: ReaderKeys, devices, transactions, heapsize=None, **spec):
        spec.update(identity=keys.blob.hex(), transactions=transactions,
                    credentials=[{"pub": d.credential_public_key.hex(), "kpersistent": None} for d in devices])
        spec.setdefault("exchange", [STATUS_GRANTED])
        env = runner.environment(build)
        env["CARKEY_AIR"] = "%s:%d" % tuple(air.address)
        self.firmware = runner.Firmware("ble_reader", heapsize=heapsize, env=env, cwd=paths.REPO_ROOT)
        self.proc = self.firmware.proc
        self.firmware.send("run", **spec)
        self.name = self._next(30)["ready"]

    def _next(self, timeout):
        """The next event, or the closing record (the run's reply)."""
        try:
            message = self.firmware.receive(timeout)
        except runner.RunnerError as e:
            raise AssertionError(f"the car said nothing for {timeout} s" if self.proc.poll() is None
                                 else f"the car exited: {e}") from None
        if "event" in message:
            return message["event"]
        if "ok" in message:
            return message["ok"]
        raise AssertionError(f"the car failed: {message['error']}: {message['message']}\n{message['traceback']}")

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
        assert self.firmware.close(timeout) and self.proc.returncode == 0, self.firmware.stderr()
        return record

    def kill(self):
        self.firmware.kill()


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
