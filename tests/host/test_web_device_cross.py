"""Cross-test: the page's user device (web/lib, under Node) driven by the host's reference Aliro reader.

The reader (tests/host/aliro_reference_reader.py, on `cryptography`) and the simulated
phone's UserDevice (carkey_host.aliro) share no code with web/lib; the same reader runs
the same transactions against both and must see the same results: standard, fast from
the Kpersistent the standard one left, key-slot mode, a command longer than one APDU
(chained) and an answer longer than one (GET RESPONSE), an untrusted reader group.

Run: .venv/bin/pytest -q tests/host/test_web_device_cross.py
"""

import os

import pytest

from aliro_reference_reader import ReaderRefused, ReferenceReader
from carkey_host.aliro import crypto
from carkey_host.aliro.user_device import LinkDropped, UserDevice
from web_key import KeyDriver, node_or_skip


@pytest.fixture(scope="module")
def page():
    with KeyDriver(node_or_skip()) as driver:
        driver.public_key = bytes.fromhex(driver.call(op="init")["public_key"])
        yield driver


def _page_send(page):
    def send(c_apdu):
        answer = page.call(op="apdu", data=c_apdu.hex())
        assert "error" not in answer, answer
        if answer.get("dropped"):
            raise LinkDropped("the page's device dropped the link")
        return bytes.fromhex(answer["answer"])

    return send


def _echo(items):
    return [(tag, value) for tag, value in items if tag != 0x97]


def _run(reader, send):
    long_payload = os.urandom(300)  # > 255: the reader chains the command; the echo needs GET RESPONSE
    standard = reader.transact(send)
    fast = reader.transact(send, fast=True, exchanges=([(0x97, b"\x01\x01"), (0xBA, long_payload)],))
    slot = reader.transact(send, auth1_mode=0x00)
    return standard, fast, slot, long_payload


def test_reference_reader_sees_the_same_from_both_devices(page):
    group_key = crypto.generate_private_key()
    reader_id = os.urandom(32)
    group_pub = crypto.public_key_bytes(group_key)
    page.call(op="device", trust=[[reader_id[:16].hex(), group_pub.hex()]])
    py_device = UserDevice(crypto.generate_private_key(), {reader_id[:16]: group_pub}, exchange_handler=_echo)
    outcomes = []
    for send, credential in ((_page_send(page), page.public_key), (py_device.process, py_device.credential_public_key)):
        reader = ReferenceReader(group_key, reader_id, enrolled=[credential])
        standard, fast, slot, payload = _run(reader, send)
        assert standard.credential_public_key == fast.credential_public_key == slot.credential_public_key == credential
        assert fast.exchange_replies == [bytes([0xBA, 0x82, 0x01, 0x2C]) + payload]
        outcomes.append((standard.kind, fast.kind, slot.kind, standard.exchange_replies))
    assert outcomes[0] == outcomes[1] == ("standard", "fast", "standard", [b""])


def test_untrusted_reader_group_is_dropped_by_both(page):
    page.call(op="device", trust=[])
    py_device = UserDevice(crypto.generate_private_key(), {})
    for send in (_page_send(page), py_device.process):
        reader = ReferenceReader(crypto.generate_private_key(), os.urandom(32))
        with pytest.raises((LinkDropped, ReaderRefused)) as e:
            reader.transact(send)
        assert isinstance(e.value, LinkDropped)


def test_wrong_reader_key_answers_6982_on_both(page):
    """Trusted group id, another key: both devices refuse the reader's AUTH1 signature."""
    reader_id = os.urandom(32)
    trusted_pub = crypto.public_key_bytes(crypto.generate_private_key())
    page.call(op="device", trust=[[reader_id[:16].hex(), trusted_pub.hex()]])
    py_device = UserDevice(crypto.generate_private_key(), {reader_id[:16]: trusted_pub})
    for send in (_page_send(page), py_device.process):
        reader = ReferenceReader(crypto.generate_private_key(), reader_id)
        with pytest.raises(Exception) as e:
            reader.transact(send, control_flow=None)
        assert "6982" in str(e.value)
