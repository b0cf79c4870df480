"""The phone's bleak backend (carkey_host.ble_phone.run_bleak) against a stand-in BleakClient.

No radio here: FakeBleakClient has bleak 3.x's BleakClient surface the backend
uses (connect, mtu_size, start_notify with a (characteristic, bytearray) callback,
write_gatt_char with response=True, is_connected, disconnect, the
disconnected_callback) and plays a car that sends one SELECT in MTU−3 chunks after
the ready frame, reads the answer's chunks, then disconnects.

Run: .venv/bin/pytest -q tests/host/test_ble_bleak_backend.py
"""

import asyncio

import bleak
import pytest

from carkey_host import ble_phone as bp
from carkey_host.aliro.user_device import LinkDropped

SELECT = bytes.fromhex("00A4040009A000000909ACCE550100")


class FakeBleakClient:
    instances = []

    def __init__(self, address_or_ble_device, disconnected_callback=None, services=None, *, timeout=30, **kw):
        self.target = address_or_ble_device
        self.on_disconnect = disconnected_callback
        self.mtu_size = 23
        self.is_connected = False
        self.writes = []
        self._notify = None
        self._answer = bp.Reassembler(bp.MAX_ANSWER)
        self.answers = []
        FakeBleakClient.instances.append(self)

    async def connect(self, **kwargs):
        self.is_connected = True

    async def start_notify(self, char_specifier, callback, **kwargs):
        assert char_specifier == bp.INDICATE_UUID
        self._notify = callback

    async def write_gatt_char(self, char_specifier, data, response=None):
        assert char_specifier == bp.WRITE_UUID and response is True
        assert len(data) <= self.mtu_size - 3, "a write longer than MTU−3 cannot go out"
        self.writes.append(bytes(data))
        loop = asyncio.get_running_loop()
        if bytes(data) == bp.READY:
            for chunk in bp.split(bp.encode_frame(SELECT), self.mtu_size):
                loop.call_soon(self._notify, None, bytearray(chunk))
            return
        apdu = self._answer.feed(bytes(data))
        if apdu is not None:
            self.answers.append(apdu)
            loop.call_soon(self._drop)

    def _drop(self):
        self.is_connected = False
        self.on_disconnect(self)

    async def disconnect(self):
        self.is_connected = False
        return True


@pytest.fixture
def fake_bleak(monkeypatch):
    FakeBleakClient.instances = []
    monkeypatch.setattr(bleak, "BleakClient", FakeBleakClient)
    return FakeBleakClient


def test_answers_select_in_chunks(fake_bleak):
    answer = bytes(range(30)) + b"\x90\x00"
    log = bp.run_bleak_sync("AA:BB:CC:DD:EE:FF", lambda capdu: answer)
    client = fake_bleak.instances[0]
    assert client.target == "AA:BB:CC:DD:EE:FF"
    assert log.commands == [SELECT]
    assert client.answers == [answer]
    assert client.writes == [bp.READY, b"\x00\x20" + answer[:18], answer[18:]]
    assert (log.indications, log.writes, log.mtu) == (1, 2, 23)


def test_untrusting_device_disconnects(fake_bleak):
    def drop(capdu):
        raise LinkDropped()

    log = bp.run_bleak_sync("AA:BB:CC:DD:EE:FF", drop)
    assert log.dropped and not fake_bleak.instances[0].is_connected
