"""The fob benchmark: its heap row runs the real fob application, its timed rows replay a recording.

fob_peak_heap_bytes (carkey_host.fob_heap) runs the fob application as
firmware/main.py does, under board config esp32_c3_fob on the virtual fob's
stand-ins, against the car's application on the virtual air: a run passes only
when a standard and then a fast press are granted. firmware/carkey/fob/bench.py
imports no board by name: bench_fob.py passes --board, and without one the ops
that load the board refuse rather than guess. MicroPython Unix port throughout.

Run: .venv/bin/pytest -q tests/host/test_fob_bench.py
"""

import json

from carkey_host import bench_fob, fob_heap, runner
from carkey_host.build import compile_firmware


def test_heap_row_runs_the_fob_application_against_a_car(tmp_path):
    template = fob_heap.Template(tmp_path / "template")
    ok = fob_heap.run_once(template, fob_heap.START_HEAP, tmp_path / "big")
    assert ok["ok"], ok["error"]
    assert [p["kind"] for p in ok["presses"]] == ["standard", "fast"]
    assert not ok["presses"][0]["direct"] and ok["presses"][1]["direct"]  # the second wake used what the first kept
    # The application's own modules are what ran: no benchmark module, no fixture.
    modules = ok["presses"][0]["modules"]
    assert "carkey.fob.app" in modules and "carkey.hw.ble_central" in modules and "esp32_c3_fob" in modules
    assert "carkey.fob.bench" not in modules
    assert "carkey.fob.device" not in modules  # the transaction's code was dropped once the visit ended
    # A heap the application cannot run in fails the run: the row can miss.
    small = fob_heap.run_once(template, 64 * 1024, tmp_path / "small")
    assert not small["ok"] and "MemoryError" in small["error"], small


def test_board_ops_need_a_board(tmp_path):
    compile_firmware(bench_fob.MPY_DIR)
    fixture = bench_fob.make_fixture()
    env = runner.environment(bench_fob.MPY_DIR, extra_paths=[runner.BOARDS_DIR])
    proc = runner.run("-m", "carkey.fob.bench", "--runs=1", f"--fixture={fixture}", f"--state={tmp_path}",
                      "fob_import_wake", env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip()) == {"op": "fob_import_wake",
                                               "error": "needs --board=NAME (a board config module)"}


def test_the_recorded_fixture_replays_byte_for_byte(tmp_path):
    # The fixture is the host's own recording against the firmware reader (nothing under
    # tests/): the fob's answers to the recorded commands match the recording ...
    compile_firmware(bench_fob.MPY_DIR)
    fixture = bench_fob.make_fixture(tmp_path / "fixture.json")
    fx = json.loads(fixture.read_text())
    assert (len(fx["std_capdus"]), len(fx["fast_capdus"])) == (4, 3)  # SELECT, AUTH0, (AUTH1,) EXCHANGE
    env = runner.environment(bench_fob.MPY_DIR, extra_paths=[runner.BOARDS_DIR])

    def replay():
        return runner.run("-m", "carkey.fob.bench", "--runs=1", f"--fixture={fixture}", f"--state={tmp_path}",
                          "fob_std_txn", "fob_fast_txn", env=env, timeout=120)

    proc = replay()
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line)["op"] for line in proc.stdout.splitlines()] == ["fob_std_txn", "fob_fast_txn"]
    # ... and an answer that differs from the recording stops the run, it is not timed.
    # (One bit flipped in the byte before the status word: set to 00 instead, the byte was
    # 00 already in about one recording in 256, and the run passed.)
    answer = bytearray.fromhex(fx["std_rapdus"][2])
    answer[-3] ^= 0x01
    fx["std_rapdus"][2] = answer.hex()
    fixture.write_text(json.dumps(fx))
    proc = replay()
    assert proc.returncode != 0 and "the fob's answers differ from the transcript" in proc.stderr, proc.stderr
