"""The phone's BLE framing (carkey_host.ble_phone), shared by the virtual-air and bleak backends.

Chunking at MTU−3, the 2-byte length prefix, reassembly, refused frames, the
PhoneLink that turns command frames into answer chunks, and the ATT counting
used for the bench figure.

Run: .venv/bin/pytest -q tests/host/test_ble_framing.py
"""

import pytest

from carkey_host import ble_phone as bp
from carkey_host.aliro.user_device import LinkDropped
from carkey_host.virtual_air import CENTRAL, PERIPHERAL, AttRecord


def test_encode_frame_prefix():
    assert bp.encode_frame(b"\x90\x00") == b"\x00\x02\x90\x00"
    assert bp.encode_frame(bytes(300))[:2] == b"\x01\x2c"


@pytest.mark.parametrize("apdu", [b"", bytes(513)])
def test_encode_frame_refuses_bad_lengths(apdu):
    with pytest.raises(bp.FramingError, match="outside 1..512"):
        bp.encode_frame(apdu)


def test_split_at_mtu_minus_3():
    frame = bytes(range(45))
    assert bp.split(frame, 23) == [frame[:20], frame[20:40], frame[40:]]
    assert bp.split(frame, 48) == [frame]


@pytest.mark.parametrize("mtu", [22, 518])
def test_mtu_bounds(mtu):
    with pytest.raises(bp.FramingError, match="outside 23..517"):
        bp.chunk_size(mtu)


def test_reassembler_roundtrip_every_mtu_edge():
    apdu = bytes(range(256)) + bytes(5)
    for mtu in (23, 24, 25, 185, 247, 517):
        r = bp.Reassembler(bp.MAX_COMMAND)
        chunks = bp.split(bp.encode_frame(apdu, bp.MAX_COMMAND), mtu)
        results = [r.feed(c) for c in chunks]
        assert results[:-1] == [None] * (len(chunks) - 1)
        assert results[-1] == apdu


def test_reassembler_header_split():
    r = bp.Reassembler()
    assert r.feed(b"\x00") is None
    assert r.feed(b"\x02\x90") is None
    assert r.feed(b"\x00") == b"\x90\x00"


@pytest.mark.parametrize(
    "chunks, message",
    [
        ([b"\x00\x00"], "frame length 0 outside 1..261"),
        ([b"\x01\x06" + bytes(18)], "frame length 262 outside 1..261"),
        ([b"\x00\x01\x90\x00"], "1 bytes past the end of the frame"),
        ([b"\x00\x03\x90", b"\x00\x01\x02"], "1 bytes past the end of the frame"),
        ([b""], "empty chunk"),
    ],
)
def test_reassembler_refuses(chunks, message):
    r = bp.Reassembler()
    with pytest.raises(bp.FramingError, match=message):
        for c in chunks:
            r.feed(c)
    assert not r.started  # a refused frame leaves nothing behind


def test_short_frame_named_at_link_end():
    r = bp.Reassembler()
    r.feed(b"\x00\x05\x01")
    with pytest.raises(bp.FramingError, match="frame short: 3 of 7 bytes"):
        r.check_idle()


def test_phone_link_answers_in_chunks():
    seen = []

    def process(capdu):
        seen.append(capdu)
        return bytes(40) + b"\x90\x00"

    link = bp.PhoneLink(process, mtu=23)
    command = b"\x80\xc9\x00\x00\x20" + bytes(range(32)) + b"\x00"
    frame = bp.encode_frame(command)
    assert link.on_indication(frame[:20]) == []
    out = link.on_indication(frame[20:])
    assert seen == [command]
    assert out == [b"\x00\x2a" + bytes(18), bytes(20), bytes(2) + b"\x90\x00"]
    assert (link.log.indications, link.log.bytes_in) == (2, 40)


def test_phone_link_tamper_and_drop():
    link = bp.PhoneLink(lambda c: b"\x90\x00", mtu=23, tamper=lambda c, r: b"\x69\x82")
    assert link.on_indication(b"\x00\x01\xaa") == [b"\x00\x02\x69\x82"]

    def drop(capdu):
        raise LinkDropped()

    with pytest.raises(LinkDropped):
        bp.PhoneLink(drop).on_indication(b"\x00\x01\xaa")


def test_device_name_and_ad_parsing():
    assert bp.device_name(bytes(range(16))) == "carkey-00010203"
    adv = b"\x02\x01\x06\x10\x09carkey-00010203"
    assert bp.ad_field(adv, 0x09) == "carkey-00010203"
    assert bp.ad_field(b"\x05\x09ab", 0x09) is None  # length past the end
    assert bp.uuid_le(bp.SERVICE_UUID) == bytes.fromhex("7f1e00016c2b4b8e9f3a2d5c1ac0a201")[::-1]


def test_count_exchanges():
    trace = [
        AttRecord(0, 1, CENTRAL, b"\x02\xf7\x00"),
        AttRecord(0, 1, PERIPHERAL, b"\x03\xf7\x00"),
        AttRecord(0, 1, PERIPHERAL, b"\x1d\x0e\x00" + bytes(10)),
        AttRecord(0, 1, CENTRAL, b"\x1e"),
        AttRecord(0, 1, CENTRAL, b"\x12\x0c\x00" + bytes(7)),
        AttRecord(0, 1, PERIPHERAL, b"\x13"),
        AttRecord(0, 2, CENTRAL, b"\x12\x0c\x00" + bytes(9)),
    ]
    assert bp.count_exchanges(trace, 1) == {
        "indications": 1, "writes": 1, "car_to_phone_bytes": 10, "phone_to_car_bytes": 7,
        "att_pdus": 6, "att_bytes": 3 + 3 + 13 + 1 + 10 + 1,
    }
