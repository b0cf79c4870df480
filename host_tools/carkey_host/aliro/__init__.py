"""Aliro expedited phase on CPython: TLV, APDUs, key schedule, secure channel, user device.

An implementation independent of the firmware, written on `cryptography`, that the
firmware reader is tested against.
"""

from .apdu import ApduError
from .channel import ChannelError, ChannelExhausted, SecureChannel
from .crypto import CryptogramError, InvalidPublicKey, SessionKeys, Transcript
from .kpersistent_cache import CacheFormatError, KpersistentCache
from .tlv import Tlv, TlvError
from .user_device import LinkDropped, State, UserDevice

__all__ = [
    "ApduError",
    "CacheFormatError",
    "ChannelError",
    "ChannelExhausted",
    "CryptogramError",
    "InvalidPublicKey",
    "KpersistentCache",
    "LinkDropped",
    "SecureChannel",
    "SessionKeys",
    "State",
    "Tlv",
    "TlvError",
    "Transcript",
    "UserDevice",
]
