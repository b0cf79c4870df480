# carkey — every tap row of `make bench` carries the tap's allocations and GC passes.
# SPDX-License-Identifier: MIT
"""The NFC tap rows repeat the reader row's garbage per tap beside its time.

Run: .venv/bin/pytest -q tests/host/test_bench_tap_rows.py
"""

import json

from carkey_host import bench


def test_nfc_rows_carry_allocations_and_gc_passes(tmp_path):
    fixture = tmp_path / "fixture.json"
    apdus = [["00a4040009a00000090" + "9acce550100", "6f1a9000"], ["80800000", "9000"]]
    fixture.write_text(json.dumps({"fast": apdus, "standard": apdus}))
    results = {
        "reader_fast_txn": {"esp32_est_ms": 40.0, "alloc_bytes": 37920, "gc_passes_per_run_est": 0.6},
        "reader_std_txn": {"esp32_est_ms": 1300.0, "alloc_bytes": 1457952, "gc_passes_per_run_est": 22.5},
    }
    rows = bench.nfc_rows(results, fixture)
    assert rows["nfc_fast_tap_est_ms"]["alloc_bytes"] == 37920
    assert rows["nfc_fast_tap_est_ms"]["gc_passes_per_run_est"] == 0.6
    assert rows["nfc_std_tap_est_ms"]["alloc_bytes"] == 1457952
    assert rows["nfc_std_tap_est_ms"]["gc_passes_per_run_est"] == 22.5
    assert rows["nfc_fast_tap_est_ms"]["esp32_est_ms"] > 40.0  # the link time is added
