"""The benchmark's ESP32 estimate: per-round ratios to the reference workload, and
the interpreter it ran on ($CARKEY_MICROPYTHON, $CARKEY_MPY_CROSS).

Run: .venv/bin/pytest -q tests/host/test_bench_calibration.py
"""

import os

import pytest

from carkey_host import bench, paths


def test_t_ref_is_the_published_figure_at_240_mhz():
    # 664.40 = 1e6 x 65 / us at 160 MHz -> 97.8 ms; x 160/240 at the app's clock.
    assert bench.T_REF_160MHZ_MS == pytest.approx(65e6 / 664.40 / 1000, abs=0.05)
    assert bench.T_REF_MS == 65.2
    assert bench.ESP32_MHZ == 240


def test_estimate_is_median_ratio_times_t_ref():
    measured = {"ratio_median": 2.0, "ratio_q1": 1.5, "ratio_q3": 2.5, "ratio_min": 1.0, "ratio_max": 9.0,
                "ref_median_us": 1300}
    row = bench.estimate(measured, 144 * 1024)
    assert row["esp32_est_ms"] == pytest.approx(130.4)
    assert row["esp32_est_range_ms"] == [pytest.approx(97.8), pytest.approx(163.0)]
    assert row["ratio_to_ref_extremes"] == [1.0, 9.0]
    assert row["ref_host_ms"] == 1.3 and row["timed_heap_bytes"] == 144 * 1024
    assert "144 KiB" in row["esp32_est_basis"] and "240 MHz" in row["esp32_est_basis"]


def test_interpreter_and_cross_compiler_from_the_environment(tmp_path, monkeypatch):
    mpy = tmp_path / "my-micropython"
    cross = tmp_path / "my-mpy-cross"
    os.symlink(paths.micropython_executable(), mpy)
    os.symlink(paths.mpy_cross_executable(), cross)
    monkeypatch.setenv("CARKEY_MICROPYTHON", str(mpy))
    monkeypatch.setenv("CARKEY_MPY_CROSS", str(cross))
    assert paths.micropython_executable() == str(mpy)
    cal = bench.calibration({"ref_median_us": 1500})
    assert cal["interpreter"] == str(mpy) and cal["mpy_cross"] == str(cross)
    assert "MicroPython" in cal["interpreter_version"] and "bit" in cal["interpreter_version"]
    assert "mpy-cross" in cal["mpy_cross_version"] or "MicroPython" in cal["mpy_cross_version"]
    assert cal["ref_host_ms"] == 1.5 and cal["t_ref_esp32_ms"] == 65.2


def test_a_missing_interpreter_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("CARKEY_MICROPYTHON", str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="CARKEY_MICROPYTHON"):
        paths.micropython_executable()


def test_a_different_cross_compiler_rebuilds_the_firmware(tmp_path, monkeypatch):
    from carkey_host.build import compile_firmware

    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "m.py").write_text("X = 1\n")
    out = tmp_path / "out"
    [mpy_file] = compile_firmware(out, root=src)
    first = mpy_file.stat().st_mtime_ns
    compile_firmware(out, root=src)
    assert mpy_file.stat().st_mtime_ns == first  # same compiler: reused
    cross = tmp_path / "other-mpy-cross"
    os.symlink(paths.mpy_cross_executable(), cross)
    monkeypatch.setenv("CARKEY_MPY_CROSS", str(cross))
    compile_firmware(out, root=src)
    assert mpy_file.stat().st_mtime_ns != first
    assert str(cross) in (out / ".mpy-cross").read_text()


def test_builds_side_by_side_never_delete_each_others_files(tmp_path):
    # Two builds of one tree at once (the peak scan runs whole applications in
    # parallel): neither may take the other's stamp for another compiler's.
    import threading

    from carkey_host.build import compile_firmware

    src = tmp_path / "src"
    src.mkdir()
    for i in range(20):
        (src / f"m{i}.py").write_text(f"X = {i}\n")
    out = tmp_path / "out"
    compile_firmware(out, root=src)
    errors = []

    def build():
        try:
            for _ in range(30):
                compile_firmware(out, root=src)
                if len(list(out.glob("*.mpy"))) != 20:
                    errors.append("a build saw missing .mpy files")
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=build) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_paired_runs_alternate_reference_and_operation():
    from carkey_host.build import compile_firmware

    compile_firmware(bench.MPY_DIR)
    same = bench.paired("ref_pidigits", 64 * 1024, 5)
    assert 0.5 < same["ratio_median"] < 2.0  # the reference against itself, in its own process
    cheap = bench.paired("hkdf", 64 * 1024, 5)
    assert cheap["ratio_median"] < 0.5 and cheap["ref_median_us"] > 0 and cheap["alloc_bytes"] > 0
    assert cheap["ratio_min"] <= cheap["ratio_q1"] <= cheap["ratio_median"] <= cheap["ratio_q3"] <= cheap["ratio_max"]
    assert bench.paired("reader_std_txn", 24 * 1024, 3) is None  # does not fit: no figure, no hang
