"""The firmware reader (MicroPython, compiled .mpy) against the independent CPython user device over TCP.

Each test starts a small TCP server around carkey_host.aliro.UserDevice (raw or lp
framing) and runs tests/mpy/reader_client.py in the MicroPython Unix port, which
prints one JSON line per tap. Covers standard then fast, fast without a device
cache (fallback), an unknown credential, key-slot mode, chained APDUs, tampered and
truncated answers, refusals, a device that drops the link, and the heap budget.

Run: .venv/bin/pytest -q tests/host/test_reader_e2e.py
"""

import json
import os
import subprocess
import threading
from pathlib import Path

import pytest

from carkey_host import paths
from carkey_host.aliro import crypto
from carkey_host.aliro.kpersistent_cache import KpersistentCache
from carkey_host.aliro.user_device import LinkDropped, UserDevice
from carkey_host.build import compile_firmware
from carkey_host import runner
from carkey_host.reader_keys import ReaderKeys
from carkey_host.tcp_link import FramingError, LinkClosed, ThreadedServer

MPY_DIR = Path(__file__).resolve().parents[1] / "mpy"
CLIENT = MPY_DIR / "reader_client.py"
FRAMINGS = ("raw", "lp")
STATUS_GRANTED = "97020101"


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """The firmware and the test fake compiled to .mpy, as a board runs them."""
    out = tmp_path_factory.mktemp("mpy")
    compile_firmware(out)
    subprocess.run(
        [paths.mpy_cross_executable(), "-o", str(out / "fakelink.mpy"), str(MPY_DIR / "fakelink.py")],
        check=True,
    )
    return out


class DeviceServer(ThreadedServer):
    """Serves one UserDevice over TCP, connection after connection.

    tamper(c_apdu, r_apdu) may rewrite an answer, or return None to drop the link.
    """

    def __init__(self, device, framing, tamper=None):
        self.device = device
        self.tamper = tamper
        self.commands = []
        super().__init__(self._one, framing)

    def _one(self, link, n):
        self.device.reset()
        while True:
            try:
                c_apdu = link.receive()
            except (LinkClosed, FramingError, OSError):
                break
            self.commands.append(c_apdu)
            try:
                r_apdu = self.device.process(c_apdu)
            except LinkDropped:
                break
            if self.tamper is not None:
                r_apdu = self.tamper(c_apdu, r_apdu)
                if r_apdu is None:
                    break
            link.send(r_apdu)


def make_device(reader, trusted=True, cache=None, handler=None):
    key = crypto.generate_private_key()
    return UserDevice(
        key,
        {reader.group_id: reader.public_key} if trusted else {},
        kpersistent_cache=cache if cache is not None else KpersistentCache(),
        exchange_handler=handler,
    )


def run_reader(build, server, reader, credentials, taps, heapsize=None, timeout_ms=None):
    spec = {"identity": reader.blob.hex(), "credentials": credentials, "taps": taps}
    if timeout_ms is not None:
        spec["timeout_ms"] = timeout_ms
    cmd = runner.command(CLIENT.relative_to(paths.REPO_ROOT), "127.0.0.1", server.port, server.framing,
                         heapsize=heapsize)
    proc = subprocess.run(
        cmd,
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        env=runner.environment(build, relative_to=paths.REPO_ROOT),
        cwd=paths.REPO_ROOT,
        timeout=60,
    )
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0 and len(results) == len(taps), proc.stdout + proc.stderr
    return results


@pytest.fixture
def serve():
    servers = []

    def start(device, framing="lp", tamper=None):
        server = DeviceServer(device, framing, tamper)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def cred(device, kpersistent=None):
    return {"pub": device.credential_public_key.hex(), "kpersistent": kpersistent}


# --- successful taps ---------------------------------------------------------------


@pytest.mark.parametrize("framing", FRAMINGS)
def test_standard_then_fast(build, serve, framing):
    reader = ReaderKeys()
    device = make_device(reader)
    server = serve(device, framing)
    tap = {"exchange": [STATUS_GRANTED]}
    first, second = run_reader(build, server, reader, [cred(device)], [tap, tap])

    assert first["kind"] == "standard" and first["known"] is True
    assert first["pub"] == device.credential_public_key.hex()
    assert first["kpersistent"] == device.kpersistent_cache.get(reader.identifier).hex()
    assert first["replies"] == [""]

    assert second["kind"] == "fast" and second["known"] is True
    assert second["kpersistent"] is None
    assert second["replies"] == [""]
    assert device.last_reader_status == bytes.fromhex("0101")
    assert device.last_control_flow == (1, 0)
    # A fast tap sends no AUTH1.
    assert sum(1 for c in server.commands if c[:2] == b"\x80\x81") == 1


def test_fast_without_device_cache_falls_back(build, serve):
    reader = ReaderKeys()
    device = make_device(reader)
    server = serve(device)
    stale = os.urandom(32).hex()
    (result,) = run_reader(build, server, reader, [cred(device, stale)], [{"exchange": [STATUS_GRANTED]}])
    assert result["kind"] == "fallback" and result["known"] is True
    assert result["kpersistent"] == device.kpersistent_cache.get(reader.identifier).hex()
    assert result["kpersistent"] != stale


def test_fast_with_stale_reader_key_falls_back_then_goes_fast(build, serve):
    reader = ReaderKeys()
    cache = KpersistentCache()
    cache.put(reader.identifier, os.urandom(32))  # device and reader disagree
    device = make_device(reader, cache=cache)
    server = serve(device)
    taps = [{"fast": True}, {}]
    first, second = run_reader(build, server, reader, [cred(device, os.urandom(32).hex())], taps)
    assert first["kind"] == "fallback"
    assert second["kind"] == "fast"


def test_unknown_credential_gets_a_channel_but_is_not_known(build, serve):
    reader = ReaderKeys()
    seen = []
    device = make_device(reader, handler=lambda items: seen.append(items) or [(0xE1, b"\xc2\x01\x02")])
    server = serve(device)
    (result,) = run_reader(build, server, reader, [], [{"exchange": ["e103c00101"], "granted": False}])
    assert result["kind"] == "standard" and result["known"] is False
    assert result["pub"] == device.credential_public_key.hex()
    assert result["replies"] == ["e103c20102"]
    assert [(t.tag, t.value) for t in seen[0]] == [(0xE1, bytes.fromhex("c00101"))]
    assert device.last_control_flow == (0, 0)


@pytest.mark.parametrize("framing", FRAMINGS)
def test_key_slot_mode(build, serve, framing):
    reader = ReaderKeys()
    device = make_device(reader)
    server = serve(device, framing)
    (result,) = run_reader(build, server, reader, [cred(device)], [{"slot": True}])
    assert result["kind"] == "standard" and result["known"] is True
    assert result["pub"] == device.credential_public_key.hex()
    auth1 = next(c for c in server.commands if c[:2] == b"\x80\x81")
    assert auth1[5:8] == b"\x41\x01\x00"


@pytest.mark.parametrize("framing", FRAMINGS)
def test_long_exchange_is_chained_both_ways(build, serve, framing):
    reader = ReaderKeys()
    device = make_device(reader, handler=lambda items: [(0xE1, bytes(range(256)) + bytes(144))])
    server = serve(device, framing)
    payload = "e1820136" + "ab" * 0x136
    (result,) = run_reader(build, server, reader, [cred(device)], [{"exchange": [payload]}])
    assert result["replies"] == ["e1820190" + bytes(range(256)).hex() + "00" * 144]
    exchange_parts = [c for c in server.commands if c[1] == 0xC9]
    assert [c[0] for c in exchange_parts] == [0x90, 0x80]  # CLA | 10 on the first part
    assert any(c[:4] == b"\x00\xc0\x00\x00" for c in server.commands)  # GET RESPONSE


# --- failures: an exception and no session ---------------------------------------


def flip_answer(ins, index=0):
    def tamper(c_apdu, r_apdu):
        if c_apdu[1] == ins:
            r = bytearray(r_apdu)
            r[index] ^= 0x01
            return bytes(r)
        return r_apdu

    return tamper


@pytest.mark.parametrize("framing", FRAMINGS)
def test_tampered_auth1_answer(build, serve, framing):
    reader = ReaderKeys()
    device = make_device(reader)
    server = serve(device, framing, flip_answer(0x81, 7))
    (result,) = run_reader(build, server, reader, [cred(device)], [{}])
    assert result["error"] == "AuthenticationFailed"
    assert device.kpersistent_cache.get(reader.identifier) is not None  # the device went ahead
    assert device.last_control_flow == (0, 0)  # ... and the reader told it the tap failed


def test_tampered_cryptogram_falls_back(build, serve):
    reader = ReaderKeys()
    device = make_device(reader)

    def tamper(c_apdu, r_apdu):
        # Only a fast AUTH0 answer carries 9D 40 <cryptogram> after the 86 41 key.
        if c_apdu[1] == 0x80 and len(r_apdu) == 2 + 65 + 2 + 64 + 2:
            r = bytearray(r_apdu)
            r[2 + 65 + 2 + 20] ^= 0x01
            return bytes(r)
        return r_apdu

    server = serve(device, "lp", tamper)
    first, second = run_reader(build, server, reader, [cred(device)], [{}, {}])
    assert first["kind"] == "standard"
    assert second["kind"] == "fallback"
    assert second["kpersistent"] == device.kpersistent_cache.get(reader.identifier).hex()


def test_tampered_exchange_answer(build, serve):
    reader = ReaderKeys()
    device = make_device(reader)
    server = serve(device, "lp", flip_answer(0xC9, 2))
    (result,) = run_reader(build, server, reader, [cred(device)], [{"exchange": [STATUS_GRANTED]}])
    assert result["error"] == "AuthenticationFailed"


def test_truncated_auth0_answer(build, serve):
    reader = ReaderKeys()
    device = make_device(reader)

    def truncate(c_apdu, r_apdu):
        return r_apdu[:30] + r_apdu[-2:] if c_apdu[1] == 0x80 else r_apdu

    server = serve(device, "raw", truncate)
    (result,) = run_reader(build, server, reader, [cred(device)], [{}])
    assert result["error"] == "ProtocolError"
    assert "AUTH0" in result["message"]


def test_device_refuses_with_status_word(build, serve):
    reader = ReaderKeys()
    device = make_device(reader)

    def refuse(c_apdu, r_apdu):
        return b"\x69\x85" if c_apdu[1] == 0x80 else r_apdu

    server = serve(device, "lp", refuse)
    (result,) = run_reader(build, server, reader, [cred(device)], [{}])
    assert result["error"] == "ProtocolError"
    assert result["sw"] == 0x6985


@pytest.mark.parametrize("framing", FRAMINGS)
def test_untrusted_reader_link_dropped(build, serve, framing):
    reader = ReaderKeys()
    device = make_device(reader, trusted=False)
    server = serve(device, framing)
    (result,) = run_reader(build, server, reader, [cred(device)], [{}])
    assert result["error"] == "LinkError"


def test_drop_during_exchange(build, serve):
    reader = ReaderKeys()
    device = make_device(reader)
    server = serve(device, "lp", lambda c, r: None if c[1] == 0xC9 else r)
    (result,) = run_reader(build, server, reader, [cred(device)], [{"exchange": [STATUS_GRANTED]}])
    assert result["error"] == "LinkError"


def test_silent_device_times_out(build, serve):
    reader = ReaderKeys()
    device = make_device(reader)
    gate = threading.Event()

    def stall(c_apdu, r_apdu):
        if c_apdu[1] == 0x80:
            gate.wait(5)  # hold the answer past the reader's timeout
        return r_apdu

    server = serve(device, "lp", stall)
    try:
        (result,) = run_reader(build, server, reader, [cred(device)], [{}], timeout_ms=150)
    finally:
        gate.set()
    assert result["error"] == "LinkTimeout"


# --- heap ------------------------------------------------------------------------

# The project's target is 64 KiB for imports plus a tap. Measured on the compiled
# firmware: the crypto alone (p256, aes, kdf, asyncio and one verify) needs ~54 KiB,
# the protocol modules ~32 KiB of bytecode, names and objects, a tap's state ~5 KiB;
# repeated taps settle at ~120 KiB. This guards that figure until the gap closes.
HEAP_BUDGET = "128k"


def test_heap_budget(build, serve):
    reader = ReaderKeys()
    device = make_device(reader)
    server = serve(device)
    tap = {"exchange": [STATUS_GRANTED]}
    results = run_reader(build, server, reader, [cred(device)], [dict(tap, fast=False)] * 3 + [tap] * 3,
                         heapsize=HEAP_BUDGET)
    assert [r.get("kind", r.get("error")) for r in results] == ["standard"] * 3 + ["fast"] * 3
