"""`make bench`: firmware crypto and transaction timings, MicroPython against CPython.

For every operation in firmware/carkey/bench.py this measures, in one run:
  mpy_ms           median on the MicroPython Unix port, default heap
  mpy_64k_ms       median with `-X heapsize=64k` (a small ESP32 build's heap)
  cpython_ms       median of the same work in CPython with `cryptography` (OpenSSL)
  ratio            mpy_64k_ms / cpython_ms
  esp32_est_ms     median over rounds of (t_op / t_ref) x T_ref: every timed run follows
                   a run of the reference workload (65 digits of pi, whose ESP32 time is
                   published) at the same heap; T_ref = 65.2 ms on an ESP32 at 240 MHz
                   (docs/PERFORMANCE.md, "ESP32 estimate")
  peak_heap_bytes  smallest heap, in 1 KiB steps, in which the operation (with its
                   imports) runs to completion
  alloc_bytes      bytes allocated by one run (garbage the collector must reclaim)
and writes them to build/bench.json, keyed by operation name, with a "calibration"
entry naming the interpreter that ran ($CARKEY_MICROPYTHON, $CARKEY_MPY_CROSS select
another MicroPython build for every row).
"""

import argparse
import json
import os
import statistics
import subprocess
import time
from pathlib import Path

from . import paths, runner
from .build import compile_firmware

# The benchmark runs the firmware as boards do: compiled .mpy, not source.
MPY_DIR = paths.BUILD_DIR / "mpy"
BUILD_BENCH_MPY = MPY_DIR

# The reference workload's published ESP32 time: MicroPython commit 549448e8 (2021,
# "esp32: Enable optimisations and move code to iRAM"), bm_pidigits score 664.40 on a
# TinyPICO at 160 MHz (score = 1e6 x 65 / us), so 97.8 ms; the same commit says the
# benchmark scales with the CPU clock, so 97.8 x 160 / 240 = 65.2 ms at 240 MHz, the
# clock the car application sets at boot (carkey.hw.platform).
T_REF_160MHZ_MS = 97.8
ESP32_MHZ = 240
T_REF_MS = round(T_REF_160MHZ_MS * 160 / ESP32_MHZ, 1)
REF_DIGITS = 65
TARGETS_ESP32_MS = {"std_txn": 1000, "fast_txn": 10, "reader_std_txn": 500, "reader_fast_txn": 15,
                    "nfc_fast_tap_est_ms": 120}
# app_peak_heap_bytes target on this 64-bit port: ~100 KiB on a 32-bit ESP32-WROOM-32
# (no PSRAM), which gives MicroPython roughly 110-130 KiB once BLE is up.
APP_PEAK_BUDGET = {"esp32_devkitc": 144 * 1024}
HEAP_STEP = 1024
HEADROOM = 16 * 1024  # what a 64 KiB heap leaves the crypto rows above their peaks, roughly
HEAP_LIMIT = 512 * 1024


class BenchError(RuntimeError):
    pass


READER_OPS = ("reader_std_txn", "reader_fast_txn", "reader_after_tap")
FIXTURE = paths.BUILD_DIR / "bench-fixture.json"
READER_STATE = paths.BUILD_DIR / "bench-state"


def _bench_reader(fn, *args, timeout=120):
    """carkey.bench_reader.fn(*args), run on the compiled firmware; its result."""
    try:
        with runner.Firmware(env=runner.environment(MPY_DIR)) as firmware:
            return firmware.request("call", timeout=timeout, module="carkey.bench_reader", fn=fn, args=list(args))
    except runner.MicroPythonError as e:
        raise BenchError(f"recording the reader's taps failed: {e}\n{e.traceback}") from None
    except runner.RunnerError as e:
        raise BenchError(f"recording the reader's taps failed: {e}") from None


def record_reader_fixture(path=FIXTURE):
    """Record one standard and one fast tap of the firmware ECU against the simulated
    phone, so the benchmark can replay them byte for byte (carkey.bench_reader)."""
    import tempfile
    import threading

    from .keydir import KeyDir
    from .phone import Phone

    with tempfile.TemporaryDirectory() as tmp:
        phone_keys = KeyDir(os.path.join(tmp, "phone"))
        owner = phone_keys.init()
        fixture = _bench_reader("new_fixture", owner.hex())
        identity = bytes.fromhex(fixture["identity"])
        phone_keys.trust(identity[5:21], identity[69:])  # group id, reader public key (identity.py layout)
        phone = Phone(phone_keys)
        listening = threading.Event()
        where = []

        def on_listening(sockname):
            where.append(sockname)
            listening.set()

        server = threading.Thread(target=phone.serve, args=("127.0.0.1", 0, "lp", 2, on_listening), daemon=True)
        server.start()
        if not listening.wait(10):
            raise BenchError("the simulated phone did not start listening")
        fixture = _bench_reader("record", os.path.join(tmp, "car"), fixture, "127.0.0.1", where[0][1])
        server.join(10)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(fixture))
    return path


def run_firmware(names, runs, heapsize=None, timeout=600):
    proc = runner.run("-m", "carkey.bench", f"--runs={runs}", f"--fixture={FIXTURE}", f"--state={READER_STATE}", *names,
                      heapsize=heapsize, env=runner.environment(MPY_DIR), timeout=timeout)
    results = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            results[record["op"]] = record
    missing = [n for n in names if n not in results]
    if missing and heapsize is None:
        raise BenchError(f"firmware benchmark failed for {missing}:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return results


class _Stepper:
    """One `carkey.bench --lockstep` process: a timed run per request."""

    def __init__(self, name, heapsize):
        self.proc = runner.launch("-m", "carkey.bench", "--lockstep", f"--fixture={FIXTURE}",
                                  f"--state={READER_STATE}-{name}", name, heapsize=heapsize,
                                  env=runner.environment(MPY_DIR), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, bufsize=1)
        self._line("ready")

    def _line(self, want=None):
        while True:
            line = self.proc.stdout.readline()
            if not line:
                return None
            line = line.strip()
            if want is None or line == want:
                return line

    def run(self):
        try:
            self.proc.stdin.write("\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            return None
        while True:
            line = self._line()
            if line is None:
                return None
            if line.isdigit():
                return int(line)

    def finish(self):
        try:
            self.proc.stdin.write("end\n")
            self.proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        last = None
        while True:
            line = self._line()
            if line is None:
                break
            if line.startswith("{"):
                last = json.loads(line)
        self.proc.wait(60)
        return last


def paired(name, heapsize, runs):
    """The operation timed run by run against the reference workload, each in its own
    process at the same -X heapsize, alternating (reference, then operation): the
    figures `estimate()` needs, or None if the operation fails at that heap."""
    ref = _Stepper("ref_pidigits", heapsize)
    op = _Stepper(name, heapsize)
    times, ref_times, ratios = [], [], []
    try:
        for _ in range(runs):
            t_ref = ref.run()
            t_op = op.run()
            if t_ref is None or t_op is None:
                return None
            times.append(t_op)
            ref_times.append(t_ref)
            ratios.append(t_op / max(t_ref, 1))
    finally:
        ref.finish()
        tail = op.finish()
    if tail is None:
        return None
    times.sort()
    ref_times.sort()
    ratios.sort()
    mid = runs // 2
    return {"median_us": times[mid], "min_us": times[0], "ref_median_us": ref_times[mid],
            "ratio_median": ratios[mid], "ratio_min": ratios[0], "ratio_q1": ratios[runs // 4],
            "ratio_q3": ratios[(3 * runs) // 4], "ratio_max": ratios[-1], "alloc_bytes": tail["alloc_bytes"],
            "free_bytes": tail["free_bytes"]}


def peak_heap(name):
    """Smallest heap (1 KiB steps) in which `name` completes three runs."""
    lo, hi = 4 * 1024, HEAP_LIMIT  # lo fails (the interpreter alone needs more), hi must succeed
    if name not in run_firmware([name], 3, heapsize=hi):
        return None
    while hi - lo > HEAP_STEP:
        mid = (lo + hi) // 2 // HEAP_STEP * HEAP_STEP
        if name in run_firmware([name], 3, heapsize=mid):
            hi = mid
        else:
            lo = mid
    return hi


# --- the same work in CPython, with cryptography ------------------------------------


def _cpython_ops():
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.cmac import CMAC
    from cryptography.hazmat.primitives.ciphers import algorithms
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    from cryptography.hazmat.primitives.kdf.x963kdf import X963KDF

    curve = ec.SECP256R1()
    digest = b"\x5a" * 32
    prehashed = ec.ECDSA(Prehashed(hashes.SHA256()), deterministic_signing=True)
    salt = os.urandom(165)
    info = os.urandom(32)
    iv = bytes(8) + b"\x00\x00\x00\x01"

    key = ec.generate_private_key(curve)
    peer = ec.generate_private_key(curve).public_key()
    sig = key.sign(digest, prehashed)
    pub = key.public_key()

    def keygen():
        k = ec.generate_private_key(curve)
        k.public_key().public_bytes  # noqa: B018 - the public point is part of keygen's output

    def hkdf(ikm):
        return HKDF(hashes.SHA256(), 160, salt, info).derive(ikm)

    def std_txn():
        eph = ec.generate_private_key(curve)
        z = eph.exchange(ec.ECDH(), peer)
        kdh = X963KDF(hashes.SHA256(), 32, b"\x77" * 16).derive(z)
        key.sign(digest, prehashed)
        pub.verify(sig, digest, prehashed)
        keys = hkdf(kdh)
        AESGCM(keys[:32]).encrypt(iv, msg64, None)

    msg64 = os.urandom(64)
    kpersistent = os.urandom(32)
    cryptogram_sk = hkdf(kpersistent)[:32]
    cryptogram = AESGCM(cryptogram_sk).encrypt(bytes(12), os.urandom(48), None)

    def fast_txn():
        keys = hkdf(kpersistent)
        AESGCM(keys[:32]).decrypt(bytes(12), cryptogram, None)

    def cmac64():
        c = CMAC(algorithms.AES(key16))
        c.update(msg64)
        return c.finalize()

    key16 = os.urandom(16)
    key32 = os.urandom(32)
    ikm = os.urandom(32)
    # The reader rows' per-tap crypto (after idle precomputation), as CPython does it:
    # the envelope, door and storage work has no CPython counterpart.
    def reader_std_txn():
        z = key.exchange(ec.ECDH(), peer)
        kdh = X963KDF(hashes.SHA256(), 32, b"\x77" * 16).derive(z)
        key.sign(digest, prehashed)
        pub.verify(sig, digest, prehashed)
        keys = hkdf(kdh)
        reader_channel(keys[:32], 3)

    def reader_fast_txn():
        keys = hkdf(kpersistent)
        AESGCM(keys[:32]).decrypt(bytes(12), cryptogram, None)
        reader_channel(keys[:32], 2)

    def reader_channel(k, messages):
        # AUTH1 answer (standard only), hello, its answer: a device that asks nothing
        # gets one EXCHANGE (docs/PROTOCOL.md §4).
        g = AESGCM(k)
        for n in range(1, messages + 1):
            g.encrypt(bytes(8) + n.to_bytes(4, "big"), msg64[:24], None)

    return {
        "p256_keygen": keygen,
        "p256_ecdh": lambda: key.exchange(ec.ECDH(), peer),
        "p256_sign": lambda: key.sign(digest, prehashed),
        "p256_verify": lambda: pub.verify(sig, digest, prehashed),
        "hkdf": lambda: hkdf(ikm),
        "gcm_64": lambda: AESGCM(key32).encrypt(iv, msg64, None),
        "cmac_64": cmac64,
        "std_txn": std_txn,
        "fast_txn": fast_txn,
        "reader_std_txn": reader_std_txn,
        "reader_fast_txn": reader_fast_txn,
    }


def time_cpython(fn, runs=200):
    fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


# --- the whole benchmark ----------------------------------------------------------


def run(names=None, runs=15, heap=True, progress=print, app=None, jobs=2):
    """Benchmark `names` (default: all) and return {name: figures}. `app` (default:
    when all operations run) adds the whole application's heap rows (carkey_host.app_heap)."""
    if app is None:
        app = not names
    cpython_ops = _cpython_ops()
    names = names or ["ref_pidigits"] + list(cpython_ops) + ["reader_after_tap"]
    compile_firmware(MPY_DIR)
    if any(n in READER_OPS for n in names):
        progress("recording a standard and a fast tap of the firmware ECU against the simulated phone...")
        record_reader_fixture()
    if heap:
        baseline = peak_heap("baseline")
        progress(f"heap the interpreter and the benchmark module need on their own: {baseline // 1024} KiB")
    progress(f"MicroPython, default heap ({len(names)} operations, {runs} runs each)...")
    default = run_firmware(names, runs)
    progress("MicroPython, 64 KiB heap...")
    small = run_firmware(names, runs, heapsize="64k")
    results = {"calibration": calibration(default.get("ref_pidigits") or default[names[0]])}
    for name in names:
        progress(f"  {name}: CPython timing{' and peak heap search' if heap else ''}")
        mpy_ms = default[name]["median_us"] / 1000
        mpy_64k_ms = small[name]["median_us"] / 1000 if name in small else None
        cpython_ms = time_cpython(cpython_ops[name]) if name in cpython_ops else None
        peak = peak_heap(name) if heap else None
        row = {
            "mpy_ms": round(mpy_ms, 4),
            "mpy_64k_ms": None if mpy_64k_ms is None else round(mpy_64k_ms, 4),
            "cpython_ms": None if cpython_ms is None else round(cpython_ms, 5),
            "ratio": None if not (mpy_64k_ms and cpython_ms) else round(mpy_64k_ms / cpython_ms, 1),
            "esp32_est_ms": None,
            "peak_heap_bytes": peak,
            "alloc_bytes": default[name]["alloc_bytes"],
        }
        board_heap = APP_PEAK_BUDGET["esp32_devkitc"]
        at_budget = paired(name, board_heap, runs) if name in READER_OPS else None
        at_64k = paired(name, 64 * 1024, runs) if at_budget is None and mpy_64k_ms is not None else None
        if at_budget is not None:
            # A tap as the car makes it: at the heap the board's budget allows.
            row["mpy_budget_heap_ms"] = round(at_budget["median_us"] / 1000, 4)
            row.update(estimate(at_budget, board_heap))
        elif at_64k is not None:
            row.update(estimate(at_64k, 64 * 1024))
        elif peak:
            # It does not fit 64 KiB: time it with the same headroom above its own peak
            # that a 64 KiB heap gives the operations that fit, and say so.
            heapsize = peak + HEADROOM
            timed = paired(name, heapsize, runs)
            if timed is not None:
                tight_ms = timed["median_us"] / 1000
                row["mpy_tight_heap_ms"] = round(tight_ms, 4)
                row["tight_heap_bytes"] = heapsize
                row["ratio"] = None if not cpython_ms else round(tight_ms / cpython_ms, 1)
                row.update(estimate(timed, heapsize))
                row["esp32_est_basis"] += f" (peak + {HEADROOM // 1024} KiB): fails in 64 KiB"
                if name in READER_OPS:
                    row["esp32_est_basis"] += f" and at the board budget {board_heap // 1024} KiB"
        if row.get("free_bytes_at_start") and row["alloc_bytes"] > 0:
            # Each collection frees the run's garbage and the run goes on allocating: one
            # pass per heap-full of allocation (an estimate from the two measured figures).
            row["gc_passes_per_run_est"] = round(row["alloc_bytes"] / row["free_bytes_at_start"], 1)
        results[name] = row
    if "reader_std_txn" in results and "reader_fast_txn" in results:
        results.update(nfc_rows(results))
        progress("BLE: counting connect-to-unlock exchanges of the ECU application on the virtual air...")
        results["ble_unlock_exchanges"] = ble_unlock_exchanges()
    if app:
        from . import app_heap

        progress("the whole application's heap per board config (resident, and the peak scan)...")
        results.update(app_heap.measure(jobs=jobs, progress=progress, peak=heap))
    return results


def estimate(measured, heapsize):
    """The ESP32 figures of one firmware measurement taken at `heapsize`: the median
    of the per-round ratios operation / reference times T_ref; the range is the middle
    half of the per-round ratios (one slow round on a shared machine does not widen
    it), the extremes are kept beside it."""
    return {
        "esp32_est_ms": round(measured["ratio_median"] * T_REF_MS, 2),
        "esp32_est_range_ms": [round(measured["ratio_q1"] * T_REF_MS, 2), round(measured["ratio_q3"] * T_REF_MS, 2)],
        "ratio_to_ref": round(measured["ratio_median"], 4),
        "ratio_to_ref_extremes": [round(measured["ratio_min"], 4), round(measured["ratio_max"], 4)],
        "ref_host_ms": round(measured["ref_median_us"] / 1000, 4),
        "timed_heap_bytes": heapsize,
        "free_bytes_at_start": measured.get("free_bytes"),
        "esp32_est_basis": (f"ratio to the reference, both at {heapsize // 1024} KiB (the reference in a heap "
                            f"holding nothing else, as its published time) x {T_REF_MS} ms ({ESP32_MHZ} MHz)"),
    }


def interpreter_version():
    proc = runner.run("-c", "import sys; print(sys.version, '%d-bit' % (64 if sys.maxsize > 1 << 32 else 32))",
                      timeout=30)
    return proc.stdout.strip() or proc.stderr.strip()


def calibration(ref_measurement):
    from .paths import mpy_cross_executable

    cross = mpy_cross_executable()
    cross_version = subprocess.run([cross, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    return {
        "reference": f"pi_digits({REF_DIGITS}): the unbounded spigot of MicroPython's perf_bench bm_pidigits (100, 100)",
        "t_ref_esp32_ms": T_REF_MS,
        "esp32_mhz": ESP32_MHZ,
        "t_ref_basis": (f"{T_REF_160MHZ_MS} ms at 160 MHz (MicroPython commit 549448e8, score 664.40, TinyPICO) "
                        f"x 160/{ESP32_MHZ}; the car application sets machine.freq({ESP32_MHZ}_000_000) at boot"),
        "ref_host_ms": round(ref_measurement["ref_median_us"] / 1000, 4),
        "interpreter": runner.interpreter(),
        "interpreter_version": interpreter_version(),
        "mpy_cross": cross,
        "mpy_cross_version": cross_version,
    }


def ble_unlock_exchanges(mtu=None):
    """Connect-to-unlock over BLE, counted on the virtual air with the whole ECU
    application (firmware main) on the virtual board: one owner phone visits twice,
    a standard then a fast transaction, each from connect to the car's disconnect."""
    import tempfile

    from . import ble_phone
    from .keydir import KeyDir
    from .phone import Phone
    from .vcar import RunningCar, VirtualCar
    from .virtual_air import VirtualAir

    mtu = mtu or ble_phone.PHONE_MTU
    out = {"mtu": mtu}
    with tempfile.TemporaryDirectory() as tmp:
        flash = Path(tmp) / "flash"
        keys = KeyDir(Path(tmp) / "phone")
        owner = keys.init()
        ident = VirtualCar(flash / "state").provision(owner, int(time.time()))
        group_id = bytes.fromhex(ident["group_id"])
        keys.trust(group_id, bytes.fromhex(ident["reader_public_key"]))
        phone = Phone(keys)
        with VirtualAir(port=0) as air, RunningCar(flash, air=air.address):
            for number, kind in enumerate(("standard", "fast"), 1):
                before = len(air.att_trace())
                txn, log = ble_phone.visit_car(phone, air.address, ble_phone.device_name(group_id), number, mtu)
                if txn.control_flow != (1, 0) or log.error:
                    raise BenchError(f"the {kind} BLE visit was not granted: {log.error or txn.control_flow}")
                trace = air.att_trace()[before:]
                counts = ble_phone.count_exchanges(trace, trace[0].conn)
                counts["apdus"] = len(log.commands)
                out[kind] = counts
    return out


NFC_INTERFACE = "i2c"  # the ESP32 DevKitC board's PN532 bus (boards/esp32_devkitc.py)


def nfc_rows(results, fixture_path=FIXTURE):
    """Tap-to-unlock over NFC = the reader's own ESP32 estimate + the PN532/ISO-DEP link
    time of the very APDUs the benchmark replayed (carkey_host.nfc_timing, docs/NFC.md)."""
    from . import nfc_timing

    fixture = json.loads(fixture_path.read_text())
    rows = {}
    for kind, reader_row, out in (("fast", "reader_fast_txn", "nfc_fast_tap_est_ms"),
                                  ("standard", "reader_std_txn", "nfc_std_tap_est_ms")):
        transcript = [(len(c) // 2, len(r) // 2) for c, r in fixture[kind]]
        link = nfc_timing.link_ms(transcript, NFC_INTERFACE)
        reader = results[reader_row]
        reader_ms = reader["esp32_est_ms"]
        rows[out] = {
            "esp32_est_ms": None if reader_ms is None else round(reader_ms + link.total_ms, 1),
            "reader_ms": reader_ms,
            "link_ms": round(link.total_ms, 1),
            "interface": NFC_INTERFACE,
            "apdus": len(transcript),
            "breakdown": link.breakdown,
            # The tap's own garbage: the reader row's, the link adds none on the car.
            "alloc_bytes": reader.get("alloc_bytes"),
            "gc_passes_per_run_est": reader.get("gc_passes_per_run_est"),
        }
    return rows


BOARD_FIXTURE = "/bench_fixture.json"
BOARD_STATE = "/bench_state"


def run_on_board(port, names=None, runs=5, progress=print, timeout=600):
    """The firmware benchmark on a board itself (deployed with `carkey deploy`): one
    operation per raw-REPL run, so a slow operation only has to finish within
    `timeout` seconds. The reader rows replay taps recorded here, copied to the board.
    Returns {name: {"board_ms", "min_ms", "runs", "alloc_bytes"}}."""
    from .deploy import Board
    from .errors import CarkeyError

    names = list(names or ["ref_pidigits"] + [n for n in _cpython_ops()] + ["reader_after_tap"])
    board = Board(port)
    results = {}
    try:
        # The benchmark's own modules are not deployed with the firmware: copy them now.
        from .deploy import BENCH_ONLY, PACKAGE_DIR

        compiled = BUILD_BENCH_MPY
        compile_firmware(compiled)
        for name in BENCH_ONLY:
            board.write_file(f"{PACKAGE_DIR}/{name}", (compiled / "carkey" / name).read_bytes())
        if any(n in READER_OPS for n in names):
            progress("recording a standard and a fast tap against the simulated phone...")
            board.write_file(BOARD_FIXTURE, record_reader_fixture().read_bytes())
        for name in names:
            progress(f"  {name} ({runs} runs on the board)...")
            code = (f"import carkey.bench as b\nb.main(['--runs={runs}', '--fixture={BOARD_FIXTURE}', "
                    f"'--state={BOARD_STATE}', {name!r}])\n")
            out, err = board.run(code, timeout)
            if err:
                raise CarkeyError(f"{name} failed on the board:\n{err.decode().strip()[-800:]}")
            for line in out.decode().splitlines():
                if line.startswith("{"):
                    r = json.loads(line)
                    if "error" in r:
                        raise CarkeyError(f"{name}: {r['error']}")
                    results[name] = {"board_ms": r["median_us"] / 1000, "min_ms": r["min_us"] / 1000,
                                     "runs": r["runs"], "alloc_bytes": r["alloc_bytes"],
                                     "ref_ms": r["ref_median_us"] / 1000, "ratio_to_ref": r["ratio_median"]}
        board.soft_reset()
    finally:
        board.close()
    return results


def print_table(results):
    from rich.console import Console
    from rich.table import Table

    cal = results.get("calibration")
    title = "carkey firmware benchmark (medians)"
    if cal:
        title += (f"; ESP32 est = median(t_op / t_ref) x {cal['t_ref_esp32_ms']} ms at {cal['esp32_mhz']} MHz; "
                  f"reference {cal['ref_host_ms']:.3f} ms here")
    table = Table(title=title)
    for col in ("operation", "mpy ms", "mpy 64k ms", "CPython ms", "ratio", "ref ms", "ESP32 est ms (range)",
                "target", "peak heap", "alloc/run", "GC/run"):
        table.add_column(col, justify="right" if col != "operation" else "left")
    for name, r in results.items():
        if not isinstance(r, dict) or "mpy_ms" not in r:
            continue  # calibration, radio and application rows: printed below
        est = r["esp32_est_ms"]
        target = TARGETS_ESP32_MS.get(name)
        if est is None:
            est_text, target_text = "fails", "-"
        else:
            lo, hi = r["esp32_est_range_ms"]
            digits = 1 if est >= 10 else 2
            est_text = f"{est:.{digits}f} ({lo:.{digits}f}..{hi:.{digits}f})"
            if r.get("timed_heap_bytes") != 64 * 1024:
                est_text += f" at {r['timed_heap_bytes'] // 1024}k"
            target_text = "-" if target is None else f"<= {target} {'met' if est <= target else 'MISSED'}"
        table.add_row(
            name,
            f"{r['mpy_ms']:.3f}",
            "-" if r["mpy_64k_ms"] is None else f"{r['mpy_64k_ms']:.3f}",
            "-" if r["cpython_ms"] is None else f"{r['cpython_ms']:.4f}",
            "-" if r["ratio"] is None else f"{r['ratio']:.0f}x",
            "-" if r.get("ref_host_ms") is None else f"{r['ref_host_ms']:.3f}",
            est_text,
            target_text,
            "-" if r["peak_heap_bytes"] is None else f"{r['peak_heap_bytes'] // 1024} KiB",
            "-" if r["alloc_bytes"] < 0 else f"{r['alloc_bytes']} B",
            "-" if r.get("gc_passes_per_run_est") is None else f"{r['gc_passes_per_run_est']:.1f}",
        )
    console = Console(width=180)
    console.print(table)
    if cal:
        console.print(f"interpreter: {cal['interpreter']} ({cal['interpreter_version']}); "
                      f"mpy-cross: {cal['mpy_cross']} ({cal['mpy_cross_version']})")
    for name, r in results.items():
        if "link_ms" not in r or r.get("esp32_est_ms") is None:
            continue
        target = TARGETS_ESP32_MS.get(name)
        verdict = "" if target is None else f" (target <= {target}: {'met' if r['esp32_est_ms'] <= target else 'MISSED'})"
        garbage = ""
        if r.get("alloc_bytes") is not None and r["alloc_bytes"] >= 0:
            garbage = f"; {r['alloc_bytes']} B allocated per tap"
            if r.get("gc_passes_per_run_est") is not None:
                garbage += f", about {r['gc_passes_per_run_est']:.1f} GC passes"
        console.print(f"{name}: {r['esp32_est_ms']:.1f} ms = reader {r['reader_ms']:.1f} + PN532 link "
                      f"{r['link_ms']:.1f} over {r['interface']} ({r['apdus']} APDUs){verdict}{garbage}")
    resident = results.get("app_resident_bytes")
    if resident:
        peaks = results.get("app_peak_heap_bytes", {})
        est = results["app_heap_32bit_est_bytes"]
        for board, n in resident.items():
            line = f"{board}: app_resident {n / 1024:.1f} KiB (32-bit est {est['resident'][board] / 1024:.0f} KiB)"
            if board in peaks:
                budget = APP_PEAK_BUDGET.get(board)
                verdict = "" if budget is None else (
                    f", target <= {budget // 1024} KiB: {'met' if peaks[board] <= budget else 'MISSED'}")
                line += (f", app_peak {peaks[board] / 1024:.0f} KiB (32-bit est {est['peak'][board] / 1024:.0f} KiB)"
                         + verdict)
            console.print(line)
    for board, mods in results.get("app_module_heap_bytes", {}).items():
        from .app_heap import SIZE_32BIT, STAND_INS

        total = sum(mods.values())
        stand_ins = sum(n for m, n in mods.items() if m in STAND_INS)
        console.print(f"{board}: modules hold {total / 1024:.1f} KiB, of which the virtual board's stand-ins and "
                      f"harness {stand_ins / 1024:.1f} KiB; largest: " + ", ".join(
                          f"{m} {n / 1024:.1f}" for m, n in list(mods.items())[:8]))
        less = results.get("app_resident_less_stand_ins_bytes", {}).get(board)
        if less:
            console.print(f"{board}: app_resident less the stand-ins' modules {less / 1024:.1f} KiB "
                          f"(32-bit est {less * SIZE_32BIT / 1024:.0f} KiB)")
    for board, n in results.get("app_qstr_pool_bytes", {}).items():
        console.print(f"{board}: of the resident heap, the string pool (names) {n / 1024:.1f} KiB")
    ble = results.get("ble_unlock_exchanges")
    if ble:
        for kind in ("standard", "fast"):
            c = ble[kind]
            console.print(f"ble_unlock_exchanges {kind} (MTU {ble['mtu']}): {c['apdus']} APDUs = {c['indications']} "
                          f"indications + {c['writes']} writes, {c['car_to_phone_bytes']} B car->phone, "
                          f"{c['phone_to_car_bytes']} B phone->car, {c['att_pdus']} ATT PDUs")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="carkey-bench", description=__doc__.splitlines()[0])
    parser.add_argument("operations", nargs="*", help="operations to run (default: all)")
    parser.add_argument("--runs", type=int, default=15, help="timed runs per operation (median reported)")
    parser.add_argument("--no-heap", action="store_true", help="skip the peak-heap searches")
    parser.add_argument("--app", action="store_true", help="the whole application's heap rows even with named operations")
    parser.add_argument("--no-app", action="store_true", help="skip the whole application's heap rows")
    parser.add_argument("--jobs", type=int, default=2, help="whole-application runs at once in the peak scan")
    parser.add_argument("--json", default=str(paths.BUILD_DIR / "bench.json"), help="where to write results")
    args = parser.parse_args(argv)
    app = True if args.app else (False if args.no_app else None)
    results = run(args.operations or None, args.runs, heap=not args.no_heap, app=app, jobs=args.jobs)
    print_table(results)
    if not args.operations:  # the key fob's rows: host_tools/carkey_host/bench_fob.py
        from . import bench_fob

        results.update(bench_fob.print_rows(bench_fob.rows(results, args.runs)))
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(results, f, indent=2, sort_keys=True)
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
