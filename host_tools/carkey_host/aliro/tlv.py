"""BER-TLV encoding and strict decoding for Aliro APDU payloads.

Tags are ints: one byte (``0x4D``) or two bytes (``0x7F66``). Lengths are 0..65535
in the short, ``81 xx`` or ``82 xx xx`` forms. Decoding is strict: a truncated
object, a length or tag in a longer form than needed, or bytes left over raise
``TlvError`` and nothing else.

Tag ``00`` is accepted because the EXCHANGE answer ends with ``00 02 00 00``,
which parses as one (tag 00, two-byte value) object.
"""

from __future__ import annotations

from typing import Iterable, NamedTuple

MAX_LENGTH = 0xFFFF


class TlvError(ValueError):
    """Malformed BER-TLV input (truncated, overlong, unsupported form, duplicate)."""


class Tlv(NamedTuple):
    tag: int
    value: bytes


def _is_multibyte_lead(first: int) -> bool:
    # Low five bits all set: the tag number continues in the next byte.
    return first & 0x1F == 0x1F


def is_constructed(tag: int) -> bool:
    """True if the tag's leading byte marks a constructed (nested) object."""
    lead = tag >> 8 if tag > 0xFF else tag
    return bool(lead & 0x20)


def encode_tag(tag: int) -> bytes:
    if 0 <= tag <= 0xFF:
        if _is_multibyte_lead(tag):
            raise TlvError(f"tag {tag:02X} needs a second byte")
        return bytes([tag])
    if 0x100 <= tag <= 0xFFFF:
        lead, second = tag >> 8, tag & 0xFF
        if not _is_multibyte_lead(lead) or not 0x1F <= second <= 0x7F:
            raise TlvError(f"tag {tag:04X} is not a valid two-byte tag")
        return bytes([lead, second])
    raise TlvError(f"tag {tag:#x} out of range")


def encode_length(length: int) -> bytes:
    if length < 0 or length > MAX_LENGTH:
        raise TlvError(f"length {length} out of range")
    if length < 0x80:
        return bytes([length])
    if length <= 0xFF:
        return bytes([0x81, length])
    return bytes([0x82, length >> 8, length & 0xFF])


def encode(tag: int, value: bytes) -> bytes:
    value = bytes(value)
    return encode_tag(tag) + encode_length(len(value)) + value


def encode_all(items: Iterable[tuple[int, bytes]]) -> bytes:
    return b"".join(encode(tag, value) for tag, value in items)


def _read_tag(data: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(data):
        raise TlvError("truncated tag")
    first = data[pos]
    if not _is_multibyte_lead(first):
        return first, pos + 1
    if pos + 1 >= len(data):
        raise TlvError("truncated two-byte tag")
    second = data[pos + 1]
    if second & 0x80:
        raise TlvError("tags longer than two bytes are not supported")
    if second < 0x1F:
        # Tag numbers below 31 must use the one-byte form.
        raise TlvError("overlong tag encoding")
    return (first << 8) | second, pos + 2


def _read_length(data: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(data):
        raise TlvError("truncated length")
    first = data[pos]
    if first < 0x80:
        return first, pos + 1
    if first == 0x81:
        if pos + 2 > len(data):
            raise TlvError("truncated length")
        length = data[pos + 1]
        if length < 0x80:
            raise TlvError("overlong length encoding")
        return length, pos + 2
    if first == 0x82:
        if pos + 3 > len(data):
            raise TlvError("truncated length")
        length = (data[pos + 1] << 8) | data[pos + 2]
        if length <= 0xFF:
            raise TlvError("overlong length encoding")
        return length, pos + 3
    raise TlvError(f"unsupported length form {first:02X}")


def _read_one(data: bytes, pos: int) -> tuple[Tlv, int]:
    tag, pos = _read_tag(data, pos)
    length, pos = _read_length(data, pos)
    end = pos + length
    if end > len(data):
        raise TlvError(f"value of tag {tag:02X} truncated")
    return Tlv(tag, bytes(data[pos:end])), end


def decode_all(data: bytes) -> list[Tlv]:
    """Every object in ``data``, in order; the objects must cover it exactly."""
    data = bytes(data)
    items = []
    pos = 0
    while pos < len(data):
        item, pos = _read_one(data, pos)
        items.append(item)
    return items


def decode_one(data: bytes) -> Tlv:
    """Exactly one object: trailing bytes are an error."""
    data = bytes(data)
    item, end = _read_one(data, 0)
    if end != len(data):
        raise TlvError("trailing bytes after TLV")
    return item


def decode_unique(data: bytes) -> dict[int, bytes]:
    """Objects by tag, refusing a repeated tag (a reader must not send two of one field)."""
    fields: dict[int, bytes] = {}
    for tag, value in decode_all(data):
        if tag in fields:
            raise TlvError(f"duplicate tag {tag:02X}")
        fields[tag] = value
    return fields
