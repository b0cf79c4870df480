"""The simulated user device under hostile input, and against the reference reader.

Covers TLV and APDU parsing, the secure channel's counters, the Kpersistent cache,
every status-word path of carkey_host.aliro.UserDevice, link drops, state resets,
chaining, and full standard/fast transactions with random keys driven by
tests/host/aliro_reference_reader.py.

Run: .venv/bin/pytest -q tests/host/test_user_device.py
"""

import os
import stat
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aliro_reference_reader import (
    KIND_FALLBACK,
    KIND_FAST,
    KIND_STANDARD,
    DeviceError,
    ReaderRefused,
    ReferenceReader,
)
from carkey_host.aliro import apdu, crypto, tlv
from carkey_host.aliro.apdu import ApduError, CommandApdu
from carkey_host.aliro.channel import (
    COUNTER_LIMIT,
    ROLE_DEVICE,
    ROLE_READER,
    ChannelError,
    ChannelExhausted,
    SecureChannel,
)
from carkey_host.aliro.kpersistent_cache import CacheFormatError, KpersistentCache
from carkey_host.aliro.tlv import TlvError
from carkey_host.aliro.user_device import LinkDropped, State, UserDevice

SELECT = bytes.fromhex("00A4040009A000000909ACCE550100")
OK = b"\x90\x00"
DEVICE_SWS = {0x9000, 0x6701, 0x6800, 0x6982, 0x6985, 0x6A82, 0x6A86, 0x6D00}


def sw(answer: bytes) -> int:
    return int.from_bytes(answer[-2:], "big")


def fixed_key(n: int):
    return crypto.private_key_from_bytes(n.to_bytes(32, "big"))


@dataclass
class World:
    device: UserDevice
    reader: ReferenceReader
    group_key: object
    reader_id: bytes


def make_world(*, enroll=True, reader_id=None, device_kwargs=None, reader_kwargs=None) -> World:
    group_key = crypto.generate_private_key()
    reader_id = reader_id or os.urandom(32)
    device = UserDevice(
        crypto.generate_private_key(),
        {reader_id[:16]: crypto.public_key_bytes(group_key)},
        **(device_kwargs or {}),
    )
    reader = ReferenceReader(
        group_key,
        reader_id,
        enrolled=[device.credential_public_key] if enroll else None,
        **(reader_kwargs or {}),
    )
    return World(device, reader, group_key, reader_id)


def auth0_apdu(reader_id, reader_eph_pub, transaction_id, *, kind=0x00, policy=0x02, version=b"\x01\x00", extra=b""):
    data = tlv.encode_all(
        [
            (0x41, bytes([kind])),
            (0x42, bytes([policy])),
            (0x5C, version),
            (0x87, reader_eph_pub),
            (0x4C, transaction_id),
            (0x4D, reader_id),
        ]
    ) + extra
    return CommandApdu(0x80, 0x80, data=data, le=256).to_bytes()


def auth1_apdu(signature: bytes, mode: int = 0x01) -> bytes:
    return CommandApdu(0x80, 0x81, data=tlv.encode_all([(0x41, bytes([mode])), (0x9E, signature)]), le=256).to_bytes()


def exchange_apdu(data: bytes) -> bytes:
    return CommandApdu(0x80, 0xC9, data=data, le=256).to_bytes()


CONTROL_FLOW = bytes.fromhex("803C000006410101420100")


def start(world: World, *, fast=False):
    """SELECT and AUTH0 by hand; returns the reader ephemeral key, transcript and answer fields."""
    assert sw(world.device.process(SELECT)) == 0x9000
    ephemeral = crypto.generate_private_key()
    transaction_id = os.urandom(16)
    answer = world.device.process(
        auth0_apdu(world.reader_id, crypto.public_key_bytes(ephemeral), transaction_id, kind=int(fast))
    )
    assert answer[-2:] == OK
    fields = tlv.decode_unique(answer[:-2])
    transcript = crypto.Transcript(
        reader_group_public_key=crypto.public_key_bytes(world.group_key),
        reader_identifier=world.reader_id,
        reader_ephemeral_public_key=crypto.public_key_bytes(ephemeral),
        device_ephemeral_public_key=fields[0x86],
        transaction_id=transaction_id,
        flag=bytes([int(fast), 0x02]),
        proprietary_tlv=world.device.proprietary_tlv,
    )
    return ephemeral, transcript, fields


def reader_signature(world: World, transcript, key=None) -> bytes:
    return crypto.sign(key or world.group_key, crypto.signed_data(transcript, crypto.USAGE_READER))


def open_channel(world: World) -> SecureChannel:
    """A standard transaction up to AUTH1; returns the reader's side of the channel."""
    result = world.reader.transact(world.device.process, exchanges=(), control_flow=None)
    assert world.device.state is State.SECURE
    # The AUTH1 answer used the device's counter 1.
    return SecureChannel(result.keys.sk_reader, result.keys.sk_device, ROLE_READER, receive_counter=2)


# === TLV ===============================================================================


@pytest.mark.parametrize(
    "tag, length, header",
    [
        (0x4D, 0, "4d00"),
        (0x5A, 0x7F, "5a7f"),
        (0x5A, 0x80, "5a8180"),
        (0x5A, 0xFF, "5a81ff"),
        (0x5A, 0x100, "5a820100"),
        (0x5A, 0xFFFF, "5a82ffff"),
        (0x7F66, 2, "7f6602"),
        (0x00, 2, "0002"),
    ],
)
def test_tlv_encoding_is_exact_and_round_trips(tag, length, header):
    value = bytes(range(256)) * (length // 256) + bytes(range(length % 256))
    encoded = tlv.encode(tag, value)
    assert encoded.hex().startswith(header) and len(encoded) == len(header) // 2 + length
    assert tlv.decode_one(encoded) == (tag, value)


def test_tlv_nested_7f66():
    inner = tlv.encode(0x02, b"\x01\x00") + tlv.encode(0x02, b"\x01\x00")
    outer = tlv.encode(0xA5, tlv.encode(0x80, b"\x00\x00") + tlv.encode(0x7F66, inner))
    assert outer.hex() == "a50f" "80020000" "7f6608" "02020100" "02020100"
    a5 = tlv.decode_one(outer)
    assert tlv.is_constructed(a5.tag) and tlv.is_constructed(0x7F66) and not tlv.is_constructed(0x5A)
    assert tlv.decode_all(a5.value) == [(0x80, b"\x00\x00"), (0x7F66, inner)]


@pytest.mark.parametrize(
    "data",
    [
        "7f",  # two-byte tag cut short
        "5a",  # no length
        "5a81",  # 81 form without its byte
        "5a8201",  # 82 form cut short
        "5a0200",  # value cut short
        "5a817f" + "00" * 0x7F,  # 81 form for a length that fits one byte
        "5a8200ff" + "00" * 0xFF,  # 82 form for a length that fits 81
        "5a8300000100",  # 83 form: beyond 65535
        "5a80",  # indefinite length
        "7f8001" + "00",  # three-byte tag
        "1f0500",  # tag number below 31 in the two-byte form
        "4d00" "5a",  # a good object then a truncated one
    ],
)
def test_tlv_malformed_input_raises_tlv_error(data):
    with pytest.raises(TlvError):
        tlv.decode_all(bytes.fromhex(data))


def test_tlv_decode_one_refuses_trailing_bytes():
    with pytest.raises(TlvError):
        tlv.decode_one(bytes.fromhex("4d0000"))


def test_tlv_decode_unique_refuses_repeated_tags():
    with pytest.raises(TlvError):
        tlv.decode_unique(bytes.fromhex("410100410101"))


@pytest.mark.parametrize("tag, length", [(0x1F, 0), (0x7F05, 0), (0x7F80, 0), (0x10000, 0), (0x5A, 0x10000)])
def test_tlv_encode_refuses_what_it_cannot_express(tag, length):
    with pytest.raises(TlvError):
        tlv.encode(tag, bytes(length))


tags = st.one_of(
    st.integers(0, 0xFF).filter(lambda t: t & 0x1F != 0x1F),
    st.builds(lambda lead, second: (lead << 8) | second, st.sampled_from([0x1F, 0x5F, 0x7F, 0x9F, 0xBF, 0xDF]), st.integers(0x1F, 0x7F)),
)


@given(st.lists(st.tuples(tags, st.binary(max_size=300)), max_size=6))
def test_tlv_round_trip(items):
    assert tlv.decode_all(tlv.encode_all(items)) == items


@given(st.binary(max_size=300))
def test_tlv_random_bytes_decode_canonically_or_raise_tlv_error(data):
    try:
        items = tlv.decode_all(data)
    except TlvError:
        return
    # Strict decoding accepts only the canonical form: re-encoding gives the input back.
    assert tlv.encode_all(items) == data


# === APDUs =============================================================================


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("803C0000", CommandApdu(0x80, 0x3C)),
        ("00C0000000", CommandApdu(0x00, 0xC0, le=256)),
        ("00C0000010", CommandApdu(0x00, 0xC0, le=16)),
        ("803C000002AABB", CommandApdu(0x80, 0x3C, data=b"\xaa\xbb")),
        ("00A4040002AABB00", CommandApdu(0x00, 0xA4, 4, 0, b"\xaa\xbb", 256)),
    ],
)
def test_apdu_parse_cases_1_to_4(raw, expected):
    assert apdu.parse_command(bytes.fromhex(raw)) == expected
    assert expected.to_bytes().hex().upper() == raw


@pytest.mark.parametrize("raw", ["", "80", "803C00", "803C000003AABB", "803C000001AABBCC", "803C0000000002AABB"])
def test_apdu_malformed_is_6701(raw):
    with pytest.raises(ApduError) as info:
        apdu.parse_command(bytes.fromhex(raw))
    assert info.value.sw == 0x6701


def test_apdu_long_command_is_chained_in_255_byte_parts():
    data = bytes(range(256)) * 2 + bytes(88)
    parts = apdu.chain_command(CommandApdu(0x80, 0xC9, data=data, le=256))
    assert [(p.cla, len(p.data), p.le) for p in parts] == [(0x90, 255, None), (0x90, 255, None), (0x80, 90, 256)]
    assert b"".join(p.data for p in parts) == data
    with pytest.raises(ValueError):
        CommandApdu(0x80, 0xC9, data=data).to_bytes()


def test_apdu_long_answer_comes_in_254_byte_parts():
    data = bytes(range(256)) * 2 + bytes(88)  # 600 bytes
    chain = apdu.ResponseChain()
    first = chain.start(data)
    assert first[:-2] == data[:254] and first[-2:] == b"\x61\x00"  # 346 left: 00 means 256 or more
    second = chain.next(256)
    assert second[:-2] == data[254:508] and second[-2:] == b"\x61\x5c"  # 92 left
    third = chain.next(0x5C)
    assert third == data[508:] + OK and not chain.pending


@given(
    st.integers(0, 255), st.integers(0, 255), st.integers(0, 255), st.integers(0, 255),
    st.binary(max_size=255), st.one_of(st.none(), st.integers(1, 256)),
)
def test_apdu_round_trip(cla, ins, p1, p2, data, le):
    command = CommandApdu(cla, ins, p1, p2, data, le)
    assert apdu.parse_command(command.to_bytes()) == command


# === secure channel ======================================================================


def channel_pair():
    keys = os.urandom(32), os.urandom(32)
    return SecureChannel(*keys, ROLE_READER), SecureChannel(*keys, ROLE_DEVICE)


def test_channel_counts_each_direction_from_one():
    reader, device = channel_pair()
    for n in range(1, 4):
        assert device.open(reader.seal(b"r%d" % n)) == b"r%d" % n
    assert device.receive_counter == 4 and device.send_counter == 1
    assert reader.open(device.seal(b"d1")) == b"d1"
    assert (reader.send_counter, reader.receive_counter) == (4, 2)


def test_channel_refuses_a_replay():
    reader, device = channel_pair()
    message = reader.seal(b"97020101")
    device.open(message)
    with pytest.raises(ChannelError):
        device.open(message)


def test_channel_refuses_reordered_messages():
    reader, device = channel_pair()
    first, second = reader.seal(b"one"), reader.seal(b"two")
    with pytest.raises(ChannelError):
        device.open(second)
    assert device.receive_counter == 1  # a failure does not move the counter
    assert device.open(first) == b"one"


@pytest.mark.parametrize("position", [0, 3, -1])
def test_channel_refuses_tampered_ciphertext_or_tag(position):
    reader, device = channel_pair()
    message = bytearray(reader.seal(b"\x97\x02\x01\x01"))
    message[position] ^= 0x01
    with pytest.raises(ChannelError):
        device.open(bytes(message))


def test_channel_refuses_its_own_direction_and_short_messages():
    reader, device = channel_pair()
    with pytest.raises(ChannelError):
        reader.open(reader.seal(b"reflected"))
    with pytest.raises(ChannelError):
        device.open(bytes(15))


def test_channel_never_uses_counter_ffff():
    keys = os.urandom(32), os.urandom(32)
    reader = SecureChannel(*keys, ROLE_READER, send_counter=COUNTER_LIMIT - 1)
    device = SecureChannel(*keys, ROLE_DEVICE, receive_counter=COUNTER_LIMIT - 1)
    assert device.open(reader.seal(b"last")) == b"last"
    with pytest.raises(ChannelExhausted):
        reader.seal(b"one too many")
    with pytest.raises(ChannelExhausted):
        device.open(bytes(20))


# === Kpersistent cache =====================================================================


def test_cache_is_bounded_least_recently_used_first():
    cache = KpersistentCache(max_entries=2)
    a, b, c = (bytes([i]) * 32 for i in (1, 2, 3))
    cache.put(a, b"\xaa" * 32)
    cache.put(b, b"\xbb" * 32)
    assert cache.get(a) == b"\xaa" * 32  # a is now the most recent
    cache.put(c, b"\xcc" * 32)
    assert b not in cache and a in cache and c in cache and len(cache) == 2


def test_cache_file_round_trip_is_private(tmp_path):
    cache = KpersistentCache(max_entries=4)
    cache.put(bytes(32), bytes(range(32)))
    path = tmp_path / "kp.json"
    cache.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    restored = KpersistentCache.load(path)
    assert restored.to_dict() == cache.to_dict() and restored.max_entries == 4
    assert len(KpersistentCache.load(tmp_path / "absent.json")) == 0


def test_cache_from_a_plain_mapping_keeps_the_bound():
    mapping = {bytes([i]) * 32: bytes([i]) * 32 for i in range(5)}
    cache = KpersistentCache.from_mapping(mapping, max_entries=3)
    assert cache.items() == list(mapping.items())[2:]
    with pytest.raises(ValueError):
        KpersistentCache.from_mapping({b"short": bytes(32)})


@pytest.mark.parametrize(
    "data",
    [
        {"format": 2, "max_entries": 4, "entries": []},
        {"format": 1, "max_entries": 0, "entries": []},
        {"format": 1, "max_entries": 4, "entries": [{"reader_identifier": "00", "kpersistent": "00"}]},
        {"format": 1, "max_entries": 4, "entries": [{"reader_identifier": "zz" * 32, "kpersistent": "00" * 32}]},
        {"format": 1, "entries": []},
        [],
    ],
)
def test_cache_refuses_malformed_data(data):
    with pytest.raises(CacheFormatError):
        KpersistentCache.from_dict(data)


# === full transactions with the reference reader ===============================================


def test_standard_transaction_with_random_keys():
    world = make_world()
    result = world.reader.transact(world.device.process)
    assert result.kind == KIND_STANDARD
    assert result.credential_public_key == world.device.credential_public_key
    assert result.exchange_replies == [b""]
    assert world.device.last_reader_status == b"\x01\x01"
    assert world.device.last_control_flow == (0x01, 0x00)
    assert world.device.state is State.SELECTED
    assert world.reader.kpersistent[world.device.credential_public_key] == world.device.kpersistent_cache.get(
        world.reader_id
    )


def test_fast_transaction_after_a_standard_one():
    world = make_world()
    world.reader.transact(world.device.process)
    world.device.reset()
    result = world.reader.transact(world.device.process, fast=True)
    assert result.kind == KIND_FAST
    assert result.credential_public_key == world.device.credential_public_key
    assert result.exchange_replies == [b""] and world.device.last_reader_status == b"\x01\x01"


def test_fast_request_without_device_kpersistent_sends_random_bytes_and_falls_back():
    noise = bytes(range(64))
    world = make_world(device_kwargs={"random_bytes": lambda n: noise[:n]})
    world.reader.transact(world.device.process)
    world.device.kpersistent_cache.clear()
    seen = []

    def send(c_apdu):
        answer = world.device.process(c_apdu)
        seen.append((c_apdu[1], answer))
        return answer

    result = world.reader.transact(send, fast=True)
    assert result.kind == KIND_FALLBACK
    auth0_answer = next(answer for ins, answer in seen if ins == 0x80)
    assert tlv.decode_unique(auth0_answer[:-2])[0x9D] == noise
    # The fallback's AUTH1 refreshed the device's cache: the next fast one matches.
    world.device.reset()
    assert world.reader.transact(world.device.process, fast=True).kind == KIND_FAST


def test_fast_request_to_a_reader_without_kpersistent_falls_back():
    world = make_world()
    world.reader.transact(world.device.process)
    world.reader.kpersistent.clear()
    assert world.reader.transact(world.device.process, fast=True).kind == KIND_FALLBACK


def test_kpersistent_is_kept_per_reader_identifier():
    world = make_world()
    world.reader.transact(world.device.process)
    # Another car of the same group (other sub id) has no Kpersistent with this device yet.
    sibling = ReferenceReader(
        world.group_key, world.reader_id[:16] + os.urandom(16), enrolled=[world.device.credential_public_key]
    )
    sibling.kpersistent = dict(world.reader.kpersistent)
    assert sibling.transact(world.device.process, fast=True).kind == KIND_FALLBACK
    assert len(world.device.kpersistent_cache) == 2


def test_key_slot_mode():
    world = make_world()
    result = world.reader.transact(world.device.process, auth1_mode=0x00)
    assert result.credential_public_key == world.device.credential_public_key
    assert world.device.key_slot == crypto.key_slot(world.device.credential_public_key)


def test_reader_refuses_an_unenrolled_credential():
    world = make_world()
    world.reader.enrolled = [crypto.public_key_bytes(crypto.generate_private_key())]
    with pytest.raises(ReaderRefused, match="not enrolled"):
        world.reader.transact(world.device.process)


def test_vendor_extension_hook_round_trip_with_chaining_both_ways():
    received = []
    big_reply = bytes(range(256)) * 2  # 512 bytes: answered through 61xx and GET RESPONSE

    def handler(items):
        received.append(items)
        return [(0xE1, tlv.encode(0xC2, b"\x02"))] + ([(0xE1, big_reply)] if len(received) == 2 else [])

    world = make_world(device_kwargs={"exchange_handler": handler})
    share = tlv.encode(0xC3, bytes(600))  # a long share document: the command is chained
    sent = []

    def send(c_apdu):
        sent.append(c_apdu[:2])
        return world.device.process(c_apdu)

    result = world.reader.transact(send, exchanges=([(0x97, b"\x01\x01")], [(0xE1, share)]))
    assert received == [[(0x97, b"\x01\x01")], [(0xE1, share)]]
    assert result.exchange_replies == [
        tlv.encode(0xE1, tlv.encode(0xC2, b"\x02")),
        tlv.encode(0xE1, tlv.encode(0xC2, b"\x02")) + tlv.encode(0xE1, big_reply),
    ]
    assert b"\x90\xc9" in sent and b"\x00\xc0" in sent  # CLA|0x10 chaining and GET RESPONSE happened


# === status word paths =====================================================================


def test_unknown_aid_is_6a82_and_deselects():
    world = make_world()
    world.device.process(SELECT)
    assert world.device.process(bytes.fromhex("00A4040009A000000909ACCE550200")) == b"\x6a\x82"
    assert world.device.state is State.IDLE
    answer = world.device.process(auth0_apdu(world.reader_id, crypto.public_key_bytes(fixed_key(5)), bytes(16)))
    assert answer == b"\x6d\x00"


@pytest.mark.parametrize("header", ["00A4000009", "00A4040C09"])
def test_select_bad_p1p2_is_6a86(header):
    world = make_world()
    assert world.device.process(bytes.fromhex(header + "A000000909ACCE550100")) == b"\x6a\x86"


@pytest.mark.parametrize("ins", ["80", "81", "C9", "3C"])
def test_bad_p1p2_is_6a86(ins):
    world = make_world()
    world.device.process(SELECT)
    assert world.device.process(bytes.fromhex(f"80{ins}0100024100")) == b"\x6a\x86"


@pytest.mark.parametrize(
    "raw",
    [
        "80A4040009A000000909ACCE550100",  # SELECT with a proprietary class
        "10A4040009A000000909ACCE550100",  # chained SELECT
        "008000000100",  # AUTH0 with the ISO class
        "848000000100",  # secure messaging
        "C0C900000100",  # unknown class byte
        "903C000006410101420100",  # chained CONTROL FLOW
    ],
)
def test_bad_class_is_6800(raw):
    world = make_world()
    world.device.process(SELECT)
    assert world.device.process(bytes.fromhex(raw)) == b"\x68\x00"


def test_unknown_instruction_is_6d00():
    world = make_world()
    world.device.process(SELECT)
    assert world.device.process(bytes.fromhex("80CA000000")) == b"\x6d\x00"


@pytest.mark.parametrize("raw", ["803C", "803C000005410101", "803C0000000006410101420100"])
def test_malformed_apdu_is_6701(raw):
    world = make_world()
    world.device.process(SELECT)
    assert world.device.process(bytes.fromhex(raw)) == b"\x67\x01"


def test_auth0_before_select_is_6d00():
    world = make_world()
    answer = world.device.process(auth0_apdu(world.reader_id, crypto.public_key_bytes(fixed_key(5)), bytes(16)))
    assert answer == b"\x6d\x00"


def test_auth1_before_auth0_is_6d00():
    world = make_world()
    world.device.process(SELECT)
    assert world.device.process(auth1_apdu(bytes(64))) == b"\x6d\x00"


def test_exchange_before_auth1_is_6d00():
    world = make_world()
    start(world)
    assert world.device.process(exchange_apdu(bytes(20))) == b"\x6d\x00"


def test_exchange_after_fast_auth0_without_kpersistent_is_6d00():
    world = make_world()
    start(world, fast=True)
    assert world.device.state is State.AUTH0_DONE
    assert world.device.process(exchange_apdu(bytes(20))) == b"\x6d\x00"


def test_second_auth0_is_6d00_and_ends_the_transaction():
    world = make_world()
    _, transcript, _ = start(world)
    again = auth0_apdu(world.reader_id, transcript.reader_ephemeral_public_key, transcript.transaction_id)
    assert world.device.process(again) == b"\x6d\x00"
    assert world.device.process(auth1_apdu(reader_signature(world, transcript))) == b"\x6d\x00"


def test_second_auth1_is_6d00():
    world = make_world()
    _, transcript, _ = start(world)
    command = auth1_apdu(reader_signature(world, transcript))
    assert world.device.process(command)[-2:] == OK
    assert world.device.process(command) == b"\x6d\x00"


def test_control_flow_before_select_is_6d00():
    assert make_world().device.process(CONTROL_FLOW) == b"\x6d\x00"


def test_get_response_with_nothing_waiting_is_6d00():
    world = make_world()
    world.device.process(SELECT)
    assert world.device.process(bytes.fromhex("00C0000000")) == b"\x6d\x00"


def valid_auth0_fields(reader_id):
    return [
        (0x41, b"\x00"),
        (0x42, b"\x02"),
        (0x5C, b"\x01\x00"),
        (0x87, crypto.public_key_bytes(fixed_key(7))),
        (0x4C, bytes(16)),
        (0x4D, reader_id),
    ]


def auth0_with(reader_id, replace=None, drop=None, append=b""):
    fields = [(t, replace[t] if replace and t in replace else v) for t, v in valid_auth0_fields(reader_id) if t != drop]
    return CommandApdu(0x80, 0x80, data=tlv.encode_all(fields) + append, le=256).to_bytes()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"drop": 0x87},
        {"drop": 0x4D},
        {"replace": {0x4C: bytes(15)}},
        {"replace": {0x41: b"\x00\x00"}},
        {"replace": {0x41: b"\x02"}},  # no such transaction type
        {"replace": {0x42: b"\x04"}},  # no such policy
        {"replace": {0x87: b"\x04" + bytes(64)}},  # not on the curve
        {"replace": {0x87: b"\x02" + bytes(64)}},  # not uncompressed
        {"append": bytes.fromhex("410100")},  # repeated tag
        {"append": bytes.fromhex("b105aa")},  # truncated TLV
        {"append": bytes.fromhex("b18105" + "00" * 5)},  # overlong length
    ],
)
def test_malformed_auth0_is_6701(kwargs):
    world = make_world()
    world.device.process(SELECT)
    assert world.device.process(auth0_with(world.reader_id, **kwargs)) == b"\x67\x01"
    assert world.device.state is State.SELECTED


def test_auth0_vendor_data_b1_is_accepted():
    world = make_world()
    world.device.process(SELECT)
    assert world.device.process(auth0_with(world.reader_id, append=bytes.fromhex("b103aabbcc")))[-2:] == OK


def test_unsupported_version_is_6985():
    world = make_world()
    world.device.process(SELECT)
    assert world.device.process(auth0_with(world.reader_id, replace={0x5C: b"\x02\x00"})) == b"\x69\x85"


def test_wrong_reader_signature_is_6982_and_ends_the_transaction():
    world = make_world()
    _, transcript, _ = start(world)
    signature = bytearray(reader_signature(world, transcript))
    signature[10] ^= 0x01
    assert world.device.process(auth1_apdu(bytes(signature))) == b"\x69\x82"
    assert world.device.state is State.SELECTED
    assert world.device.process(auth1_apdu(reader_signature(world, transcript))) == b"\x6d\x00"
    assert len(world.device.kpersistent_cache) == 0


@pytest.mark.parametrize("usage", [crypto.USAGE_DEVICE, b"\x00\x00\x00\x00"])
def test_reader_signature_with_wrong_usage_is_6982(usage):
    world = make_world()
    _, transcript, _ = start(world)
    signature = crypto.sign(world.group_key, crypto.signed_data(transcript, usage))
    assert world.device.process(auth1_apdu(signature)) == b"\x69\x82"


def test_signature_by_an_untrusted_key_for_a_trusted_group_is_6982():
    world = make_world()
    _, transcript, _ = start(world)
    assert world.device.process(auth1_apdu(reader_signature(world, transcript, key=crypto.generate_private_key()))) == b"\x69\x82"


def test_impostor_reader_of_a_trusted_group_gets_6982():
    world = make_world()
    impostor = ReferenceReader(crypto.generate_private_key(), world.reader_id)
    with pytest.raises(DeviceError) as info:
        impostor.transact(world.device.process)
    assert (info.value.command, info.value.sw) == ("AUTH1", 0x6982)
    assert len(world.device.kpersistent_cache) == 0


def test_unknown_reader_group_drops_the_link():
    world = make_world()
    stranger = ReferenceReader(crypto.generate_private_key(), os.urandom(32))
    with pytest.raises(LinkDropped):
        stranger.transact(world.device.process)
    assert world.device.state is State.IDLE
    assert world.device.process(exchange_apdu(bytes(20))) == b"\x6d\x00"
    assert len(world.device.kpersistent_cache) == 0


def test_distrusted_group_drops_the_link_even_with_a_cached_kpersistent():
    world = make_world()
    world.reader.transact(world.device.process)
    world.device.distrust_reader(world.reader_id[:16])
    with pytest.raises(LinkDropped):
        world.reader.transact(world.device.process, fast=True)


@pytest.mark.parametrize("data", ["410101", "9e40" + "00" * 64, "410102" "9e40" + "00" * 64, "410101" "9e3f" + "00" * 63])
def test_malformed_auth1_is_6701(data):
    world = make_world()
    start(world)
    command = CommandApdu(0x80, 0x81, data=bytes.fromhex(data), le=256).to_bytes()
    assert world.device.process(command) == b"\x67\x01"


def test_tampered_exchange_is_6982_and_ends_the_transaction():
    world = make_world()
    channel = open_channel(world)
    message = bytearray(channel.seal(b"\x97\x02\x01\x01"))
    message[0] ^= 0x80
    assert world.device.process(exchange_apdu(bytes(message))) == b"\x69\x82"
    assert world.device.state is State.SELECTED
    assert world.device.process(exchange_apdu(channel.seal(b"\x97\x02\x01\x01"))) == b"\x6d\x00"


def test_replayed_exchange_is_6982():
    world = make_world()
    channel = open_channel(world)
    command = exchange_apdu(channel.seal(b"\x97\x02\x01\x01"))
    answer = world.device.process(command)
    assert answer[-2:] == OK and channel.open(answer[:-2]) == b"\x00\x02\x00\x00"
    assert world.device.process(command) == b"\x69\x82"


def test_reordered_exchange_is_6982():
    world = make_world()
    channel = open_channel(world)
    channel.seal(b"\x97\x02\x01\x01")  # counter 1 never sent
    assert world.device.process(exchange_apdu(channel.seal(b"\x97\x02\x01\x01"))) == b"\x69\x82"


def test_exchange_answers_follow_the_device_counter():
    world = make_world()
    channel = open_channel(world)
    for _ in range(3):
        answer = world.device.process(exchange_apdu(channel.seal(b"\x97\x02\x01\x01")))
        assert channel.open(answer[:-2]) == b"\x00\x02\x00\x00"
    assert (channel.send_counter, channel.receive_counter) == (4, 5)


@pytest.mark.parametrize("plaintext", ["9702", "970101", "97020101" "5a"])
def test_exchange_with_malformed_plaintext_is_6701(plaintext):
    world = make_world()
    channel = open_channel(world)
    assert world.device.process(exchange_apdu(channel.seal(bytes.fromhex(plaintext)))) == b"\x67\x01"


def test_exchange_shorter_than_a_tag_is_6701():
    world = make_world()
    open_channel(world)
    assert world.device.process(exchange_apdu(bytes(15))) == b"\x67\x01"


def test_control_flow_ends_the_transaction_and_a_new_one_can_start():
    world = make_world()
    channel = open_channel(world)
    assert world.device.process(CONTROL_FLOW) == OK
    assert world.device.state is State.SELECTED
    assert world.device.process(exchange_apdu(channel.seal(b"\x97\x02\x01\x01"))) == b"\x6d\x00"
    _, transcript, _ = start(world)  # start() re-selects; AUTH0 directly would work too
    assert world.device.process(auth1_apdu(reader_signature(world, transcript)))[-2:] == OK


def test_auth0_right_after_control_flow_needs_no_select():
    world = make_world()
    open_channel(world)
    world.device.process(CONTROL_FLOW)
    answer = world.device.process(auth0_with(world.reader_id))
    assert answer[-2:] == OK and world.device.state is State.AUTH0_DONE


@pytest.mark.parametrize("data", ["410101", "4101014201", "410101420100420100"])
def test_malformed_control_flow_is_6701(data):
    world = make_world()
    world.device.process(SELECT)
    command = CommandApdu(0x80, 0x3C, data=bytes.fromhex(data)).to_bytes()
    assert world.device.process(command) == b"\x67\x01"


def test_new_select_resets_the_transaction():
    world = make_world()
    channel = open_channel(world)
    assert world.device.process(SELECT)[-2:] == OK
    assert world.device.state is State.SELECTED
    assert world.device.process(exchange_apdu(channel.seal(b"\x97\x02\x01\x01"))) == b"\x6d\x00"


def test_fast_transaction_state_accepts_auth1_fallback():
    world = make_world()
    world.reader.transact(world.device.process)
    _, transcript, fields = start(world, fast=True)
    assert world.device.state is State.AUTH0_FAST and len(fields[0x9D]) == 64
    assert world.device.process(auth1_apdu(reader_signature(world, transcript)))[-2:] == OK
    assert world.device.state is State.SECURE


# --- chaining under attack ---


def test_chain_interrupted_by_another_instruction_is_6d00():
    world = make_world()
    world.device.process(SELECT)
    assert world.device.process(CommandApdu(0x90, 0x80, data=bytes(255)).to_bytes()) == OK
    assert world.device.process(CommandApdu(0x80, 0xC9, data=bytes(20)).to_bytes()) == b"\x6d\x00"
    # The chain is gone: a fresh AUTH0 is parsed on its own.
    assert world.device.process(auth0_with(world.reader_id))[-2:] == OK


def test_chain_longer_than_the_limit_is_6701():
    world = make_world()
    world.device.process(SELECT)
    part = CommandApdu(0x90, 0xC9, data=bytes(255)).to_bytes()
    answers = [world.device.process(part) for _ in range(apdu.MAX_CHAINED_DATA // 255 + 1)]
    assert answers[:-1] == [OK] * (len(answers) - 1) and answers[-1] == b"\x67\x01"


def test_select_in_the_middle_of_a_chain_wins():
    world = make_world()
    world.device.process(SELECT)
    world.device.process(CommandApdu(0x90, 0x80, data=bytes(255)).to_bytes())
    assert world.device.process(SELECT)[-2:] == OK
    assert world.device.process(auth0_with(world.reader_id))[-2:] == OK


# === fuzzing ===============================================================================


def recorded_transaction():
    """A standard transaction with every random value fixed, as C-APDUs in order."""
    group_key, credential = fixed_key(11), fixed_key(12)
    reader_id = bytes(range(32))

    def device():
        return UserDevice(
            credential, {reader_id[:16]: crypto.public_key_bytes(group_key)}, ephemeral_key_factory=lambda: fixed_key(13)
        )

    reader = ReferenceReader(group_key, reader_id, ephemeral_key_factory=lambda: fixed_key(14), random_bytes=bytes)
    sent = []

    def send(c_apdu):
        sent.append(c_apdu)
        return dev.process(c_apdu)

    dev = device()
    reader.transact(send, exchanges=([(0x97, b"\x01\x01"), (0xE1, b"\xc0\x01\x01")],), control_flow=(1, 0))
    return device, sent


FUZZ_DEVICE, FUZZ_APDUS = recorded_transaction()


def test_recorded_transaction_replays():
    device = FUZZ_DEVICE()
    assert [device.process(c)[-2:] for c in FUZZ_APDUS] == [OK] * len(FUZZ_APDUS)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(FUZZ_APDUS) - 1), st.data())
def test_mutated_transaction_never_crashes(step, data):
    """One byte changed anywhere in one command: the device answers with a known SW."""
    device = FUZZ_DEVICE()
    for c_apdu in FUZZ_APDUS[:step]:
        device.process(c_apdu)
    command = bytearray(FUZZ_APDUS[step])
    index = data.draw(st.integers(0, len(command) - 1))
    command[index] ^= data.draw(st.integers(1, 255))
    answer = device.process(bytes(command))
    assert sw(answer) in DEVICE_SWS
    if sw(answer) != 0x9000:
        assert device.state in (State.IDLE, State.SELECTED)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=300), min_size=1, max_size=4))
def test_random_apdus_in_a_secure_state_never_crash(commands):
    device = FUZZ_DEVICE()
    for c_apdu in FUZZ_APDUS[:3]:  # SELECT, AUTH0, AUTH1: the channel is open
        device.process(c_apdu)
    assert device.state is State.SECURE
    for c_apdu in commands:
        answer = device.process(c_apdu)
        assert sw(answer) in DEVICE_SWS or answer[-2] == 0x61


auth0_tags = st.sampled_from([0x41, 0x42, 0x5C, 0x87, 0x4C, 0x4D, 0xB1, 0x7F66, 0x00])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(auth0_tags, st.binary(max_size=70)), max_size=8), st.binary(max_size=4))
def test_random_auth0_fields_never_crash(fields, tail):
    device = FUZZ_DEVICE()
    device.process(SELECT)
    data = (tlv.encode_all(fields) + tail)[:255]
    answer = device.process(CommandApdu(0x80, 0x80, data=data, le=256).to_bytes())
    assert sw(answer) in {0x9000, 0x6701, 0x6985}


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_random_exchange_plaintext_never_crashes(plaintext):
    """Whatever an authenticated reader encrypts, the device answers 9000 or 6701."""
    seen = []
    world = make_world(device_kwargs={"exchange_handler": lambda items: seen.append(items) or []})
    channel = open_channel(world)
    answer = world.device.process(exchange_apdu(channel.seal(plaintext)))
    if sw(answer) == 0x9000:
        assert channel.open(answer[:-2]) == b"\x00\x02\x00\x00"
        assert seen == [tlv.decode_all(plaintext)]
    else:
        assert answer == b"\x67\x01" and seen == []
