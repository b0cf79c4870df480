# carkey — the car's Aliro reader: runs SELECT, AUTH0, fast cryptogram or AUTH1 over any link.
# SPDX-License-Identifier: MIT
#
# Reader.transact(link, credentials) returns a Session or raises; it never
# returns anything half-authenticated. The link only needs
# `async transceive(capdu, timeout_ms) -> rapdu`, so NFC, BLE and TCP share it.
#
# Per-tap work is kept small: the ephemeral key pair and the signing nonce come
# from the PrecomputePool; VolatileFast HKDF-Extract runs while the AUTH0 answer
# is on its way and the ECDH while the AUTH1 answer is; the right cached
# Kpersistent is picked by decrypting one block of the cryptogram under every
# candidate and checking its fixed tags (the same work whichever matches) before
# the single full GCM check. Scalar multiplications run
# sliced so the event loop keeps running.

import asyncio
from micropython import const

from carkey.crypto import aes, p256
from carkey.protocol import apdu, tlv
from carkey.protocol.aliro_keys import USAGE_DEVICE, USAGE_READER, Transcript, kdh
from carkey.protocol.channel import READER, Channel, ChannelError
from carkey.protocol.errors import AuthenticationFailed, LinkError, ProtocolError, TransactionError
from carkey.protocol.identity import PrecomputePool, ReaderIdentity  # noqa: F401 (re-exported)
from carkey.steps import run_steps
from carkey.protocol.session import FALLBACK, FAST, STANDARD, Session

from carkey.protocol.aliro_keys import AID  # noqa: E402 (defined there: the key fob needs it without the reader)
_VERSION = b"\x01\x00"

# AUTH0 [41 01 type]: 00 standard, 01 fast
_TYPE_STANDARD = const(0x00)
_TYPE_FAST = const(0x01)
# AUTH1 [41 01 mode]: 01 answer with the credential public key (5A), 00 with its key slot (4E)
PUBLIC_KEY_MODE = const(0x01)
KEY_SLOT_MODE = const(0x00)

_AUTH0_LEN = const(129)  # 41 01 | 42 01 | 5C 02 | 87 41 | 4C 10 | 4D 20
_AUTH1_LEN = const(69)  # 41 01 | 9E 40
_PUB_LEN = const(65)
_SIG_LEN = const(64)
_CRYPTOGRAM_LEN = const(64)
_CF_ABORT = b"\x41\x01\x00\x42\x01\x00"  # CONTROL FLOW after a failed transaction: refused
_ABORT_TIMEOUT_MS = const(500)
_ZERO_IV = bytes(12)
_ZERO_BLOCK = bytes(16)

_AUTH0_WANTED = (0x86, 0x9D)  # device ephemeral key, cryptogram
_AUTH1_WANTED = (0x5A, 0x4E, 0x9E, 0x5E)  # credential key, key slot, signature, bitmap


class Refused(TransactionError):
    """The reader would not serve this device yet: a stranger during the strangers'
    lockout (docs/PROTOCOL.md §7). Defined here, where it is raised, not in
    carkey.protocol.errors, which every link module loads."""


def _select_info(data):
    # The A5 object (tag and length included: it enters every salt) of the SELECT
    # answer 6F [84 AID][A5 [80 type][5C versions] ...], after the AID and version checks.
    tag, start, end = tlv.read(data, 0)
    if tag != 0x6F or end != len(data):
        raise tlv.TlvError("SELECT answer is not one FCI object")
    pos = start
    aid = proprietary = None
    while pos < end:
        tag, vstart, vend = tlv.read(data, pos)
        if tag == 0x84 and aid is None:
            aid = data[vstart:vend]
        elif tag == 0xA5 and proprietary is None:
            proprietary = bytes(data[pos:vend])
            versions = tlv.fields(data[vstart:vend], (0x5C,)).get(0x5C)
        elif tag in (0x84, 0xA5):
            raise tlv.TlvError("repeated tag")
        pos = vend
    if aid is None or bytes(aid) != AID or proprietary is None:
        raise tlv.TlvError("SELECT answer lacks the AID or A5")
    if versions is None or len(versions) & 1:
        raise tlv.TlvError("SELECT answer lacks supported versions")
    for i in range(0, len(versions), 2):
        if versions[i] == _VERSION[0] and versions[i + 1] == _VERSION[1]:
            return proprietary
    raise ProtocolError("no common protocol version")


class Reader:
    def __init__(self, identity, pool=None, policy=0x02, timeout_ms=3000, deterministic_signatures=False):
        # deterministic_signatures: RFC 6979 reader signatures (known-answer tests);
        # otherwise each AUTH1 uses a fresh random nonce from the pool.
        self.identity = identity
        self.pool = pool if pool is not None else PrecomputePool()
        # Signing nonces made while idle are hedged with the reader's key (docs/CRYPTO.md).
        self.pool.nonce_steps = identity.nonce_steps
        self.policy = policy
        self.timeout_ms = timeout_ms
        self.deterministic_signatures = deterministic_signatures
        self._auth0_buf = bytearray(_AUTH0_LEN)
        self._auth1_buf = bytearray(_AUTH1_LEN)
        self._head = bytearray(16)  # a candidate key's first keystream block
        self._select = None  # (last SELECT answer, its A5 object)
        self._refuse_unknown = False

    async def transact(self, link, credentials, fast=None, auth1_mode=PUBLIC_KEY_MODE, refuse_unknown=False):
        # fast: None asks for a fast transaction when credentials has cached
        # Kpersistents, True always, False never. refuse_unknown: a device whose
        # AUTH1 answer names no enrolled key is refused (Refused) before its
        # signature is checked. Returns a Session; raises LinkError, ProtocolError,
        # AuthenticationFailed or Refused.
        self._refuse_unknown = refuse_unknown
        self.pool.hold()
        state = [True]  # [link still in lock-step]: only then is an abort sent
        try:
            return await self._transact(link, credentials, fast, auth1_mode, state)
        except (ProtocolError, AuthenticationFailed, Refused):
            if state[0]:
                await self._abort(link)
            raise
        finally:
            self.pool.release()

    async def _abort(self, link):
        # Best effort: tell the device the transaction is over and refused.
        try:
            await link.transceive(apdu.command(apdu.CLA_PROPRIETARY, apdu.INS_CONTROL_FLOW, 0, 0, _CF_ABORT),
                                  _ABORT_TIMEOUT_MS)
        except (LinkError, ProtocolError):
            pass

    async def _send(self, link, ins, data, what, state):
        cla = apdu.CLA_ISO if ins == apdu.INS_SELECT else apdu.CLA_PROPRIETARY
        p1 = 0x04 if ins == apdu.INS_SELECT else 0x00
        try:
            body, sw = await apdu.transmit(link, cla, ins, p1, 0, data, 256, self.timeout_ms)
        except LinkError:
            state[0] = False
            raise
        if sw != apdu.SW_OK:
            raise ProtocolError(what + " refused", sw=sw)
        return body

    async def _caught(self, link, ins, data, what, state):
        # The task never ends in an exception: one that finished failing before it
        # is awaited would be reported by the loop as never retrieved.
        try:
            return await self._send(link, ins, data, what, state), None
        except Exception as e:
            return None, e

    async def _overlapped(self, link, ins, data, what, state, work, arg):
        # Sends a command and runs `work(arg)` while its answer is on the way.
        task = asyncio.create_task(self._caught(link, ins, data, what, state))
        try:
            result = await work(arg)
        except BaseException:
            task.cancel()
            state[0] = False  # a command is in flight: the link is out of step
            raise
        body, err = await task
        if err is not None:
            raise err
        return body, result

    async def _transact(self, link, credentials, fast, auth1_mode, state):
        ident = self.identity
        pool = self.pool
        answer = await self._send(link, apdu.INS_SELECT, AID, "SELECT", state)
        # A device answers SELECT the same way every time: parse it once.
        if self._select is None or self._select[0] != answer:
            try:
                self._select = (bytes(answer), _select_info(answer))
            except tlv.TlvError as e:
                raise ProtocolError("malformed SELECT answer: %s" % e) from None
        proprietary = self._select[1]

        candidates = []
        if fast is not False:
            for cand in credentials.fast_candidates():
                if cand.kpersistent is not None:
                    candidates.append(cand)
        want_fast = bool(candidates) if fast is None else bool(fast)

        eph = await pool.take_ephemeral()
        try:
            flag = bytes((_TYPE_FAST if want_fast else _TYPE_STANDARD, self.policy))
            tr = Transcript(ident.public_key, ident.identifier, eph.public_key, eph.transaction_id, flag, proprietary)
            cmd = self._auth0_buf
            pos = tlv.write(cmd, 0, 0x41, flag[0:1])
            pos = tlv.write(cmd, pos, 0x42, flag[1:2])
            pos = tlv.write(cmd, pos, 0x5C, _VERSION)
            pos = tlv.write(cmd, pos, 0x87, eph.public_key)
            pos = tlv.write(cmd, pos, 0x4C, eph.transaction_id)
            tlv.write(cmd, pos, 0x4D, ident.identifier)
            body, prks = await self._overlapped(link, apdu.INS_AUTH0, cmd, "AUTH0", state,
                                                self._fast_prks, (tr, candidates))
            try:
                found = tlv.fields(body, _AUTH0_WANTED)
                device_pub = bytes(tlv.get(found, 0x86, _PUB_LEN))
                cryptogram = found.get(0x9D)
                if cryptogram is not None and len(cryptogram) != _CRYPTOGRAM_LEN:
                    raise tlv.TlvError("cryptogram is not 64 bytes")
            except tlv.TlvError as e:
                raise ProtocolError("malformed AUTH0 answer: %s" % e) from None
            tr.set_device_ephemeral(device_pub)
            # A fast match uses the device key only as HKDF info; the point check
            # matters before it meets our keys in a signature and the ECDH.
            if want_fast and cryptogram is not None and prks:
                session = await self._fast(link, credentials, tr, prks, cryptogram)
                if session is not None:
                    return session
            try:
                # Checks the point now; the multiplication runs during AUTH1.
                ecdh = p256.ecdh_steps(eph.private_key, device_pub)
            except ValueError:
                raise ProtocolError("device ephemeral key is not a P-256 point") from None
            eph.wipe()
            return await self._auth1(link, credentials, tr, eph.transaction_id, ecdh, auth1_mode,
                                     FALLBACK if want_fast else STANDARD, state)
        finally:
            eph.wipe()

    # --- fast -------------------------------------------------------------------

    @staticmethod
    async def _fast_prks(arg):
        # VolatileFast HKDF-Extract per cached key: needs nothing from the device.
        tr, candidates = arg
        prks = []
        for cand in candidates:
            prks.append((cand, tr.fast_prk(cand.kpersistent, cand.pub)))
            await asyncio.sleep_ms(0)
        return prks

    async def _fast(self, link, credentials, tr, prks, cryptogram):
        # The candidate whose CryptogramSK opens the cryptogram, as a Session; None
        # if none does (the device had no Kpersistent for us, or a stale one).
        # Which key matched must not show in the time taken, so every candidate gets
        # the same work (CryptogramSK, its key schedule, one CTR block, a branch-free
        # check of the fixed tags), and exactly one full GCM check runs: on the first
        # match, or on the first candidate when none matched.
        cryptogram = bytes(cryptogram)
        head = self._head
        match = -1
        first_sk = first_ecb = None
        for i in range(len(prks)):
            sk = tr.cryptogram_sk(prks[i][1])
            ecb = aes.cipher(sk)
            aes.first_block(ecb, _ZERO_IV, head)  # keystream: XOR the ciphertext for the plaintext
            miss = ((head[0] ^ cryptogram[0] ^ 0x5E) | (head[1] ^ cryptogram[1] ^ 0x02)
                    | (head[4] ^ cryptogram[4] ^ 0x91) | (head[5] ^ cryptogram[5] ^ 0x14))
            take = ((miss - 1) >> 8) & (match >> 8) & 1  # 1: this one fits and none did before
            match += take * (i - match)
            # Keep the CryptogramSK (and its key schedule) of the first match, or of the
            # first candidate, for the full check, picked without a branch on which one matched.
            keep = take | (i == 0)
            first_sk = (first_sk, sk)[keep]
            first_ecb = (first_ecb, ecb)[keep]
            await asyncio.sleep_ms(0)
        head[:] = _ZERO_BLOCK  # no keystream of a candidate key is left behind
        cand, prk = prks[match if match >= 0 else 0]
        try:
            plain = aes.Gcm(first_sk, first_ecb).decrypt(_ZERO_IV, cryptogram)
        except ValueError:
            plain = None
        if match < 0 or plain is None or plain[26] != 0x92 or plain[27] != 0x14:
            return None
        sk_reader, sk_device = tr.fast_channel_keys(prk, first_sk)
        pub = bytes(cand.pub)
        return Session(link, Channel(sk_reader, sk_device, READER), FAST, pub,
                       credentials.lookup(pub), None, plain[2:4], self.timeout_ms)

    # --- AUTH1 ------------------------------------------------------------------

    async def _sign(self, digest):
        if self.deterministic_signatures:
            return await run_steps(self.identity.sign_steps(digest))
        nonce = await self.pool.take_nonce()
        try:
            return self.identity.sign_with_nonce(digest, nonce)
        finally:
            nonce.wipe()

    @staticmethod
    async def _keys(arg):
        # ECDH, Kdh and the Volatile**** split, while the AUTH1 answer is on its way.
        tr, transaction_id, ecdh = arg
        try:
            z = await run_steps(ecdh)
        except ValueError:
            raise ProtocolError("ECDH with the device key failed") from None
        k = kdh(z, transaction_id)
        return k, tr.volatile_keys(k)

    async def _auth1(self, link, credentials, tr, transaction_id, ecdh, mode, kind, state):
        cmd = self._auth1_buf
        cmd[0] = 0x41
        cmd[1] = 1
        cmd[2] = mode
        tlv.write(cmd, 3, 0x9E, await self._sign(tr.digest(USAGE_READER)))
        body, (k, keys) = await self._overlapped(link, apdu.INS_AUTH1, cmd, "AUTH1", state,
                                                  self._keys, (tr, transaction_id, ecdh))
        sk_reader, sk_device = keys[0], keys[1]
        channel = Channel(sk_reader, sk_device, READER)
        try:
            plain = channel.open(body)
        except ChannelError:
            raise AuthenticationFailed("AUTH1 answer does not authenticate") from None
        try:
            found = tlv.fields(plain, _AUTH1_WANTED)
            signature = bytes(tlv.get(found, 0x9E, _SIG_LEN))
            bitmap = found.get(0x5E)
            bitmap = bytes(bitmap) if bitmap is not None else None
            if mode == PUBLIC_KEY_MODE:
                pub = bytes(tlv.get(found, 0x5A, _PUB_LEN))
                credential = credentials.lookup(pub)
            else:
                credential = credentials.by_slot(bytes(tlv.get(found, 0x4E, 8)))
                if credential is None and not self._refuse_unknown:
                    raise AuthenticationFailed("unknown key slot")
                pub = bytes(credential.pub) if credential is not None else None
        except tlv.TlvError as e:
            raise ProtocolError("malformed AUTH1 answer: %s" % e) from None
        if credential is None and self._refuse_unknown:
            raise Refused("strangers are locked out")
        # An enrolled key's precomputed table makes the check ~2.7x faster.
        table = credentials.table(credential) if credential is not None else None
        ok = await run_steps(p256.verify_steps(pub, tr.digest(USAGE_DEVICE), signature, table))
        if not ok:
            raise AuthenticationFailed("device signature does not verify")
        return Session(link, channel, kind, pub, credential, tr.kpersistent(k, pub), bitmap, self.timeout_ms)
