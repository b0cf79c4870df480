"""The whole key fob application's heap (`make bench`: fob_peak_heap_bytes).

One run at `-X heapsize=N`, from a fresh copy of a provisioned car and fob: the car's
whole application (firmware main's carkey.ecu.app) on the virtual board and the
virtual air, at the default heap; then the fob's application, as firmware/main.py
runs it (boards/virtual_hw/fob_heap.py), under the fob board's own description
(esp32_c3_fob) on the virtual fob's stand-ins, twice, each a fresh process as a
wake from deep sleep is on a board: a tap on the button (a short press: unlock),
the first a standard transaction, the second a fast one (Kpersistent from the
first, the car's address and handles and the ephemeral key kept in "RTC memory").
The run passes when both presses are granted with those kinds, each fob process
asks for deep sleep at the end, and nothing crashed.

The peak is the smallest size from which every size up to +64 KiB passes (1 KiB
steps over the first 16 KiB above the edge, 4 KiB beyond), as the car's
(carkey_host.app_heap). The figure holds the virtual board's stand-ins (the virtual
`bluetooth` and its central role, the virtual fob platform, this harness), which
a board holds in C or not at all: `stand_ins_bytes` says how much of the heap
their modules hold, measured the same way as the per-module table.
"""

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from . import paths, runner
from .app_heap import COARSE_STEP, KIB, MIN_HEAP, Scan, board_layout
from .errors import CarkeyError

BOARD = "esp32_c3_fob"
START_HEAP = 256 * KIB
STEP_TIMEOUT_S = 60
_PROGRAM = "import fob_heap\nfob_heap.run({board!r}, {state!r}, {modules!r})\n"
# Modules a board holds in C (bluetooth) or not at all (the rest): the virtual radio
# (and the asyncio streams only it reads its socket with), the virtual fob's
# platform, this harness.
STAND_INS = ("bluetooth", "ble_central", "asyncio.stream", "virtual_hw", "virtual_hw.fob_platform", "fob_heap")


class Template:
    """A provisioned car with the fob enrolled (owner-signed, as `carkey fob provision`
    does) and the fob trusting it; made once, copied fresh for every run."""

    def __init__(self, root):
        from . import owner as owner_ops
        from .keydir import KeyDir
        from .vcar import VirtualCar
        from .vfob import VirtualFob

        self.root = Path(root)
        keys = KeyDir(self.root / "owner")
        keys.init()
        car = VirtualCar(self.root / "car" / "state")
        ident = owner_ops.provision(car, keys)
        fob = VirtualFob(self.root / "fob" / "state")
        pub = fob.init()
        owner_ops.add_key(car, keys, pub, "driver")
        fob.trust(bytes.fromhex(ident["group_id"]), bytes.fromhex(ident["reader_public_key"]))

    def copy(self, dest):
        shutil.copytree(self.root, dest, ignore=shutil.ignore_patterns("lib"))
        return Path(dest)


def _wake(board, flash, state, heapsize, env, modules=False):
    """One wake of the fob by a tap on its button: its events ([{...}]) and output."""
    (state / "asleep").write_text(json.dumps({"button": 3}))
    try:
        (state / "button").unlink()
    except FileNotFoundError:
        pass
    proc = runner.launch("-c", _PROGRAM.format(board=board, state=str(state), modules=modules), heapsize=heapsize, env=env, cwd=flash,
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=STEP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        runner.stop(proc)
        out = (proc.stdout.read() or "") + "\n(timed out)"
    events = []
    for line in out.splitlines():
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except ValueError:
                pass
    return proc.returncode, events, out


def run_once(template, heapsize, workdir, board=BOARD):
    """Two wakes (standard, fast) at `heapsize`. Returns {"ok", "error", "presses": [...]}."""
    from .vcar import RunningCar
    from .virtual_air import VirtualAir

    root = template.copy(workdir)
    flash = root / "fob"
    state = flash / "state"
    env = board_layout(flash)
    result = {"ok": False, "error": None, "presses": []}
    with VirtualAir(port=0) as air, RunningCar(root / "car", air=air.address) as car:
        try:
            if not air.wait_for(lambda: air.advertisers(), timeout=30):
                raise CarkeyError("the car did not advertise")
            for want in ("standard", "fast"):
                env["CARKEY_AIR"] = "%s:%d" % tuple(air.address)
                rc, events, out = _wake(board, flash, state, heapsize, env, heapsize == START_HEAP)
                press = [e for e in events if "press" in e]
                slept = [e for e in events if "slept" in e]
                if rc != 0 or "Traceback" in out or "MemoryError" in out:
                    raise CarkeyError(f"{want} press: the fob failed: {out[-800:]}")
                if len(press) != 1 or not slept:
                    raise CarkeyError(f"{want} press: {out[-800:]}")
                p = press[0]
                if not p["press"]["granted"] or p["press"]["kind"] != want:
                    raise CarkeyError(f"{want} press: {p['press']}")
                result["presses"].append({"kind": want, "alloc_after": p["alloc"], "slept_alloc": slept[0]["alloc"],
                                          "ms": p["press"]["ms"], "direct": p["press"]["direct"],
                                          "modules": slept[0].get("modules")})
            result["ok"] = True
        except Exception as e:  # noqa: BLE001 - any failure of the run is a failed size, with its reason
            result["error"] = f"{type(e).__name__}: {e}"
        finally:
            if car.proc.poll() is not None:
                result["ok"] = False
                result["error"] = result["error"] or "the car stopped"
    return result


class FobScan(Scan):
    """app_heap.Scan's search, each run two wakes of the fob against a fresh car."""

    def __init__(self, template, workroot, jobs=1, progress=None, board=BOARD):
        super().__init__(template, board, workroot, jobs, progress)

    label = "fob"

    def run_one(self, size, work):
        return run_once(self.template, size, work, self.board)

    def peak(self, full=True):
        """The smallest size from which every checkpoint up to +64 KiB passes (app_heap.Scan's
        rule, from this scan's START_HEAP); full=False: a bisection to 1 KiB only."""
        if not self.passes([START_HEAP])[0]:
            raise CarkeyError(f"the fob does not pass even at {START_HEAP // KIB} KiB: {self.results[START_HEAP]['error']}")
        bad, good = MIN_HEAP, START_HEAP
        while good - bad > (COARSE_STEP if full else KIB):
            mid = (bad + good) // 2 // KIB * KIB
            if self.passes([mid])[0]:
                good = mid
            else:
                bad = mid
        if not full:
            return good
        edge = bad + KIB
        while True:
            failed = next((size for size in self.checkpoints(edge) if not self.passes([size])[0]), None)
            if failed is None:
                return edge
            edge = failed + KIB


def per_module(modules):
    """{module: bytes}: the heap each module a wake loaded holds, charged in import
    order (carkey_host.module_heap), the interpreter's string pool as a row of its own."""
    from .module_heap import module_heap

    with tempfile.TemporaryDirectory() as cwd:
        rows = module_heap(list(modules), [paths.FIRMWARE_DIR, runner.BOARDS_DIR, runner.VIRTUAL_HW],
                           board_layout(cwd), cwd=cwd)
    return dict(rows)


def measure(jobs=1, progress=print, full=True, board=BOARD):
    """{"peak_heap_bytes", "after_press_bytes", "runs", ...} for the whole fob application."""
    with tempfile.TemporaryDirectory() as tmp:
        template = Template(Path(tmp) / "template")
        scan = FobScan(template, tmp, jobs, progress, board)
        t = time.monotonic()
        peak = scan.peak(full=full)
        first = scan.results[START_HEAP]
    modules = per_module(first["presses"][0]["modules"])
    stand_ins = sum(n for m, n in modules.items() if m in STAND_INS)
    return {"peak_heap_bytes": peak, "board": board, "runs": len(scan.results), "scan_s": round(time.monotonic() - t),
            "full_scan": full, "stand_ins_bytes": stand_ins, "peak_less_stand_ins_bytes": peak - stand_ins,
            "after_press_bytes": {p["kind"]: p["alloc_after"] for p in first["presses"]},
            "press_ms_here": {p["kind"]: p["ms"] for p in first["presses"]},
            "module_heap_bytes": dict(sorted(modules.items(), key=lambda kv: -kv[1]))}


if __name__ == "__main__":
    import sys

    full = "--quick" not in sys.argv  # --quick: bisection to 1 KiB only, no +64 KiB check
    print(json.dumps(measure(full=full, progress=lambda line: print(line, file=sys.stderr)), indent=2))
