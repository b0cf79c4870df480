"""Provisioning and owner-signed admin requests, run by the firmware in the Unix port.

Factory state may enroll the first owner; afterwards every change is a document the
owner signed (share, revocation, admin request) and the firmware checks it: group,
owner, serial floor, signature. A refused or malformed document changes nothing.

Run: .venv/bin/pytest -q tests/host/test_admin.py
"""

import time

import pytest

from carkey_host import documents
from carkey_host.aliro import crypto
from carkey_host.errors import CarkeyError
from carkey_host.vcar import VirtualCar

OK, DOCUMENT_REFUSED, BAD_REQUEST = 0x00, 0x0B, 0x0A


@pytest.fixture
def car(tmp_path):
    owner = crypto.generate_private_key()
    car = VirtualCar(tmp_path / "car")
    now = int(time.time())
    ident = car.provision(crypto.public_key_bytes(owner), now)
    car.owner = owner
    car.group_id = bytes.fromhex(ident["group_id"])
    car.serial = now
    return car


def next_serial(car):
    car.serial += 1
    return car.serial


def files(car):
    return {p.name: p.read_bytes() for p in sorted(car.state_dir.iterdir()) if p.name.startswith(("keys.", "clock."))}


def test_provision_makes_identity_owner_and_clock(car):
    keys = car.keys()["keys"]
    assert [k["role"] for k in keys] == ["owner"]
    assert car.identity()["group_id"] == car.group_id.hex()
    log = car.log()
    assert [(r["command"], r["result"]) for r in log] == [(0xF1, OK), (0xF2, OK)]


def test_provision_only_in_factory_state(car):
    other = crypto.public_key_bytes(crypto.generate_private_key())
    before = files(car)
    with pytest.raises(CarkeyError, match="already provisioned"):
        car.provision(other)
    assert files(car) == before


def test_share_over_usb_enrolls_the_named_key(car):
    friend = crypto.public_key_bytes(crypto.generate_private_key())
    doc = documents.make_share(car.owner, car.group_id, friend, "valet", serial=next_serial(car))
    out = car.submit(doc)
    assert out["result"] == OK and out["key"]["role"] == "valet" and out["key"]["public_key"] == friend.hex()
    # The same document again: its serial is not above the key's floor any more.
    before = files(car)
    assert car.submit(doc)["result"] == DOCUMENT_REFUSED
    assert files(car) == before


def test_revocation_over_usb(car):
    friend = crypto.public_key_bytes(crypto.generate_private_key())
    car.submit(documents.make_share(car.owner, car.group_id, friend, "guest", serial=next_serial(car)))
    slot = documents.key_slot(friend)
    out = car.submit(documents.make_revocation(car.owner, car.group_id, slot, serial=next_serial(car), action="suspend"))
    assert out["result"] == OK
    assert {k["public_key"]: k["status"] for k in car.keys()["keys"]}[friend.hex()] == "suspended"
    car.submit(documents.make_revocation(car.owner, car.group_id, slot, serial=next_serial(car), action="revoke"))
    assert slot.hex() in car.keys()["revoked_slots"]


def test_admin_requests_run_once(car):
    req = documents.make_admin(car.owner, car.group_id, "list-keys", serial=next_serial(car))
    out = car.submit(req)
    assert out["result"] == OK and len(out["keys"]) == 1
    assert car.submit(req)["result"] == DOCUMENT_REFUSED  # replayed: serial not above the owner's floor
    since = (0).to_bytes(4, "big")
    out = car.submit(documents.make_admin(car.owner, car.group_id, "export-log", since, serial=next_serial(car)))
    assert out["result"] == OK and [r["command"] for r in out["records"]][:2] == [0xF1, 0xF2]
    when = int(time.time()) + 5
    out = car.submit(documents.make_admin(car.owner, car.group_id, "set-clock", when.to_bytes(4, "big"),
                                          serial=next_serial(car)))
    assert out == {"result": OK, "time": when}


def test_requests_from_strangers_or_other_cars_are_refused(car):
    stranger = crypto.generate_private_key()
    before = files(car)
    out = car.submit(documents.make_admin(stranger, car.group_id, "list-keys", serial=next_serial(car)))
    assert out["result"] == DOCUMENT_REFUSED and "owner" in out["reason"]
    out = car.submit(documents.make_admin(car.owner, bytes(16), "list-keys", serial=next_serial(car)))
    assert out["result"] == DOCUMENT_REFUSED and "group" in out["reason"]
    assert files(car) == before


def test_forged_signature_and_bad_operation(car):
    req = bytearray(documents.make_admin(car.owner, car.group_id, "list-keys", serial=next_serial(car)))
    req[-70] ^= 1  # inside the signature
    before = files(car)
    assert car.submit(bytes(req)) == {"result": DOCUMENT_REFUSED, "reason": "bad signature"}
    # A well-signed request for a clock of zero is refused before anything changes.
    body = documents.admin_body(car.group_id, next_serial(car), 0x01, bytes(4))
    bad = documents.assemble(documents.ADMIN_TAG, body, documents.sign_body(car.owner, documents.ADMIN_TAG, body),
                             crypto.public_key_bytes(car.owner))
    assert car.submit(bad)["result"] == BAD_REQUEST
    assert files(car) == before


@pytest.mark.parametrize("doc", [b"", b"\xe4", b"\xe5\x00", b"\xe4\x03\x80\x01\x01", bytes(300)])
def test_malformed_documents_are_errors(car, doc):
    before = files(car)
    with pytest.raises(CarkeyError):
        car.submit(doc)
    assert files(car) == before
