"""The short soak inside `make test`: mixed taps through the whole application in its heap.

The long soak is `make soak` (carkey_host.soak, 10,000 taps, the heap every 100).
Here 120 taps with the heap sampled every 10: every kind of tap of the mix (owner
BLE standard and fast, NFC phone, status request, NTAG 424 card, stranger, the
friend's share document, the owner's suspend and resume of the friend) must come
out as expected, no task may fail, the heartbeat must never lapse as long as a
board's watchdog allows, and the heap from tap 20 on must stay within the bound.

Run: .venv/bin/pytest -q tests/host/test_soak_short.py
"""

from carkey_host import soak

TAPS = 120


def test_short_soak(tmp_path):
    out = soak.run(TAPS, every=10, workdir=tmp_path, warmup=20, suspend_every=37, progress=lambda s: None)
    assert out["failures"] == [], out["failures"]
    # The properties, each read from the run (check() has judged them too).
    assert out["taps_done"] == TAPS
    for kind in ("ble-standard", "ble-fast", "nfc-phone", "status", "card", "stranger", "friend", "reshare",
                 "suspend", "resume"):
        assert out["kinds"].get(kind, {}).get("taps"), kind
    assert out["kinds"]["stranger"]["granted"] == 0
    assert all(e["granted"] == e["expect"] for e in out["events"])
    assert any(e["kind"] == "friend" and not e["expect"] for e in out["events"])  # refused while suspended
    assert out["heap_warm_samples"] >= 10 and out["heap_growth_bytes"] <= soak.GROWTH_BOUND
    assert out["task_restarts"] == 0 and out["task_given_up"] is None
    assert out["max_beat_gap_ms"] < soak.WATCHDOG_RESET_GAP_MS
    assert out["tap_ms"]["p50"] > 0 and out["tap_ms"]["p99"] >= out["tap_ms"]["p50"]
    assert out["heap_bytes"] >= soak.BOARD_BUDGET["esp32_devkitc"] and out["heap_reason"]
