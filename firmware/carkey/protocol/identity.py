# carkey — the reader's long-term identity and its pool of work done while idle.
# SPDX-License-Identifier: MIT
#
# ReaderIdentity holds the reader group key pair and the reader identifier
# (group id 16 || sub id 16). Its private key stays inside: signing happens
# here, and only to_bytes() (the persistence format) ever returns it.
#
# PrecomputePool does the per-tap scalar multiplications ahead of time: reader
# ephemeral key pairs (with their transaction ids) and ECDSA nonces k with k·G.
# Each item is handed out once and wiped; nothing in it is ever written to flash.

import asyncio
import os
from micropython import const

from carkey.crypto import p256
from carkey.steps import run_steps

_MAGIC = b"CKRI"
_FORMAT = const(1)
_ID_LEN = const(16)
_SERIAL_LEN = const(134)  # magic 4 | format 1 | group id 16 | sub id 16 | private 32 | public 65


class ReaderIdentity:
    def __init__(self, private_key, public_key, group_id, sub_id):
        # Use generate(), from_private() or from_bytes(): they check the inputs.
        if len(group_id) != _ID_LEN or len(sub_id) != _ID_LEN:
            raise ValueError("group id and sub id are 16 bytes each")
        self._priv = bytes(private_key)
        self.public_key = bytes(public_key)
        self.group_id = bytes(group_id)
        self.sub_id = bytes(sub_id)
        self.identifier = self.group_id + self.sub_id

    @classmethod
    def generate(cls, group_id=None, sub_id=None):
        # On an ESP32 os.urandom is only truly random with a radio on: bring BLE
        # (or Wi-Fi) up before the first boot generates the identity.
        priv, pub = p256.generate_keypair()
        return cls(priv, pub, group_id or os.urandom(_ID_LEN), sub_id or os.urandom(_ID_LEN))

    @classmethod
    def from_private(cls, private_key, group_id, sub_id):
        return cls(private_key, p256.public_key(private_key), group_id, sub_id)

    def to_bytes(self):
        # The persistence format; the one API that returns the private key.
        return _MAGIC + bytes((_FORMAT,)) + self.group_id + self.sub_id + self._priv + self.public_key

    @classmethod
    def from_bytes(cls, data):
        if len(data) != _SERIAL_LEN or data[:4] != _MAGIC or data[4] != _FORMAT:
            raise ValueError("not a carkey reader identity")
        priv = bytes(data[37:69])
        pub = bytes(data[69:])
        # A flipped bit in flash must not give a reader that signs for another key.
        if p256.public_key(priv) != pub:
            raise ValueError("reader identity: public key does not match")
        return cls(priv, pub, data[5:21], data[21:37])

    def sign_with_nonce(self, digest, nonce):
        return p256.sign_with_nonce(self._priv, digest, nonce)

    def nonce_steps(self):
        # A single-use signing nonce hedged with this key (p256.precompute_nonce_steps).
        return p256.precompute_nonce_steps(self._priv)

    def sign_steps(self, digest):
        # RFC 6979 (deterministic) signing, sliced: known-answer tests use it.
        return p256.sign_steps(self._priv, digest)


class Ephemeral:
    # One transaction's reader ephemeral key pair and transaction id.

    def __init__(self, private_key, public_key, transaction_id):
        self.private_key = bytearray(private_key)
        self.public_key = bytes(public_key)
        self.transaction_id = bytes(transaction_id)

    def wipe(self):
        pk = self.private_key
        for i in range(len(pk)):
            pk[i] = 0


def _store(result, dest):
    if isinstance(result, tuple):
        result = Ephemeral(result[0], result[1], os.urandom(16))
    dest.append(result)


class PrecomputePool:
    def __init__(self, ephemerals=2, nonces=2, nonce_steps=None):
        # nonce_steps: makes one signing nonce's generator; the Reader passes its
        # identity's, hedged with the private key (default: os.urandom alone).
        self.ephemeral_target = ephemerals
        self.nonce_target = nonces
        self.nonce_steps = nonce_steps or p256.precompute_nonce_steps
        self._ephemerals = []
        self._nonces = []
        # Cleared while a transaction runs, so idle filling never competes with a tap.
        self._idle = asyncio.Event()
        self._idle.set()

    def counts(self):
        # (ephemeral key pairs, nonces) ready for the next taps.
        return len(self._ephemerals), len(self._nonces)

    def add_ephemeral(self, private_key, public_key, transaction_id=None):
        # Also how known-answer tests inject a fixed key and transaction id.
        self._ephemerals.append(Ephemeral(private_key, public_key, transaction_id or os.urandom(16)))

    def add_nonce(self, nonce):
        # A p256.Nonce made elsewhere: how the benchmark replays a recorded tap.
        self._nonces.append(nonce)

    def _work(self):
        # The next item's generator and where its result goes, or None when full.
        if len(self._ephemerals) < self.ephemeral_target:
            return p256.keypair_steps(), self._ephemerals
        if len(self._nonces) < self.nonce_target:
            return self.nonce_steps(), self._nonces
        return None

    def fill_now(self):
        # Blocking fill (boot, tests); in the running firmware use fill().
        while True:
            work = self._work()
            if work is None:
                return
            _store(p256.finish(work[0]), work[1])

    async def fill(self):
        # Fills the pool slice by slice, pausing whenever a transaction holds it.
        while True:
            await self._idle.wait()
            work = self._work()
            if work is None:
                return
            steps, dest = work
            try:
                while True:
                    next(steps)
                    await asyncio.sleep_ms(0)
                    if not self._idle.is_set():
                        await self._idle.wait()
            except StopIteration as done:
                _store(done.value, dest)

    def hold(self):
        self._idle.clear()

    def release(self):
        self._idle.set()

    async def take_ephemeral(self):
        if self._ephemerals:
            return self._ephemerals.pop(0)
        priv, pub = await run_steps(p256.keypair_steps())
        return Ephemeral(priv, pub, os.urandom(16))

    async def take_nonce(self):
        if self._nonces:
            return self._nonces.pop(0)
        return await run_steps(self.nonce_steps())

    def clear(self):
        for e in self._ephemerals:
            e.wipe()
        for n in self._nonces:
            n.wipe()
        self._ephemerals = []
        self._nonces = []
