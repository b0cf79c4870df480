# carkey — a user device in MicroPython for firmware tests: answers the reader's APDUs in the same process.
# SPDX-License-Identifier: MIT
#
# Device(priv, pub) is itself a link (async transceive(capdu, timeout_ms)), so a
# test hands it straight to Car.handle and the whole expedited phase runs with real
# crypto on both ends, without sockets or a second process. It is the campaigns'
# device (device_sim.DeviceLink) acting as a phone does: it asks for `requests`,
# reads the car's results, and keeps the Kpersistent of its last granted standard
# transaction for the fast AUTH0s that follow. It does not check the reader's
# signature: these tests are about the reader. Stranger() fails AUTH1 as cheaply
# as possible.

import asyncio
import os

from carkey.crypto import p256
from carkey.protocol import tlv
from carkey.protocol.errors import LinkError, LinkTimeout
from device_sim import OK, SELECT_ANSWER, Credential, DeviceLink

_EPH = None  # one fixed ephemeral key pair for strangers (they never finish a handshake)


def _fixed_ephemeral():
    global _EPH
    if _EPH is None:
        _EPH = p256.generate_keypair()
    return _EPH


class Device(DeviceLink):
    """A phone holding credential (priv, pub). requests: [(command, argument)] sent in
    the EXCHANGE answers (none: the reader's default action). envelope: raw E1
    contents to send instead, once (documents, junk). Set reader_pub before a tap."""

    def __init__(self, priv, pub, requests=(), envelope=None):
        super().__init__(Credential(priv, pub), None)
        self.priv = priv
        self.pub = pub
        self.requests = list(requests)
        self.envelope = envelope
        self.results = []  # C4 values of the last transaction
        self.documents = []  # C6 values (document tag, result) of the last transaction
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
        return await super().transceive(capdu, timeout_ms)

    def _process(self, capdu):
        ins = capdu[1]
        if ins == 0xA4:
            self.results = []
            self.documents = []
            self.new_kpersistent = None
        answer = super()._process(capdu)
        if ins == 0x3C and not capdu[0] & 0x10:
            self.control_flow = self.control_flow[2]  # S1: 1 success, 0 failure
            if self.control_flow == 1 and self.new_kpersistent is not None:
                self.kpersistent = self.new_kpersistent
        return answer

    def _reply(self, plain):
        for tag, s, e in tlv.iterate(plain):
            if tag == 0xE1:
                for inner, s2, e2 in tlv.iterate(plain[s:e]):
                    if inner == 0xC4:
                        self.results.append(bytes(plain[s + s2 : s + e2]))
                    elif inner == 0xC6:
                        self.documents.append(bytes(plain[s + s2 : s + e2]))
        if self.envelope is not None:
            body, self.envelope = self.envelope, None
            return tlv.encode(0xE1, body)
        if len(self.results) < len(self.requests):
            command, argument = self.requests[len(self.results)]
            return tlv.encode(0xE1, tlv.encode(0xC2, bytes((command,)) + argument))
        return b""


class Stranger:
    """A device no car knows, failing AUTH1: a valid ephemeral key in AUTH0, then an
    AUTH1 answer that does not authenticate."""

    def __init__(self):
        self.control_flow = None

    async def transceive(self, capdu, timeout_ms):
        ins = capdu[1]
        if ins == 0xA4:
            return SELECT_ANSWER + OK
        if ins == 0x80:
            return tlv.encode(0x86, _fixed_ephemeral()[1]) + OK
        if ins == 0x81:
            return os.urandom(0x50) + OK
        if ins == 0x3C:
            self.control_flow = capdu[7]
            return OK
        raise LinkError("unexpected command %02x" % ins)
