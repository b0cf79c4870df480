"""The expedited-phase secure channel: AES-256-GCM with per-direction counters.

Reader -> device messages use SKReader and IV ``00 x8 || counter``; device -> reader
messages use SKDevice and IV ``00 x7 01 || counter`` (counter big-endian, 4 bytes).
Each direction counts from 1 and a message is accepted only under the next counter,
so a replayed, reordered or dropped message fails its tag check. Counter 0xFFFF is
never used: the channel refuses first.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .crypto import SessionKeys

READER_IV_PREFIX = bytes(8)
DEVICE_IV_PREFIX = bytes(7) + b"\x01"
COUNTER_LIMIT = 0xFFFF
TAG_LEN = 16

ROLE_READER = "reader"
ROLE_DEVICE = "device"


class ChannelError(Exception):
    """A message that does not authenticate under the expected key and counter."""


class ChannelExhausted(ChannelError):
    """A direction reached counter 0xFFFF: the transaction must end."""


def channel_iv(prefix: bytes, counter: int) -> bytes:
    return prefix + counter.to_bytes(4, "big")


class SecureChannel:
    """One transaction's channel as seen by ``role`` (reader or device)."""

    def __init__(
        self,
        sk_reader: bytes,
        sk_device: bytes,
        role: str,
        *,
        send_counter: int = 1,
        receive_counter: int = 1,
    ):
        if role == ROLE_DEVICE:
            self._send = (AESGCM(sk_device), DEVICE_IV_PREFIX)
            self._receive = (AESGCM(sk_reader), READER_IV_PREFIX)
        elif role == ROLE_READER:
            self._send = (AESGCM(sk_reader), READER_IV_PREFIX)
            self._receive = (AESGCM(sk_device), DEVICE_IV_PREFIX)
        else:
            raise ValueError(f"unknown role {role!r}")
        self.role = role
        self.send_counter = send_counter
        self.receive_counter = receive_counter

    @classmethod
    def from_keys(cls, keys: SessionKeys, role: str) -> "SecureChannel":
        return cls(keys.sk_reader, keys.sk_device, role)

    def seal(self, plaintext: bytes) -> bytes:
        """Encrypt the next outgoing message: ciphertext || 16-byte tag."""
        if self.send_counter >= COUNTER_LIMIT:
            raise ChannelExhausted("send counter exhausted")
        aead, prefix = self._send
        out = aead.encrypt(channel_iv(prefix, self.send_counter), bytes(plaintext), None)
        self.send_counter += 1
        return out

    def open(self, message: bytes) -> bytes:
        """Decrypt the next incoming message. A failure leaves the counter where it was;
        callers end the transaction on any ChannelError.
        """
        if self.receive_counter >= COUNTER_LIMIT:
            raise ChannelExhausted("receive counter exhausted")
        if len(message) < TAG_LEN:
            raise ChannelError("message shorter than a GCM tag")
        aead, prefix = self._receive
        try:
            plaintext = aead.decrypt(channel_iv(prefix, self.receive_counter), bytes(message), None)
        except InvalidTag as exc:
            raise ChannelError("message does not authenticate") from exc
        self.receive_counter += 1
        return plaintext
