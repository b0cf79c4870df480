# carkey — the expedited-phase secure channel: AES-256-GCM, per-direction IV prefix and counter.
# SPDX-License-Identifier: MIT
#
# Reader -> device messages use SKReader and IV 00*8 || counter; device -> reader
# messages use SKDevice and IV 00*7 01 || counter. Each direction counts from 1
# and accepts only the next counter, so a replayed, reordered or dropped message
# fails its tag. Any failure closes the channel for good: a transaction never
# continues past a message it could not authenticate. Counter FFFF is never used.
#
# Each direction keeps its GCM object (key schedule and GHASH key) for the
# session: rebuilding it per message made about 3 KiB of garbage each time, and
# on a nearly full heap garbage costs more than the ~2 KiB the two objects hold.

from micropython import const

from carkey.crypto import aes

READER = const(0)  # this end is the reader: seals with SKReader, opens with SKDevice
DEVICE = const(1)  # this end is the user device: the other way round

_TAG = const(16)
_LIMIT = const(0xFFFF)
_PREFIX_DEVICE = const(1)  # last byte of the 8-byte IV prefix for device -> reader


class ChannelError(ValueError):
    pass


class ChannelExhausted(ChannelError):
    pass


class Channel:
    def __init__(self, sk_reader, sk_device, role, send_counter=1, receive_counter=1):
        if role == READER:
            seal_key, open_key = sk_reader, sk_device
        elif role == DEVICE:
            seal_key, open_key = sk_device, sk_reader
        else:
            raise ValueError("unknown channel role")
        self._seal = aes.Gcm(seal_key)
        self._open = aes.Gcm(open_key)
        # One IV buffer per direction, rewritten in place for every message.
        self._seal_iv = bytearray(12)
        self._open_iv = bytearray(12)
        if role == READER:
            self._open_iv[7] = _PREFIX_DEVICE
        else:
            self._seal_iv[7] = _PREFIX_DEVICE
        self.send_counter = send_counter
        self.receive_counter = receive_counter
        self._broken = False

    @staticmethod
    def _set(iv, counter):
        iv[8] = counter >> 24
        iv[9] = (counter >> 16) & 0xFF
        iv[10] = (counter >> 8) & 0xFF
        iv[11] = counter & 0xFF

    def _check(self, counter):
        if self._broken:
            raise ChannelError("channel closed after a failure")
        if counter >= _LIMIT:
            self._broken = True
            raise ChannelExhausted("counter exhausted")

    def seal(self, plaintext):
        # ciphertext || tag for the next outgoing message.
        self._check(self.send_counter)
        self._set(self._seal_iv, self.send_counter)
        out = self._seal.encrypt(self._seal_iv, plaintext)
        self.send_counter += 1
        return out

    def open(self, message):
        # Plaintext of the next incoming message; anything else closes the channel.
        self._check(self.receive_counter)
        if len(message) < _TAG:
            self._broken = True
            raise ChannelError("message shorter than a GCM tag")
        self._set(self._open_iv, self.receive_counter)
        try:
            out = self._open.decrypt(self._open_iv, message)
        except ValueError:
            self._broken = True
            raise ChannelError("message does not authenticate") from None
        self.receive_counter += 1
        return out

    def close(self):
        # Drops both keys; the object refuses every later message.
        self._broken = True
        self._seal = self._open = None
