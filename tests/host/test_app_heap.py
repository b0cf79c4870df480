"""The whole ECU application's resident heap stays inside its budget (a heap test, not a timing test).

The application runs as a board runs it (firmware carkey.ecu.app under the esp32_devkitc
description, on the virtual board's stand-ins): boot, a standard and a fast BLE tap, an
NFC phone tap, an NTAG 424 card tap and a friend's share, whose verification table is
then built while idle (carkey_host.app_heap). Every tap must be granted, and the heap
held after start-up must not grow past the budget, so a later change cannot silently
push the car out of its board. The budget is this 64-bit port's figure; docs/PERFORMANCE.md
has the per-module table and what a 32-bit ESP32 holds.

Run: .venv/bin/pytest -q tests/host/test_app_heap.py
"""

import pytest

from carkey_host import app_heap

KIB = 1024
# Measured 237-244 KiB with the two 4 KiB table buffers, then 257-264 KiB once the
# strangers' limiter, per-key lockouts, tap deadlines, task supervision and the USB
# console task joined the application (+20 KiB of code and state, docs/PERFORMANCE.md),
# then 246.2 KiB after the second round of levers (-O3 bytecode, shared BLE buffers,
# one table buffer, stand-ins slimmed), all with the stand-ins (virtual radio, car body, PN532 pty:
# about 25 KiB that a real board holds in C or not at all); about 6 KiB of room for
# the run-to-run spread seen so far. Lower it as the application shrinks; never
# raise it without saying what grew.
RESIDENT_BUDGET = {"esp32_devkitc": 252 * KIB}


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return app_heap.Template(tmp_path_factory.mktemp("app") / "template")


@pytest.mark.parametrize("board", sorted(RESIDENT_BUDGET))
def test_resident_heap_within_budget(template, board, tmp_path):
    r = app_heap.run_once(template, board, None, tmp_path / "run")
    assert r["ok"], r
    # The friend's share loaded the document code, the card tap the card code; the
    # application dropped both after their taps.
    assert r["friend_tap"]["left_loaded"] == []
    assert r["card tap"]["left_loaded"] == [] and r["card tap"]["kind"] == "card"
    assert r["resident"] <= RESIDENT_BUDGET[board], f"{r['resident'] / KIB:.1f} KiB"


def test_a_heap_too_small_fails_the_run(template, tmp_path):
    # The scan relies on a failing size being reported as failing, not hanging or passing.
    r = app_heap.run_once(template, "esp32_devkitc", 200 * KIB, tmp_path / "run")
    assert not r["ok"] and r["error"]


def test_peak_checkpoints_cover_64_kib_above_the_edge():
    scan = app_heap.Scan(None, "x", "/tmp")
    points = scan.checkpoints(150 * KIB)
    assert points[:17] == list(range(150 * KIB, 167 * KIB, KIB))  # 1 KiB steps over the first 16 KiB
    assert points[-1] == 150 * KIB + 64 * KIB
    assert all(b - a <= 4 * KIB for a, b in zip(points, points[1:]))


def test_the_tap_path_runs_in_a_heap_cut_into_1_kib_holes(template, tmp_path):
    # Issue: no single allocation on the tap path larger than about 1 KiB. The Unix port
    # has no allocation trace, so the check is a heap in which such an allocation
    # cannot be served: once the application has started, its free heap is cut into
    # 1008-byte holes between live objects (boards/virtual_hw/app_heap.py, _fragment),
    # a 1136-byte probe is shown to fit nowhere while about 100 KiB stay free in the
    # holes, and a standard BLE tap, a fast BLE tap and an NFC phone tap must still be
    # granted. Checked to fail when the tap path allocates 1200 bytes at once.
    # What it cannot show: an allocation of 1009-1136 bytes may still find a hole with
    # a free neighbour; objects the tap frees (a used precompute-pool entry) can open a
    # larger block that a later allocation then uses; the card tap and a friend's share
    # are not covered (they load code on demand, whose bytecode comes in larger blocks).
    r = app_heap.run_once(template, "esp32_devkitc", 512 * KIB, tmp_path / "run", fragment=True)
    frag = r.get("fragmented")
    assert frag is not None, r
    assert frag["probe_fit"] is False and frag["probe_bytes"] == 1136
    assert frag["free"] >= 64 * KIB, frag  # plenty of heap, in small pieces only
    assert r["ok"], r.get("error")
    assert (r["BLE tap 1"]["kind"], r["BLE tap 2"]["kind"], r["NFC phone tap"]["kind"]) == ("standard", "fast", "fast")
