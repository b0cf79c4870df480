# carkey — a user device in MicroPython for firmware tests: answers the reader's APDUs in the same process.
# SPDX-License-Identifier: MIT
#
# Device(priv, pub) is itself a link (async transceive(capdu, timeout_ms)), so a
# test hands it straight to Car.handle and the whole expedited phase runs with real
# crypto on both ends, without sockets or a second process. It keeps the
# Kpersistent of its last granted standard transaction and answers fast AUTH0s
# with a cryptogram, as a phone does. It does not check the reader's signature:
# these tests are about the reader. Stranger() fails AUTH1 as cheaply as possible.

import asyncio
import os

from carkey.crypto import aes, p256
from carkey.protocol import tlv
from carkey.protocol.aliro_keys import USAGE_DEVICE, Transcript, kdh
from carkey.protocol.channel import DEVICE, Channel
from carkey.protocol.errors import LinkError, LinkTimeout

AID = b"\xa0\x00\x00\x09\x09\xac\xce\x55\x01"
SELECT_ANSWER = b"\x6f\x15\x84\x09" + AID + b"\xa5\x08\x80\x02\x00\x00\x5c\x02\x01\x00\x90\x00"
OK = b"\x90\x00"
_STATUS_OK = b"\x00\x02\x00\x00"
_EPH = None  # one fixed ephemeral key pair for strangers (they never finish a handshake)


def _fixed_ephemeral():
    global _EPH
    if _EPH is None:
        _EPH = p256.generate_keypair()
    return _EPH


def _data(capdu):
    return capdu[5 : 5 + capdu[4]] if len(capdu) > 5 else b""


class Device:
    """A phone holding credential (priv, pub). requests: [(command, argument)] sent in
    the first EXCHANGE answer (none: the reader's default action). envelope: raw E1
    contents to send instead (documents, junk)."""

    def __init__(self, priv, pub, requests=(), envelope=None):
        self.priv = priv
        self.pub = pub
        self.requests = list(requests)
        self.envelope = envelope
        self.kpersistent = None
        self.control_flow = None  # S1 of the last CONTROL FLOW
        self.results = []  # C4 values of the last transaction
        self.documents = []  # C6 values (document tag, result) of the last transaction
        self.tamper_exchange = False  # answer EXCHANGE with a broken MAC (after authenticating)
        self.no_cryptogram = False  # answer a fast AUTH0 without a cryptogram (wants a standard tap)
        self.stall_ms = 0  # answer every command this late (a slow or stalling device)
        self.closed = False

    async def close(self):
        self.closed = True

    async def transceive(self, capdu, timeout_ms):
        if self.stall_ms:
            # As a real link: past the reader's timeout the answer never arrives.
            await asyncio.sleep_ms(min(self.stall_ms, timeout_ms))
            if self.stall_ms >= timeout_ms:
                raise LinkTimeout("no answer within %d ms" % timeout_ms)
        capdu = bytes(capdu)
        ins = capdu[1]
        if ins == 0xA4:
            self.results = []
            self.documents = []
            self._pending = None
            return SELECT_ANSWER
        if ins == 0x80:
            return self._auth0(_data(capdu))
        if ins == 0x81:
            return self._auth1(_data(capdu))
        if ins == 0xC9:
            return self._exchange(_data(capdu))
        if ins == 0x3C:
            self.control_flow = _data(capdu)[2]
            if self.control_flow == 1 and self._pending is not None:
                self.kpersistent = self._pending
            return OK
        raise LinkError("unexpected command %02x" % ins)

    def _auth0(self, data):
        f = tlv.fields(data)
        self._flag = bytes(f[0x41]) + bytes(f[0x42])
        self._reader_eph = bytes(f[0x87])
        self._txid = bytes(f[0x4C])
        rid = bytes(f[0x4D])
        self._eph_priv, eph_pub = p256.generate_keypair()
        # The reader's long-term key enters the salt: tests set it as reader_pub.
        self._tr = Transcript(self.reader_pub, rid, self._reader_eph, self._txid, self._flag)
        self._tr.set_device_ephemeral(eph_pub)
        out = tlv.encode(0x86, eph_pub)
        if self._flag[0] == 1 and not self.no_cryptogram:
            if self.kpersistent is not None:
                prk = self._tr.fast_prk(self.kpersistent, self.pub)
                csk, sk_reader, sk_device, _, _ = self._tr.fast_keys(prk)
                plain = b"\x5e\x02\x00\x00" + tlv.encode(0x91, bytes(20)) + tlv.encode(0x92, bytes(20))
                out += tlv.encode(0x9D, aes.gcm_encrypt(csk, bytes(12), plain))
                self._channel = Channel(sk_reader, sk_device, DEVICE)
            else:
                out += tlv.encode(0x9D, os.urandom(64))
        return out + OK

    def _auth1(self, data):
        z = p256.ecdh(self._eph_priv, self._reader_eph)
        k = kdh(z, self._txid)
        keys = self._tr.volatile_keys(k)
        self._channel = Channel(keys[0], keys[1], DEVICE)
        sig = p256.sign(self.priv, self._tr.digest(USAGE_DEVICE))
        plain = tlv.encode(0x5A, self.pub) + tlv.encode(0x9E, sig) + b"\x5e\x02\x00\x00"
        self._pending = self._tr.kpersistent(k, self.pub)
        return self._channel.seal(plain) + OK

    def _exchange(self, data):
        plain = self._channel.open(data)
        for tag, s, e in tlv.iterate(plain):
            if tag == 0xE1:
                for inner, s2, e2 in tlv.iterate(plain[s:e]):
                    if inner == 0xC4:
                        self.results.append(bytes(plain[s + s2 : s + e2]))
                    elif inner == 0xC6:
                        self.documents.append(bytes(plain[s + s2 : s + e2]))
        if self.envelope is not None:
            body, self.envelope = self.envelope, None
            answer = tlv.encode(0xE1, body)
        elif len(self.results) < len(self.requests):
            command, argument = self.requests[len(self.results)]
            answer = tlv.encode(0xE1, tlv.encode(0xC2, bytes((command,)) + argument))
        else:
            answer = b""
        sealed = bytearray(self._channel.seal(answer + _STATUS_OK))
        if self.tamper_exchange:
            sealed[0] ^= 1
        return bytes(sealed) + OK


class Stranger:
    """A device no car knows, failing AUTH1: a valid ephemeral key in AUTH0, then an
    AUTH1 answer that does not authenticate."""

    def __init__(self):
        self.control_flow = None

    async def transceive(self, capdu, timeout_ms):
        ins = capdu[1]
        if ins == 0xA4:
            return SELECT_ANSWER
        if ins == 0x80:
            return tlv.encode(0x86, _fixed_ephemeral()[1]) + OK
        if ins == 0x81:
            return os.urandom(0x50) + OK
        if ins == 0x3C:
            self.control_flow = capdu[7]
            return OK
        raise LinkError("unexpected command %02x" % ins)
