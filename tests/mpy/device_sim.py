# carkey — an Aliro user device in MicroPython for the fuzz and power-cut campaigns: a link that answers APDUs.
# SPDX-License-Identifier: MIT
#
# DeviceLink is the phone end of a tap, built on the firmware's own primitives
# (p256, aliro_keys.Transcript, Channel in the DEVICE role), so whole transactions
# run inside one MicroPython process at interpreter speed, without sockets. It
# answers SELECT, AUTH0 (standard, or fast with a cryptogram when it holds a
# Kpersistent for the reader), AUTH1, EXCHANGE and CONTROL FLOW, reassembles
# chained commands, and plays `replies` (carkey envelope TLVs) one per EXCHANGE.
# It is a test device: it does not check the reader's signature. The independent
# CPython phone (carkey_host.phone) is what the end-to-end tests hold the reader to;
# this one only has to be correct enough to reach every step of the reader.
#
# mutate(step, capdu, rapdu) (optional) may rewrite any answer or return None for
# silence (the link then raises LinkError); step counts transceive calls from 0.

import hashlib

from carkey.crypto import aes, p256
from carkey.protocol import tlv
from carkey.protocol.aliro_keys import DEFAULT_PROPRIETARY, USAGE_DEVICE, Transcript, kdh
from carkey.protocol.channel import DEVICE, Channel
from carkey.protocol.errors import LinkError

_FCI = b"\x84\x09\xa0\x00\x00\x09\x09\xac\xce\x55\x01" + DEFAULT_PROPRIETARY
SELECT_ANSWER = b"\x6f" + bytes((len(_FCI),)) + _FCI
OK = b"\x90\x00"
STATUS_OK = b"\x00\x02\x00\x00"
_ZERO_IV = bytes(12)


class Credential:
    """A device key pair (priv 32 bytes, pub 65 bytes); a fresh one by default."""

    def __init__(self, priv=None, pub=None):
        if priv is None:
            priv, pub = p256.generate_keypair()
        self.priv = priv
        self.pub = pub
        self.slot = hashlib.sha1(pub).digest()[:8]


class DeviceLink:
    def __init__(self, cred, reader_pub, kpersistent=None, replies=(), mutate=None, eph=None):
        self.cred = cred
        self.reader_pub = reader_pub
        self.kpersistent = kpersistent  # what the device keeps for this reader (fast taps)
        self.replies = list(replies)
        self.mutate = mutate
        self.eph = eph  # (priv, pub): a fixed ephemeral key, else a fresh one per AUTH0
        self.no_cryptogram = False  # answer a fast AUTH0 without a cryptogram (wants a standard tap)
        self.tamper_exchange = False  # answer EXCHANGE with a broken MAC (after authenticating)
        self.step = 0
        self.received = []  # decrypted EXCHANGE plaintexts from the reader
        self.control_flow = None
        self.new_kpersistent = None
        self._chain = b""
        self._tr = None
        self._channel = None
        self._eph_priv = None
        self._txid = None

    async def transceive(self, capdu, timeout_ms):
        capdu = bytes(capdu)
        step = self.step
        self.step += 1
        answer = self._process(capdu)
        if self.mutate is not None:
            answer = self.mutate(step, capdu, answer)
        if answer is None:
            raise LinkError("device went silent")
        return answer

    def _process(self, capdu):
        cla, ins = capdu[0], capdu[1]
        data = capdu[5 : 5 + capdu[4]] if len(capdu) > 5 else b""
        if cla & 0x10:
            self._chain += data
            return OK
        data = self._chain + data
        self._chain = b""
        if ins == 0xA4:
            self._tr = self._channel = None
            return SELECT_ANSWER + OK
        if ins == 0x80:
            return self._auth0(data)
        if ins == 0x81:
            return self._auth1(data)
        if ins == 0xC9:
            return self._exchange(data)
        if ins == 0x3C:
            self.control_flow = bytes(data)
            self._tr = self._channel = None
            return OK
        return b"\x6d\x00"

    def _auth0(self, data):
        f = tlv.fields(data, (0x41, 0x42, 0x87, 0x4C, 0x4D))
        flag = bytes(f[0x41]) + bytes(f[0x42])
        reader_eph = bytes(f[0x87])
        self._txid = bytes(f[0x4C])
        rid = bytes(f[0x4D])
        if self.eph is not None:
            priv, pub = self.eph
        else:
            priv, pub = p256.generate_keypair()
        self._eph_priv = priv
        self._reader_eph = reader_eph
        tr = Transcript(self.reader_pub, rid, reader_eph, self._txid, flag, DEFAULT_PROPRIETARY)
        tr.set_device_ephemeral(pub)
        self._tr = tr
        answer = b"\x86\x41" + pub
        if flag[0] == 0x01 and not self.no_cryptogram:
            if self.kpersistent is not None:
                prk = tr.fast_prk(self.kpersistent, self.cred.pub)
                cryptogram_sk, sk_reader, sk_device, _, _ = tr.fast_keys(prk)
                plain = b"\x5e\x02\x00\x00\x91\x14" + bytes(20) + b"\x92\x14" + bytes(20)
                sealed = aes.Gcm(cryptogram_sk).encrypt(_ZERO_IV, plain)
                self._channel = Channel(sk_reader, sk_device, DEVICE)
            else:
                sealed = bytes(64)
            answer += b"\x9d\x40" + sealed
        return answer + OK

    def _auth1(self, data):
        if self._tr is None:
            return b"\x69\x85"
        f = tlv.fields(data, (0x41, 0x9E))
        mode = f[0x41][0]
        tr = self._tr
        z = p256.ecdh(self._eph_priv, self._reader_eph)
        k = kdh(z, self._txid)
        sk_reader, sk_device = tr.volatile_keys(k)[:2]
        self.new_kpersistent = tr.kpersistent(k, self.cred.pub)
        sig = p256.sign(self.cred.priv, tr.digest(USAGE_DEVICE))
        who = (b"\x5a\x41" + self.cred.pub) if mode == 0x01 else (b"\x4e\x08" + self.cred.slot)
        self._channel = Channel(sk_reader, sk_device, DEVICE)
        return self._channel.seal(who + b"\x9e\x40" + sig + b"\x5e\x02\x00\x00") + OK

    def _exchange(self, data):
        if self._channel is None:
            return b"\x69\x85"
        try:
            plain = self._channel.open(data)
        except ValueError:
            return b"\x69\x82"
        self.received.append(bytes(plain))
        sealed = bytearray(self._channel.seal(self._reply(plain) + STATUS_OK))
        if self.tamper_exchange:
            sealed[0] ^= 1
        return bytes(sealed) + OK

    def _reply(self, plain):
        # What this EXCHANGE answers (carkey envelope TLVs): the next of `replies`.
        return self.replies.pop(0) if self.replies else b""
