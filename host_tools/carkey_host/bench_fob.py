"""`make bench` rows for the key fob: its compute per transaction, its heap, press-to-unlock.

  fob_std_txn, fob_fast_txn   the fob's side of a transaction (firmware/carkey/fob/bench.py),
                              MicroPython on this host, and an ESP32-C3 estimate
  fob_peak_heap_bytes         the smallest heap from which the fob application, as
                              firmware/main.py runs it under board config esp32_c3_fob on
                              the virtual fob, serves a standard and a fast press of its
                              button against a virtual car, every size up to +64 KiB too
                              (carkey_host.fob_heap); target <= 96 KiB on this 64-bit port
  fob_press_to_unlock_est_ms  button to door unlocked, part by part (docs/FOB.md)

The ESP32-C3 is a 160 MHz RISC-V core with no published figure for the calibration
workload (MicroPython's bm_pidigits): its estimates use the ESP32's published figure
at 160 MHz (97.8 ms per run) as a stand-in: estimate = (op time / reference time on
this host, median of per-round ratios, same heap) x 97.8 ms.
"""

import json
import tempfile

from . import fob_heap, paths, runner
from .build import compile_firmware

MPY_DIR = paths.BUILD_DIR / "mpy"
FIXTURE = paths.BUILD_DIR / "fob-bench-fixture.json"
BOARD = "esp32_c3_fob"  # the board config the whole-application row runs (boards/)
T_REF_160MHZ_MS = 97.8  # bm_pidigits on an ESP32 at 160 MHz (MicroPython commit 549448e8): the C3 stand-in
HEAPSIZE = "176k"  # timed where the whole application fits with headroom (its peak is ~150 KiB here)
PEAK_BUDGET = 96 * 1024
PRESS_TARGET_MS = 800

# The parts of press-to-unlock that are not measured here, each with its source (docs/FOB.md).
WAKE_BOOT_MS = 309  # ESP-IDF deep_sleep_wake_stub example log: "I (309) cpu_start: Starting scheduler"
ADV_INTERVAL_MS = 200  # the car's advertising interval (carkey.hw.ble_gatt _ADV_INTERVAL_US)
CONN_INTERVAL_MS = 15  # the fob asks 7.5-15 ms (carkey.hw.ble_central); the worst of it
SETUP_ROUND_TRIPS = 5  # MTU exchange, service and characteristic discovery, CCCD write, ready write
SETUP_ROUND_TRIPS_KNOWN = 3  # a known car's handles kept: MTU exchange, CCCD write, ready write
EVENTS_PER_APDU = 2  # a command indication, then the answer's write request (MTU 247: one chunk each)
EVENTS_BEFORE_REQUEST = 5  # SELECT and AUTH0 (2 each), the hello's indication: all before the gesture is needed
EVENTS_AFTER_GESTURE = 1  # the fob's answer to the hello (the request) as one write request
# ble.active(True) on an ESP32 with MicroPython 1.12: "normally take around 200ms"
# (micropython/micropython issue #5489). Not a C3, not a current release: shown beside
# the estimate, not in it, until a board measures it.
BLE_START_MS = 200
RELAY_OPERATE_MS = 10  # Songle SRD-05VDC-SL-C datasheet: operate time 10 ms max
DOUBLE_MS = 350  # carkey.fob.button default: a short press is known this long after release


def make_fixture(path=FIXTURE):
    """Record the transactions the fob rows replay: the firmware reader and a fresh
    firmware fob, one standard and one fast tap (carkey_host/mpy/fob_recorder.py)."""
    compile_firmware(MPY_DIR)
    with tempfile.TemporaryDirectory() as state, runner.Firmware(env=runner.environment(MPY_DIR)) as firmware:
        fx = firmware.call("fob_recorder", "record", state)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(fx))
    return path


def run_ops(names, runs, heapsize=HEAPSIZE, timeout=600):
    with tempfile.TemporaryDirectory() as state:
        proc = runner.run("-m", "carkey.fob.bench", f"--runs={runs}", f"--fixture={FIXTURE}", f"--state={state}",
                          f"--board={BOARD}", *names, heapsize=heapsize,
                          env=runner.environment(MPY_DIR, extra_paths=[runner.BOARDS_DIR]), timeout=timeout)
    out = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            rec = json.loads(line)
            if "error" not in rec:
                out[rec["op"]] = rec
    return out


def _est(rec):
    return round(rec["ratio_median"] * T_REF_160MHZ_MS, 1)


def press_estimate(import_board_ms, import_wake_ms, import_rest_ms, fob_crypto_ms, keygen_ms, car_crypto_ms):
    """Button to unlocked for a short press on a known car, part by part (docs/FOB.md).

    The critical path: the wake and the board config (main.py loads it before the
    application); then two things side by side: the gesture's double-press window
    (its timers count from when the application begins to load; the tap that woke
    the fob was over before) and the serial work of starting the radio (the rest of
    the imports it waits for, the connection at the car's next advertising event
    while the rest of the code loads, the setup round trips, SELECT, AUTH0 and the
    hello with the crypto of both ends); then the fob's request, the car's crypto
    and the relay. The car's crypto (its whole fast transaction) is counted on both
    sides of the gesture: an upper bound, since it is split between them.
    """
    car = car_crypto_ms or 0
    connect = ADV_INTERVAL_MS / 2  # straight to the known address: its next advertising event
    setup = SETUP_ROUND_TRIPS_KNOWN * CONN_INTERVAL_MS
    before = EVENTS_BEFORE_REQUEST * CONN_INTERVAL_MS
    app_imports = max(0.0, import_wake_ms - import_board_ms)
    radio_side = app_imports + max(connect, import_rest_ms) + setup + before + fob_crypto_ms + car
    after = EVENTS_AFTER_GESTURE * CONN_INTERVAL_MS + car + RELAY_OPERATE_MS

    def total(side):
        return WAKE_BOOT_MS + import_board_ms + max(DOUBLE_MS, side) + after

    # A car not visited since the fob lost power: scan, connect, discover, and the
    # ephemeral key made now (RTC memory lost with the power).
    unknown_side = (app_imports + max(ADV_INTERVAL_MS / 2 + ADV_INTERVAL_MS, import_rest_ms + keygen_ms)
                    + SETUP_ROUND_TRIPS * CONN_INTERVAL_MS + before + fob_crypto_ms + car)
    est = total(radio_side)
    parts = {
        "wake_boot_ms": WAKE_BOOT_MS,
        "board_config_ms": import_board_ms,
        "gesture_window_ms": DOUBLE_MS,
        "radio_side_ms (beside the gesture window)": round(radio_side, 1),
        "  imports_before_radio_ms": round(app_imports, 1),
        "  connect_ms (known address)": connect,
        "  import_while_connecting_ms": import_rest_ms,
        "  setup_ms": setup,
        "  before_request_ms (SELECT, AUTH0, hello)": before,
        "  fob_crypto_ms": fob_crypto_ms,
        "  car_crypto_ms": car_crypto_ms,
        "request_ms": EVENTS_AFTER_GESTURE * CONN_INTERVAL_MS,
        "car_crypto_after_request_ms": car_crypto_ms,
        "actuator_ms": RELAY_OPERATE_MS,
    }
    return {
        "est_ms": round(est, 1), "target_ms": PRESS_TARGET_MS, "within_target": est <= PRESS_TARGET_MS,
        "breakdown": parts, "unknown_car_est_ms": round(total(unknown_side), 1),
        "with_ble_start_est_ms": round(total(radio_side + BLE_START_MS), 1), "ble_start_ms": BLE_START_MS,
        "path": "wake + board config, then max(double-press window, radio side: imports, connect while the rest "
                "loads, setup, SELECT/AUTH0/hello, both ends' crypto), then the request, the car's crypto, the relay",
        "not_counted": "BLE stack start-up (ble.active) after wake: with_ble_start_est_ms adds "
                       f"{BLE_START_MS} ms (an ESP32 on MicroPython 1.12, micropython issue #5489)"
                       + ("" if car_crypto_ms is not None else "; the car's crypto (run the reader rows)"),
    }


def rows(results=None, runs=15, progress=print):
    """The fob's rows; `results` (the other rows of this run) gives the car's reader_fast_txn."""
    compile_firmware(MPY_DIR)
    make_fixture()
    progress(f"fob: transactions, keygen and imports at {HEAPSIZE} heap ({runs} runs each)...")
    timed = {}
    names = ("fob_std_txn", "fob_fast_txn", "fob_keygen", "fob_import", "fob_import_board", "fob_import_wake",
             "fob_import_rest")
    for name in names:
        timed.update(run_ops([name], runs))  # one process each: no op inherits another's heap
    missing = [n for n in names if n not in timed]
    if missing:
        raise RuntimeError(f"fob benchmark failed for {missing}")
    progress("fob: peak heap of the whole application (two wakes against a virtual car per heap size)...")
    heap = fob_heap.measure(progress=progress)
    basis = (f"ratio to bm_pidigits on this host at {HEAPSIZE} heap x {T_REF_160MHZ_MS} ms (ESP32 at 160 MHz, "
             "a stand-in: no published ESP32-C3 figure)")
    out = {}
    for name in ("fob_std_txn", "fob_fast_txn"):
        rec = timed[name]
        out[name] = {"mpy_ms": round(rec["median_us"] / 1000, 3), "ratio_to_ref": round(rec["ratio_median"], 2),
                     "esp32c3_est_ms": _est(rec), "esp32_est_ms": _est(rec), "est_basis": basis}
    out["fob_std_txn"]["keygen_overlapped_est_ms"] = _est(timed["fob_keygen"])
    peak = heap["peak_heap_bytes"]
    out["fob_peak_heap_bytes"] = dict(heap, budget_bytes=PEAK_BUDGET, within_budget=peak <= PEAK_BUDGET,
                                      what=f"the fob application as firmware/main.py runs it, board config {BOARD}, "
                                           "on the virtual fob's stand-ins (included: the virtual bluetooth, its "
                                           "platform, the harness; stand_ins_bytes), two wakes by a tap on the "
                                           "button against the car's application on the virtual air, a standard "
                                           "then a fast unlock, both granted; the smallest heap from which every "
                                           "size up to +64 KiB passes (carkey_host.fob_heap)")
    reader_fast = None
    if results and isinstance(results.get("reader_fast_txn"), dict):
        reader_fast = results["reader_fast_txn"].get("esp32_est_ms")
    out["fob_press_to_unlock_est_ms"] = press_estimate(
        import_board_ms=_est(timed["fob_import_board"]), import_wake_ms=_est(timed["fob_import_wake"]), import_rest_ms=_est(timed["fob_import_rest"]),
        fob_crypto_ms=out["fob_fast_txn"]["esp32c3_est_ms"], keygen_ms=_est(timed["fob_keygen"]),
        car_crypto_ms=reader_fast)
    out["fob_press_to_unlock_est_ms"]["import_all_ms"] = _est(timed["fob_import"])
    return out


def print_rows(fob):
    """Print the fob's rows; returns them."""
    std, fast = fob["fob_std_txn"], fob["fob_fast_txn"]
    print(f"fob_std_txn: {std['mpy_ms']:.2f} ms here, ESP32-C3 est {std['esp32c3_est_ms']:.0f} ms "
          f"(+ {std['keygen_overlapped_est_ms']:.0f} ms keygen while the radio connects)")
    print(f"fob_fast_txn: {fast['mpy_ms']:.2f} ms here, ESP32-C3 est {fast['esp32c3_est_ms']:.0f} ms")
    heap = fob["fob_peak_heap_bytes"]
    after = heap["after_press_bytes"]
    print(f"fob_peak_heap_bytes: {heap['peak_heap_bytes'] // 1024} KiB (budget {heap['budget_bytes'] // 1024} KiB: "
          f"{'met' if heap['within_budget'] else 'MISSED'}; of it the virtual board's stand-ins' modules "
          f"{heap['stand_ins_bytes'] // 1024} KiB, a board's estimate {heap['peak_less_stand_ins_bytes'] // 1024} KiB; "
          f"live after a press: standard {after['standard'] // 1024}, fast {after['fast'] // 1024} KiB)")
    press = fob["fob_press_to_unlock_est_ms"]
    parts = ", ".join(f"{k} {v}" for k, v in press["breakdown"].items())
    print(f"fob_press_to_unlock_est_ms: {press['est_ms']:.0f} ms (target {press['target_ms']}: "
          f"{'met' if press['within_target'] else 'MISSED'}; with the BLE stack's start "
          f"{press['with_ble_start_est_ms']:.0f} ms; a car not known since a power cut: "
          f"{press['unknown_car_est_ms']:.0f} ms) = {parts}; not counted: {press['not_counted']}")
    return fob


if __name__ == "__main__":
    import sys

    print(json.dumps(print_rows(rows(runs=int(sys.argv[1]) if len(sys.argv) > 1 else 15)), indent=2))

