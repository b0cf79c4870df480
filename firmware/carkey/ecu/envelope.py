# carkey — the carkey envelope inside EXCHANGE: hello, requests, results (docs/PROTOCOL.md §4).
# SPDX-License-Identifier: MIT
#
# The reader speaks first (hello), the device answers with documents and at most
# one command request per message, the reader answers each request with a result.
# Parsing is strict inside the envelope (fixed order, known tags, exact lengths)
# and lenient outside it: other top-level objects an Aliro device may add are
# skipped, as the expedited phase allows.

from micropython import const

from carkey.protocol import tlv

ENVELOPE = const(0xE1)
_HELLO = const(0xC0)  # [version 1 byte]
_CAR_STATE = const(0xC1)  # [lock state][door bitmap][drive-enable minutes]
_REQUEST = const(0xC2)  # [command][argument 0..n]
_SHARE = const(0xC3)  # a share document (E2 ...)
_RESULT = const(0xC4)  # [command][result][car state 3]
_REVOCATION = const(0xC5)  # a revocation document (E3 ...)
_DOCUMENT_RESULT = const(0xC6)  # [document tag E2|E3][result]: one per document judged
_BATTERY = const(0xC7)  # [millivolts, 2 bytes]: a key fob's battery, before its request
_READER_STATUS = const(0x97)  # [01][01 granted | 00 refused]

VERSION = const(1)
MAX_REVOCATIONS = const(4)  # per message: bounds the signature checks one tap can cause
_MAX_ARGUMENT = const(8)


class EnvelopeError(ValueError):
    pass


class Request:
    """What one device message carried: share document, revocation documents, command."""

    def __init__(self):
        self.carkey = False  # an E1 envelope was present (a carkey-aware device)
        self.share = None
        self.revocations = []
        self.command = None
        self.argument = b""
        self.battery_mv = None  # a key fob's battery voltage (C7), if it sent one


def hello(car_state):
    # E1 08 [C0 01 01][C1 03 state]
    out = bytearray(10)
    out[0] = ENVELOPE
    out[1] = 8
    pos = tlv.write(out, 2, _HELLO, b"\x01")
    tlv.write(out, pos, _CAR_STATE, car_state)
    return out


def result(command, code, car_state, granted, documents=()):
    # 97 02 01 RR ‖ E1 L [C6 02 tag result]* [C4 05 command result state]
    n = 4 * len(documents)
    out = bytearray(13 + n)
    out[0] = _READER_STATUS
    out[1] = 2
    out[2] = 1
    out[3] = 1 if granted else 0
    out[4] = ENVELOPE
    out[5] = 7 + n
    pos = 6
    for tag, doc_code in documents:
        out[pos] = _DOCUMENT_RESULT
        out[pos + 1] = 2
        out[pos + 2] = tag
        out[pos + 3] = doc_code
        pos += 4
    out[pos] = _RESULT
    out[pos + 1] = 5
    out[pos + 2] = command
    out[pos + 3] = code
    out[pos + 4 : pos + 7] = car_state
    return out


def parse(data):
    """The Request in a device message (its TLVs without the status trailer).

    Inside E1 the order is [C3]? [C5]* [C7]? [C2]?; anything else there is an error, as
    is a second E1. Raises EnvelopeError (or tlv.TlvError) for a malformed message."""
    req = Request()
    mv = memoryview(data)
    for tag, start, end in tlv.iterate(mv):
        if tag != ENVELOPE:
            continue
        if req.carkey:
            raise EnvelopeError("two envelopes")
        req.carkey = True
        stage = 0  # 0: share allowed, 1: revocations, 2: after the request
        for inner, s, e in tlv.iterate(mv[start:end]):
            value = mv[start + s : start + e]
            if inner == _SHARE and stage == 0:
                req.share = bytes(value)
                stage = 1
            elif inner == _REVOCATION and stage <= 1:
                if len(req.revocations) == MAX_REVOCATIONS:
                    raise EnvelopeError("more than %d revocation documents" % MAX_REVOCATIONS)
                req.revocations.append(bytes(value))
                stage = 1
            elif inner == _BATTERY and stage <= 1 and req.battery_mv is None:
                if len(value) != 2:
                    raise EnvelopeError("battery length")
                req.battery_mv = (value[0] << 8) | value[1]
            elif inner == _REQUEST and stage <= 1:
                if not 1 <= len(value) <= 1 + _MAX_ARGUMENT:
                    raise EnvelopeError("command request length")
                req.command = value[0]
                req.argument = bytes(value[1:])
                stage = 2
            else:
                raise EnvelopeError("unexpected tag %02X in envelope" % inner)
    return req
