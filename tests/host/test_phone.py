"""The simulated phone service: key directory, carkey envelope, TCP serving (both framings).

A CPython reference reader (tests/host/aliro_reference_reader.py) connects to a phone
served on loopback, so these tests need no firmware.
"""

import socket
import struct
import threading

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from aliro_reference_reader import ReferenceReader
from carkey_host import envelope as env
from carkey_host.aliro import crypto, tlv
from carkey_host.errors import CarkeyError
from carkey_host.keydir import KeyDir
from carkey_host.phone import Phone
from carkey_host.tcp_link import parse_endpoint

GROUP_ID = bytes(range(16))
SUB_ID = bytes(range(16, 32))


@pytest.fixture
def reader_key():
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def keys(tmp_path, reader_key):
    kd = KeyDir(tmp_path / "phone")
    kd.init()
    kd.trust(GROUP_ID, crypto.public_key_bytes(reader_key))
    return kd


def serve_in_thread(phone, framing, connections):
    ready = threading.Event()
    address = {}
    done = []

    def on_listening(sockname):
        address["port"] = sockname[1]
        ready.set()

    thread = threading.Thread(
        target=phone.serve,
        args=("127.0.0.1", 0, framing),
        kwargs={"connections": connections, "on_listening": on_listening, "on_transaction": done.append},
        daemon=True,
    )
    thread.start()
    assert ready.wait(5)
    return thread, address["port"], done


def sender(sock, framing):
    def send(c_apdu):
        if framing == "lp":
            sock.sendall(struct.pack(">H", len(c_apdu)) + c_apdu)
            (n,) = struct.unpack(">H", sock.recv(2, socket.MSG_WAITALL))
            return sock.recv(n, socket.MSG_WAITALL)
        sock.sendall(c_apdu)
        return sock.recv(65536)

    return send


def reader_transaction(reader, port, framing, result_state=b"\x00\x00\x00", fast=False):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        hello = [env.envelope([(env.HELLO_VERSION, b"\x01"), (env.CAR_STATE, b"\x01\x00\x00")])]
        result = reader.transact(
            sender(sock, framing),
            fast=fast,
            exchanges=[hello, [(0x97, b"\x01\x01"), env.envelope([(env.COMMAND_RESULT, b"\x02\x00" + result_state)])]],
        )
    return result


@pytest.mark.parametrize("framing", ["raw", "lp"])
def test_phone_requests_its_command_and_records_the_result(keys, reader_key, framing):
    phone = Phone(keys, commands=[(env.COMMANDS["unlock"], b"")])
    thread, port, done = serve_in_thread(phone, framing, connections=1)
    reader = ReferenceReader(reader_key, GROUP_ID + SUB_ID)
    result = reader_transaction(reader, port, framing)
    thread.join(5)

    # The answer to the hello carries the unlock request (the reader strips the status trailer).
    assert result.exchange_replies[0] == tlv.encode_all([env.envelope([(env.COMMAND_REQUEST, b"\x02")])])
    assert result.exchange_replies[1] == b""
    [txn] = done
    assert [r.describe() for r in txn.results] == ["unlock: ok (unlocked, open: none)"]
    assert txn.reader_status == b"\x01\x01"
    assert txn.control_flow == (1, 0)
    assert result.credential_public_key == keys.public_key()


def test_kpersistent_survives_between_connections_so_the_second_is_fast(keys, reader_key):
    phone = Phone(keys)
    thread, port, done = serve_in_thread(phone, "lp", connections=2)
    reader = ReferenceReader(reader_key, GROUP_ID + SUB_ID)
    first = reader_transaction(reader, port, "lp")
    second = reader_transaction(reader, port, "lp", fast=True)
    thread.join(5)
    assert (first.kind, second.kind) == ("standard", "fast")
    assert len(keys.kpersistent_cache()) == 1  # persisted in the key directory


def test_untrusted_reader_sees_the_link_drop(keys):
    stranger = ec.generate_private_key(ec.SECP256R1())
    phone = Phone(keys)
    thread, port, done = serve_in_thread(phone, "raw", connections=1)
    reader = ReferenceReader(stranger, bytes(16) + SUB_ID)
    with pytest.raises(Exception):
        reader_transaction(reader, port, "raw")
    thread.join(5)
    assert done[0].dropped


def test_share_document_is_presented_to_its_reader_group(keys, reader_key):
    keys.add_share_document(GROUP_ID, b"\xe2\x03doc")
    phone = Phone(keys)
    thread, port, _ = serve_in_thread(phone, "lp", connections=1)
    result = reader_transaction(ReferenceReader(reader_key, GROUP_ID + SUB_ID), port, "lp")
    thread.join(5)
    inner = env.open_envelope(tlv.decode_all(result.exchange_replies[0]))
    assert inner == [(env.SHARE_DOCUMENT, b"\xe2\x03doc")]


def test_key_directory_is_private(keys):
    assert (keys.path / "credential.pem").stat().st_mode & 0o777 == 0o600
    assert keys.path.stat().st_mode & 0o777 == 0o700
    (keys.path / "credential.pem").chmod(0o644)
    with pytest.raises(CarkeyError, match="too open"):
        keys.private_key()


def test_init_refuses_to_overwrite_a_credential(keys):
    with pytest.raises(CarkeyError, match="already holds a credential"):
        keys.init()


@pytest.mark.parametrize("text", ["localhost", ":80", "host:x", "host:70000"])
def test_bad_endpoints_are_refused(text):
    with pytest.raises(CarkeyError):
        parse_endpoint(text)
