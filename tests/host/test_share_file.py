"""Share files (docs/PROTOCOL.md §5a), the phone's share list, and what a phone keeps after a refusal.

No car is needed: files are made with the owner's key, read back as a friend's phone
reads them, and tampered with; `carkey phone import-share`, `carkey phone shares` and
`carkey car info --keys` run as the CLI.

Run: .venv/bin/pytest -q tests/host/test_share_file.py
"""

import json
import time

import pytest

from carkey_host import documents
from carkey_host import share_file as sf
from carkey_host.ble_phone import device_name
from carkey_host.keydir import KeyDir
from carkey_host.phone import Phone, Transaction
from carkey_cli import carkey

GROUP = bytes(range(16))
NOW = 1_800_000_000


@pytest.fixture
def people(tmp_path):
    owner, friend = KeyDir(tmp_path / "owner"), KeyDir(tmp_path / "friend")
    owner.init()
    friend.init()
    reader_key = KeyDir(tmp_path / "reader")  # any P-256 key stands in for the car's reader key
    reader_pub = reader_key.init()
    owner.trust(GROUP, reader_pub, device_name(GROUP))
    return owner, friend, reader_pub


def make_file(owner, friend, reader_pub, **kw):
    doc = documents.make_share(owner.private_key(), GROUP, friend.public_key(), "driver", serial=NOW, **kw)
    return sf.make(owner.private_key(), doc, GROUP, reader_pub, device_name(GROUP))


def test_round_trip(people):
    owner, friend, reader_pub = people
    made = make_file(owner, friend, reader_pub)
    back = sf.parse(made.to_json().encode())
    assert (back.name, back.group_id, back.reader_public_key, back.document) == (
        device_name(GROUP), GROUP, reader_pub, made.document)
    obj = json.loads(made.to_json())
    assert obj["carkey_share"] == 1 and set(obj) == {"carkey_share", "car", "document", "car_signature"}


@pytest.mark.parametrize("field, value, error", [
    ("reader_public_key", None, "car_signature does not verify"),
    ("name", "carkey-deadbeef", "car_signature does not verify"),
    ("group_id", "00" * 16, "another car"),
])
def test_tampered_identity_is_refused(people, field, value, error):
    owner, friend, reader_pub = people
    obj = json.loads(make_file(owner, friend, reader_pub).to_json())
    if value is None:  # another valid reader key
        value = KeyDir(owner.path.parent / "evil").init().hex()
    obj["car"][field] = value
    with pytest.raises(sf.ShareFileError, match=error):
        sf.parse(json.dumps(obj).encode())


def test_malformed_files_are_refused(people):
    owner, friend, reader_pub = people
    obj = json.loads(make_file(owner, friend, reader_pub).to_json())
    for bad, error in ((b"\x00\x01", "not a JSON share file"), (b"{}", "no \"carkey_share\""),
                       (json.dumps(dict(obj, carkey_share=2)).encode(), "format 2 is not supported"),
                       (json.dumps(dict(obj, document=obj["document"][:-2])).encode(), "not a share document"),
                       (json.dumps(dict(obj, car_signature="zz")).encode(), "not hexadecimal")):
        with pytest.raises(sf.ShareFileError, match=error):
            sf.parse(bad)


def test_import_share_trusts_the_car_and_lists_it(people, tmp_path):
    owner, friend, reader_pub = people
    path = tmp_path / "friend.share"
    path.write_text(make_file(owner, friend, reader_pub).to_json())
    out = carkey("phone", "import-share", "--keys", friend.path, "--file", path).stdout
    assert device_name(GROUP) in out and "carkey phone unlock" in out
    assert friend.trusted_readers() == {GROUP: reader_pub}
    info = json.loads(carkey("car", "info", "--keys", friend.path, "--json").stdout)
    assert info == {"name": device_name(GROUP), "group_id": GROUP.hex(), "reader_public_key": reader_pub.hex()}
    (row,) = [json.loads(line) for line in carkey("phone", "shares", "--keys", friend.path, "--json").stdout.splitlines()]
    assert (row["name"], row["role"], row["ended"]) == (device_name(GROUP), "driver", False)
    r = carkey("phone", "shares", "--keys", friend.path, "--remove", "carkey-00000000", check=False)
    assert r.returncode == 1 and "no share" in r.stderr
    carkey("phone", "shares", "--keys", friend.path, "--remove", device_name(GROUP))
    assert friend.share_documents() == {}


def test_bare_document_needs_a_trusted_car(people, tmp_path):
    owner, friend, reader_pub = people
    path = tmp_path / "bare.doc"
    path.write_bytes(make_file(owner, friend, reader_pub).document)
    r = carkey("phone", "import-share", "--keys", friend.path, "--file", path, check=False)
    assert r.returncode == 1 and "bare share document" in r.stderr and friend.share_documents() == {}


def test_ended_share_is_not_imported(people, tmp_path):
    owner, friend, reader_pub = people
    path = tmp_path / "old.share"
    now = int(time.time())
    path.write_text(make_file(owner, friend, reader_pub, valid_from=now - 7200, valid_until=now - 3600).to_json())
    r = carkey("phone", "import-share", "--keys", friend.path, "--file", path, check=False)
    assert r.returncode == 1 and "ended" in r.stderr and friend.share_documents() == {}


@pytest.mark.parametrize("code, window, dropped", [
    (0x00, {}, False),  # accepted: dropped, but not a refusal
    (0x07, {}, True),
    (0x0B, {}, True),
    (0x0E, {}, True),
    (0x0D, {}, None),  # no room on the car: kept, the owner can make room
    (0x09, {}, None),  # clock not trusted: kept for a later tap
    (0x02, {"valid_from": NOW + 60, "valid_until": NOW + 3600}, None),  # not yet valid: kept
    (0x02, {"valid_from": NOW - 7200, "valid_until": NOW - 60}, True),  # ended: dropped
])
def test_phone_drops_a_share_refused_for_good(people, code, window, dropped):
    owner, friend, reader_pub = people
    friend.trust(GROUP, reader_pub)
    doc = documents.make_share(owner.private_key(), GROUP, friend.public_key(), "driver", serial=NOW, **window)
    friend.add_share_document(GROUP, doc)
    phone = Phone(friend)
    txn = Transaction(1, documents=[(documents.SHARE_TAG, code)], share_presented_to=GROUP)
    phone.settle_share(txn, now=NOW)
    kept = friend.share_documents() == {GROUP: doc}
    assert kept == (dropped is None)
    assert txn.share_dropped == (code if dropped else None)


def test_unlock_without_a_car_says_what_to_run(people):
    _, friend, _ = people
    r = carkey("phone", "unlock", "--keys", friend.path, "--air", "127.0.0.1:9", check=False)
    assert r.returncode == 1 and f"carkey phone import-share --keys {friend.path} --file FILE" in r.stderr


def test_example_file_for_other_importers():
    """tests/host/data/example.share, the sample docs/PROTOCOL.md §5a points other key apps
    to: its keys are P-256 scalars SHA-256(b"example owner" | b"example friend" |
    b"example reader"), its group id SHA-256(b"example group")[:16]."""
    import hashlib
    from pathlib import Path

    from cryptography.hazmat.primitives.asymmetric import ec

    def pub(label):
        key = ec.derive_private_key(int.from_bytes(hashlib.sha256(label).digest(), "big"), ec.SECP256R1())
        return documents.public_key_bytes(key)

    made = sf.parse((Path(__file__).parent / "data" / "example.share").read_bytes())
    group = hashlib.sha256(b"example group").digest()[:16]
    assert (made.group_id, made.name, made.reader_public_key) == (group, device_name(group), pub(b"example reader"))
    s = made.share
    assert (s.friend_pub, s.owner_pub, documents.ROLE_NAMES[s.role], s.use_limit) == (
        pub(b"example friend"), pub(b"example owner"), "guest", 50)
    assert (s.valid_from, s.valid_until, s.schedule) == (1767225600, 1798761600, (documents.Window.parse("mon-fri 07:00-19:00"),))
