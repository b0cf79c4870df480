# carkey — the key fob's user device: answers the reader's expedited-phase APDUs.
# SPDX-License-Identifier: MIT
#
# UserDevice.process(capdu) -> rapdu runs one command of SELECT, AUTH0 (standard
# or fast), AUTH1, EXCHANGE, CONTROL FLOW, GET RESPONSE (docs/PROTOCOL.md §3) on
# the firmware's own crypto and key schedule (carkey.protocol.aliro_keys, shared
# with the reader). Any error answer ends the transaction and drops its keys.
# A reader whose group the fob does not trust gets an ordinary AUTH0 answer and
# then silence: process() raises DropLink at AUTH1, the transport hangs up.
#
# What rides inside EXCHANGE is the caller's business: `on_exchange(plaintext)`
# returns the TLVs to send back before the 00 02 00 00 status (carkey.fob.client),
# or an awaitable of them when the answer must wait (the fob's gesture).
# Scalar multiplications run sliced (run_steps), so the radio and the button keep
# being served during a 1-3 s operation on the chip.

from micropython import const

from carkey.crypto import aes, p256
from carkey.protocol import tlv
from carkey.protocol.aliro_keys import (
    AID, DEFAULT_PROPRIETARY, PROTOCOL_VERSION, USAGE_DEVICE, USAGE_READER, Transcript, kdh, key_slot,
)
from carkey.protocol.channel import DEVICE, Channel, ChannelError
from carkey.protocol.errors import DropLink
from carkey.steps import run_steps

# Status words a user device answers (docs/PROTOCOL.md §3)
SW_OK = const(0x9000)
_SW_MORE = const(0x6100)
SW_MALFORMED = const(0x6701)
SW_BAD_CLA = const(0x6800)
SW_SECURITY = const(0x6982)
SW_VERSION = const(0x6985)
SW_UNKNOWN_AID = const(0x6A82)
SW_BAD_P1P2 = const(0x6A86)
SW_WRONG_STATE = const(0x6D00)

_CLA_ISO = const(0x00)
_CLA_PROP = const(0x80)
_CLA_CHAIN = const(0x10)
_INS_SELECT = const(0xA4)
_INS_AUTH0 = const(0x80)
_INS_AUTH1 = const(0x81)
_INS_EXCHANGE = const(0xC9)
_INS_CONTROL_FLOW = const(0x3C)
_INS_GET_RESPONSE = const(0xC0)

_IDLE = const(0)
_SELECTED = const(1)
_AUTH0 = const(2)  # AUTH1 expected
_AUTH0_FAST = const(3)  # cryptogram sent: AUTH1 or a fast EXCHANGE expected
_SECURE = const(4)

_PUB_LEN = const(65)
_SIG_LEN = const(64)
_MAX_CHAIN = const(1024)  # a chained command longer than this is refused
_MAX_PART = const(254)  # answer bytes per R-APDU; the rest waits for GET RESPONSE
_ZERO_IV = bytes(12)
_STATUS_OK = b"\x00\x02\x00\x00"
_FCI = b"\x6f\x15\x84\x09" + AID + DEFAULT_PROPRIETARY

STANDARD = "standard"
FAST = "fast"


class _Refuse(Exception):
    def __init__(self, sw):
        self.sw = sw


def _sw(sw):
    return bytes((sw >> 8, sw & 0xFF))


class Txn:
    # What one transaction did, as the fob saw it.
    def __init__(self):
        self.reader_identifier = None
        self.kind = None  # standard or fast once authenticated
        self.reader_status = None
        self.control_flow = None  # (S1, S2)
        self.new_kpersistent = False


class UserDevice:
    def __init__(self, state, on_exchange=None, signaling_bitmap=b"\x00\x00", ephemeral=None, random_bytes=None,
                 spare=None):
        # state: carkey.fob.state.FobState (credential, trusted cars, Kpersistent).
        # ephemeral() -> (priv, pub) and random_bytes(n) are the only randomness;
        # tests inject them to replay known-answer transcripts. spare: an ephemeral
        # key pair made ahead (before the fob last slept), used at most once.
        self._state = state
        self._priv, self.public_key = state.credential()
        self._slot = key_slot(self.public_key)
        self.on_exchange = on_exchange
        self.bitmap = bytes(signaling_bitmap)
        self._ephemeral = ephemeral
        if random_bytes is None:
            import os

            random_bytes = os.urandom
        self._random = random_bytes
        self._spare = spare  # an ephemeral key pair made ahead (prepare(), or before the last sleep)
        self._chain = None
        self._pending = None  # answer bytes waiting for GET RESPONSE
        self._channel_obj = None
        self.txn = None
        self.reset()

    async def prepare(self):
        # Makes the next ephemeral key pair now (while the radio scans or connects).
        if self._spare is None and self._ephemeral is None:
            self._spare = await run_steps(p256.keypair_steps())

    def take_spare(self):
        # The ephemeral key pair made ahead and never sent, or None; the device forgets it.
        pair = self._spare
        self._spare = None
        return pair

    def reset(self):
        # The link went away: forget the selection and any transaction.
        self._end()
        self._mode = _IDLE
        self._chain = None
        self._pending = None

    def _end(self):
        if self._channel_obj is not None:
            self._channel_obj.close()
        self._channel_obj = None
        self._tr = None
        self._eph_priv = None
        self._reader_eph = None
        self._reader_key = None
        self._txid = None
        self._kp_new = None

    def _fail(self):
        self._end()
        self._chain = None
        self._pending = None
        if self._mode != _IDLE:
            self._mode = _SELECTED

    async def process(self, capdu):
        # One C-APDU in, its R-APDU out. Raises DropLink when the fob goes silent.
        try:
            return await self._process(capdu)
        except _Refuse as e:
            self._fail()
            return _sw(e.sw)
        except DropLink:
            self.reset()
            raise

    # --- framing ------------------------------------------------------------------

    def _answer(self, data):
        if len(data) <= _MAX_PART:
            return bytes(data) + b"\x90\x00"
        self._pending = bytes(data[_MAX_PART:])
        left = len(self._pending)
        return bytes(data[:_MAX_PART]) + _sw(_SW_MORE | (left if left < 256 else 0))

    def _get_response(self, p1, p2, le):
        if self._pending is None:
            raise _Refuse(SW_WRONG_STATE)
        if p1 or p2:
            raise _Refuse(SW_BAD_P1P2)
        data = self._pending
        n = min(le, _MAX_PART)
        self._pending = data[n:] if len(data) > n else None
        if self._pending is None:
            return data + b"\x90\x00"
        left = len(self._pending)
        return data[:n] + _sw(_SW_MORE | (left if left < 256 else 0))

    async def _process(self, capdu):
        n = len(capdu)
        if n < 4:
            raise _Refuse(SW_MALFORMED)
        cla, ins, p1, p2 = capdu[0], capdu[1], capdu[2], capdu[3]
        data = b""
        le = None
        if n == 5:
            le = capdu[4] or 256
        elif n > 5:
            lc = capdu[4]
            if lc == 0 or n not in (5 + lc, 6 + lc):
                raise _Refuse(SW_MALFORMED)
            data = capdu[5 : 5 + lc]
            if n == 6 + lc:
                le = capdu[-1] or 256
        if ins == _INS_GET_RESPONSE and cla == _CLA_ISO:
            return self._get_response(p1, p2, le or 256)
        self._pending = None
        chained = cla & _CLA_CHAIN
        base = cla & ~_CLA_CHAIN
        if ins == _INS_SELECT:
            self._chain = None
            want_cla, want_p1 = _CLA_ISO, 0x04
        elif ins in (_INS_AUTH0, _INS_AUTH1, _INS_EXCHANGE, _INS_CONTROL_FLOW):
            want_cla, want_p1 = _CLA_PROP, 0
        else:
            raise _Refuse(SW_WRONG_STATE)
        if base != want_cla or (chained and ins in (_INS_SELECT, _INS_CONTROL_FLOW)):
            raise _Refuse(SW_BAD_CLA)
        if p1 != want_p1 or p2:
            raise _Refuse(SW_BAD_P1P2)
        if self._chain is not None and self._chain[0] != ins:
            raise _Refuse(SW_WRONG_STATE)  # a chain interrupted by another command
        if chained:
            if self._chain is None:
                self._chain = (ins, bytearray())
            if len(self._chain[1]) + len(data) > _MAX_CHAIN:
                raise _Refuse(SW_MALFORMED)
            self._chain[1].extend(data)
            return b"\x90\x00"
        if self._chain is not None:
            whole = self._chain[1]
            whole.extend(data)
            data = whole
            self._chain = None
        if ins == _INS_SELECT:
            return self._answer(self._select(data))
        if ins == _INS_AUTH0:
            return self._answer(await self._auth0(data))
        if ins == _INS_AUTH1:
            return self._answer(await self._auth1(data))
        if ins == _INS_EXCHANGE:
            return self._answer(await self._exchange(data))
        return self._answer(self._control_flow(data))

    # --- commands -------------------------------------------------------------------

    def _select(self, data):
        self._end()
        if bytes(data) != AID:
            self._mode = _IDLE
            raise _Refuse(SW_UNKNOWN_AID)
        self._mode = _SELECTED
        self.txn = Txn()
        return _FCI

    @staticmethod
    def _fields(data, wanted):
        try:
            return tlv.fields(data, wanted)
        except tlv.TlvError:
            raise _Refuse(SW_MALFORMED)

    @staticmethod
    def _get(found, tag, length):
        value = found.get(tag)
        if value is None or len(value) != length:
            raise _Refuse(SW_MALFORMED)
        return bytes(value)

    async def _new_ephemeral(self):
        if self._ephemeral is not None:
            return self._ephemeral()
        pair = self._spare
        self._spare = None
        if pair is None:
            pair = await run_steps(p256.keypair_steps())
        return pair

    async def _auth0(self, data):
        if self._mode != _SELECTED:
            raise _Refuse(SW_WRONG_STATE)
        found = self._fields(data, (0x41, 0x42, 0x5C, 0x87, 0x4C, 0x4D))
        ttype = self._get(found, 0x41, 1)[0]
        policy = self._get(found, 0x42, 1)[0]
        version = self._get(found, 0x5C, 2)
        reader_eph = self._get(found, 0x87, _PUB_LEN)
        txid = self._get(found, 0x4C, 16)
        rid = self._get(found, 0x4D, 32)
        if ttype > 1 or not 1 <= policy <= 3:
            raise _Refuse(SW_MALFORMED)
        if not p256.is_valid_public_key(reader_eph):
            raise _Refuse(SW_MALFORMED)
        if version != PROTOCOL_VERSION:
            raise _Refuse(SW_VERSION)
        priv, pub = await self._new_ephemeral()
        reader_key = self._state.reader_key(rid[:16])
        self.txn.reader_identifier = rid
        self._eph_priv = priv
        self._reader_eph = reader_eph
        self._reader_key = reader_key
        self._txid = txid
        out = bytearray(2 + _PUB_LEN + (0 if ttype == 0 else 2 + 64))
        pos = tlv.write(out, 0, 0x86, pub)
        if reader_key is not None:
            tr = Transcript(reader_key, rid, reader_eph, txid, bytes((ttype, policy)))
            tr.set_device_ephemeral(pub)
            self._tr = tr
        self._mode = _AUTH0
        if ttype == 0:
            return out
        kp = self._state.kpersistent(rid) if reader_key is not None else None
        if kp is None:
            # Looks like a cryptogram; the reader finds no key and runs AUTH1.
            tlv.write(out, pos, 0x9D, self._random(64))
            return out
        prk = self._tr.fast_prk(kp, self.public_key)
        crypto_sk, sk_reader, sk_device, _, _ = self._tr.fast_keys(prk)
        plain = bytearray(48)
        plain[0:4] = b"\x5e\x02" + self.bitmap
        plain[4] = 0x91
        plain[5] = 0x14
        plain[26] = 0x92
        plain[27] = 0x14
        tlv.write(out, pos, 0x9D, aes.Gcm(crypto_sk).encrypt(_ZERO_IV, plain))
        self._channel_obj = Channel(sk_reader, sk_device, DEVICE)
        self._mode = _AUTH0_FAST
        return out

    async def _auth1(self, data):
        if self._mode != _AUTH0 and self._mode != _AUTH0_FAST:
            raise _Refuse(SW_WRONG_STATE)
        found = self._fields(data, (0x41, 0x9E))
        mode = self._get(found, 0x41, 1)[0]
        signature = self._get(found, 0x9E, _SIG_LEN)
        if mode > 1:
            raise _Refuse(SW_MALFORMED)
        tr = self._tr
        if tr is None:
            raise DropLink("reader group not trusted")
        if self._channel_obj is not None:
            self._channel_obj.close()  # the reader chose AUTH1 after all
            self._channel_obj = None
        ok = await run_steps(p256.verify_steps(self._reader_key, tr.digest(USAGE_READER), signature))
        if not ok:
            raise _Refuse(SW_SECURITY)
        z = await run_steps(p256.ecdh_steps(self._eph_priv, self._reader_eph))
        self._eph_priv = None
        k = kdh(z, self._txid)
        sk_reader, sk_device, _, _, _ = tr.volatile_keys(k)
        self._kp_new = tr.kpersistent(k, self.public_key)
        sig = await run_steps(p256.sign_steps(self._priv, tr.digest(USAGE_DEVICE)))
        out = bytearray(2 + (_PUB_LEN if mode else 8) + 2 + _SIG_LEN + 4)
        pos = tlv.write(out, 0, 0x5A, self.public_key) if mode else tlv.write(out, 0, 0x4E, self._slot)
        pos = tlv.write(out, pos, 0x9E, sig)
        tlv.write(out, pos, 0x5E, self.bitmap)
        self._channel_obj = Channel(sk_reader, sk_device, DEVICE)
        self._mode = _SECURE
        self.txn.kind = STANDARD
        return self._channel_obj.seal(out)

    async def _exchange(self, data):
        if self._mode != _AUTH0_FAST and self._mode != _SECURE:
            raise _Refuse(SW_WRONG_STATE)
        channel = self._channel_obj
        try:
            plain = channel.open(data)
        except ChannelError:
            raise _Refuse(SW_SECURITY)
        txn = self.txn
        if self._mode == _AUTH0_FAST:
            txn.kind = FAST
        self._mode = _SECURE
        if self._kp_new is not None:
            # The reader holds the session keys, so it derived this Kpersistent too.
            self._state.set_kpersistent(txn.reader_identifier, self._kp_new)
            self._kp_new = None
            txn.new_kpersistent = True
        try:
            status = tlv.fields(plain, (0x97,)).get(0x97)
        except tlv.TlvError:
            raise _Refuse(SW_MALFORMED)
        if status is not None:
            if len(status) != 2:
                raise _Refuse(SW_MALFORMED)
            txn.reader_status = bytes(status)
        reply = self.on_exchange(plain) if self.on_exchange is not None else b""
        if not isinstance(reply, (bytes, bytearray)):
            reply = await reply  # the answer waits for something (the fob's gesture)
        try:
            return channel.seal(bytes(reply) + _STATUS_OK)
        except ChannelError:
            raise _Refuse(SW_WRONG_STATE)

    def _control_flow(self, data):
        if self._mode == _IDLE:
            raise _Refuse(SW_WRONG_STATE)
        found = self._fields(data, (0x41, 0x42))
        s1 = self._get(found, 0x41, 1)[0]
        s2 = self._get(found, 0x42, 1)[0]
        self.txn.control_flow = (s1, s2)
        self._end()
        self._mode = _SELECTED
        return b""
