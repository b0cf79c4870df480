"""Provisioning and owner-signed admin requests, run by the firmware in the Unix port.

Factory state may enroll the first owner; afterwards every change is a document the
owner signed (share, revocation, admin request) and the firmware checks it: group,
owner, serial floor or session challenge, signature. A refused or malformed document changes nothing.

Run: .venv/bin/pytest -q tests/host/test_admin.py
"""

import time

import pytest

from carkey_host import documents
from carkey_host.aliro import crypto
from carkey_host.errors import CarkeyError
from carkey_host.vcar import VirtualCar

OK, DOCUMENT_REFUSED, BAD_REQUEST, NO_ROOM, SUPERSEDED = 0x00, 0x0B, 0x0A, 0x0D, 0x0E


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
    assert car.submit(doc)["result"] == SUPERSEDED
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


def admin(car, session, operation, argument=b"", number=None, key=None, group_id=None):
    session.number = number if number is not None else getattr(session, "number", 0) + 1
    return documents.make_admin(key or car.owner, group_id or car.group_id, operation, argument,
                                challenge=session.challenge, number=session.number)


def test_admin_requests_run_once(car):
    with car.admin_session() as s:
        assert s.identity["group_id"] == car.group_id.hex()
        req = admin(car, s, "list-keys")
        out = s.submit(req)
        assert out["result"] == OK and len(out["keys"]) == 1
        assert s.submit(req)["result"] == SUPERSEDED  # replayed in its session: number already used
        since = (0).to_bytes(4, "big")
        out = s.submit(admin(car, s, "export-log", since))
        assert out["result"] == OK and [r["command"] for r in out["records"]][:2] == [0xF1, 0xF2]
        when = int(time.time()) + 5
        out = s.submit(admin(car, s, "set-clock", when.to_bytes(4, "big")))
        assert out == {"result": OK, "time": when}
    # After the session ends its challenge is gone: the request is refused everywhere.
    assert car.submit(req)["result"] == DOCUMENT_REFUSED
    with car.admin_session() as s:
        out = s.submit(req)
        assert out["result"] == DOCUMENT_REFUSED and "challenge" in out["reason"]


def test_reading_writes_one_audit_record_per_session(car):
    before = car.log()
    keys_before = files(car)
    with car.admin_session() as s:
        for _ in range(3):
            assert s.submit(admin(car, s, "export-log", (0).to_bytes(4, "big")))["result"] == OK
            assert s.submit(admin(car, s, "list-keys"))["result"] == OK
    after = car.log()
    assert len(after) == len(before) + 1 and (after[-1]["command"], after[-1]["result"]) == (0xE4, OK)
    # Nothing but the audit log changed: no key-store commit for reading.
    assert {k: v for k, v in files(car).items() if k.startswith("keys.")} == \
        {k: v for k, v in keys_before.items() if k.startswith("keys.")}


def test_requests_from_strangers_or_other_cars_are_refused(car):
    stranger = crypto.generate_private_key()
    before = files(car)
    with car.admin_session() as s:
        out = s.submit(admin(car, s, "list-keys", key=stranger))
        assert out["result"] == DOCUMENT_REFUSED and "owner" in out["reason"]
        out = s.submit(admin(car, s, "list-keys", group_id=bytes(16)))
        assert out["result"] == DOCUMENT_REFUSED and "group" in out["reason"]
    assert files(car) == before


def test_forged_signature_and_bad_operation(car):
    before = files(car)
    with car.admin_session() as s:
        req = bytearray(admin(car, s, "list-keys"))
        req[-70] ^= 1  # inside the signature
        assert s.submit(bytes(req)) == {"result": DOCUMENT_REFUSED, "reason": "bad signature"}
        # A well-signed request for a clock of zero is refused before anything changes.
        body = documents.admin_body(car.group_id, 7, 0x01, bytes(4), s.challenge)
        bad = documents.assemble(documents.ADMIN_TAG, body, documents.sign_body(car.owner, documents.ADMIN_TAG, body),
                                 crypto.public_key_bytes(car.owner))
        assert s.submit(bad)["result"] == BAD_REQUEST
    assert files(car) == before


@pytest.mark.parametrize("doc", [b"", b"\xe4", b"\xe5\x00", b"\xe4\x03\x80\x01\x01", bytes(300)])
def test_malformed_documents_are_errors(car, doc):
    before = files(car)
    with pytest.raises(CarkeyError):
        car.submit(doc)
    assert files(car) == before


def test_owner_requests_and_other_documents_never_cancel_a_share(car):
    """A share not yet presented survives everything the owner does about other keys;
    every document still runs only once."""
    friend = crypto.public_key_bytes(crypto.generate_private_key())
    other = crypto.public_key_bytes(crypto.generate_private_key())
    pending = documents.make_share(car.owner, car.group_id, friend, "driver", serial=next_serial(car))
    with car.admin_session() as s:
        assert s.submit(admin(car, s, "list-keys"))["result"] == OK
        assert s.submit(admin(car, s, "export-log", bytes(4)))["result"] == OK
        assert s.submit(admin(car, s, "set-clock", int(time.time()).to_bytes(4, "big")))["result"] == OK
    share_other = documents.make_share(car.owner, car.group_id, other, "guest", serial=next_serial(car))
    assert car.submit(share_other)["result"] == OK
    suspend = documents.make_revocation(car.owner, car.group_id, other, serial=next_serial(car), action="suspend")
    assert car.submit(suspend)["result"] == OK
    revoke = documents.make_revocation(car.owner, car.group_id, other, serial=next_serial(car), action="revoke")
    assert car.submit(revoke)["result"] == OK
    # The older share for `friend` still works; each document then runs once only.
    assert car.submit(pending)["result"] == OK
    assert car.submit(pending)["result"] == SUPERSEDED
    assert car.submit(share_other)["result"] == SUPERSEDED
    assert car.submit(suspend)["result"] == SUPERSEDED
    assert car.submit(revoke)["result"] == SUPERSEDED
    # A revocation of a slot never enrolled, replayed: revocation is permanent, a second one refused.
    stranger = documents.key_slot(crypto.public_key_bytes(crypto.generate_private_key()))
    cancel = documents.make_revocation(car.owner, car.group_id, stranger, serial=next_serial(car))
    assert car.submit(cancel)["result"] == OK
    assert car.submit(cancel) == {"result": 0x07, "reason": "already revoked"}


def test_log_export_comes_in_pages(car):
    stranger = crypto.generate_private_key()
    with car.admin_session() as s:
        for _ in range(40):  # each refused request is a record of its own
            assert s.submit(admin(car, s, "list-keys", key=stranger))["result"] == DOCUMENT_REFUSED
        page = s.submit(admin(car, s, "export-log", bytes(4)))
        assert len(page["records"]) == 16 and page["more"] is True
        rest = s.submit(admin(car, s, "export-log", page["records"][-1]["seq"].to_bytes(4, "big")))
        assert rest["more"] and rest["records"][0]["seq"] == page["records"][-1]["seq"] + 1


def test_owner_tools_read_every_page(tmp_path):
    from carkey_host import owner
    from carkey_host.keydir import KeyDir

    kd = KeyDir(tmp_path / "owner")
    kd.init()
    car = VirtualCar(tmp_path / "car")
    owner.provision(car, kd)
    stranger = crypto.generate_private_key()
    with car.admin_session() as s:
        for _ in range(40):  # each refused request is a record of its own
            s.submit(admin(car, s, "list-keys", key=stranger, group_id=bytes.fromhex(s.identity["group_id"])))
    records = owner.audit_log(car, kd)
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1)) and len(records) > 42
    friends = [crypto.public_key_bytes(crypto.generate_private_key()) for _ in range(9)]
    for pub in friends:
        owner.add_key(car, kd, pub, "guest")
    owner.change_key(car, kd, documents.key_slot(friends[0]), "revoke")
    listing = owner.list_keys(car, kd)
    assert len(listing["keys"]) == 10 and listing["revoked_slots"] == [documents.key_slot(friends[0]).hex()]
    with car.admin_session() as s:
        group_id = bytes.fromhex(s.identity["group_id"])
        s.number = 0
        page = s.submit(documents.make_admin(kd.private_key(), group_id, "list-keys", bytes([1]),
                                             challenge=s.challenge, number=1))
        assert len(page["keys"]) == 4 and page["more"] is True


def test_bench_paths_refuse_once_installed(car):
    # The attack of a USB stranger: after provisioning, the unsigned bench paths, called
    # directly, must not enroll anyone or replace anything.
    stranger = crypto.public_key_bytes(crypto.generate_private_key())
    with pytest.raises(CarkeyError, match="installed"):
        car.enroll(stranger, "owner")
    with pytest.raises(CarkeyError, match="installed"):
        car.enroll_card(bytes(7), "driver")
    with pytest.raises(CarkeyError, match="installed"):
        car.set_card_master_key(bytes(16))
    with car.admin_session() as s:
        listing = s.submit(admin(car, s, "list-keys", b"\x00"))
    assert [k["public_key"] for k in listing["keys"]] == [crypto.public_key_bytes(car.owner).hex()]


def test_maintenance_request_is_signed_and_bounded(car):
    with car.admin_session() as s:
        assert s.submit(admin(car, s, "maintenance", (600).to_bytes(2, "big")))["maintenance_s"] == 600
        assert s.submit(admin(car, s, "maintenance", (3601).to_bytes(2, "big")))["result"] == BAD_REQUEST
        assert s.submit(admin(car, s, "maintenance", bytes(2)))["result"] == BAD_REQUEST
        stranger = crypto.generate_private_key()
        doc = admin(car, s, "maintenance", (60).to_bytes(2, "big"), key=stranger)
        assert s.submit(doc)["result"] == DOCUMENT_REFUSED


def test_share_into_a_full_store_answers_no_room(car):
    # 31 friends beside the owner fill the store; the 33rd key is answered as a tap
    # answers it (0D, no room), logged, and changes nothing.
    for _ in range(31):
        friend = crypto.public_key_bytes(crypto.generate_private_key())
        doc = documents.make_share(car.owner, car.group_id, friend, "guest", serial=next_serial(car))
        assert car.submit(doc)["result"] == OK
    before = files(car)
    late = crypto.public_key_bytes(crypto.generate_private_key())
    out = car.submit(documents.make_share(car.owner, car.group_id, late, "guest", serial=next_serial(car)))
    assert out["result"] == NO_ROOM and "no room" in out["reason"]
    assert files(car) == before
    with car.admin_session() as s:
        listing = s.submit(admin(car, s, "list-keys", b"\x07"))  # the last page of keys
        assert late.hex() not in [k["public_key"] for k in listing["keys"]]
