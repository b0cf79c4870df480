"""The whole ECU application's heap, per board config: what stays after start-up and the
smallest heap that serves every kind of tap (`make bench`: app_resident_bytes, app_peak_heap_bytes).

One run = firmware carkey.ecu.app (through boards/virtual_hw/app_heap.py) under one
board's description, on the virtual board's stand-ins, with `-X heapsize=N`, from a
fresh copy of a provisioned state: boot (the owner's verification table built while
idle, the precompute pool filled), a standard BLE tap, a fast BLE tap, an NFC phone
tap, an NTAG 424 card tap, then a friend's BLE tap presenting an owner-signed share
document, whose verification table the car then builds while idle. The run passes
when every tap is granted, the friend's table is on flash, and nothing crashed.

Fragmentation makes "the smallest heap that works" noisy, so the peak is the smallest
size from which every size up to +64 KiB passes: 1 KiB steps over the first 16 KiB
above the edge, 4 KiB steps beyond.
"""

import json
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import paths, runner
from .errors import CarkeyError

KIB = 1024
BOARDS = ("esp32_devkitc", "esp32_s3", "virtual")
SIZE_32BIT = 0.70  # 32-bit build / this 64-bit port, measured on the whole application (docs/PERFORMANCE.md)
FINE_SPAN = 16 * KIB
FULL_SPAN = 64 * KIB
COARSE_STEP = 4 * KIB
START_HEAP = 512 * KIB
MIN_HEAP = 48 * KIB
STEP_TIMEOUT_S = 60

_PROGRAM = "import app_heap\napp_heap.run({board!r}, {state!r}, {fragment!r})\n"


class Template:
    """A provisioned car (owner, one NTAG 424 card) and the phones that visit it,
    made once and copied fresh for every run."""

    def __init__(self, root):
        from . import documents, ntag424
        from .keydir import KeyDir
        from .vcar import VirtualCar

        self.root = Path(root)
        state = self.root / "flash" / "state"
        car = VirtualCar(state)
        owner = KeyDir(self.root / "owner")
        # The card's bench setup first: once provisioned, the car is installed and takes
        # only owner-signed requests (docs/SECURITY.md).
        car.init()
        master = bytes(range(16))
        car.set_card_master_key(master)
        self.card_uid = bytes.fromhex("04a1b2c3d4e5f6")
        car.enroll_card(self.card_uid, "driver")
        ident = car.provision(owner.init(), int(time.time()))
        self.group_id = bytes.fromhex(ident["group_id"])
        owner.trust(self.group_id, bytes.fromhex(ident["reader_public_key"]))
        self.card_keys = None
        card = ntag424.EmulatedCard(self.card_uid)
        ntag424.provision(ntag424.CardLink(card), master, self.card_uid)
        self.card_keys = list(card.keys)
        friend = KeyDir(self.root / "friend")
        friend_pub = friend.init()
        friend.trust(self.group_id, bytes.fromhex(ident["reader_public_key"]))
        now = int(time.time())
        friend.add_share_document(self.group_id, documents.make_share(
            owner.private_key(), self.group_id, friend_pub, "driver", serial=owner.next_serial(),
            valid_from=now - 60))

    def copy(self, dest):
        shutil.copytree(self.root, dest)
        return Path(dest)


class _Lines:
    """JSON lines of the running application, read on a thread."""

    def __init__(self, proc):
        self.proc = proc
        self.events = queue.Queue()
        self.text = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        for raw in self.proc.stdout:
            self.text.append(raw)
            try:
                obj = json.loads(raw)
            except ValueError:
                continue
            if isinstance(obj, dict):
                self.events.put(obj)
        self.events.put(None)

    def next(self, timeout):
        try:
            ev = self.events.get(timeout=timeout)
        except queue.Empty:
            raise CarkeyError(f"nothing from the application within {timeout} s") from None
        if ev is None:
            raise CarkeyError("the application stopped: " + "".join(self.text[-20:]))
        if "tables" in ev:
            raise CarkeyError("a verification table did not fit the heap")
        return ev


def _qstr_pool(lines, timeout=5):
    """{"n_qstr": N, "n_total_bytes": N, ...} from the "qstr pool:" line after the resident
    figure: the interpreter's string pool, part of the resident heap."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for raw in reversed(lines.text):
            if raw.startswith("qstr pool:"):
                return {k: int(v) for k, v in (f.strip().split("=") for f in raw[len("qstr pool:"):].split(","))}
        time.sleep(0.02)
    return None


def _expect_tap(lines, transport, what):
    ev = lines.next(STEP_TIMEOUT_S)
    if ev.get("tap") != transport or not ev.get("granted"):
        raise CarkeyError(f"{what}: {ev}")
    return ev


def run_once(template, board, heapsize, workdir, fragment=False):
    """One whole-application run at `heapsize` (None: the default heap). Returns
    {"ok": bool, "resident": bytes or None, "error": str or None}.

    fragment=True: once started, the application's free heap is cut into holes of
    about 1 KiB (boards/virtual_hw/app_heap.py, _fragment: result["fragmented"]), and
    the run is the tap path only: a standard and a fast BLE tap and an NFC phone tap
    (the card tap and a friend's share load code on demand, which needs larger blocks)."""
    from . import ntag424
    from .ble_phone import device_name, visit_car
    from .keydir import KeyDir
    from .phone import Phone
    from .pn532_sim import PhoneTarget, Pn532Sim
    from .virtual_air import VirtualAir

    root = template.copy(workdir)
    flash = root / "flash"
    state = flash / "state"
    owner = Phone(KeyDir(root / "owner"))
    friend = Phone(KeyDir(root / "friend"))
    card = ntag424.EmulatedCard(template.card_uid)
    card.keys = list(template.card_keys)
    name = device_name(template.group_id)
    result = {"ok": False, "resident": None, "error": None}
    with VirtualAir(port=0) as air, Pn532Sim() as sim:
        env = board_layout(flash)
        env["CARKEY_PN532"] = sim.path
        env["CARKEY_AIR"] = "%s:%d" % tuple(air.address)
        proc = runner.launch("-c", _PROGRAM.format(board=board, state=str(state), fragment=fragment),
                             heapsize=heapsize, env=env, cwd=flash, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        lines = _Lines(proc)
        try:
            ev = lines.next(STEP_TIMEOUT_S)
            if ev.get("heap") != "resident":
                raise CarkeyError(f"start-up: {ev}")
            result["resident"] = ev["alloc"]
            result["modules"] = ev.get("modules")
            result["qstr_pool"] = _qstr_pool(lines)
            if fragment:
                ev = lines.next(STEP_TIMEOUT_S)
                if "fragmented" not in ev:
                    raise CarkeyError(f"fragmenting the heap: {ev}")
                result["fragmented"] = ev["fragmented"]
            for number in (1, 2):
                txn, log = visit_car(owner, air.address, name, number, timeout=STEP_TIMEOUT_S)
                if txn.control_flow != (1, 0):
                    raise CarkeyError(f"BLE tap {number}: {log.error or txn.control_flow}")
                result[f"BLE tap {number}"] = _expect_tap(lines, 2, f"BLE tap {number}")
            for what, target in (("NFC phone tap", PhoneTarget(owner)), ("card tap", card))[:1 if fragment else 2]:
                sim.place(target)
                result[what] = _expect_tap(lines, 1, what)
                sim.remove()
                empty = sim.empty_polls
                sim.wait_for(lambda s: s.empty_polls > empty, timeout=STEP_TIMEOUT_S)
            if not fragment:
                result["friend_tap"] = _friend_share(lines, proc, air, name, friend, state)
            if proc.poll() is not None:
                raise CarkeyError("the application stopped")
            result["ok"] = True
        except Exception as e:  # noqa: BLE001 - any failure of the run is a failed size, with its reason
            result["error"] = f"{type(e).__name__}: {e}"
            result["output"] = "".join(lines.text[-30:])
        finally:
            runner.stop(proc)
    out = "".join(lines.text)
    if result["ok"] and ("Traceback" in out or "MemoryError" in out):
        result["ok"] = False
        result["error"] = out[-1500:]
    return result


def _friend_share(lines, proc, air, name, friend, state):
    """A friend's BLE tap with an owner-signed share document, then the friend's
    verification table built while idle. Returns the tap's event."""
    from .ble_phone import visit_car

    tables = len(list(state.glob("vt*.a")))  # committed tables (a first save ends in .a)
    txn, log = visit_car(friend, air.address, name, 3, timeout=STEP_TIMEOUT_S)
    if txn.control_flow != (1, 0):
        raise CarkeyError(f"friend's BLE tap with a share document: {log.error or txn.control_flow}")
    tap = _expect_tap(lines, 2, "friend's BLE tap")
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while len(list(state.glob("vt*.a"))) <= tables:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise CarkeyError("the friend's verification table was not built")
        try:
            ev = lines.events.get(timeout=0.1)
        except queue.Empty:
            continue
        raise CarkeyError(f"while the friend's table was being built: {ev or 'the application stopped'}")
    return tap


class Scan:
    """The peak search for one board: every run from a fresh copy of `template`."""

    def __init__(self, template, board, workroot, jobs=1, progress=None):
        self.template = template
        self.board = board
        self.workroot = Path(workroot)
        self.jobs = jobs
        self.progress = progress
        self.results = {}
        self._n = 0

    label = None  # what the progress lines call a run; the board's name unless set

    def run_one(self, size, work):
        """One run at `size` in the fresh folder `work`: run_once's result dict."""
        return run_once(self.template, self.board, size, work)

    def passes(self, sizes):
        todo = [s for s in sizes if s not in self.results]
        label = self.label or self.board

        def one(size):
            self._n += 1
            work = self.workroot / f"{label}-{size // KIB}k-{self._n}"
            r = self.run_one(size, work)
            shutil.rmtree(work, ignore_errors=True)
            return size, r

        with ThreadPoolExecutor(max(1, self.jobs)) as pool:
            for size, r in pool.map(one, todo):
                self.results[size] = r
                if self.progress:
                    why = " | ".join(str(r["error"]).splitlines())[-160:]  # the last lines: what failed where
                    self.progress(f"    {label} at {size // KIB} KiB: {'ok' if r['ok'] else 'fails: ' + why}")
        return [self.results[s]["ok"] for s in sizes]

    def checkpoints(self, edge):
        fine = list(range(edge, edge + FINE_SPAN + 1, KIB))
        start = (edge + FINE_SPAN) // (4 * KIB) * (4 * KIB) + 4 * KIB
        coarse = list(range(start, edge + FULL_SPAN, 4 * KIB))
        return fine + coarse + [edge + FULL_SPAN]

    def peak(self):
        if not self.passes([START_HEAP])[0]:
            raise CarkeyError(f"{self.board}: the application does not pass even at {START_HEAP // KIB} KiB: "
                              f"{self.results[START_HEAP]['error']}")
        # Coarse: bisect to within COARSE_STEP of a pass/fail boundary (it need not be
        # the last one: the fine pass below moves the edge up past any failure).
        bad, good = MIN_HEAP, START_HEAP
        while good - bad > COARSE_STEP:
            mid = (bad + good) // 2 // KIB * KIB
            if self.passes([mid])[0]:
                good = mid
            else:
                bad = mid
        edge = bad + KIB
        # Fine: the smallest edge from which every checkpoint up to +64 KiB passes.
        while True:
            points = self.checkpoints(edge)
            batch = max(1, self.jobs)
            failed = None
            for i in range(0, len(points), batch):
                chunk = points[i:i + batch]
                for size, ok in zip(chunk, self.passes(chunk)):
                    if not ok:
                        failed = size
                        break
                if failed is not None:
                    break
            if failed is None:
                return edge
            edge = failed + KIB

    def resident(self):
        rs = [r["resident"] for r in self.results.values() if r["resident"]]
        return min(rs) if rs else None


def measure(boards=BOARDS, jobs=1, progress=print, peak=True):
    """{"app_resident_bytes": {...}, "app_peak_heap_bytes": {...}} for `boards`, each also
    x 0.70 as a 32-bit estimate."""
    resident, peaks, pools = {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        template = Template(Path(tmp) / "template")
        for board in boards:
            progress(f"  {board}: the whole application, start-up and every kind of tap...")
            scan = Scan(template, board, tmp, jobs, progress)
            # The resident heap at the default heap size: the collector has room, so the
            # figure is what stays, not what a tight heap happened to leave.
            first = run_once(template, board, None, Path(tmp) / f"{board}-default")
            if not first["ok"]:
                raise CarkeyError(f"{board}: the application failed at the default heap: {first['error']}")
            resident[board] = first["resident"]
            if first.get("qstr_pool"):
                pools[board] = first["qstr_pool"]["n_total_bytes"]
            if board == MODULE_TABLE_BOARD:
                modules = per_module(first["modules"])
            if peak:
                peaks[board] = scan.peak()
                progress(f"  {board}: resident {resident[board] // KIB} KiB, peak {peaks[board] // KIB} KiB "
                         f"({len(scan.results)} runs)")
    rows = {"app_resident_bytes": dict(resident)}
    if MODULE_TABLE_BOARD in resident:
        rows["app_module_heap_bytes"] = {MODULE_TABLE_BOARD: dict(modules)}
        rows["app_resident_less_stand_ins_bytes"] = {
            MODULE_TABLE_BOARD: resident[MODULE_TABLE_BOARD] - sum(n for m, n in modules if m in STAND_INS)}
    if pools:
        rows["app_qstr_pool_bytes"] = pools
    notes = {"resident": "heap held after start-up (imports, car, radios, precompute pool, the owner's "
                         "verification table built), after gc.collect(), at the default heap size",
             "boards": "each board's own description on the virtual board's stand-ins (boards/virtual_hw/app_heap.py)",
             "less_stand_ins": "resident minus the module heap of the stand-ins and harness (STAND_INS: code a "
                               "real board holds in C or not at all); their objects (the virtual air's socket, "
                               "the car body's state) are not subtracted, so a board holds a little less still",
             "qstr_pool": "the interpreter's string pool (names, file names) inside the resident figure, "
                          "micropython.qstr_info() n_total_bytes",
             "est_32bit_basis": f"x {SIZE_32BIT}: a 32-bit build of the same MicroPython held 0.70-0.71x this "
                                "64-bit port's heap for the whole application (an estimate, not a measurement)"}
    est = {"resident": {b: int(v * SIZE_32BIT) for b, v in resident.items()}}
    if peak:
        rows["app_peak_heap_bytes"] = dict(peaks)
        est["peak"] = {b: int(v * SIZE_32BIT) for b, v in peaks.items()}
        notes["peak"] = ("smallest -X heapsize from which every size up to +64 KiB passes (1 KiB steps to +16 KiB, "
                         "4 KiB beyond); each run from fresh state: boot, BLE standard, BLE fast, NFC phone, "
                         "NTAG 424 card, a friend's share, then the friend's verification table built while idle")
    rows["app_heap_32bit_est_bytes"] = est
    rows["app_heap_notes"] = notes
    return rows


MODULE_TABLE_BOARD = "esp32_devkitc"
# Modules of the virtual board's stand-ins and of this harness: on a real board the
# radio is C and the car body, pty UART and harness do not exist.
STAND_INS = ("bluetooth", "virtual_hw", "virtual_hw.car_body", "virtual_hw.uart", "virtual_hw.platform",
             "virtual_hw.host", "app_heap", "carkey.hw.pn532_hsu")


def board_layout(cwd):
    """Environment for a run in `cwd` whose firmware is found as a board finds it: the
    compiled tree as `lib` beside the state (the board's /lib), so every module's
    `__file__`, a string the interpreter keeps in its pool, is as long as on a board
    ("lib/carkey/ecu/app.mpy" here, "/lib/carkey/ecu/app.mpy" there), not as long as
    this checkout's path. The virtual board's stand-ins are compiled too (at -O0: their
    tracebacks keep line numbers): imported from source, the Unix port would run its
    compiler in the middle of the application (the PN532 stand-in's UART loads when
    the NFC task starts), with allocations no board makes."""
    from .build import compile_firmware

    lib = Path(cwd) / "lib"
    if not lib.exists():
        lib.symlink_to(runner.compiled_firmware(), target_is_directory=True)
    stand_ins = paths.BUILD_DIR / "mpy-stand-ins"
    compile_firmware(stand_ins / "virtual_hw", root=runner.VIRTUAL_HW, opt=0)
    return runner.environment("lib", extra_paths=[stand_ins, stand_ins / "virtual_hw", runner.BOARDS_DIR])


def per_module(modules):
    """[(module, bytes)]: the heap each module of a started application holds, charged
    in import order (carkey_host.module_heap)."""
    from .module_heap import module_heap

    with tempfile.TemporaryDirectory() as cwd:
        rows = module_heap(modules, [paths.FIRMWARE_DIR, runner.BOARDS_DIR, runner.VIRTUAL_HW], board_layout(cwd), cwd=cwd)
    return sorted(rows, key=lambda r: -r[1])
