"""The phone key page in real headless Chromium, its radio the virtual air: click Unlock, see "unlocked".

The page is served by `carkey phone web --air`'s library function; with ?air in its
address it replaces navigator.bluetooth by the virtual air stand-in, so the page's
own Web Bluetooth calls reach the firmware car (the whole ECU application on the
virtual board). The key is made in the page (WebCrypto, IndexedDB), enrolled with
`carkey keys add`, and the car's audit log must show it. The service worker must
open the page again with the network cut.

Needs Debian's chromium and `npm ci` (playwright-core, package-lock.json); without
them the test is skipped with those instructions, unless CARKEY_BROWSER_REQUIRED=1
(`make test-browser`, CI) turns the skip into a failure.

Run: make test-browser   (or .venv/bin/pytest -q tests/host/test_web_browser.py)
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from base64 import b64decode

import pytest

from carkey_host import owner as owner_ops
from carkey_host import paths
from carkey_host.ble_phone import device_name, visit_car
from carkey_host.envelope import COMMANDS
from carkey_host.keydir import KeyDir
from carkey_host.phone import Phone
from carkey_host.vcar import RunningCar, VirtualCar
from carkey_host.virtual_air import VirtualAir
from carkey_host.web_server import RunningWebServer
from carkey_cli import carkey
from web_key import node_or_skip

DRIVER = paths.REPO_ROOT / "web" / "testing" / "browser_driver.mjs"
HOW = ("the browser test needs Chromium and playwright-core: apt-get install chromium && npm ci, "
       "then make test-browser")


def _need(condition, what):
    if condition:
        return
    if os.environ.get("CARKEY_BROWSER_REQUIRED") == "1":
        pytest.fail(f"{what}: {HOW}")
    pytest.skip(f"{what}: {HOW}")


@pytest.fixture
def browser(tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    _need(chromium is not None, "no chromium on this machine")
    _need((paths.REPO_ROOT / "node_modules" / "playwright-core").is_dir(), "playwright-core is not installed")
    node = node_or_skip()
    proc = subprocess.Popen(node + [str(DRIVER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=paths.REPO_ROOT)

    def call(**request):
        proc.stdin.write(json.dumps(request) + "\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        if not line:
            raise AssertionError("the browser driver exited: " + proc.stderr.read()[-3000:])
        answer = json.loads(line)
        assert "error" not in answer, answer
        return answer

    call.chromium = chromium
    call.profile = tmp_path / "chromium-profile"
    try:
        yield call
    finally:
        if proc.poll() is None:
            try:
                call(op="close")
            except (AssertionError, OSError, ValueError):
                pass
            proc.stdin.close()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def _slot_of_pem(pem: str) -> str:
    der = b64decode("".join(line for line in pem.splitlines() if "-----" not in line))
    return hashlib.sha1(der[-65:]).hexdigest()[:16]


def test_click_unlock_in_chromium(tmp_path, browser):
    owner = tmp_path / "owner"
    carkey("phone", "init", "--keys", owner)
    state = tmp_path / "flash" / "state"
    ident = owner_ops.provision(VirtualCar(state), KeyDir(owner))
    group_id = ident["group_id"]
    timings = {}
    with VirtualAir(port=0) as air, RunningWebServer(air=air.address) as web:
        assert browser(op="open", url=web.url + "/?air", chromium=browser.chromium,
                       profile=str(browser.profile))["radio"] == "radio: virtual air"
        made = browser(op="make_key")
        pem = made["pem"]
        assert made["qrViewBox"] == "0 0 61 61"  # the PEM as a version 9 QR code (53 modules) and its quiet zone
        (tmp_path / "page.pub.pem").write_text(pem)
        carkey("keys", "add", "--state", state, "--keys", owner, "--credential", tmp_path / "page.pub.pem",
               "--role", "driver")
        bad = browser(op="import", text='{"group_id": "00"}')["message"]
        assert bad == "not imported: group id: expected 16 bytes, got 1", bad
        identity = tmp_path / "car.json"
        identity.write_text(json.dumps({"group_id": group_id, "reader_public_key": ident["reader_public_key"]}))
        message = browser(op="import", file=str(identity))["message"]
        assert message == f"{device_name(bytes.fromhex(group_id))}: trusted"

        # The page works offline once loaded: the service worker serves it, IndexedDB kept the key.
        # (Offline, the virtual air behind the server is out of reach too, and headless
        # Chromium on Linux offers no navigator.bluetooth, so the page says so.)
        offline = browser(op="reload", offline=True)
        assert offline["controlled"] and offline["radio"] == "no Web Bluetooth in this browser", offline
        assert browser(op="pem")["pem"] == pem
        assert browser(op="reload", offline=False)["radio"] == "radio: virtual air"

        with RunningCar(tmp_path / "flash", air=air.address):
            deadline = time.monotonic() + 30
            while True:  # the car's application needs a moment to bring its radio up
                tap = browser(op="tap", command="unlock")
                if not tap["result"].startswith("no answer") or time.monotonic() > deadline:
                    break
                time.sleep(0.3)
            assert tap["result"] == "unlocked", tap
            assert tap["state"].startswith("car: unlocked, open: none"), tap
            # The first tap finds the car (the chooser, here a scan of the air); later taps reuse it.
            took = re.fullmatch(r"tap took (\d+) ms \(standard transaction, (\d+) ms of it finding the car\)", tap["time"])
            assert took, tap
            timings["page standard unlock"] = int(took[1])
            timings["of which finding the car"] = int(took[2])

            lock = browser(op="tap", command="lock")
            assert (lock["result"], lock["state"]) == ("locked", "car: locked, open: none"), lock
            assert lock["time"].endswith("(fast transaction)")
            timings["page fast lock"] = int(lock["time"].split()[2])

            status = browser(op="tap", command="status")
            assert status["result"] == "status: ok" and status["time"].endswith("(fast transaction)"), status

            sim = Phone(KeyDir(owner), commands=[(COMMANDS["unlock"], b"")])
            for kind in ("standard", "fast"):
                start = time.perf_counter()
                txn, _ = visit_car(sim, air.address, device_name(bytes.fromhex(group_id)))
                assert txn.control_flow[0] == 1
                timings[f"simulated phone {kind} unlock"] = round((time.perf_counter() - start) * 1000)
    out = paths.BUILD_DIR / "web-browser-timings.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(timings, indent=1) + "\n")

    log = carkey("log", "--state", state, "--keys", owner).stdout
    slot = _slot_of_pem(pem)
    assert re.search(rf"ble/standard key {slot} +unlock +ok", log), log
    assert re.search(rf"ble/fast +key {slot} +lock +ok", log), log
