# carkey — strict BER-TLV for Aliro payloads: 1–2 byte tags, short/81/82 lengths.
# SPDX-License-Identifier: MIT
#
# Decoding hands out offsets (or memoryview slices) into the caller's buffer
# instead of copying values, and refuses anything a sloppy peer could use to make
# two parsers disagree: truncation, overlong tags or lengths, indefinite or 83+
# length forms, trailing bytes and (in fields()) repeated tags. Tag 00 is legal
# because an EXCHANGE answer ends with 00 02 <status>.

from micropython import const

_MULTI = const(0x1F)  # low five bits set in the first tag byte: a second byte follows
_LEN81 = const(0x81)  # 81 LL: one length byte, 0x80..0xFF
_LEN82 = const(0x82)  # 82 LL LL: two length bytes, 0x100..0xFFFF
_MAX_LEN = const(0xFFFF)


class TlvError(ValueError):
    pass


def read(data, pos=0):
    # One object at pos: (tag, value_start, value_end).
    n = len(data)
    if pos >= n:
        raise TlvError("truncated tag")
    tag = data[pos]
    pos += 1
    if tag & _MULTI == _MULTI:
        if pos >= n:
            raise TlvError("truncated tag")
        second = data[pos]
        pos += 1
        if second & 0x80:
            raise TlvError("tag longer than 2 bytes")
        if second < _MULTI:
            raise TlvError("overlong tag")
        tag = (tag << 8) | second
    if pos >= n:
        raise TlvError("truncated length")
    length = data[pos]
    pos += 1
    if length == _LEN81:
        if pos + 1 > n:
            raise TlvError("truncated length")
        length = data[pos]
        pos += 1
        if length < 0x80:
            raise TlvError("overlong length")
    elif length == _LEN82:
        if pos + 2 > n:
            raise TlvError("truncated length")
        length = (data[pos] << 8) | data[pos + 1]
        pos += 2
        if length <= 0xFF:
            raise TlvError("overlong length")
    elif length & 0x80:
        raise TlvError("unsupported length form")
    end = pos + length
    if end > n:
        raise TlvError("truncated value")
    return tag, pos, end


def iterate(data):
    # Every object in order, as (tag, start, end); the objects must cover data exactly.
    pos = 0
    n = len(data)
    while pos < n:
        tag, start, end = read(data, pos)
        yield tag, start, end
        pos = end


def fields(data, wanted=None):
    # {tag: memoryview} of data's top-level objects, refusing a repeated tag. With
    # `wanted`, other tags are skipped (still checked for well-formedness), so
    # optional vendor objects do not break parsing.
    mv = memoryview(data)
    out = {}
    for tag, start, end in iterate(mv):
        if wanted is not None and tag not in wanted:
            continue
        if tag in out:
            raise TlvError("repeated tag")
        out[tag] = mv[start:end]
    return out


def get(found, tag, length=None):
    # A required field, optionally of an exact length.
    value = found.get(tag)
    if value is None:
        raise TlvError("missing tag %02X" % tag)
    if length is not None and len(value) != length:
        raise TlvError("tag %02X has length %d" % (tag, len(value)))
    return value


def header_size(tag, length):
    return (2 if tag > 0xFF else 1) + (1 if length < 0x80 else 2 if length <= 0xFF else 3)


def write_header(buf, pos, tag, length):
    # Writes tag and length into buf at pos; returns the position of the value.
    if tag > 0xFF:
        if tag > 0xFFFF or (tag >> 8) & _MULTI != _MULTI or not _MULTI <= tag & 0xFF <= 0x7F:
            raise TlvError("bad two-byte tag")
        buf[pos] = tag >> 8
        buf[pos + 1] = tag & 0xFF
        pos += 2
    else:
        if tag < 0 or tag & _MULTI == _MULTI:
            raise TlvError("bad one-byte tag")
        buf[pos] = tag
        pos += 1
    if length < 0 or length > _MAX_LEN:
        raise TlvError("length out of range")
    if length < 0x80:
        buf[pos] = length
        return pos + 1
    if length <= 0xFF:
        buf[pos] = _LEN81
        buf[pos + 1] = length
        return pos + 2
    buf[pos] = _LEN82
    buf[pos + 1] = length >> 8
    buf[pos + 2] = length & 0xFF
    return pos + 3


def write(buf, pos, tag, value):
    # Writes a whole object into a preallocated buffer; returns the end position.
    n = len(value)
    pos = write_header(buf, pos, tag, n)
    buf[pos : pos + n] = value
    return pos + n


def encode(tag, value):
    out = bytearray(header_size(tag, len(value)) + len(value))
    write(out, 0, tag, value)
    return bytes(out)
