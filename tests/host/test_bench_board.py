"""`carkey bench --port`: the firmware benchmark run on a board, here the virtual board.

Run: .venv/bin/pytest -q tests/host/test_bench_board.py
"""

import json

from carkey_host.vboard import VirtualBoard
from carkey_cli import carkey


def test_bench_runs_on_the_board(tmp_path):
    port = tmp_path / "tty"
    with VirtualBoard(tmp_path / "flash", port):
        assert carkey("deploy", "--port", port, "--board", "virtual", check=False).returncode == 0
        r = carkey("bench", "--port", port, "--runs", "3", "--json", "hkdf", "gcm_64", "reader_fast_txn", check=False)
        assert r.returncode == 0, r.stdout + r.stderr
        results = json.loads(r.stdout[r.stdout.index("{"):])
        bad = carkey("bench", "--port", port, "no_such_op", check=False)
    assert set(results) == {"hkdf", "gcm_64", "reader_fast_txn"}
    for row in results.values():
        assert row["runs"] == 3 and 0 < row["min_ms"] <= row["board_ms"]
    assert bad.returncode == 1 and "no_such_op" in bad.stderr and "unknown operation" in bad.stderr
