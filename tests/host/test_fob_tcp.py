"""The key fob firmware (Unix port) as a user device over TCP: the `carkey fob` contract.

Against `carkey reader connect` (the car's reader firmware) and against the host's
independent reference reader (cryptography only): standard then fast, both framings,
untrusted readers refused, a reader that lost its Kpersistent falls back.
"""

import json
import socket
import threading

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from aliro_reference_reader import KIND_FALLBACK, KIND_FAST, KIND_STANDARD, DeviceError, ReferenceReader
from carkey_cli import carkey
from carkey_host.aliro import crypto
from carkey_host.errors import CarkeyError
from carkey_host.tcp_link import FramedSocket, LinkClosed
from carkey_host.vfob import VirtualFob


def write_pem(pub: bytes, path):
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), pub)
    path.write_bytes(key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return path


class ServedFob:
    """`VirtualFob.serve` on a thread; the connection lines it reported."""

    def __init__(self, fob, framing="lp", connections=None):
        self.connections = []
        self.listening = threading.Event()
        self.address = None
        self.error = None

        def on_listening(addr):
            self.address = (addr[0], int(addr[1]))
            self.listening.set()

        def run():
            try:
                fob.serve("127.0.0.1", 0, framing, connections, on_listening=on_listening,
                          on_connection=self.connections.append)
            except CarkeyError as e:
                self.error = e
                self.listening.set()

        self.fob = fob
        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert self.listening.wait(60), "the fob never listened"
        assert self.error is None, self.error

    def join(self):
        self.thread.join(60)
        assert not self.thread.is_alive()
        assert self.error is None, self.error

    def stop(self):
        proc = getattr(self.fob, "process", None)
        if proc is not None and proc.poll() is None:
            proc.terminate()
        self.thread.join(30)


@pytest.fixture
def fob(tmp_path):
    f = VirtualFob(tmp_path / "fob")
    f.init()
    return f


# --- the CLI contract against the car's reader firmware ---------------------------------


def test_cli_contract_standard_then_fast(tmp_path):
    fob_dir, car_dir = tmp_path / "fob", tmp_path / "car"
    carkey("fob", "init", "--state", fob_dir)
    ident = json.loads(carkey("fob", "identity", "--state", fob_dir, "--json").stdout)
    assert list(ident) == ["credential_public_key"]
    pub = bytes.fromhex(ident["credential_public_key"])
    assert len(pub) == 65 and pub[0] == 4
    ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), pub)  # a point on the curve

    carkey("reader", "init", "--state", car_dir)
    reader = json.loads(carkey("reader", "identity", "--state", car_dir, "--json").stdout)
    carkey("fob", "trust", "--state", fob_dir, "--reader-public-key", reader["reader_public_key"],
           "--group-id", reader["group_id"])
    carkey("reader", "enroll", "--state", car_dir, "--credential", write_pem(pub, tmp_path / "fob.pem"),
           "--role", "driver")

    for framing in ("lp", "raw"):
        served = ServedFob(VirtualFob(fob_dir), framing, connections=2)
        out = carkey("reader", "connect", "--state", car_dir, "--tcp", "%s:%d" % served.address,
                     "--framing", framing, "--sequence", "standard,fast").stdout
        served.join()
        lines = [ln for ln in out.splitlines() if ln.startswith("txn")]
        assert len(lines) == 2, out
        assert "kind=standard result=granted" in lines[0]
        assert "kind=fast result=granted" in lines[1]
        assert [(c.kind, c.granted) for c in served.connections] == [("standard", True), ("fast", True)]
        assert served.connections[0].new_kpersistent and not served.connections[1].new_kpersistent
        assert served.connections[0].result == 0x00  # the car's answer to the fob's unlock


def test_cli_refuses_bad_trust_arguments(tmp_path):
    fob_dir = tmp_path / "fob"
    carkey("fob", "init", "--state", fob_dir)
    bad = carkey("fob", "trust", "--state", fob_dir, "--reader-public-key", "04" + "00" * 64,
                 "--group-id", "00" * 16, check=False)
    assert bad.returncode == 1 and "not a P-256 point" in bad.stderr
    bad = carkey("fob", "trust", "--state", fob_dir, "--reader-public-key", "zz", "--group-id", "00" * 16, check=False)
    assert bad.returncode == 2 and "not hexadecimal" in bad.stderr
    again = carkey("fob", "init", "--state", fob_dir, check=False)
    assert again.returncode == 1 and "already holds a credential" in again.stderr
    missing = carkey("fob", "identity", "--state", tmp_path / "nothing", check=False)
    assert missing.returncode == 1 and "no such state directory" in missing.stderr


def test_untrusted_car_is_refused(tmp_path, fob):
    car_dir = tmp_path / "car"
    carkey("reader", "init", "--state", car_dir)
    pub = bytes.fromhex(fob.identity()["credential_public_key"])
    carkey("reader", "enroll", "--state", car_dir, "--credential", write_pem(pub, tmp_path / "f.pem"), "--role", "owner")
    served = ServedFob(fob, connections=1)  # the fob trusts no car at all
    proc = carkey("reader", "connect", "--state", car_dir, "--tcp", "%s:%d" % served.address,
                  "--sequence", "standard", check=False)
    served.join()
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert served.connections[0].how == "dropped"
    assert served.connections[0].kind is None


# --- against the host's independent reference reader ------------------------------------


def _send_over(address, framing="lp"):
    sock = socket.create_connection(address, timeout=30)
    link = FramedSocket(sock, framing)

    def send(capdu):
        link.send(capdu)
        return link.receive()

    return sock, send


def _reference_reader(fob, enrolled=True):
    group_key = crypto.generate_private_key()
    group_pub = crypto.public_key_bytes(group_key)
    reader_id = bytes(range(32))
    fob.trust(reader_id[:16], group_pub)
    cred = bytes.fromhex(fob.identity()["credential_public_key"])
    return ReferenceReader(group_key, reader_id, enrolled=[cred] if enrolled else []), cred


def test_reference_reader_standard_then_fast(fob):
    reader, cred = _reference_reader(fob)
    served = ServedFob(fob, connections=3)
    kinds = []
    for fast in (False, True, True):
        sock, send = _send_over(served.address)
        with sock:
            result = reader.transact(send, fast=fast)
        kinds.append(result.kind)
        assert result.credential_public_key == cred
        assert result.exchange_replies == [b""]  # no carkey hello, so the fob asks for nothing
    served.join()
    assert kinds == [KIND_STANDARD, KIND_FAST, KIND_FAST]
    assert [c.kind for c in served.connections] == ["standard", "fast", "fast"]
    assert all(c.granted for c in served.connections)


def test_reference_reader_key_slot_mode_and_fallback(fob):
    reader, cred = _reference_reader(fob)
    served = ServedFob(fob, connections=2)
    sock, send = _send_over(served.address, "lp")
    with sock:
        assert reader.transact(send, auth1_mode=0x00).kind == KIND_STANDARD  # the fob answers with its key slot
    reader.kpersistent.clear()  # the car lost its Kpersistent: the fob's cryptogram matches nothing
    sock, send = _send_over(served.address, "lp")
    with sock:
        assert reader.transact(send, fast=True).kind == KIND_FALLBACK
    served.join()


def test_reference_reader_with_another_key_for_the_group_is_refused(fob):
    reader, _ = _reference_reader(fob)
    impostor = ReferenceReader(crypto.generate_private_key(), reader.reader_identifier)
    served = ServedFob(fob, connections=2)
    sock, send = _send_over(served.address)
    with sock, pytest.raises(DeviceError) as refused:
        impostor.transact(send)
    assert refused.value.command == "AUTH1" and refused.value.sw == 0x6982
    # Another group altogether: the fob hangs up at AUTH1.
    stranger = ReferenceReader(crypto.generate_private_key(), bytes(32))
    sock, send = _send_over(served.address)
    with sock, pytest.raises((LinkClosed, ConnectionError, OSError)):
        stranger.transact(send)
    served.join()
    assert [c.how for c in served.connections] == ["closed", "dropped"]
    assert not any(c.granted for c in served.connections)
