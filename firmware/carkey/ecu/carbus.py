# carkey — car-bus output: per-key profile events as checksummed text lines on a UART (docs/CARBUS.md).
# SPDX-License-Identifier: MIT
#
# After an unlock by a key that has a profile (seat, mirror, climate, radio ...),
# the ECU writes one line such as
#   CK1 PROFILE seq=7 slot=0123456789ABCDEF seat=3 radio=FM%20101.1 *5A0C\n
# for whatever listens on the car side (a CAN gateway, a seat-memory module).
# carkey stores and forwards the preferences; it never interprets them.

from micropython import const

MAX_PROFILE = const(128)
_MAX_ITEMS = const(16)
_MAX_KEY = const(12)
_SLOT_LEN = const(8)
# "CK1 PROFILE seq=65535 slot=<16 hex> " is 44 bytes; each profile byte becomes at
# most 3 (a %XX escape), plus the space before "*", then "*XXXX\n".
MAX_LINE = const(44 + 3 * 128 + 1 + 6)

_SPACE = const(0x20)
_PERCENT = const(0x25)
_STAR = const(0x2A)
_SEMICOLON = const(0x3B)
_EQUALS = const(0x3D)
_NEWLINE = const(0x0A)
_CRC_POLY = const(0x1021)  # CRC-16/CCITT-FALSE: poly 1021, init FFFF, no reflection

_HEX = b"0123456789ABCDEF"
_PREFIX = b"CK1 PROFILE seq="
_SLOT_FIELD = b" slot="
# Line fields the profile may not shadow.
_RESERVED = (b"seq", b"slot")


class ProfileError(ValueError):
    """A profile breaks the key=value encoding of docs/CARBUS.md."""


class CarBusError(OSError):
    """The car-bus UART did not take a whole line."""


def crc16(data, crc=0xFFFF):
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ _CRC_POLY) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def _key_ok(key):
    if not 1 <= len(key) <= _MAX_KEY or not 0x61 <= key[0] <= 0x7A:
        return False
    for c in key:
        if not (0x61 <= c <= 0x7A or 0x30 <= c <= 0x39 or c == 0x5F):
            return False
    return key not in _RESERVED


def profile_items(profile):
    """Validate a profile and return its (key, value) pairs; raises ProfileError.

    Encoding: ASCII items `key=value` joined by ";", at most 128 bytes and 16 items.
    A key is 1-12 of a-z 0-9 _, starting with a letter, unique, not "seq" or
    "slot". A value is printable ASCII (space included) without ";".
    """
    if len(profile) > MAX_PROFILE:
        raise ProfileError("profile longer than 128 bytes")
    for c in profile:
        if not 0x20 <= c <= 0x7E:
            raise ProfileError("profile byte %02X is not printable ASCII" % c)
    items = []
    for item in bytes(profile).split(b";"):
        eq = item.find(b"=")
        if eq < 0:
            raise ProfileError("profile item without '='")
        key = item[:eq]
        if not _key_ok(key):
            raise ProfileError("bad profile key %r" % key)
        for k, _ in items:
            if k == key:
                raise ProfileError("profile key %r repeated" % key)
        items.append((key, item[eq + 1 :]))
    if len(items) > _MAX_ITEMS:
        raise ProfileError("more than 16 profile items")
    return items


class CarBus:
    """Writes car-bus event lines to a UART-like object with write()."""

    def __init__(self, uart):
        self.seq = 0  # per line, from 0 at boot: a jump back to 0 tells the car side the ECU restarted
        self._uart = uart
        self._buf = bytearray(MAX_LINE)
        self._mv = memoryview(self._buf)

    def emit_profile(self, slot, profile):
        """Write the PROFILE line for key `slot` (8 bytes); returns its length, 0 for an empty profile.

        Raises ProfileError for a malformed profile (nothing is written) and
        CarBusError when the UART takes less than the whole line.
        """
        if len(slot) != _SLOT_LEN:
            raise ValueError("key slot must be 8 bytes")
        if not profile:
            return 0
        profile_items(profile)
        buf = self._buf
        n = self._put(0, _PREFIX)
        n = self._put(n, b"%d" % self.seq)
        n = self._put(n, _SLOT_FIELD)
        for b in slot:
            n = self._hex_byte(n, b)
        buf[n] = _SPACE
        n += 1
        in_value = False
        for b in profile:
            if b == _SEMICOLON:
                buf[n] = _SPACE
                n += 1
                in_value = False
            elif in_value and (b == _SPACE or b == _PERCENT or b == _STAR):
                buf[n] = _PERCENT
                n = self._hex_byte(n + 1, b)
            else:
                if b == _EQUALS:
                    in_value = True
                buf[n] = b
                n += 1
        buf[n] = _SPACE
        n += 1
        crc = crc16(self._mv[:n])
        buf[n] = _STAR
        n = self._hex_byte(n + 1, crc >> 8)
        n = self._hex_byte(n, crc & 0xFF)
        buf[n] = _NEWLINE
        n += 1
        self.seq = (self.seq + 1) & 0xFFFF
        written = self._uart.write(self._mv[:n])
        if written != n:
            raise CarBusError("car bus took %s of %d bytes" % (written, n))
        return n

    def _put(self, n, data):
        end = n + len(data)
        self._buf[n:end] = data
        return end

    def _hex_byte(self, n, b):
        self._buf[n] = _HEX[b >> 4]
        self._buf[n + 1] = _HEX[b & 15]
        return n + 2
