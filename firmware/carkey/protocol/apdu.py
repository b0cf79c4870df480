# carkey — ISO 7816-4 short command APDUs, status words and chaining for the expedited phase.
# SPDX-License-Identifier: MIT
#
# Only short APDUs: command data over 255 bytes goes as a chain (CLA | 10 on
# every part but the last, no Le on those), an answer over 254 bytes comes in
# parts ending 61xx that GET RESPONSE fetches. transmit() hides both from callers.

from micropython import const

from carkey.protocol.errors import ProtocolError

CLA_ISO = const(0x00)
CLA_PROPRIETARY = const(0x80)
_CLA_CHAINING = const(0x10)  # OR-ed into CLA of every chain part but the last

# SELECT 00 A4 04 00 Lc AID 00: select by name, first occurrence, answer FCI
INS_SELECT = const(0xA4)
# AUTH0 80 80 00 00 Lc [41 type][42 policy][5C version][87 eph pub][4C txid][4D reader id] 00
INS_AUTH0 = const(0x80)
# AUTH1 80 81 00 00 Lc [41 mode][9E reader signature] 00
INS_AUTH1 = const(0x81)
# EXCHANGE 80 C9 00 00 Lc <GCM(SKReader) of TLVs> 00
INS_EXCHANGE = const(0xC9)
# CONTROL FLOW 80 3C 00 00 06 [41 01 S1][42 01 S2], no Le
INS_CONTROL_FLOW = const(0x3C)
# GET RESPONSE 00 C0 00 00 Le: the next part of a long answer
_INS_GET_RESPONSE = const(0xC0)

SW_OK = const(0x9000)
_SW_MORE_DATA = const(0x6100)  # low byte: bytes remaining, 00 = 256 or more
# What user devices answer otherwise (private here: the reader reports any SW
# as is; a device role makes the ones it sends public):
#   6400 key lookup failed, 6701 malformed, 6800 bad CLA, 6982 bad signature or
#   GCM failure, 6985 unsupported version, 6A82 unknown AID, 6A86 bad P1/P2,
#   6D00 wrong state.

_MAX_SHORT_DATA = const(255)
# A reader stops collecting GET RESPONSE parts beyond this: bounds its buffer.
_MAX_COLLECTED = const(4096)


def command(cla, ins, p1, p2, data=None, le=None):
    # One short C-APDU; le 1..256 (256 is sent as 00), None for no Le.
    n = len(data) if data else 0
    if n > _MAX_SHORT_DATA:
        raise ValueError("command data over 255 bytes must be chained")
    out = bytearray(4 + (1 + n if n else 0) + (0 if le is None else 1))
    out[0] = cla
    out[1] = ins
    out[2] = p1
    out[3] = p2
    if n:
        out[4] = n
        out[5 : 5 + n] = data
    if le is not None:
        if not 1 <= le <= 256:
            raise ValueError("Le out of range")
        out[-1] = le & 0xFF
    return out


def response(rapdu):
    # (data as a memoryview, SW) of an R-APDU.
    if len(rapdu) < 2:
        raise ProtocolError("answer shorter than a status word")
    mv = memoryview(rapdu)
    return mv[:-2], (rapdu[-2] << 8) | rapdu[-1]


async def transmit(link, cla, ins, p1, p2, data, le, timeout_ms):
    # Sends a command of any length and collects the whole answer: (data, SW).
    # A chain part answered with anything but 9000 ends the command with that SW.
    n = len(data) if data else 0
    pos = 0
    while n - pos > _MAX_SHORT_DATA:
        part = command(cla | _CLA_CHAINING, ins, p1, p2, data[pos : pos + _MAX_SHORT_DATA])
        _, sw = response(await link.transceive(part, timeout_ms))
        if sw != SW_OK:
            return b"", sw
        pos += _MAX_SHORT_DATA
    last = data[pos:] if pos else data
    body, sw = response(await link.transceive(command(cla, ins, p1, p2, last, le), timeout_ms))
    if sw & 0xFF00 != _SW_MORE_DATA:
        return body, sw
    collected = bytearray(body)
    while sw & 0xFF00 == _SW_MORE_DATA:
        want = sw & 0xFF or 256
        body, sw = response(
            await link.transceive(command(CLA_ISO, _INS_GET_RESPONSE, 0, 0, None, want), timeout_ms)
        )
        if not len(body) or len(collected) + len(body) > _MAX_COLLECTED:
            raise ProtocolError("GET RESPONSE made no progress or ran too long")
        collected.extend(body)
    return memoryview(collected), sw
