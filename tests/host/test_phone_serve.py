"""`carkey phone serve` says what each reader connection did, also for a reader that is not carkey's.

An independent Aliro reader (tests/host/aliro_reference_reader.py) that authenticates and then
sends no carkey result must not be reported as a refusal.

Run: .venv/bin/pytest -q tests/host/test_phone_serve.py
"""

import socket
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from aliro_reference_reader import ReferenceReader
from carkey_host.aliro import crypto
from carkey_cli import carkey
from test_phone import sender

GROUP_ID = bytes(range(16))
SUB_ID = bytes(range(16, 32))


@pytest.fixture
def served(tmp_path):
    """A phone that trusts the reader, served for two connections; yields (reader, port, process)."""
    reader_key = ec.generate_private_key(ec.SECP256R1())
    keys = tmp_path / "phone"
    carkey("phone", "init", "--keys", keys)
    carkey("phone", "trust", "--keys", keys, "--group-id", GROUP_ID.hex(),
           "--reader-public-key", crypto.public_key_bytes(reader_key).hex())
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "carkey_host.cli", "phone", "serve", "--keys", keys,
                             "--tcp", f"127.0.0.1:{port}", "--framing", "lp", "--connections", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "phone listening" in proc.stdout.readline()
        yield ReferenceReader(reader_key, GROUP_ID + SUB_ID), port, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()


def test_an_aliro_reader_that_sends_no_result_is_not_called_a_refusal(served):
    reader, port, proc = served
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        reader.transact(sender(sock, "lp"), exchanges=(), control_flow=None)  # authenticates, then hangs up
    line = proc.stdout.readline().strip()
    assert line == "connection 1: authenticated; reader sent no result", line
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        reader.transact(sender(sock, "lp"), exchanges=(), control_flow=(0x00, 0x00))  # authenticated, said no
    assert proc.stdout.readline().strip() == "connection 2: refused: no carkey results"
    assert proc.wait(10) == 0
