"""Share and revocation documents across the two implementations: host tool and firmware.

Documents signed by carkey_host.documents (CPython, `cryptography`) must be accepted by
carkey.ecu.documents inside MicroPython with exactly the fields that went in, and
documents the firmware signs must parse and verify on the host. Mutated documents are
fuzzed with hypothesis: the firmware must raise DocumentError or return a refusal,
never accept them or fail any other way, and both parsers must agree on what is well formed.
"""

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carkey_host import documents as D
from carkey_host.runner import Firmware, MicroPythonError, environment
from conftest import MPY_SUPPORT

FW = "carkey.ecu.documents"
FAKE = "fakekeystore"
GROUP = bytes(range(0xA0, 0xB0))
NOW = 1_750_000_000
OK = 0x00
ACTIVE = 0


def keypair(label):
    priv = ec.derive_private_key(int.from_bytes(hashlib.sha256(label).digest(), "big"), ec.SECP256R1())
    return priv, D.public_key_bytes(priv)


OWNER, OWNER_PUB = keypair(b"cross owner")
FRIEND, FRIEND_PUB = keypair(b"cross friend")
OWNER_PRIV_BYTES = OWNER.private_numbers().private_value.to_bytes(32, "big")
OWNERS = [[OWNER_PUB, 10, ACTIVE]]

SHARE = D.make_share(
    OWNER, GROUP, FRIEND_PUB, "guest", serial=500, entitlements=0x23, valid_from=NOW - 60, valid_until=NOW + 3600,
    schedule=[D.Window.parse("mon-sun 00:00-24:00")], use_limit=7,
)
REVOCATION = D.make_revocation(OWNER, GROUP, FRIEND_PUB, serial=600, action="suspend")
FRIEND_RECORD = [[FRIEND_PUB, 3, ACTIVE, 1]]


@pytest.fixture(scope="module")
def fw():
    with Firmware(env=environment(extra_paths=[MPY_SUPPORT])) as bridge:
        yield bridge


def fw_accept_share(fw, doc, friend=FRIEND_PUB, now=NOW, trusted=True):
    return fw.call(FAKE, "accept_share", doc, OWNERS, [], [], GROUP, friend, now, trusted)


def fw_accept_revocation(fw, doc, others=FRIEND_RECORD):
    return fw.call(FAKE, "accept_revocation", doc, OWNERS, others, [], GROUP)


# --- host -> firmware -------------------------------------------------------------


def test_host_share_accepted_by_firmware(fw):
    code, detail = fw_accept_share(fw, SHARE)
    assert code == OK
    assert detail == {
        "credential": {
            "pub": FRIEND_PUB,
            "role": 3,
            "entitlements": 0x23,
            "not_before": NOW - 60,
            "not_after": NOW + 3600,
            "schedule": bytes.fromhex("7f000005a0"),
            "use_limit": 7,
            "serial_floor": 500,
        },
        "owner": OWNER_PUB,
    }


def test_host_revocation_accepted_by_firmware(fw):
    code, detail = fw_accept_revocation(fw, REVOCATION)
    assert code == OK
    assert detail == {"target": D.key_slot(FRIEND_PUB), "action": 2, "owner": OWNER_PUB, "serial": 600, "known": True}


def test_firmware_parse_matches_host_parse(fw):
    host = D.parse_share(SHARE)
    f = fw.call(FW, "parse_share", SHARE)
    assert (f["group_id"], f["friend_pub"], f["role"], f["entitlements"]) == (GROUP, FRIEND_PUB, host.role, host.entitlements)
    assert (f["valid_from"], f["valid_until"], f["use_limit"], f["serial"], f["delegation"]) == (
        host.valid_from, host.valid_until, host.use_limit, host.serial, host.delegation,
    )
    assert f["schedule"] == D.encode_schedule(host.schedule)
    assert (f["body"], f["signature"], f["owner"]) == (host.body, host.signature, host.owner_pub)


def test_host_signature_in_the_wrong_context_refused(fw):
    body = D.parse_share(SHARE).body
    for tag in (D.REVOCATION_TAG,):
        forged = D.assemble(D.SHARE_TAG, body, D.sign_body(OWNER, tag, body), OWNER_PUB)
        assert fw_accept_share(fw, forged) == [0x0B, "bad signature"]
    rbody = D.parse_revocation(REVOCATION).body
    forged = D.assemble(D.REVOCATION_TAG, rbody, D.sign_body(OWNER, D.SHARE_TAG, rbody), OWNER_PUB)
    assert fw_accept_revocation(fw, forged) == [0x0B, "bad signature"]


def test_firmware_refusals_match_host_problems(fw):
    bad = D.assemble(
        D.SHARE_TAG,
        body := D.share_body(GROUP, FRIEND_PUB, 3, 0x7F, 0, 0, b"", 0, 501, 1),
        D.sign_body(OWNER, D.SHARE_TAG, body),
        OWNER_PUB,
    )
    assert D.parse_share(bad).problems() == ["allows delegation", "entitlements exceed the role"]
    assert fw_accept_share(fw, bad) == [0x0B, "delegation not allowed"]


windows = st.builds(
    D.Window,
    days=st.integers(1, 0x7F),
    start=st.integers(0, 1439),
    end=st.integers(1, 1440),
).filter(lambda w: w.start != w.end)


@st.composite
def share_params(draw):
    role = draw(st.sampled_from([2, 3, 4]))
    valid_from = draw(st.integers(0, NOW))
    valid_until = draw(st.one_of(st.just(0), st.integers(max(valid_from, NOW) + 1, 0xFFFFFFFF)))
    return {
        "role": role,
        "entitlements": draw(st.integers(0, 0x7F)) & D.ROLE_DEFAULTS[role],
        "valid_from": valid_from,
        "valid_until": valid_until,
        "schedule": draw(st.lists(windows, max_size=D.MAX_WINDOWS)),
        "use_limit": draw(st.integers(0, 0xFFFF)),
        "serial": draw(st.integers(11, 0xFFFFFFFF)),
    }


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(p=share_params())
def test_any_valid_host_share_accepted_with_its_fields(fw, p):
    doc = D.make_share(OWNER, GROUP, FRIEND_PUB, **p)
    code, detail = fw_accept_share(fw, doc)
    assert code == OK, detail
    assert detail["credential"] == {
        "pub": FRIEND_PUB,
        "role": p["role"],
        "entitlements": p["entitlements"],
        "not_before": p["valid_from"],
        "not_after": p["valid_until"],
        "schedule": D.encode_schedule(p["schedule"]),
        "use_limit": p["use_limit"],
        "serial_floor": p["serial"],
    }


# --- firmware -> host -------------------------------------------------------------


def test_firmware_share_verifies_on_host(fw):
    args = [GROUP, FRIEND_PUB, 4, 0x55, NOW, NOW + 60, bytes.fromhex("1001e00258"), 2, 77, 0]
    body = fw.call(FW, "share_body", *args)
    assert body == D.share_body(*args)
    doc = fw.call(FW, "sign", D.SHARE_TAG, body, OWNER_PRIV_BYTES, OWNER_PUB)
    share = D.parse_share(doc)
    assert share.verify()
    assert share.problems() == []
    assert (share.role, share.entitlements, share.serial) == (4, 0x55, 77)
    assert share.schedule == (D.Window(0x10, 480, 600),)


def test_firmware_revocation_verifies_on_host(fw):
    body = fw.call(FW, "revocation_body", GROUP, D.key_slot(FRIEND_PUB), 900, 1)
    assert body == D.revocation_body(GROUP, D.key_slot(FRIEND_PUB), 900, 1)
    doc = fw.call(FW, "sign", D.REVOCATION_TAG, body, OWNER_PRIV_BYTES, OWNER_PUB)
    rev = D.parse_revocation(doc)
    assert rev.verify()
    assert (rev.action, rev.target, rev.serial, rev.owner_pub) == (1, D.key_slot(FRIEND_PUB), 900, OWNER_PUB)


def test_firmware_share_in_revocation_context_fails_on_host(fw):
    body = D.parse_share(SHARE).body
    doc = fw.call(FW, "sign", D.REVOCATION_TAG, body, OWNER_PRIV_BYTES, OWNER_PUB)
    assert not D.parse_share(D.SHARE_TAG.to_bytes(1, "big") + doc[1:]).verify()


# --- fuzzing ----------------------------------------------------------------------


ALL_OPS = ("flip", "set", "insert", "delete", "truncate", "extend")
# In-place changes keep the framing intact, so they reach the acceptance rules and
# the signature check; the other operations mostly exercise the parser.
IN_PLACE = ("flip", "set")


@st.composite
def mutated(draw, doc, ops=ALL_OPS):
    data = bytearray(doc)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(ops))
        i = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[i] = draw(st.integers(0, 255))
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=4))
        elif op == "delete" and data:
            del data[i : i + draw(st.integers(1, 4))]
        elif op == "truncate":
            del data[i:]
        elif op == "extend":
            data += draw(st.binary(min_size=1, max_size=4))
    return bytes(data)


def host_parse(parser, doc):
    try:
        return parser(doc)
    except D.DocumentError:
        return None


def fuzz_one(fw, doc, original, accept, host_parser, fw_parser):
    try:
        code, detail = accept(fw, doc)
    except MicroPythonError as e:
        assert e.type == "DocumentError", e.traceback
        fw_wellformed = False
    else:
        fw_wellformed = True
        assert code != OK or doc == original, (code, detail)
    host = host_parse(host_parser, doc)
    assert fw_wellformed == (host is not None)
    if host is not None:
        f = fw.call(FW, fw_parser, doc)
        assert (f["body"], f["signature"], f["owner"], f["serial"]) == (host.body, host.signature, host.owner_pub, host.serial)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=mutated(SHARE))
def test_fuzz_share(fw, doc):
    fuzz_one(fw, doc, SHARE, fw_accept_share, D.parse_share, "parse_share")


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=mutated(SHARE, IN_PLACE))
def test_fuzz_share_in_place(fw, doc):
    fuzz_one(fw, doc, SHARE, fw_accept_share, D.parse_share, "parse_share")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=mutated(REVOCATION))
def test_fuzz_revocation(fw, doc):
    fuzz_one(fw, doc, REVOCATION, fw_accept_revocation, D.parse_revocation, "parse_revocation")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=mutated(REVOCATION, IN_PLACE))
def test_fuzz_revocation_in_place(fw, doc):
    fuzz_one(fw, doc, REVOCATION, fw_accept_revocation, D.parse_revocation, "parse_revocation")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=st.binary(max_size=300).map(lambda b: b"\xe2" + b))
def test_fuzz_random_bytes(fw, doc):
    fuzz_one(fw, doc, SHARE, fw_accept_share, D.parse_share, "parse_share")


# --- the host tool on its own ----------------------------------------------------


def test_window_parsing():
    assert D.Window.parse("mon-fri 08:00-17:00") == D.Window(0x1F, 480, 1020)
    assert D.Window.parse("fri-mon 22:00-02:00") == D.Window(0x71, 1320, 120)
    assert D.Window.parse("Sat,sun 00:00-24:00") == D.Window(0x60, 0, 1440)
    assert D.Window.parse("daily 06:30-07:00") == D.Window(0x7F, 390, 420)
    for bad in ("mon 08:00-08:00", "mon 25:00-26:00", "xyz 08:00-09:00", "mon 8-9", "mon 08:60-09:00"):
        with pytest.raises(D.DocumentError):
            D.Window.parse(bad)


def test_make_share_refuses_what_the_car_would():
    cases = [
        ({"role": "owner"}, "the owner role cannot be shared"),
        ({"role": "guest", "entitlements": 0x10}, "entitlements 0x0010 exceed what a guest may have"),
        ({"role": "valet", "valid_from": NOW, "valid_until": NOW}, "validity window is empty"),
        ({"role": "valet", "schedule": [D.Window(0, 0, 60)]}, "a schedule has 1..8 valid windows"),
        ({"role": "valet", "use_limit": 0x10000}, "use limit is 0..65535"),
        ({"role": "chauffeur"}, "unknown role 'chauffeur'"),
    ]
    for kw, message in cases:
        with pytest.raises(D.DocumentError, match=message):
            D.make_share(OWNER, GROUP, FRIEND_PUB, serial=1, **kw)
    with pytest.raises(D.DocumentError, match="serial"):
        D.make_share(OWNER, GROUP, FRIEND_PUB, "guest", serial=0)


def test_make_revocation_refuses_self_and_bad_action():
    with pytest.raises(D.DocumentError, match="own key"):
        D.make_revocation(OWNER, GROUP, OWNER_PUB, serial=5)
    with pytest.raises(D.DocumentError, match="unknown action"):
        D.make_revocation(OWNER, GROUP, FRIEND_PUB, serial=5, action="delete")
    by_slot = D.parse_revocation(D.make_revocation(OWNER, GROUP, D.key_slot(FRIEND_PUB), serial=5))
    assert by_slot.target == D.key_slot(FRIEND_PUB)


def test_next_serial():
    assert D.next_serial(0, NOW) == NOW
    assert D.next_serial(NOW + 5, NOW) == NOW + 6
    with pytest.raises(D.DocumentError):
        D.next_serial(0xFFFFFFFF, NOW)


def test_describe():
    text = D.parse(SHARE).describe()
    assert text.splitlines() == [
        f"share document for reader group {GROUP.hex()}",
        f"  friend key slot  {D.key_slot(FRIEND_PUB).hex()}",
        "  role             guest",
        "  entitlements     lock, unlock, locate (0x0023)",
        "  valid            2025-06-15T15:05:40Z .. 2025-06-15T16:06:40Z",
        "  schedule         Mon,Tue,Wed,Thu,Fri,Sat,Sun 00:00-24:00 (UTC)",
        "  use limit        7",
        "  serial           500",
        "  delegation       none",
        f"  signed by        owner key slot {D.key_slot(OWNER_PUB).hex()}",
        "  check            signature valid",
    ]
    rev = D.parse(REVOCATION)
    assert isinstance(rev, D.Revocation)
    assert "  action           suspend" in rev.describe().splitlines()


def test_admin_request_parses_alike(fw):
    """An admin request the host signs under a session challenge (§9) parses in the firmware
    with the same fields, and its signature verifies there."""
    challenge = bytes(range(16))
    doc = D.make_admin(OWNER, GROUP, "export-log", (42).to_bytes(4, "big"), challenge=challenge, number=3)
    f = fw.call(FW, "parse_admin", doc)
    assert (f["group_id"], f["serial"], f["operation"], f["argument"], f["challenge"], f["owner"]) == (
        GROUP, 3, 0x02, (42).to_bytes(4, "big"), challenge, OWNER_PUB)
    assert fw.call("carkey.crypto.p256", "verify", OWNER_PUB, fw.call(FW, "digest", D.ADMIN_TAG, f["body"]),
                   f["signature"])
