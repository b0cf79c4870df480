"""`carkey demo` (what `make demo` runs) completes and tells the story it promises.

Run: .venv/bin/pytest -q tests/host/test_demo.py
"""

import re
import subprocess
import sys


def test_demo_runs_the_whole_scenario(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "carkey_host.cli", "demo", "--dir", tmp_path / "demo"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    kinds = re.findall(r"(owner|friend)'s phone, (standard|fast) transaction: (granted|refused)", out)
    assert kinds == [
        ("owner", "standard", "granted"), ("owner", "fast", "granted"), ("owner", "fast", "granted"),
        ("friend", "standard", "granted"), ("friend", "standard", "granted"),
        ("owner", "fast", "granted"), ("friend", "standard", "refused"),
    ]
    assert "drive: ok" in out and "key revoked or unknown" in out
    assert re.search(r"relays pulsed: unlock \d+ ms", out)
    # The audit log printed at the end holds every decision, read back from the car's flash.
    log = re.findall(r"#(\d+) .* (enroll|set-clock|unlock|lock|drive|share-document|revocation-document|battery) ", out)
    assert [int(n) for n, _ in log] == list(range(1, 18))
    # The revoked friend's refused tap is counted with the strangers', not in the main log.
    assert re.search(r"tcp/standard +unlock +key revoked or unknown ×1", out)
    # The same car as a board runs it, on its radios.
    assert re.search(r"BLE: granted in \d+ ms .* unlock: ok", out)
    assert re.search(r"NFC: granted in \d+ ms .* lock: ok", out)
    assert re.search(r"#12 .* ble/fast .* unlock +ok", out) and re.search(r"#13 .* nfc/fast .* lock +ok", out)
    # A key fob, enrolled by the owner's signature (#11), presses unlock then lock.
    assert re.search(r"key fob, unlock pressed: granted \(standard transaction; LED: granted\)", out)
    assert re.search(r"key fob, lock pressed: granted \(fast transaction", out)
    # Each press also reports the fob's battery, logged before its command.
    assert re.search(r"#14 .* ble/fallback .* battery +3.90 V", out) and re.search(r"#15 .* ble/fallback .* unlock +ok", out)
    assert re.search(r"#16 .* ble/fast .* battery +3.90 V", out) and re.search(r"#17 .* ble/fast .* lock +ok", out)


def test_demo_refuses_a_used_directory(tmp_path):
    (tmp_path / "x").write_text("keep me")
    proc = subprocess.run([sys.executable, "-m", "carkey_host.cli", "demo", "--dir", tmp_path],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "not empty" in proc.stderr
    assert (tmp_path / "x").read_text() == "keep me"
