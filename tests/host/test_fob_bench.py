"""The fob benchmark's whole-application row runs on the board config its caller names.

firmware/carkey/fob/bench.py imports no board by name: host_tools/carkey_host/bench_fob.py
passes --board (esp32_c3_fob), and without one the fob_app operation refuses rather than
guessing. One run each, in the MicroPython Unix port.

Run: .venv/bin/pytest -q tests/host/test_fob_bench.py
"""

import json

from carkey_host import bench_fob, runner
from carkey_host.build import compile_firmware


def test_whole_application_row_runs_on_the_named_board():
    compile_firmware(bench_fob.MPY_DIR)
    bench_fob.make_fixture()
    out = bench_fob.run_ops(["fob_app"], 1)
    assert out["fob_app"]["runs"] == 1 and out["fob_app"]["median_us"] > 0


def test_whole_application_row_needs_a_board(tmp_path):
    compile_firmware(bench_fob.MPY_DIR)
    fixture = bench_fob.make_fixture()
    env = runner.environment(bench_fob.MPY_DIR, extra_paths=[runner.BOARDS_DIR])
    proc = runner.run("-m", "carkey.fob.bench", "--runs=1", f"--fixture={fixture}", f"--state={tmp_path}", "fob_app",
                      env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip()) == {"op": "fob_app", "error": "needs --board=NAME (a board config module)"}


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
    fx["std_rapdus"][2] = fx["std_rapdus"][2][:-6] + "00" + fx["std_rapdus"][2][-4:]
    fixture.write_text(json.dumps(fx))
    proc = replay()
    assert proc.returncode != 0 and "the fob's answers differ from the transcript" in proc.stderr, proc.stderr
