"""NTAG 424 DNA card keys on the host: AN10922 diversification, provisioning, an emulated card.

The same constructions as the firmware (`carkey.protocol.ntag424`), written with
`cryptography` (docs/CARDS.md):

- `diversify` / `card_key`: AN10922 AES-128 key diversification; every card gets
  its own keys from the reader's 16-byte card master key and the card's UID.
- `authenticate`, `get_card_uid`, `change_key`: the PCD side of AuthenticateEV2First
  and of full secure messaging (AN12196, NT4H2421Gx §9.1), over any link with
  `transceive(capdu) -> rapdu`.
- `provision`: factory card -> carkey card (key 2 = the card key, key 0 = the card's
  own administration key, both diversified), verified by authenticating afterwards.
- `EmulatedCard`: an NTAG 424 DNA as a PN532 target object (`uid`, `atqa`, `sak`,
  `ats`, `process(capdu) -> rapdu`), optionally behaving like a clone or replaying
  a recorded transaction.
"""

import hmac
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

from .errors import CarkeyError, Refused

CARD_KEY_NO = 2
ADMIN_KEY_NO = 0
UID_LEN = 7
KEY_LEN = 16
SYSTEM_ID = b"carkey"
FACTORY_KEY = bytes(16)
DF_NAME = bytes.fromhex("D2760000850101")
SELECT_NDEF_APP = bytes.fromhex("00A4040C07") + DF_NAME + b"\x00"

# Native status words (NT4H2421Gx §10.2) and ISO ones.
SW_OK = 0x9100
SW_MORE = 0x91AF
SW_AUTH_ERROR = 0x91AE
SW_LENGTH_ERROR = 0x917E
SW_ILLEGAL_COMMAND = 0x911C
SW_INTEGRITY_ERROR = 0x911E
SW_NO_SUCH_KEY = 0x9140
SW_PERMISSION_DENIED = 0x919D
SW_ISO_OK = 0x9000
SW_ISO_FILE_NOT_FOUND = 0x6A82
SW_ISO_WRONG_LENGTH = 0x6700
SW_ISO_CLA = 0x6E00

INS_AUTH_FIRST = 0x71
INS_MORE = 0xAF
INS_GET_UID = 0x51
INS_CHANGE_KEY = 0xC4


class CardError(CarkeyError):
    """A card operation failed."""


class CardAuthError(CardError):
    """The card could not prove the key, or refused ours (wrong key, forged MAC)."""


class CardProtocolError(CardError):
    """The card answered with a bad length, padding or status word."""

    def __init__(self, reason, sw=None):
        super().__init__(reason if sw is None else f"{reason} (SW {sw:04X})")
        self.sw = sw


class CardUidMismatch(Refused):
    """The card's authenticated UID is not the one expected."""


# --- primitives -------------------------------------------------------------------


def _ecb(key, block):
    e = Cipher(algorithms.AES(bytes(key)), modes.ECB()).encryptor()
    return e.update(block) + e.finalize()


def _cbc_encrypt(key, iv, data):
    e = Cipher(algorithms.AES(bytes(key)), modes.CBC(iv)).encryptor()
    return e.update(data) + e.finalize()


def _cbc_decrypt(key, iv, data):
    d = Cipher(algorithms.AES(bytes(key)), modes.CBC(iv)).decryptor()
    return d.update(data) + d.finalize()


def cmac(key, msg):
    c = CMAC(algorithms.AES(bytes(key)))
    c.update(msg)
    return c.finalize()


def mact(full):
    """CMACt: the odd-numbered bytes of a 16-byte CMAC (AN12196 §4)."""
    return full[1::2]


def pad(data):
    """ISO/IEC 9797-1 method 2: 80 then zeros, always at least one byte added."""
    n = len(data) + 1
    return data + b"\x80" + bytes(-n % 16)


def unpad(data):
    stripped = data.rstrip(b"\x00")
    if not stripped or stripped[-1] != 0x80 or len(data) - len(stripped) >= 16:
        raise CardProtocolError("bad padding")
    return stripped[:-1]


def crc32nk(data):
    """CRC32 of a new key as ChangeKey carries it: the IEEE 802.3 CRC without its final
    inversion, least significant byte first (NT4H2421Gx Table 63, AN12196 Table 25)."""
    return ((~zlib.crc32(data)) & 0xFFFFFFFF).to_bytes(4, "little")


def rotl(b):
    return b[1:] + b[:1]


def _check_key(key, what):
    if not isinstance(key, (bytes, bytearray)) or len(key) != KEY_LEN:
        raise CardError(f"{what} must be 16 bytes")


def _check_uid(uid):
    if not isinstance(uid, (bytes, bytearray)) or len(uid) != UID_LEN:
        raise CardError("card UID must be 7 bytes (random-ID cards are not supported)")


def diversify(master_key, uid, aid, system_id):
    """AN10922 §2.2 AES-128: CMAC(master, 01 || UID || AID || SystemIdentifier) with the
    input padded to 32 bytes (80 00.., subkey K2; K1 when it is exactly 32)."""
    _check_key(master_key, "card master key")
    m = bytes(uid) + bytes(aid) + bytes(system_id)
    if not 1 <= len(m) <= 31:
        raise CardError("diversification input must be 1..31 bytes")
    d = b"\x01" + m
    # AN10922 always pads to two blocks; CMAC pads to a block boundary, so inputs
    # of 16 bytes or fewer are padded here by hand and the K2 step done explicitly.
    if len(d) > 16:
        return cmac(master_key, d)
    k1, k2 = _subkeys(master_key)
    block = (d + b"\x80").ljust(32, b"\x00")
    last = bytes(a ^ b for a, b in zip(block[16:], k2))
    return _cbc_encrypt(master_key, bytes(16), block[:16] + last)[16:]


def _subkeys(key):
    def dbl(v):
        v <<= 1
        return (v & ((1 << 128) - 1)) ^ (0x87 if v >> 128 else 0)

    k1 = dbl(int.from_bytes(_ecb(key, bytes(16)), "big"))
    return k1.to_bytes(16, "big"), dbl(k1).to_bytes(16, "big")


def card_key(master_key, uid, key_no=CARD_KEY_NO):
    """The key carkey puts in key slot key_no of the card with this UID (AID = 'CK' || key_no)."""
    _check_uid(uid)
    return diversify(master_key, uid, b"CK" + bytes([key_no]), SYSTEM_ID)


def key_check_value(key):
    """Three bytes that identify a key without revealing it: AES(key, 16 zero bytes)[:3]."""
    _check_key(key, "key")
    return _ecb(key, bytes(16))[:3]


def session_vectors(rnd_a, rnd_b):
    ctx = rnd_a[0:2] + bytes(a ^ b for a, b in zip(rnd_a[2:8], rnd_b[0:6])) + rnd_b[6:16] + rnd_a[8:16]
    return b"\xa5\x5a\x00\x01\x00\x80" + ctx, b"\x5a\xa5\x00\x01\x00\x80" + ctx


def session_keys(key, rnd_a, rnd_b):
    """(SesAuthENCKey, SesAuthMACKey) = CMAC(key, SV1), CMAC(key, SV2)."""
    sv1, sv2 = session_vectors(rnd_a, rnd_b)
    return cmac(key, sv1), cmac(key, sv2)


def native(ins, data=b""):
    """ISO 7816 wrapping of a native command: 90 INS 00 00 [Lc data] 00."""
    if data:
        return bytes([0x90, ins, 0, 0, len(data)]) + data + b"\x00"
    return bytes([0x90, ins, 0, 0, 0])


def sw_of(rapdu):
    if len(rapdu) < 2:
        raise CardProtocolError("answer shorter than a status word")
    return int.from_bytes(rapdu[-2:], "big")


def _ctr(n):
    return n.to_bytes(2, "little")


@dataclass(repr=False)
class SecureSession:
    """One authenticated session (both sides use it): TI, session keys, command counter."""

    ti: bytes
    enc_key: bytearray
    mac_key: bytearray
    cmd_ctr: int = 0
    key_no: int = 0

    def __repr__(self):
        return f"SecureSession(ti={self.ti.hex()}, cmd_ctr={self.cmd_ctr}, key_no={self.key_no}, keys=hidden)"

    def iv(self, label, ctr):
        return _ecb(self.enc_key, label + self.ti + _ctr(ctr) + bytes(8))

    def command_mac(self, ins, header, data, ctr=None):
        ctr = self.cmd_ctr if ctr is None else ctr
        return mact(cmac(self.mac_key, bytes([ins]) + _ctr(ctr) + self.ti + header + data))

    def response_mac(self, data, ctr):
        return mact(cmac(self.mac_key, b"\x00" + _ctr(ctr) + self.ti + data))

    def full_command(self, ins, header, plain):
        """C-APDU in CommMode.Full: header || E(SesAuthENC, IVc, pad(plain)) || MACt."""
        enc = _cbc_encrypt(self.enc_key, self.iv(b"\xa5\x5a", self.cmd_ctr), pad(plain)) if plain else b""
        return native(ins, header + enc + self.command_mac(ins, header, enc))

    def open_response(self, rapdu, has_data):
        """Checks a Full-mode answer (MACt over RC || CmdCtr+1 || TI || data), returns the plaintext."""
        sw = sw_of(rapdu)
        if sw != SW_OK:
            if sw == SW_AUTH_ERROR:
                raise CardAuthError("card refused the command: not authenticated")
            raise CardProtocolError("card refused the command", sw)
        body = rapdu[:-2]
        if len(body) < 8 or (len(body) - 8) % 16 or (not has_data and len(body) != 8):
            raise CardProtocolError(f"answer of {len(body)} bytes does not fit a Full-mode response")
        ctr = self.cmd_ctr + 1
        enc, tag = body[:-8], body[-8:]
        if not _equal(tag, self.response_mac(enc, ctr)):
            raise CardAuthError("answer MAC mismatch")
        self.cmd_ctr = ctr
        return unpad(_cbc_decrypt(self.enc_key, self.iv(b"\x5a\xa5", ctr), enc)) if enc else b""

    def wipe(self):
        for buf in (self.enc_key, self.mac_key):
            buf[:] = bytes(len(buf))


def _equal(a, b):
    return hmac.compare_digest(bytes(a), bytes(b))


# --- PCD side ---------------------------------------------------------------------


def select(link):
    r = link.transceive(SELECT_NDEF_APP)
    if sw_of(r) != SW_ISO_OK or len(r) != 2:
        raise CardProtocolError("ISOSelectFile of the NTAG 424 application refused", sw_of(r))


def authenticate(link, key, key_no, rnd_a=None):
    """AuthenticateEV2First with key slot key_no; returns a SecureSession at CmdCtr 0."""
    _check_key(key, "card key")
    r = link.transceive(native(INS_AUTH_FIRST, bytes([key_no, 0])))
    if sw_of(r) != SW_MORE or len(r) != 18:
        raise CardProtocolError("AuthenticateEV2First part 1 refused or malformed", sw_of(r))
    rnd_b = _cbc_decrypt(key, bytes(16), r[:16])
    rnd_a = os.urandom(16) if rnd_a is None else rnd_a
    r = link.transceive(native(INS_MORE, _cbc_encrypt(key, bytes(16), rnd_a + rotl(rnd_b))))
    sw = sw_of(r)
    if sw == SW_AUTH_ERROR:
        raise CardAuthError(f"card refused the authentication with key {key_no}: it holds another key")
    if sw != SW_OK or len(r) != 34:
        raise CardProtocolError("AuthenticateEV2First part 2 refused or malformed", sw)
    plain = _cbc_decrypt(key, bytes(16), r[:32])
    if not _equal(plain[4:20], rotl(rnd_a)):
        raise CardAuthError("card did not return our challenge (RndA' mismatch)")
    enc, mac = session_keys(key, rnd_a, rnd_b)
    return SecureSession(plain[:4], bytearray(enc), bytearray(mac), 0, key_no)


def get_card_uid(link, session):
    r = link.transceive(native(INS_GET_UID, session.command_mac(INS_GET_UID, b"", b"")))
    uid = session.open_response(r, has_data=True)
    if len(uid) != UID_LEN:
        raise CardProtocolError(f"GetCardUID returned {len(uid)} bytes, expected 7")
    return uid


def change_key_data(key_no, new_key, old_key, version, auth_key_no):
    """ChangeKey plaintext (NT4H2421Gx Table 63): the authenticated key itself gets
    NewKey || KeyVer; any other key (NewKey XOR OldKey) || KeyVer || CRC32NK(NewKey)."""
    _check_key(new_key, "new key")
    if key_no == auth_key_no:
        return bytes(new_key) + bytes([version])
    _check_key(old_key, "old key")
    return bytes(a ^ b for a, b in zip(new_key, old_key)) + bytes([version]) + crc32nk(bytes(new_key))


def change_key(link, session, key_no, new_key, old_key=None, version=1):
    """ChangeKey (0xC4) in full secure messaging. Changing the authenticated key ends
    the session (the card answers a bare 9100); any other key keeps it."""
    if not 0 <= key_no <= 4:
        raise CardError("key number must be 0..4")
    plain = change_key_data(key_no, new_key, old_key, version, session.key_no)
    r = link.transceive(session.full_command(INS_CHANGE_KEY, bytes([key_no]), plain))
    if key_no == session.key_no:
        if r != b"\x91\x00":
            raise CardProtocolError("ChangeKey of the authenticated key refused", sw_of(r))
        session.wipe()
        return
    session.open_response(r, has_data=False)


@dataclass
class ProvisionResult:
    uid: bytes
    card_key_kcv: bytes
    admin_key_kcv: bytes


def _holds(link, key, key_no):
    """Whether the card's key key_no is key (an authentication attempt, then dropped)."""
    try:
        authenticate(link, key, key_no).wipe()
    except CardAuthError:
        return False
    return True


def provision(link, master_key, uid, factory_key=FACTORY_KEY, version=1):
    """Turn a factory NTAG 424 DNA (key 0 = factory_key, key 2 = factory_key) into a carkey card.

    1. select the application, AuthenticateEV2First with key 0 and factory_key;
    2. GetCardUID must equal uid (the anticollision UID the keys are diversified for);
    3. ChangeKey 2 -> card_key(master, uid, 2) (the key every reader tap uses), unless
       key 2 already is that key (a provisioning interrupted after this step);
    4. ChangeKey 0 -> card_key(master, uid, 0) (locks the card's keys to the owner);
    5. authenticate again with the new key 2 and read the UID back.
    Returns check values (never the keys). Raises CardError on any failure."""
    _check_key(master_key, "card master key")
    _check_uid(uid)
    _check_key(factory_key, "factory key")
    ckey = card_key(master_key, uid, CARD_KEY_NO)
    akey = card_key(master_key, uid, ADMIN_KEY_NO)
    select(link)
    key2_done = _holds(link, ckey, CARD_KEY_NO)
    try:
        session = authenticate(link, factory_key, ADMIN_KEY_NO)
    except CardAuthError:
        raise CardAuthError("card key 0 is not the factory key: the card is provisioned already or not new") from None
    real = get_card_uid(link, session)
    if not _equal(real, uid):
        raise CardUidMismatch(f"card UID {real.hex()} differs from the anticollision UID {bytes(uid).hex()}")
    if not key2_done:
        change_key(link, session, CARD_KEY_NO, ckey, factory_key, version)
    change_key(link, session, ADMIN_KEY_NO, akey, None, version)
    check = authenticate(link, ckey, CARD_KEY_NO)
    try:
        if not _equal(get_card_uid(link, check), uid):
            raise CardUidMismatch("card UID changed during provisioning")
    finally:
        check.wipe()
    return ProvisionResult(bytes(uid), key_check_value(ckey), key_check_value(akey))


def read_master_key(path):
    """A card master key file: 32 hexadecimal digits (whitespace ignored)."""
    try:
        text = Path(path).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as e:
        raise CardError(f"cannot read card master key file {path}: {e}") from None
    try:
        key = bytes.fromhex("".join(text.split()))
    except ValueError:
        raise CardError(f"card master key file {path}: not hexadecimal") from None
    if len(key) != KEY_LEN:
        raise CardError(f"card master key file {path}: {len(key)} bytes, expected 16")
    return key


def new_master_key_file(path, key=None):
    """Create a card master key file (0600, never overwritten); returns the key."""
    key = os.urandom(KEY_LEN) if key is None else key
    _check_key(key, "card master key")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CardError(f"{path} exists; a new card master key would orphan every card made with it") from None
    except OSError as e:
        raise CardError(f"cannot create {path}: {e}") from None
    with os.fdopen(fd, "w") as f:
        f.write(key.hex() + "\n")
    return key


def verify_card(link, master_key, uid):
    """What a car reader does on a tap, in CPython: returns the verified UID or raises."""
    _check_uid(uid)
    key = card_key(master_key, uid)
    select(link)
    session = authenticate(link, key, CARD_KEY_NO)
    try:
        real = get_card_uid(link, session)
    finally:
        session.wipe()
    if not _equal(real, uid):
        raise CardUidMismatch(f"authenticated UID {real.hex()} differs from the anticollision UID {bytes(uid).hex()}")
    return real


# --- the emulated card ------------------------------------------------------------


def _sw(code):
    return code.to_bytes(2, "big")


@dataclass(repr=False)
class EmulatedCard:
    """An NTAG 424 DNA as a PN532 target: anticollision data plus `process(capdu) -> rapdu`.

    uid: what anticollision reports. real_uid: what GetCardUID returns (default uid;
    a different value makes the card behave like a clone or relay presenting a
    copied UID). keys: the five application keys (default: factory zeros).
    replay: a recorded list of (C-APDU, R-APDU) from an earlier transaction; the card
    then answers each command with the next recorded answer, as a replay attacker
    without the key would. random: the card's randomness (RndB, TI), injectable for
    known-answer tests. Every exchange is appended to `transcript`."""

    uid: bytes
    keys: list = field(default_factory=lambda: [bytes(16)] * 5)
    real_uid: bytes = None
    replay: list = None
    random: object = os.urandom
    key_versions: list = field(default_factory=lambda: [0] * 5)
    atqa: bytes = b"\x03\x44"  # SENS_RES as the PN532 reports it
    sak: int = 0x20  # ISO/IEC 14443-4 compliant
    ats: bytes = bytes.fromhex("067777710280")  # TL T0 TA TB TC, historical byte 80
    transcript: list = field(default_factory=list)
    failed_authentications: int = 0

    def __post_init__(self):
        _check_uid(self.uid)
        if self.real_uid is None:
            self.real_uid = self.uid
        _check_uid(self.real_uid)
        self.keys = [bytes(k) for k in self.keys]
        if len(self.keys) != 5 or any(len(k) != KEY_LEN for k in self.keys):
            raise CardError("an NTAG 424 DNA application has five 16-byte keys")
        self.reset()

    def __repr__(self):
        return f"EmulatedCard(uid={self.uid.hex()}, real_uid={self.real_uid.hex()}, keys=hidden)"

    def reset(self):
        """Field off / new activation: no authentication, nothing pending."""
        self.session = None
        self._pending = None  # (key_no, RndB) between the two authentication parts
        self._replayed = 0

    activate = reset  # the PN532 stand-in's target interface: called on each activation

    def process(self, capdu):
        capdu = bytes(capdu)
        if self.replay is not None:
            rapdu = self.replay[self._replayed % len(self.replay)][1] if self.replay else _sw(SW_ILLEGAL_COMMAND)
            self._replayed += 1
        else:
            rapdu = self._answer(capdu)
        self.transcript.append((capdu, rapdu))
        return rapdu

    # -- command dispatch -----------------------------------------------------

    def _answer(self, c):
        if len(c) < 4:
            return _sw(SW_ISO_WRONG_LENGTH)
        if c[0] == 0x00 and c[1] == 0xA4:
            return self._select(c)
        if c[0] != 0x90:
            return _sw(SW_ISO_CLA)
        # Native command: 90 INS 00 00 [Lc data] 00
        if len(c) == 5:
            data = b""
        elif len(c) >= 7 and c[4] == len(c) - 6 and c[-1] == 0:
            data = c[5:-1]
        else:
            return _sw(SW_LENGTH_ERROR)
        ins = c[1]
        if ins != INS_MORE and ins != INS_AUTH_FIRST:
            self._pending = None  # only the second authentication part may follow the first
        handler = {
            INS_AUTH_FIRST: self._auth_first,
            INS_MORE: self._auth_more,
            INS_GET_UID: self._get_uid,
            INS_CHANGE_KEY: self._change_key,
        }.get(ins)
        if handler is None:
            return _sw(SW_ILLEGAL_COMMAND)
        return handler(data)

    def _select(self, c):
        if len(c) < 5 or c[2] != 0x04 or len(c) < 5 + c[4] or c[5 : 5 + c[4]] != DF_NAME:
            return _sw(SW_ISO_FILE_NOT_FOUND)
        self.reset()
        return _sw(SW_ISO_OK)

    def _auth_first(self, data):
        # A new authentication ends whatever session there was.
        self.session = None
        self._pending = None
        if len(data) < 2 or len(data) != 2 + data[1]:
            return _sw(SW_LENGTH_ERROR)
        key_no = data[0]
        if key_no > 4:
            return _sw(SW_NO_SUCH_KEY)
        rnd_b = self.random(16)
        self._pending = (key_no, rnd_b)
        return _cbc_encrypt(self.keys[key_no], bytes(16), rnd_b) + _sw(SW_MORE)

    def _auth_more(self, data):
        pending, self._pending = self._pending, None
        if pending is None:
            return _sw(SW_ILLEGAL_COMMAND)
        if len(data) != 32:
            return _sw(SW_LENGTH_ERROR)
        key_no, rnd_b = pending
        key = self.keys[key_no]
        plain = _cbc_decrypt(key, bytes(16), data)
        rnd_a = plain[:16]
        if not _equal(plain[16:], rotl(rnd_b)):
            self.failed_authentications += 1
            return _sw(SW_AUTH_ERROR)
        ti = self.random(4)
        enc, mac = session_keys(key, rnd_a, rnd_b)
        self.session = SecureSession(ti, bytearray(enc), bytearray(mac), 0, key_no)
        answer = ti + rotl(rnd_a) + bytes(6) + bytes(6)
        return _cbc_encrypt(key, bytes(16), answer) + _sw(SW_OK)

    def _check_mac(self, ins, header, body):
        # The last 8 bytes are the command's MACt; a wrong one ends the session.
        s = self.session
        if len(body) < 8 + len(header):
            return None
        enc, tag = body[len(header) : -8], body[-8:]
        if not _equal(tag, s.command_mac(ins, header, enc)):
            self.session = None
            return None
        return enc

    def _respond(self, plain=None):
        s = self.session
        s.cmd_ctr += 1
        enc = _cbc_encrypt(s.enc_key, s.iv(b"\x5a\xa5", s.cmd_ctr), pad(plain)) if plain is not None else b""
        return enc + s.response_mac(enc, s.cmd_ctr) + _sw(SW_OK)

    def _get_uid(self, data):
        if self.session is None:
            return _sw(SW_AUTH_ERROR)
        if len(data) != 8:
            return _sw(SW_LENGTH_ERROR)
        if self._check_mac(INS_GET_UID, b"", data) is None:
            return _sw(SW_INTEGRITY_ERROR)
        return self._respond(self.real_uid)

    def _change_key(self, data):
        s = self.session
        if s is None:
            return _sw(SW_AUTH_ERROR)
        if len(data) != 1 + 32 + 8:
            return _sw(SW_LENGTH_ERROR)
        key_no = data[0]
        if key_no > 4:
            return _sw(SW_NO_SUCH_KEY)
        if s.key_no != ADMIN_KEY_NO:
            return _sw(SW_PERMISSION_DENIED)  # ChangeKey needs the application master key
        enc = self._check_mac(INS_CHANGE_KEY, bytes([key_no]), data)
        if enc is None:
            return _sw(SW_INTEGRITY_ERROR)
        try:
            plain = unpad(_cbc_decrypt(s.enc_key, s.iv(b"\xa5\x5a", s.cmd_ctr), enc))
        except CardProtocolError:
            self.session = None
            return _sw(SW_INTEGRITY_ERROR)
        if key_no == s.key_no:
            if len(plain) != 17:
                self.session = None
                return _sw(SW_INTEGRITY_ERROR)
            self.keys[key_no] = plain[:16]
            self.key_versions[key_no] = plain[16]
            self.session = None  # the session key's origin changed: the session ends
            return _sw(SW_OK)
        if len(plain) != 21:
            self.session = None
            return _sw(SW_INTEGRITY_ERROR)
        new = bytes(a ^ b for a, b in zip(plain[:16], self.keys[key_no]))
        if not _equal(plain[17:21], crc32nk(new)):
            self.session = None
            return _sw(SW_INTEGRITY_ERROR)
        self.keys[key_no] = new
        self.key_versions[key_no] = plain[16]
        return self._respond()


class CardLink:
    """The smallest link to an emulated card: `transceive(capdu) -> rapdu`, counting commands."""

    def __init__(self, card):
        self.card = card
        self.commands = 0

    def transceive(self, capdu):
        self.commands += 1
        return self.card.process(capdu)
