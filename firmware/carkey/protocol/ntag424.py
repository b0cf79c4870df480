# carkey — NTAG 424 DNA card keys: AN10922 key diversification, AuthenticateEV2First, GetCardUID.
# SPDX-License-Identifier: MIT
#
# A card is a key when it proves, over any link with
# `async transceive(capdu, timeout_ms) -> rapdu`, that it holds the AES key
# diversified from the reader's card master key for its own UID (AN10922), and
# its authenticated UID (GetCardUID in full secure messaging) is the one the
# anticollision loop saw. docs/CARDS.md has the byte layouts and the reasons.
#
# Byte order: NXP numbers bytes most significant first in its formulas and the
# command counter travels least significant byte first (AN12196 §4).
#
# API:
#   diversify(master_key, uid, aid, system_id) -> 16-byte key (AN10922 AES-128)
#   card_key(master_key, uid, key_no=CARD_KEY_NO) -> the key carkey puts in slot key_no
#   await select(link, timeout_ms)
#   await authenticate_ev2_first(link, key, key_no, timeout_ms, rnd_a=None) -> Session
#   await get_card_uid(link, session, timeout_ms) -> 7-byte UID
#   await authenticate_card(link, master_key, uid_from_anticollision, timeout_ms) -> UID

import os
from binascii import hexlify

import cryptolib
from micropython import const

from carkey.crypto import aes
from carkey.crypto.ct import equal
from carkey.protocol.errors import AuthenticationFailed, ProtocolError

CARD_KEY_NO = const(2)  # the card's key a car reader authenticates with
ADMIN_KEY_NO = const(0)  # the application master key: ChangeKey needs it (provisioning only)
UID_LEN = const(7)
KEY_LEN = const(16)
SYSTEM_ID = b"carkey"  # AN10922 system identifier of every carkey card key
SELECT_NDEF_APP = b"\x00\xa4\x04\x0c\x07\xd2\x76\x00\x00\x85\x01\x01\x00"  # ISOSelectFile, DF name, no FCI

_ECB = const(1)
_CBC = const(2)
_NATIVE = const(0x90)  # ISO 7816 wrapping of native commands: 90 INS 00 00 Lc data 00
_AUTH_FIRST = const(0x71)  # KeyNo, LenCap -> E(K, RndB) 91AF
_MORE = const(0xAF)  # E(K, RndA || RndB') -> E(K, TI || RndA' || PDcap2 || PCDcap2) 9100
_GET_UID = const(0x51)  # MACt -> E(SesAuthENC, UID padded) || MACt 9100
_SW_ISO_OK = const(0x9000)
_SW_OK = const(0x9100)
_SW_MORE = const(0x91AF)
_SW_AUTH = const(0x91AE)  # authentication error: the card does not share our key
_MACT = const(8)
_ZERO_IV = bytes(16)
# Session vectors SV1/SV2 (AN12196 §4, NT4H2421Gx §9.1.7): label, counter 0001, length 0080.
_SV_ENC = b"\xa5\x5a\x00\x01\x00\x80"
_SV_MAC = b"\x5a\xa5\x00\x01\x00\x80"
_IV_CMD = b"\xa5\x5a"
_IV_RSP = b"\x5a\xa5"


class CardAuthError(AuthenticationFailed):
    """The card could not prove the key (wrong key, replayed answers, forged MAC)."""


class CardUidMismatch(CardAuthError):
    """The authenticated UID is not the anticollision UID the key was diversified for."""


class CardProtocolError(ProtocolError):
    """The card answered with a bad length, padding or status word."""


def _wipe(buf):
    # Secrets live in bytearrays so they can be cleared once used; copies the
    # AES library makes internally are out of reach and left to the collector.
    if isinstance(buf, bytearray):
        for i in range(len(buf)):
            buf[i] = 0


def _check_key(key, what):
    if not isinstance(key, (bytes, bytearray)) or len(key) != KEY_LEN:
        raise ValueError(what + " must be 16 bytes")


def diversify(master_key, uid, aid, system_id):
    """AN10922 §2.2 AES-128 diversification: CMAC(master, 01 || UID || AID || SystemIdentifier).

    AN10922 pads the input to 32 bytes; for 17..32 bytes (UID, AID and system
    identifier together 16..31 bytes) that is exactly CMAC's own padding and
    subkey choice, so aes.cmac computes it. Shorter inputs are refused."""
    _check_key(master_key, "card master key")
    m = bytes(uid) + bytes(aid) + bytes(system_id)
    if not 16 <= len(m) <= 31:
        raise ValueError("diversification input must be 16..31 bytes")
    return bytearray(aes.cmac(master_key, b"\x01" + m))


def card_key(master_key, uid, key_no=CARD_KEY_NO):
    """The key carkey writes into slot key_no of the card with this UID: AID = 'CK' || key_no."""
    if len(uid) != UID_LEN:
        raise ValueError("card UID must be 7 bytes")
    return diversify(master_key, uid, b"CK" + bytes((key_no,)), SYSTEM_ID)


def _native(ins, data):
    n = len(data)
    out = bytearray(6 + n)
    out[0] = _NATIVE
    out[1] = ins
    out[4] = n
    out[5 : 5 + n] = data
    return out


def _sw(rapdu, what):
    if len(rapdu) < 2:
        raise CardProtocolError(what + ": answer shorter than a status word")
    return (rapdu[-2] << 8) | rapdu[-1]


def _rotl(b):
    return b[1:] + b[:1]


def _mact(full):
    # CMACt: the 8 odd-numbered bytes of the 16-byte CMAC (AN12196 §4).
    out = bytearray(_MACT)
    for i in range(_MACT):
        out[i] = full[2 * i + 1]
    return out


def _ctr(n):
    return bytes((n & 0xFF, n >> 8))


class Session:
    """An authenticated session: TI, SesAuthENCKey, SesAuthMACKey and the command counter."""

    def __init__(self, enc_key, mac_key, ti, cmd_ctr=0):
        self.enc_key = bytearray(enc_key)
        self.mac_key = bytearray(mac_key)
        self.ti = bytes(ti)
        self.cmd_ctr = cmd_ctr

    def iv(self, label, ctr):
        # IV = E(SesAuthENCKey, label || TI || CmdCtr || 8 zero bytes).
        return cryptolib.aes(self.enc_key, _ECB).encrypt(label + self.ti + _ctr(ctr) + bytes(8))

    def mact(self, head, ctr, data=b""):
        # head: the command byte (or the response code 00); then CmdCtr || TI || data.
        return _mact(aes.cmac(self.mac_key, bytes((head,)) + _ctr(ctr) + self.ti + data))

    def wipe(self):
        _wipe(self.enc_key)
        _wipe(self.mac_key)
        self.cmd_ctr = 0

    def __repr__(self):
        return "Session(ti=%s cmd_ctr=%d keys=hidden)" % (hexlify(self.ti).decode(), self.cmd_ctr)


async def select(link, timeout_ms):
    r = await link.transceive(SELECT_NDEF_APP, timeout_ms)
    sw = _sw(r, "ISOSelectFile")
    if sw != _SW_ISO_OK or len(r) != 2:
        raise CardProtocolError("ISOSelectFile of the NTAG 424 application refused", sw)


async def authenticate_ev2_first(link, key, key_no, timeout_ms, rnd_a=None):
    """Mutual authentication with key slot key_no; returns a Session (CmdCtr 0).

    rnd_a is for known-answer tests only; the reader always draws a fresh one."""
    _check_key(key, "card key")
    if not 0 <= key_no <= 4:
        raise ValueError("key number must be 0..4")
    r = await link.transceive(_native(_AUTH_FIRST, bytes((key_no, 0))), timeout_ms)
    sw = _sw(r, "AuthenticateEV2First")
    if sw != _SW_MORE:
        raise CardProtocolError("AuthenticateEV2First part 1 refused", sw)
    if len(r) != 18:
        raise CardProtocolError("AuthenticateEV2First part 1: %d bytes, expected 18" % len(r))
    rnd_b = bytearray(cryptolib.aes(key, _CBC, _ZERO_IV).decrypt(r[:16]))
    rnd_a = bytearray(os.urandom(16) if rnd_a is None else rnd_a)
    plain = bytearray(32)
    try:
        plain[:16] = rnd_a
        plain[16:] = _rotl(rnd_b)
        r = await link.transceive(_native(_MORE, cryptolib.aes(key, _CBC, _ZERO_IV).encrypt(plain)), timeout_ms)
        sw = _sw(r, "AuthenticateEV2First")
        if sw == _SW_AUTH:
            raise CardAuthError("card refused the authentication: it does not hold this key")
        if sw != _SW_OK:
            raise CardProtocolError("AuthenticateEV2First part 2 refused", sw)
        if len(r) != 34:
            raise CardProtocolError("AuthenticateEV2First part 2: %d bytes, expected 34" % len(r))
        plain[:] = cryptolib.aes(key, _CBC, _ZERO_IV).decrypt(r[:32])
        # RndA' proves the card decrypted our RndA: only a holder of the key can.
        if not equal(memoryview(plain)[4:20], _rotl(rnd_a)):
            raise CardAuthError("card did not return our challenge (RndA' mismatch)")
        ti = bytes(plain[:4])
        # ctx = RndA[0:2] || (RndA[2:8] XOR RndB[0:6]) || RndB[6:16] || RndA[8:16]
        ctx = bytearray(26)
        ctx[:2] = rnd_a[:2]
        for i in range(6):
            ctx[2 + i] = rnd_a[2 + i] ^ rnd_b[i]
        ctx[8:18] = rnd_b[6:]
        ctx[18:] = rnd_a[8:]
        enc = bytearray(aes.cmac(key, _SV_ENC + ctx))
        mac = bytearray(aes.cmac(key, _SV_MAC + ctx))
        _wipe(ctx)
        session = Session(enc, mac, ti)
        _wipe(enc)
        _wipe(mac)
        return session
    finally:
        _wipe(rnd_a)
        _wipe(rnd_b)
        _wipe(plain)


async def get_card_uid(link, session, timeout_ms):
    """GetCardUID (0x51) in full secure messaging: the card's real 7-byte UID."""
    ctr = session.cmd_ctr
    r = await link.transceive(_native(_GET_UID, session.mact(_GET_UID, ctr)), timeout_ms)
    sw = _sw(r, "GetCardUID")
    if sw == _SW_AUTH:
        raise CardAuthError("card refused GetCardUID: not authenticated")
    if sw != _SW_OK:
        raise CardProtocolError("GetCardUID refused", sw)
    if len(r) != 16 + _MACT + 2:
        raise CardProtocolError("GetCardUID: %d bytes, expected 26" % len(r))
    ctr += 1
    enc = r[:16]
    if not equal(r[16:24], session.mact(0, ctr, enc)):
        raise CardAuthError("GetCardUID answer MAC mismatch")
    session.cmd_ctr = ctr
    plain = cryptolib.aes(session.enc_key, _CBC, session.iv(_IV_RSP, ctr)).decrypt(enc)
    # ISO/IEC 9797-1 method 2 padding after the 7 UID bytes.
    if plain[UID_LEN] != 0x80 or any(plain[UID_LEN + 1 :]):
        raise CardProtocolError("GetCardUID: bad padding")
    return bytes(plain[:UID_LEN])


async def authenticate_card(link, master_key, uid_from_anticollision, timeout_ms):
    """Authenticate a carkey card and return its verified UID, or raise.

    The key is diversified for the anticollision UID, so a card with another UID
    fails authentication, and a card holding that key whose authenticated UID
    differs (a clone or relay presenting a copied UID) is refused as well.
    Raises CardAuthError / CardUidMismatch (AuthenticationFailed),
    CardProtocolError (ProtocolError) or the link's LinkError / LinkTimeout."""
    _check_key(master_key, "card master key")
    if len(uid_from_anticollision) != UID_LEN:
        raise CardProtocolError(
            "anticollision UID has %d bytes; carkey cards have a fixed 7-byte UID" % len(uid_from_anticollision)
        )
    key = card_key(master_key, uid_from_anticollision)
    session = None
    try:
        await select(link, timeout_ms)
        session = await authenticate_ev2_first(link, key, CARD_KEY_NO, timeout_ms)
        uid = await get_card_uid(link, session, timeout_ms)
    finally:
        _wipe(key)
        if session is not None:
            session.wipe()
    if not equal(uid, uid_from_anticollision):
        raise CardUidMismatch(
            "authenticated UID %s differs from the anticollision UID %s"
            % (hexlify(uid).decode(), hexlify(bytes(uid_from_anticollision)).decode())
        )
    return uid
